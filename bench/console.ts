/**
 * `make bench-console` (issue 17): the console at 100 and at 5,000 streams, in Debian's Chromium
 * against a real Portico (bin/portico, managed nginx) filled through the API. At each level, rounds
 * of:
 *
 *   load    a fresh page at /ui#/streams: from navigation start to the first page of rows drawn
 *           (the page's own `portico.streams.render` measure ends after the next animation frame),
 *           and that measure alone (GET /v1/streams, its parse, the filter index, 50 rows)
 *   filter  one keystroke's worth of filter text (playwright's fill: one input event) to the rows
 *           drawn (`portico.streams.filter`, from the event's own time stamp to the next frame),
 *           for a port (one match), an upstream every stream has (all match), and nothing (none)
 *
 * and the size of the document (its element count) and of the JS heap once loaded: paging keeps one
 * page of rows in the document whatever the count. The two levels run in one process one after the
 * other, on the same browser and Portico, so their ratio is what the count costs.
 *
 * Writes bench/CONSOLE.md and the same into bench/RESULTS.md between markers (`make bench` runs
 * this last). Everything on 127.0.0.1; every process it starts it stops by pid, also on failure or
 * Ctrl-C; every loop is bounded in count and time.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { launchChromium } from '../test/helpers/chromium.js';
import { Cleanup } from './cleanup.js';
import { describeMachine, type Machine } from './machine.js';
import { assertOutsideEphemeral, freePortsIn, startEchoServer } from './net.js';
import { spawnPortico } from './portico.js';
import { putResultsSection } from './results-section.js';
import { fillTo } from './scale.js';
import { percentile } from './stats.js';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
/** Below the ephemeral range, clear of the tests' ranges; bench/run.ts's PORT_RANGE, as only one bench runs at a time. */
const RANGE = { from: 10000, to: 15999 };
const API_PORTS = { from: 29960, to: 29979 };
/** CONSOLE_BENCH_QUICK=1: 100 and 500 streams, 3 rounds, to check the benchmark itself; written to /tmp, not bench/. */
const QUICK = process.env.CONSOLE_BENCH_QUICK === '1';
const LEVELS = QUICK ? [100, 500] : [100, 5000];
const ROUNDS = QUICK ? 3 : 15;
const FILL_CONCURRENCY = 50;
/** A wait for the page (a load, a filter) longer than this fails the run. */
const PAGE_TIMEOUT_MS = 30_000;

interface LevelResult {
  streams: number;
  answerBytes: number;
  /** Navigation start to the first page of rows drawn, ms. */
  load: number[];
  /** The page's own measure: fetch, parse, index, first page drawn, ms. */
  render: number[];
  filter: Record<'port' | 'all' | 'none', number[]>;
  elements: number;
  heapMB: number;
}

interface Results {
  date: string;
  machine: Machine;
  chromium: string;
  command: string;
  load: { before: string; after: string };
  durationS: number;
  levels: LevelResult[];
}

