/**
 * The console (issue 17) attacked as a hostile party would, in Debian's Chromium against a real
 * Portico and nginx: markup stored through every field the API lets it through (a certificate's
 * subject, issuer and names, an ACME CA's error words, an app's header value, label values shaped as
 * `javascript:` URLs) and shown on every page; markup injected into the page past the API, which the
 * CSP must refuse; the page framed by another origin; another origin's page (cross-site, and on the
 * same host at another port: same-site) writing through fetch and a form post, with the token and
 * without; where the token lives and where it never goes (URLs, cookies, localStorage, Portico's
 * logs); path tricks on the static files; a foreign Host (DNS rebinding). Each probe asserts the
 * defence, and something the attack would have changed if it had worked.
 *
 * Every process (Portico, nginx, Chromium, the hostile CA, the foreign sites) is the test's own,
 * stopped by pid; every port is on 127.0.0.0/8.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, type RunningChromium } from '../helpers/chromium.js';
import { eventually } from '../helpers/net.js';
import { freePort } from '../helpers/pebble.js';
import { REPO, discardPortico, spawnPortico, tempDir, type ChildPortico } from '../helpers/portico.js';
import { rawRequest } from '../helpers/raw-http.js';

/** Random, so that no other text of the run (a temporary directory's name) can hold a part of it. */
const TOKEN = `t0k-${randomBytes(24).toString('hex')}`;
const RANGE = { from: 30740, to: 30749 };
/** What every payload's script would set the page's title to; the console's own title never changes. */
const PWNED = 'PWNED';
const TITLE = 'Portico console';
const IMG = `<img src=x onerror=document.title='${PWNED}'>`;
const SCRIPT = `<script>document.title='${PWNED}'</script>`;
const QUOTES = `"'><svg onload=document.title='${PWNED}'>`;
/** The name the attacker's DNS answers with 127.0.0.1 (Chromium maps it so). */
const REBIND = 'rebind.test';

/** A PEM certificate and key from openssl with `subject` and the subjectAltName extension `san`. */
function hostileCertificate(dir: string, name: string, subject: string, san: string): { cert: string; key: string } {
  const [certFile, keyFile] = [path.join(dir, `${name}.pem`), path.join(dir, `${name}.key`)];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', subject, '-addext', `subjectAltName=${san}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

async function listen(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, () => resolve()));
  return (server.address() as AddressInfo).port;
}

const close = (server: Server | undefined) => new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));

/** What a page under attack recorded: the requests it made, its script errors, and the CSP's refusals. */
interface Watch {
  requests: Array<{ url: string; headers: Record<string, string> }>;
  problems: string[];
  console: string[];
}

/** In every document of the context, before any of its scripts: the CSP's refusals, kept in `__violations`. */
const RECORD_VIOLATIONS = `
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));
`;

async function watchedPage(context: BrowserContext): Promise<{ page: Page; watch: Watch }> {
  const page = await context.newPage();
  const watch: Watch = { requests: [], problems: [], console: [] };
  page.on('request', (request) => watch.requests.push({ url: request.url(), headers: request.headers() }));
  page.on('pageerror', (error) => watch.problems.push(error.message));
  page.on('console', (message) => {
    watch.console.push(message.text());
    // The API's answers the browser logs as failed loads (401 asks for the token) are not faults.
    if (message.type() === 'error' && !/status of (400|401|404|422)\b/.test(message.text())) watch.problems.push(message.text());
  });
  return { page, watch };
}

/**
 * Asserts that nothing a payload would do happened on `page`: the title is the console's, no CSP
 * refusal (which would mean an element of a payload reached the DOM and was stopped only there), no
 * element a payload holds (an image, an inline script, an SVG, a frame, a link other than the
 * navigation's, any `on...` attribute), no request for the payloads' image `x`, no script error.
 */
