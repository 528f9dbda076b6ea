/**
 * The fleet (issue 16) attacked as a hostile party would: someone who can write to etcd but not to
 * the API, hostile bodies through the API of a node, and anyone looking for the fleet's secrets in
 * what Portico answers, logs or stores. One etcd member and two nodes (127.0.0.21, .22), stopped by pid.
 * Every hostile value must stay out of the config files, leave the streams already there serving,
 * show as the node's error in /v1/fleet (or, for a key outside the layout, be ignored with a log
 * line), and heal once the value is fixed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FleetSealer } from '../../src/fleet/secret.js';
import { FLEET_SECRET, callNode as call, startFleetNode, startFleetNodes, type FleetNode } from '../helpers/fleet.js';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { fixtureCert, startTaggedServer, whoAnswers, type TaggedServer } from '../helpers/backends.js';
import { accepts, eventually } from '../helpers/net.js';
import { REPO, nginxBin, tempDir } from '../helpers/portico.js';

const ADDRESSES = ['127.0.0.21', '127.0.0.22'] as const;
const RANGE = { from: 30500, to: 30539 };
const HTTP_PORT = 30580;
const HTTPS_PORT = 30581;
const PREFIX = '/portico-attack/';
/** The stream that must keep serving on both nodes through every attack. */
const LIVE = 30500;

/** Every file's text under a node's stream.d, http.d and certs (what nginx reads), with its name. */
async function configText(node: FleetNode): Promise<string> {
  const texts: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) texts.push(`### ${full}\n${await readFile(full, 'utf8').catch(() => '')}`);
    }
  };
  for (const sub of ['stream.d', 'http.d']) await walk(path.join(node.stateDir, sub));
  return texts.join('\n');
}

/** The names of the files under a node's certs folder. */
async function certFiles(node: FleetNode): Promise<string[]> {
  return (await readdir(path.join(node.stateDir, 'certs'), { recursive: true }).catch(() => [])).map(String).sort();
}

