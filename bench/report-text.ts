/**
 * The prose of bench/RESULTS.md: where a target is missed, by how much and why (from the phase
 * timings measured in the same run), and what each figure measures. Pure.
 */
import type { Level } from './ladder.js';
import { WITH_LOG, WITH_ZONE, type Workload } from './dataplane.js';
import { TARGETS, count, cpuPerUnit, efficiency, med, ms, mb, nodeCommand, phaseMedian, times, verdict, type Results } from './figures.js';

const OWN_PHASES = ['read', 'plan', 'stage', 'swap', 'commit'];

/** "missed by 5%", as the targets table says it (one decimal under 10%). */
const missedBy = (value: number, limit: number): string => verdict(value, limit).replaceAll('*', '');

/** `label` heads the line: "(1) create" for managed mode's ladder, another for external mode's. */
export function createMiss(l: Level, label = '(1) create'): string | undefined {
  const serving = med(l.single.map((s) => s.servingMs));
  const answered = med(l.single.map((s) => s.answeredMs));
  const floor = med(l.floor.map((s) => s.totalMs));
  if (serving / floor <= TARGETS.createVsFloor) return undefined;
  const phases = l.single.map((s) => s.phasesMs);
  const own = OWN_PHASES.reduce((sum, n) => sum + (phaseMedian(phases, n) || 0), 0);
  const ownDetail = OWN_PHASES.map((n) => `${n} ${ms(phaseMedian(phases, n))}`).join(', ');
  return (
    `- **${label} at ${count(l.plan.level)} streams: ${times(serving / floor)} the floor** (target ${TARGETS.createVsFloor}×, ` +
    `${missedBy(serving / floor, TARGETS.createVsFloor)}): ${ms(serving)} ms to the first echoed byte against the ` +
    `floor's ${ms(floor)} ms, ${ms(serving - floor)} ms more. Phase medians: Portico's \`test\` ${ms(phaseMedian(phases, 'test'))} ms ` +
    `against the floor's bare \`nginx -t\` ${ms(med(l.floor.map((s) => s.testMs)))} ms; \`reload\` (HUP, new workers seen in the log, ` +
    `every new port accepting) ${ms(phaseMedian(phases, 'reload'))} ms against the floor's HUP → echo ` +
    `${ms(med(l.floor.map((s) => s.reloadMs)))} ms; Portico's own steps ${ms(own)} ms (${ownDetail}). It answered at ${ms(answered)} ms ` +
    `(the request itself, HTTP, queueing and answering, is what the phases leave of that)` +
    (serving > answered
      ? `, and the port first echoed ${ms(serving - answered)} ms after the answer: Portico's check that a new port accepts ` +
        'is a TCP connect, which the kernel completes once the master has bound the port, before a new worker accepts.'
      : '.') +
    (phaseMedian(phases, 'read') > own / 2 ? ` ${READ_WHY}` : l.plan.level < 1000 ? ` ${FIXED_WHY}` : '')
  );
}

const READ_WHY =
  'Most of it is `read`: a batch that comes more than `RESCAN_MS` (1 s) after the last full scan of the stream directory ' +
  'stats every file of the tree again (`src/store/config-dir.ts` `read`), to see files edited in place by hand; ' +
  'Portico\'s own changes update the snapshot without a scan (see "Scale findings").';
const FIXED_WHY =
  'With a small tree the floor is short and Portico\'s fixed costs weigh: `swap` (the journal of old and new texts, ' +
  'written and flushed once, and the renames), `commit` (the commit mark, flushed), and the HTTP round trip.'

