/**
 * Managed certificates against a real ACME server: Debian's pebble, resolving every name through
 * pebble-challtestsrv to 127.0.0.1 and validating HTTP-01 on Portico's HTTP_PORT, where Portico's
 * own nginx answers from the challenge folder. A certificate is created through the API; until the
 * CA issues it a placeholder serves; then the CA's certificate serves over HTTPS (HTTP/1.1 and h2)
 * and on a TLS stream, and renews itself before it expires with no failed handshake. A failing
 * challenge leaves the previous certificate serving and says why in the CA's words; a retry then
 * succeeds; a restart resumes an order a stop interrupted.
 *
 * Every process (pebble, challtestsrv, nginx) is the test's own, stopped by pid; every port is on
 * 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { http3Flags, launchChromium } from '../helpers/chromium.js';
import { startHttpBackend, type HttpBackend, h2Get, httpGet, httpsGet, servedCertificate } from '../helpers/tls-http.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { freePort, pebbleUnavailable, startPebble, type RunningPebble } from '../helpers/pebble.js';
import { exited, processRuns, spawnPortico, startInProcess, stopNginxUnder, tempDir, type ChildPortico, type InProcess } from '../helpers/portico.js';

const skip = pebbleUnavailable();


/** Has challtestsrv answer SERVFAIL for `name` (or, `on` false, answer it again): the CA cannot resolve it. */
async function breakName(pebble: RunningPebble, name: string, on: boolean): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: pebble.ports.dnsManagement, method: 'POST', path: on ? '/set-servfail' : '/clear-servfail', headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`challtestsrv answered ${res.statusCode}`))));
      },
    );
    req.on('error', reject).end(JSON.stringify({ host: `${name}.` }));
  });
}

interface Rig {
  pebble: RunningPebble;
  portico: InProcess;
  httpPort: number;
  httpsPort: number;
  trust: string;
  env: Record<string, string>;
}

async function startRig(range: string, pebbleOptions: { certificateValiditySeconds?: number; nonceRejectPercent?: number } = {}, extraEnv: Record<string, string> = {}): Promise<Rig> {
  const httpPort = await freePort();
  const httpsPort = await freePort(true);
  const pebble = await startPebble({ httpPort, ...pebbleOptions });
  const bundle = `${await tempDir('acme-ca')}/pebble-api.pem`;
  await writeFile(bundle, pebble.caBundlePem);
  const env = {
    PORT_RANGE: range,
    HTTP_PORT: String(httpPort),
    HTTPS_PORT: String(httpsPort),
    ACME_DIRECTORY_URL: pebble.directoryUrl,
    ACME_CA_BUNDLE: bundle,
    ACME_EMAIL: 'ops@portico.test',
    ACME_RETRY_MIN: '1s',
    ...extraEnv,
  };
  const portico = await startInProcess(env);
  return { pebble, portico, httpPort, httpsPort, trust: await pebble.rootPem(), env };
}

async function stopRig(rig: Rig | undefined): Promise<void> {
  await rig?.portico.stop();
  await rig?.pebble.stop();
}

const certificate = async (rig: Rig, id: string) => (await supertest(rig.portico.app).get(`/v1/certificates/${id}`).expect(200)).body;

/** Waits until the certificate's ACME status is `status` (bounded), answering its view. */
async function until(rig: Rig, id: string, status: string, timeoutMs = 30_000): Promise<Record<string, any>> {
  let last: Record<string, any> = {};
  const reached = await eventually(async () => {
    last = await certificate(rig, id);
    return last.acme?.status === status;
  }, timeoutMs, 100);
  assert.ok(reached, `certificate ${id} did not become ${status}: ${JSON.stringify(last.acme)}\n${rig.pebble.output().slice(-2000)}`);
  return last;
}

