/**
 * What a hostile probe of the HTTP apps found, closed and proven through the nginx Portico manages:
 * framing headers cannot be added to answers, a shared cache keeps one user's answer from another
 * (RFC 9111 §3.5) and honours the upstream's Cache-Control, and nginx's answers do not name its
 * version. Every request is real HTTP/1.1 over 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { send, type Answer } from '../helpers/http.js';
import { nginxBin, startInProcess, type InProcess, isJournalFile } from '../helpers/portico.js';
import { execFileSync } from 'node:child_process';

const HTTP = 26410;
const HTTPS = 26411;

/** An upstream that answers with the Cache-Control its path asks for and echoes the request's headers. */
interface EchoUpstream {
  port: number;
  /** Requests it answered. */
  hits(): number;
  close(): Promise<void>;
}

async function startCacheControlUpstream(): Promise<EchoUpstream> {
  let hits = 0;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    hits += 1;
    const control = /cc=([a-z-]+)/.exec(req.url ?? '')?.[1];
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (control === 'set-cookie') headers['set-cookie'] = `session=${hits}`;
    else if (control !== undefined) headers['cache-control'] = control;
    res.writeHead(200, headers).end(JSON.stringify({ n: hits, headers: req.headers satisfies IncomingHttpHeaders }));
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Every file under `dir` with its bytes, to show a refused change wrote nothing. */
async function snapshot(dir: string): Promise<string> {
  const names = ((await readdir(dir, { recursive: true })) as string[]).filter((name) => !isJournalFile(name)).sort();
  const parts = await Promise.all(names.map(async (n) => `${n}:${await readFile(`${dir}/${n}`, 'utf8').catch(() => '<dir>')}`));
  return parts.join('\n');
}

describe('hostile probe: HTTP apps (managed nginx)', () => {
  let portico: InProcess;
  let upstream: EchoUpstream;

  before(async () => {
    upstream = await startCacheControlUpstream();
    portico = await startInProcess({ PORT_RANGE: '26400-26409', HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS), WORKER_SHUTDOWN_TIMEOUT: '3s' });
  });
  after(async () => {
    await portico?.stop();
    await upstream?.close();
  });

  const get = (host: string, path: string, headers: Record<string, string> = {}): Promise<Answer> => send({ port: HTTP, host, path, headers });
  const cacheOf = (answer: Answer): string => `${answer.status} ${String(answer.headers['x-cache-status'])}`;

  it('a framing or hop-by-hop response header, in any case, answers 400 naming it and changes nothing', async () => {
    const api = request(portico.app);
    await api.put('/v1/apps/framing').send({ serverNames: ['framing.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${upstream.port}` }] }] }).expect(201);
    const before = await snapshot(portico.settings.httpDir);
    for (const name of ['Content-Length', 'content-length', 'Transfer-Encoding', 'TRANSFER-encoding', 'Host', 'Connection', 'Keep-Alive', 'Upgrade', 'TE', 'Trailer', 'Proxy-Authenticate', 'proxy-connection']) {
      const res = await api
        .put('/v1/apps/framing')
        .send({ serverNames: ['framing.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${upstream.port}` }], headers: { 'X-Fine': 'yes', [name]: '0' } }] });
      assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.field, `routes.0.headers.${name}`);
      assert.match(res.body.error.message, /framing or hop-by-hop header/);
    }
    assert.equal(await snapshot(portico.settings.httpDir), before, 'a refused change wrote a file');
    const answer = await get('framing.test', '/');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['x-fine'], undefined, 'no refused change reached nginx');
  });

  it('a cached route: an answer to a request with Authorization or a cookie is neither served to nor stored for anyone else', async () => {
    const api = request(portico.app);
    await api.put('/v1/apps/cached').send({ serverNames: ['cached.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${upstream.port}` }], cache: { ttl: '60s' } }] }).expect(201);
    const alice = { authorization: 'Bearer alice-secret', cookie: 'session=alice-session' };

    // The issue's probe: a user's request first, then one without credentials.
    const first = await get('cached.test', '/page', alice);
    assert.equal(cacheOf(first), '200 BYPASS');
    const anonymous = await get('cached.test', '/page');
    assert.equal(cacheOf(anonymous), '200 MISS', 'the user\'s answer was stored');
    assert.doesNotMatch(anonymous.body, /alice/);
    const again = await get('cached.test', '/page');
    assert.equal(cacheOf(again), '200 HIT');
    assert.doesNotMatch(again.body, /alice/);

    // With the anonymous answer cached, a user still gets a fresh one of its own, and does not replace it.
    const hits = upstream.hits();
    for (const credentials of <Array<Record<string, string>>>[alice, { authorization: 'Basic YTpi' }, { cookie: 'session=x' }, { cookie: '0' }, { authorization: '0' }]) {
      const answer = await get('cached.test', '/page', credentials);
      assert.equal(cacheOf(answer), '200 BYPASS', JSON.stringify(credentials));
      assert.match(answer.body, new RegExp(JSON.stringify(Object.values(credentials)[0]).slice(1, -1)), 'the user got an answer to its own request');
    }
    assert.equal(upstream.hits(), hits + 5, 'each request with credentials reached the upstream');
    assert.equal(cacheOf(await get('cached.test', '/page')), '200 HIT');
    assert.doesNotMatch((await get('cached.test', '/page')).body, /alice|YTpi|session/);
  });

  it('a cached route honours the upstream\'s Cache-Control: private, no-store and no-cache answers (and one setting a cookie) are never reused', async () => {
    for (const control of ['private', 'no-store', 'no-cache', 'set-cookie']) {
      const path = `/cc?cc=${control}`;
      const hits = upstream.hits();
      const answers = [await get('cached.test', path), await get('cached.test', path), await get('cached.test', path)];
      assert.deepEqual(answers.map(cacheOf), ['200 MISS', '200 MISS', '200 MISS'], control);
      assert.equal(upstream.hits(), hits + 3, `${control}: every request reached the upstream`);
    }
    // The control: the same path without Cache-Control is cached.
    await get('cached.test', '/cc?cc=none');
    assert.equal(cacheOf(await get('cached.test', '/cc?cc=none')), '200 HIT');
  });

  it('"shareAuthenticated": true shares answers to requests with credentials, as the route says', async () => {
    const api = request(portico.app);
    const app = { serverNames: ['shared.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${upstream.port}` }], cache: { ttl: '60s', shareAuthenticated: true } }] };
    await api.put('/v1/apps/shared').send(app).expect(201);
    assert.deepEqual((await api.get('/v1/apps/shared').expect(200)).body, { name: 'shared', ...app });
    assert.equal(cacheOf(await get('shared.test', '/p', { authorization: 'Bearer bob' })), '200 MISS');
    const reused = await get('shared.test', '/p');
    assert.equal(cacheOf(reused), '200 HIT');
    assert.match(reused.body, /Bearer bob/, 'the route asked for it: the answer is shared');
  });

  it('nginx\'s own answers do not name its version (server_tokens off)', async () => {
    const version = /nginx\/([\d.]+)/.exec(execFileSync('sh', ['-c', '"$0" -v 2>&1', nginxBin()], { encoding: 'utf8' }))?.[1];
    assert.ok(version !== undefined, 'nginx -v names a version');
    const notFound = await get('nobody.test', '/');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.headers.server, 'nginx');
    assert.ok(!notFound.body.includes(version), notFound.body);
    assert.match(notFound.body, /<center>nginx<\/center>/);
  });
});
