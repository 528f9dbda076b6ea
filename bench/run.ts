/**
 * The first benchmark (`make bench`): how long Portico takes to create a stream, alone and 50 at a
 * time, beside the floor that nginx itself sets (one `nginx -t` plus one reload). Writes
 * bench/RESULTS.md and prints the same tables.
 *
 * Everything runs on 127.0.0.1; every process started here is stopped by its pid and every
 * temporary directory removed, also on failure or Ctrl-C. Loops are bounded in count and time.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { startFloor, type FloorNginx, type FloorSample } from './floor.js';
import { describeMachine } from './machine.js';
import { assertOutsideEphemeral, ephemeralPort, freePortsIn, startEchoServer } from './net.js';
import { spawnPortico, type RunningPortico } from './portico.js';
import { renderResults, renderTables, type Results } from './report.js';
import { timeParallelCreates, timeSingleCreate, type CreateSample, type ParallelSample } from './scenarios.js';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_FILE = `${REPO_DIR}bench/RESULTS.md`;

/**
 * Portico's PORT_RANGE: parallel creates are allocated from its bottom, single creates use its top.
 * High, but below Linux's ephemeral range (32768-60999 by default; see `assertOutsideEphemeral`).
 */
const PORTICO_RANGE = { from: 29000, to: 29199 };
const SINGLE_PORTS = { from: 29150, to: 29199 };
/** The floor nginx's ports: outside Portico's range, so the two never compete for one. */
const FLOOR_PORTS = { from: 29300, to: 29399 };

const SINGLE_RUNS = 30;
const PARALLEL_COUNT = 50;
const PARALLEL_ROUNDS = 5;
/** Measurement stops early (with fewer samples) past this, so a slow machine still finishes. */
const BUDGET_MS = 120_000;

/**
 * Things to undo, run last-in first-out, once. A second `run()` (a signal arriving while a failure
 * is being cleaned up, or the reverse) waits for the first, so nobody exits halfway through.
 */
class Cleanup {
  private readonly steps: Array<{ name: string; run: () => Promise<unknown> }> = [];
  private running: Promise<void> | undefined;

  push(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run });
  }

  run(): Promise<void> {
    this.running ??= this.runSteps();
    return this.running;
  }

  private async runSteps(): Promise<void> {
    for (const step of [...this.steps].reverse()) {
      await step.run().catch((error: unknown) => process.stderr.write(`bench: cleanup "${step.name}" failed: ${String(error)}\n`));
    }
  }
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

interface Rig {
  portico: RunningPortico;
  floor: FloorNginx;
  echoPort: number;
  singlePorts: number[];
  floorPorts: number[];
}

async function setUp(nginxBin: string, cleanup: Cleanup): Promise<Rig> {
  assertOutsideEphemeral('PORT_RANGE', PORTICO_RANGE.from, PORTICO_RANGE.to);
  assertOutsideEphemeral('the floor ports', FLOOR_PORTS.from, FLOOR_PORTS.to);
  const echo = await startEchoServer();
  cleanup.push('echo server', () => echo.close());
  // Something else on this shared host may listen in our ranges: use only ports free right now.
  const singlePorts = await freePortsIn(SINGLE_PORTS.from, SINGLE_PORTS.to, SINGLE_RUNS + 1);
  const floorPorts = await freePortsIn(FLOOR_PORTS.from, FLOOR_PORTS.to, SINGLE_RUNS + 2);

  const stateDir = await mkdtemp('/tmp/portico-bench-state-');
  cleanup.push('portico state dir', () => rm(stateDir, { recursive: true, force: true }));
  const floorDir = await mkdtemp('/tmp/portico-bench-floor-');
  cleanup.push('floor dir', () => rm(floorDir, { recursive: true, force: true }));

  progress('starting portico');
  const portico = spawnPortico({ repoDir: REPO_DIR, nginxBin, stateDir, portRange: PORTICO_RANGE, bindPort: await ephemeralPort() });
  cleanup.push('portico', () => portico.stop());
  await portico.ready();
  progress('starting the floor nginx');
  const floor = await startFloor({
    nginxBin,
    dir: floorDir,
    echoPort: echo.port,
    firstPort: floorPorts.shift() as number,
    listeners: PORTICO_RANGE.to - PORTICO_RANGE.from + 1,
    onSpawn: (stop) => cleanup.push('floor nginx', stop),
  });
  return { portico, floor, echoPort: echo.port, singlePorts, floorPorts };
}

