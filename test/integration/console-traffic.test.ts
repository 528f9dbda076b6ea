/**
 * The streams page's traffic charts (issue 17), in Debian's Chromium against a real Portico and
 * nginx sampling its traffic every second (TRAFFIC_HISTORY_INTERVAL=1s): a stream created from the
 * form with the port left empty, bytes sent through nginx to an echo backend the test runs, and the
 * chart's stated totals rise to exactly what was sent, with a uPlot canvas in the row; and
 * /v1/traffic/streams itself: its query rules, and counts that match the bytes sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { accessibilityProblems, startConsole, type ConsoleRig } from '../helpers/console.js';
import { eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';

const TOKEN = 'console-traffic-token-0123456789';
const RANGE = { from: 30640, to: 30649 };
/** Three sessions of 400 bytes each way: 1.2 kB in, 1.2 kB out. */
const SESSIONS = 3;
const PAYLOAD = 'x'.repeat(400);

interface StreamHistory {
  port: number;
  totals: { bytesIn: number; bytesOut: number; sessions: number };
  series: Array<{ at: string; bytesIn: number; bytesOut: number; sessions: number }>;
}

describe("the streams page's traffic charts in a real browser", () => {
  let rig: ConsoleRig;
  let page: Page;
  let problems: string[];
  let echo: EchoServer;
  let port: number;
  /** The page's requests of /v1/traffic, by time. */
  const trafficRequests: number[] = [];

  const api = (path: string, init: RequestInit = {}) => rig.api(path, init);
  const history = async (ports: number[]): Promise<{ intervalMs: number; from: string; to: string; streams: StreamHistory[] }> => {
    const res = await api(`/v1/traffic/streams?ports=${ports.join(',')}`);
    assert.equal(res.status, 200);
    return (await res.json()) as { intervalMs: number; from: string; to: string; streams: StreamHistory[] };
  };
  /** The sentence the chart of `port` states (its accessible name). */
  const chartText = async (): Promise<string> => (await page.getByRole('img', { name: new RegExp(`^stream ${port}: `) }).getAttribute('aria-label')) ?? '';

  before(async () => {
    echo = await startEcho();
    rig = await startConsole('console-traffic', TOKEN, { PORT_RANGE: `${RANGE.from}-${RANGE.to}`, HTTP_PORT: '30658', HTTPS_PORT: '30659', TRAFFIC_HISTORY_INTERVAL: '1s' });
    ({ page, problems } = rig);
    page.on('request', (request) => {
      if (new URL(request.url()).pathname.startsWith('/v1/traffic/')) trafficRequests.push(Date.now());
    });
  });

  after(async () => {
    await rig?.close();
    await echo?.close();
  });

  it('signs in and creates a stream from the form with the port left empty: its row has a chart', async () => {
    await rig.signIn('#/streams', 'Streams');
    await page.getByRole('heading', { name: 'Streams' }).waitFor({ timeout: 10_000 });
    await page.locator('#streams').getByLabel('Backend').fill(`127.0.0.1:${echo.port}`);
    await page.getByRole('button', { name: 'Create stream' }).click();
    const button = page.getByRole('button', { name: /^Delete stream \d+$/ });
    await button.waitFor({ timeout: 10_000 });
    port = Number(((await button.getAttribute('aria-label')) ?? '').replace('Delete stream ', ''));
    assert.ok(port >= RANGE.from && port <= RANGE.to, `allocated ${port}`);
    await page.getByRole('columnheader', { name: 'Traffic' }).waitFor();
    // The first read states the window; before it, "not read yet".
    const read = await eventually(async () => / in the last \d+ seconds?$/.test(await chartText()), 10_000, 100);
    assert.ok(read, `the chart states its totals: ${await chartText()}`);
  });

  it('bytes sent through nginx make the chart rise to exactly what was sent, with a uPlot canvas in the row', async () => {
    // Portico's own check of the new stream is a session of 0 bytes: wait until it is counted, so
    // that what follows is the test's alone.
    const checked = await eventually(async () => ((await history([port])).streams[0]?.totals.sessions ?? 0) >= 1, 15_000, 200);
    assert.ok(checked, "Portico's check connection is counted");
    const textBefore = await chartText();
    const before = (await history([port])).streams[0]!.totals;
    assert.deepEqual({ bytesIn: before.bytesIn, bytesOut: before.bytesOut }, { bytesIn: 0, bytesOut: 0 });

    for (let i = 0; i < SESSIONS; i += 1) assert.equal(await roundTrip(port, PAYLOAD), PAYLOAD);
    const sent = SESSIONS * PAYLOAD.length;

    // The API: exactly the bytes sent, each way, and the test's sessions (counted as each ends).
    let totals = before;
    const counted = await eventually(
      async () => {
        totals = (await history([port])).streams[0]!.totals;
        return totals.bytesIn === sent && totals.bytesOut === sent && totals.sessions === before.sessions + SESSIONS;
      },
      15_000,
      200,
    );
    assert.ok(counted, `the history counts ${sent} bytes each way in ${SESSIONS} more sessions: ${JSON.stringify(totals)} (before ${JSON.stringify(before)})`);

    // The page: its next refresh (every second) states the same totals.
    const sessions = before.sessions + SESSIONS;
    const want = new RegExp(`^stream ${port}: 1\\.2 kB in, 1\\.2 kB out, ${sessions} sessions in the last \\d+ (seconds|minutes)$`);
    const risen = await eventually(async () => want.test(await chartText()), 10_000, 100);
    assert.ok(risen, `the chart states ${want} (was "${textBefore}", is "${await chartText()}")`);
    assert.match(textBefore, new RegExp(`^stream ${port}: 0 B in, 0 B out, `));
    const row = page.getByRole('row').filter({ has: page.getByRole('button', { name: `Delete stream ${port}` }) });
    assert.ok((await row.locator('canvas').count()) >= 1, 'a uPlot canvas in the row');
    assert.ok((await row.locator('.uplot').count()) === 1, 'one chart in the row');
    assert.deepEqual(await accessibilityProblems(page), [], 'the streams page, with a chart');
  });

  it('/v1/traffic/streams: the window and a point per interval that moved, adding up to the totals', async () => {
    const answer = await history([port, RANGE.to]);
    assert.equal(answer.intervalMs, 1000);
    assert.ok(Date.parse(answer.from) < Date.parse(answer.to));
    const [stream, idle] = answer.streams;
    assert.equal(stream?.port, port);
    const sum = (field: 'bytesIn' | 'bytesOut' | 'sessions') => stream!.series.reduce((n, point) => n + point[field], 0);
    assert.deepEqual({ bytesIn: sum('bytesIn'), bytesOut: sum('bytesOut'), sessions: sum('sessions') }, stream!.totals);
    assert.ok(stream!.series.every((point) => point.bytesIn + point.bytesOut + point.sessions > 0), 'only intervals that moved');
    assert.deepEqual(idle, { port: RANGE.to, totals: { bytesIn: 0, bytesOut: 0, sessions: 0 }, series: [] }, 'a port without a stream');
  });

  it('/v1/traffic/streams: a bad query answers 400 naming the field and its rule', async () => {
    for (const [query, field, rule] of [
      ['ports=abc', 'ports', /ports: must be ports \(1-65535\) separated by commas, such as 9000,9001, at most 100 \(not "abc"\)/],
      [`ports=${Array.from({ length: 101 }, (_, i) => 20_000 + i).join(',')}`, 'ports', /at most 100 \(got 101\)/],
      ['', 'ports', /ports: is required/],
      ['ports=9000&limit=5', 'query', /unknown parameter\(s\) "limit"/],
    ] as const) {
      const res = await api(`/v1/traffic/streams?${query}`);
      assert.equal(res.status, 400, query);
      const body = (await res.json()) as { error: { kind: string; field: string; message: string } };
      assert.equal(body.error.kind, 'InvalidInput');
      assert.equal(body.error.field, field, query);
      assert.match(body.error.message, rule);
    }
    assert.equal((await fetch(`${rig.portico.url}/v1/traffic/streams?ports=${port}`)).status, 401, 'the token is needed');
  });

  it('leaving the page stops the refresh; no page errors', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // A request already on its way may still land: count from a moment after.
    await sleep(300);
    const left = trafficRequests.length;
    await sleep(2500);
    assert.equal(trafficRequests.length, left, 'no /v1/traffic request after leaving the streams page');
    assert.deepEqual(problems, []);
  });
});