export function parallelMiss(l: Level, label = '(2) 200 parallel creates'): string | undefined {
  const wall = med(l.parallel.map((p) => p.wallMs));
  const one = med(l.single.map((s) => s.totalMs));
  if (wall / one <= TARGETS.parallelVsSingle) return undefined;
  const phases = l.parallel.map((p) => p.lastBatch.phasesMs);
  const detail = Object.keys(phases[0] ?? {}).map((n) => `${n} ${ms(phaseMedian(phases, n))}`).join(', ');
  const changes = med(l.parallel.map((p) => p.lastBatch.changes));
  const perBatch = phaseMedian(phases, 'test') + phaseMedian(phases, 'reload');
  const perChange = ['plan', 'stage', 'swap', 'commit'].reduce((sum, n) => sum + (phaseMedian(phases, n) || 0), 0);
  const larger =
    perChange > perBatch
      ? 'at this size the work that grows with the number of changes outweighs what a batch pays once'
      : 'at this size what a batch pays once outweighs the work that grows with the number of changes';
  return (
    `- **${label} at ${count(l.plan.level)} streams: ${times(wall / one)} one create** (target ` +
    `${TARGETS.parallelVsSingle}×): ${ms(wall)} ms against ${ms(one)} ms, in a median of ${med(l.parallel.map((p) => p.reloads))} ` +
    `reloads: the first requests find the queue idle and form a batch of their own, the rest arrive meanwhile and form the ` +
    `next. The last batch of a round (median ${changes} changes) spent, in ms: ${detail}. Paid once per batch (twice per ` +
    `round): \`test\` and \`reload\`, ${ms(perBatch)} ms (the reload also connects to each new port). Growing with the changes: ` +
    `\`plan\`, \`stage\`, \`swap\`, \`commit\`, ${ms(perChange)} ms, ${(perChange / changes).toFixed(2)} ms per change (\`stage\` writes each file, \`swap\` ` +
    `puts every text in the batch's journal, \`plan\` probes the host with a bind for each port it allocates); ${larger}. The 200 requests' HTTP parsing and answering come on top.`
  );
}

function memoryMiss(r: Results): string | undefined {
  const top = r.levels.at(-1);
  if (top === undefined || top.memory.rssMb <= TARGETS.rssMb) return undefined;
  const [shipped, defaults] = r.restarts;
  const restarted =
    shipped === undefined ? '' : `; ${mb(shipped.memory.rssMb)} MB restarted on the same tree after the same kind of traffic`;
  const unbounded =
    defaults === undefined ? '' : ` With node's default heap sizing the same restart and traffic leave ${mb(defaults.memory.rssMb)} MB.`;
  return (
    `- **(4) RSS at ${count(top.plan.level)} streams: ${mb(top.memory.rssMb)} MB** (target ${TARGETS.rssMb} MB, ` +
    `${missedBy(top.memory.rssMb, TARGETS.rssMb)}${restarted}), run as \`${nodeCommand(r.nodeArgs)}\`. Idle, with ` +
    `no stream, Portico holds ${mb(r.idle.rssMb)} MB; after the few hundred requests of the 0-stream rung, ` +
    `${mb(r.levels[0]?.memory.rssMb ?? Number.NaN)} MB with no stream at all.${unbounded} See "Memory" below.`
  );
}

function dataPlaneMisses(r: Results): string[] {
  return r.dataPlane.workloads.flatMap((w) => {
    const e = efficiency(w);
    if (e >= TARGETS.efficiency) return [];
    const g = cpuPerUnit(w, 'generated');
    const ref = cpuPerUnit(w, 'reference');
    const unit = w.unit === 'MB' ? 'ms per MB' : `µs per ${w.unit}`;
    const scale = w.unit === 'MB' ? 1 : 1000;
    return [
      `- **(5) ${w.name.split(':')[0]}: ${times(e, 3)} the reference's efficiency** (target ${TARGETS.efficiency}×): nginx's workers ` +
        `spent ${(g * scale).toFixed(2)} ${unit} on Portico's config against ${(ref * scale).toFixed(2)} on the hand-written one. ` +
        (w.unit === 'request'
          ? httpWhy(w, g, ref)
          : streamWhy(w)),
    ];
  });
}

/** Per pair of rounds (generated, then reference): the reference's CPU per unit over the generated's. */
function pairRatios(w: Workload): number[] {
  return w.rounds.flatMap((g, i) => {
    const r = w.rounds[i + 1];
    return g.side === 'generated' && r?.side === 'reference' ? [r.cpuMs / r.work / (g.cpuMs / g.work)] : [];
  });
}

