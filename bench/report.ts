/**
 * The tables of bench/RESULTS.md (also printed to stdout). Pure: everything shown is in `Results`.
 */
import type { DataPlane } from './dataplane.js';
import { TARGETS, count, cpuPerUnit, efficiency, howRun, mb, med, ms, nodeCommand, p90, phaseMedian, times, verdict, type Results } from './figures.js';
import { appsTables } from './report-apps.js';
import { issue13Tables, issue13Targets } from './report-issue13.js';
import { renderDocument } from './report-doc.js';
import { issue13Misses } from './report-issue13-text.js';
import { explainMisses } from './report-text.js';
import { summarize } from './stats.js';

export type { Restart, Results } from './figures.js';

function targetTable(r: Results): string[] {
  const rows: string[] = [];
  for (const l of r.levels) {
    const ratio = med(l.single.map((s) => s.servingMs)) / med(l.floor.map((s) => s.totalMs));
    rows.push(`| (1) create at ${count(l.plan.level)} streams: median request → port echoes, over the floor's median | ${times(ratio)} | ≤ ${TARGETS.createVsFloor}× | ${verdict(ratio, TARGETS.createVsFloor)} |`);
  }
  for (const l of r.levels) {
    const ratio = med(l.parallel.map((p) => p.wallMs)) / med(l.single.map((s) => s.totalMs));
    rows.push(`| (2) 200 parallel creates at ${count(l.plan.level)}: median wall over one create's median | ${times(ratio)} | ≤ ${TARGETS.parallelVsSingle}× | ${verdict(ratio, TARGETS.parallelVsSingle)} |`);
  }
  const top = r.levels.at(-1);
  if (top !== undefined) {
    for (const [name, values] of [['GET /getstreams', top.queries.getstreams], ['GET /v1/streams', top.queries.v1streams]] as const) {
      rows.push(`| (3) \`${name}\` at ${count(top.plan.level)} streams, median | ${ms(med(values))} ms | ≤ ${TARGETS.queryMs} ms | ${verdict(med(values), TARGETS.queryMs)} |`);
    }
    rows.push(`| (4) Portico's RSS at ${count(top.plan.level)} streams, filled through the API | ${mb(top.memory.rssMb)} MB | ≤ ${TARGETS.rssMb} MB | ${verdict(top.memory.rssMb, TARGETS.rssMb)} |`);
    for (const restart of r.restarts) {
      rows.push(`| (4) … restarted on the same tree ${howRun(r, restart.nodeArgs)}, after list queries and 200 parallel creates | ${mb(restart.memory.rssMb)} MB | ≤ ${TARGETS.rssMb} MB | ${verdict(restart.memory.rssMb, TARGETS.rssMb)} |`);
    }
  }
  for (const w of r.dataPlane.workloads) {
    const e = efficiency(w);
    rows.push(`| (5) data plane, ${w.name.split(':')[0]}: generated efficiency over the reference's | ${times(e, 3)} | ≥ ${TARGETS.efficiency}× | ${verdict(e, TARGETS.efficiency, true)} |`);
  }
  return ['| target | measured | target | verdict |', '|---|---:|---:|---|', ...rows];
}

const cell = (values: number[]): string => `${ms(med(values))} / ${ms(p90(values))}`;

function createTable(r: Results): string[] {
  return [
    '| streams | n | Portico: request → port echoes | Portico: request → answered | floor: file + `nginx -t` + HUP → echoes | floor `nginx -t` | floor HUP → echoes | ratio of medians (echoes) | ratio of p90s (echoes) | ratio of medians (answered) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.levels.map((l) => {
      const serving = l.single.map((s) => s.servingMs);
      const answered = l.single.map((s) => s.answeredMs);
      const floor = l.floor.map((s) => s.totalMs);
      return `| ${count(l.plan.level)} | ${l.single.length} | ${cell(serving)} | ${cell(answered)} | ${cell(floor)} | ${cell(l.floor.map((s) => s.testMs))} | ${cell(l.floor.map((s) => s.reloadMs))} | ${times(med(serving) / med(floor))} | ${times(p90(serving) / p90(floor))} | ${times(med(answered) / med(floor))} |`;
    }),
  ];
}

