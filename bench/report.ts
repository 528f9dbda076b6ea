/**
 * Turns the samples into the table printed to stdout and the RESULTS.md beside this file. Pure:
 * everything it shows is in `Results`.
 */
import type { FloorSample } from './floor.js';
import type { Machine } from './machine.js';
import type { CreateSample, ParallelSample } from './scenarios.js';
import { percentile, summarize } from './stats.js';

export interface Results {
  machine: Machine;
  date: string;
  command: string;
  durationS: number;
  parallelCount: number;
  single: CreateSample[];
  floor: FloorSample[];
  parallel: ParallelSample[];
}

const ms = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : '–');
const times = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '–');

function row(name: string, values: number[]): string {
  const s = summarize(values);
  return `| ${name} | ${s.n} | ${ms(s.median)} | ${ms(s.p90)} | ${ms(s.min)} | ${ms(s.max)} |`;
}

function timingTable(r: Results): string[] {
  const n = r.parallelCount;
  return [
    '| measurement | n | median ms | p90 ms | min ms | max ms |',
    '|---|---:|---:|---:|---:|---:|',
    row('Portico: one `GET /createstream` → answered and port echoes (create latency)', r.single.map((s) => s.totalMs)),
    row('↳ … → answered', r.single.map((s) => s.answeredMs)),
    row('↳ … → port echoes a byte', r.single.map((s) => s.servingMs)),
    row('Floor: write file + `nginx -t` + HUP → port echoes', r.floor.map((s) => s.totalMs)),
    row('↳ write file + `nginx -t -q`', r.floor.map((s) => s.testMs)),
    row('↳ HUP → port echoes a byte', r.floor.map((s) => s.reloadMs)),
    row(`Portico: ${n} parallel \`POST /v1/streams\` → all answered and all ports echo (wall)`, r.parallel.map((s) => s.wallMs)),
    row(`↳ … → all ${n} answered`, r.parallel.map((s) => s.answeredMs)),
  ];
}

function ratioTable(r: Results): string[] {
  const create = percentile(r.single.map((s) => s.totalMs), 50);
  const floor = percentile(r.floor.map((s) => s.totalMs), 50);
  const wall = percentile(r.parallel.map((s) => s.wallMs), 50);
  const reloads = summarize(r.parallel.map((s) => s.reloads));
  const singleReloads = r.single.map((s) => s.reloads);
  return [
    '| ratio or count | value |',
    '|---|---:|',
    `| Portico create median / floor median | ${times(create / floor)} |`,
    `| ${r.parallelCount}-parallel wall median / single create median | ${times(wall / create)} |`,
    `| ${r.parallelCount}-parallel wall median / (${r.parallelCount} × single create median) | ${times(wall / (r.parallelCount * create))} |`,
    `| reloads per single create (median) | ${percentile(singleReloads, 50)} |`,
    `| reloads per ${r.parallelCount}-create round (median; min–max) | ${reloads.median} (${reloads.min}–${reloads.max}) |`,
  ];
}

/** Phase names in the order Portico first reported them. */
function phaseNames(samples: Array<Record<string, number>>): string[] {
  const names: string[] = [];
  for (const phases of samples) for (const name of Object.keys(phases)) if (!names.includes(name)) names.push(name);
  return names;
}

function phaseTable(r: Results): string[] {
  const single = r.single.map((s) => s.phasesMs);
  const last = r.parallel.map((s) => s.lastBatch.phasesMs);
  const column = (samples: Array<Record<string, number>>, name: string): string =>
    ms(percentile(samples.flatMap((p) => (p[name] === undefined ? [] : [p[name]])), 50));
  const changes = percentile(r.parallel.map((s) => s.lastBatch.changes), 50);
  return [
    `| apply phase (Portico's \`lastApply.phasesMs\`) | single create, median ms | last batch of a ${r.parallelCount}-parallel round (median ${changes} changes), median ms |`,
    '|---|---:|---:|',
    ...phaseNames([...single, ...last]).map((name) => `| ${name} | ${column(single, name)} | ${column(last, name)} |`),
  ];
}

/** The phase with the largest median in single creates, for a one-line verdict. */
function dominantPhase(r: Results): string {
  const samples = r.single.map((s) => s.phasesMs);
  const medians = phaseNames(samples).map((name) => ({
    name,
    median: percentile(samples.flatMap((p) => (p[name] === undefined ? [] : [p[name]])), 50),
  }));
  const top = medians.sort((a, b) => b.median - a.median)[0];
  const total = medians.reduce((sum, m) => sum + m.median, 0);
  return top === undefined ? 'no phase timings were reported' : `\`${top.name}\` (median ${ms(top.median)} ms of ${ms(total)} ms summed phase medians)`;
}

/** The tables alone, as printed to stdout. */
export function renderTables(r: Results): string {
  return [...timingTable(r), '', ...ratioTable(r), '', ...phaseTable(r), '', `Dominant phase of a single create: ${dominantPhase(r)}.`].join('\n');
}

export function renderResults(r: Results): string {
  const m = r.machine;
  return `# Benchmark results

Written by \`bench/run.ts\`; every run rewrites this file.

- Command: \`${r.command}\` (took ${r.durationS.toFixed(0)} s)
- Date: ${r.date}
- Machine: ${m.cpus} CPUs (\`nproc\`), ${m.model}, ${m.memory} memory, ${m.kernel}
- nginx: ${m.nginx}; Node ${m.node}

${renderTables(r)}

## What is measured

- **Create latency**: from sending \`GET /createstream/<port>/127.0.0.1:<echo>\` until Portico has
  answered *and* a TCP connection to the port carried a byte to the echo backend and back. A bare TCP
  connect is not enough: nginx's master listens on the new port before any new worker exists, so the
  kernel completes handshakes early. Each create is followed by a \`removestream\` (not timed).
- **Floor**: a separate nginx started by the benchmark (own prefix and ports, a main config shaped
  like Portico's): rewrite its one stream file with a new listen port, \`nginx -t -q\`, \`kill -HUP\`
  to the master, until the new port echoes a byte. This is the least any change can cost; Portico's
  create latency over it is Portico's own overhead.
- **${r.parallelCount} parallel creates**: ${r.parallelCount} concurrent \`POST /v1/streams\` without a port, one connection
  each; wall time until every request answered and every allocated port echoes. Ports are checked to
  be distinct and all still serving at the end, then deleted before the next round. Reloads are counted
  as \`signal 1 (SIGHUP)\` lines in Portico's nginx error log.
- Ports: Portico's \`PORT_RANGE\` is 29000-29199 and the floor uses 29300-29399, on purpose below
  Linux's ephemeral range (32768-60999): outgoing connections, nginx's own to the backend included,
  take local ports from that range, and a port one of them left in TIME_WAIT cannot be bound for about
  a minute (Portico then answers 409 "in use by another process"). The benchmark refuses to run with
  ranges that overlap it.
- Portico ran with \`LOG_LEVEL=warn\`; its phase timings come from \`GET /v1/status\` → \`lastApply\`,
  read after each create (for a parallel round: its last batch only).
- The three measurements are interleaved (single create, floor change, and every few iterations a
  parallel round) so that noise on the machine affects all of them alike. p90 is nearest-rank: with
  few samples (the parallel rounds) it is close to the maximum.

## Caveat

This machine is shared and noisy (other jobs run beside the benchmark): compare ratios taken in one
run rather than absolute milliseconds across runs, and re-run before trusting a difference under
~20%.
`;
}