function streamWhy(w: Workload): string {
  const pairs = pairRatios(w);
  const range = `${times(Math.min(...pairs))}–${times(Math.max(...pairs))}`;
  const straddles = Math.max(...pairs) >= 1;
  const reference = cpuPerUnit(w, 'reference');
  const logged = cpuPerUnit(w, WITH_LOG);
  // Per round, the reference's stream then its logged twin on the same nginx: their ratio's range.
  const logPairs = w.rounds.flatMap((r, i) => {
    const l = w.rounds[i + 1];
    return r.side === 'reference' && l?.side === WITH_LOG ? [r.cpuMs / r.work / (l.cpuMs / l.work)] : [];
  });
  const logStraddles = logPairs.length > 0 && Math.min(...logPairs) < 1 && Math.max(...logPairs) > 1;
  const log = Number.isFinite(logged)
    ? `The reference's second stream, which differs only in writing Portico's per-resource traffic log, spent ` +
      `${(logged * 1000).toFixed(1)} µs per connection against ${(reference * 1000).toFixed(1)} without it ` +
      `(${times(reference / logged, 3)} efficiency; per round ${times(Math.min(...logPairs))}–${times(Math.max(...logPairs))}): ` +
      (logged / reference <= 1.02
        ? 'the log is not what costs. '
        : logStraddles
          ? "on both sides of 1, so this run cannot tell the log's cost from the noise (bench-traffic's twin streams measure it on one nginx, bench/TRAFFIC.md). "
          : 'that much of the gap is the log. ')
    : '';
  return (
    `Per pair of rounds the ratio ranged ${range}${straddles ? ', on both sides of 1: this run cannot tell the two apart' : ''}. ` +
    log +
    "The stream blocks are the same text (a `listen` and a `proxy_pass`); what differs is the main config (Portico's sizes " +
    '`worker_connections` and `worker_rlimit_nofile` for its whole range) and that Portico\'s nginx also holds the apps\' shared ' +
    'server (TLS and QUIC listeners, a cache zone).'
  );
}

/**
 * The HTTP gap, split by the third config measured beside the two: the reference with one change,
 * the 64 KiB shared-memory zone Portico gives every app route's upstream group.
 */
function httpWhy(w: Workload, generated: number, reference: number): string {
  const zoned = cpuPerUnit(w, WITH_ZONE);
  if (!Number.isFinite(zoned)) return '';
  const gap = generated - reference;
  const pairs = pairRatios(w);
  const zone =
    zoned > reference && zoned < generated
      ? `the reference spends ${(zoned * 1000).toFixed(1)} µs per request: by this run the zone accounts for ` +
        `${(((zoned - reference) / gap) * 100).toFixed(0)}% of the gap, and the rest, ${((generated - zoned) * 1000).toFixed(1)} µs ` +
        'per request, lies in the other differences and in the noise'
      : `the reference spends ${(zoned * 1000).toFixed(1)} µs per request, ${zoned <= reference ? 'no more than' : 'more than Portico\'s config and'} ` +
        `without it (${(reference * 1000).toFixed(1)}): the zone does not explain the gap, which lies in the other differences and in the noise`;
  return (
    `With only a 64 KiB zone added to its upstream group, as Portico gives every app route (balancing state and failure ` +
    `counts shared by the workers), ${zone} (per pair of rounds the ratio ranged ${times(Math.min(...pairs))}–` +
    `${times(Math.max(...pairs))}). The other differences: the main config (Portico's log format, \`worker_connections\` ` +
    `sized for its whole PORT_RANGE), and the apps' shared server beside the app (TLS and QUIC listeners, a cache zone).`
  );
}

/** One line per missed target, with the measured reason; empty when every target is met. */
export function explainMisses(r: Results): string[] {
  return [
    ...r.levels.flatMap((l) => createMiss(l) ?? []),
    ...r.levels.flatMap((l) => parallelMiss(l) ?? []),
    ...(r.levels.at(-1) === undefined
      ? []
      : (['getstreams', 'v1streams'] as const).flatMap((k) => {
          const top = r.levels.at(-1) as Level;
          const m = med(top.queries[k]);
          return m <= TARGETS.queryMs ? [] : [`- **(3) \`${k}\` at ${count(top.plan.level)} streams: ${ms(m)} ms** (target ${TARGETS.queryMs} ms).`];
        })),
    ...[memoryMiss(r)].flatMap((line) => line ?? []),
    ...dataPlaneMisses(r),
  ];
}
