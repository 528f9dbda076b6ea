/**
 * What a benchmark run produced, and the small calculations every part of the report shares:
 * the targets of issue 5, formatting, medians, verdicts, data-plane efficiency. Pure.
 */
import type { AppsRung } from './apps.js';
import type { DataPlane, Side, Workload } from './dataplane.js';
import type { Level } from './ladder.js';
import type { ExternalLadder } from './ladder-external.js';
import type { Machine } from './machine.js';
import type { Memory } from './proc-stats.js';
import type { QuerySamples } from './scale.js';
import type { ParallelSample } from './scenarios.js';
import { percentile } from './stats.js';

export interface Restart {
  /** node's options: bin/portico's flags, or none (node's defaults). */
  nodeArgs: string[];
  /** From spawning Portico on the full tree until /healthz answered and its nginx ran. */
  readyMs: number;
  /** After the queries and the parallel round. */
  memory: Memory;
  queries: QuerySamples;
  /** One round of parallel creates (deleted again) after the queries: the churn of a busy API. */
  parallel: ParallelSample;
}

export interface Results {
  machine: Machine;
  date: string;
  command: string;
  durationS: number;
  /** /proc/loadavg (1, 5, 15 minutes) before and after: other jobs share this machine. */
  load: { before: string; after: string };
  range: { from: number; to: number };
  /** node's flags Portico ran with: bin/portico's, as `make start`, `npm start` and the container run it. */
  nodeArgs: string[];
  /** Portico's memory just after start, with no stream. */
  idle: Memory;
  levels: Level[];
  dataPlane: DataPlane;
  /** Restarted on the full tree: as `make start` runs it (`nodeArgs`), then with node's defaults. */
  restarts: Restart[];
  /** The ladder again with Portico in external mode (absent from runs before issue 13). */
  external?: ExternalLadder;
  /** 1,000 HTTP apps on a second Portico (absent from runs before the rung existed). */
  apps?: AppsRung;
}

export const TARGETS = { createVsFloor: 1.25, parallelVsSingle: 3, queryMs: 10, rssMb: 120, efficiency: 0.97, appCreateMs: 40, appVsCaddy: 3, belowNaiveFloor: 0.8 };

export const ms = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : '–');
export const times = (value: number, digits = 2): string => (Number.isFinite(value) ? `${value.toFixed(digits)}×` : '–');
export const mb = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : '–');
export const med = (values: number[]): number => percentile(values, 50);
export const p90 = (values: number[]): number => percentile(values, 90);
export const count = (n: number): string => n.toLocaleString('en-US');

/** "met" or "missed by 23% (…)" for a figure that must stay at or below `limit` (or above, `atLeast`). */
export function verdict(value: number, limit: number, atLeast = false): string {
  if (!Number.isFinite(value)) return 'not measured';
  const ok = atLeast ? value >= limit : value <= limit;
  if (ok) return '**met**';
  const by = atLeast ? (limit - value) / limit : (value - limit) / limit;
  return `**missed** by ${(by * 100).toFixed(by < 0.1 ? 1 : 0)}%`;
}

/** CPU milliseconds per unit of work on one side, over all its rounds together. */
export function cpuPerUnit(w: Workload, side: Side): number {
  const rounds = w.rounds.filter((r) => r.side === side);
  return rounds.reduce((s, r) => s + r.cpuMs, 0) / rounds.reduce((s, r) => s + r.work, 0);
}

/** Generated efficiency over the reference's (work per CPU second): ≥ 1 means Portico's costs no more. */
export function efficiency(w: Workload): number {
  return cpuPerUnit(w, 'reference') / cpuPerUnit(w, 'generated');
}

export function phaseMedian(samples: Array<Record<string, number>>, name: string): number {
  return med(samples.flatMap((p) => (p[name] === undefined ? [] : [p[name]])));
}


/** How a report names the way Portico's node ran: `node <flags> dist/main.js`. */
export const nodeCommand = (nodeArgs: string[]): string => ['node', ...nodeArgs, 'dist/main.js'].join(' ');

/** "as `make start` runs it" for the shipped flags, "with node's defaults" for none. */
export const howRun = (r: Pick<Results, 'nodeArgs'>, nodeArgs: string[]): string =>
  nodeArgs.join(' ') === r.nodeArgs.join(' ') ? `as \`make start\` runs it (\`${nodeCommand(nodeArgs)}\`)` : `with node's defaults (\`${nodeCommand(nodeArgs)}\`)`;
