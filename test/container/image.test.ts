/**
 * The image alone (managed mode), built and run through a real Docker engine with the README's own
 * commands (its "Container" section, run as written): a stream echoes bytes from the host through
 * the container's nginx to a backend on the host; Chromium reaches an app over HTTP/3 through the
 * published UDP port; `docker stop` lets nginx finish a request in flight and exits cleanly; a second
 * `docker run` on the same state volume lists and serves everything again. And the image's limits:
 * it runs as the user the README names, keeps STATE_DIR on the volume, answers its health check, and
 * adds less than 200 MB to the nginx image.
 *
 * Fixed ports, as the README's commands publish them (on 127.0.0.1 here: PUBLISH_ADDRESS): the API on
 * 5000, streams 9000-9009, apps on 80 and 443. The backends listen on the bridge's gateway, the
 * host's address as a container sees it. `make test-container` runs this; `make test` does not.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { fixtureCert } from '../helpers/backends.js';
import { API, api, httpsGet, PAGE, startPageBackend } from '../helpers/container-app.js';
import { http3Flags, launchChromium } from '../helpers/chromium.js';
import {
  bridgeGateway,
  containerProcesses,
  containerUnavailable,
  DOCKER,
  docker,
  fromLine,
  imageSize,
  inspect,
  readmeBlock,
  requestsFromContainer,
  runBlock,
} from '../helpers/docker.js';
import { eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';

const CONTAINER = 'portico';
const VOLUME = 'portico-state';
const CERT = fixtureCert('portico');
const unavailable = containerUnavailable();
/** API_TOKEN, which the README's commands pass on from the shell (run-tests.sh exports one). */
const TOKEN = process.env.API_TOKEN ?? '';

async function removeContainer(): Promise<void> {
  await docker(['rm', '-f', CONTAINER]).catch(() => undefined);
}

