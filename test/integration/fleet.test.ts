/**
 * A fleet (issue 16): a 3-member etcd cluster and three Portico nodes, each with its own managed nginx
 * on its own loopback address (LISTEN_ADDRESS 127.0.0.11, .12, .13), all on 127.0.0.0/8 and stopped by
 * pid. Every answer is checked against real traffic through every node's nginx, right after it came.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FLEET_SECRET, callNode as call, startFleetNode, startFleetNodes, type FleetAnswer as Answer, type FleetNode } from '../helpers/fleet.js';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { fixtureCert, startTaggedServer, whoAnswers, type TaggedServer } from '../helpers/backends.js';
import { accepts, eventually } from '../helpers/net.js';
import { servedCertificate } from '../helpers/tls-http.js';
import { processRuns } from '../helpers/portico.js';

const ADDRESSES = ['127.0.0.11', '127.0.0.12', '127.0.0.13'] as const;
const RANGE = { from: 30400, to: 30449 };
const HTTP_PORT = 30480;
const HTTPS_PORT = 30481;
const PREFIX = '/portico-test/';

/** The tag every node's nginx answers on `port` right now (no retry: the answer came after every node applied). */
async function tagsOn(port: number): Promise<string[]> {
  return Promise.all(ADDRESSES.map((host) => whoAnswers(port, { host }).catch((error: Error) => `error: ${error.message}`)));
}

const outcomesOf = (answer: Answer): Record<string, string> =>
  Object.fromEntries((answer.body?.fleet?.nodes ?? []).map((n: { node: string; outcome: string }) => [n.node, n.outcome]));

