/**
 * The console's events page and the overview's additions (issue 17), in Debian's Chromium by
 * accessible names, against a real Portico and nginx: the feed narrowed by kind and outcome for the
 * kept events and the live ones alike, nginx's lines under a failed apply, a certificate that expires
 * within 30 days with its days left, and, in a fleet of two nodes on a real etcd, every node with
 * the revision it applied, updated while the page is shown.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { fixtureCert } from '../helpers/backends.js';
import { launchChromium, type RunningChromium } from '../helpers/chromium.js';
import { accessibilityProblems, startConsole, watchPageErrors, type ConsoleRig } from '../helpers/console.js';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { callNode, startFleetNodes, type FleetNode } from '../helpers/fleet.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { tempDir } from '../helpers/portico.js';

const run = promisify(execFile);
const TOKEN = 'console-events-token-0123456789';
const RANGE = { from: 30660, to: 30669 };
const DAY_MS = 86_400_000;
const UNRESOLVABLE = 'no-such-host.invalid:5432';

/** The text of each row of the events table, top to bottom. */
const eventRows = (page: Page): Promise<string[]> => page.locator('#event-rows tr').allTextContents();

describe('the console\'s events page and overview, in a real browser', () => {
  let rig: ConsoleRig;
  let page: Page;
  let problems: string[];
  let echo: EchoServer;

  const api = (route: string, init: RequestInit = {}) => rig.api(route, init);
  const createStream = async (port: number, backend: string, status: number): Promise<void> => {
    const res = await api('/v1/streams', { method: 'POST', body: JSON.stringify({ port, backend }) });
    assert.equal(res.status, status, await res.text());
  };

  before(async () => {
    echo = await startEcho();
    rig = await startConsole('console-events', TOKEN, { PORT_RANGE: `${RANGE.from}-${RANGE.to}`, HTTP_PORT: '30678', HTTPS_PORT: '30679' });
    ({ page, problems } = rig);
    await rig.signIn('#/events', 'Events');
  });

  after(async () => {
    await rig?.close();
    await echo?.close();
  });

  it('filters by outcome the events kept and the live ones: only the failed apply, with nginx\'s lines; a live success stays out, a live failure comes in', async () => {
    await createStream(RANGE.from, `127.0.0.1:${echo.port}`, 201);
    await createStream(RANGE.from + 1, UNRESOLVABLE, 422);
    // Of kind apply, both are listed (the page reads the feed again on each filter change).
    await page.getByLabel('Kind').selectOption('apply');
    assert.ok(await eventually(async () => (await eventRows(page)).length === 2, 10_000, 50), `two applies: ${JSON.stringify(await eventRows(page))}`);

    await page.getByLabel('Outcome').selectOption('rejected');
    assert.ok(await eventually(async () => (await eventRows(page)).length === 1, 10_000, 50), `one rejected apply: ${JSON.stringify(await eventRows(page))}`);
    const [failed] = await eventRows(page);
    assert.match(failed ?? '', new RegExp(`applying stream ${RANGE.from + 1}: rejected`));
    assert.match(await page.locator('#event-rows pre.nginx-lines').first().textContent() ?? '', /host not found in upstream "no-such-host\.invalid/);
    assert.deepEqual(await accessibilityProblems(page), [], 'the events page, filtered, with nginx\'s lines');

    // Live: a success, then a failure. The feed sends them in order, so once the failure is shown the
    // success has come too, and the filter kept it out.
    await createStream(RANGE.from + 2, `127.0.0.1:${echo.port}`, 201);
    await createStream(RANGE.from + 3, UNRESOLVABLE, 422);
    assert.ok(await eventually(async () => ((await eventRows(page))[0] ?? '').includes(`applying stream ${RANGE.from + 3}: rejected`), 10_000, 50), `the live failure on top: ${JSON.stringify(await eventRows(page))}`);
    const rows = await eventRows(page);
    assert.equal(rows.length, 2, JSON.stringify(rows));
    assert.ok(rows.every((row) => !row.includes(`stream ${RANGE.from + 2}`)), 'the live success is filtered out');

    // Outcome back to all: the successes are there too.
    await page.getByLabel('Outcome').selectOption('');
    assert.ok(await eventually(async () => (await eventRows(page)).length === 4, 10_000, 50), `four applies: ${JSON.stringify(await eventRows(page))}`);
  });

  it('filters by kind: nginx shows a managed nginx\'s exit and restart, live, and no apply; then by outcome, nginx\'s restarted only', async () => {
    await page.getByLabel('Kind').selectOption('nginx');
    assert.ok(await eventually(async () => (await eventRows(page)).length === 0, 10_000, 50), `no nginx event yet: ${JSON.stringify(await eventRows(page))}`);
    const status = (await (await api('/v1/status')).json()) as { nginx: { pid: number } };
    process.kill(status.nginx.pid, 'SIGKILL');
    const restarted = await eventually(async () => {
      const rows = await eventRows(page);
      return rows.some((row) => /restarted/.test(row)) && rows.some((row) => /exited/.test(row));
    }, 15_000, 100);
    assert.ok(restarted, `nginx's exit and restart, live: ${JSON.stringify(await eventRows(page))}`);
    for (const row of await eventRows(page)) assert.match(row, /nginx \(pid \d+\)/, 'each row is an nginx event');
    // An nginx outcome narrows the same way, in the page as in the API.
    await page.getByLabel('Outcome').selectOption('restarted');
    const onlyRestarts = await eventually(async () => {
      const rows = await eventRows(page);
      return rows.length > 0 && rows.every((row) => /restarted/.test(row) && !/exited/.test(row));
    }, 10_000, 50);
    assert.ok(onlyRestarts, `restarted only: ${JSON.stringify(await eventRows(page))}`);
    const listed = (await (await api('/v1/events?type=nginx&outcome=restarted')).json()) as Array<{ what: string }>;
    assert.ok(listed.length > 0 && listed.every((e) => e.what === 'restarted'));
    await page.getByLabel('Outcome').selectOption('');
    await page.getByLabel('Kind').selectOption('');
  });

  it('leaving a page stops its follow: after 10 round trips between the overview and the events, a live event still arrives', async () => {
    // Portico lets one client follow 8 times at once: a page that kept following would be refused by now.
    for (let i = 0; i < 10; i += 1) {
      await page.getByRole('link', { name: 'Overview' }).click();
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.getByRole('link', { name: 'Events' }).click();
      await page.getByRole('heading', { name: 'Events' }).waitFor();
    }
    await eventually(async () => (await eventRows(page)).length >= 4, 10_000, 50);
    await createStream(RANGE.from + 4, UNRESOLVABLE, 422);
    assert.ok(await eventually(async () => ((await eventRows(page))[0] ?? '').includes(`applying stream ${RANGE.from + 4}`), 10_000, 50), `the live event: ${JSON.stringify(await eventRows(page))}`);
  });

  it('the overview lists a certificate that expires within 30 days with its days left, not one that does not; nginx\'s lines under a failed apply, live too; no fleet on a single node', async () => {
    const dir = await tempDir('console-cert');
    try {
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'soon.key'), '-out', path.join(dir, 'soon.crt'), '-days', '10', '-subj', '/CN=soon.example.com', '-addext', 'subjectAltName=DNS:soon.example.com'], { timeout: 10_000 });
      const soon = { certificate: await readFile(path.join(dir, 'soon.crt'), 'utf8'), key: await readFile(path.join(dir, 'soon.key'), 'utf8') };
      const uploaded = await api('/v1/certificates', { method: 'POST', body: JSON.stringify({ id: 'soon', ...soon }) });
      assert.equal(uploaded.status, 201, await uploaded.clone().text());
      const notAfter = ((await uploaded.json()) as { notAfter: string }).notAfter;
      const later = fixtureCert('a');
      assert.equal((await api('/v1/certificates', { method: 'POST', body: JSON.stringify({ id: 'later', certificate: later.cert, key: later.key }) })).status, 201);

      await page.getByRole('link', { name: 'Overview' }).click();
      const table = page.getByRole('table', { name: 'Certificates that expire within 30 days, soonest first' });
      await table.waitFor({ timeout: 10_000 });
      const expected = Math.floor((Date.parse(notAfter) - Date.now()) / DAY_MS);
      assert.ok(expected === 9 || expected === 10, `valid about 10 days: ${notAfter}`);
      const rows = await page.locator('#expiring-rows tr').allTextContents();
      assert.equal(rows.length, 1, JSON.stringify(rows));
      assert.match(rows[0] ?? '', new RegExp(`^soonsoon\\.example\\.com.*${expected} days$`));
      assert.ok(!rows.some((row) => row.includes('later')), 'a certificate valid for a century is not listed');

      // The kept failed applies carry nginx's lines; one made now appears with them, live.
      assert.match((await page.locator('#applies li.failed pre').first().textContent()) ?? '', /host not found in upstream/);
      await createStream(RANGE.from + 5, UNRESOLVABLE, 422);
      assert.ok(
        await eventually(async () => {
          const top = page.locator('#applies li').first();
          return ((await top.textContent()) ?? '').includes(`applying stream ${RANGE.from + 5}`) && (await top.locator('pre').count()) === 1;
        }, 10_000, 50),
        'the live failure with nginx\'s lines',
      );
      assert.match((await page.locator('#applies li').first().locator('pre').textContent()) ?? '', /host not found in upstream "no-such-host\.invalid/);
      // A single node: /v1/fleet answers 404, and the overview shows no fleet.
      assert.equal((await api('/v1/fleet')).status, 404);
      assert.equal(await page.getByRole('heading', { name: 'Fleet' }).count(), 0);
      assert.deepEqual(await accessibilityProblems(page), [], 'the overview, with an expiring certificate and failed applies');
      assert.deepEqual(problems, []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const FLEET_ADDRESSES = ['127.0.0.51', '127.0.0.52'] as const;
const FLEET_RANGE = { from: 30680, to: 30689 };

describe('the overview of a fleet node, in a real browser', { skip: etcdUnavailable() }, () => {
  let etcd: EtcdCluster;
  const nodes: FleetNode[] = [];
  let echo: EchoServer;
  let chromium: RunningChromium;
  let page: Page;
  const problems: string[] = [];

  /** The fleet table's rows as [node, applied revision, lag]. */
  const fleetRows = async (): Promise<string[][]> =>
    page.locator('#fleet-rows tr').evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent ?? '')).map((cells) => [cells[0] ?? '', cells[2] ?? '', cells[3] ?? '']));

  before(async () => {
    echo = await startEcho();
    etcd = await startEtcdCluster({ members: 1 });
    await startFleetNodes(nodes, FLEET_ADDRESSES, { endpoints: etcd.endpoints, prefix: '/portico-console-test/', portRange: `${FLEET_RANGE.from}-${FLEET_RANGE.to}`, httpPort: 30690, httpsPort: 30691 });
    chromium = await launchChromium([]);
    page = await chromium.browser.newPage();
    watchPageErrors(page, problems);
  });

  after(async () => {
    await chromium?.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await etcd?.stop();
    await echo?.close();
  });

  it('lists both nodes with the revision each applied and its lag, and follows a change made meanwhile without a reload', async () => {
    const [a, b] = nodes as [FleetNode, FleetNode];
    const first = await callNode(b, 'POST', '/v1/streams', { port: FLEET_RANGE.from, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const revision = first.body.fleet.revision as number;

    await page.goto(`${a.url}/ui#/overview`, { timeout: 20_000 });
    await page.getByRole('table', { name: 'Nodes of the fleet, with the revision each has applied' }).waitFor({ timeout: 10_000 });
    const listed = await eventually(async () => JSON.stringify(await fleetRows()) === JSON.stringify([['edge-a (this node)', String(revision), '0'], ['edge-b', String(revision), '0']]), 10_000, 100);
    assert.ok(listed, `both nodes at revision ${revision}: ${JSON.stringify(await fleetRows())}`);
    assert.match((await page.locator('#fleet-summary').textContent()) ?? '', /As node edge-a sees it/);
    assert.deepEqual(await accessibilityProblems(page), [], 'the overview of a fleet node');

    // A change through the other node: the table shows the new revision, read again while shown.
    const second = await callNode(b, 'POST', '/v1/streams', { port: FLEET_RANGE.from + 1, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    const next = second.body.fleet.revision as number;
    assert.ok(next > revision);
    const followed = await eventually(async () => (await fleetRows()).every((row) => row[1] === String(next)), 10_000, 100);
    assert.ok(followed, `both nodes at revision ${next}: ${JSON.stringify(await fleetRows())}`);
    const view = (await callNode(a, 'GET', '/v1/fleet')).body as { nodes: Array<{ name: string; revision: number }> };
    assert.deepEqual(view.nodes.map((n) => [n.name, n.revision]).sort(), [['edge-a', next], ['edge-b', next]]);
    assert.deepEqual(problems, []);
  });
});
