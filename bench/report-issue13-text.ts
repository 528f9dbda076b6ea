/**
 * The prose of issue 13's part of bench/RESULTS.md: where each missed target's time goes (from the
 * phases and the peers measured in the same run), and what is measured. Pure.
 */
import type { CreatesAt, ServedSample } from './apps-create.js';
import { TARGETS, count, med, ms, phaseMedian, times, verdict, type Results } from './figures.js';
import { SETTLE_MS, type Level } from './ladder.js';
import { createMiss, parallelMiss } from './report-text.js';

const missedBy = (value: number, limit: number): string => verdict(value, limit).replaceAll('*', '');
const OWN = ['read', 'plan', 'stage', 'swap', 'commit'];
const own = (phases: Array<Record<string, number>>): number => OWN.reduce((sum, n) => sum + (phaseMedian(phases, n) || 0), 0);

function conductorMiss(l: Level): string | undefined {
  const cond = l.conductor ?? [];
  if (cond.length === 0 || l.plan.level > 200) return undefined;
  const portico = med(l.single.map((s) => s.servingMs));
  const theirs = med(cond.map((s) => s.servingMs));
  if (portico < theirs) return undefined;
  const phases = l.single.map((s) => s.phasesMs);
  const theirAnswer = med(cond.map((s) => s.answeredMs));
  return (
    `- **(13.1) external mode against stream-conductor's way at ${count(l.plan.level)} streams: ${times(portico / theirs)}** ` +
    `(target: faster, ${missedBy(portico / theirs, 1)}): first echo after ${ms(portico)} ms against ${ms(theirs)} ms. ` +
    `stream-conductor's answer came after ${ms(theirAnswer)} ms: the file, and \`nginx -s reload\`, a process that parses the whole ` +
    `config once (as \`nginx -t\` does) and signals the master; its client then polled until the first echo, ` +
    `${ms(theirs - theirAnswer)} ms later (the master's own parse and the new workers). Portico's answer came after ` +
    `${ms(med(l.single.map((s) => s.answeredMs)))} ms: \`test\` ${ms(phaseMedian(phases, 'test'))} ms (the parse stream-conductor's ` +
    `\`-s reload\` also pays, in a separate config copy), \`reload\` ${ms(phaseMedian(phases, 'reload'))} ms (HUP, until the new workers ` +
    `exist and the new port accepts), its own steps ${ms(own(phases))} ms; the floor's HUP → first echo on this config took ` +
    `${ms(med(l.floor.map((s) => s.reloadMs)))} ms.`
  );
}

const serving = (samples: ServedSample[]): number => med(samples.map((s) => s.servingMs));

function appPhases(at: CreatesAt): string {
  const phases = at.portico.map((s) => s.phasesMs ?? {});
  return `\`test\` ${ms(phaseMedian(phases, 'test'))} ms, \`reload\` ${ms(phaseMedian(phases, 'reload'))} ms, its own steps ${ms(own(phases))} ms`;
}

function appMisses(r: Results): string[] {
  const c = r.apps?.creates;
  if (c === undefined) return [];
  const lines: string[] = [];
  const empty = serving(c.empty.portico);
  const caddyNote = (at: CreatesAt): string =>
    at.caddy.length === 0 ? '' : ` Caddy, at ${count(at.hosts)} hosts: ${ms(serving(at.caddy))} ms from the POST to the first answer (its admin API answered after ${ms(med(at.caddy.map((s) => s.answeredMs)))} ms; it swaps a whole new config in its own process, no process to start and no file to parse).`;
  if (empty > TARGETS.appCreateMs) {
    lines.push(
      `- **(13.5) new app at 0 apps: ${ms(empty)} ms** (target ${TARGETS.appCreateMs} ms, ${missedBy(empty, TARGETS.appCreateMs)}): ` +
        `Portico answered after ${ms(med(c.empty.portico.map((s) => s.answeredMs)))} ms; phase medians ${appPhases(c.empty)}.` +
        caddyNote(c.empty),
    );
  }
  const ratio = serving(c.full.portico) / serving(c.full.caddy);
  if (c.full.caddy.length > 0 && ratio > TARGETS.appVsCaddy) {
    lines.push(
      `- **(13.5) new app at ${count(c.full.hosts)} apps: ${times(ratio)} Caddy** (target ${TARGETS.appVsCaddy}×, ${missedBy(ratio, TARGETS.appVsCaddy)}): ` +
        `${ms(serving(c.full.portico))} ms against ${ms(serving(c.full.caddy))} ms; Portico's phase medians ${appPhases(c.full)} ` +
        `(\`nginx -t\` reads the new app alone; the master's reload parses all ${count(c.full.hosts)} apps and starts workers for them).` +
        caddyNote(c.full),
    );
  }
  return lines;
}

