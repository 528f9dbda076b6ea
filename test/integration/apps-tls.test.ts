/**
 * The TLS features of HTTP apps — uploaded certificates chosen by SNI, redirects, HTTP/2 by ALPN, the
 * Host/SNI check, mutual TLS, Alt-Svc for HTTP/3 — proven with real TLS clients through a real managed
 * nginx, against node:http backends that say who they are. The QUIC handshake itself is tested
 * elsewhere. Uses HTTP_PORT 27510, HTTPS_PORT 27511 (and PORT_RANGE 27500-27509, unused).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { childPids, commandLine } from '../../src/proc.js';
import { fixtureCert, fixturePem } from '../helpers/backends.js';
import { eventually } from '../helpers/net.js';
import { nginxMasters, startInProcess, type InProcess } from '../helpers/portico.js';
import {
  h2Get,
  handshakeFailure,
  httpGet,
  httpsGet,
  negotiatedAlpn,
  seenBy,
  startHttpBackend,
  type Answer,
  type HttpBackend,
} from '../helpers/tls-http.js';

const HTTP_PORT = 27510;
const HTTPS_PORT = 27511;
const CA = fixturePem('ca.crt');
const PORTICO = fixtureCert('portico');
const A = fixtureCert('a');
const B = fixtureCert('b');
const CLIENT = fixtureCert('client');
const OTHER_CLIENT = fixtureCert('other-client');

type AppBody = { name: string } & Record<string, unknown>;

const fingerprintOf = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** The workers of the managed master that still accept connections (nginx retitles one it told to quit). */
async function acceptingWorkers(stateDir: string): Promise<number[]> {
  const [master] = await nginxMasters(stateDir);
  assert.ok(master !== undefined, 'no nginx master runs');
  const workers = [...(await childPids(master))];
  const titles = await Promise.all(workers.map((pid) => commandLine(pid)));
  return workers.filter((_, i) => titles[i] === 'nginx: worker process');
}

/** The backend that answered, or a failure showing the whole answer. */
function backendOf(answer: Answer): string {
  const seen = seenBy(answer);
  assert.ok(seen !== null, `no backend answered: ${answer.status} ${answer.body}`);
  return seen.who;
}