describe('ACME certificates against pebble', { skip }, () => {
  let rig: Rig | undefined;
  let backend: HttpBackend;
  let echo: EchoServer;

  before(async () => {
    rig = await startRig('30300-30309');
    backend = await startHttpBackend('shop');
    echo = await startEcho('acme-stream');
  });

  after(async () => {
    await stopRig(rig);
    await backend?.close();
    await echo?.close();
  });

  it('an app is served over HTTPS (HTTP/1.1 and h2) with the certificate the CA issued for each of its names; a placeholder serves until then', async () => {
    const r = rig as Rig;
    const api = supertest(r.portico.app);
    const created = await api.post('/v1/certificates').send({ id: 'shop', acme: { names: ['shop.test', 'www.shop.test'] } }).expect(201);
    assert.equal(created.body.acme.challenge, 'http-01');
    assert.deepEqual(created.body.acme.names, ['shop.test', 'www.shop.test']);
    assert.ok(['pending', 'valid'].includes(created.body.acme.status), created.body.acme.status);
    await api
      .post('/v1/apps')
      .send({ name: 'shop', serverNames: ['shop.test', 'www.shop.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }], tls: { certificate: 'shop', httpsRedirect: true, http2: true, http3: true } })
      .expect(201);
    const valid = await until(r, 'shop', 'valid');
    assert.equal(valid.acme.lastError, null);
    assert.match(valid.acme.issuer, /Pebble Intermediate/);
    assert.ok(Date.parse(valid.acme.nextRenewal) > Date.now() + 24 * 3600 * 1000, 'a 5-year certificate renews in years, not now');
    assert.deepEqual(valid.sans, ['DNS:shop.test', 'DNS:www.shop.test']);

    // Once the CA's certificate serves, the app is written again with its waiting redirect (a second
    // reload); the probes below start after it, when nothing more changes for this app. The redirect
    // holds for everything but the challenges, which nginx answers from disk.
    const redirected = await eventually(async () => (await httpGet(r.httpPort, { host: 'shop.test', path: '/anything' })).status === 301, 10_000, 50);
    assert.ok(redirected, 'the HTTPS redirect never applied');
    for (const name of ['shop.test', 'www.shop.test']) {
      const served = await servedCertificate(r.httpsPort, name, r.trust);
      assert.match(served.issuer, /Pebble Intermediate/);
      const h1 = await httpsGet(r.httpsPort, { servername: name, ca: r.trust });
      assert.equal(h1.status, 200);
      const h2 = await h2Get(r.httpsPort, { servername: name, ca: r.trust });
      assert.equal(h2.status, 200);
    }
    const challenge = await httpGet(r.httpPort, { host: 'shop.test', path: '/.well-known/acme-challenge/not-a-token-of-ours' });
    assert.equal(challenge.status, 404, 'a challenge path is not redirected');
    // The challenge files were removed once the CA had decided.
    assert.deepEqual((await readdir(r.portico.settings.acmeChallengeDir)).filter((f) => !f.startsWith('.')), []);
    // /v1/status shows the account and the next renewals.
    const status = (await api.get('/v1/status').expect(200)).body;
    assert.match(status.acme.account, /^https:\/\/127\.0\.0\.1:\d+\//);
    assert.equal(status.acme.directoryUrl, r.pebble.directoryUrl);
    assert.deepEqual(status.acme.challenges, ['http-01']);
    assert.deepEqual(status.acme.certificates.find((c: { id: string }) => c.id === 'shop'), { id: 'shop', status: 'valid', nextRenewal: valid.acme.nextRenewal, lastError: null });
    // And /metrics counts it.
    const metrics = (await api.get('/metrics').expect(200)).text;
    assert.match(metrics, /^portico_acme_orders_total\{outcome="issued"\} [1-9]\d*$/m);
    assert.match(metrics, /^portico_acme_certificate_status\{id="shop",status="valid"\} 1$/m);
    assert.match(metrics, new RegExp(`^portico_acme_next_order_seconds\\{id="shop"\\} ${Date.parse(valid.acme.nextRenewal) / 1000}$`, 'm'));
    // The event feed tells the story: ordered, then issued.
    const events = (await api.get('/v1/events?type=acme').expect(200)).body as Array<{ what: string; certificate: string }>;
    const mine = events.filter((e) => e.certificate === 'shop').map((e) => e.what);
    assert.deepEqual(mine.slice(0, 2), ['issued', 'ordered']);
  });

  it('Chromium gets the app over HTTP/3 (QUIC) with the certificate the CA issued', async () => {
    const r = rig as Rig;
    const leaf = (await certificate(r, 'shop')).certificate as string;
    assert.match(new X509Certificate(leaf).issuer, /Pebble Intermediate/);
    // Chromium trusts the issued leaf by its public key (--ignore-certificate-errors-spki-list): pebble's root is no system root.
    const browser = await launchChromium(http3Flags('shop.test', r.httpsPort, leaf));
    try {
      const page = await browser.browser.newPage();
      const response = await page.goto(`https://shop.test:${r.httpsPort}/`, { timeout: 15_000 });
      assert.equal(response?.status(), 200);
      assert.equal(await page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol"), 'h3');
      const served = await response?.securityDetails();
      assert.match(served?.issuer ?? '', /Pebble Intermediate/, 'the page came over the issued certificate');
    } finally {
      await browser.close();
    }
  });

  it('a TLS stream serves an ACME certificate by id', async () => {
    const r = rig as Rig;
    const api = supertest(r.portico.app);
    const stream = await api.post('/v1/streams').send({ port: 30301, tls: { certificate: 'shop' }, upstreams: [{ address: `127.0.0.1:${echo.port}` }] }).expect(201);
    assert.equal(stream.body.port, 30301);
    const served = await servedCertificate(30301, 'shop.test', r.trust);
    assert.match(served.issuer, /Pebble Intermediate/);
    assert.match(served.subjectAltName, /DNS:shop\.test/);
    const used = await certificate(r, 'shop');
    assert.deepEqual(used.usedBy, { streams: [30301], apps: ['shop'] });
  });

  it('a challenge that fails: status failed with the CA\'s words, the certificate served is unchanged; a retry succeeds', async () => {
    const r = rig as Rig;
    const api = supertest(r.portico.app);
    // The CA cannot resolve this name.
    await breakName(r.pebble, 'lost.test', true);
    await api.post('/v1/certificates').send({ id: 'lost', acme: { names: ['lost.test'] } }).expect(201);
    const failed = await until(r, 'lost', 'failed');
    assert.match(failed.acme.lastError, /acme challenge: lost\.test: urn:ietf:params:acme:error:(dns|connection|unauthorized)/);
    assert.ok(Date.parse(failed.acme.nextRenewal) > Date.now() - 1000, 'a retry is scheduled');
    // The placeholder still serves (nothing broke), and the feed says why.
    const served = await servedCertificate(r.httpsPort, 'shop.test', r.trust);
    assert.match(served.issuer, /Pebble Intermediate/, 'the other certificates keep serving');
    assert.match(failed.issuer, /Portico placeholder/);
    const events = (await api.get('/v1/events?type=acme').expect(200)).body as Array<{ what: string; certificate: string; detail?: string }>;
    const failure = events.find((e) => e.certificate === 'lost' && e.what === 'failed');
    assert.match(failure?.detail ?? '', /lost\.test/);
    // Resolvable again: the next order (asked for now) succeeds.
    await breakName(r.pebble, 'lost.test', false);
    const renewed = await api.post('/v1/certificates/lost/renew').expect(200);
    assert.equal(renewed.body.acme.status, 'valid', JSON.stringify(renewed.body.acme));
    assert.match(renewed.body.issuer, /Pebble Intermediate/);
  });

  it('an HTTPS redirect waits while the placeholder serves (plain HTTP serves the app), and applies once the CA\'s certificate is in', async () => {
    const r = rig as Rig;
    const api = supertest(r.portico.app);
    await breakName(r.pebble, 'wait.test', true);
    const routes = [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }];
    await api.post('/v1/apps').send({ name: 'wait', serverNames: ['wait.test'], routes, tls: { acme: true, httpsRedirect: true } }).expect(201);
    await until(r, 'wait_acme', 'failed');
    assert.deepEqual((await api.get('/v1/apps/wait').expect(200)).body.tls, { acme: true, httpsRedirect: true }, 'the app is as given');
    const meanwhile = await httpGet(r.httpPort, { host: 'wait.test', path: '/' });
    assert.equal(meanwhile.status, 200, 'no redirect to a certificate browsers refuse');
    assert.equal(meanwhile.body.length > 0, true);
    await breakName(r.pebble, 'wait.test', false);
    assert.equal((await api.post('/v1/certificates/wait_acme/renew').expect(200)).body.acme.status, 'valid');
    const redirected = await eventually(async () => (await httpGet(r.httpPort, { host: 'wait.test', path: '/x' })).status === 301, 10_000, 50);
    assert.ok(redirected, 'the redirect did not apply after the first issue');
    assert.equal((await httpsGet(r.httpsPort, { servername: 'wait.test', ca: r.trust })).status, 200);
    await api.delete('/v1/apps/wait').expect(204);
  });

  it('an app with "tls": {"acme": true} gets a certificate for its names, follows their changes, and takes it away with it', async () => {
    const r = rig as Rig;
    const api = supertest(r.portico.app);
    const routes = [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }];
    // A dry run cannot load a certificate that only the creation makes: it says so, and makes nothing.
    const dry = await api.post('/v1/apps?dryRun=true').send({ name: 'blog', serverNames: ['blog.test'], routes, tls: { acme: true, http2: true } }).expect(400);
    assert.equal(dry.body.error.field, 'tls.acme');
    assert.match(dry.body.error.message, /does not exist yet: Portico makes it when the app is created/);
    await api.get('/v1/certificates/blog_acme').expect(404);
    const created = await api.post('/v1/apps').send({ name: 'blog', serverNames: ['blog.test'], routes, tls: { acme: true, http2: true } }).expect(201);
    assert.deepEqual(created.body.tls, { acme: true, http2: true });
    const valid = await until(r, 'blog_acme', 'valid');
    assert.deepEqual(valid.acme.names, ['blog.test']);
    assert.deepEqual(valid.usedBy, { streams: [], apps: ['blog'] });
    assert.match((await servedCertificate(r.httpsPort, 'blog.test', r.trust)).issuer, /Pebble Intermediate/);
    assert.equal((await httpsGet(r.httpsPort, { servername: 'blog.test', ca: r.trust })).status, 200);
    assert.deepEqual((await api.get('/v1/apps/blog').expect(200)).body.tls, { acme: true, http2: true }, 'read back from the file as given');
    // It belongs to the app.
    assert.match((await api.delete('/v1/certificates/blog_acme').expect(409)).body.error.message, /belongs to app "blog"/);
    assert.equal((await api.post('/v1/certificates').send({ id: 'mine_acme', acme: { names: ['x.test'] } }).expect(400)).body.error.field, 'id');
    // A new name: ordered again, and served once issued.
    await api.put('/v1/apps/blog').send({ serverNames: ['blog.test', 'www.blog.test'], routes, tls: { acme: true, http2: true } }).expect(200);
    // (The certificate's files change at the swap; nginx serves them once the reload is done.)
    const renamed = await eventually(() => servedCertificate(r.httpsPort, 'www.blog.test', r.trust).then((served) => served.subjectAltName.includes('DNS:www.blog.test'), () => false), 30_000, 100);
    assert.ok(renamed, JSON.stringify((await certificate(r, 'blog_acme')).acme));
    assert.deepEqual((await until(r, 'blog_acme', 'valid')).acme.names, ['blog.test', 'www.blog.test']);
    // Gone with the app.
    await api.delete('/v1/apps/blog').expect(204);
    await api.get('/v1/certificates/blog_acme').expect(404);
    assert.equal((await api.get('/v1/status').expect(200)).body.acme.certificates.some((c: { id: string }) => c.id === 'blog_acme'), false);
  });

  it('refuses what a CA cannot do, naming the field: a wildcard by HTTP-01, a name twice, an unknown challenge; a PEM upload over a managed certificate', async () => {
    const r = rig as Rig;
    const api = supertest(r.portico.app);
    const wildcard = await api.post('/v1/certificates').send({ id: 'wild', acme: { names: ['*.shop.test'] } }).expect(400);
    assert.equal(wildcard.body.error.field, 'acme.names.0');
    assert.match(wildcard.body.error.message, /dns-01/);
    const twice = await api.post('/v1/certificates').send({ acme: { names: ['a.test', 'a.test'] } }).expect(400);
    assert.equal(twice.body.error.field, 'acme.names.1');
    const unknown = await api.post('/v1/certificates').send({ acme: { names: ['a.test'], challenge: 'tls-alpn-01' } }).expect(400);
    assert.equal(unknown.body.error.field, 'acme.challenge');
    const injected = await api.post('/v1/certificates').send({ acme: { names: ['a.test;\n}'] } }).expect(400);
    assert.equal(injected.body.error.field, 'acme.names.0');
    const dns = await api.post('/v1/certificates').send({ id: 'dns', acme: { names: ['*.shop.test'], challenge: 'dns-01' } }).expect(400);
    assert.equal(dns.body.error.field, 'acme.challenge');
    const upload = await api.put('/v1/certificates/shop').send({ certificate: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n' });
    assert.equal(upload.status, 409);
    assert.match(upload.body.error.message, /managed by ACME/);
    assert.equal((await api.get('/v1/certificates/wild')).status, 404, 'nothing was created');
  });
});

describe('ACME renewal and restarts against pebble', { skip }, () => {
  let rig: Rig | undefined;
  let backend: HttpBackend | undefined;

  before(async () => {
    // Certificates of 30 s: renewed when a third is left, about 20 s after they were issued.
    rig = await startRig('30310-30319', { certificateValiditySeconds: 30 });
    // HTTP-01 is answered on HTTP_PORT, which nginx listens on while an app exists (the catch-all
    // server answers the names no app serves).
    backend = await startHttpBackend('other');
    await supertest(rig.portico.app).post('/v1/apps').send({ name: 'other', serverNames: ['other.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] }).expect(201);
  });

  /** Whether the in-process Portico was stopped already (the kill -9 test does). */
  let stopped = false;

  after(async () => {
    if (!stopped) await rig?.portico.stop();
    await rig?.pebble.stop();
    await backend?.close();
  });

  it('renews before expiry: handshakes see the new serial, and none fails meanwhile', async () => {
    const r = rig as Rig;
    const api = supertest(r.portico.app);
    await api.post('/v1/certificates').send({ id: 'short', acme: { names: ['short.test'] } }).expect(201);
    await api.post('/v1/streams').send({ port: 30311, tls: { certificate: 'short' }, upstreams: [{ address: '127.0.0.1:9' }] }).expect(201);
    const first = await until(r, 'short', 'valid');
    const firstServed = await servedCertificate(30311, 'short.test', r.trust);
    assert.equal(firstServed.serial.toLowerCase(), new X509Certificate(first.certificate).serialNumber.toLowerCase());
    const lifetime = Date.parse(first.notAfter) - Date.parse(first.notBefore);
    const renewAt = Date.parse(first.acme.nextRenewal);
    assert.ok(renewAt <= Date.parse(first.notAfter) - lifetime / 3 + 1000 && renewAt >= Date.parse(first.notAfter) - lifetime / 3 - lifetime / 30 - 1000, `renewal at ${first.acme.nextRenewal} for ${first.notBefore}..${first.notAfter}`);
    // Handshake every 200 ms until a new serial is served (bounded: the renewal is due in about 20 s).
    let failures = 0;
    let handshakes = 0;
    let renewedSerial: string | undefined;
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline && renewedSerial === undefined) {
      try {
        const served = await servedCertificate(30311, 'short.test', r.trust);
        handshakes += 1;
        if (served.serial !== firstServed.serial) renewedSerial = served.serial;
      } catch {
        failures += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(renewedSerial !== undefined, 'no new certificate was served within 45 s');
    assert.equal(failures, 0, `${failures} of ${handshakes + failures} handshakes failed during the renewal`);
    const after = await certificate(r, 'short');
    assert.equal(after.acme.status, 'valid');
    assert.ok(Date.parse(after.acme.nextRenewal) > renewAt);
    const events = (await api.get('/v1/events?type=acme').expect(200)).body as Array<{ what: string; certificate: string }>;
    assert.ok(events.some((e) => e.certificate === 'short' && e.what === 'renewed'));
  });

  it('kill -9 of Portico in the middle of an order: the next Portico completes it, and only whole certificates are served', async () => {
    const r = rig as Rig;
    // The in-process Portico gives its ports to a child one that can be killed.
    await r.portico.stop();
    stopped = true;
    const stateDir = await tempDir('acme-kill');
    const env = { ...r.env, STATE_DIR: stateDir, BIND_PORT: String(await freePort()), LOG_LEVEL: 'warn' };
    const call = async (child: ChildPortico, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${child.url}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
      return { status: res.status, body: res.status === 204 ? undefined : await res.json() };
    };
    let child: ChildPortico | undefined = await spawnPortico(env);
    try {
      assert.equal((await call(child, 'POST', '/v1/apps', { name: 'other', serverNames: ['other.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${(backend as HttpBackend).port}` }] }] })).status, 201);
      // The name fails to resolve at the CA, so orders go on failing and retrying until it is fixed.
      await breakName(r.pebble, 'killed.test', true);
      assert.equal((await call(child, 'POST', '/v1/certificates', { id: 'killed', acme: { names: ['killed.test'] } })).status, 201);
      assert.equal((await call(child, 'POST', '/v1/streams', { port: 30312, tls: { certificate: 'killed' }, upstreams: [{ address: '127.0.0.1:9' }] })).status, 201);
      const first = child;
      const ordered = await eventually(async () => ((await call(first, 'GET', '/v1/events?type=acme')).body as Array<{ certificate: string }>).some((e) => e.certificate === 'killed'), 10_000, 20);
      assert.ok(ordered, 'no order started');
      process.kill(-child.pid, 'SIGKILL');
      assert.ok(await exited(child.child), 'Portico survived kill -9');
      child = undefined;
      // Meanwhile nginx serves what the files say: the placeholder, whole.
      const during = await servedCertificate(30312, 'killed.test', undefined);
      assert.match(during.issuer, /Portico placeholder/);
      await breakName(r.pebble, 'killed.test', false);
      child = await spawnPortico(env);
      const second = child;
      let view: Record<string, any> = {};
      const issued = await eventually(async () => {
        view = (await call(second, 'GET', '/v1/certificates/killed')).body as Record<string, any>;
        return view.acme?.status === 'valid';
      }, 30_000, 100);
      assert.ok(issued, `the next Portico did not complete the order: ${JSON.stringify(view.acme)}\n${second.output().slice(-2000)}`);
      const served = await servedCertificate(30312, 'killed.test', r.trust);
      assert.match(served.issuer, /Pebble Intermediate/);
      const status = (await call(second, 'GET', '/v1/status')).body as { consistent: boolean };
      assert.equal(status.consistent, true);
    } finally {
      if (child !== undefined && (await processRuns(child.pid))) {
        child.child.kill('SIGTERM');
        if (!(await exited(child.child))) process.kill(-child.pid, 'SIGKILL');
      }
      await stopNginxUnder(stateDir);
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

describe('ACME failures on the CA\'s side, against pebble', { skip }, () => {
  const rigs: Rig[] = [];
  after(async () => {
    for (const rig of rigs) await stopRig(rig);
  });

  /** Creates a managed certificate and a TLS stream on `port` serving it; answers its view once failed. */
  async function failing(rig: Rig, id: string, port: number): Promise<Record<string, any>> {
    const api = supertest(rig.portico.app);
    await api.post('/v1/certificates').send({ id, acme: { names: [`${id}.test`] } }).expect(201);
    await api.post('/v1/streams').send({ port, tls: { certificate: id }, upstreams: [{ address: '127.0.0.1:9' }] }).expect(201);
    const failed = await until(rig, id, 'failed');
    // The placeholder serves on: nothing broke.
    assert.match((await servedCertificate(port, `${id}.test`, undefined)).issuer, /Portico placeholder/);
    // Retries (ACME_RETRY_MIN 1s) may have failed again since: one of the failures recorded says it.
    const events = (await api.get('/v1/events?type=acme').expect(200)).body as Array<{ what: string; certificate: string; detail?: string }>;
    const details = events.filter((e) => e.certificate === id && e.what === 'failed').map((e) => e.detail);
    assert.ok(details.includes(failed.acme.lastError), `no failed event says ${JSON.stringify(failed.acme.lastError)}: ${JSON.stringify(details)}`);
    return failed;
  }

  it('HTTP-01 with no app (nginx not on HTTP_PORT) fails at once saying so; with an app, the CA unreachable: failed naming the directory, and retried', async () => {
    const closed = await freePort();
    const rig = await startRig('30350-30359', {}, { ACME_DIRECTORY_URL: `https://127.0.0.1:${closed}/dir` });
    rigs.push(rig);
    const api = supertest(rig.portico.app);
    const alone = await failing(rig, 'unreachable', 30350);
    assert.match(alone.acme.lastError, /HTTP-01 needs nginx listening on HTTP_PORT, which it does while an app exists/);
    await api.post('/v1/apps').send({ name: 'any', serverNames: ['any.test'], routes: [{ upstreams: [{ address: '127.0.0.1:9' }] }] }).expect(201);
    const failed = (await api.post('/v1/certificates/unreachable/renew').expect(200)).body;
    assert.equal(failed.acme.status, 'failed');
    assert.match(failed.acme.lastError, new RegExp(`acme account: the ACME directory https://127\\.0\\.0\\.1:${closed}/dir could not be reached: connect ECONNREFUSED`));
    // Retried with backoff (ACME_RETRY_MIN 1s, doubling): another attempt is recorded within seconds.
    const retried = await eventually(async () => ((await certificate(rig, 'unreachable')).acme.lastAttempt ?? '') > failed.acme.lastAttempt, 15_000, 100);
    assert.ok(retried, 'no retry within 15 s');
  });

  it('a CA that rejects every nonce (its rate limiting, as pebble plays it): failed with the CA\'s badNonce', async () => {
    const rig = await startRig('30360-30369', { nonceRejectPercent: 100 });
    rigs.push(rig);
    await supertest(rig.portico.app).post('/v1/apps').send({ name: 'any', serverNames: ['any.test'], routes: [{ upstreams: [{ address: '127.0.0.1:9' }] }] }).expect(201);
    const failed = await failing(rig, 'refused', 30360);
    assert.match(failed.acme.lastError, /urn:ietf:params:acme:error:badNonce/, `lastError: ${failed.acme.lastError}\n${rig.pebble.output().slice(-2000)}`);
  });
});