interface Samples {
  single: CreateSample[];
  floor: FloorSample[];
  parallel: ParallelSample[];
}

/**
 * Interleaves the three measurements so that a noisy neighbour hurts all of them alike: every
 * iteration is one single create and one floor change; every few iterations add a parallel round.
 */
async function measure(rig: Rig): Promise<Samples> {
  const { portico, floor, echoPort } = rig;
  // Warm-up, not recorded: the first requests compile code paths (tsx, V8) in Portico and here.
  await timeSingleCreate(portico, rig.singlePorts.shift() as number, echoPort);
  await floor.change(rig.floorPorts.shift() as number);

  const samples: Samples = { single: [], floor: [], parallel: [] };
  const parallelEvery = Math.floor(SINGLE_RUNS / PARALLEL_ROUNDS);
  const deadline = performance.now() + BUDGET_MS;
  for (let i = 0; i < SINGLE_RUNS && performance.now() < deadline; i += 1) {
    samples.single.push(await timeSingleCreate(portico, rig.singlePorts[i] as number, echoPort));
    samples.floor.push(await floor.change(rig.floorPorts[i] as number));
    if (i % parallelEvery === parallelEvery - 1 && samples.parallel.length < PARALLEL_ROUNDS) {
      samples.parallel.push(await timeParallelCreates(portico, PARALLEL_COUNT, echoPort));
      progress(`${i + 1}/${SINGLE_RUNS} single creates, ${samples.parallel.length}/${PARALLEL_ROUNDS} parallel rounds`);
    }
  }
  if (samples.single.length < SINGLE_RUNS) progress(`time budget reached after ${samples.single.length} iterations`);
  return samples;
}

async function main(): Promise<void> {
  const nginxBin = process.env.NGINX_BIN;
  if (nginxBin === undefined || nginxBin === '') throw new Error('NGINX_BIN is not set (run through `make bench`)');
  const started = performance.now();
  const cleanup = new Cleanup();
  let stoppedBy: NodeJS.Signals | undefined;
  const interrupted = (signal: NodeJS.Signals): void => {
    stoppedBy = signal;
    progress(`${signal}: stopping what was started`);
    void cleanup.run().finally(() => process.exit(128 + (os.constants.signals[signal] ?? 0)));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  let samples: Samples;
  let rig: Rig | undefined;
  try {
    rig = await setUp(nginxBin, cleanup);
    samples = await measure(rig);
  } catch (error) {
    // Interrupted: the failure is only the signal handler stopping things under us; it exits.
    if (stoppedBy !== undefined) return cleanup.run();
    if (rig !== undefined) {
      process.stderr.write(`--- portico output ---\n${rig.portico.output()}\n`);
      process.stderr.write(`--- floor nginx error log ---\n${await rig.floor.logTail()}\n`);
    }
    await cleanup.run();
    throw error;
  }
  await cleanup.run();

  const results: Results = {
    machine: describeMachine(nginxBin),
    date: new Date().toISOString(),
    command: 'make bench',
    durationS: (performance.now() - started) / 1000,
    parallelCount: PARALLEL_COUNT,
    ...samples,
  };
  await writeFile(RESULTS_FILE, renderResults(results));
  process.stdout.write(`${renderTables(results)}\n\nwritten to ${RESULTS_FILE}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
