/**
 * The tables of the apps rung in bench/RESULTS.md (also printed to stdout). Pure: everything shown
 * is in `AppsRung`.
 */
import type { AppsRung } from './apps.js';
import { count, mb, med, ms, p90, phaseMedian, times } from './figures.js';

const cell = (values: number[]): string => `${ms(med(values))} / ${ms(p90(values))}`;

function replaceTable(a: AppsRung): string[] {
  const serving = a.replace.map((s) => s.servingMs);
  const answered = a.replace.map((s) => s.answeredMs);
  const floor = a.floor.map((s) => s.totalMs);
  return [
    '| apps | n | Portico: `PUT` → only the new upstream answers | Portico: `PUT` → answered | floor: app file + `nginx -t` + HUP → only the new upstream answers | floor `nginx -t` | floor HUP → only the new upstream answers | ratio of medians (new upstream) | ratio of p90s (new upstream) | ratio of medians (answered) | reloads per replace, median |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${count(a.plan.apps)} | ${a.replace.length} | ${cell(serving)} | ${cell(answered)} | ${cell(floor)} | ${cell(a.floor.map((s) => s.testMs))} | ${cell(a.floor.map((s) => s.reloadMs))} | ${times(med(serving) / med(floor))} | ${times(p90(serving) / p90(floor))} | ${times(med(answered) / med(floor))} | ${med(a.replace.map((s) => s.reloads))} |`,
  ];
}

function phaseTable(a: AppsRung): string[] {
  const phases = a.replace.map((s) => s.phasesMs);
  const names: string[] = [];
  for (const p of phases) for (const name of Object.keys(p)) if (!names.includes(name)) names.push(name);
  return [
    `| phase (Portico's \`lastApply.phasesMs\`, median ms) | one replace at ${count(a.plan.apps)} apps |`,
    '|---|---:|',
    ...names.map((n) => `| ${n} | ${ms(phaseMedian(phases, n))} |`),
    `| **floor: \`nginx -t\` / HUP → only the new upstream answers** | ${ms(med(a.floor.map((s) => s.testMs)))} / ${ms(med(a.floor.map((s) => s.reloadMs)))} |`,
  ];
}

function fillTable(a: AppsRung): string[] {
  const f = a.fill;
  return [
    '| fill | server names | routes (sticky) | requests in flight | seconds | reloads | apps/s | floor: write as many files + one `nginx -t` + one HUP, seconds |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    `| 0 → ${count(f.apps)} apps | ${count(f.serverNames)} | ${count(f.routes)} (${count(f.stickyRoutes)}) | ${f.concurrency} | ${(f.ms / 1000).toFixed(1)} | ${f.reloads} | ${((f.apps / f.ms) * 1000).toFixed(0)} | ${(a.floorGrowth.ms / 1000).toFixed(2)} |`,
  ];
}

function listTable(a: AppsRung): string[] {
  return [
    '| apps | n | `GET /v1/apps` median / p90 ms | Portico\'s RSS after the rung, MB (peak) |',
    '|---:|---:|---:|---:|',
    `| ${count(a.plan.apps)} | ${a.queries.length} | ${cell(a.queries)} | ${mb(a.memory.rssMb)} (${mb(a.memory.peakMb)}) |`,
  ];
}

/** The rung's section, headed; empty for a run from before the rung existed. */
export function appsTables(a: AppsRung | undefined): string[] {
  if (a === undefined) return [];
  return [
    '',
    `### (6) ${count(a.plan.apps)} HTTP apps (a second Portico, no stream): replacing one app beside the floor, median / p90 ms`,
    ...replaceTable(a),
    '',
    ...phaseTable(a),
    '',
    ...fillTable(a),
    '',
    ...listTable(a),
  ];
}