describe('the image alone: managed mode through a real Docker engine', { skip: unavailable }, () => {
  let echo: EchoServer;
  let page: Awaited<ReturnType<typeof startPageBackend>>;
  let gateway: string;
  let block: Awaited<ReturnType<typeof readmeBlock>>;

  before(async () => {
    gateway = await bridgeGateway();
    echo = await startEcho('host:', gateway);
    page = await startPageBackend(gateway, 2000);
    await removeContainer();
    await docker(['volume', 'rm', '-f', VOLUME]);
    block = await readmeBlock('Container', /^docker run /);
  });
  after(async () => {
    await removeContainer();
    await docker(['volume', 'rm', '-f', VOLUME]).catch(() => undefined);
    await echo?.close();
    await page?.close();
  });

  it("builds and runs with the README's commands; the image adds less than 200 MB to the nginx image", async (t) => {
    const started = performance.now();
    await runBlock(block);
    const built = await imageSize('portico');
    const base = await imageSize(process.env.NGINX_IMAGE as string);
    const added = (built - base) / 1e6;
    t.diagnostic(`built in ${Math.round((performance.now() - started) / 1000)} s: portico ${(built / 1e6).toFixed(0)} MB, ${process.env.NGINX_IMAGE} ${(base / 1e6).toFixed(0)} MB, added ${added.toFixed(0)} MB`);
    assert.ok(added < 200, `the image adds ${added.toFixed(0)} MB to ${process.env.NGINX_IMAGE}`);
    assert.equal(await inspect('portico', '{{.Config.User}}'), 'portico');
  });

  it('runs as user portico (uid 10001), nginx too, with STATE_DIR on the volume', async () => {
    assert.ok(await eventually(async () => (await api('GET', '/readyz').catch(() => ({ status: 0 }))).status === 200, 30_000, 250), 'the API never answered /readyz 200');
    const processes = await containerProcesses(CONTAINER);
    const node = processes.filter((p) => /\bnode\b.*dist\/main\.js/.test(p.args));
    const nginx = processes.filter((p) => /^nginx: /.test(p.args));
    assert.equal(node.length, 1, JSON.stringify(processes));
    assert.ok(nginx.some((p) => p.args.startsWith('nginx: master')) && nginx.length >= 2, JSON.stringify(processes));
    for (const p of [...node, ...nginx]) assert.equal(p.uid, 10001, `${p.args} runs as uid ${p.uid}`);
    const mounts = JSON.parse((await inspect(CONTAINER, '{{json .Mounts}}')) ?? '[]') as Array<{ Type: string; Name: string; Destination: string }>;
    assert.ok(mounts.some((m) => m.Type === 'volume' && m.Name === VOLUME && m.Destination === '/var/lib/portico'), JSON.stringify(mounts));
    assert.match(await docker(['exec', CONTAINER, 'ls', '/var/lib/portico/stream.d']).then(() => 'ok'), /ok/);
  });

  it('serves the console: /ui, its script and the chart library, without the token, each under the CSP and never framed', async () => {
    const expected: Array<[string, RegExp, RegExp]> = [
      ['/ui', /^text\/html/, /<script type="module" src="\/ui\/console\.js"><\/script>/],
      ['/ui/console.js', /^text\/javascript/, /from '\.\/lib\.js'/],
      ['/ui/vendor/uPlot.esm.js', /^text\/javascript/, /export \{ uPlot as default \}/],
    ];
    for (const [path, type, body] of expected) {
      const res = await fetch(`${API}${path}`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', type, path);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'none'/, path);
      assert.match(csp, /script-src 'self'/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
      assert.match(await res.text(), body, path);
    }
  });

  it('a stream echoes bytes from the host through the container to a backend on the host', async () => {
    const created = await api('GET', `/createstream/9000/${gateway}:${echo.port}`);
    assert.equal(created.status, 200, created.body);
    assert.equal(await roundTrip(9000, 'through the container\n', { expectBytes: 'host:through the container\n'.length }), 'host:through the container\n');
    assert.ok(echo.accepted() >= 1);
  });

  it('an app answers over HTTPS, and over HTTP/3 to Chromium through the published UDP port', async (t) => {
    let answer = await api('POST', '/v1/certificates', { id: 'portico', certificate: CERT.cert, key: CERT.key });
    assert.equal(answer.status, 201, answer.body);
    answer = await api('POST', '/v1/apps', {
      name: 'h3',
      serverNames: ['portico.test'],
      routes: [{ upstreams: [{ address: `${gateway}:${page.port}` }] }],
      tls: { certificate: 'portico', http2: true, http3: true },
    });
    assert.equal(answer.status, 201, answer.body);
    const https = await httpsGet('/');
    assert.equal(https.status, 200);
    assert.match(https.body, new RegExp(PAGE));

    const browser = await launchChromium(http3Flags('portico.test', 443, CERT.cert));
    try {
      const tab = await browser.browser.newPage();
      const response = await tab.goto('https://portico.test/', { timeout: 20_000 });
      assert.equal(response?.status(), 200);
      assert.match(await tab.locator('#answer').innerText({ timeout: 5000 }), new RegExp(PAGE));
      assert.equal(await tab.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol"), 'h3');
    } finally {
      await browser.close();
    }
    // nginx's access log (flushed every second) records the request as HTTP/3.0.
    const h3Line = /"GET \/ HTTP\/3\.0" 200 HTTP\/3\.0 portico\.test$/m;
    let accessLog = '';
    const logged = await eventually(async () => {
      accessLog = await docker(['exec', CONTAINER, 'cat', '/var/lib/portico/logs/access.log']);
      return h3Line.test(accessLog);
    }, 5000, 250);
    assert.ok(logged, `no HTTP/3.0 line for GET / in the container's access log:\n${accessLog}`);
    t.diagnostic(accessLog.split('\n').find((line) => h3Line.test(line)) ?? '');
  });

  it('another container on the bridge reaches the API with any Host it likes, and without the token changes nothing (401)', async () => {
    const address = await inspect(CONTAINER, '{{.NetworkSettings.IPAddress}}');
    assert.match(address ?? '', /^\d+\.\d+\.\d+\.\d+$/);
    const url = `http://${address}:5000`;
    const before = (await api('GET', '/getstreams')).body;
    const json = { 'content-type': 'application/json' };
    const answers = await requestsFromContainer('bridge', [
      { url: `${url}/createstream/9005/${gateway}:${echo.port}`, method: 'GET', host: `${address}:5000` },
      { url: `${url}/v1/streams`, method: 'POST', host: 'portico', headers: json, body: JSON.stringify({ backend: `${gateway}:${echo.port}` }) },
      { url: `${url}/v1/streams`, method: 'POST', host: 'portico:5000', body: JSON.stringify({ backend: `${gateway}:${echo.port}` }) },
      { url: `${url}/v1/streams/9000`, method: 'DELETE', host: 'portico' },
      { url: `${url}/removestream/9000`, method: 'GET', host: `${address}` },
      { url: `${url}/v1/streams/9000`, method: 'DELETE', host: 'rebound.attacker.example:5000', headers: { authorization: `Bearer ${TOKEN}` } },
      { url: `${url}/v1/streams/9000`, method: 'DELETE', host: 'portico', headers: { authorization: 'Bearer wrong-token-wrong-token' } },
      // The same neighbour with the token is served: the 401s above are the token's doing, not the network's.
      { url: `${url}/getstreams`, method: 'GET', host: 'portico', headers: { authorization: `Bearer ${TOKEN}` } },
    ]);
    assert.deepEqual(answers.map((a) => a.status), [401, 401, 401, 401, 401, 403, 401, 200], JSON.stringify(answers));
    assert.equal((await api('GET', '/getstreams')).body, before);
    assert.deepEqual((await docker(['exec', CONTAINER, 'ls', '/var/lib/portico/stream.d'])).split('\n'), ['_conductor_9000.conf']);
    const logs = await docker(['logs', CONTAINER]);
    assert.ok(!logs.includes(TOKEN) && !logs.includes('wrong-token-wrong-token'), 'a token reached the container log');
    assert.ok(!logs.includes('PRIVATE KEY'), 'a private key reached the container log');
  });

  it('refuses to start without API_TOKEN, naming BIND_ADDRESS and the settings that would allow it', async () => {
    const started = await promisify(execFile)(DOCKER, ['run', '--rm', '-e', 'API_TOKEN=', 'portico'], { timeout: 60_000 }).then(
      (out) => ({ code: 0, output: `${out.stdout}${out.stderr}` }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }),
    );
    assert.notEqual(started.code, 0, started.output);
    assert.match(started.output, /BIND_ADDRESS: 0\.0\.0\.0 is not a loopback address: .*set API_TOKEN \(16 characters or more\) or API_TOKENS_FILE/);
  });

  it('docker stop lets nginx finish a request in flight, and the container exits 0', async () => {
    const inFlight = httpsGet('/slow', 20_000);
    await sleep(500);
    const started = performance.now();
    await docker(['stop', CONTAINER], 90_000);
    const stoppedMs = performance.now() - started;
    const answer = await inFlight;
    assert.equal(answer.status, 200);
    assert.match(answer.body, /\/slow/);
    assert.equal(await inspect(CONTAINER, '{{.State.ExitCode}}'), '0');
    assert.ok(stoppedMs < 40_000, `docker stop took ${Math.round(stoppedMs)} ms: the stop timeout killed it`);
    const logs = await docker(['logs', CONTAINER]);
    assert.match(logs, /"msg":"stopped"/, logs.slice(-2000));
  });

  it('a second docker run on the same volume lists every stream and serves it, and the app', async () => {
    await removeContainer();
    await runBlock(fromLine(block, /^docker run /));
    assert.ok(await eventually(async () => (await api('GET', '/readyz').catch(() => ({ status: 0 }))).status === 200, 30_000, 250), 'the API never answered /readyz 200');
    const listed = JSON.parse((await api('GET', '/getstreams')).body) as Array<{ listen: number; proxy_pass: string }>;
    assert.deepEqual(listed, [{ listen: 9000, proxy_pass: `${gateway}:${echo.port}` }]);
    assert.equal(await roundTrip(9000, 'again\n', { expectBytes: 'host:again\n'.length }), 'host:again\n');
    const https = await httpsGet('/');
    assert.equal(https.status, 200);
    const errorLog = await docker(['exec', CONTAINER, 'cat', '/var/lib/portico/logs/error.log']);
    assert.match(errorLog, /gracefully shutting down/, 'the first nginx did not log a graceful shutdown');
  });

  it('the health check answers: the container turns healthy', async () => {
    const healthy = await eventually(async () => (await inspect(CONTAINER, '{{.State.Health.Status}}')) === 'healthy', 60_000, 1000);
    assert.ok(healthy, `health: ${await inspect(CONTAINER, '{{json .State.Health}}')}`);
  });
});
