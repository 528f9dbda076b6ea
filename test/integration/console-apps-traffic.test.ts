/**
 * The apps page's traffic charts, filter and pager (issue 17), in Debian's Chromium against a real
 * Portico and nginx sampling its traffic every second (TRAFFIC_HISTORY_INTERVAL=1s): apps created
 * through the API to an HTTP backend the test runs, requests sent through nginx with the app's Host
 * (answered 200 and 404 by the backend), and the row's chart states exactly those counts by status
 * class, with a uPlot canvas in the row; the filter narrows the rows, the pager shows 50 at a time and
 * the charts read the rows shown only; leaving the page stops the reads.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { launchChromium, type RunningChromium } from '../helpers/chromium.js';
import { accessibilityProblems, watchPageErrors } from '../helpers/console.js';
import { send } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { freePort } from '../helpers/pebble.js';
import { discardPortico, spawnPortico, tempDir, type ChildPortico } from '../helpers/portico.js';

const TOKEN = 'console-apps-traffic-token-0123456789';
const HTTP = 30778;
const HTTPS = 30779;
/** Requests sent to app shop: answered 200 by the backend, and 404 (path /missing). */
const OK = 5;
const MISSING = 2;
/** Apps made for the pager, on top of the three the test starts with: 53 apps, two pages. */
const MORE = 50;

interface AppHistory {
  name: string;
  totals: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>;
  series: Array<{ at: string } & Record<string, number>>;
}

