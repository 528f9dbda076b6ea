/**
 * A real browser attacks the API: Debian's Chromium (playwright-core, as the HTTP/3 test drives it)
 * opens pages of another origin that try an `<img>`, no-cors fetches and a text/plain form post
 * against Portico, run as `make start` runs it, and a page whose name re-resolves to 127.0.0.1 (DNS
 * rebinding) tries to read and change it. No stream appears, no file is written, nothing listens, and
 * no page reads /v1/status; the same requests from curl still work. Every attack is also sent to a
 * canary server without defences, which records it: the browser really sends them, so it is Portico
 * that refuses them. A page of an origin listed in API_ALLOWED_ORIGINS reads and changes the API.
 * Ports 26320-26339.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { launchChromium, type RunningChromium } from '../helpers/chromium.js';
import { accepts, eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { processRuns, spawnPortico, stopNginxUnder, tempDir, type ChildPortico } from '../helpers/portico.js';

const FROM = 26320;
const API = 26330;
/** Serves the attackers' pages (and the dashboard's), as attacker.test, dashboard.test or localhost. */
const PAGES = 26331;
/** Records every request, answers 200: a server without defences. */
const CANARY = 26332;
const DASHBOARD = `http://dashboard.test:${PAGES}`;
const run = promisify(execFile);

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The attacks of a page of another origin on `base`: one <img>, two no-cors fetches, a text/plain form, a read. */
function crossOriginAttacks(base: string, port: number): string {
  const stream = JSON.stringify({ port: port + 1, backend: '127.0.0.1:22' });
  // A text/plain form sends name=value: the "=" lands in a first "backend" the second one hides.
  const formName = '{"backend":"';
  const formValue = `", "port": ${port + 2}, "backend": "127.0.0.1:22"}`;
  return `
    await new Promise((done) => { const img = new Image(); img.onload = img.onerror = done; img.src = '${base}/createstream/${port}/127.0.0.1:22'; });
    await fetch('${base}/v1/streams', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'application/json' }, body: '${stream}' }).catch(() => {});
    await fetch('${base}/createstream/${port + 3}/127.0.0.1:22', { mode: 'no-cors' }).catch(() => {});
    await new Promise((done) => {
      const frame = document.createElement('iframe');
      frame.name = 'sink' + document.querySelectorAll('iframe').length;
      document.body.append(frame);
      // Set after append: appending fires the load of about:blank.
      frame.onload = done;
      const form = document.createElement('form');
      Object.assign(form, { method: 'POST', enctype: 'text/plain', target: frame.name, action: '${base}/v1/streams' });
      const input = Object.assign(document.createElement('input'), { name: ${JSON.stringify(formName)}, value: ${JSON.stringify(formValue)} });
      form.append(input);
      document.body.append(form);
      form.submit();
    });
    reads.push(await fetch('${base}/v1/status').then((r) => r.text().then((t) => 'read ' + r.status + ' ' + t), (e) => 'blocked: ' + e.message));`;
}

const page = (script: string): string =>
  `<!doctype html><meta charset="utf-8"><title>page</title><body><script>
    window.reads = [];
    (async () => { ${script} })().then(() => { window.done = true; }, (e) => { window.failed = String(e); window.done = true; });
  </script>`;

async function listen(port: number, handler: Parameters<typeof createServer>[1]): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  return server;
}

