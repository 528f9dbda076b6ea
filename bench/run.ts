/**
 * `make bench`: how Portico holds up as its tree grows, each figure beside the floor nginx itself
 * sets on a tree of the same size, measured in the same run. A ladder of 0, 1,000 and 5,000
 * streams (filled through the API); at each rung single creates, floor changes, rounds of 200
 * parallel creates, the list queries and Portico's memory; then the data plane (generated vs
 * hand-written config) and Portico's memory after a restart on the full tree; last, on a second
 * Portico, 1,000 HTTP apps: the fill, one app replaced beside its floor, and the list. Then (issue
 * 13) the same ladder with Portico in external mode beside an operator's nginx, its own floor and
 * stream-conductor's way of adding a stream; and, in the apps rung, new apps until served beside
 * Caddy. Writes bench/RESULTS.md and prints the same tables.
 *
 * Everything runs on 127.0.0.1; every process started here is stopped by its pid and every
 * temporary directory removed, also on failure or Ctrl-C. Loops are bounded in count and time.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { runAppsRung, type AppsPlan } from './apps.js';
import { Cleanup } from './cleanup.js';
import { runDataPlane, type DataPlane } from './dataplane.js';
import { generatedStreamText, startFloor } from './floor.js';
import { expectOk } from './http.js';
import { FILL_CONCURRENCY, PARALLEL_COUNT, runLevel, type Level, type LevelPlan, type Rig } from './ladder.js';
import { runExternalLadder } from './ladder-external.js';
import { describeMachine } from './machine.js';
import { assertOutsideEphemeral, ephemeralPort, freePortsIn, LOOPBACK, startEchoServer } from './net.js';
import { launcherNodeFlags, spawnPortico, type PorticoOptions, type RunningPortico } from './portico.js';
import { memoryOf } from './proc-stats.js';
import { renderResults, renderTables, type Restart, type Results } from './report.js';
import { timeQueries } from './scale.js';
import { timeParallelCreates } from './scenarios.js';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_FILE = `${REPO_DIR}bench/RESULTS.md`;

/**
 * Ports, all below Linux's ephemeral range (32768-60999; see `assertOutsideEphemeral`) and outside
 * the ranges the tests use (21000-28999). Fills and parallel rounds allocate from the bottom of
 * PORT_RANGE (10000 up); single creates use its top.
 */
export const RANGES = {
  portico: { from: 10000, to: 15999 },
  single: { from: 15800, to: 15999 },
  mirror: { from: 16000, to: 20999 },
  floorChange: { from: 29000, to: 29399 },
  dataPlane: { from: 29400, to: 29499 },
  porticoHttp: { from: 29980, to: 29999 },
  apps: { from: 29500, to: 29599 },
};

/** BENCH_QUICK=1: a small ladder and one data-plane round, to check the benchmark itself works. */
const QUICK = process.env.BENCH_QUICK === '1';
const LEVELS: LevelPlan[] = QUICK
  ? [0, 200, 500].map((level) => ({ level, singles: 4, parallelRounds: 1, queries: 4, budgetMs: 60_000 }))
  : [
      { level: 0, singles: 30, parallelRounds: 5, queries: 30, budgetMs: 90_000 },
      { level: 1000, singles: 30, parallelRounds: 3, queries: 30, budgetMs: 150_000 },
      { level: 5000, singles: 30, parallelRounds: 3, queries: 30, budgetMs: 300_000 },
    ];
/**
 * External mode's ladder (issue 13, goal 1): managed mode's rungs and samples, plus a rung at 200
 * streams, and stream-conductor's way beside Portico at 0, 200 and 1,000.
 */
const EXTERNAL_LEVELS: LevelPlan[] = QUICK
  ? [0, 200, 500].map((level) => ({ level, singles: 4, parallelRounds: level === 200 ? 0 : 1, queries: 4, budgetMs: 60_000, conductor: level <= 200 }))
  : [
      { level: 0, singles: 30, parallelRounds: 5, queries: 30, budgetMs: 90_000, conductor: true },
      { level: 200, singles: 30, parallelRounds: 0, queries: 10, budgetMs: 60_000, conductor: true },
      { level: 1000, singles: 30, parallelRounds: 3, queries: 30, budgetMs: 150_000, conductor: true },
      { level: 5000, singles: 30, parallelRounds: 3, queries: 30, budgetMs: 300_000 },
    ];
const DATA_PLANE_ROUNDS = QUICK ? 1 : 6;
const APPS_PLAN: AppsPlan = QUICK
  ? { apps: 100, replaces: 4, queries: 4, budgetMs: 60_000, creates: { atEmpty: 4, atFull: 4, budgetMs: 60_000 } }
  : { apps: 1000, replaces: 30, queries: 30, budgetMs: 150_000, creates: { atEmpty: 30, atFull: 20, budgetMs: 150_000 } };