/** Phase names in the order Portico first reported them. */
function phaseNames(samples: Array<Record<string, number>>): string[] {
  const names: string[] = [];
  for (const phases of samples) for (const name of Object.keys(phases)) if (!names.includes(name)) names.push(name);
  return names;
}

function phaseTable(r: Results): string[] {
  const single = r.levels.map((l) => l.single.map((s) => s.phasesMs));
  const last = r.levels.map((l) => l.parallel.map((p) => p.lastBatch.phasesMs));
  const names = phaseNames([...single.flat(), ...last.flat()]);
  const head = r.levels.map((l) => `one create at ${count(l.plan.level)}`);
  const headLast = r.levels.map((l) => `last batch of a parallel round at ${count(l.plan.level)} (median ${med(l.parallel.map((p) => p.lastBatch.changes))} changes)`);
  return [
    `| phase (Portico's \`lastApply.phasesMs\`, median ms) | ${[...head, ...headLast].join(' | ')} |`,
    `|---|${[...head, ...headLast].map(() => '---:').join('|')}|`,
    ...names.map((n) => `| ${n} | ${[...single, ...last].map((s) => ms(phaseMedian(s, n))).join(' | ')} |`),
    `| **floor: \`nginx -t\` / HUP → echoes** | ${r.levels.map((l) => `${ms(med(l.floor.map((s) => s.testMs)))} / ${ms(med(l.floor.map((s) => s.reloadMs)))}`).join(' | ')} | ${r.levels.map(() => '').join(' | ')} |`,
  ];
}

function parallelTable(r: Results): string[] {
  return [
    '| streams | rounds | wall: all answered and echoing, median / p90 ms | all answered, median ms | one create (answered and echoing), median ms | wall / one create | reloads per round, median (min–max) | distinct ports / echoing at the end (worst round) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.levels.map((l) => {
      const wall = l.parallel.map((p) => p.wallMs);
      const one = med(l.single.map((s) => s.totalMs));
      const reloads = summarize(l.parallel.map((p) => p.reloads));
      const worst = `${Math.min(...l.parallel.map((p) => p.distinct ?? Number.NaN))} / ${Math.min(...l.parallel.map((p) => p.serving ?? Number.NaN))}`;
      return `| ${count(l.plan.level)} | ${l.parallel.length} | ${cell(wall)} | ${ms(med(l.parallel.map((p) => p.answeredMs)))} | ${ms(one)} | ${times(med(wall) / one)} | ${reloads.median} (${reloads.min}–${reloads.max}) | ${worst} of 200 |`;
    }),
  ];
}

function fillTable(r: Results): string[] {
  const fills = r.levels.flatMap((l) => (l.fill === undefined ? [] : [{ fill: l.fill, growth: l.floorGrowth }]));
  const total = { streams: 0, ms: 0, reloads: 0, floorMs: 0 };
  const rows = fills.map(({ fill, growth }) => {
    total.streams += fill.to - fill.from;
    total.ms += fill.ms;
    total.reloads += fill.reloads;
    total.floorMs += growth?.ms ?? 0;
    const rate = ((fill.to - fill.from) / fill.ms) * 1000;
    return `| ${count(fill.from)} → ${count(fill.to)} | ${fill.concurrency} | ${(fill.ms / 1000).toFixed(1)} | ${fill.reloads} | ${rate.toFixed(0)} | ${growth === undefined ? '–' : (growth.ms / 1000).toFixed(2)} |`;
  });
  const rate = (total.streams / total.ms) * 1000;
  return [
    '| fill | requests in flight | seconds | reloads | streams/s | floor: write as many files + one `nginx -t` + one HUP, seconds |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
    `| **0 → ${count(total.streams)}** | | **${(total.ms / 1000).toFixed(1)}** | **${total.reloads}** | ${rate.toFixed(0)} | ${(total.floorMs / 1000).toFixed(2)} |`,
  ];
}

function queryTable(r: Results): string[] {
  const rows = r.levels.map((l) => `| ${count(l.plan.level)} | ${l.queries.getstreams.length} | ${cell(l.queries.getstreams)} | ${cell(l.queries.v1streams)} |`);
  const top = r.levels.at(-1)?.plan.level ?? 0;
  for (const restart of r.restarts) {
    rows.push(`| ${count(top)}, after a restart ${howRun(r, restart.nodeArgs)} | ${restart.queries.getstreams.length} | ${cell(restart.queries.getstreams)} | ${cell(restart.queries.v1streams)} |`);
  }
  return ['| streams | n | `GET /getstreams` median / p90 ms | `GET /v1/streams` median / p90 ms |', '|---:|---:|---:|---:|', ...rows];
}