/** An HTTP backend on 127.0.0.1 answering 404 to /missing and 200 to anything else. */
async function startStatusBackend(): Promise<{ port: number; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    requests += 1;
    const missing = req.url === '/missing';
    res.writeHead(missing ? 404 : 200, { 'content-type': 'text/plain' }).end(missing ? 'not here\n' : 'ok\n');
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("the apps page's traffic charts, filter and pager in a real browser", () => {
  let portico: ChildPortico;
  let stateDir: string;
  let backend: Awaited<ReturnType<typeof startStatusBackend>>;
  let chromium: RunningChromium;
  let page: Page;
  const problems: string[] = [];
  /** The page's requests of /v1/traffic/apps: when, and the names asked for. */
  const trafficRequests: Array<{ at: number; names: string[] }> = [];

  const api = (path: string, init: RequestInit = {}) => fetch(`${portico.url}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers } });
  const createApp = async (app: object): Promise<void> => {
    const res = await api('/v1/apps', { method: 'POST', body: JSON.stringify(app) });
    assert.equal(res.status, 201, `creating ${JSON.stringify(app)}: ${res.status} ${await res.text()}`);
  };
  const history = async (names: string[]): Promise<AppHistory[]> => {
    const res = await api(`/v1/traffic/apps?names=${names.join(',')}`);
    assert.equal(res.status, 200);
    return ((await res.json()) as { apps: AppHistory[] }).apps;
  };
  /** The sentence the chart of app `name` states (its accessible name). */
  const chartText = async (name: string): Promise<string> => (await page.getByRole('img', { name: new RegExp(`^app ${name}: `) }).getAttribute('aria-label')) ?? '';
  const rowNames = async (): Promise<string[]> => page.locator('#app-rows').getByRole('rowheader').allTextContents();
  const count = async (): Promise<string> => (await page.locator('#app-count').textContent()) ?? '';
  const filter = () => page.getByLabel('Filter apps');

  before(async () => {
    backend = await startStatusBackend();
    stateDir = await tempDir('console-apps-traffic');
    portico = await spawnPortico({
      STATE_DIR: stateDir,
      BIND_PORT: String(await freePort()),
      PORT_RANGE: '30760-30769',
      HTTP_PORT: String(HTTP),
      HTTPS_PORT: String(HTTPS),
      API_TOKEN: TOKEN,
      TRAFFIC_HISTORY_INTERVAL: '1s',
      LOG_LEVEL: 'warn',
    });
    const upstream = `127.0.0.1:${backend.port}`;
    await createApp({ name: 'shop', serverNames: ['shop.traffic.test'], routes: [{ upstreams: [{ address: upstream }] }] });
    await createApp({ name: 'blog', serverNames: ['blog.traffic.test', 'www.blog.traffic.test'], routes: [{ upstreams: [{ address: upstream }] }] });
    // A second upstream address (nothing listens there: no request is sent to it) and a badge to filter by.
    await createApp({ name: 'chat', serverNames: ['chat.traffic.test'], routes: [{ path: '/ws', websocket: true, upstreams: [{ address: '127.0.0.9:9999' }] }] });
    chromium = await launchChromium([]);
    page = await chromium.browser.newPage();
    watchPageErrors(page, problems);
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/v1/traffic/apps') trafficRequests.push({ at: Date.now(), names: (url.searchParams.get('names') ?? '').split(',') });
    });
  });

  after(async () => {
    await chromium?.close();
    await discardPortico(portico, stateDir);
    await backend?.close();
  });

  it('signs in on the apps page: each row has a chart that states its totals once read', async () => {
    await page.goto(`${portico.url}/ui#/apps`, { timeout: 20_000 });
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Apps', level: 2 }).waitFor({ timeout: 10_000 });
    await page.getByRole('button', { name: 'Delete app shop' }).waitFor({ timeout: 10_000 });
    assert.deepEqual(await rowNames(), ['blog', 'chat', 'shop']);
    assert.equal(await count(), 'Apps 1–3 of 3');
    assert.ok(await page.getByRole('button', { name: 'Previous page' }).isDisabled());
    assert.ok(await page.getByRole('button', { name: 'Next page' }).isDisabled());
    await page.getByRole('columnheader', { name: 'Traffic' }).waitFor();
    for (const name of ['blog', 'chat', 'shop']) {
      const read = await eventually(async () => / in the last \d+ (seconds?|minutes)$/.test(await chartText(name)), 10_000, 100);
      assert.ok(read, `the chart of ${name} states its totals: ${await chartText(name)}`);
    }
    assert.match(await chartText('blog'), /^app blog: 0 requests in the last /);
  });

  it('requests through nginx answered 200 and 404 make the chart rise to exactly those counts, with a uPlot canvas in the row', async () => {
    const [before] = await history(['shop']);
    assert.deepEqual(before!.totals, { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 }, 'nothing counted for shop before the test sends');
    const textBefore = await chartText('shop');
    assert.match(textBefore, /^app shop: 0 requests in the last /);

    for (let i = 0; i < OK; i += 1) assert.equal((await send({ port: HTTP, host: 'shop.traffic.test', path: `/item/${i}` })).status, 200);
    for (let i = 0; i < MISSING; i += 1) assert.equal((await send({ port: HTTP, host: 'shop.traffic.test', path: '/missing' })).status, 404);
    assert.equal(backend.requests(), OK + MISSING, 'every request reached the backend');

    // The API: exactly what was sent, by status class.
    let totals = before!.totals;
    const counted = await eventually(
      async () => {
        totals = (await history(['shop']))[0]!.totals;
        return totals['2xx'] === OK && totals['4xx'] === MISSING;
      },
      15_000,
      200,
    );
    assert.ok(counted, `the history counts ${OK} 2xx and ${MISSING} 4xx: ${JSON.stringify(totals)}`);
    assert.deepEqual(totals, { '1xx': 0, '2xx': OK, '3xx': 0, '4xx': MISSING, '5xx': 0 });

    // The page: its next refresh (every second) states the same counts.
    const want = new RegExp(`^app shop: ${OK + MISSING} requests \\(${OK} 2xx, ${MISSING} 4xx\\) in the last \\d+ (seconds|minutes)$`);
    const risen = await eventually(async () => want.test(await chartText('shop')), 10_000, 100);
    assert.ok(risen, `the chart states ${want} (was "${textBefore}", is "${await chartText('shop')}")`);
    const row = page.locator('#app-rows tr').filter({ has: page.getByRole('rowheader', { name: 'shop', exact: true }) });
    assert.ok((await row.locator('canvas').count()) >= 1, 'a uPlot canvas in the row');
    assert.equal(await row.locator('.uplot').count(), 1, 'one chart in the row');
    assert.match(await chartText('blog'), /^app blog: 0 requests in the last /, "the other apps' charts stay at 0");
    assert.deepEqual(await accessibilityProblems(page), [], 'the apps page, with charts');
  });

  it('Filter apps narrows the rows by name, server name, upstream and badge; the count says so', async () => {
    await filter().fill('blog');
    await eventually(async () => (await rowNames()).length === 1, 5_000, 50);
    assert.deepEqual(await rowNames(), ['blog']);
    assert.equal(await count(), 'Apps 1–1 of 1 matching of 3');
    // The row shown is read again once the typing settles.
    const read = await eventually(async () => /^app blog: 0 requests in the last /.test(await chartText('blog')), 10_000, 100);
    assert.ok(read, `the chart of blog is read after filtering: ${await chartText('blog')}`);

    for (const [words, names] of [
      ['www.blog.traffic', ['blog']],
      ['127.0.0.9', ['chat']],
      ['websocket', ['chat']],
      ['/ws', ['chat']],
      [`127.0.0.1:${backend.port}`, ['blog', 'shop']],
      ['SHOP traffic.test', ['shop']],
    ] as const) {
      await filter().fill(words);
      const narrowed = await eventually(async () => JSON.stringify(await rowNames()) === JSON.stringify(names), 5_000, 50);
      assert.ok(narrowed, `"${words}" shows ${names.join(', ')}: got ${(await rowNames()).join(', ')}`);
    }
    await filter().fill('no-such-app');
    await page.locator('#app-rows').getByText('No app matches (of 3).').waitFor({ timeout: 5_000 });
    assert.equal(await count(), 'No app matches (of 3).');
    assert.equal(await page.getByRole('img', { name: /^app / }).count(), 0, 'no chart without a row');
    assert.deepEqual(await accessibilityProblems(page), [], 'the apps page, filtered to nothing');
    await filter().fill('');
    await eventually(async () => (await rowNames()).length === 3, 5_000, 50);
    assert.equal(await count(), 'Apps 1–3 of 3');
  });

  it('pages of 50 rows: Next page shows the rest, and the charts read the rows shown only', async () => {
    // Sent together: the applier takes them in a few batches.
    await Promise.all(
      Array.from({ length: MORE }, (_, i) => createApp({ name: `page-${String(i).padStart(2, '0')}`, serverNames: [`p${i}.traffic.test`], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] })),
    );
    const total = MORE + 3;
    // The page reads the list again when it is shown again.
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByRole('link', { name: 'Apps' }).click();
    await page.locator('#app-count').getByText(`Apps 1–50 of ${total}`).waitFor({ timeout: 10_000 });
    assert.equal((await rowNames()).length, 50);
    assert.ok(await page.getByRole('button', { name: 'Previous page' }).isDisabled());

    await page.getByRole('button', { name: 'Next page' }).click();
    await page.locator('#app-count').getByText(`Apps 51–${total} of ${total}`).waitFor({ timeout: 5_000 });
    const second = await rowNames();
    assert.equal(second.length, total - 50);
    assert.ok(await page.getByRole('button', { name: 'Next page' }).isDisabled());
    const askedFrom = trafficRequests.length;
    const read = await eventually(async () => trafficRequests.slice(askedFrom).length >= 1, 5_000, 50);
    assert.ok(read, 'the second page is read');
    assert.deepEqual(trafficRequests[askedFrom]!.names, second, 'the read asks for the rows shown only');
    const drawn = await eventually(async () => / in the last /.test(await chartText('shop')), 10_000, 100);
    assert.ok(drawn && second.includes('shop'), `shop, on the second page, has its chart: ${await chartText('shop')}`);
    assert.match(await chartText('shop'), new RegExp(`^app shop: ${OK + MISSING} requests \\(${OK} 2xx, ${MISSING} 4xx\\)`));

    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.locator('#app-count').getByText(`Apps 1–50 of ${total}`).waitFor({ timeout: 5_000 });
    assert.deepEqual(await accessibilityProblems(page), [], 'the apps page, paged');
  });

  it('leaving the page stops the reads of /v1/traffic/apps; no page errors', async () => {
    const readBefore = trafficRequests.length;
    const reading = await eventually(() => trafficRequests.length > readBefore, 5_000, 50);
    assert.ok(reading, 'the page reads every interval while it shows');
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // A request already on its way may still land: count from a moment after.
    await sleep(300);
    const left = trafficRequests.length;
    await sleep(2500);
    assert.equal(trafficRequests.length, left, 'no /v1/traffic/apps request after leaving the apps page');
    assert.deepEqual(problems, []);
  });
});
