/**
 * HTTP apps proven with real HTTP/1.1 through the nginx Portico manages: every app below is created
 * through /v1/apps, read back through GET as exactly what was sent, and then carries requests from a
 * client on 127.0.0.0/8 (with a Host header) to node:http backends that say who they are and echo
 * what they received. Counts come from what the backends saw.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import type { App } from '../../src/model/app.js';
import { CookieJar, openWebSocket, send, sendToBackend, startBackend, type Backend, type SendOptions } from '../helpers/http.js';
import { eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess, isJournalFile } from '../helpers/portico.js';

const HTTP = 27410;
const HTTPS = 27411;

type Route = App['routes'][number];
const tally = (names: string[]): Record<string, number> =>
  names.reduce<Record<string, number>>((counts, n) => ({ ...counts, [n]: (counts[n] ?? 0) + 1 }), {});

/** Every file under `dir` (recursively) with its bytes; a directory as "<dir>". */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const names = ((await readdir(dir, { recursive: true })) as string[]).filter((name) => !isJournalFile(name)).sort();
  const files = new Map<string, string>();
  for (const name of names) files.set(name, await readFile(path.join(dir, name)).then((b) => b.toString('base64'), () => '<dir>'));
  return files;
}

describe('HTTP apps through a managed nginx', () => {
  let portico: InProcess;
  const cleanups: Array<() => Promise<void>> = [];
  /** The apps that exist, as sent. */
  const created = new Map<string, App>();

  const backend = async (name: string): Promise<Backend> => {
    const started = await startBackend(name);
    cleanups.push(() => started.close());
    return started;
  };
  const up = (...backends: Backend[]) => backends.map((b) => ({ address: `127.0.0.1:${b.port}` }));
  const appsDir = () => portico.settings.httpDir; // <stateDir>/http.d in managed mode
  const to = (host: string, options: Partial<SendOptions> = {}) => sendToBackend({ port: HTTP, host, ...options });
  const statusOf = async (host: string, options: Partial<SendOptions> = {}) => (await send({ port: HTTP, host, ...options })).status;

  /** POSTs `app` and checks GET /v1/apps/:name answers exactly the JSON that was sent. */
  const create = async (app: App): Promise<void> => {
    const res = await request(portico.app).post('/v1/apps').send(app);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    created.set(app.name, app);
    assert.deepEqual((await request(portico.app).get(`/v1/apps/${app.name}`).expect(200)).body, app);
  };
  /** An app named `name` serving `name`.test with `routes`. */
  const simple = (name: string, routes: Route[], extra: Partial<App> = {}): App => ({ name, serverNames: [`${name}.test`], routes, ...extra });

  /** A refused mutation: its status, the error's kind and field, and the apps' directory untouched. */
  const refused = async (call: () => request.Test, status: number, kind: string, field: string): Promise<string> => {
    const files = await snapshot(appsDir());
    const res = await call();
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.error?.kind, kind);
    assert.equal(res.body.error?.field, field);
    assert.deepEqual(await snapshot(appsDir()), files, 'the apps directory changed');
    return res.body.error.message as string;
  };

  let alpha: Backend;
  let beta: Backend;

  before(async () => {
    portico = await startInProcess({ PORT_RANGE: '27400-27409', HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS), WORKER_SHUTDOWN_TIMEOUT: '3s' });
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await portico?.stop();
  });

  it('two apps are routed by Host: each of their server names reaches its own backend, with or without a port in Host', async () => {
    [alpha, beta] = [await backend('alpha'), await backend('beta')];
    await create({ name: 'alpha', serverNames: ['alpha.test', 'www.alpha.test'], routes: [{ upstreams: up(alpha) }] });
    await create(simple('beta', [{ upstreams: up(beta) }]));
    const hosts = ['alpha.test', 'www.alpha.test', 'beta.test', `alpha.test:${HTTP}`, 'BETA.test'];
    const reached = await Promise.all(hosts.map(async (host) => (await to(host)).backend));
    assert.deepEqual(reached, ['alpha', 'alpha', 'beta', 'alpha', 'beta']);
    assert.deepEqual([alpha.requests(), beta.requests()], [3, 2]);
  });

  it('without a default app, an unknown Host gets 404 and reaches no backend', async () => {
    const before = alpha.requests() + beta.requests();
    assert.deepEqual(await Promise.all(['unknown.test', '127.0.0.1', 'alpha.test.evil'].map((h) => statusOf(h))), [404, 404, 404]);
    assert.equal(alpha.requests() + beta.requests(), before);
  });

  it('a new app serves every request sent as soon as POST /v1/apps answered 201 (no nginx worker with the old config still accepts)', async () => {
    const prompt = await backend('prompt');
    const app = simple('prompt', [{ upstreams: up(prompt) }]);
    const res = await request(portico.app).post('/v1/apps').send(app);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    // nginx lets the old workers accept for 100 ms after it started the new ones (ngx_msleep(100) in
    // the master's reconfigure): Portico must wait them out, since every app shares the listeners.
    const statuses = await Promise.all(Array.from({ length: 20 }, () => statusOf('prompt.test')));
    created.set('prompt', app);
    assert.deepEqual(tally(statuses.map(String)), { 200: 20 }, 'requests sent right after the 201 were answered by the old config');
  });

  it('the default app (default: true) serves an unknown Host; a second default answers 409 naming the first and writes nothing', async () => {
    const fallback = await backend('fallback');
    await create(simple('fallback', [{ upstreams: up(fallback) }], { default: true }));
    assert.equal((await to('unknown.test')).backend, 'fallback');
    assert.equal((await to('alpha.test')).backend, 'alpha');
    const body = simple('second', [{ upstreams: up(fallback) }], { default: true });
    const message = await refused(() => request(portico.app).post('/v1/apps').send(body), 409, 'Conflict', 'default');
    assert.match(message, /app "fallback" is already the default/);
    assert.equal((await request(portico.app).get('/v1/apps/second')).status, 404);
  });

  it('a server name another app serves answers 409 naming that app, writes nothing, and the name keeps reaching its app', async () => {
    const body = { name: 'thief', serverNames: ['thief.test', 'beta.test'], routes: [{ upstreams: up(alpha) }] };
    const message = await refused(() => request(portico.app).post('/v1/apps').send(body), 409, 'Conflict', 'serverNames');
    assert.match(message, /server name "beta\.test" is served by app "beta"/);
    assert.equal((await to('beta.test')).backend, 'beta');
  });

  it('the longest path prefix wins: /api/v2 over /api over the fallback route', async () => {
    const [api, v2, rest] = [await backend('api'), await backend('v2'), await backend('rest')];
    await create(simple('paths', [{ path: '/api', upstreams: up(api) }, { path: '/api/v2', upstreams: up(v2) }, { upstreams: up(rest) }]));
    const paths = ['/api/v2/x', '/api/v2', '/api/x', '/api/v2x', '/other', '/'];
    const reached = await Promise.all(paths.map(async (p) => `${p} ${(await to('paths.test', { path: p })).backend}`));
    assert.deepEqual(reached, ['/api/v2/x v2', '/api/v2 v2', '/api/x api', '/api/v2x api', '/other rest', '/ rest']);
    assert.deepEqual(v2.seen.map((r) => r.url).sort(), ['/api/v2', '/api/v2/x'], 'without replacePath the path arrives unchanged');
  });

  it('a route for /api matches /api and /api/x but not /apix, which goes to the fallback', async () => {
    const reached = await Promise.all(['/api', '/api/', '/api/x?y=1', '/apix'].map(async (p) => (await to('paths.test', { path: p })).backend));
    assert.deepEqual(reached, ['api', 'api', 'api', 'rest']);
  });

  it('replacePath "/" makes /api/x?q=1 arrive at the backend as /x?q=1, and /api as /', async () => {
    const stripped = await backend('stripped');
    await create(simple('rewrite', [{ path: '/api', replacePath: '/', upstreams: up(stripped) }]));
    const urls = await Promise.all(['/api/x?q=1', '/api', '/api/a/b/'].map(async (p) => (await to('rewrite.test', { path: p })).url));
    assert.deepEqual(urls, ['/x?q=1', '/', '/a/b/']);
  });

  it('without a fallback route, a path no route matches gets 404 and reaches no backend', async () => {
    const only = await backend('only');
    await create(simple('noroot', [{ path: '/only', upstreams: up(only) }]));
    assert.deepEqual(await Promise.all(['/', '/elsewhere', '/onlyx'].map((p) => statusOf('noroot.test', { path: p }))), [404, 404, 404]);
    assert.equal(only.requests(), 0);
    assert.equal((await to('noroot.test', { path: '/only/x' })).backend, 'only');
  });

  it('upstream requests carry the client Host, X-Forwarded-For, X-Forwarded-Proto http and X-Real-IP', async () => {
    const echo = await backend('echo');
    await create(simple('echo', [{ upstreams: up(echo) }]));
    const plain = await to('echo.test', { localAddress: '127.0.0.7' });
    const forwarded = await to('echo.test', { localAddress: '127.0.0.7', headers: { 'x-forwarded-for': '203.0.113.9' } });
    const pick = (h: Record<string, unknown>) => [h.host, h['x-forwarded-for'], h['x-forwarded-proto'], h['x-real-ip']];
    assert.deepEqual(pick(plain.headers), ['echo.test', '127.0.0.7', 'http', '127.0.0.7']);
    assert.deepEqual(pick(forwarded.headers), ['echo.test', '203.0.113.9, 127.0.0.7', 'http', '127.0.0.7']);
  });

  it('connections to upstreams are kept alive: 20 sequential requests reach the backend on at most 10 TCP connections', async () => {
    const kept = await backend('kept');
    await create(simple('keepalive', [{ upstreams: up(kept) }]));
    for (let i = 0; i < 20; i += 1) assert.equal((await to('keepalive.test', { path: `/${i}` })).backend, 'kept');
    // Each nginx worker opens its own connection: with keep-alive off there would be 20.
    assert.equal(kept.requests(), 20);
    assert.ok(kept.connections() >= 1 && kept.connections() <= 10, `20 requests on ${kept.connections()} connections`);
  });

  /** Which backend answers `count` sequential requests to `host`. */
  const who = async (host: string, count: number, options: Partial<SendOptions> = {}): Promise<string[]> => {
    const names: string[] = [];
    for (let i = 0; i < count; i += 1) names.push((await to(host, options)).backend);
    return names;
  };
  const three = async (prefix: string) => [await backend(`${prefix}1`), await backend(`${prefix}2`), await backend(`${prefix}3`)];

  it('round robin over three backends gives each a third of 300 requests (within 5 points)', async () => {
    const backends = await three('rr');
    await create(simple('rr', [{ upstreams: up(...backends), balance: 'round_robin' }]));
    const counts = tally(await who('rr.test', 300));
    for (const b of backends) assert.ok(Math.abs((counts[b.name] ?? 0) / 300 - 1 / 3) <= 0.05, JSON.stringify(counts));
  });

  it('sticky keeps a client that returns its cookie on one backend for 50 requests, and two clients can land on different backends', async () => {
    const backends = await three('st');
    await create(simple('sticky', [{ upstreams: up(...backends), balance: 'sticky' }]));
    const jar = new CookieJar();
    const first = await to('sticky.test', { jar });
    assert.match(String(first.answer.headers['set-cookie']), /^portico_sticky=[0-9a-f]{32}; Path=\/; HttpOnly; SameSite=Lax$/);
    const later = await Promise.all(Array.from({ length: 50 }, () => to('sticky.test', { jar })));
    assert.deepEqual(tally(later.map((a) => a.backend)), { [first.backend]: 50 });
    assert.ok(later.every((a) => a.answer.headers['set-cookie'] === undefined), 'a client that sends its cookie gets no new one');
    const landed = new Set([first.backend]);
    for (let i = 0; i < 30 && landed.size < 2; i += 1) {
      const other = new CookieJar();
      const [a, b] = [await to('sticky.test', { jar: other }), await to('sticky.test', { jar: other })];
      assert.equal(b.backend, a.backend, 'a fresh client stays where its first request went');
      landed.add(a.backend);
    }
    assert.ok(landed.size >= 2, `31 clients all landed on ${[...landed]}`);
  });

  it('ip_hash keeps a client address on one backend; nginx hashes the first three octets, so 127.0.0.1-20 share one and 20 /24 networks spread', async () => {
    const backends = await three('ip');
    await create(simple('iphash', [{ upstreams: up(...backends), balance: 'ip_hash' }]));
    const sameNet = new Set<string>();
    for (let i = 1; i <= 20; i += 1) {
      for (const a of await Promise.all([1, 2, 3].map(() => to('iphash.test', { localAddress: `127.0.0.${i}` })))) {
        assert.equal(a.headers['x-real-ip'], `127.0.0.${i}`);
        sameNet.add(a.backend);
      }
    }
    assert.equal(sameNet.size, 1, `127.0.0.1-20 reached ${[...sameNet]}`);
    const networks = new Set<string>();
    for (let n = 1; n <= 20; n += 1) {
      const names = new Set(await who('iphash.test', 3, { localAddress: `127.0.${n}.1` }));
      assert.equal(names.size, 1, `127.0.${n}.1 reached ${[...names]}`);
      networks.add([...names][0] as string);
    }
    assert.ok(networks.size > 1, `20 networks all reached ${[...networks]}`);
  });

  it('random reaches each of three backends within 90 requests', async () => {
    const backends = await three('rnd');
    await create(simple('random', [{ upstreams: up(...backends), balance: 'random' }]));
    assert.deepEqual(Object.keys(tally(await who('random.test', 90))).sort(), ['rnd1', 'rnd2', 'rnd3']);
  });

  it('least_conn is accepted and, with no connection held, takes both backends in turn', async () => {
    const backends = [await backend('lc1'), await backend('lc2')];
    await create(simple('leastconn', [{ upstreams: up(...backends), balance: 'least_conn' }]));
    assert.deepEqual(Object.keys(tally(await who('leastconn.test', 10))).sort(), ['lc1', 'lc2']);
  });

  it('cache ttl 2s: the second identical GET is a HIT the backend never sees; once the ttl ran out the next GET goes through', async () => {
    const cached = await backend('cached');
    await create(simple('cache', [{ upstreams: up(cached), cache: { ttl: '2s' } }]));
    const get = () => send({ port: HTTP, host: 'cache.test', path: '/page?x=1' });
    const first = await get();
    const storedAt = performance.now();
    const second = await get();
    assert.deepEqual([first.status, first.headers['x-cache-status'], second.status, second.headers['x-cache-status']], [200, 'MISS', 200, 'HIT']);
    assert.equal(second.body, first.body);
    assert.equal(cached.requests(), 1);
    let status: unknown;
    const expired = await eventually(async () => (status = (await get()).headers['x-cache-status']) !== 'HIT', 8000, 200);
    assert.ok(expired, 'still a HIT 8 s after it was stored');
    assert.ok(status === 'EXPIRED' || status === 'MISS', String(status));
    assert.equal(cached.requests(), 2);
    assert.ok(performance.now() - storedAt >= 1500, `expired after ${Math.round(performance.now() - storedAt)} ms`);
  });

  it('websocket: true passes an upgrade on, and text messages cross nginx both ways; a route without it does not upgrade', async () => {
    const ws = await backend('ws');
    await create(simple('ws', [{ path: '/chat', upstreams: up(ws), websocket: true }, { upstreams: up(ws) }]));
    const socket = await openWebSocket({ port: HTTP, host: 'ws.test', path: '/chat' });
    try {
      assert.equal(await socket.exchange('hello'), 'ws:hello');
      assert.equal(await socket.exchange('again'), 'ws:again');
    } finally {
      socket.close();
    }
    assert.equal(ws.seen[0]?.headers.upgrade, 'websocket');
    await assert.rejects(openWebSocket({ port: HTTP, host: 'ws.test', path: '/plain' }), /answered 200, not 101/);
  });

  it('maxBodySize 1k refuses a 2 KiB POST with 413 before the backend; a small POST passes; headers are added to both answers', async () => {
    const limited = await backend('limited');
    const csp = "default-src 'self'; img-src 'none'"; // single quotes come back verbatim (the value sits inside double quotes)
    await create(simple('limits', [{ upstreams: up(limited), maxBodySize: '1k', headers: { 'X-Frame-Options': 'DENY', 'X-Test': 'a b;c', 'Content-Security-Policy': csp } }]));
    const big = await send({ port: HTTP, host: 'limits.test', method: 'POST', path: '/upload', body: 'x'.repeat(2048) });
    assert.equal(big.status, 413);
    assert.equal(limited.requests(), 0);
    const small = await to('limits.test', { method: 'POST', path: '/upload', body: 'y'.repeat(100) });
    assert.deepEqual([small.method, small.body], ['POST', 'y'.repeat(100)]);
    for (const answer of [small.answer, big]) {
      assert.deepEqual([answer.headers['x-frame-options'], answer.headers['x-test'], answer.headers['content-security-policy']], ['DENY', 'a b;c', csp]);
    }
  });

  it('a 100 KiB POST within maxBodySize 1m reaches the backend whole (nginx buffers a body over 16 KiB to a file under STATE_DIR)', async () => {
    const roomy = await backend('roomy');
    await create(simple('roomy', [{ upstreams: up(roomy), maxBodySize: '1m' }]));
    const body = 'z'.repeat(100 * 1024);
    const answer = await send({ port: HTTP, host: 'roomy.test', method: 'POST', path: '/upload', body });
    assert.equal(answer.status, 200, answer.body.slice(0, 200));
    assert.equal(roomy.seen[0]?.body, body);
  });

  it('GET /v1/apps lists every app created, as sent, sorted by name', async () => {
    const listed = (await request(portico.app).get('/v1/apps').expect(200)).body;
    assert.deepEqual(listed, [...created.values()].sort((a, b) => (a.name < b.name ? -1 : 1)));
  });

  describe('hostile app input', () => {
    const U = [{ address: '127.0.0.1:9' }];
    /** One case: what it is, the body (a raw JSON string when JS cannot build it), the field expected in the error. */
    type Case = [label: string, body: unknown, field: string];
    const app = (over: Record<string, unknown>) => ({ name: 'hostile', serverNames: ['hostile.test'], routes: [{ upstreams: U }], ...over });
    const route = (over: Record<string, unknown>) => app({ routes: [{ upstreams: U, ...over }] });
    const CASES: Case[] = [
      ...['Shop', 'my_app', 'a..b', 'a.b', 'a'.repeat(64), '-a', ''].map((v): Case => [`name ${JSON.stringify(v)}`, app({ name: v }), 'name']),
      ...['a b.test', 'a.test;', 'a.test{', '~^a.*$', 'a(b)?.test', 'a+.test', 'a..test', 'a.*.test', '*test', 'test.*', '**.a.test', '*', '$host'].map(
        (v): Case => [`server name ${JSON.stringify(v)}`, app({ serverNames: [v] }), 'serverNames.0'],
      ),
      ...['/a b', '/a;b', '/a{b', '/a}b', '/a#b', '/a$b', '/a\nb', '/a\r\nb', '/a/../b', '/..', '/a//b', '//', 'a', '/a?b', ''].map(
        (v): Case => [`path ${JSON.stringify(v)}`, route({ path: v }), 'routes.0.path'],
      ),
      ['replacePath without path', route({ replacePath: '/' }), 'routes.0.replacePath'],
      ...['/$1', '/a b', '/a;b', '/../x'].map((v): Case => [`replacePath ${JSON.stringify(v)}`, route({ path: '/a', replacePath: v }), 'routes.0.replacePath']),
      ...['X-A\r\nX-B', 'X-A\nB', 'X-"Q"', "X-'Q'", 'X-$host', 'X A', 'X-A;', 'X{'].map(
        (v): Case => [`header name ${JSON.stringify(v)}`, route({ headers: { [v]: 'x' } }), `routes.0.headers.${v}`],
      ),
      ['header name "__proto__"', `{"name":"hostile","serverNames":["hostile.test"],"routes":[{"upstreams":[{"address":"127.0.0.1:9"}],"headers":{"__proto__":"x"}}]}`, 'routes.0.headers.__proto__'],
      ...['a\r\nSet-Cookie: x=1', 'a\nb', 'say "hi"', '$host', 'a\\b', '{x}', ' lead', 'x'.repeat(513)].map(
        (v): Case => [`header value ${JSON.stringify(v.slice(0, 20))}`, route({ headers: { 'X-Test': v } }), 'routes.0.headers.X-Test'],
      ),
      ...['10x', '11g', '-1', '1.5m', '10 m', '10m;', 1024].map((v): Case => [`maxBodySize ${JSON.stringify(v)}`, route({ maxBodySize: v }), 'routes.0.maxBodySize']),
      ...['0s', '25h', '500ms', '1y', '1m;', 60].map((v): Case => [`cache ttl ${JSON.stringify(v)}`, route({ cache: { ttl: v } }), 'routes.0.cache.ttl']),
      ...[0, 1001, 1.5, '1'].map((v): Case => [`weight ${JSON.stringify(v)}`, route({ upstreams: [{ address: '127.0.0.1:9', weight: v }] }), 'routes.0.upstreams.0.weight']),
      ...['127.0.0.1:9; include /etc/passwd', 'unix:/tmp/x.sock', '127.0.0.1', 'a b:80'].map(
        (v): Case => [`address ${JSON.stringify(v)}`, route({ upstreams: [{ address: v }] }), 'routes.0.upstreams.0.address'],
      ),
      ...['hash', 'ROUND_ROBIN', 'sticky;', ''].map((v): Case => [`balance ${JSON.stringify(v)}`, route({ balance: v }), 'routes.0.balance']),
      ['an unknown top-level field', app({ extra: 1 }), 'body'],
      ['an unknown route field', route({ rewrite: '^ /etc/passwd' }), 'routes.0'],
      ['an unknown cache field', route({ cache: { ttl: '1s', key: '$uri' } }), 'routes.0.cache'],
      ['an unknown upstream field', route({ upstreams: [{ address: '127.0.0.1:9', backup: true }] }), 'routes.0.upstreams.0'],
    ];
    let target: Backend;
    let targetApp: App;
    let echo: EchoServer;
    /** A stream beside the apps: the barrage must not disturb it either. */
    const STREAM_PORT = 27409;

    before(async () => {
      target = await backend('target');
      targetApp = simple('target', [{ path: '/t', upstreams: up(target) }]);
      await create(targetApp);
      echo = await startEcho('stream:');
      await request(portico.app).post('/v1/streams').send({ port: STREAM_PORT, backend: `127.0.0.1:${echo.port}` }).expect(201);
    });
    after(async () => {
      await request(portico.app).delete(`/v1/streams/${STREAM_PORT}`);
      await echo?.close();
    });

    /** The body of a case for PUT /v1/apps/target: the name "hostile" becomes "target". */
    const named = (body: unknown): string =>
      typeof body === 'string' ? body.replace('"hostile"', '"target"') : JSON.stringify({ ...(body as object), ...((body as { name?: unknown }).name === 'hostile' && { name: 'target' }) });

    /**
     * Sends every case by POST /v1/apps or PUT /v1/apps/target; answers one line per case not refused
     * with 400 InvalidInput on its field, or after which the apps' directory is not byte-for-byte the same.
     */
    const barrage = async (put: boolean): Promise<string[]> => {
      const wrong: string[] = [];
      for (const [label, body, field] of CASES) {
        const files = await snapshot(appsDir());
        const call = put ? request(portico.app).put('/v1/apps/target') : request(portico.app).post('/v1/apps');
        const res = await call.set('content-type', 'application/json').send(put ? named(body) : typeof body === 'string' ? body : JSON.stringify(body));
        if (res.status !== 400 || res.body?.error?.field !== field || res.body?.error?.kind !== 'InvalidInput') {
          wrong.push(`${label}: answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}, expected 400 on "${field}"`);
        }
        if (!isDeepStrictEqual(await snapshot(appsDir()), files)) wrong.push(`${label}: changed the apps directory`);
      }
      return wrong;
    };
    const stillServes = async (): Promise<void> => {
      assert.deepEqual((await request(portico.app).get('/v1/apps/target').expect(200)).body, targetApp);
      assert.equal((await to('target.test', { path: '/t/x' })).backend, 'target');
      assert.equal(await roundTrip(STREAM_PORT, 'still here', { expectBytes: 'stream:still here'.length }), 'stream:still here');
    };

    it(`${CASES.length} hostile bodies on POST /v1/apps each answer 400 naming the field, write nothing, and the existing app and stream still serve`, async () => {
      assert.deepEqual(await barrage(false), []);
      await stillServes();
    });

    it(`the same ${CASES.length} bodies on PUT /v1/apps/target each answer 400 naming the field, write nothing, and leave the app unchanged and serving`, async () => {
      assert.deepEqual(await barrage(true), []);
      await stillServes();
    });

    it('a hostile name in the path of PUT, GET or DELETE /v1/apps/:name answers 400 naming "name"', async () => {
      for (const name of ['Shop', 'my_app', 'a..b', 'a'.repeat(64)]) {
        const encoded = encodeURIComponent(name);
        await refused(() => request(portico.app).put(`/v1/apps/${encoded}`).send({ serverNames: ['x.test'], routes: [{ upstreams: U }] }), 400, 'InvalidInput', 'name');
        await refused(() => request(portico.app).get(`/v1/apps/${encoded}`), 400, 'InvalidInput', 'name');
        await refused(() => request(portico.app).delete(`/v1/apps/${encoded}`), 400, 'InvalidInput', 'name');
      }
      await stillServes();
    });
  });

  it('DELETE /v1/apps/:name answers 204; then GET answers 404 and its Host reaches the default app', async () => {
    await request(portico.app).delete('/v1/apps/beta').expect(204);
    created.delete('beta');
    assert.equal((await request(portico.app).get('/v1/apps/beta')).status, 404);
    assert.equal((await to('beta.test')).backend, 'fallback');
  });

  it('once the default app is deleted, an unknown Host gets 404 again', async () => {
    await request(portico.app).delete('/v1/apps/fallback').expect(204);
    created.delete('fallback');
    assert.equal(await statusOf('unknown.test'), 404);
    assert.equal((await to('alpha.test')).backend, 'alpha');
  });

  it('deleting the last app closes HTTP_PORT and HTTPS_PORT: a TCP connect to 27410 and 27411 is refused', async () => {
    const names = [...created.keys()];
    const statuses = await Promise.all(names.map(async (name) => (await request(portico.app).delete(`/v1/apps/${name}`)).status));
    assert.deepEqual(statuses, names.map(() => 204));
    created.clear();
    assert.deepEqual((await request(portico.app).get('/v1/apps').expect(200)).body, []);
    assert.deepEqual(await Promise.all([HTTP, HTTPS].map(connectError)), ['ECONNREFUSED', 'ECONNREFUSED']);
  });
});

/** The error code of a TCP connect to 127.0.0.1:`port`, or "connected". */
function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
  });
}