/** Every key and value under `prefix` in etcd, read through its v3 JSON gateway. */
async function etcdAll(etcd: EtcdCluster, prefix: string): Promise<Map<string, string>> {
  const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
  const end = Buffer.from(prefix, 'utf8');
  end[end.length - 1] = (end[end.length - 1] as number) + 1;
  const res = await fetch(`${etcd.endpoints[0]}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: b64(prefix), range_end: end.toString('base64') }),
    signal: AbortSignal.timeout(3000),
  });
  const json = (await res.json()) as { kvs?: Array<{ key: string; value?: string }> };
  return new Map((json.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString('utf8'), Buffer.from(kv.value ?? '', 'base64').toString('utf8')]));
}

async function etcdDelete(etcd: EtcdCluster, key: string): Promise<void> {
  const res = await fetch(`${etcd.endpoints[0]}/v3/kv/deleterange`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(key, 'utf8').toString('base64') }),
    signal: AbortSignal.timeout(3000),
  });
  assert.equal(res.status, 200, await res.text());
}

/** GET http://<address>:HTTP_PORT/ with `host`: the status and body nginx answers. */
function httpGet(address: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: address, port: HTTP_PORT, path: '/', headers: { host }, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.on('error', reject);
    req.end();
  });
}

/** POST `route` to a node's API with exactly these headers (fetch would not send a foreign Host): the status. */
function rawPost(node: FleetNode, route: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const url = new URL(node.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: Number(url.port), method: 'POST', path: route, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** A PEM key's base64 lines (the ones worth looking for elsewhere). */
const pemLines = (pem: string): string[] => pem.split('\n').filter((line) => line.length >= 16 && !line.startsWith('-----'));

/** Injections that must never reach a config file, as upstream addresses. */
const HOSTILE_ADDRESSES = [
  '1.2.3.4:5; include /etc/passwd',
  '127.0.0.1:1\n}\nserver { listen 30539; proxy_pass 1.2.3.4:5; }',
  '127.0.0.1:1 { include /etc/passwd; }',
  '127.0.0.1:1#} include /etc/passwd',
];
/** Text no file of a node may ever hold, whatever was written to etcd. */
const FORBIDDEN = ['passwd', '1.2.3.4', 'evil', 'listen 30539'];

describe('attacks on a fleet: hostile etcd values, hostile API bodies, secrets', { skip: etcdUnavailable() }, () => {
  let etcd: EtcdCluster;
  const nodes: FleetNode[] = [];
  const backends: TaggedServer[] = [];
  let web: HttpServer;
  let webPort: number;
  let a: FleetNode;
  let b: FleetNode;

  /** Each node's own view of its errors for `resource` (as it writes them to its status key). */
  const errorsFor = async (resource: string): Promise<Array<{ node: string; message: string } | undefined>> =>
    Promise.all(
      nodes.map(async (node) => {
        const fleet = (await call(node, 'GET', '/v1/fleet')).body;
        const own = fleet?.nodes?.find((n: { name: string }) => n.name === node.name);
        const error = own?.errors?.find((e: { resource: string }) => e.resource === resource);
        return error === undefined ? undefined : { node: node.name, message: error.message as string };
      }),
    );

  /** Waits until both nodes report an error for `resource`; answers the messages. */
  const bothReport = async (resource: string, revision: number): Promise<string[]> => {
    let last: Array<{ node: string; message: string } | undefined> = [];
    const reported = await eventually(
      async () => {
        last = await errorsFor(resource);
        if (!last.every((e) => e !== undefined)) return false;
        const fleet = (await call(a, 'GET', '/v1/fleet')).body;
        return fleet.nodes.every((n: { revision: number }) => n.revision >= revision);
      },
      10_000,
      100,
    );
    assert.ok(reported, `both nodes report ${resource}: ${JSON.stringify(last)}`);
    return last.map((e) => e?.message ?? '');
  };

  /** Waits until neither node reports an error for `resource`. */
  const bothClear = async (resource: string): Promise<void> => {
    const cleared = await eventually(async () => (await errorsFor(resource)).every((e) => e === undefined), 10_000, 100);
    assert.ok(cleared, `no node reports ${resource} any more: ${JSON.stringify(await errorsFor(resource))}`);
  };

  const assertClean = async (): Promise<void> => {
    for (const node of nodes) {
      const text = await configText(node);
      assert.match(text, new RegExp(`listen ${node.address}:${LIVE}`), `${node.name}'s files were read`);
      for (const word of FORBIDDEN) assert.ok(!text.includes(word), `${node.name}'s files hold "${word}":\n${text}`);
    }
  };

  const assertLiveServes = async (): Promise<void> => {
    for (const host of ADDRESSES) assert.equal(await whoAnswers(LIVE, { host }), 'live', `${host}:${LIVE} keeps serving`);
  };

  /** Puts a valid stream on `port` through etcd directly (as a fix by the same hand). */
  const validStream = (port: number, backend: TaggedServer): string => JSON.stringify({ port, upstreams: [{ address: `127.0.0.1:${backend.port}` }] });

  before(async () => {
    etcd = await startEtcdCluster({ members: 1 });
    const options = { endpoints: etcd.endpoints, prefix: PREFIX, portRange: `${RANGE.from}-${RANGE.to}`, httpPort: HTTP_PORT, httpsPort: HTTPS_PORT, env: { LOG_LEVEL: 'info' } };
    [a, b] = (await startFleetNodes(nodes, ADDRESSES, options)) as [FleetNode, FleetNode];
    const live = await startTaggedServer('live');
    backends.push(live);
    web = createHttpServer((_req, res) => res.end('web-ok'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', () => resolve()));
    webPort = (web.address() as AddressInfo).port;
    const created = await call(a, 'POST', '/v1/streams', { port: LIVE, upstreams: [{ address: `127.0.0.1:${live.port}` }] });
    assert.equal(created.status, 201, created.text);
    await assertLiveServes();
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await etcd?.stop();
    await Promise.all(backends.map((s) => s.close()));
    await new Promise<void>((resolve) => (web === undefined ? resolve() : web.close(() => resolve())));
  });

  it('a stream written to etcd with nginx syntax in its upstream or listen address: no file gets it, both nodes report it, the live stream serves; fixed, it serves', async () => {
    const port = 30501;
    const key = `${PREFIX}streams/${port}`;
    const values = [
      ...HOSTILE_ADDRESSES.map((address) => ({ port, upstreams: [{ address }] })),
      { port, upstreams: [{ address: '127.0.0.1:1' }], listenAddress: '0.0.0.0; include /etc/passwd' },
      { port, upstreams: [{ address: '127.0.0.1:1' }], labels: { x: 'y' }, evil: 'extra field' },
    ];
    for (const value of values) {
      const revision = await etcd.put(key, JSON.stringify(value));
      const messages = await bothReport(`streams/${port}`, revision);
      for (const message of messages) assert.ok(message.length > 0);
      await assertClean();
      await assertLiveServes();
      for (const host of ADDRESSES) assert.equal(await accepts(port, host), false, `nothing listens on ${host}:${port}`);
    }
    // The same hand fixes it: both nodes apply it and forget the error.
    const fixed = await startTaggedServer('fixed');
    backends.push(fixed);
    await etcd.put(key, validStream(port, fixed));
    const serving = await eventually(async () => (await Promise.all(ADDRESSES.map((host) => whoAnswers(port, { host }).catch(() => '')))).every((t) => t === 'fixed'), 10_000, 100);
    assert.ok(serving, 'the fixed stream serves on both nodes');
    await bothClear(`streams/${port}`);
    // Removed in etcd: removed everywhere.
    await etcdDelete(etcd, key);
    const gone = await eventually(async () => (await Promise.all(ADDRESSES.map((host) => accepts(port, host)))).every((up) => !up), 10_000, 100);
    assert.ok(gone);
    await assertLiveServes();
  });

  it('a stream key whose JSON names another port, or none: refused by both nodes naming the port; nothing listens on either port', async () => {
    const port = 30502;
    const key = `${PREFIX}streams/${port}`;
    const echo = await startTaggedServer('moved');
    backends.push(echo);
    for (const value of [JSON.parse(validStream(30503, echo)), { upstreams: [{ address: `127.0.0.1:${echo.port}` }] }]) {
      const revision = await etcd.put(key, JSON.stringify(value));
      const messages = await bothReport(`streams/${port}`, revision);
      for (const message of messages) assert.match(message, /port/);
      for (const host of ADDRESSES) {
        assert.equal(await accepts(30502, host), false);
        assert.equal(await accepts(30503, host), false);
      }
      await assertLiveServes();
    }
    await etcdDelete(etcd, key);
    await bothClear(`streams/${port}`);
  });

  it('a well-formed stream written to etcd on a port outside PORT_RANGE (next to it, the apps\' HTTP port): refused by both nodes naming PORT_RANGE', async () => {
    const echo = await startTaggedServer('outside');
    backends.push(echo);
    for (const port of [RANGE.to + 1, HTTP_PORT]) {
      const key = `${PREFIX}streams/${port}`;
      const revision = await etcd.put(key, validStream(port, echo));
      const messages = await bothReport(`streams/${port}`, revision);
      for (const message of messages) assert.match(message, /PORT_RANGE/);
      if (port !== HTTP_PORT) for (const host of ADDRESSES) assert.equal(await accepts(port, host), false);
      await etcdDelete(etcd, key);
      await bothClear(`streams/${port}`);
    }
    await assertLiveServes();
  });

  it('garbage where a stream\'s JSON should be: both nodes report it; the API can then replace it and delete it (the way to repair it)', async () => {
    const port = 30504;
    const key = `${PREFIX}streams/${port}`;
    for (const garbage of ['{not json', 'null', '[]', '42', '"text"', '']) {
      const revision = await etcd.put(key, garbage);
      await bothReport(`streams/${port}`, revision);
      await assertLiveServes();
    }
    const echo = await startTaggedServer('repaired');
    backends.push(echo);
    const replaced = await call(b, 'PUT', `/v1/streams/${port}`, { upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(replaced.status, 200, replaced.text);
    assert.equal(replaced.body.fleet.complete, true, replaced.text);
    for (const host of ADDRESSES) assert.equal(await whoAnswers(port, { host }), 'repaired');
    await bothClear(`streams/${port}`);
    // Garbage again, then a DELETE through the API removes the key.
    const revision = await etcd.put(key, '{not json');
    await bothReport(`streams/${port}`, revision);
    for (const host of ADDRESSES) assert.equal(await whoAnswers(port, { host }), 'repaired', 'the node keeps what it applied last');
    const deleted = await call(a, 'DELETE', `/v1/streams/${port}`);
    assert.equal(deleted.status, 204, deleted.text);
    assert.equal(await etcd.get(key), undefined);
    const gone = await eventually(async () => (await Promise.all(ADDRESSES.map((host) => accepts(port, host)))).every((up) => !up), 10_000, 100);
    assert.ok(gone);
    await bothClear(`streams/${port}`);
  });

  it('an app written to etcd with a hostile server name, or a name other than its key\'s: no file gets it, both nodes report it; fixed, both serve it', async () => {
    const key = `${PREFIX}apps/shop`;
    const route = { upstreams: [{ address: `127.0.0.1:${webPort}` }] };
    const values = [
      { name: 'shop', serverNames: ['a.example.com; include /etc/passwd'], routes: [route] },
      { name: 'shop', serverNames: ['a.example.com\n}\nserver { listen 30539; }'], routes: [route] },
      { name: 'shop', serverNames: ['evil{.example.com'], routes: [route] },
      { name: 'shop', serverNames: ['a.example.com'], routes: [{ upstreams: [{ address: '1.2.3.4:5; include /etc/passwd' }] }] },
      { name: 'evil', serverNames: ['a.example.com'], routes: [route] },
      // ACME is refused by the API in a fleet: written directly, no node starts an order for it.
        { name: 'shop', serverNames: ['a.example.com'], routes: [route], tls: { acme: true } },
    ];
    for (const value of values) {
      const revision = await etcd.put(key, JSON.stringify(value));
      await bothReport('apps/shop', revision);
      await assertClean();
      await assertLiveServes();
    }
    await etcd.put(key, JSON.stringify({ name: 'shop', serverNames: ['shop.example.com'], routes: [route] }));
    const served = await eventually(async () => (await Promise.all(ADDRESSES.map((host) => httpGet(host, 'shop.example.com').then((r) => r.body, () => '')))).every((body) => body === 'web-ok'), 10_000, 100);
    assert.ok(served, 'the fixed app is served by both nodes');
    await bothClear('apps/shop');
    assert.equal((await call(a, 'DELETE', '/v1/apps/shop')).status, 204);
  });

  it('a certificate whose key is not a sealed value, sealed under another key or another FLEET_SECRET: both nodes refuse it, write no file, and show no PEM; re-uploaded through the API, it is served', async () => {
    const cert = fixtureCert('a');
    const good = await call(a, 'POST', '/v1/certificates', { id: 'good', certificate: cert.cert, key: cert.key });
    assert.equal(good.status, 201, good.text);
    const stored = JSON.parse((await etcd.get(`${PREFIX}certificates/good`)) as string) as { key: string };
    const before = await Promise.all(nodes.map(certFiles));
    for (const files of before) assert.ok(files.some((f) => f.includes('good')), `the certificate files are where they are looked for: ${files.join(', ')}`);
    const key = `${PREFIX}certificates/bad`;
    const other = new FleetSealer('another-fleet-secret-0123456789abcdefgh');
    const values = [
      { id: 'bad', certificatePem: cert.cert, key: 'not-a-sealed-value' },
      { id: 'bad', certificatePem: cert.cert, key: cert.key }, // the key in clear, as if sealing were skipped
      { id: 'bad', certificatePem: cert.cert, key: stored.key }, // sealed for certificates/good (AAD)
      { id: 'bad', certificatePem: cert.cert, key: other.seal(cert.key, key) },
      { id: 'bad', certificatePem: cert.cert, key: `${stored.key.slice(0, -4)}AAAA` }, // altered tag
      { id: 'bad', certificatePem: cert.cert, key: 42 },
      { id: 'bad', certificatePem: 'not a certificate' },
    ];
    for (const value of values) {
      const revision = await etcd.put(key, JSON.stringify(value));
      const messages = await bothReport('certificates/bad', revision);
      for (const message of messages) {
        assert.ok(!message.includes('PRIVATE KEY'));
        for (const line of pemLines(cert.key)) assert.ok(!message.includes(line), `no line of the key in the error: ${message}`);
      }
      const fleet = (await call(b, 'GET', '/v1/fleet')).text;
      assert.ok(!fleet.includes('PRIVATE KEY'));
      for (const line of pemLines(cert.key)) assert.ok(!fleet.includes(line));
      assert.deepEqual(await Promise.all(nodes.map(certFiles)), before, 'no certificate file written');
      await assertLiveServes();
    }
    // The operator repairs it through the API: the upload replaces what is there, even a key that does not open.
    for (const value of [values[0], values[5], values[3]]) {
      const revision = await etcd.put(key, JSON.stringify(value));
      await bothReport('certificates/bad', revision);
      const repaired = await call(b, 'PUT', '/v1/certificates/bad', { certificate: cert.cert, key: cert.key });
      assert.equal(repaired.status, 200, `over ${JSON.stringify(value).slice(0, 200)}: ${repaired.text}`);
      assert.equal(repaired.body.fleet.complete, true, repaired.text);
      await bothClear('certificates/bad');
    }
    for (const node of nodes) assert.equal((await call(node, 'GET', '/v1/certificates/bad')).status, 200);
    // And again garbage, deleted through the API.
    const revision = await etcd.put(key, '{"id":"bad","certificatePem":"x","key":"pfk1.00000000.x.y.z"}');
    await bothReport('certificates/bad', revision);
    assert.equal((await call(a, 'DELETE', '/v1/certificates/bad')).status, 204);
    assert.equal(await etcd.get(key), undefined);
    await bothClear('certificates/bad');
    assert.equal((await call(a, 'DELETE', '/v1/certificates/good')).status, 204);
  });

  it('keys outside the layout and forged node statuses are ignored (with a log line); changes through the API still complete on both nodes', async () => {
    const outside = ['streams/0', 'streams/070', 'streams/99999', 'streams/30505x', 'apps/UPPER', 'apps/a/b', 'certificates/../x', 'other/x', 'nodes/UPPER'];
    for (const rest of outside) await etcd.put(`${PREFIX}${rest}`, JSON.stringify({ port: 30539, upstreams: [{ address: '1.2.3.4:5; include /etc/passwd' }] }));
    const forged = { 'nodes/ghost-1': '{garbage', 'nodes/ghost-2': 'null', 'nodes/ghost-3': '{}', 'nodes/ghost-4': '{"name":"ghost-4","errors":"none","revision":"x"}', 'nodes/ghost-5': '[]', 'nodes/ghost-6': JSON.stringify({ name: 'edge-a', revision: 999_999, outcome: 'applied', errors: [] }),
      // Well shaped, but without a lease: no node wrote it (each writes its own under its lease), so it is no node that answers must wait for.
      'nodes/ghost-7': JSON.stringify({ name: 'ghost-7', revision: 0, outcome: 'applied', errors: [], nginx: { running: true, version: '1.30.4' }, listenAddress: null, version: '0.1.0', startedAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' }),
    };
    for (const [rest, value] of Object.entries(forged)) await etcd.put(`${PREFIX}${rest}`, value);

    const echo = await startTaggedServer('after');
    backends.push(echo);
    const created = await call(b, 'POST', '/v1/streams', { port: 30506, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.fleet.complete, true, created.text);
    for (const host of ADDRESSES) assert.equal(await whoAnswers(30506, { host }), 'after');
    for (const node of nodes) {
      const fleet = await call(node, 'GET', '/v1/fleet');
      assert.equal(fleet.status, 200, fleet.text);
      assert.deepEqual(fleet.body.nodes.map((n: { name: string }) => n.name), ['edge-a', 'edge-b']);
      for (const n of fleet.body.nodes) assert.deepEqual(n.errors.filter((e: { resource: string }) => !/^(streams\/3050[1-4]|apps\/shop|certificates\/bad)$/.test(e.resource)), [], JSON.stringify(n));
    }
    await assertClean();
    for (const host of ADDRESSES) assert.equal(await accepts(30539, host), false);
    // A node's own status key overwritten by another hand: the node writes it again.
    await etcd.put(`${PREFIX}nodes/edge-b`, '{garbage');
    const rewritten = await eventually(async () => ((await etcd.get(`${PREFIX}nodes/edge-b`)) ?? '').startsWith('{"name":"edge-b"'), 10_000, 100);
    assert.ok(rewritten, 'edge-b wrote its status again');
    const listed = await eventually(async () => (await call(a, 'GET', '/v1/fleet')).body.nodes.some((n: { name: string }) => n.name === 'edge-b'), 10_000, 100);
    assert.ok(listed, 'edge-a lists edge-b again');
    // Each node says what it ignores, as its watch delivers it.
    for (const node of nodes) {
      const logged = await eventually(() => outside.every((rest) => node.portico.output().includes(`"key":"${PREFIX}${rest}"`)), 10_000, 100);
      assert.ok(logged, `${node.name} logs each key outside the layout:\n${node.portico.output().slice(-3000)}`);
      assert.match(node.portico.output(), /not Portico's: ignored/);
      assert.match(node.portico.output(), /nodes\/ghost-6.*no node wrote/);
    }
    // Restarted with the forged keys in place, a node catches up and answers as before.
    await b.stopPortico();
    await b.restart();
    const back = await eventually(async () => (await call(a, 'GET', '/v1/fleet')).body.nodes.filter((n: { name: string }) => n.name.startsWith('edge-')).length === 2, 10_000, 100);
    assert.ok(back, JSON.stringify((await call(a, 'GET', '/v1/fleet')).body));
    const deleted = await call(b, 'DELETE', '/v1/streams/30506');
    assert.equal(deleted.status, 204, deleted.text);
    assert.equal(deleted.headers.get('portico-fleet')?.includes('edge-a=applied'), true, deleted.headers.get('portico-fleet') ?? '');
    for (const rest of [...outside, ...Object.keys(forged)]) await etcdDelete(etcd, `${PREFIX}${rest}`);
    await assertLiveServes();
  });

  it('hostile bodies through the API of a fleet node answer 400 naming the field, and write nothing to etcd', async () => {
    const before = await etcdAll(etcd, PREFIX);
    const withoutNodes = (all: Map<string, string>): string[] => [...all.keys()].filter((k) => !k.startsWith(`${PREFIX}nodes/`)).sort();
    const cases: Array<{ method: string; route: string; body: unknown; field: RegExp; key?: string }> = [
      ...HOSTILE_ADDRESSES.map((address) => ({ method: 'POST', route: '/v1/streams', body: { port: 30510, upstreams: [{ address }] }, field: /upstreams/, key: 'streams/30510' })),
      ...HOSTILE_ADDRESSES.map((address) => ({ method: 'POST', route: '/v1/streams', body: { upstreams: [{ address }] }, field: /upstreams/ })),
      ...HOSTILE_ADDRESSES.map((address) => ({ method: 'PUT', route: '/v1/streams/30511', body: { upstreams: [{ address }] }, field: /upstreams/, key: 'streams/30511' })),
      { method: 'POST', route: '/v1/streams', body: { port: 30512, upstreams: [{ address: '127.0.0.1:1' }], listenAddress: '0.0.0.0; include /etc/passwd' }, field: /listenAddress/, key: 'streams/30512' },
      { method: 'POST', route: '/v1/streams', body: { port: 30513, upstreams: [{ address: '127.0.0.1:1' }], evil: 1 }, field: /evil|unrecognized/i, key: 'streams/30513' },
      { method: 'POST', route: '/v1/apps', body: { name: 'shop2', serverNames: ['a.example.com; include /etc/passwd'], routes: [{ upstreams: [{ address: `127.0.0.1:${webPort}` }] }] }, field: /serverNames/, key: 'apps/shop2' },
      { method: 'POST', route: '/v1/apps', body: { name: 'shop3', serverNames: ['a.example.com'], routes: [{ upstreams: [{ address: '1.2.3.4:5; include /etc/passwd' }] }] }, field: /routes/, key: 'apps/shop3' },
      { method: 'POST', route: '/v1/apps', body: { name: 'Evil;', serverNames: ['a.example.com'], routes: [{ upstreams: [{ address: `127.0.0.1:${webPort}` }] }] }, field: /name/ },
      { method: 'PUT', route: '/v1/apps/shop4', body: { serverNames: ['a.example.com\n}'], routes: [{ upstreams: [{ address: `127.0.0.1:${webPort}` }] }] }, field: /serverNames/, key: 'apps/shop4' },
      { method: 'POST', route: '/v1/certificates', body: { id: 'c1', certificate: 'not a pem', key: 'not a key' }, field: /certificate/, key: 'certificates/c1' },
    ];
    for (const c of cases) {
      const answer = await call(a, c.method, c.route, c.body);
      assert.equal(answer.status, 400, `${c.method} ${c.route} ${JSON.stringify(c.body)}: ${answer.text}`);
      assert.match(`${String(answer.body?.error?.field)} ${String(answer.body?.error?.message)}`, c.field, answer.text);
      if (c.key !== undefined) assert.equal(await etcd.get(`${PREFIX}${c.key}`), undefined);
    }
    assert.deepEqual(withoutNodes(await etcdAll(etcd, PREFIX)), withoutNodes(before), 'no key was written');
    await assertClean();
    await assertLiveServes();
  });

  it('POST /v1/fleet/import is refused to a browser (foreign Host, Origin, cross-site) and, into a non-empty prefix, answers 409 writing nothing', async () => {
    const routes = async (): Promise<Map<string, string>> => new Map([...(await etcdAll(etcd, PREFIX))].filter(([key]) => !key.startsWith(`${PREFIX}nodes/`)));
    const before = await routes();
    assert.ok(before.has(`${PREFIX}streams/${LIVE}`));
    const own = new URL(a.url).host;
    const browsers: Array<Record<string, string>> = [{ host: 'evil.example' }, { host: `evil.example:${new URL(a.url).port}` }, { host: own, origin: 'http://evil.example' }, { host: own, 'sec-fetch-site': 'cross-site' }];
    for (const headers of browsers) {
      const answer = await rawPost(a, '/v1/fleet/import', headers);
      assert.equal(answer.status, 403, `${JSON.stringify(headers)}: ${answer.body}`);
      assert.match(answer.body, /Forbidden/);
    }
    const answer = await call(a, 'POST', '/v1/fleet/import');
    assert.equal(answer.status, 409, answer.text);
    assert.match(answer.body.error.message, /empty/);
    // Nodes write their status keys now and then: every other key is as it was.
    assert.deepEqual(await routes(), before);
  });

  it('no secret leaks: FLEET_SECRET is in no answer nor log; no private key in clear in etcd nor in /v1/fleet', async () => {
    const cert = fixtureCert('b');
    assert.equal((await call(a, 'POST', '/v1/certificates', { id: 'leak', certificate: cert.cert, key: cert.key })).status, 201);
    // Some errors on the way, so that error paths are in the logs too.
    await etcd.put(`${PREFIX}certificates/leak2`, JSON.stringify({ id: 'leak2', certificatePem: cert.cert, key: 'pfk1.deadbeef.AAAA.BBBB.CCCC' }));
    await call(a, 'PUT', '/v1/streams/30520', { upstreams: [{ address: 'x;' }] });
    const routes = ['/v1/fleet', '/v1/status', '/metrics', '/v1/certificates', '/v1/certificates/leak', '/v1/streams', '/v1/apps', '/v1/nothing', '/openapi.json'];
    const answers: string[] = [];
    for (const node of nodes) {
      for (const route of routes) {
        const answer = await call(node, 'GET', route);
        answers.push(`${route}: ${answer.status} ${JSON.stringify(Object.fromEntries(answer.headers))} ${answer.text}`);
      }
    }
    const everything = answers.join('\n');
    assert.ok(everything.includes('edge-a'), 'the answers were read');
    assert.ok(!everything.includes(FLEET_SECRET), 'FLEET_SECRET in an answer');
    for (const line of pemLines(cert.key)) assert.ok(!everything.includes(line), 'a line of the private key in an answer');
    for (const node of nodes) assert.ok(!node.portico.output().includes(FLEET_SECRET), `FLEET_SECRET in ${node.name}'s log`);
    for (const node of nodes) for (const line of pemLines(cert.key)) assert.ok(!node.portico.output().includes(line), `the private key in ${node.name}'s log`);
    const all = await etcdAll(etcd, PREFIX);
    assert.ok(all.size > 0);
    for (const [key, value] of all) {
      assert.ok(!value.includes('PRIVATE KEY'), key);
      assert.ok(!value.includes(FLEET_SECRET), key);
      for (const line of pemLines(cert.key)) assert.ok(!value.includes(line), `a line of the key at ${key}`);
    }
    await etcdDelete(etcd, `${PREFIX}certificates/leak2`);
    await bothClear('certificates/leak2');
    assert.equal((await call(a, 'DELETE', '/v1/certificates/leak')).status, 204);
  });

  it('ETCD_PASSWORD is in no answer nor log of a node whose etcd refuses its login', async () => {
    const password = 'etcd-password-must-not-leak-7f3a9c';
    const node = await startFleetNode({
      name: 'edge-c',
      address: '127.0.0.23',
      endpoints: etcd.endpoints,
      prefix: '/portico-attack-auth/',
      portRange: `${RANGE.from}-${RANGE.to}`,
      httpPort: HTTP_PORT,
      httpsPort: HTTPS_PORT,
      env: { ETCD_USERNAME: 'root', ETCD_PASSWORD: password, LOG_LEVEL: 'debug' },
    });
    try {
      // Its health loop (every second) finds etcd refusing it, and says so once.
      const told = await eventually(() => /etcd does not answer/.test(node.portico.output()), 5000, 100);
      assert.ok(told, `the log says etcd does not answer:\n${node.portico.output().slice(-2000)}`);
      const texts: string[] = [node.portico.output()];
      for (const route of ['/v1/fleet', '/v1/status', '/metrics', '/v1/streams']) {
        const answer = await call(node, 'GET', route);
        texts.push(`${route} ${answer.status} ${JSON.stringify(Object.fromEntries(answer.headers))} ${answer.text}`);
      }
      const change = await call(node, 'POST', '/v1/streams', { port: 30530, upstreams: [{ address: '127.0.0.1:1' }] });
      texts.push(`${change.status} ${change.text}`);
      // etcd without authentication refuses the login: the node never reaches it, and says so.
      assert.equal(change.status, 503, change.text);
      assert.equal(change.body.error.kind, 'FleetUnavailable');
      assert.equal((await call(node, 'GET', '/v1/fleet')).headers.get('portico-stale'), 'true');
      assert.match(node.portico.output(), /authentication is not enabled/, 'with etcd\'s reason');
      texts.push(node.portico.output());
      const all = texts.join('\n');
      assert.match(all, /edge-c/, 'the answers were read');
      assert.ok(!all.includes(password), `ETCD_PASSWORD leaked:\n${all.slice(0, 4000)}`);
      assert.ok(!all.includes(FLEET_SECRET), 'FLEET_SECRET leaked');
    } finally {
      await node.stop();
    }
  });

  it('a file written by hand on the answering node that only its whole tree refuses: the change still reaches etcd (its check tests the new file, as its batches do), the other node serves it, the answering node reports nginx\'s refusal and keeps serving the rest', async () => {
    const port = 30531;
    const backend = await startTaggedServer('by-hand');
    backends.push(backend);
    // An upstream named as Portico names this port's: a file Portico did not write, so it is left alone.
    const handFile = path.join(a.stateDir, 'stream.d', 'operator-by-hand.conf');
    await writeFile(handFile, `upstream portico_stream_${port} {\n    server 127.0.0.1:9;\n}\n`);
    try {
      // Two upstreams: the stream gets an upstream block, named portico_stream_<port>.
      const created = await call(a, 'POST', '/v1/streams', { port, upstreams: [{ address: `127.0.0.1:${backend.port}` }, { address: '127.0.0.1:9', backup: true }] });
      assert.equal(created.status, 201, created.text);
      const outcomes = Object.fromEntries(created.body.fleet.nodes.map((n: { node: string; outcome: string }) => [n.node, n.outcome]));
      assert.deepEqual(outcomes, { [a.name]: 'failed', [b.name]: 'applied' }, created.text);
      const failure = created.body.fleet.nodes.find((n: { node: string }) => n.node === a.name);
      assert.match(failure.error.message, /nginx refused the new config: nginx: \[emerg\] duplicate upstream "portico_stream_30531" in .*operator-by-hand\.conf/);
      assert.ok((await etcdAll(etcd, `${PREFIX}streams/${port}`)).size === 1, 'the stream is in the route table');
      assert.equal(await whoAnswers(port, { host: b.address }), 'by-hand');
      assert.equal(await accepts(port, a.address), false);
      await assertLiveServes();
    } finally {
      await rm(handFile, { force: true });
    }
    // Removed through the other node: the route table holds no stream the test made.
    assert.equal((await call(b, 'DELETE', `/v1/streams/${port}`)).status, 204);
  });
});

describe('a fleet node with hostile settings', () => {
  it('refuses to start (exit 2) naming each variable and its rule, and prints no secret', async () => {
    const stateDir = await tempDir('fleet-settings');
    const password = 'pw-in-the-url-31337';
    const secret = 'short-secret-31337';
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NGINX_BIN: nginxBin(),
      STATE_DIR: stateDir,
      STORE: 'etcd',
      ETCD_ENDPOINTS: `http://root:${password}@127.0.0.1:1/v3`,
      NODE_NAME: 'Edge.1',
      FLEET_SECRET: secret,
    };
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: REPO, env, timeout: 20_000 }, (error, stdout, stderr) => {
        resolve({ code: child.exitCode ?? (error as { code?: number } | null)?.code ?? null, stdout, stderr });
      });
    }).finally(() => rm(stateDir, { recursive: true, force: true }));
    assert.equal(result.code, 2, `${result.stdout}${result.stderr}`);
    for (const name of ['ETCD_ENDPOINTS: must not carry a user or password', 'NODE_NAME: must be', 'FLEET_SECRET: must be at least 32 characters']) assert.ok(result.stderr.includes(name), `${name} in:\n${result.stderr}`);
    const all = `${result.stdout}${result.stderr}`;
    assert.ok(!all.includes(password), all);
    assert.ok(!all.includes(secret), all);
  });
});