/** One line per missed issue-13 target; empty when all are met. */
export function issue13Misses(r: Results): string[] {
  const ext = r.external?.levels ?? [];
  const goal = ext.filter((l) => l.plan.level !== 200);
  return [
    ...goal.flatMap((l) => createMiss(l, '(13.1) external mode, create') ?? []),
    ...ext.flatMap((l) => conductorMiss(l) ?? []),
    ...goal.flatMap((l) => parallelMiss(l, '(13.2) external mode, 200 parallel creates') ?? []),
    ...appMisses(r),
  ];
}

/** "What is measured" for issue 13's rungs. */
export function issue13Measured(r: Results): string {
  const lines: string[] = [];
  if (r.external !== undefined) {
    const levels = r.external.levels.map((l) => count(l.plan.level)).join(', ');
    const withConductor = r.external.levels.filter((l) => l.conductor !== undefined).map((l) => count(l.plan.level)).join(', ');
    lines.push(
      `- **(13.1) External mode**: after managed mode's ladder (its Portico and floor stopped, their ports reused), the same ladder ` +
        `(${levels} streams; the same singles, parallel rounds and interleaving) with an nginx the benchmark starts as an operator would ` +
        '(`bench/operator-nginx.ts`: daemonized by `nginx` itself, its own nginx.conf with `stream { include stream.d/*.conf; }` and no ' +
        'http block, a pid file, `error_log` at notice, workers and descriptors sized as managed mode sizes them; stopped by the pid in its ' +
        'pid file) and a Portico started beside it with `NGINX_MODE=external`, `NGINX_CONF`, `NGINX_PID_FILE`, `STREAM_CONFIG_PATH` and ' +
        '`NGINX_ERROR_LOG` (as the README advises), the same node flags. Its **floor** is a bare nginx on a copy of the operator\'s config ' +
        '(`daemon off` added) with a mirror tree, timed as managed mode\'s floor is.',
      `- **(13.1) stream-conductor's way** (at ${withConductor} streams, one per iteration beside Portico's create and the floor's change, ` +
        'on the operator\'s nginx itself, so on the same tree): write the stream file (Portico\'s generated text, in one file named outside ' +
        'Portico\'s prefix and rewritten with a new port each time), run `nginx -p <root> -c <conf> -s reload` as a process and wait for it ' +
        'to exit ("answered"); then poll the port, as a script would, a connection and a byte every millisecond, until it echoes. It ' +
        'neither tests the config nor checks the reload.',
    );
  }
  lines.push(
    `- **A pause before each timed change** (both ladders, and the new apps below): ${SETTLE_MS} ms, untimed, before each single ` +
      'create, each parallel round, each stream-conductor change and each new app or Caddy route. After starting new workers ' +
      'nginx\'s master sleeps 100 ms with its signals blocked (`ngx_msleep(100)`, between `ngx_start_worker_processes` and the ' +
      'old workers\' quit, in `ngx_master_process_cycle`); a SIGHUP sent meanwhile waits out the sleep. Without the pause, a ' +
      'sample that follows the previous one\'s reload on the same nginx (Portico\'s untimed removal; stream-conductor\'s reload on ' +
      'the shared nginx) paid up to that much of someone else\'s reload: a first full run without it (2026-12-04) measured external ' +
      'mode\'s `reload` phase at 54.3 / 57.6 / 60.9 ms at 0 / 200 / 1,000 streams' +
      (r.external === undefined
        ? '.'
        : `, this run with it ${r.external.levels.filter((l) => l.plan.level <= 1000).map((l) => ms(phaseMedian(l.single.map((x) => x.phasesMs), 'reload'))).join(' / ')} ms.`),
  );
  const c = r.apps?.creates;
  if (c !== undefined) {
    lines.push(
      `- **(13.5) A new app until served, beside Caddy**: in the apps rung, before its fill (0 apps) and after it (${count(c.full.hosts)} apps), ` +
        '`POST /v1/apps` of an app with one name and one route to a backend no other app uses, from sending until a GET with its Host ' +
        '(node:http on a fresh connection, every 2 ms from the start) gets the backend\'s answer (the first one: no old config knew ' +
        'the Host), then `DELETE` (untimed). Alternating with it, Caddy (Debian\'s, `/usr/bin/caddy run` with a JSON config of the ' +
        'benchmark\'s: one plain-HTTP server on a loopback port, `automatic_https` disabled, the admin API on another loopback port, ' +
        'its HOME and XDG folders in a temporary folder; installed by `make bench` when missing, its system service never started; ' +
        'stopped by pid): a route for a new Host POSTed to `/config/apps/http/servers/bench/routes`, timed the same way, then ' +
        'removed by its `@id`. At the rung\'s size Caddy holds the rung\'s very apps as routes (server names, path routes with the ' +
        'prefix stripped, cookie-sticky balancing), loaded in one `POST /load`.',
    );
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