const RESTART_QUERIES = 20;

function progress(message: string): void {
  process.stderr.write(`bench: ${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

const loadAverage = async (): Promise<string> => (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

async function setUp(nginxBin: string, cleanup: Cleanup): Promise<{ rig: Rig; options: PorticoOptions; idle: Results['idle'] }> {
  for (const [name, r] of Object.entries(RANGES)) assertOutsideEphemeral(name, r.from, r.to);
  const echo = await startEchoServer();
  cleanup.push('echo server', () => echo.close());
  // Something else on this shared host may listen in our ranges: use only ports free right now.
  const top = LEVELS.at(-1)?.level ?? 0;
  const singlePorts = await freePortsIn(RANGES.single.from, RANGES.single.to, LEVELS.reduce((n, l) => n + l.singles + 1, 0));
  const floorPorts = await freePortsIn(RANGES.floorChange.from, RANGES.floorChange.to, LEVELS.reduce((n, l) => n + l.singles + 1, 0) + 1);
  const mirrorPorts = await freePortsIn(RANGES.mirror.from, RANGES.mirror.to, top);
  const [httpPort, httpsPort] = await freePortsIn(RANGES.porticoHttp.from, RANGES.porticoHttp.to, 2);

  const stateDir = await mkdtemp('/tmp/portico-bench-state-');
  cleanup.push('portico state dir', () => rm(stateDir, { recursive: true, force: true }));
  const floorDir = await mkdtemp('/tmp/portico-bench-floor-');
  cleanup.push('floor dir', () => rm(floorDir, { recursive: true, force: true }));

  progress(`starting portico (PORT_RANGE ${RANGES.portico.from}-${RANGES.portico.to})`);
  const options: PorticoOptions = {
    repoDir: REPO_DIR,
    nginxBin,
    stateDir,
    portRange: RANGES.portico,
    bindPort: await ephemeralPort(),
    httpPort: httpPort as number,
    httpsPort: httpsPort as number,
    nodeArgs: SHIPPED_FLAGS,
  };
  const portico = await startPortico(options, cleanup);
  const idle = await memoryOf(portico.pid);

  const streamText = await generatedStreamText(portico.apiPort, echo.port);
  progress('starting the floor nginx');
  const floor = await startFloor({
    nginxBin,
    dir: floorDir,
    porticoStateDir: stateDir,
    porticoMainConfig: await readFile(`${stateDir}/nginx.conf`, 'utf8'),
    streamText,
    firstPort: floorPorts.shift() as number,
    onSpawn: (stop) => cleanup.push('floor nginx', stop),
  });
  return { rig: { portico, floor, echoPort: echo.port, singlePorts, floorPorts, mirrorPorts }, options, idle };
}

async function startPortico(options: PorticoOptions, cleanup: Cleanup): Promise<RunningPortico> {
  const portico = spawnPortico(options);
  cleanup.push('portico', () => portico.stop());
  await portico.ready();
  return portico;
}

/**
 * node's flags as `make start`, `npm start` and the container run Portico (bin/portico's): the
 * ladder's Portico and the first restart run with them, the second restart with node's defaults, to
 * show what they change.
 */
export const SHIPPED_FLAGS = await launcherNodeFlags(REPO_DIR);

/**
 * Portico's memory with the same tree but none of the fill's history: stops it (it quits its nginx)
 * and starts it again on the same STATE_DIR with `nodeArgs`, then lists the streams a few times
 * and runs one round of parallel creates.
 */
async function restart(rig: Rig, options: PorticoOptions, cleanup: Cleanup, streams: number, nodeArgs: string[]): Promise<Restart> {
  await rig.portico.stop();
  const start = performance.now();
  rig.portico = await startPortico({ ...options, nodeArgs }, cleanup);
  const readyMs = performance.now() - start;
  const queries = await timeQueries(rig.portico, RESTART_QUERIES, streams);
  const parallel = await timeParallelCreates(rig.portico, PARALLEL_COUNT, rig.echoPort);
  return { nodeArgs, readyMs, memory: await memoryOf(rig.portico.pid), queries, parallel };
}

/** Removes what the data plane added (its stream and app), so the restart sees the ladder's tree. */
async function removeDataPlane(portico: RunningPortico, plane: DataPlane): Promise<void> {
  await expectOk(portico.apiPort, 'DELETE', `/v1/streams/${plane.ports.generatedStream}`);
  await expectOk(portico.apiPort, 'DELETE', '/v1/apps/bench');
}

async function measure(nginxBin: string, cleanup: Cleanup, rigOut: { rig?: Rig }): Promise<Omit<Results, 'machine' | 'date' | 'command' | 'durationS' | 'load'>> {
  const { rig, options, idle } = await setUp(nginxBin, cleanup);
  rigOut.rig = rig;
  // First, while Portico holds nothing else: the generated app and stream are compared with the
  // reference on their own, not beside the ladder's thousands of listeners.
  const dataDir = await mkdtemp('/tmp/portico-bench-data-');
  cleanup.push('data plane dir', () => rm(dataDir, { recursive: true, force: true }));
  const dataPorts = await freePortsIn(RANGES.dataPlane.from, RANGES.dataPlane.to, 5);
  const dataPlane = await runDataPlane({
    portico: rig.portico,
    nginxBin,
    referenceDir: `${dataDir}/reference`,
    backendDir: `${dataDir}/backend`,
    ports: dataPorts as [number, number, number, number, number],
    rounds: DATA_PLANE_ROUNDS,
    onCleanup: (name, run) => cleanup.push(name, run),
    progress,
  });
  await removeDataPlane(rig.portico, dataPlane);
  const levels: Level[] = [];
  for (const plan of LEVELS) {
    progress(`level ${plan.level}`);
    levels.push(await runLevel(rig, plan, progress));
  }
  const restarts: Restart[] = [];
  for (const nodeArgs of [SHIPPED_FLAGS, []]) {
    progress(`restarting portico on the full tree with node ${nodeArgs.length > 0 ? nodeArgs.join(' ') : "'s defaults"}`);
    restarts.push(await restart(rig, options, cleanup, levels.at(-1)?.plan.level ?? 0, nodeArgs));
  }
  // External mode's ladder takes the same ports: managed mode's Portico and floor stop first.
  await rig.portico.stop();
  await rig.floor.stop();
  const external = await runExternalLadder({
    repoDir: REPO_DIR,
    nginxBin,
    plans: EXTERNAL_LEVELS,
    echoPort: rig.echoPort,
    nodeArgs: SHIPPED_FLAGS,
    ranges: RANGES,
    cleanup,
    progress,
  });
  // Last, on a Portico of its own: nothing above is measured while its apps exist.
  const apps = await runAppsRung({ repoDir: REPO_DIR, nginxBin, plan: APPS_PLAN, range: RANGES.apps, fillConcurrency: FILL_CONCURRENCY, nodeArgs: SHIPPED_FLAGS, cleanup, progress });
  return { range: RANGES.portico, nodeArgs: SHIPPED_FLAGS, idle, levels, dataPlane, restarts, external, apps };
}

/**
 * BENCH_RAW=<file> also writes the raw samples there as JSON; BENCH_RENDER=<file> measures nothing
 * and rewrites RESULTS.md from such a file (to change the report without a 10-minute run).
 */
async function writeReport(results: Results, file: string): Promise<void> {
  await writeFile(file, renderResults(results));
  if (process.env.BENCH_RAW !== undefined) await writeFile(process.env.BENCH_RAW, JSON.stringify(results));
  process.stdout.write(`${renderTables(results)}\n\nwritten to ${file}\n`);
}

async function main(): Promise<void> {
  if (process.env.BENCH_RENDER !== undefined) {
    return writeReport(JSON.parse(await readFile(process.env.BENCH_RENDER, 'utf8')) as Results, RESULTS_FILE);
  }
  const nginxBin = process.env.NGINX_BIN;
  if (nginxBin === undefined || nginxBin === '') throw new Error('NGINX_BIN is not set (run through `make bench`)');
  const started = performance.now();
  const loadBefore = await loadAverage();
  progress(`load average before: ${loadBefore}`);
  const cleanup = new Cleanup();
  const rigOut: { rig?: Rig } = {};
  const measured = await cleanup.around(progress, () => measure(nginxBin, cleanup, rigOut), async () => {
    if (rigOut.rig !== undefined) {
      process.stderr.write(`--- portico output ---\n${rigOut.rig.portico.output()}\n`);
      process.stderr.write(`--- floor nginx error log ---\n${await rigOut.rig.floor.logTail()}\n`);
    }
  });
  if (measured === undefined) return;

  const results: Results = {
    machine: describeMachine(nginxBin),
    date: new Date().toISOString(),
    // As run: `make bench`, or what BENCH_COMMAND says wrapped it (a private network namespace, say).
    command: process.env.BENCH_COMMAND ?? 'make bench',
    durationS: (performance.now() - started) / 1000,
    load: { before: loadBefore, after: await loadAverage() },
    ...measured,
  };
  // A quick run checks the benchmark; it does not replace the results of a real one.
  await writeReport(results, QUICK ? '/tmp/portico-bench-quick-RESULTS.md' : RESULTS_FILE);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
