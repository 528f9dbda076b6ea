/**
 * The console (issue 17, its first part: sign-in, streams, the overview's live applies), driven in
 * Debian's Chromium the way a person uses it, by accessible names, against a real Portico and nginx:
 * bytes go through the stream it creates, its preview shows nginx's own refusal, and an apply made by
 * a script appears in the overview without a reload.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { accessibilityProblems, startConsole, type ConsoleRig } from '../helpers/console.js';
import { accepts, eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import type { ChildPortico } from '../helpers/portico.js';

const TOKEN = 'console-test-token-0123456789';
const RANGE = { from: 30600, to: 30609 };

describe('the console in a real browser', () => {
  let rig: ConsoleRig;
  let portico: ChildPortico;
  let page: Page;
  let problems: string[];
  let echo: EchoServer;

  const api = (path: string, init: RequestInit = {}) => rig.api(path, init);
  const streamPorts = async (): Promise<number[]> => ((await (await api('/v1/streams')).json()) as Array<{ port: number }>).map((s) => s.port);

  before(async () => {
    echo = await startEcho();
    rig = await startConsole('console', TOKEN, { PORT_RANGE: `${RANGE.from}-${RANGE.to}`, HTTP_PORT: '30618', HTTPS_PORT: '30619' });
    ({ portico, page, problems } = rig);
  });

  after(async () => {
    await rig?.close();
    await echo?.close();
  });

  it('serves the page under a CSP without unsafe-inline, never framed, with no data in it', async () => {
    const res = await fetch(`${portico.url}/ui`);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    const html = await res.text();
    assert.doesNotMatch(html, /<script>|style=/, 'no inline script or style');
    // Without the token, the page loads but nothing of the edge does.
    assert.equal((await fetch(`${portico.url}/v1/streams`)).status, 401);
  });

  it('asks for the token once, then shows the overview', async () => {
    await page.goto(`${portico.url}/ui`, { timeout: 20_000 });
    await page.getByLabel('API token').waitFor();
    assert.deepEqual(await accessibilityProblems(page), [], 'the sign-in page');
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#status').textContent()) ?? '', /running/);
    assert.deepEqual(await accessibilityProblems(page), [], 'the overview');
    // Kept in the tab's sessionStorage: not in the URL, not in a cookie.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('portico.token')), TOKEN);
    assert.doesNotMatch(page.url(), new RegExp(TOKEN));
    assert.deepEqual(await page.context().cookies(), []);
  });

  it('creates a stream from the form with the port left empty: listed with its allocated port, bytes go through nginx', async () => {
    await page.getByRole('link', { name: 'Streams' }).click();
    await page.getByRole('heading', { name: 'Streams' }).waitFor();
    await page.locator('#streams').getByLabel('Backend').fill(`127.0.0.1:${echo.port}`);
    await page.getByRole('button', { name: 'Create stream' }).click();
    const button = page.getByRole('button', { name: /^Delete stream \d+$/ });
    await button.waitFor({ timeout: 10_000 });
    const port = Number(((await button.getAttribute('aria-label')) ?? '').replace('Delete stream ', ''));
    assert.ok(port >= RANGE.from && port <= RANGE.to);
    assert.deepEqual(await streamPorts(), [port]);
    assert.equal(await roundTrip(port, 'through the console'), 'through the console');
    assert.deepEqual(await accessibilityProblems(page), [], 'the streams page, with a stream');
  });

  it('a backend nginx cannot resolve: Preview shows nginx\'s own message beside the field, and nothing is written', async () => {
    const before = await streamPorts();
    await page.locator('#streams').getByLabel('Backend').fill('no-such-host.invalid:5432');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByText(/host not found/).first().waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#backend-error').textContent()) ?? '', /host not found in upstream "no-such-host\.invalid/);
    assert.deepEqual(await streamPorts(), before);
    assert.deepEqual(await accessibilityProblems(page), [], 'the streams page, with a refused preview');
  });

  it('edits through the advanced editor: the whole JSON, previewed, applied with If-Match; a change made meanwhile is refused, not overwritten', async () => {
    const port = (await streamPorts())[0] as number;
    await page.getByRole('button', { name: `Edit stream ${port}` }).click();
    const editor = page.getByLabel('Stream JSON');
    await editor.waitFor();
    const read = JSON.parse(await editor.inputValue()) as Record<string, unknown>;
    assert.equal(read.port, port);
    await editor.fill(JSON.stringify({ ...read, labels: { team: 'edge' } }));
    await page.getByRole('button', { name: 'Preview JSON' }).click();
    await page.getByText('nginx accepts it.').last().waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#editor-file').textContent()) ?? '', new RegExp(`listen\\s+(\\S+:)?${port}`));
    assert.deepEqual(await accessibilityProblems(page), [], 'the streams page, with the advanced editor');
    await page.getByRole('button', { name: 'Apply JSON' }).click();
    await page.getByRole('cell', { name: 'team=edge' }).waitFor({ timeout: 10_000 });
    assert.deepEqual(((await (await api(`/v1/streams/${port}`)).json()) as { labels: unknown }).labels, { team: 'edge' });

    // Not JSON: said beside the editor, nothing sent.
    await page.getByRole('button', { name: `Edit stream ${port}` }).click();
    await editor.fill('{"labels": ');
    await page.getByRole('button', { name: 'Apply JSON' }).click();
    assert.match((await page.locator('#editor-error').textContent()) ?? '', /Stream JSON is not JSON/);

    // Read, then changed by a script, then applied from the page: 412, and the script's change stays.
    await page.getByRole('button', { name: `Edit stream ${port}` }).click();
    await editor.fill(JSON.stringify({ ...read, labels: { team: 'console' } }));
    const script = await api(`/v1/streams/${port}`, { method: 'PUT', body: JSON.stringify({ ...read, labels: { team: 'script' } }) });
    assert.equal(script.status, 200);
    await page.getByRole('button', { name: 'Apply JSON' }).click();
    await page.locator('#editor-error').filter({ hasText: /./ }).waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#editor-error').textContent()) ?? '', /changed|If-Match|precondition/i);
    assert.deepEqual(((await (await api(`/v1/streams/${port}`)).json()) as { labels: unknown }).labels, { team: 'script' });
    await page.getByRole('button', { name: 'Close editor' }).click();
    assert.equal(await roundTrip(port, 'after the edits'), 'after the edits');
  });

  it('an apply made by a script appears in the overview without a reload', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const before = await page.locator('#applies li').count();
    const created = await api('/v1/streams', { method: 'POST', body: JSON.stringify({ port: RANGE.to, backend: `127.0.0.1:${echo.port}` }) });
    assert.equal(created.status, 201);
    const shown = await eventually(async () => ((await page.locator('#applies li').first().textContent()) ?? '').includes(`applying stream ${RANGE.to}`), 10_000, 100);
    assert.ok(shown, `the overview lists the script's apply (had ${before} entries)`);
  });

  it('the live list follows through a restart of Portico: an apply made after it appears without a reload', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const before = problems.length;
    await rig.restart();
    portico = rig.portico;
    const created = await api('/v1/streams', { method: 'POST', body: JSON.stringify({ port: RANGE.to - 1, backend: `127.0.0.1:${echo.port}` }) });
    assert.equal(created.status, 201);
    // The page's follow ended with the old process; it opens again (after 1 s, then 2, 4...) from the last id it saw.
    const shown = await eventually(async () => ((await page.locator('#applies li').first().textContent()) ?? '').includes(`applying stream ${RANGE.to - 1}`), 30_000, 200);
    assert.ok(shown, `the overview lists the apply made after the restart: ${await page.locator('#applies').textContent()}`);
    assert.equal(await roundTrip(RANGE.to - 1, 'after the restart'), 'after the restart');
    // The browser logs the feed cut by the restart and its tries while Portico was away: those only.
    const during = problems.splice(before);
    assert.ok(during.every((line) => line.includes('/v1/events?follow=true')), JSON.stringify(during));
  });

  it('deletes through the row\'s button: the list updates and nginx stops serving the port', async () => {
    await page.getByRole('link', { name: 'Streams' }).click();
    const ports = await streamPorts();
    const port = ports[0] as number;
    await page.getByRole('button', { name: `Delete stream ${port}` }).click();
    await page.getByRole('button', { name: `Delete stream ${port}` }).waitFor({ state: 'detached', timeout: 10_000 });
    assert.deepEqual(await streamPorts(), ports.slice(1));
    assert.equal(await accepts(port), false);
    assert.deepEqual(problems, []);
  });

  it('a page whose answer comes after the person moved on shows nothing: Streams answered late does not cover the Overview, nor starts its traffic reads', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const traffic: string[] = [];
    const onRequest = (request: { url(): string }) => {
      if (request.url().includes('/v1/traffic/')) traffic.push(request.url());
    };
    page.on('request', onRequest);
    let answered!: () => void;
    const late = new Promise<void>((resolve) => (answered = resolve));
    await page.route('**/v1/streams', async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await route.continue();
      answered();
    });
    try {
      await page.getByRole('link', { name: 'Streams' }).click();
      await page.getByRole('link', { name: 'Overview' }).click();
      await late;
      // Past the traffic reads' settling time (300 ms), with room.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(await page.locator('#overview').isVisible(), true);
      assert.equal(await page.locator('#streams').isVisible(), false);
      assert.deepEqual(traffic, []);
    } finally {
      await page.unroute('**/v1/streams');
      page.off('request', onRequest);
    }
  });

  it('a token refused mid-session: a fresh document on the sign-in form says so, with nothing the token read left in it', async () => {
    await page.getByRole('link', { name: 'Streams' }).click();
    await page.getByRole('heading', { name: 'Streams' }).waitFor();
    assert.ok((await page.locator('#stream-rows tr').count()) > 0);
    // As if the token had been revoked: the next call answers 401.
    await page.evaluate(() => sessionStorage.setItem('portico.token', 'revoked-token-0123456789'));
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByText('That token was refused.').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#stream-rows tr').count(), 0);
    assert.equal(await page.locator('#status dd').count(), 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('portico.token')), null);
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#status').textContent()) ?? '', /running/);
  });
});

