/**
 * HTTP/3 for real: headless Chromium (Debian's package, driven by playwright-core) completes a
 * request over QUIC to an app with `http3: true` through a managed nginx, and nginx's access log,
 * written with `$server_protocol`, records it as HTTP/3.0. An app without `http3` advertises no
 * Alt-Svc and renders no quic listener. Ports 27600-27611 only (HTTP 27610, HTTPS and QUIC 27611).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import request from 'supertest';
import { registerTrafficMetrics } from '../../src/traffic/metrics.js';
import { fixtureCert, fixturePem } from '../helpers/backends.js';
import { http3Flags, launchChromium, type RunningChromium } from '../helpers/chromium.js';
import { eventually } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const HTTPS_PORT = 27611;
const CA = fixturePem('ca.crt');
const PORTICO = fixtureCert('portico');
const ANSWER = 'answered by the h3 test backend';

/** An HTTP/1.1 backend on 127.0.0.1 that answers a small page naming itself; close() drops nginx's keep-alive connections. */
async function startPageBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>h3</title><p id="answer">${ANSWER}</p>\n`);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** GET / over HTTPS (HTTP/1.1) to 127.0.0.1:HTTPS_PORT with `serverName` as SNI and Host, verified against the test CA. */
function httpsGet(serverName: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: HTTPS_PORT, path: '/', servername: serverName, headers: { host: serverName }, ca: CA, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`https://${serverName}:${HTTPS_PORT}/: no answer within 5000 ms`)));
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP/3 for real (managed nginx, headless Chromium over QUIC)', () => {
  let portico: InProcess;
  let backend: Awaited<ReturnType<typeof startPageBackend>>;
  let browser: RunningChromium | undefined;
  const registry = new Registry();
  /** portico_app_requests_total{app="h3"} of every status class. */
  const h3Requests = async (): Promise<number> =>
    ((await registry.getSingleMetric('portico_app_requests_total')?.get())?.values ?? []).filter((v) => v.labels.app === 'h3').reduce((sum, v) => sum + v.value, 0);

  const api = () => request(portico.app);
  const upstreams = () => [{ address: `127.0.0.1:${backend.port}` }];
  const appFile = (name: string) => readFile(`${portico.settings.httpDir}/app_${name}.conf`, 'utf8');

  before(async () => {
    backend = await startPageBackend();
    portico = await startInProcess({ PORT_RANGE: '27600-27609', HTTP_PORT: '27610', HTTPS_PORT: String(HTTPS_PORT), WORKER_SHUTDOWN_TIMEOUT: '3s' });
    await api().post('/v1/certificates').send({ id: 'portico', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    await api()
      .post('/v1/apps')
      .send({ name: 'h3', serverNames: ['portico.test'], routes: [{ upstreams: upstreams() }], tls: { certificate: 'portico', http2: true, http3: true } })
      .expect(201);
    await api()
      .post('/v1/apps')
      .send({ name: 'no-h3', serverNames: ['localhost'], routes: [{ upstreams: upstreams() }], tls: { certificate: 'portico', http2: true } })
      .expect(201);
    if (portico.portico.traffic !== undefined) registerTrafficMetrics(registry, portico.portico.traffic);
  });
  after(async () => {
    try {
      await browser?.close();
    } finally {
      try {
        await portico?.stop();
      } finally {
        await backend?.close();
      }
    }
  });

  it('Chromium completes a request over QUIC to an app with http3, and nginx logs it as HTTP/3.0', async (t) => {
    const started = performance.now();
    browser = await launchChromium(http3Flags('portico.test', HTTPS_PORT, PORTICO.cert));
    const launched = performance.now();
    const page = await browser.browser.newPage();
    const response = await page.goto(`https://portico.test:${HTTPS_PORT}/`, { timeout: 15_000 });
    assert.equal(response?.status(), 200);
    assert.equal(await page.locator('#answer').innerText({ timeout: 5000 }), ANSWER);
    assert.equal(await page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol"), 'h3');
    const loaded = performance.now();

    const line = /^127\.0\.0\.1 \[[^\]]+\] "GET \/ HTTP\/3\.0" 200 HTTP\/3\.0 portico\.test$/m;
    const accessLog = `${portico.stateDir}/logs/access.log`;
    const logged = await eventually(async () => line.test(await readFile(accessLog, 'utf8').catch(() => '')), 3000);
    assert.ok(logged, `no HTTP/3.0 line for GET / in ${accessLog}:\n${await readFile(accessLog, 'utf8').catch(() => '')}`);
    // The per-resource traffic metrics count the HTTP/3 requests too: every portico.test line of the
    // access log (Chromium's page and its favicon, all over QUIC) is in portico_app_requests_total{app="h3"}.
    const h3Lines = async () => (await readFile(accessLog, 'utf8')).split('\n').filter((l) => / HTTP\/3\.0 portico\.test$/.test(l)).length;
    assert.ok(await eventually(async () => (await h3Requests()) >= (await h3Lines()), 5000, 100));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await h3Requests(), await h3Lines(), 'every HTTP/3 request to the app counted, once');
    t.diagnostic(
      `chromium launch ${Math.round(launched - started)} ms, h3 page load ${Math.round(loaded - launched)} ms, ` +
        `with the access log line ${Math.round(performance.now() - started)} ms`,
    );
  });

  it('an app with http3 advertises it in Alt-Svc and has a quic listener; one without has neither', async () => {
    const h3 = await httpsGet('portico.test');
    assert.equal(h3.status, 200);
    assert.match(h3.body, new RegExp(ANSWER));
    assert.equal(h3.headers['alt-svc'], `h3=":${HTTPS_PORT}"`);
    assert.match(await appFile('h3'), new RegExp(`^ *listen ${HTTPS_PORT} quic;$`, 'm'));

    const plain = await httpsGet('localhost');
    assert.equal(plain.status, 200);
    assert.match(plain.body, new RegExp(ANSWER));
    assert.equal(plain.headers['alt-svc'], undefined);
    const file = await appFile('no-h3');
    assert.match(file, new RegExp(`^ *listen ${HTTPS_PORT} ssl;$`, 'm'));
    assert.doesNotMatch(file, /quic/);
  });
});
