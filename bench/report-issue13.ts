/**
 * Issue 13's part of bench/RESULTS.md (also printed): external mode's ladder beside managed mode's,
 * each over its own floor; stream-conductor's way beside external mode; a new app until served,
 * Portico beside Caddy. Targets with "met / missed by how much", the tables, and where the time
 * goes when a target is missed. Pure: everything shown is in `Results`.
 */
import type { AppCreates } from './apps.js';
import type { CreatesAt } from './apps-create.js';
import { TARGETS, count, med, ms, p90, phaseMedian, times, verdict, type Results } from './figures.js';
import type { Level } from './ladder.js';

const cell = (values: number[]): string => `${ms(med(values))} / ${ms(p90(values))}`;
const echo = (l: Level): number[] => l.single.map((s) => s.servingMs);
const floorTotal = (l: Level): number[] => l.floor.map((s) => s.totalMs);
const conductorEcho = (l: Level): number[] => (l.conductor ?? []).map((s) => s.servingMs);
/** The goal's rungs: 0, 1,000 and 5,000 (the 200-stream rung is there for stream-conductor). */
const GOAL_LEVELS = [0, 1000, 5000];
const onGoal = (levels: Level[]): Level[] => {
  const goal = levels.filter((l) => GOAL_LEVELS.includes(l.plan.level));
  return goal.length > 0 ? goal : levels.filter((l) => l.plan.level !== 200); // a quick run's smaller ladder
};

export function issue13Targets(r: Results): string[] {
  const rows: string[] = [];
  const ext = r.external?.levels ?? [];
  for (const l of onGoal(ext)) {
    const ratio = med(echo(l)) / med(floorTotal(l));
    rows.push(`| (13.1) external mode, create at ${count(l.plan.level)} streams: median create → first echo over its floor's | ${times(ratio)} (${ms(med(echo(l)))} / ${ms(med(floorTotal(l)))} ms) | ≤ ${TARGETS.createVsFloor}× | ${verdict(ratio, TARGETS.createVsFloor)} |`);
  }
  for (const l of ext.filter((x) => (x.conductor ?? []).length > 0 && x.plan.level <= 200)) {
    const ratio = med(echo(l)) / med(conductorEcho(l));
    rows.push(`| (13.1) external mode against stream-conductor's way at ${count(l.plan.level)} streams: median create → first echo, Portico over stream-conductor | ${times(ratio)} (${ms(med(echo(l)))} / ${ms(med(conductorEcho(l)))} ms) | < 1× | ${verdict(ratio, 1)} |`);
  }
  for (const [mode, levels] of [['managed', r.levels], ['external', ext]] as const) {
    for (const l of onGoal(levels)) {
      const ratio = med(l.parallel.map((p) => p.wallMs)) / med(l.single.map((s) => s.totalMs));
      rows.push(`| (13.2) ${mode} mode, 200 parallel creates at ${count(l.plan.level)}: median wall over one create's median | ${times(ratio)} | ≤ ${TARGETS.parallelVsSingle}× | ${verdict(ratio, TARGETS.parallelVsSingle)} |`);
    }
  }
  // Goal 3: at scale a change costs less than the naive way (`nginx -t` of the tree, HUP, first answer).
  for (const [mode, levels] of [['managed', r.levels], ['external', ext]] as const) {
    for (const l of levels.filter((x) => x.plan.level === 5000)) {
      const ratio = med(echo(l)) / med(floorTotal(l));
      rows.push(`| (13.3) ${mode} mode, one create at ${count(l.plan.level)} streams: median create → first echo over the naive floor's (file + \`nginx -t\` + HUP → echo) | ${times(ratio)} (${ms(med(echo(l)))} / ${ms(med(floorTotal(l)))} ms) | ≤ ${TARGETS.belowNaiveFloor}× | ${verdict(ratio, TARGETS.belowNaiveFloor)} |`);
    }
  }
  const a = r.apps;
  if (a !== undefined && a.replace.length > 0) {
    const serving = med(a.replace.map((s) => s.servingMs));
    const floor = med(a.floor.map((s) => s.totalMs));
    rows.push(`| (13.3) one app replace at ${count(a.plan.apps)} apps: median \`PUT\` → only the new upstream answers, over the naive floor's (file + \`nginx -t\` + HUP → new upstream) | ${times(serving / floor)} (${ms(serving)} / ${ms(floor)} ms) | ≤ ${TARGETS.belowNaiveFloor}× | ${verdict(serving / floor, TARGETS.belowNaiveFloor)} |`);
  }
  const c = r.apps?.creates;
  if (c !== undefined) {
    const empty = med(c.empty.portico.map((s) => s.servingMs));
    rows.push(`| (13.5) new app at 0 apps: median \`POST /v1/apps\` → first answer from its backend | ${ms(empty)} ms | ≤ ${TARGETS.appCreateMs} ms | ${verdict(empty, TARGETS.appCreateMs)} |`);
    const ratio = med(c.full.portico.map((s) => s.servingMs)) / med(c.full.caddy.map((s) => s.servingMs));
    rows.push(`| (13.5) new app at ${count(c.full.hosts)} apps: median create → served, Portico over Caddy at as many hosts | ${times(ratio)} | ≤ ${TARGETS.appVsCaddy}× | ${'skipped' in c.caddy ? 'not measured (no Caddy)' : verdict(ratio, TARGETS.appVsCaddy)} |`);
  }
  return ['| target (issue 13) | measured | target | verdict |', '|---|---:|---:|---|', ...rows];
}