describe('the console with 98 streams: paged and filtered in the page', () => {
  const FROM = 30700;
  const COUNT = 100;
  let rig: ConsoleRig;
  let page: Page;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    rig = await startConsole('console-scale', TOKEN, { PORT_RANGE: `${FROM}-${FROM + COUNT - 3}`, HTTP_PORT: '30798', HTTPS_PORT: '30799' });
    page = rig.page;
    // Half of them labelled group=blue, half group=green; all at once, as a script would.
    const created = await Promise.all(
      Array.from({ length: COUNT - 2 }, (_, i) =>
        rig.api('/v1/streams', { method: 'POST', body: JSON.stringify({ port: FROM + i, backend: `127.0.0.1:${echo.port}`, labels: { group: i % 2 === 0 ? 'blue' : 'green' } }) }).then((r) => r.status),
      ),
    );
    assert.deepEqual([...new Set(created)], [201]);
  });

  after(async () => {
    await rig?.close();
    await echo?.close();
  });

  it('shows 50 rows a page, pages forward and back, and filters by label and port', async () => {
    await rig.signIn('#/streams', 'Streams');
    const count = page.locator('#stream-count');
    await count.filter({ hasText: 'Streams 1–50 of 98' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#stream-rows tr').count(), 50);
    assert.equal(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Next page' }).click();
    await count.filter({ hasText: 'Streams 51–98 of 98' }).waitFor();
    assert.equal(await page.locator('#stream-rows tr').count(), 48);
    await page.getByRole('button', { name: `Delete stream ${FROM + 97}` }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await count.filter({ hasText: 'Streams 1–50 of 98' }).waitFor();

    await page.getByLabel('Filter streams').fill('group=green');
    await count.filter({ hasText: 'Streams 1–49 of 49 matching of 98' }).waitFor();
    const labels = await page.locator('#stream-rows tr td:nth-child(5)').allTextContents();
    assert.equal(labels.length, 49);
    assert.deepEqual([...new Set(labels)], ['group=green']);
    await page.getByLabel('Filter streams').fill(String(FROM + 42));
    await count.filter({ hasText: 'of 1 matching of 98' }).waitFor();
    await page.getByRole('button', { name: `Delete stream ${FROM + 42}` }).waitFor();
    await page.getByLabel('Filter streams').fill('no-such-thing');
    await count.filter({ hasText: 'No stream matches (of 98).' }).waitFor();
    assert.equal(await page.locator('#stream-rows tr').count(), 0);
    assert.deepEqual(await accessibilityProblems(page), [], 'the streams page, filtered to nothing');
    await page.getByLabel('Filter streams').fill('');
    await count.filter({ hasText: 'Streams 1–50 of 98' }).waitFor();
    assert.deepEqual(await accessibilityProblems(page), [], 'the streams page, 98 streams');
    // The page measured itself (bench/console.ts reads these at 5,000 streams).
    const measures = await page.evaluate(() => performance.getEntriesByType('measure').map((m) => m.name));
    assert.ok(measures.includes('portico.streams.render') && measures.includes('portico.streams.filter'), JSON.stringify(measures));
    assert.deepEqual(rig.problems, []);
  });
});
