/**
 * What a hostile probe found: a stream could publish Portico's own API, or feed itself (5 held
 * connections then starved nginx's workers), and an app could proxy to the API or to the apps' own
 * listeners. Each spelling of this host is refused with 400 naming the field and why, nothing is
 * written, and nginx serves what it served; inside the single writer, so two changes that would
 * close a ring between them cannot both pass.
 */
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { isThisHost } from '../../src/model/loopback.js';
import { systemHostProbe } from '../../src/ports/host-addresses.js';
import { accepts, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 26500;
const API = 26520;
const HTTP = 26510;
const HTTPS = 26511;

/** Every file of the streams' and apps' directories with its text. */
async function files(portico: InProcess): Promise<string> {
  const out: string[] = [];
  for (const dir of [portico.settings.streamDir, portico.settings.httpDir]) {
    for (const name of ((await readdir(dir).catch(() => [])) as string[]).sort()) out.push(`${dir}/${name}:${await readFile(`${dir}/${name}`, 'utf8').catch(() => '')}`);
  }
  return out.join('\n');
}

describe('hostile probe: upstreams that lead back into this host (managed nginx)', () => {
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho('E:');
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 9}`, BIND_PORT: String(API), HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS), WORKER_SHUTDOWN_TIMEOUT: '3s' });
    // A working stream beside the refused ones: it must keep serving.
    await request(portico.app).put(`/v1/streams/${FROM + 9}`).send({ backend: `127.0.0.1:${echo.port}` }).expect(201);
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  /** Sends `send`, expects 400 on `field` with `reason`, and checks that nothing changed. */
  async function refused(send: () => PromiseLike<request.Response>, field: string, reason: RegExp): Promise<void> {
    const before = await files(portico);
    const res = await send();
    assert.equal(res.status, 400, JSON.stringify(res.body));
    const error = res.body.error ?? res.body;
    assert.equal(error.field, field, JSON.stringify(res.body));
    assert.match(error.message, reason);
    assert.equal(await files(portico), before, 'a refused change wrote a file');
  }

  it('a stream to Portico\'s API, in every spelling of this host, answers 400 naming the field; the port stays closed', async () => {
    const api = request(portico.app);
    const spellings = ['127.0.0.1', '127.0.0.2', '0.0.0.0', 'localhost', 'LocalHost', '[::1]', '[::]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[0:0:0:0:0:0:0:1]', '0x7f.0.0.1', '0x7f000001'];
    for (const host of spellings) {
      await refused(() => api.post('/v1/streams').send({ port: FROM, backend: `${host}:${API}` }), 'backend', /is Portico's own API \(BIND_PORT 26520 on this host\): this stream would expose it to every client of port 26500/);
    }
    await refused(() => api.put(`/v1/streams/${FROM}`).send({ upstreams: [{ address: `127.0.0.1:${echo.port}` }, { address: `localhost:${API}`, backup: true }] }), 'upstreams.1.address', /Portico's own API/);
    await refused(
      () => api.post('/v1/streams').send({ port: FROM, sni: { routes: [{ serverName: 'a.example.com', upstreams: [{ address: `127.0.0.1:${echo.port}` }] }], default: [{ address: `[::1]:${API}` }] } }),
      'sni.default.0.address',
      /Portico's own API/,
    );
    await refused(() => api.get(`/createstream/${FROM}/127.0.0.1:${API}`), 'backend', /Portico's own API/);
    // Allocation too: the port is only known inside the writer.
    await refused(() => api.post('/v1/streams').send({ backend: `127.0.0.1:${API}` }), 'backend', /this stream would expose it to every client of port 26500/);
    assert.equal(await accepts(FROM), false);
    assert.equal(await roundTrip(FROM + 9, 'ok', { expectBytes: 4 }), 'E:ok');
  });

  it('a name of this host from /etc/hosts is resolved as nginx would resolve it', async (t) => {
    const name = hostname().toLowerCase();
    const resolved = await lookup(name, { all: true }).catch(() => []);
    if (!/^[a-z0-9-]+$/.test(name) || !resolved.some((a) => isThisHost(a.address, systemHostProbe.addresses()))) {
      t.skip(`this machine's name "${name}" does not resolve to this host`);
      return;
    }
    await refused(() => request(portico.app).post('/v1/streams').send({ port: FROM, backend: `${name}:${API}` }), 'backend', new RegExp(`"${name}" resolves to`));
  });

  it('a stream whose backend is its own listener answers 400; so does the one that closes a ring of streams', async () => {
    const api = request(portico.app);
    for (const host of ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]', '127.9.9.9']) {
      await refused(() => api.post('/v1/streams').send({ port: FROM + 1, backend: `${host}:${FROM + 1}` }), 'backend', /is this stream's own listener \(port 26501 on this host\)/);
    }
    await refused(() => api.post('/v1/streams').send({ port: FROM + 1, protocol: 'udp', backend: `127.0.0.1:${FROM + 1}` }), 'backend', /own listener/);
    assert.equal(await accepts(FROM + 1), false);

    // A chain is fine: 26502 → 26503 → echo.
    await api.post('/v1/streams').send({ port: FROM + 3, backend: `127.0.0.1:${echo.port}` }).expect(201);
    await api.post('/v1/streams').send({ port: FROM + 2, backend: `127.0.0.1:${FROM + 3}` }).expect(201);
    assert.equal(await roundTrip(FROM + 2, 'chain', { expectBytes: 7 }), 'E:chain');
    // Closing the ring is not.
    await refused(() => api.put(`/v1/streams/${FROM + 3}`).send({ backend: `localhost:${FROM + 2}` }), 'backend', /leads back to this stream through stream 26502: connections would go round until nginx runs out of connections/);
    await api.post('/v1/streams').send({ port: FROM + 4, upstreams: [{ address: `127.0.0.1:${FROM + 2}` }] }).expect(201);
    await refused(() => api.put(`/v1/streams/${FROM + 3}`).send({ backend: `127.0.0.1:${FROM + 4}` }), 'backend', /through stream 26504, then stream 26502/);
    assert.equal(await roundTrip(FROM + 2, 'still', { expectBytes: 7 }), 'E:still');
    for (const port of [FROM + 2, FROM + 3, FROM + 4]) await api.delete(`/v1/streams/${port}`).expect(204);
  });

  it('two changes that would close a ring between them, sent at once, cannot both pass', async () => {
    const api = request(portico.app);
    const [a, b] = await Promise.all([
      api.post('/v1/streams').send({ port: FROM + 5, backend: `127.0.0.1:${FROM + 6}` }),
      api.post('/v1/streams').send({ port: FROM + 6, backend: `127.0.0.1:${FROM + 5}` }),
    ]);
    assert.deepEqual([a.status, b.status].sort(), [201, 400], JSON.stringify([a.body, b.body]));
    assert.match((a.status === 400 ? a : b).body.error.message, /leads back to this stream/);
    for (const port of [FROM + 5, FROM + 6]) await api.delete(`/v1/streams/${port}`);
  });

  it('an app to Portico\'s API or to the apps\' own listeners answers 400 naming the field; a stream may lead to the apps', async () => {
    const api = request(portico.app);
    const app = (address: string) => ({ serverNames: ['loop.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${echo.port}` }] }, { path: '/x', upstreams: [{ address }] }] });
    await refused(() => api.put('/v1/apps/loop').send(app(`127.0.0.1:${API}`)), 'routes.1.upstreams.0.address', /Portico's own API \(BIND_PORT 26520 on this host\): this app would expose it/);
    await refused(() => api.put('/v1/apps/loop').send(app(`localhost:${HTTP}`)), 'routes.1.upstreams.0.address', /the apps' own listener \(HTTP_PORT 26510 on this host\): each request would come back to this app/);
    await refused(() => api.put('/v1/apps/loop').send(app(`[::ffff:127.0.0.1]:${HTTPS}`)), 'routes.1.upstreams.0.address', /HTTPS_PORT 26511/);
    await refused(() => api.post('/v1/apps').send({ name: 'loop', ...app(`0.0.0.0:${HTTP}`) }), 'routes.1.upstreams.0.address', /HTTP_PORT/);
    await api.put('/v1/apps/loop').send(app(`127.0.0.1:${echo.port}`)).expect(201);
    // A stream in front of the apps' listener is a way to publish them on another port, not a loop.
    await api.post('/v1/streams').send({ port: FROM + 7, backend: `127.0.0.1:${HTTP}` }).expect(201);
    assert.ok(await accepts(FROM + 7));
  });
});