function modesTable(r: Results): string[] {
  const ext = new Map((r.external?.levels ?? []).map((l) => [l.plan.level, l]));
  const levels = [...new Set([...r.levels.map((l) => l.plan.level), ...ext.keys()])].sort((a, b) => a - b);
  const managed = new Map(r.levels.map((l) => [l.plan.level, l]));
  const side = (l: Level | undefined): string =>
    l === undefined ? '– | – | – | –' : `${cell(echo(l))} | ${cell(l.single.map((s) => s.answeredMs))} | ${cell(floorTotal(l))} | ${times(med(echo(l)) / med(floorTotal(l)))}`;
  return [
    '| streams | managed: create → first echo | managed: → answered | managed floor (file + `nginx -t` + HUP → echo) | managed / floor | external: create → first echo | external: → answered | external floor | external / floor |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...levels.map((level) => `| ${count(level)} | ${side(managed.get(level))} | ${side(ext.get(level))} |`),
  ];
}

function conductorTable(r: Results): string[] {
  const levels = (r.external?.levels ?? []).filter((l) => (l.conductor ?? []).length > 0);
  return [
    '| streams | n | Portico external: create → answered | Portico external: create → first echo | stream-conductor\'s way: file + `nginx -s reload` → answered | stream-conductor\'s way: → first echo (polled after the answer) | Portico / stream-conductor (first echo, medians) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...levels.map((l) => {
      const cond = l.conductor ?? [];
      return `| ${count(l.plan.level)} | ${l.single.length} / ${cond.length} | ${cell(l.single.map((s) => s.answeredMs))} | ${cell(echo(l))} | ${cell(cond.map((s) => s.answeredMs))} | ${cell(conductorEcho(l))} | ${times(med(echo(l)) / med(conductorEcho(l)))} |`;
    }),
  ];
}

function externalPhases(r: Results): string[] {
  const levels = r.external?.levels ?? [];
  const names: string[] = [];
  for (const l of levels) for (const s of l.single) for (const n of Object.keys(s.phasesMs)) if (!names.includes(n)) names.push(n);
  return [
    `| phase (external mode, one create, median ms) | ${levels.map((l) => count(l.plan.level)).join(' | ')} |`,
    `|---|${levels.map(() => '---:').join('|')}|`,
    ...names.map((n) => `| ${n} | ${levels.map((l) => ms(phaseMedian(l.single.map((s) => s.phasesMs), n))).join(' | ')} |`),
    `| **its floor: \`nginx -t\` / HUP → echo** | ${levels.map((l) => `${ms(med(l.floor.map((s) => s.testMs)))} / ${ms(med(l.floor.map((s) => s.reloadMs)))}`).join(' | ')} |`,
  ];
}