describe('a real browser attacks the API (headless Chromium)', () => {
  let echo: EchoServer;
  let stateDir: string;
  let portico: ChildPortico | undefined;
  let browser: RunningChromium | undefined;
  const servers: Server[] = [];
  const canary: Recorded[] = [];

  /** What Portico's request log says it answered, one `METHOD path status` a request, in order. */
  const answered = (): string[] =>
    (portico as ChildPortico)
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{') && line.includes('"module":"api"'))
      .map((line) => JSON.parse(line) as { method: string; path: string; status: number })
      .map((line) => `${line.method} ${line.path} ${line.status}`);
  /** The answers logged since `before` of them, once `count` are there (a line is written just after its answer). */
  async function answeredSince(before: number, count: number): Promise<string[]> {
    await eventually(() => answered().length >= before + count, 3000);
    return answered().slice(before);
  }

  const streamFiles = async () => (await readdir(`${stateDir}/stream.d`)).filter((f) => f.endsWith('.conf'));

  /** Opens `url` in a fresh page, waits (bounded) for its script, and answers what it could read. */
  async function visit(url: string, setUp?: (page: Page) => Promise<unknown>): Promise<string[]> {
    const context = await (browser as RunningChromium).browser.newContext();
    try {
      const tab = await context.newPage();
      await setUp?.(tab);
      await tab.goto(url, { timeout: 10_000 });
      await tab.waitForFunction(() => (window as unknown as { done?: boolean }).done === true, null, { timeout: 15_000 });
      assert.equal(await tab.evaluate(() => (window as unknown as { failed?: string }).failed), undefined);
      return await tab.evaluate(() => (window as unknown as { reads: string[] }).reads);
    } finally {
      await context.close();
    }
  }

  before(async () => {
    echo = await startEcho();
    stateDir = await tempDir('browser');
    const pages: Record<string, string> = {
      '/cross': page(`${crossOriginAttacks(`http://127.0.0.1:${API}`, FROM)}${crossOriginAttacks(`http://127.0.0.1:${CANARY}`, FROM)}`),
      '/same-site': page(crossOriginAttacks(`http://localhost:${API}`, FROM + 4)),
      '/dashboard': page(`
        const api = 'http://127.0.0.1:${API}';
        reads.push(await fetch(api + '/v1/status').then((r) => r.json()).then((s) => 'status ' + s.mode));
        const created = await fetch(api + '/v1/streams', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"port": ${FROM + 9}, "backend": "127.0.0.1:${echo.port}"}' });
        reads.push('created ' + created.status + ' ' + created.headers.get('location'));
        reads.push('deleted ' + (await fetch(api + '/v1/streams/${FROM + 9}', { method: 'DELETE' })).status);`),
    };
    servers.push(await listen(PAGES, (req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(pages[req.url ?? ''] ?? '')));
    servers.push(
      await listen(CANARY, (req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          canary.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        });
      }),
    );
    portico = await spawnPortico({
      STATE_DIR: stateDir,
      PORT_RANGE: `${FROM}-${FROM + 9}`,
      BIND_PORT: String(API),
      API_ALLOWED_ORIGINS: DASHBOARD,
      WORKER_SHUTDOWN_TIMEOUT: '1s',
    });
    browser = await launchChromium([
      '--host-resolver-rules=MAP attacker.test 127.0.0.1, MAP rebound.test 127.0.0.1, MAP dashboard.test 127.0.0.1',
      // Chromium 142+ asks the user before a page from a public address reaches loopback (Local
      // Network Access); a user may allow it, and other browsers do not ask. Off, so that what stops
      // the rebound page is Portico's own check.
      '--disable-features=LocalNetworkAccessChecks',
    ]);
  });
  after(async () => {
    await browser?.close();
    if (portico !== undefined && (await processRuns(portico.pid))) process.kill(-portico.pid, 'SIGKILL');
    await stopNginxUnder(stateDir);
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await echo?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('a page of another site gets 403 for its <img>, no-cors fetches and text/plain form, and cannot read /v1/status; the canary got them all', async () => {
    const before = answered().length;
    const reads = await visit(`http://attacker.test:${PAGES}/cross`);
    // The browser sent each attack: the canary, which has no defences, received them as sent.
    const seen = canary.map((r) => `${r.method} ${r.url} ${r.headers['content-type'] ?? '-'} ${r.headers['sec-fetch-site']}`);
    assert.deepEqual(seen, [
      `GET /createstream/${FROM}/127.0.0.1:22 - cross-site`,
      'POST /v1/streams text/plain;charset=UTF-8 cross-site',
      `GET /createstream/${FROM + 3}/127.0.0.1:22 - cross-site`,
      'POST /v1/streams text/plain cross-site',
      'GET /v1/status - cross-site',
    ]);
    assert.equal(canary[1]?.body, JSON.stringify({ port: FROM + 1, backend: '127.0.0.1:22' }));
    assert.equal(canary[3]?.body, `{"backend":"=", "port": ${FROM + 2}, "backend": "127.0.0.1:22"}\r\n`);
    // Portico refused every one of them.
    assert.deepEqual(await answeredSince(before, 5), [
      `GET /createstream/${FROM}/127.0.0.1:22 403`,
      'POST /v1/streams 403',
      `GET /createstream/${FROM + 3}/127.0.0.1:22 403`,
      'POST /v1/streams 403',
      'GET /v1/status 403',
    ]);
    assert.match(reads[0] ?? '', /^blocked: /, 'the page read the API');
    assert.deepEqual(await streamFiles(), []);
    for (let port = FROM; port < FROM + 4; port += 1) assert.equal(await accepts(port), false, `port ${port} listens`);
  });

  it('a page of the same site (another port of localhost) is refused the same way', async () => {
    const before = answered().length;
    const reads = await visit(`http://localhost:${PAGES}/same-site`);
    const lines = await answeredSince(before, 5);
    assert.equal(lines.length, 5, lines.join('\n'));
    for (const line of lines) assert.match(line, / 403$/);
    assert.match(reads[0] ?? '', /^blocked: /);
    assert.deepEqual(await streamFiles(), []);
  });

  it('a page rebound to 127.0.0.1 reads only 403s naming API_ALLOWED_HOSTS, and changes nothing; rebound to the canary, it reads it', async () => {
    // The page came from the attacker's server; now its name resolves to 127.0.0.1, and every
    // request it makes, same-origin in the browser's eyes, reaches whatever listens on its port.
    const script = `
      for (const [path, init] of [['/v1/status'], ['/createstream/${FROM + 5}/127.0.0.1:22'],
          ['/v1/streams', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"port": ${FROM + 6}, "backend": "127.0.0.1:22"}' }]]) {
        const res = await fetch(path, init);
        reads.push(res.status + ' ' + (await res.text()));
      }`;
    const rebound = (port: number) =>
      visit(`http://rebound.test:${port}/`, (tab) =>
        tab.route(`http://rebound.test:${port}/`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: page(script) })),
      );
    assert.deepEqual(await rebound(CANARY), ['200 ok', '200 ok', '200 ok']);
    const before = answered().length;
    const reads = await rebound(API);
    assert.equal(reads.length, 3);
    for (const read of reads) {
      assert.match(read, /^403 \{"error":\{"kind":"Forbidden","message":"Host: \\"rebound.test:26330\\" does not name this API.*API_ALLOWED_HOSTS","field":"Host"\}\}$/);
      assert.doesNotMatch(read, /version|nginx|streams/);
    }
    assert.deepEqual(await answeredSince(before, 3), ['GET /v1/status 403', `GET /createstream/${FROM + 5}/127.0.0.1:22 403`, 'POST /v1/streams 403']);
    assert.deepEqual(await streamFiles(), []);
    assert.equal(await accepts(FROM + 5), false);
  });

  it('a page of an origin in API_ALLOWED_ORIGINS reads the status and creates a stream through CORS', async () => {
    const reads = await visit(`${DASHBOARD}/dashboard`);
    assert.deepEqual(reads, ['status managed', `created 201 /v1/streams/${FROM + 9}`, 'deleted 204']);
    assert.deepEqual(await streamFiles(), []);
  });

  it('the same requests from curl still work: the <img>\'s GET, the fetch\'s POST as JSON, reading /v1/status', async () => {
    const api = `http://127.0.0.1:${API}`;
    const curl = async (...args: string[]) => (await run('curl', ['-sS', '--fail-with-body', ...args])).stdout;
    assert.equal(await curl(`${api}/createstream/${FROM}/127.0.0.1:${echo.port}`), '{"result":"ok"}');
    assert.equal(JSON.parse(await curl('-H', 'content-type: application/json', '-d', JSON.stringify({ port: FROM + 1, backend: `127.0.0.1:${echo.port}` }), `${api}/v1/streams`)).port, FROM + 1);
    assert.equal(JSON.parse(await curl(`${api}/v1/status`)).streams, 2);
    assert.equal(await accepts(FROM), true);
    assert.equal(await curl(`${api}/removestream/${FROM}`), '{"result":"ok"}');
    await curl('-X', 'DELETE', `${api}/v1/streams/${FROM + 1}`);
    assert.deepEqual(await streamFiles(), []);
  });
});
