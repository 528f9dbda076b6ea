/**
 * Optimistic concurrency on /v1 (as Caddy's admin API): every resource GET answers an ETag, and a
 * PUT or DELETE whose If-Match no longer names the resource as it is answers 412 and changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { fixtureCert } from '../helpers/backends.js';
import { roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const PORT = 27700;

describe('ETag and If-Match on /v1 (managed nginx)', () => {
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho('E:');
    portico = await startInProcess({ PORT_RANGE: '27700-27709', HTTP_PORT: '27710', HTTPS_PORT: '27711', WORKER_SHUTDOWN_TIMEOUT: '3s' });
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  it('a stream: GET answers an ETag; a PUT with a stale If-Match answers 412 and leaves the stream as it was', async () => {
    const api = request(portico.app);
    const created = await api.post('/v1/streams').send({ port: PORT, backend: `127.0.0.1:${echo.port}` }).expect(201);
    const first = (await api.get(`/v1/streams/${PORT}`).expect(200)).headers.etag as string;
    assert.match(first, /^"[A-Za-z0-9_-]{22}"$/);
    assert.equal(created.headers.etag, first, 'the POST answers the same tag as a GET');

    const replaced = await api.put(`/v1/streams/${PORT}`).set('If-Match', first).send({ backend: `127.0.0.1:${echo.port}`, idleTimeout: '1m' }).expect(200);
    const second = replaced.headers.etag as string;
    assert.notEqual(second, first);
    assert.equal((await api.get(`/v1/streams/${PORT}`)).headers.etag, second);

    const stale = await api.put(`/v1/streams/${PORT}`).set('If-Match', first).send({ backend: '127.0.0.1:9' }).expect(412);
    assert.equal(stale.body.error.kind, 'PreconditionFailed');
    assert.match(stale.body.error.message, /has changed/);
    await api.delete(`/v1/streams/${PORT}`).set('If-Match', `W/${second}`).expect(412);
    assert.deepEqual((await api.get(`/v1/streams/${PORT}`)).body, { port: PORT, upstreams: [{ address: `127.0.0.1:${echo.port}` }], idleTimeout: '1m' });
    assert.equal(await roundTrip(PORT, 'x', { expectBytes: 3 }), 'E:x');

    await api.put(`/v1/streams/${PORT + 1}`).set('If-Match', '*').send({ backend: `127.0.0.1:${echo.port}` }).expect(412);
    await api.delete(`/v1/streams/${PORT}`).set('If-Match', `"other", ${second}`).expect(204);
  });

  it('an app: a DELETE with a stale If-Match answers 412; with the current tag it succeeds', async () => {
    const api = request(portico.app);
    const app = { name: 'tagged', serverNames: ['tagged.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${echo.port}` }] }] };
    const first = (await api.post('/v1/apps').send(app).expect(201)).headers.etag as string;
    assert.equal((await api.get('/v1/apps/tagged').expect(200)).headers.etag, first);
    const second = (await api.put('/v1/apps/tagged').set('If-Match', first).send({ ...app, default: true }).expect(200)).headers.etag as string;
    await api.delete('/v1/apps/tagged').set('If-Match', first).expect(412);
    assert.equal((await api.get('/v1/apps/tagged').expect(200)).body.default, true);
    await api.delete('/v1/apps/tagged').set('If-Match', second).expect(204);
  });

  it('a certificate: a PUT with a stale If-Match answers 412 and keeps the stored certificate', async () => {
    const api = request(portico.app);
    const portico_ = fixtureCert('portico');
    const a = fixtureCert('a');
    const first = (await api.post('/v1/certificates').send({ id: 'tagged', certificate: portico_.cert, key: portico_.key }).expect(201)).headers.etag as string;
    assert.equal((await api.get('/v1/certificates/tagged').expect(200)).headers.etag, first);
    const second = (await api.put('/v1/certificates/tagged').set('If-Match', first).send({ certificate: a.cert, key: a.key }).expect(200)).headers.etag as string;
    assert.notEqual(second, first);
    await api.put('/v1/certificates/tagged').set('If-Match', first).send({ certificate: portico_.cert, key: portico_.key }).expect(412);
    assert.equal((await api.get('/v1/certificates/tagged').expect(200)).body.subject, 'CN=a.example.com');
    await api.delete('/v1/certificates/tagged').set('If-Match', second).expect(204);
  });

  it('If-None-Match: * on PUT creates only: 201 when absent, then 412 that changes nothing, for a stream, an app and a certificate', async () => {
    const api = request(portico.app);
    const port = PORT + 2;
    await api.put(`/v1/streams/${port}`).set('If-None-Match', '*').send({ backend: `127.0.0.1:${echo.port}` }).expect(201);
    const refused = await api.put(`/v1/streams/${port}`).set('If-None-Match', '*').send({ backend: '127.0.0.1:9', idleTimeout: '1m' }).expect(412);
    assert.equal(refused.body.error.kind, 'PreconditionFailed');
    assert.match(refused.body.error.message, /already exists/);
    // A dry run sees the same precondition.
    await api.put(`/v1/streams/${port}?dryRun=true`).set('If-None-Match', '*').send({ backend: '127.0.0.1:9' }).expect(412);
    assert.deepEqual((await api.get(`/v1/streams/${port}`)).body, { port, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(await roundTrip(port, 'y', { expectBytes: 3 }), 'E:y');
    // A tag list: "not if it is still this version".
    const tag = (await api.get(`/v1/streams/${port}`)).headers.etag as string;
    await api.put(`/v1/streams/${port}`).set('If-None-Match', `W/${tag}`).send({ backend: '127.0.0.1:9' }).expect(412);
    await api.put(`/v1/streams/${port}`).set('If-None-Match', '"other"').send({ backend: `127.0.0.1:${echo.port}`, idleTimeout: '2m' }).expect(200);
    await api.delete(`/v1/streams/${port}`).expect(204);

    const app = { serverNames: ['once.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${echo.port}` }] }] };
    await api.put('/v1/apps/once').set('If-None-Match', '*').send(app).expect(201);
    await api.put('/v1/apps/once').set('If-None-Match', '*').send({ ...app, default: true }).expect(412);
    assert.equal((await api.get('/v1/apps/once').expect(200)).body.default, undefined);
    await api.delete('/v1/apps/once').expect(204);

    const a = fixtureCert('a');
    const b = fixtureCert('b');
    await api.put('/v1/certificates/once').set('If-None-Match', '*').send({ certificate: a.cert, key: a.key }).expect(201);
    await api.put('/v1/certificates/once').set('If-None-Match', '*').send({ certificate: b.cert, key: b.key }).expect(412);
    assert.equal((await api.get('/v1/certificates/once').expect(200)).body.subject, 'CN=a.example.com');
    await api.delete('/v1/certificates/once').expect(204);
  });
});