describe('HTTP apps over TLS (managed nginx, real clients)', () => {
  let portico: InProcess;
  const backends = new Map<string, HttpBackend>();
  /** Certificate id → the fingerprint POST /v1/certificates answered. */
  const uploaded = new Map<string, string>();

  const api = () => request(portico.app);
  const backend = (who: string) => {
    const server = backends.get(who);
    assert.ok(server !== undefined, `no backend "${who}"`);
    return server;
  };
  const routes = (who: string) => [{ upstreams: [{ address: `127.0.0.1:${backend(who).port}` }] }];
  const reached = (): number => [...backends.values()].reduce((sum, b) => sum + b.requests(), 0);

  /**
   * POSTs an app, checks that GET /v1/apps/:name answers exactly the JSON that was posted, and waits
   * (at most 5 s) until no worker of the previous config accepts connections. Portico should have
   * waited before answering; it does not for a created app (see the test "a request sent as soon as
   * POST /v1/apps answers 201..."), and the other tests would fail on that bug instead of proving theirs.
   */
  async function createApp(app: AppBody): Promise<void> {
    const previous = await acceptingWorkers(portico.stateDir);
    await api().post('/v1/apps').send(app).expect(201);
    assert.deepEqual((await api().get(`/v1/apps/${app.name}`).expect(200)).body, app);
    const drained = async () => !(await acceptingWorkers(portico.stateDir)).some((pid) => previous.includes(pid));
    assert.ok(await eventually(drained, 5000, 20), `workers of the config before app "${app.name}" still accept connections 5 s later`);
  }
  /** Creates an app another test may have created already (each test can run alone). */
  async function ensureApp(app: AppBody): Promise<void> {
    const res = await api().get(`/v1/apps/${app.name}`);
    if (res.status === 200) assert.deepEqual(res.body, app);
    else await createApp(app);
  }

  // The apps of these tests: each backend is named for the app that routes to it.
  const tlsApp = (name: string, serverName: string, tls: Record<string, unknown>): AppBody => ({ name, serverNames: [serverName], routes: routes(name), tls });
  const SHOP = () => tlsApp('shop', 'shop.b.example.com', { certificate: 'wild-b' });
  const PORTAL = () => tlsApp('portal', 'portico.test', { certificate: 'edge' });
  const GUARDED = () => tlsApp('guarded', 'localhost', { certificate: 'edge', clientCa: 'test-ca' });
  const QUICK = () => tlsApp('quick', 'quick.b.example.com', { certificate: 'wild-b', http3: true, altSvcMaxAge: 3600 });

  before(async () => {
    for (const who of ['shop', 'portal', 'fast', 'plain-h1', 'moved', 'guarded', 'quick', 'holder', 'rotating', 'prompt']) {
      backends.set(who, await startHttpBackend(who));
    }
    portico = await startInProcess({ PORT_RANGE: '27500-27509', HTTP_PORT: `${HTTP_PORT}`, HTTPS_PORT: `${HTTPS_PORT}`, WORKER_SHUTDOWN_TIMEOUT: '3s' });
    const certificates = [
      { id: 'wild-b', certificate: B.cert, key: B.key },
      { id: 'edge', certificate: PORTICO.cert, key: PORTICO.key },
      // The trust anchor of mutual TLS: the CA alone, without its key.
      { id: 'test-ca', certificate: CA },
    ];
    for (const body of certificates) {
      const res = await api().post('/v1/certificates').send(body).expect(201);
      uploaded.set(body.id, res.body.fingerprint as string);
    }
  });
  after(async () => {
    try {
      await portico?.stop();
    } finally {
      await Promise.all([...backends.values()].map((b) => b.close()));
    }
  });

  it('an HTTPS app serves the uploaded certificate: a client trusting the test CA gets 200 from its backend, and the peer certificate is the one uploaded', async () => {
    await createApp(SHOP());
    const answer = await httpsGet(HTTPS_PORT, { servername: 'shop.b.example.com', ca: CA, path: '/cart?id=7' });
    assert.equal(answer.status, 200);
    assert.deepEqual(seenBy(answer), { who: 'shop', method: 'GET', url: '/cart?id=7', host: 'shop.b.example.com', forwardedProto: 'https' });
    assert.equal(answer.fingerprint256, uploaded.get('wild-b'));
    assert.equal(answer.fingerprint256, fingerprintOf(B.cert));
  });

  it('two apps with different certificates on the same HTTPS port each present their own, chosen by SNI', async () => {
    await ensureApp(SHOP());
    await createApp(PORTAL());
    const portal = await httpsGet(HTTPS_PORT, { servername: 'portico.test', ca: CA });
    const shop = await httpsGet(HTTPS_PORT, { servername: 'shop.b.example.com', ca: CA });
    assert.deepEqual([portal.status, backendOf(portal), portal.fingerprint256], [200, 'portal', fingerprintOf(PORTICO.cert)]);
    assert.deepEqual([shop.status, backendOf(shop), shop.fingerprint256], [200, 'shop', fingerprintOf(B.cert)]);
  });

  it('a request sent as soon as POST /v1/apps answers 201 reaches the new app: no worker of the previous config still accepts connections', async () => {
    await ensureApp(SHOP());
    const previous = await acceptingWorkers(portico.stateDir);
    const prompt = tlsApp('prompt', 'prompt.b.example.com', { certificate: 'wild-b' });
    await api().post('/v1/apps').send(prompt).expect(201);
    const lingering = (await acceptingWorkers(portico.stateDir)).filter((pid) => previous.includes(pid));
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        httpsGet(HTTPS_PORT, { servername: 'prompt.b.example.com', ca: CA }).then(
          (answer) => `${answer.status} ${seenBy(answer)?.who}`,
          (error: Error & { code?: string }) => error.code ?? error.message,
        ),
      ),
    );
    assert.deepEqual((await api().get('/v1/apps/prompt').expect(200)).body, prompt);
    // Both in one assertion, so that a failure shows what the clients got as well.
    assert.deepEqual({ lingering, answers }, { lingering: [], answers: Array(8).fill('200 prompt') });
  });

  it('a TLS server name no app serves is refused in the handshake (ssl_reject_handshake) and reaches no backend', async () => {
    await ensureApp(SHOP());
    const reachedBefore = reached();
    const error = await handshakeFailure(HTTPS_PORT, { servername: 'unknown.example.com', rejectUnauthorized: false });
    // nginx answers the ClientHello with the TLS alert unrecognized_name (112).
    assert.match(error.message, /unrecognized name|alert number 112/i);
    assert.equal(reached(), reachedBefore);
  });

  it('httpsRedirect answers plain HTTP with 301 to https://<host>:HTTPS_PORT, path and query kept, without reaching the backend', async () => {
    await createApp(tlsApp('moved', 'moved.example.com', { certificate: 'edge', httpsRedirect: true }));
    const answer = await httpGet(HTTP_PORT, { host: 'moved.example.com', path: '/cart/items?id=7&sort=price' });
    assert.equal(answer.status, 301);
    assert.equal(answer.headers.location, `https://moved.example.com:${HTTPS_PORT}/cart/items?id=7&sort=price`);
    assert.equal(backend('moved').requests(), 0);
  });

  it('http2: true negotiates h2 by ALPN, and an HTTP/2 request gets 200 from the backend', async () => {
    await createApp(tlsApp('fast', 'fast.b.example.com', { certificate: 'wild-b', http2: true }));
    const answer = await h2Get(HTTPS_PORT, { servername: 'fast.b.example.com', ca: CA, path: '/h2?x=1' });
    assert.equal(answer.alpnProtocol, 'h2');
    assert.equal(answer.status, 200);
    assert.deepEqual(seenBy(answer), { who: 'fast', method: 'GET', url: '/h2?x=1', host: 'fast.b.example.com', forwardedProto: 'https' });
    assert.equal(await negotiatedAlpn(HTTPS_PORT, { servername: 'fast.b.example.com', ca: CA, ALPNProtocols: ['h2', 'http/1.1'] }), 'h2');
  });

  it('without http2, a client offering h2 and http/1.1 by ALPN gets http/1.1 on the same port where another app speaks h2', async () => {
    await createApp(tlsApp('plain-h1', 'h1.b.example.com', { certificate: 'wild-b' }));
    assert.equal(await negotiatedAlpn(HTTPS_PORT, { servername: 'h1.b.example.com', ca: CA, ALPNProtocols: ['h2', 'http/1.1'] }), 'http/1.1');
    const answer = await httpsGet(HTTPS_PORT, { servername: 'h1.b.example.com', ca: CA });
    assert.deepEqual([answer.status, backendOf(answer)], [200, 'plain-h1']);
  });

  it('an HTTPS request whose Host names another app than its TLS server name answers 421 and reaches no backend', async () => {
    await ensureApp(SHOP());
    await ensureApp(PORTAL());
    const reachedBefore = reached();
    const crossed = await httpsGet(HTTPS_PORT, { servername: 'portico.test', host: 'shop.b.example.com', ca: CA });
    assert.equal(crossed.status, 421);
    assert.equal(crossed.fingerprint256, fingerprintOf(PORTICO.cert));
    assert.equal(reached(), reachedBefore);
  });

  it('clientCa requires a client certificate: one signed by that CA gets 200, none gets 400, one from another CA gets 400 (the handshake completes)', async () => {
    await createApp(GUARDED());
    const trusted = await httpsGet(HTTPS_PORT, { servername: 'localhost', ca: CA, ...CLIENT });
    assert.deepEqual([trusted.status, backendOf(trusted)], [200, 'guarded']);

    const reachedBefore = backend('guarded').requests();
    const none = await httpsGet(HTTPS_PORT, { servername: 'localhost', ca: CA });
    assert.equal(none.status, 400);
    assert.match(none.body, /No required SSL certificate was sent/);
    // nginx's verify callback accepts any chain during the handshake and judges it per request.
    const stranger = await httpsGet(HTTPS_PORT, { servername: 'localhost', ca: CA, ...OTHER_CLIENT });
    assert.equal(stranger.status, 400);
    assert.match(stranger.body, /The SSL certificate error/);
    assert.equal(backend('guarded').requests(), reachedBefore);
  });

  it('the backend of an HTTPS app receives X-Forwarded-Proto: https, and http when the same app is reached over plain HTTP', async () => {
    await createApp(QUICK());
    const secure = seenBy(await httpsGet(HTTPS_PORT, { servername: 'quick.b.example.com', ca: CA }));
    const plain = seenBy(await httpGet(HTTP_PORT, { host: 'quick.b.example.com' }));
    assert.deepEqual([secure?.who, secure?.forwardedProto], ['quick', 'https']);
    assert.deepEqual([plain?.who, plain?.forwardedProto], ['quick', 'http']);
  });

  it('http3 with altSvcMaxAge 3600 makes HTTPS responses advertise Alt-Svc: h3=":HTTPS_PORT"; ma=3600, and plain HTTP ones not', async () => {
    await ensureApp(QUICK());
    const secure = await httpsGet(HTTPS_PORT, { servername: 'quick.b.example.com', ca: CA });
    assert.deepEqual([secure.status, backendOf(secure)], [200, 'quick']);
    assert.equal(secure.headers['alt-svc'], `h3=":${HTTPS_PORT}"; ma=3600`);
    const plain = await httpGet(HTTP_PORT, { host: 'quick.b.example.com' });
    assert.equal(plain.headers['alt-svc'], undefined);
  });

  it('GET /v1/certificates/:id names the apps using it in usedBy.apps, as server certificate or as clientCa; DELETE of one in use answers 409 naming the app and keeps it served', async () => {
    await api().post('/v1/certificates').send({ id: 'in-use', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    await ensureApp(GUARDED());
    await createApp(tlsApp('holder', 'holder.example.com', { certificate: 'in-use' }));
    assert.deepEqual((await api().get('/v1/certificates/in-use').expect(200)).body.usedBy, { streams: [], apps: ['holder'] });
    assert.deepEqual((await api().get('/v1/certificates/test-ca').expect(200)).body.usedBy, { streams: [], apps: ['guarded'] });

    const refused = await api().delete('/v1/certificates/in-use').expect(409);
    assert.equal(refused.body.error.kind, 'Conflict');
    assert.match(refused.body.error.message, /"holder"/);
    await api().get('/v1/certificates/in-use').expect(200);
    const still = await httpsGet(HTTPS_PORT, { servername: 'holder.example.com', rejectUnauthorized: false });
    assert.deepEqual([still.status, backendOf(still), still.fingerprint256], [200, 'holder', fingerprintOf(PORTICO.cert)]);
  });

  it('PUT of another certificate and key on the certificate an app serves answers "replaced", and new handshakes see the new certificate', async () => {
    // Served first with a certificate that does not name a.example.com; the client looks rather than checks.
    await api().post('/v1/certificates').send({ id: 'rotating-cert', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    await createApp(tlsApp('rotating', 'a.example.com', { certificate: 'rotating-cert' }));
    const first = await httpsGet(HTTPS_PORT, { servername: 'a.example.com', rejectUnauthorized: false });
    assert.deepEqual([first.status, backendOf(first), first.fingerprint256], [200, 'rotating', fingerprintOf(PORTICO.cert)]);

    const replaced = await api().put('/v1/certificates/rotating-cert').send({ certificate: A.cert, key: A.key }).expect(200);
    assert.equal(replaced.headers['portico-outcome'], 'replaced');
    assert.deepEqual(replaced.body.usedBy, { streams: [], apps: ['rotating'] });
    const rotated = await httpsGet(HTTPS_PORT, { servername: 'a.example.com', ca: CA });
    assert.deepEqual([rotated.status, backendOf(rotated), rotated.fingerprint256], [200, 'rotating', fingerprintOf(A.cert)]);
  });

  it('an app naming an unknown certificate answers 400 on tls.certificate and is not created', async () => {
    const res = await api()
      .post('/v1/apps')
      .send({ name: 'orphan', serverNames: ['orphan.example.com'], routes: routes('shop'), tls: { certificate: 'no-such-cert' } })
      .expect(400);
    assert.equal(res.body.error.field, 'tls.certificate');
    assert.match(res.body.error.message, /no-such-cert/);
    await api().get('/v1/apps/orphan').expect(404);
  });
});