async function assertUnharmed(page: Page, watch: Watch, where: string): Promise<void> {
  const state = await page.evaluate(() => {
    const handlers = [...document.querySelectorAll('*')].flatMap((node) => [...node.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${node.tagName} ${a.name}`));
    return {
      title: document.title,
      pwned: (window as unknown as { __pwned?: unknown }).__pwned,
      violations: (window as unknown as { __violations: string[] }).__violations,
      foreign: [...document.querySelectorAll('img, svg, iframe, object, embed, style, link:not([rel="stylesheet"]):not([rel="icon"]), script:not([src="/ui/console.js"]), a[href]:not([href^="#/"])')].map((node) => node.outerHTML.slice(0, 200)),
      handlers,
    };
  });
  assert.equal(state.title, TITLE, `${where}: a payload's script changed the title`);
  assert.equal(state.pwned, undefined, where);
  assert.deepEqual(state.violations, [], `${where}: the CSP had to refuse something the page was made to hold`);
  assert.deepEqual(state.foreign, [], `${where}: elements made from a payload`);
  assert.deepEqual(state.handlers, [], `${where}: event handler attributes`);
  assert.deepEqual(watch.requests.filter((r) => /\/x$|javascript:|PWNED/i.test(r.url)).map((r) => r.url), [], `${where}: requests a payload made`);
  assert.deepEqual(watch.problems, [], `${where}: script errors`);
}

describe('the console under attack', () => {
  let portico: ChildPortico;
  let stateDir: string;
  let scratch: string;
  let chromium: RunningChromium;
  let context: BrowserContext;
  let hostileCa: Server;
  /** Another site (127.0.0.2: cross-site) and another port of the API's own host (same-site). */
  let crossSite: Server;
  let sameSite: Server;
  let crossUrl: string;
  let sameUrl: string;
  let apiPort: number;
  const caHits: string[] = [];
  /** The paths the foreign sites were asked for. */
  const foreignHits: string[] = [];
  /** The hostile certificate's facts as the API answers them, and the ACME CA's words. */
  let hostileCertificateView: { subject: string; issuer: string; sans: string[] };
  let hostileLastError: string;

  const api = (p: string, init: RequestInit = {}) => fetch(`${portico.url}${p}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers } });
  /** The request ids of the test's own reads of /v1/streams, told apart from a browser's in the log. */
  const ownRequests = new Set<string>();
  const streams = async (): Promise<unknown[]> => {
    const res = await api('/v1/streams');
    ownRequests.add((res.headers.get('portico-request-id') ?? '').split(';')[0]!.trim());
    return (await res.json()) as unknown[];
  };
  /** Portico's log of the requests for /v1/streams written after offset `from`, but the test's own, as "METHOD status". */
  const streamsLog = (from: number): string[] =>
    portico
      .output()
      .slice(from)
      .split('\n')
      .flatMap((line) => {
        try {
          const entry = JSON.parse(line) as { path?: string; request?: string; method?: string; status?: number };
          return entry.path === '/v1/streams' && entry.status !== undefined && !ownRequests.has(entry.request ?? '') ? [`${entry.method} ${entry.status}`] : [];
        } catch {
          return []; // not a log line, or cut by the offset
        }
      });
  /** A raw request to the API (no client normalises its path or fills its headers). */
  const raw = (target: string, headers: string[] = [], method = 'GET') =>
    rawRequest('127.0.0.1', apiPort, [`${method} ${target} HTTP/1.1`, `Host: 127.0.0.1:${apiPort}`, ...headers, 'Connection: close'].join('\r\n'));

  async function signIn(page: Page, hash = 'overview'): Promise<void> {
    await page.goto(`${portico.url}/ui#/${hash}`, { timeout: 20_000 });
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  /** The foreign sites' pages: each attacks `api` from its own origin. */
  function foreignSite(): Server {
    return createHttpServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://foreign');
      foreignHits.push(url.pathname);
      const target = `http://127.0.0.1:${apiPort}`;
      const pages: Record<string, string> = {
        '/frame': `<!DOCTYPE html><title>framer</title><iframe id="console" src="${target}/ui"></iframe><iframe id="control" src="/plain"></iframe>`,
        '/plain': '<!DOCTYPE html><title>plain</title><p id="plain">framed fine</p>',
        // What a page would try if it knew the token, and without it; each outcome kept for the test.
        '/fetch': `<!DOCTYPE html><title>fetcher</title><script>
          const api = ${JSON.stringify(target)};
          const token = ${JSON.stringify(TOKEN)};
          const body = JSON.stringify({ backend: '127.0.0.1:9', labels: { by: 'attacker' } });
          const attempts = {
            'GET with the token': () => fetch(api + '/v1/streams', { headers: { authorization: 'Bearer ' + token } }),
            'POST with the token': () => fetch(api + '/v1/streams', { method: 'POST', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body }),
            'simple GET': () => fetch(api + '/v1/streams'),
            'simple POST (text/plain)': () => fetch(api + '/v1/streams', { method: 'POST', headers: { 'content-type': 'text/plain' }, body }),
            'no-cors POST': () => fetch(api + '/v1/streams', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body }),
            'no-cors POST with the token': () => fetch(api + '/v1/streams', { method: 'POST', mode: 'no-cors', headers: { authorization: 'Bearer ' + token, 'content-type': 'text/plain' }, body }),
            'read the console page': () => fetch(api + '/ui'),
          };
          window.__results = {};
          (async () => {
            for (const [name, attempt] of Object.entries(attempts)) {
              try {
                const res = await attempt();
                window.__results[name] = { status: res.status, type: res.type, body: res.type === 'opaque' ? '' : await res.text(), acao: res.headers.get('access-control-allow-origin') };
              } catch (error) {
                window.__results[name] = { error: String(error) };
              }
            }
            window.__done = true;
          })();
        </script>`,
        // A form post needs no script of the API's origin and sends no preflight: JSON in a text/plain body.
        '/form': `<!DOCTYPE html><title>former</title><form method="post" enctype="text/plain" action="${target}/v1/streams"><input type="hidden" name='{"backend":"127.0.0.1:9","labels":{"by":"form","x":"' value='"}}'></form><script>document.forms[0].submit();</script>`,
      };
      const page = pages[url.pathname];
      res.writeHead(page === undefined ? 404 : 200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page ?? 'not here');
    });
  }

  before(async () => {
    scratch = await tempDir('console-attacks');
    stateDir = await tempDir('console-attacks-state');
    // A hostile ACME CA: every answer a problem document whose words are markup.
    const caCert = hostileCertificate(scratch, 'ca', '/CN=127.0.0.1', 'IP:127.0.0.1');
    hostileCa = createHttpsServer({ cert: caCert.cert, key: caCert.key }, (req, res) => {
      caHits.push(`${req.method} ${req.url}`);
      res.writeHead(400, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:malformed', detail: `${IMG} ${SCRIPT} ${QUOTES} javascript:document.title='${PWNED}'`, status: 400 }));
    });
    const caPort = await listen(hostileCa, '127.0.0.1');
    apiPort = await freePort();
    portico = await spawnPortico({
      STATE_DIR: stateDir,
      BIND_PORT: String(apiPort),
      PORT_RANGE: `${RANGE.from}-${RANGE.to}`,
      HTTP_PORT: '30758',
      HTTPS_PORT: '30759',
      API_TOKEN: TOKEN,
      // Every line Portico writes, requests and ACME steps included: where a token must never appear.
      LOG_LEVEL: 'debug',
      ACME_DIRECTORY_URL: `https://127.0.0.1:${caPort}/directory`,
      ACME_CA_BUNDLE: path.join(scratch, 'ca.pem'),
    });
    crossSite = foreignSite();
    crossUrl = `http://127.0.0.2:${await listen(crossSite, '127.0.0.2')}`;
    sameSite = foreignSite();
    sameUrl = `http://127.0.0.1:${await listen(sameSite, '127.0.0.1')}`;

    // Stored payloads, through every field the API lets markup through.
    const cert = hostileCertificate(
      scratch,
      'hostile',
      `/CN=${IMG}/O=${QUOTES}/OU=${SCRIPT.replace(/\//g, '\\/')}`,
      `DNS:<svg onload=document.title=${PWNED}>,DNS:javascript:document.title=${PWNED},DNS:ok.example`,
    );
    const uploaded = await api('/v1/certificates', { method: 'POST', body: JSON.stringify({ id: 'hostile', certificate: cert.cert, key: cert.key }) });
    assert.equal(uploaded.status, 201, await uploaded.clone().text());
    hostileCertificateView = (await uploaded.json()) as typeof hostileCertificateView;
    assert.match(hostileCertificateView.subject, /<img src=x onerror=/, 'the subject reaches the API as markup');
    assert.ok(hostileCertificateView.sans.some((s) => s.includes('<svg onload=')), 'a name reaches the API as markup');

    const app = await api('/v1/apps', {
      method: 'POST',
      body: JSON.stringify({ name: 'hostile-app', serverNames: ['hostile.example'], routes: [{ upstreams: [{ address: '127.0.0.1:9' }], headers: { 'X-Payload': `${IMG} ${SCRIPT} '><a href=javascript:document.title='${PWNED}'>` } }], tls: { certificate: 'hostile' } }),
    });
    assert.equal(app.status, 201, await app.clone().text());

    // Label values take no markup (A-Z a-z 0-9 _ . : / @ -), but a `javascript:` URL fits, and keys
    // that are names of Object.prototype's members.
    const stream = await api('/v1/streams', {
      method: 'POST',
      body: JSON.stringify({ port: RANGE.from, backend: '127.0.0.1:9', labels: { href: `javascript:document.title`, constructor: 'javascript://x.example/@x', tostring: 'x', 'on.error': 'data:text/html' } }),
    });
    assert.equal(stream.status, 201, await stream.clone().text());
    const refused = await api('/v1/streams', { method: 'POST', body: JSON.stringify({ backend: '127.0.0.1:9', labels: { x: IMG } }) });
    assert.equal(refused.status, 400, 'a label value with markup is refused by the API');

    const acme = await api('/v1/certificates', { method: 'POST', body: JSON.stringify({ id: 'hostile-acme', acme: { names: ['acme.example'], challenge: 'http-01' } }) });
    assert.ok(acme.status < 300, await acme.clone().text());
    assert.ok(
      await eventually(async () => {
        const body = (await (await api('/v1/certificates/hostile-acme')).json()) as { acme?: { lastError: string | null } };
        hostileLastError = body.acme?.lastError ?? '';
        return hostileLastError.includes('<img');
      }, 20_000, 200),
      `the hostile CA's words reach lastError (CA saw ${JSON.stringify(caHits)}; lastError ${JSON.stringify(hostileLastError)})`,
    );

    chromium = await launchChromium([`--host-resolver-rules=MAP ${REBIND} 127.0.0.1`]);
    context = await chromium.browser.newContext();
    await context.addInitScript(RECORD_VIOLATIONS);
  });

  after(async () => {
    await chromium?.close();
    await discardPortico(portico, stateDir);
    await Promise.all([close(hostileCa), close(crossSite), close(sameSite)]);
  });

  it('stored XSS: every page shows the stored markup as text, runs none of it and makes no element of it', async () => {
    const { page, watch } = await watchedPage(context);
    await signIn(page);
    await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: 10_000 });
    await page.locator('#applies li').first().waitFor({ timeout: 10_000 });
    await assertUnharmed(page, watch, 'overview');

    await page.getByRole('link', { name: 'Streams' }).click();
    await page.getByRole('cell', { name: /href=javascript:document\.title/ }).waitFor({ timeout: 10_000 });
    const labels = (await page.locator('#stream-rows tr td').nth(4).textContent()) ?? '';
    for (const pair of ['href=javascript:document.title', 'constructor=javascript://x.example/@x', 'tostring=x', 'on.error=data:text/html']) assert.ok(labels.includes(pair), `${pair} in ${labels}`);
    await assertUnharmed(page, watch, 'streams');
    // A payload typed into the form: the API's refusal is shown as text.
    await page.locator('#streams').getByLabel('Backend').fill(`${IMG}:80`);
    await page.getByRole('button', { name: 'Preview', exact: true }).click();
    await page.locator('#backend-error, #create-error').filter({ hasText: /./ }).first().waitFor({ timeout: 10_000 });
    // The stream's JSON in the editor: a textarea's value, never markup.
    await page.getByRole('button', { name: `Edit stream ${RANGE.from}` }).click();
    assert.ok(await eventually(async () => (await page.getByLabel('Stream JSON').inputValue()) !== '', 10_000), 'the editor holds the stream');
    assert.match(await page.getByLabel('Stream JSON').inputValue(), /"href": "javascript:document\.title"/);
    await assertUnharmed(page, watch, 'streams, a payload previewed and the editor open');

    await page.getByRole('link', { name: 'Apps' }).click();
    await page.getByRole('button', { name: 'Edit app hostile-app' }).click();
    assert.ok(await eventually(async () => (await page.getByLabel('App JSON').inputValue()) !== '', 10_000), 'the editor holds the app');
    const json = await page.getByLabel('App JSON').inputValue();
    assert.ok(json.includes(IMG) && json.includes(SCRIPT), 'the header value is in the editor as it was stored');
    await page.getByRole('button', { name: 'Preview', exact: true }).click();
    await page.locator('#app-preview-verdict').filter({ hasText: /./ }).waitFor({ timeout: 10_000 });
    assert.ok(((await page.locator('#app-preview-file').textContent()) ?? '').includes(IMG), 'nginx\'s file, with the payload in its add_header, shown as text');
    assert.ok(((await page.locator('#app-rows').textContent()) ?? '').includes('certificate hostile'));
    await assertUnharmed(page, watch, 'apps, editing and previewing the hostile app');

    await page.getByRole('link', { name: 'Certificates' }).click();
    await page.getByRole('rowheader', { name: 'hostile-acme' }).waitFor({ timeout: 10_000 });
    const table = (await page.locator('#cert-rows').textContent()) ?? '';
    assert.ok(table.includes(hostileCertificateView.issuer), `the issuer as the API says it: ${hostileCertificateView.issuer}`);
    assert.ok(table.includes(`<svg onload=document.title=${PWNED}>`), 'the hostile name, as text');
    assert.ok(table.includes(`last error: ${hostileLastError}`), `the CA's words, as text: ${hostileLastError}`);
    assert.ok(table.includes('app hostile-app'));
    await assertUnharmed(page, watch, 'certificates');

    await page.getByRole('link', { name: 'Events' }).click();
    await page.getByRole('heading', { name: 'Events' }).waitFor();
    await assertUnharmed(page, watch, 'events');

    // Hostile routes: markup and Object.prototype's names as the hash.
    for (const hash of [encodeURIComponent(IMG), '__proto__', 'constructor', 'toString', `javascript:document.title='${PWNED}'`]) {
      await page.evaluate((h) => (location.hash = `#/${h}`), hash);
      await page.waitForTimeout(100);
      await assertUnharmed(page, watch, `#/${hash}`);
    }
    await page.close();
  });

  it('the CSP refuses what an injection would add: inline script, event handler attributes, javascript: links, inline style, eval, foreign loads', async () => {
    const { page, watch } = await watchedPage(context);
    await signIn(page);
    await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: 10_000 });
    const hits = foreignHits.length;
    const outcome = await page.evaluate(async (foreign) => {
      const w = window as unknown as Record<string, unknown>;
      const script = document.createElement('script');
      script.textContent = 'window.__inline = 1';
      document.body.append(script);
      const handler = document.createElement('div');
      handler.setAttribute('onclick', 'window.__handler = 1');
      document.body.append(handler);
      handler.click();
      const img = document.createElement('img');
      img.setAttribute('onerror', 'window.__onerror = 1');
      img.src = 'x-missing.png';
      document.body.append(img);
      const link = document.createElement('a');
      link.href = 'javascript:window.__href = 1';
      document.body.append(link);
      link.click();
      const styled = document.createElement('p');
      styled.setAttribute('style', 'color: rgb(1, 2, 3)');
      document.body.append(styled);
      const sheet = document.createElement('style');
      sheet.textContent = '#sheeted { color: rgb(4, 5, 6) }';
      document.head.append(sheet);
      const sheeted = document.createElement('p');
      sheeted.id = 'sheeted';
      document.body.append(sheeted);
      // A string compiled as code (eval's path) when the timer fires, outside DevTools' evaluation,
      // which the page's CSP does not govern.
      setTimeout('window.__timer = 1', 0);
      const outside = document.createElement('img');
      outside.src = `${foreign}/pixel.png`;
      document.body.append(outside);
      const fetched = await fetch(`${foreign}/plain`).then(() => 'read', (error: Error) => error.name);
      const frame = document.createElement('iframe');
      frame.src = `${foreign}/plain`;
      document.body.append(frame);
      const base = document.createElement('base');
      base.href = `${foreign}/`;
      document.head.append(base);
      for (let i = 0; i < 50 && (w.__violations as string[]).length < 10; i += 1) await new Promise((resolve) => setTimeout(resolve, 40));
      return {
        ran: { inline: w.__inline, handler: w.__handler, onerror: w.__onerror, href: w.__href, timer: w.__timer },
        color: getComputedStyle(styled).color,
        sheetColor: getComputedStyle(sheeted).color,
        fetched,
        baseURI: document.baseURI,
        violations: w.__violations as string[],
      };
    }, crossUrl);
    assert.deepEqual(outcome.ran, { inline: undefined, handler: undefined, onerror: undefined, href: undefined, timer: undefined }, 'no injected script ran');
    assert.notEqual(outcome.color, 'rgb(1, 2, 3)', 'a style attribute is ignored');
    assert.notEqual(outcome.sheetColor, 'rgb(4, 5, 6)', 'an inline style sheet is ignored');
    assert.equal(outcome.fetched, 'TypeError', 'no connection to another origin');
    assert.equal(outcome.baseURI, `${portico.url}/ui#/overview`, 'no <base> of another origin');
    const directives = new Set(outcome.violations.map((v) => v.split(' ')[0]));
    for (const directive of ['script-src-elem', 'script-src-attr', 'script-src', 'style-src-attr', 'style-src-elem', 'img-src', 'connect-src', 'frame-src', 'base-uri']) {
      assert.ok(directives.has(directive), `a ${directive} refusal among ${JSON.stringify(outcome.violations)}`);
    }
    await page.waitForTimeout(200);
    assert.equal(foreignHits.length, hits, 'no request reached the other origin');
    assert.deepEqual(foreignHits.filter((p) => p === '/pixel.png'), [], 'no request for the foreign image reached its server');
    await page.close();
  });

  it('framing: a page of another origin gets no console in its frame (the guard refuses the frame\'s request), and even a page of the API\'s own origin cannot frame /ui (X-Frame-Options DENY, frame-ancestors \'none\')', async () => {
    const { page, watch } = await watchedPage(context);
    const served: Array<{ url: string; status: number }> = [];
    page.on('response', (res) => {
      if (res.url().startsWith(`${portico.url}/`)) served.push({ url: res.url(), status: res.status() });
    });
    await page.goto(`${crossUrl}/frame`, { timeout: 20_000 });
    const control = await (await page.$('#control'))!.contentFrame();
    await control!.locator('#plain').waitFor({ timeout: 10_000 });
    assert.equal(await control!.locator('#plain').textContent(), 'framed fine', 'a frame the headers allow shows');
    assert.ok(await eventually(() => served.length > 0, 10_000), 'the browser asked for /ui for the frame');
    // A frame's request is marked cross-site (Sec-Fetch-Dest: iframe): the guard answers 403.
    assert.deepEqual(served, [{ url: `${portico.url}/ui`, status: 403 }]);
    const framed = await (await page.$('#console'))!.contentFrame();
    assert.equal(await framed!.locator('#sign-in-form, #token').count(), 0, 'no console form in the frame');

    // A page of the API's own origin (as an injection on another page of it would make): the frame's
    // request passes the guard (same-origin) and /ui is answered, but the browser refuses to show it.
    const framer = `${portico.url}/framer-of-the-test`;
    await page.route(framer, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: `<!DOCTYPE html><title>framer</title><iframe id="console" src="/ui"></iframe>` }));
    served.length = 0;
    watch.console.length = 0;
    await page.goto(framer, { timeout: 20_000 });
    assert.ok(await eventually(() => served.some((r) => r.url === `${portico.url}/ui`), 10_000));
    assert.deepEqual(served.filter((r) => r.url === `${portico.url}/ui`), [{ url: `${portico.url}/ui`, status: 200 }], 'the guard let the same-origin frame through');
    const same = await (await page.$('#console'))!.contentFrame();
    assert.ok(
      await eventually(() => watch.console.some((line) => /frame-ancestors|X-Frame-Options/i.test(line)), 5000),
      `the browser refuses the frame and says why: ${JSON.stringify(watch.console)}`,
    );
    assert.notEqual(same!.url(), `${portico.url}/ui`, 'the frame does not hold the console');
    assert.equal(await same!.locator('#sign-in-form, #token').count(), 0, 'no console form in the frame');
    assert.equal(served.filter((r) => /\/ui\/.+\.js$/.test(r.url)).length, 0, 'none of the console\'s scripts ran in the frame');
    await page.unroute(framer);
    await page.close();
  });

  for (const site of ['cross-site', 'same-site'] as const) {
    it(`${site}: another origin's page writes nothing through fetch or a form post, with the token or without, and reads no answer`, async () => {
      const origin = site === 'cross-site' ? crossUrl : sameUrl;
      const before = await streams();
      const logBefore = portico.output().length;
      const { page } = await watchedPage(context);
      await page.goto(`${origin}/fetch`, { timeout: 20_000 });
      assert.ok(await page.waitForFunction(() => (window as unknown as { __done?: boolean }).__done === true, undefined, { timeout: 15_000 }));
      const results = (await page.evaluate(() => (window as unknown as { __results: unknown }).__results)) as Record<string, { status?: number; type?: string; body?: string; error?: string }>;
      // The CORS requests fail in the browser (no Access-Control-Allow-Origin); the no-cors ones are opaque.
      for (const name of ['GET with the token', 'POST with the token', 'simple GET', 'simple POST (text/plain)', 'read the console page']) {
        assert.match(results[name]?.error ?? JSON.stringify(results[name]), /TypeError/, `${name}: ${JSON.stringify(results[name])}`);
      }
      for (const name of ['no-cors POST', 'no-cors POST with the token']) {
        assert.deepEqual(results[name], { status: 0, type: 'opaque', body: '', acao: null }, name);
      }
      // The form post navigates the page to the API's answer: the guard's refusal.
      const answered = page.waitForResponse((res) => res.url() === `${portico.url}/v1/streams`, { timeout: 10_000 });
      await page.goto(`${origin}/form`, { timeout: 20_000 });
      const answer = await answered;
      assert.equal(answer.status(), 403);
      assert.match(await answer.text(), /Origin|Sec-Fetch-Site/);
      assert.equal(answer.headers()['access-control-allow-origin'], undefined);
      // Each attempt reached Portico and was refused by the browser guard (403), not merely by the token
      // (401): the four posts, and the preflights of the two requests with the token.
      const count = (what: string) => streamsLog(logBefore).filter((e) => e === what).length;
      await eventually(() => count('POST 403') >= 4 && count('OPTIONS 403') >= 2, 3000);
      const log = streamsLog(logBefore);
      assert.deepEqual(log.filter((e) => !e.endsWith(' 403')), [], 'every attempt was refused with 403');
      assert.ok(count('POST 403') >= 4 && count('OPTIONS 403') >= 2, `the attempts reached Portico: ${JSON.stringify(log)}`);
      assert.deepEqual(await streams(), before, 'nothing was written');
      await page.close();
    });
  }

  it('CORS: no answer of /v1 or /ui carries Access-Control-Allow-Origin for a foreign origin, "null" included; a preflight is refused', async () => {
    for (const origin of [crossUrl, sameUrl, 'null', `http://${REBIND}:${apiPort}`]) {
      const preflight = await raw('/v1/streams', [`Origin: ${origin}`, 'Access-Control-Request-Method: POST', 'Access-Control-Request-Headers: authorization, content-type', 'Sec-Fetch-Site: cross-site', 'Sec-Fetch-Mode: cors'], 'OPTIONS');
      assert.equal(preflight.status, 403, `preflight from ${origin}`);
      assert.equal(preflight.headers['access-control-allow-origin'], undefined);
      assert.equal(preflight.headers['access-control-allow-headers'], undefined);
      for (const target of ['/v1/streams', '/v1/status', '/ui', '/ui/lib.js']) {
        const res = await raw(target, [`Origin: ${origin}`, `Authorization: Bearer ${TOKEN}`]);
        assert.equal(res.status, 403, `${target} from ${origin}`);
        assert.equal(res.headers['access-control-allow-origin'], undefined);
        assert.doesNotMatch(res.body, /"port"|<title>|export /, 'no data in the refusal');
      }
    }
    // A request marked by the browser as another site's, with no Origin (a GET of an <img> or a <script>).
    for (const site of ['cross-site', 'same-site']) {
      const res = await raw('/v1/streams', [`Sec-Fetch-Site: ${site}`, `Authorization: Bearer ${TOKEN}`]);
      assert.equal(res.status, 403, site);
    }
    // The page's own requests pass (control), still without any CORS header.
    const own = await raw('/v1/streams', [`Origin: ${portico.url}`, 'Sec-Fetch-Site: same-origin', `Authorization: Bearer ${TOKEN}`]);
    assert.equal(own.status, 200);
    assert.equal(own.headers['access-control-allow-origin'], undefined);
  });

  it('the token: only in sessionStorage, sent only as a header, never in a URL, a cookie, localStorage or a log line; Sign out removes it', async () => {
    const { page, watch } = await watchedPage(context);
    // Before sign-in: the form posted with its script's handler gone (an injection that broke the
    // page) would put the token in a URL; form-action 'none' forbids the post.
    await page.goto(`${portico.url}/ui`, { timeout: 20_000 });
    await page.getByLabel('API token').waitFor();
    await page.evaluate((token) => {
      const form = document.getElementById('sign-in-form') as HTMLFormElement;
      const bare = form.cloneNode(true) as HTMLFormElement; // listeners are not cloned
      form.replaceWith(bare);
      (bare.querySelector('#token') as HTMLInputElement).value = token;
      bare.requestSubmit();
    }, TOKEN);
    assert.ok(
      await eventually(() => page.evaluate(() => (window as unknown as { __violations: string[] }).__violations.some((v) => v.startsWith('form-action'))), 5000),
      'form-action refused the post',
    );
    assert.equal(page.url(), `${portico.url}/ui`);
    assert.equal(watch.requests.filter((r) => r.url.includes(TOKEN)).length, 0);

    await page.goto('about:blank');
    await page.goto(`${portico.url}/ui#/overview`, { timeout: 20_000 });
    await page.getByLabel('API token').fill(TOKEN);
    const signedIn = watch.requests.length;
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: 10_000 });
    for (const name of ['Streams', 'Apps', 'Certificates', 'Events', 'Overview']) {
      await page.getByRole('link', { name }).click();
      await page.getByRole('heading', { name, level: 2 }).waitFor({ timeout: 10_000 });
    }
    await page.locator('#applies li').first().waitFor({ timeout: 10_000 });
    // An app open in the editor, as someone stepping away would leave it.
    await page.getByRole('link', { name: 'Apps' }).click();
    await page.getByRole('button', { name: 'Edit app hostile-app' }).click();
    assert.ok(await eventually(async () => (await page.getByLabel('App JSON').inputValue()) !== '', 10_000));
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.locator('#applies li').first().waitFor({ timeout: 10_000 });
    const storage = await page.evaluate(() => ({ session: sessionStorage.getItem('portico.token'), local: localStorage.length, cookie: document.cookie, url: location.href, history: history.state }));
    assert.deepEqual(storage, { session: TOKEN, local: 0, cookie: '', url: `${portico.url}/ui#/overview`, history: null });
    assert.deepEqual(await context.cookies(), []);
    const apiRequests = watch.requests.filter((r) => r.url.startsWith(`${portico.url}/v1/`));
    assert.ok(apiRequests.length >= 6, 'the pages called the API');
    assert.ok(apiRequests.some((r) => r.url.includes('follow=true')), 'the event feed was followed');
    for (const request of watch.requests) {
      assert.ok(!request.url.includes(TOKEN), `a URL holds the token: ${request.url}`);
      for (const [name, value] of Object.entries(request.headers)) {
        if (name !== 'authorization') assert.ok(!value.includes(TOKEN), `header ${name} of ${request.url} holds the token`);
      }
    }
    for (const request of watch.requests.slice(signedIn)) {
      if (request.url.startsWith(`${portico.url}/v1/`)) assert.equal(request.headers.authorization, `Bearer ${TOKEN}`, request.url);
    }

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${portico.url}/ui`, { timeout: 10_000 });
    await page.getByLabel('API token').waitFor();
    assert.deepEqual(await page.evaluate(() => ({ session: sessionStorage.getItem('portico.token'), length: sessionStorage.length, field: (document.getElementById('token') as HTMLInputElement).value })), { session: null, length: 0, field: '' });
    // Nothing of what the token read stays in the tab, hidden sections included: no rows, no status,
    // no applies, no JSON in the editors (one devtools click from whoever uses the tab next).
    const left = await page.evaluate(() => ({
      children: Object.fromEntries(['status', 'applies', 'stream-rows', 'app-rows', 'cert-rows'].map((id) => [id, document.getElementById(id)!.children.length])),
      editors: ['stream-json', 'app-json'].map((id) => (document.getElementById(id) as HTMLTextAreaElement).value),
      text: document.body.textContent!.includes('hostile-app'),
    }));
    assert.deepEqual(left, { children: { status: 0, applies: 0, 'stream-rows': 0, 'app-rows': 0, 'cert-rows': 0 }, editors: ['', ''], text: false }, 'what the token read is gone');
    // Back does not bring the signed-in document (and what it showed) back either.
    await page.goBack({ timeout: 10_000 });
    await page.waitForTimeout(300);
    const back = await page.evaluate(() => ({ url: location.href, rows: document.querySelectorAll('tbody tr, #status dt, #applies li').length, text: document.body.textContent!.includes('hostile-app'), editor: (document.getElementById('app-json') as HTMLTextAreaElement | null)?.value ?? '' }));
    assert.deepEqual({ ...back, url: undefined }, { url: undefined, rows: 0, text: false, editor: '' }, `after Back, at ${back.url}`);
    await page.goForward({ timeout: 10_000 }).catch(() => undefined);
    // Signed out, the next page asks again instead of reading anything.
    await page.getByRole('link', { name: 'Streams' }).click();
    await page.getByLabel('API token').waitFor();
    assert.equal(await page.locator('#streams').isHidden(), true);
    await page.close();

    const output = portico.output();
    assert.ok(output.includes('/v1/events'), 'the console\'s requests are in the log');
    assert.ok(!output.includes(TOKEN), 'the token is in Portico\'s output');
    for (const part of [TOKEN.slice(0, 20), TOKEN.slice(20, 40), TOKEN.slice(-12)]) assert.ok(!output.includes(part), 'part of the token is in Portico\'s output');
  });

  it('static files: no path trick reads a file outside the fixed list; HEAD and other methods behave', async () => {
    const secrets = await Promise.all(
      ['package.json', 'src/main.ts', 'src/api/console.ts', 'node_modules/uplot/dist/uPlot.cjs.js', 'tsconfig.json'].map(async (file) => (await readFile(path.join(REPO, file), 'utf8')).slice(0, 120)),
    );
    const probes = [
      '/ui/../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/%2E%2E/package.json',
      '/ui/..%2fpackage.json',
      '/ui/..%2fsrc%2fmain.ts',
      '/ui/..%5c..%5cpackage.json',
      '/ui/vendor/../../package.json',
      '/ui/vendor/..%2f..%2fpackage.json',
      '/ui/vendor/%2e%2e/%2e%2e/tsconfig.json',
      '/ui/vendor/uPlot.cjs.js',
      '/ui/vendor/uPlot.js',
      '/ui/Console.js',
      '/ui/CONSOLE.JS',
      '/ui/console.js.map',
      '/ui/console.ts',
      '/ui/index.html',
      '/ui/./console.js/..',
      '/ui//console.js',
      '/ui/console.js/',
      '/ui/console.js%00',
      '/ui/console.js%00.css',
      `/ui/${'a'.repeat(4000)}.js`,
      `/ui/vendor/${'%2e%2e%2f'.repeat(500)}package.json`,
      '/ui/vendor',
      '/ui/vendor/',
      '/ui/api/console.ts',
      '/src/api/console.ts',
      '/package.json',
      '/node_modules/uplot/dist/uPlot.cjs.js',
    ];
    for (const target of probes) {
      for (const auth of [[], [`Authorization: Bearer ${TOKEN}`]]) {
        const res = await raw(target, auth);
        assert.ok([400, 401, 404].includes(res.status), `${target}${auth.length ? ' with the token' : ''}: ${res.status}`);
        for (const secret of secrets) assert.ok(!res.body.includes(secret), `${target} answered a file's content`);
      }
    }
    // A NUL byte and a name past the request line's limit: refused by the HTTP parser.
    for (const target of ['/ui/console.js\0', `/ui/${'a'.repeat(20_000)}.js`]) {
      const res = await raw(target).catch(() => ({ status: 0, body: '', headers: {} }));
      assert.ok([0, 400, 414, 431].includes(res.status), `${JSON.stringify(target.slice(0, 30))}: ${res.status}`);
      for (const secret of secrets) assert.ok(!res.body.includes(secret));
    }
    // The files of the list answer (controls), to GET and HEAD alike; other methods get the API's answers.
    for (const target of ['/ui', '/ui/console.js', '/ui/lib.js', '/ui/console.css', '/ui/vendor/uPlot.esm.js', '/ui/vendor/uPlot.min.css', '/ui/console.js?x=1']) {
      const get = await raw(target);
      assert.equal(get.status, 200, target);
      assert.match(get.headers['content-security-policy'] ?? '', /default-src 'none'/);
      const head = await raw(target, [], 'HEAD');
      assert.equal(head.status, 200, `HEAD ${target}`);
      assert.equal(head.body, '', `HEAD ${target} has no body`);
      assert.equal(head.headers['content-type'], get.headers['content-type']);
      assert.equal(head.headers['content-security-policy'], get.headers['content-security-policy']);
    }
    // OPTIONS: the router's own answer, the methods the path has, and nothing of the file.
    for (const target of ['/ui', '/ui/console.js', '/ui/vendor/uPlot.esm.js', '/ui/vendor/uPlot.cjs.js', '/ui/..%2fpackage.json']) {
      const res = await raw(target, [], 'OPTIONS');
      assert.deepEqual([res.status, res.headers.allow, res.body], [200, 'GET, HEAD', 'GET, HEAD'], `OPTIONS ${target}`);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'TRACE']) {
      for (const target of ['/ui', '/ui/console.js']) {
        const res = await raw(target, ['Content-Length: 0'], method);
        assert.equal(res.status, 401, `${method} ${target} without the token`);
        const withToken = await raw(target, ['Content-Length: 0', `Authorization: Bearer ${TOKEN}`], method);
        assert.equal(withToken.status, 404, `${method} ${target} with the token`);
        assert.doesNotMatch(withToken.body, /<title>|import /, `${method} ${target}: not the file`);
      }
    }
  });

  it('a foreign Host (DNS rebinding): /ui and the API it calls refuse it, in raw requests and in Chromium', async () => {
    for (const host of [`${REBIND}:${apiPort}`, REBIND, `localhost.${REBIND}:${apiPort}`, `127.0.0.1.${REBIND}:${apiPort}`, `127.0.0.1:${apiPort}@${REBIND}`, `${REBIND}:${apiPort}.`]) {
      for (const target of ['/ui', '/ui/console.js', '/v1/streams', '/v1/events?follow=true']) {
        const res = await rawRequest('127.0.0.1', apiPort, [`GET ${target} HTTP/1.1`, `Host: ${host}`, `Authorization: Bearer ${TOKEN}`, 'Connection: close'].join('\r\n'));
        assert.ok([400, 403].includes(res.status), `${target} with Host ${host}: ${res.status}`);
        assert.doesNotMatch(res.body, /<title>|"port"|import /, 'nothing of the console or the edge');
      }
    }
    // The absolute form, naming the attacker's host, and a second Host header.
    const absolute = await rawRequest('127.0.0.1', apiPort, [`GET http://${REBIND}:${apiPort}/ui HTTP/1.1`, `Host: 127.0.0.1:${apiPort}`, 'Connection: close'].join('\r\n'));
    assert.equal(absolute.status, 403);
    const twice = await rawRequest('127.0.0.1', apiPort, ['GET /ui HTTP/1.1', `Host: 127.0.0.1:${apiPort}`, `Host: ${REBIND}:${apiPort}`, 'Connection: close'].join('\r\n'));
    assert.equal(twice.status, 400);

    // In the browser: the attacker's name now resolves to 127.0.0.1; the page is refused.
    const { page } = await watchedPage(context);
    const answer = await page.goto(`http://${REBIND}:${apiPort}/ui`, { timeout: 20_000 });
    assert.equal(answer?.status(), 403);
    assert.equal(await page.locator('#sign-in-form').count(), 0);
    assert.match((await page.textContent('body')) ?? '', /Host/);
    // A script of that origin (the attacker's, served before the rebinding) reads nothing either.
    const read = await page.evaluate(async (token) => {
      const res = await fetch('/v1/streams', { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, text: await res.text() };
    }, TOKEN);
    assert.equal(read.status, 403);
    assert.doesNotMatch(read.text, /"port"/);
    await page.close();
  });
});