describe('a fleet of three nodes on one etcd cluster', { skip: etcdUnavailable() }, () => {
  let etcd: EtcdCluster;
  const nodes: FleetNode[] = [];
  const backends: TaggedServer[] = [];
  let a: FleetNode;
  let b: FleetNode;
  let c: FleetNode;

  const backend = async (tag: string): Promise<TaggedServer> => {
    const server = await startTaggedServer(tag);
    backends.push(server);
    return server;
  };

  before(async () => {
    etcd = await startEtcdCluster({ members: 3 });
    // Every node has written its status once this returns: the fleet knows three live nodes.
    [a, b, c] = (await startFleetNodes(nodes, ADDRESSES, { endpoints: etcd.endpoints, prefix: PREFIX, portRange: `${RANGE.from}-${RANGE.to}`, httpPort: HTTP_PORT, httpsPort: HTTPS_PORT })) as [FleetNode, FleetNode, FleetNode];
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await etcd?.stop();
    await Promise.all(backends.map((s) => s.close()));
  });

  it('a create on one node answers once the stream echoes on all three; a PUT on another and a DELETE on the third likewise', async () => {
    const one = await backend('one');
    const created = await call(a, 'POST', '/v1/streams', { port: 30400, upstreams: [{ address: `127.0.0.1:${one.port}` }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(await tagsOn(30400), ['one', 'one', 'one']);
    assert.deepEqual(outcomesOf(created), { 'edge-a': 'applied', 'edge-b': 'applied', 'edge-c': 'applied' });
    assert.equal(created.body.fleet.complete, true);
    assert.match(created.headers.get('portico-fleet') ?? '', /^revision=\d+; complete=true; edge-a=applied; edge-b=applied; edge-c=applied$/);
    assert.equal(created.body.port, 30400);

    const two = await backend('two');
    const replaced = await call(b, 'PUT', '/v1/streams/30400', { upstreams: [{ address: `127.0.0.1:${two.port}` }] });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.deepEqual(await tagsOn(30400), ['two', 'two', 'two']);

    // Every node reads it back the same, with the same ETag.
    const etags = await Promise.all(nodes.map(async (node) => (await call(node, 'GET', '/v1/streams/30400')).headers.get('etag')));
    assert.equal(new Set(etags).size, 1);
    assert.equal(etags[0], replaced.headers.get('etag'));

    const deleted = await call(c, 'DELETE', '/v1/streams/30400');
    assert.equal(deleted.status, 204);
    assert.match(deleted.headers.get('portico-fleet') ?? '', /edge-a=applied; edge-b=applied; edge-c=applied$/);
    for (const host of ADDRESSES) assert.equal(await accepts(30400, host), false, `nothing listens on ${host}:30400 any more`);
    assert.equal(await etcd.get(`${PREFIX}streams/30400`), undefined);
  });

  it('30 creates without a port, spread over the three APIs at once: 30 distinct ports, each echoing on all three nodes; If-Match across nodes answers 412', async () => {
    const echo = await backend('many');
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => call(nodes[i % 3] as FleetNode, 'POST', '/v1/streams', { upstreams: [{ address: `127.0.0.1:${echo.port}` }], labels: { n: String(i) } })),
    );
    for (const answer of answers) assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const ports = answers.map((answer) => answer.body.port as number);
    assert.equal(new Set(ports).size, 30, `distinct ports: ${ports.join(',')}`);
    for (const port of ports) assert.ok(port >= RANGE.from && port <= RANGE.to);
    for (const answer of answers) assert.equal(answer.body.fleet.complete, true, JSON.stringify(answer.body.fleet));
    for (const port of ports) assert.deepEqual(await tagsOn(port), ['many', 'many', 'many'], `port ${port}`);
    const listed = (await call(b, 'GET', '/v1/streams')).body as Array<{ port: number }>;
    assert.deepEqual(listed.map((s) => s.port).sort(), [...ports].sort());

    // An ETag read on A, used on A, then again on B: B's write must see A's and refuse.
    const port = ports[0] as number;
    const tag = (await call(a, 'GET', `/v1/streams/${port}`)).headers.get('etag') as string;
    const first = await call(a, 'PUT', `/v1/streams/${port}`, { upstreams: [{ address: `127.0.0.1:${echo.port}` }], labels: { n: 'first' } }, { 'if-match': tag });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await call(b, 'PUT', `/v1/streams/${port}`, { upstreams: [{ address: `127.0.0.1:${echo.port}` }], labels: { n: 'second' } }, { 'if-match': tag });
    assert.equal(second.status, 412, JSON.stringify(second.body));
    assert.equal((await call(c, 'GET', `/v1/streams/${port}`)).body.labels.n, 'first');
    const gone = await call(c, 'DELETE', `/v1/streams/${port}`, undefined, { 'if-match': tag });
    assert.equal(gone.status, 412);

    // Clean up: every stream of this test, removed through whichever node.
    for (const [i, p] of ports.entries()) assert.equal((await call(nodes[i % 3] as FleetNode, 'DELETE', `/v1/streams/${p}`)).status, 204);
  });

  it('an uploaded certificate and an app that serves it, on all three nodes; the key is nowhere in clear in etcd', async () => {
    const cert = fixtureCert('a');
    const uploaded = await call(a, 'POST', '/v1/certificates', { id: 'shop', certificate: cert.cert, key: cert.key });
    assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
    assert.equal(uploaded.body.fleet.complete, true);
    const web = await backend('web');
    const app = await call(b, 'POST', '/v1/apps', { name: 'shop', serverNames: ['a.example.com'], routes: [{ upstreams: [{ address: `127.0.0.1:${web.port}` }] }], tls: { certificate: 'shop' } });
    assert.equal(app.status, 201, JSON.stringify(app.body));
    const served = await Promise.all(ADDRESSES.map((host) => servedCertificate(HTTPS_PORT, 'a.example.com', undefined, 5000, host)));
    for (const s of served) assert.match(s.subjectAltName, /a\.example\.com/);
    assert.equal(new Set(served.map((s) => s.serial)).size, 1);

    const stored = (await etcd.get(`${PREFIX}certificates/shop`)) as string;
    assert.ok(stored !== undefined);
    const keyBody = cert.key.split('\n').filter((line) => line !== '' && !line.startsWith('-----')).join('');
    assert.ok(!stored.includes('PRIVATE KEY'), 'no PEM key in etcd');
    for (const line of cert.key.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) assert.ok(!stored.includes(line), 'no line of the key in etcd');
    assert.ok(!stored.includes(keyBody.slice(0, 40)));
    assert.match(JSON.parse(stored).key, /^pfk1\./);
    assert.ok(!stored.includes(FLEET_SECRET));

    assert.equal((await call(c, 'DELETE', '/v1/certificates/shop')).status, 409, 'in use by the app');
    // The app serves it: a replacement without its key is refused, as on a single node, before etcd.
    const keyless = await call(c, 'PUT', '/v1/certificates/shop', { certificate: cert.cert });
    assert.equal(keyless.status, 409, keyless.text);
    assert.equal(keyless.body.error.field, 'key');
    assert.equal(JSON.parse((await etcd.get(`${PREFIX}certificates/shop`)) as string).key, JSON.parse(stored).key, 'etcd unchanged');
    assert.equal((await call(c, 'DELETE', '/v1/apps/shop')).status, 204);
    assert.equal((await call(a, 'DELETE', '/v1/certificates/shop')).status, 204);
  });

  it('one etcd member down: every change works; two down: changes 503, reads stale-marked, traffic unaffected; back: a change then is applied everywhere', async () => {
    const keep = await backend('keep');
    assert.equal((await call(a, 'POST', '/v1/streams', { port: 30410, upstreams: [{ address: `127.0.0.1:${keep.port}` }] })).status, 201);

    await etcd.kill(0);
    const withTwo = await call(b, 'POST', '/v1/streams', { port: 30411, upstreams: [{ address: `127.0.0.1:${keep.port}` }] });
    assert.equal(withTwo.status, 201, JSON.stringify(withTwo.body));
    assert.deepEqual(await tagsOn(30411), ['keep', 'keep', 'keep']);

    await etcd.kill(1);
    // Every node notices within its health loop (1 s); then changes answer 503 naming etcd.
    const refused = await eventually(async () => (await call(c, 'POST', '/v1/streams', { port: 30412, upstreams: [{ address: `127.0.0.1:${keep.port}` }] })).status === 503, 15_000, 200);
    assert.ok(refused, 'a change answers 503 without quorum');
    const answer = await call(a, 'POST', '/v1/streams', { port: 30412, upstreams: [{ address: `127.0.0.1:${keep.port}` }] });
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error.kind, 'FleetUnavailable');
    assert.match(answer.body.error.message, /etcd/);
    for (const node of nodes) {
      // Each node finds out by itself: at its next etcd request, or its health check (every second).
      const stale = await eventually(async () => (await call(node, 'GET', '/v1/streams')).headers.get('portico-stale') === 'true', 15_000, 200);
      assert.ok(stale, `${node.name} marks its reads stale`);
      const read = await call(node, 'GET', '/v1/streams');
      assert.equal(read.status, 200);
      assert.deepEqual((read.body as Array<{ port: number }>).map((s) => s.port).sort(), [30410, 30411]);
    }
    assert.deepEqual(await tagsOn(30410), ['keep', 'keep', 'keep']);
    assert.deepEqual(await tagsOn(30411), ['keep', 'keep', 'keep']);
    assert.equal(await etcd.get(`${PREFIX}streams/30412`, { member: 2 }).catch(() => 'no answer'), 'no answer');

    await etcd.restart(0);
    await etcd.restart(1);
    await etcd.waitHealthy(30_000);
    let back: Answer | undefined;
    const accepted = await eventually(
      async () => {
        back = await call(c, 'POST', '/v1/streams', { port: 30412, upstreams: [{ address: `127.0.0.1:${keep.port}` }] });
        return back.status === 201;
      },
      20_000,
      250,
    );
    assert.ok(accepted, `a change once etcd is back: ${JSON.stringify(back?.body)}`);
    assert.equal(back?.body.fleet.complete, true, JSON.stringify(back?.body.fleet));
    assert.deepEqual(await tagsOn(30412), ['keep', 'keep', 'keep']);
    // Each node finds out by itself, at its next health check that gets through: one begun during the
    // outage may still be waiting out its deadline, and etcd's client holds off a member that failed
    // for a few seconds (its circuit breaker).
    for (const node of nodes) {
      const fresh = await eventually(async () => (await call(node, 'GET', '/v1/streams')).headers.get('portico-stale') === null, 20_000, 200);
      assert.ok(fresh, `${node.name} no longer marks its reads stale`);
    }
    for (const port of [30410, 30411, 30412]) assert.equal((await call(a, 'DELETE', `/v1/streams/${port}`)).status, 204);
  });

  it('kill -9 of a node\'s Portico during a run of changes: its nginx keeps serving; restarted, it catches up and its files equal the others\'', async () => {
    const echo = await backend('steady');
    assert.equal((await call(a, 'POST', '/v1/streams', { port: 30420, upstreams: [{ address: `127.0.0.1:${echo.port}` }] })).status, 201);
    const masters = await b.nginxMasters();
    assert.equal(masters.length, 1);
    let last = 0;
    const changes = (async () => {
      for (let i = 0; i < 8; i += 1) {
        const answer = await call(i % 2 === 0 ? a : c, 'POST', '/v1/streams', { port: 30421 + i, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
        assert.ok(answer.status === 201, JSON.stringify(answer.body));
        last = answer.body.fleet.revision;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const killedPid = b.portico.pid;
    await b.kill();
    assert.equal(await processRuns(killedPid), false);
    // B's nginx serves what it had while its Portico is gone.
    assert.equal(await whoAnswers(30420, { host: b.address }), 'steady');
    await changes;
    await b.restart();
    const caughtUp = await eventually(async () => (await call(b, 'GET', '/v1/streams')).body.length === 9, 15_000, 100);
    assert.ok(caughtUp, `B holds the 9 streams: ${JSON.stringify((await call(b, 'GET', '/v1/streams')).body.map((s: { port: number }) => s.port))}`);
    assert.deepEqual(await b.nginxMasters(), masters, 'B\'s nginx master never stopped');
    const [fa, fb, fc] = await Promise.all([a.streamFiles(), b.streamFiles(), c.streamFiles()]);
    assert.deepEqual([...fb], [...fa]);
    assert.deepEqual([...fc], [...fa]);
    for (let i = 0; i < 9; i += 1) assert.deepEqual(await tagsOn(30420 + i), ['steady', 'steady', 'steady']);
    // Every node at (or past) the last change's revision, none lagging, as each of them sees it.
    for (const node of nodes) {
      const fleet = (await call(node, 'GET', '/v1/fleet')).body;
      assert.equal(fleet.nodes.length, 3);
      for (const n of fleet.nodes) {
        assert.ok(n.revision >= last, `${n.name} at ${n.revision}, the last change at ${last}`);
        assert.equal(n.lag, 0, JSON.stringify(fleet.nodes));
      }
    }
    for (let i = 0; i < 9; i += 1) assert.equal((await call(b, 'DELETE', `/v1/streams/${30420 + i}`)).status, 204);
  });

  it('compaction while a node is down: restarted, it reads the whole table and converges', async () => {
    const echo = await backend('late');
    assert.equal((await call(a, 'POST', '/v1/streams', { port: 30430, upstreams: [{ address: `127.0.0.1:${echo.port}` }] })).status, 201);
    await c.stopPortico();
    // While C is away: a create, a replace and a delete, then the history compacted.
    assert.equal((await call(a, 'POST', '/v1/streams', { port: 30431, upstreams: [{ address: `127.0.0.1:${echo.port}` }] })).status, 201);
    assert.equal((await call(b, 'PUT', '/v1/streams/30430', { upstreams: [{ address: `127.0.0.1:${echo.port}` }], labels: { v: '2' } })).status, 200);
    assert.equal((await call(b, 'POST', '/v1/streams', { port: 30432, upstreams: [{ address: `127.0.0.1:${echo.port}` }] })).status, 201);
    assert.equal((await call(a, 'DELETE', '/v1/streams/30432')).status, 204);
    await etcd.compact();
    await c.restart();
    const converged = await eventually(
      async () => {
        const streams = (await call(c, 'GET', '/v1/streams')).body as Array<{ port: number; labels?: Record<string, string> }>;
        return streams.map((s) => s.port).join(',') === '30430,30431' && streams[0]?.labels?.v === '2';
      },
      20_000,
      100,
    );
    assert.ok(converged, JSON.stringify((await call(c, 'GET', '/v1/streams')).body));
    // The files are in place before the reload that serves them ends: C's nginx follows within moments.
    const serving = await eventually(async () => (await tagsOn(30431)).every((tag) => tag === 'late'), 5000, 50);
    assert.ok(serving, JSON.stringify(await tagsOn(30431)));
    assert.equal(await accepts(30432, c.address), false);
    assert.deepEqual([...(await c.streamFiles())], [...(await a.streamFiles())]);
    for (const port of [30430, 30431]) assert.equal((await call(c, 'DELETE', `/v1/streams/${port}`)).status, 204);
  });

  it('a single node\'s tree imported into an empty fleet: the node keeps it meanwhile, another node then serves it, a second import answers 409', async () => {
    const echo = await backend('imported');
    const alone = { STORE: 'file', ETCD_ENDPOINTS: '', FLEET_SECRET: '' };
    const base = { endpoints: etcd.endpoints, prefix: '/portico-import/', portRange: `${RANGE.from}-${RANGE.to}`, httpPort: HTTP_PORT, httpsPort: HTTPS_PORT };
    const d = await startFleetNode({ ...base, name: 'edge-d', address: '127.0.0.14', env: alone });
    nodes.push(d);
    for (const port of [30445, 30446]) assert.equal((await call(d, 'POST', '/v1/streams', { port, upstreams: [{ address: `127.0.0.1:${echo.port}` }] })).status, 201);
    const cert = fixtureCert('b');
    assert.equal((await call(d, 'POST', '/v1/certificates', { id: 'own', certificate: cert.cert, key: cert.key })).status, 201);
    await d.stopPortico();
    await d.restart({ STORE: 'etcd', ETCD_ENDPOINTS: etcd.endpoints.join(','), FLEET_SECRET });
    // An empty fleet does not empty the node: it keeps its streams until they are imported.
    const joined = await eventually(async () => (await call(d, 'GET', '/v1/fleet')).body?.nodes?.length === 1, 10_000, 100);
    assert.ok(joined);
    assert.deepEqual(((await call(d, 'GET', '/v1/streams')).body as Array<{ port: number }>).map((s) => s.port), [30445, 30446]);
    assert.equal(await whoAnswers(30445, { host: d.address }), 'imported');
    // Restarted before the import (the fleet still empty): it still keeps them.
    await d.kill();
    await d.restart();
    assert.deepEqual(((await call(d, 'GET', '/v1/streams')).body as Array<{ port: number }>).map((s) => s.port), [30445, 30446]);
    assert.equal(await whoAnswers(30446, { host: d.address }), 'imported');

    const imported = await call(d, 'POST', '/v1/fleet/import');
    assert.equal(imported.status, 201, JSON.stringify(imported.body));
    assert.deepEqual({ ...imported.body, revision: 0 }, { streams: 2, apps: 0, certificates: 1, revision: 0 });
    assert.ok((await etcd.get('/portico-import/streams/30446')) !== undefined);
    assert.doesNotMatch((await etcd.get('/portico-import/certificates/own')) as string, /PRIVATE KEY/);
    assert.equal((await call(d, 'POST', '/v1/fleet/import')).status, 409);

    const e = await startFleetNode({ ...base, name: 'edge-e', address: '127.0.0.15' });
    nodes.push(e);
    const served = await eventually(async () => (await whoAnswers(30446, { host: e.address }).catch(() => '')) === 'imported', 15_000, 100);
    assert.ok(served, 'the node that joined serves the imported stream');
    assert.equal((await call(e, 'GET', '/v1/certificates/own')).status, 200);
    assert.deepEqual([...(await e.streamFiles())], [...(await d.streamFiles())]);
    // The fleet of three never saw any of it: another prefix.
    assert.equal((await call(a, 'GET', '/v1/streams')).body.some((s: { port: number }) => s.port === 30445), false);
  });

  it('a port held by another process on one node only: the others serve, that node reports it (answer and /v1/fleet), and serves once freed and a change arrives', async () => {
    const echo = await backend('held');
    const squatter: Server = createServer((socket) => socket.end('squatter\n'));
    await new Promise<void>((resolve) => squatter.listen(30440, b.address, () => resolve()));
    try {
      const created = await call(a, 'POST', '/v1/streams', { port: 30440, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(outcomesOf(created), { 'edge-a': 'applied', 'edge-b': 'failed', 'edge-c': 'applied' });
      const failure = created.body.fleet.nodes.find((n: { node: string }) => n.node === 'edge-b');
      assert.match(failure.error.message, /30440/);
      assert.match(created.headers.get('portico-fleet') ?? '', /edge-b=failed/);
      assert.equal(await whoAnswers(30440, { host: a.address }), 'held');
      assert.equal(await whoAnswers(30440, { host: c.address }), 'held');
      assert.equal(await whoAnswers(30440, { host: b.address }), 'squatter');
      const fleet = (await call(c, 'GET', '/v1/fleet')).body;
      const bStatus = fleet.nodes.find((n: { name: string }) => n.name === 'edge-b');
      assert.equal(bStatus.outcome, 'failed');
      assert.equal(bStatus.errors[0].resource, 'streams/30440');
      assert.match(bStatus.errors[0].message, /30440/);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      assert.match(metrics, /^portico_fleet_apply_errors 1$/m);
      assert.match(metrics, /^portico_fleet_stale 0$/m);
      assert.match(metrics, /^portico_fleet_node_lag\{node="edge-c"\} 0$/m);
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
    // The next change (any) makes B try again.
    assert.equal((await call(c, 'POST', '/v1/streams', { port: 30441, upstreams: [{ address: `127.0.0.1:${echo.port}` }] })).status, 201);
    const served = await eventually(async () => (await whoAnswers(30440, { host: b.address }).catch(() => '')) === 'held', 10_000, 100);
    assert.ok(served, 'B serves the stream once its port is free');
    const healed = await eventually(async () => (await call(a, 'GET', '/v1/fleet')).body.nodes.every((n: { outcome: string }) => n.outcome === 'applied'), 5000, 100);
    assert.ok(healed, JSON.stringify((await call(a, 'GET', '/v1/fleet')).body.nodes));
    assert.match(await (await fetch(`${b.url}/metrics`)).text(), /^portico_fleet_apply_errors 0$/m);

    // Held again on B for a new stream; freed while B's Portico is down: restarted, B applies it by
    // itself (it reads the whole table at start), with no further change in the fleet.
    const again: Server = createServer((socket) => socket.end('squatter\n'));
    await new Promise<void>((resolve) => again.listen(30442, b.address, () => resolve()));
    const held = await call(a, 'POST', '/v1/streams', { port: 30442, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(outcomesOf(held)['edge-b'], 'failed', held.text);
    await b.kill();
    await new Promise<void>((resolve) => again.close(() => resolve()));
    await b.restart();
    const retried = await eventually(async () => (await whoAnswers(30442, { host: b.address }).catch(() => '')) === 'held', 10_000, 100);
    assert.ok(retried, 'B serves the stream its restart tried again');
    const clean = await eventually(async () => (await call(c, 'GET', '/v1/fleet')).body.nodes.every((n: { outcome: string }) => n.outcome === 'applied'), 5000, 100);
    assert.ok(clean, JSON.stringify((await call(c, 'GET', '/v1/fleet')).body.nodes));
    assert.equal((await call(b, 'DELETE', '/v1/streams/30442')).status, 204);
    for (const port of [30440, 30441]) assert.equal((await call(b, 'DELETE', `/v1/streams/${port}`)).status, 204);
  });
});