const loadAverage = async (): Promise<string> => (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
const progress = (line: string): void => void process.stderr.write(`bench-console: ${line}\n`);

/** The duration of the newest performance measure named `name`, once there are more than `seen` of them. */
async function nextMeasure(page: Page, name: string, seen: number): Promise<{ startTime: number; duration: number }> {
  await page.waitForFunction(([n, s]) => performance.getEntriesByName(n as string, 'measure').length > (s as number), [name, seen] as const, { timeout: PAGE_TIMEOUT_MS, polling: 'raf' });
  return page.evaluate((n) => {
    const all = performance.getEntriesByName(n, 'measure');
    const last = all[all.length - 1] as PerformanceEntry;
    return { startTime: last.startTime, duration: last.duration };
  }, name);
}

const measureCount = (page: Page, name: string): Promise<number> => page.evaluate((n) => performance.getEntriesByName(n, 'measure').length, name);

async function measureLevel(page: Page, url: string, streams: number, firstPort: number): Promise<LevelResult> {
  const result: LevelResult = { streams, answerBytes: 0, load: [], render: [], filter: { port: [], all: [], none: [] }, elements: 0, heapMB: 0 };
  const answer = await fetch(`${url}/v1/streams`);
  result.answerBytes = (await answer.arrayBuffer()).byteLength;
  const filters: Record<'port' | 'all' | 'none', string> = { port: String(firstPort + Math.floor(streams / 2)), all: '127.0.0.1', none: 'no-such-stream' };
  for (let round = 0; round < ROUNDS; round += 1) {
    // A fresh document each round: about:blank first, so the hash route is a real load.
    await page.goto('about:blank');
    await page.goto(`${url}/ui#/streams`, { timeout: PAGE_TIMEOUT_MS });
    const rendered = await nextMeasure(page, 'portico.streams.render', 0);
    result.load.push(rendered.startTime + rendered.duration);
    result.render.push(rendered.duration);
    const rows = await page.locator('#stream-rows tr').count();
    if (rows !== Math.min(50, streams)) throw new Error(`${rows} rows drawn at ${streams} streams, not ${Math.min(50, streams)}`);
    // The filters, each followed by an empty one (untimed) so each starts from the whole list.
    for (const kind of ['port', 'all', 'none'] as const) {
      const seen = await measureCount(page, 'portico.streams.filter');
      await page.getByLabel('Filter streams').fill(filters[kind]);
      result.filter[kind].push((await nextMeasure(page, 'portico.streams.filter', seen)).duration);
      const expected = kind === 'port' ? 'of 1 matching' : kind === 'none' ? 'No stream matches' : `of ${streams}`;
      const count = (await page.locator('#stream-count').textContent()) ?? '';
      if (!count.includes(expected)) throw new Error(`filter "${filters[kind]}" at ${streams} streams shows "${count}", expected "${expected}"`);
      const again = await measureCount(page, 'portico.streams.filter');
      await page.getByLabel('Filter streams').fill('');
      await nextMeasure(page, 'portico.streams.filter', again);
    }
  }
  result.elements = await page.evaluate(() => document.getElementsByTagName('*').length);
  // Chromium's own (non-standard) heap figure, after a collection where the flag allows one.
  result.heapMB = await page.evaluate(() => {
    (globalThis as { gc?: () => void }).gc?.();
    return ((performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0) / 2 ** 20;
  });
  return result;
}

async function measure(nginxBin: string, cleanup: Cleanup): Promise<{ levels: LevelResult[]; chromium: string }> {
  assertOutsideEphemeral('console PORT_RANGE', RANGE.from, RANGE.to);
  const [apiPort, httpPort, httpsPort] = await freePortsIn(API_PORTS.from, API_PORTS.to, 3);
  const echo = await startEchoServer();
  cleanup.push('echo server', () => echo.close());
  const stateDir = await mkdtemp(`${os.tmpdir()}/portico-bench-console-`);
  cleanup.push('state directory', () => rm(stateDir, { recursive: true, force: true }));
  const portico = spawnPortico({ repoDir: REPO_DIR, nginxBin, stateDir, portRange: RANGE, bindPort: apiPort as number, httpPort: httpPort as number, httpsPort: httpsPort as number });
  cleanup.push('portico', () => portico.stop());
  await portico.ready();
  // The bench's own signal handling stops Chromium with the rest (Cleanup), Portico and its nginx included.
  const chromium = await launchChromium(['--enable-precise-memory-info', '--js-flags=--expose-gc'], 20_000, false);
  cleanup.push('chromium', () => chromium.close());
  const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
  const url = `http://127.0.0.1:${apiPort}`;
  const levels: LevelResult[] = [];
  for (const level of LEVELS) {
    progress(`filling to ${level} streams`);
    const fill = await fillTo(portico, level, FILL_CONCURRENCY, echo.port);
    progress(`filled in ${(fill.ms / 1000).toFixed(1)} s; ${ROUNDS} rounds`);
    levels.push(await measureLevel(page, url, level, RANGE.from));
  }
  return { levels, chromium: chromium.browser.version() };
}

async function main(): Promise<void> {
  const nginxBin = process.env.NGINX_BIN;
  if (nginxBin === undefined || nginxBin === '') throw new Error('NGINX_BIN is not set (make bench-console sets it)');
  const started = performance.now();
  const loadBefore = await loadAverage();
  const cleanup = new Cleanup();
  const measured = await cleanup.around(progress, () => measure(nginxBin, cleanup));
  if (measured === undefined) return;
  const results: Results = {
    date: new Date().toISOString(),
    machine: describeMachine(nginxBin),
    chromium: measured.chromium,
    command: process.env.CONSOLE_BENCH_COMMAND ?? 'make bench-console',
    load: { before: loadBefore, after: await loadAverage() },
    durationS: (performance.now() - started) / 1000,
    levels: measured.levels,
  };
  await publish(results);
}

// ---------------------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------------------

const MARKERS = { begin: '<!-- console:begin (bench/console.ts rewrites this part) -->', end: '<!-- console:end -->' };
const fmt = (ms: number): string => ms.toFixed(1);
const med = (values: number[]): number => percentile(values, 50);
const p90 = (values: number[]): number => percentile(values, 90);

function renderReport(r: Results): string {
  const m = r.machine;
  const [low, high] = [r.levels[0], r.levels.at(-1)];
  const rows: Array<[string, (l: LevelResult) => number[]]> = [
    ['load: navigation to the first page of rows', (l) => l.load],
    ['render: GET /v1/streams, parse, index, 50 rows', (l) => l.render],
    ['filter: a port (1 match)', (l) => l.filter.port],
    ['filter: an upstream (all match)', (l) => l.filter.all],
    ['filter: nothing matches', (l) => l.filter.none],
  ];
  const head = `| ms, median (p90) | ${r.levels.map((l) => `${l.streams} streams`).join(' | ')} |${r.levels.length > 1 ? ' ratio of medians |' : ''}`;
  const rule = `|---|${r.levels.map(() => '---|').join('')}${r.levels.length > 1 ? '---|' : ''}`;
  const table = rows.map(([label, pick]) => {
    const ratio = low !== undefined && high !== undefined && r.levels.length > 1 ? ` ${(med(pick(high)) / med(pick(low))).toFixed(2)}× |` : '';
    return `| ${label} | ${r.levels.map((l) => `${fmt(med(pick(l)))} (${fmt(p90(pick(l)))})`).join(' | ')} |${ratio}`;
  });
  const sizes = [
    `| /v1/streams answer | ${r.levels.map((l) => `${(l.answerBytes / 1000).toFixed(0)} kB`).join(' | ')} |${r.levels.length > 1 ? ' |' : ''}`,
    `| elements in the document | ${r.levels.map((l) => String(l.elements)).join(' | ')} |${r.levels.length > 1 ? ' |' : ''}`,
    `| JS heap used (after gc) | ${r.levels.map((l) => `${l.heapMB.toFixed(1)} MB`).join(' | ')} |${r.levels.length > 1 ? ' |' : ''}`,
  ];
  return `# The console at ${r.levels.map((l) => l.streams).join(' and ')} streams

${r.date}, ${r.durationS.toFixed(0)} s; ${m.cpus} CPUs (${m.model}), ${m.memory}, ${m.kernel}; node ${m.node}; nginx ${m.nginx}; Chromium ${r.chromium} (headless, Debian's). Load average ${r.load.before} before, ${r.load.after} after. Command: \`${r.command}\`.

One Portico (bin/portico, managed nginx, no token) filled through \`POST /v1/streams\` (${FILL_CONCURRENCY} in flight), then ${ROUNDS} rounds at each level, the levels one after the other in one run on one browser. A load is a fresh document at \`/ui#/streams\`; its time runs from navigation start to the page's own \`portico.streams.render\` measure ending (after the frame that draws the first page of rows). A filter is one input event (playwright's \`fill\`) to the frame after the rows are redrawn. Percentiles are nearest-rank.

${head}
${rule}
${table.join('\n')}
${sizes.join('\n')}

The table is filtered and paged in the page: at any count the document holds one page (50 rows), so a filter's cost is the scan of the list held in memory, and the load's the answer of \`GET /v1/streams\` (every stream, as scripts get it) and its parse.
`;
}

async function publish(results: Results): Promise<void> {
  const report = renderReport(results);
  process.stdout.write(report);
  if (QUICK) {
    await writeFile('/tmp/portico-bench-quick-CONSOLE.md', report);
    return;
  }
  await writeFile(`${REPO_DIR}bench/CONSOLE.md`, report);
  const body = report.replace(/^# .*$/m, '### (17) The console at 100 and 5,000 streams: load and filter (bench/console.ts; bench/CONSOLE.md)');
  await putResultsSection(`${REPO_DIR}bench/RESULTS.md`, MARKERS, body, '## Where a target is missed');
}

await main();