function externalParallel(r: Results): string[] {
  const levels = (r.external?.levels ?? []).filter((l) => l.parallel.length > 0);
  return [
    '| streams | rounds | wall: all answered and echoing, median / p90 ms | one create, median ms | wall / one create | reloads per round, median |',
    '|---:|---:|---:|---:|---:|---:|',
    ...levels.map((l) => {
      const wall = l.parallel.map((p) => p.wallMs);
      const one = med(l.single.map((s) => s.totalMs));
      return `| ${count(l.plan.level)} | ${l.parallel.length} | ${cell(wall)} | ${ms(one)} | ${times(med(wall) / one)} | ${med(l.parallel.map((p) => p.reloads))} |`;
    }),
  ];
}

function createsRow(at: CreatesAt): string {
  const portico = at.portico.map((s) => s.servingMs);
  const caddy = at.caddy.map((s) => s.servingMs);
  return `| ${count(at.hosts)} | ${at.portico.length} / ${at.caddy.length} | ${cell(at.portico.map((s) => s.answeredMs))} | ${cell(portico)} | ${cell(at.caddy.map((s) => s.answeredMs))} | ${cell(caddy)} | ${times(med(portico) / med(caddy))} | ${times(p90(portico) / p90(caddy))} |`;
}

function createsTables(c: AppCreates): string[] {
  const phases = [c.empty, c.full].map((at) => at.portico.map((s) => s.phasesMs ?? {}));
  const names: string[] = [];
  for (const p of phases.flat()) for (const n of Object.keys(p)) if (!names.includes(n)) names.push(n);
  return [
    '| apps / hosts | n (Portico / Caddy) | Portico: `POST /v1/apps` → answered | Portico: → first answer from the backend | Caddy: route POSTed → admin API answered | Caddy: → first answer from the backend | Portico / Caddy (medians) | Portico / Caddy (p90s) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    createsRow(c.empty),
    createsRow(c.full),
    '',
    `| phase (Portico, one new app, median ms) | at ${count(c.empty.hosts)} apps | at ${count(c.full.hosts)} apps |`,
    '|---|---:|---:|',
    ...names.map((n) => `| ${n} | ${phases.map((p) => ms(phaseMedian(p, n))).join(' | ')} |`),
  ];
}

/** The section's tables, headed. */
export function issue13Tables(r: Results): string[] {
  const lines: string[] = [];
  if (r.external !== undefined) {
    lines.push(
      '',
      `### (13.1) Managed and external mode side by side, each over its own floor (median / p90 ms; external ladder ${r.external.seconds.toFixed(0)} s)`,
      ...modesTable(r),
      '',
      ...externalPhases(r),
      '',
      "### (13.1) Portico's external mode beside stream-conductor's way, on the same operator nginx (median / p90 ms)",
      ...conductorTable(r),
      '',
      '### (13.2) External mode: 200 parallel `POST /v1/streams`',
      ...externalParallel(r),
    );
  }
  const c = r.apps?.creates;
  if (c !== undefined) {
    const peer = 'skipped' in c.caddy ? `Caddy skipped: ${c.caddy.skipped}` : `Caddy ${c.caddy.version}${c.caddyFillMs === undefined ? '' : `, filled with the same apps as routes in one \`POST /load\`, ${ms(c.caddyFillMs)} ms until served`}`;
    lines.push('', `### (13.5) A new app until served: Portico beside Caddy (${peer}; median / p90 ms)`, ...createsTables(c));
  }
  return lines;
}
