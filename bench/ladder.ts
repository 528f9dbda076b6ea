/**
 * One rung of the scale ladder: Portico holding `level` streams (filled through the API) beside a
 * floor nginx holding as many mirror files. At that level, interleaved so that noise on the shared
 * machine hurts all alike: single creates, floor changes, and now and then a round of parallel
 * creates; then the list queries and Portico's resident memory. In external mode's ladder a third
 * side takes its turn in each iteration: stream-conductor's way of adding a stream, on the same nginx.
 */
import type { ConductorSample, StreamConductor } from './conductor.js';
import type { FloorGrowth, FloorNginx, FloorSample } from './floor.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningPortico } from './portico.js';
import { memoryOf, type Memory } from './proc-stats.js';
import { fillTo, timeQueries, type Fill, type QuerySamples } from './scale.js';
import { timeParallelCreates, timeSingleCreate, type CreateSample, type ParallelSample } from './scenarios.js';

/** Requests in flight while filling: large batches, as an orchestrator creating routes would send. */
export const FILL_CONCURRENCY = 500;
export const PARALLEL_COUNT = 200;
/**
 * A pause before each timed change to Portico's nginx (untimed). After starting new workers, nginx's
 * master sleeps 100 ms with its signals blocked (`ngx_msleep(100)` in the master's cycle) before it
 * quits the old ones: a SIGHUP sent meanwhile waits for the end of that sleep. Without the pause a
 * create that follows the previous sample's reload (Portico's own removal, or stream-conductor's
 * reload on the shared nginx in external mode) pays the rest of that sleep, which is not its own.
 */
export const SETTLE_MS = 150;

export interface Rig {
  portico: RunningPortico;
  floor: FloorNginx;
  echoPort: number;
  /** Ports for single creates, inside PORT_RANGE but above what fills and parallel rounds allocate. */
  singlePorts: number[];
  /** Ports for the floor's change file. */
  floorPorts: number[];
  /** Ports for the floor's mirror files. */
  mirrorPorts: number[];
  /** What stream-conductor does per request, beside Portico's nginx, on levels that ask for it. */
  conductor?: StreamConductor;
  conductorPorts?: number[];
}

export interface LevelPlan {
  level: number;
  singles: number;
  parallelRounds: number;
  queries: number;
  /** Measurement stops early (with fewer samples) past this, so a slow machine still finishes. */
  budgetMs: number;
  /** Also time the rig's `conductor` at this level (one per iteration). */
  conductor?: boolean;
}

export interface Level {
  plan: LevelPlan;
  fill: Fill | undefined;
  floorGrowth: FloorGrowth | undefined;
  single: CreateSample[];
  floor: FloorSample[];
  parallel: ParallelSample[];
  /** stream-conductor's way, when the plan asked for it (absent from runs before it existed). */
  conductor?: ConductorSample[];
  queries: QuerySamples;
  /** Portico's memory after everything at this level. */
  memory: Memory;
  /** How long the level took, fill included. */
  seconds: number;
}

function take(ports: number[], what: string): number {
  const port = ports.shift();
  if (port === undefined) throw new Error(`ran out of ports for ${what}`);
  return port;
}

/** Brings Portico and the floor to `level` streams: the fill through the API, the mirror in one reload. */
async function grow(rig: Rig, level: number, progress: (m: string) => void): Promise<{ fill?: Fill; floorGrowth?: FloorGrowth }> {
  if (rig.floor.size >= level) return {};
  progress(`filling Portico to ${level} streams, ${FILL_CONCURRENCY} requests in flight`);
  const fill = await fillTo(rig.portico, level, FILL_CONCURRENCY, rig.echoPort);
  progress(`filled ${fill.from} → ${fill.to} in ${(fill.ms / 1000).toFixed(1)} s with ${fill.reloads} reloads; growing the floor's mirror`);
  const floorGrowth = await rig.floor.grow(rig.mirrorPorts.splice(0, level - rig.floor.size));
  return { fill, floorGrowth };
}

export async function runLevel(rig: Rig, plan: LevelPlan, progress: (m: string) => void): Promise<Level> {
  const started = performance.now();
  const { portico, floor, echoPort } = rig;
  const { fill, floorGrowth } = await grow(rig, plan.level, progress);

  // Warm-up, not recorded: the first requests at a level compile code paths and fill caches.
  await timeSingleCreate(portico, take(rig.singlePorts, 'single creates'), echoPort);
  await floor.change(take(rig.floorPorts, 'the floor'));
  const conductor = plan.conductor === true ? rig.conductor : undefined;
  if (conductor !== undefined) await conductor.change(take(rig.conductorPorts ?? [], 'the conductor'));

  const single: CreateSample[] = [];
  const floorSamples: FloorSample[] = [];
  const parallel: ParallelSample[] = [];
  const conductorSamples: ConductorSample[] = [];
  const parallelEvery = Math.max(1, Math.floor(plan.singles / Math.max(1, plan.parallelRounds)));
  const deadline = started + plan.budgetMs;
  for (let i = 0; i < plan.singles && performance.now() < deadline; i += 1) {
    await sleep(SETTLE_MS);
    single.push(await timeSingleCreate(portico, take(rig.singlePorts, 'single creates'), echoPort));
    floorSamples.push(await floor.change(take(rig.floorPorts, 'the floor')));
    if (conductor !== undefined) {
      await sleep(SETTLE_MS);
      conductorSamples.push(await conductor.change(take(rig.conductorPorts ?? [], 'the conductor')));
    }
    if (i % parallelEvery === parallelEvery - 1 && parallel.length < plan.parallelRounds) {
      await sleep(SETTLE_MS);
      parallel.push(await timeParallelCreates(portico, PARALLEL_COUNT, echoPort));
      progress(`level ${plan.level}: ${i + 1}/${plan.singles} single creates, ${parallel.length}/${plan.parallelRounds} parallel rounds`);
    }
  }
  // A budget cut short: the parallel rounds still get one sample.
  if (parallel.length === 0 && plan.parallelRounds > 0) parallel.push(await timeParallelCreates(portico, PARALLEL_COUNT, echoPort));
  if (single.length < plan.singles) progress(`level ${plan.level}: time budget reached after ${single.length} single creates`);

  const queries = await timeQueries(portico, plan.queries, plan.level);
  const memory = await memoryOf(portico.pid);
  return {
    plan,
    fill,
    floorGrowth,
    single,
    floor: floorSamples,
    parallel,
    ...(conductor !== undefined && { conductor: conductorSamples }),
    queries,
    memory,
    seconds: (performance.now() - started) / 1000,
  };
}