function memoryTable(r: Results): string[] {
  const top = r.levels.at(-1)?.plan.level ?? 0;
  return [
    `| Portico (\`${nodeCommand(r.nodeArgs)}\`), VmRSS of its process | RSS MB | peak (VmHWM) MB |`,
    '|---|---:|---:|',
    `| just started, no stream | ${mb(r.idle.rssMb)} | ${mb(r.idle.peakMb)} |`,
    ...r.levels.map((l) => `| after the measurements at ${count(l.plan.level)} streams | ${mb(l.memory.rssMb)} | ${mb(l.memory.peakMb)} |`),
    ...r.restarts.map((restart) => {
      const how = howRun(r, restart.nodeArgs);
      const queries = restart.queries.v1streams.length * 2 + 2;
      return `| restarted on the ${count(top)}-stream tree ${how} (ready in ${(restart.readyMs / 1000).toFixed(1)} s), after ${queries} list queries and one round of 200 parallel creates (${ms(restart.parallel.wallMs)} ms wall) | ${mb(restart.memory.rssMb)} | ${mb(restart.memory.peakMb)} |`;
    }),
  ];
}

function dataPlaneTable(d: DataPlane): string[] {
  const rows: string[] = [];
  for (const w of d.workloads) {
    const sides = [...new Set(w.rounds.map((x) => x.side))];
    for (const side of sides) {
      const rounds = w.rounds.filter((x) => x.side === side);
      const rate = med(rounds.map((x) => (x.work / x.ms) * 1000));
      const per = cpuPerUnit(w, side);
      const perText = w.unit === 'MB' ? `${per.toFixed(2)} ms/MB` : `${(per * 1000).toFixed(1)} µs/${w.unit}`;
      const errors = rounds.reduce((sum, x) => sum + x.errors, 0);
      const vsReference = side === 'reference' ? '' : ` (${times(cpuPerUnit(w, 'reference') / per)} the reference's efficiency)`;
      rows.push(`| ${w.name} | ${side} | ${rounds.length} | ${rate.toFixed(w.unit === 'MB' ? 1 : 0)} ${w.unit}/s | ${perText}${vsReference} | ${errors} |`);
    }
    const ratios = w.rounds.flatMap((g, i) => {
      const ref = w.rounds[i + 1];
      return g.side === 'generated' && ref?.side === 'reference' ? [ref.cpuMs / ref.work / (g.cpuMs / g.work)] : [];
    });
    const s = summarize(ratios);
    rows.push(`| ↳ generated efficiency / reference's | | | | **${times(efficiency(w), 3)}** (per pair of rounds: median ${times(s.median)}, ${times(s.min)}–${times(s.max)}) | |`);
  }
  return ['| workload | config | rounds | throughput, median | nginx workers\' CPU per unit (all rounds) | errors |', '|---|---|---:|---:|---:|---:|', ...rows];
}

/** Every table, as printed to stdout. */
export function renderTables(r: Results): string {
  return [
    '### Targets',
    ...targetTable(r),
    '',
    ...issue13Targets(r),
    '',
    '### (1) Create latency beside the floor, by size of the tree (median / p90 ms)',
    ...createTable(r),
    '',
    ...phaseTable(r),
    '',
    '### (2) 200 parallel `POST /v1/streams`',
    ...parallelTable(r),
    '',
    '### Filling the tree through the API',
    ...fillTable(r),
    '',
    '### (3) List queries',
    ...queryTable(r),
    '',
    '### (4) Memory',
    ...memoryTable(r),
    '',
    '### (5) Data plane: generated config vs hand-written reference, same nginx build, alternating',
    ...dataPlaneTable(r.dataPlane),
    ...r.dataPlane.skipped.map((s) => `\nSkipped: ${s}.`),
    ...appsTables(r.apps),
    ...issue13Tables(r),
  ].join('\n');
}

export function renderResults(r: Results): string {
  return renderDocument(r, renderTables(r), [...explainMisses(r), ...issue13Misses(r)]);
}
