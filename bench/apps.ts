/**
 * The apps rung (issue 5: "1,000 apps work"): a Portico of its own, with no stream, filled with
 * 1,000 HTTP apps through `POST /v1/apps`; beside it a floor nginx on a copy of the files it wrote
 * (`apps-floor.ts`). Then, interleaved so that noise on the shared machine hurts both alike, one app
 * replaced through `PUT /v1/apps/:name` (request → only the new upstream answers through nginx) and the
 * floor's change of the same file; then `GET /v1/apps` and Portico's memory. Runs after the stream
 * ladder, on ports 29500-29599, so it changes none of the stream figures. Beside it Caddy (issue 13,
 * goal 5; `caddy.ts`), filled with the same apps as routes: a new app until served, Portico against
 * Caddy, at 0 hosts before the fills and at the rung's size after them (`apps-create.ts`).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { timeCreates, type CreatesAt } from './apps-create.js';
import { startAppsFloor, type AppsFloorGrowth, type AppsFloorSample } from './apps-floor.js';
import { SERVED_STREAK, appHost, appName, benchApp, httpGet, startNameBackend, waitUntilAnswers, type BenchApp } from './apps-mix.js';
import { caddyRoute, caddyVersion, startCaddy, type RunningCaddy } from './caddy.js';
import type { Cleanup } from './cleanup.js';
import { expectOk, request } from './http.js';
import { freePortsIn } from './net.js';
import { spawnPortico, type RunningPortico } from './portico.js';
import { memoryOf, type Memory } from './proc-stats.js';
import { countReloads } from './processes.js';

export interface AppsPlan {
  apps: number;
  /** Replaces (and as many floor changes) after one unrecorded warm-up of each. */
  replaces: number;
  queries: number;
  /** Measurement stops early (with fewer samples) past this, so a slow machine still finishes. */
  budgetMs: number;
  /** New apps until served (and as many Caddy routes), at 0 hosts and at `apps`; and the time allowed each. */
  creates: { atEmpty: number; atFull: number; budgetMs: number };
}

export interface AppCreates {
  /** Caddy's version, or why it did not run. */
  caddy: { version: string } | { skipped: string };
  empty: CreatesAt;
  full: CreatesAt;
  /** Seconds for Caddy's fill (one POST /load of every route) until the last host is served. */
  caddyFillMs?: number;
}

export interface AppsFill {
  apps: number;
  serverNames: number;
  routes: number;
  stickyRoutes: number;
  concurrency: number;
  ms: number;
  /** SIGHUPs in Portico's nginx's error log during the fill: one per batch. */
  reloads: number;
}

export interface ReplaceSample {
  /** From sending the PUT until Portico answered. */
  answeredMs: number;
  /** From sending the PUT until only the new upstream answers through nginx (`waitUntilAnswers`). */
  servingMs: number;
  totalMs: number;
  reloads: number;
  /** The batch's phase timings as Portico reports them in /v1/status `lastApply`. */
  phasesMs: Record<string, number>;
}

export interface AppsRung {
  plan: AppsPlan;
  fill: AppsFill;
  floorGrowth: AppsFloorGrowth;
  replace: ReplaceSample[];
  floor: AppsFloorSample[];
  /** `GET /v1/apps`, ms from sending to the last byte, the answer checked to list every app. */
  queries: number[];
  /** Portico's memory after everything. */
  memory: Memory;
  /** Answers in a row from the new upstream that count a change as served (`SERVED_STREAK`). */
  servedStreak: number;
  /** Absent from runs before issue 13. */
  creates?: AppCreates;
  seconds: number;
}

export interface AppsRungOptions {
  repoDir: string;
  nginxBin: string;
  plan: AppsPlan;
  /** Free ports are taken from here (inclusive). */
  range: { from: number; to: number };
  fillConcurrency: number;
  /** node's flags for Portico (as shipped). */
  nodeArgs: string[];
  cleanup: Cleanup;
  progress: (message: string) => void;
}

const BACKENDS = 4;
/** The backends app 0's upstream alternates between, one replace after another; no other app uses them. */
const REPLACE_BACKENDS = ['r0', 'r1'] as const;
/** The backend of the new apps and Caddy's new routes. */
const CREATE_BACKEND = 'c0';
const FILL_REQUEST_TIMEOUT_MS = 180_000;
const SERVE_TIMEOUT_MS = 15_000;
/** Apps checked to be served after the fill, spread over the names. */
const FILL_SPOT_CHECKS = 20;

/** Fills Portico with `plan.apps` apps, `concurrency` requests in flight; checks a spread of them serves. */
async function fill(portico: RunningPortico, apps: BenchApp[], concurrency: number, backendNames: Set<string>): Promise<AppsFill> {
  const before = await countReloads(portico.errorLog);
  let next = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < apps.length) {
      const app = apps[next] as BenchApp;
      next += 1;
      const answer = await request(portico.apiPort, 'POST', '/v1/apps', app, FILL_REQUEST_TIMEOUT_MS);
      if (answer.status !== 201) throw new Error(`filling: POST /v1/apps (${app.name}) answered ${answer.status}: ${answer.body.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, apps.length) }, worker));
  const ms = performance.now() - start;
  const reloads = (await countReloads(portico.errorLog)) - before;
  const step = Math.max(1, Math.floor(apps.length / FILL_SPOT_CHECKS));
  for (let i = 1; i < apps.length; i += step) {
    const app = apps[i] as BenchApp;
    const answer = await httpGet(portico.httpPort, app.serverNames.at(-1) as string);
    if (answer.status !== 200 || !backendNames.has(answer.body)) throw new Error(`after the fill, ${app.name} answers ${answer.status} ${answer.body.slice(0, 100)}`);
  }
  const routes = apps.flatMap((a) => a.routes);
  return {
    apps: apps.length,
    serverNames: apps.reduce((n, a) => n + a.serverNames.length, 0),
    routes: routes.length,
    stickyRoutes: routes.filter((r) => r.balance === 'sticky').length,
    concurrency,
    ms,
    reloads,
  };
}

/** Replaces app 0's upstream with `port` (backend `name`), timing Portico's answer and when only the new upstream answers through nginx. */
async function timeReplace(portico: RunningPortico, app: BenchApp, port: number, name: string): Promise<ReplaceSample> {
  const before = await countReloads(portico.errorLog);
  const body = { ...app, routes: [{ upstreams: [{ address: `127.0.0.1:${port}` }] }] };
  const start = performance.now();
  const answered = expectOk(portico.apiPort, 'PUT', `/v1/apps/${app.name}`, body).then(() => performance.now());
  const serving = waitUntilAnswers(portico.httpPort, appHost(0), name, SERVE_TIMEOUT_MS);
  const [answeredAt, servingAt] = await Promise.all([answered, serving]);
  const reloads = (await countReloads(portico.errorLog)) - before;
  const status = JSON.parse((await expectOk(portico.apiPort, 'GET', '/v1/status')).body) as { lastApply: { phasesMs: Record<string, number> } | null };
  return { answeredMs: answeredAt - start, servingMs: servingAt - start, totalMs: Math.max(answeredAt, servingAt) - start, reloads, phasesMs: status.lastApply?.phasesMs ?? {} };
}

async function timeList(portico: RunningPortico, expected: number): Promise<number> {
  const start = performance.now();
  const answer = await expectOk(portico.apiPort, 'GET', '/v1/apps');
  const ms = performance.now() - start;
  const listed = (JSON.parse(answer.body) as unknown[]).length;
  if (listed !== expected) throw new Error(`GET /v1/apps listed ${listed} apps, not ${expected}`);
  return ms;
}

export async function runAppsRung(options: AppsRungOptions): Promise<AppsRung> {
  const { plan, cleanup, progress } = options;
  const started = performance.now();
  const [http, https, api, floorHttp, floorHttps, caddyHttp, caddyAdmin, ...backendPorts] = await freePortsIn(options.range.from, options.range.to - 10, 7 + BACKENDS + REPLACE_BACKENDS.length + 1);
  // PORT_RANGE is required but unused (no stream is created): the top of the range, free or not.
  const portRange = { from: options.range.to - 9, to: options.range.to };
  const backendName = (k: number): string => (k < BACKENDS ? `b${k}` : (REPLACE_BACKENDS[k - BACKENDS] ?? CREATE_BACKEND));
  const backends = await Promise.all(backendPorts.map((port, k) => startNameBackend(backendName(k), port)));
  for (const b of backends) cleanup.push(`apps backend ${b.name}`, () => b.close());
  const replacers = backends.slice(BACKENDS, BACKENDS + REPLACE_BACKENDS.length);
  const createBackend = backends.at(-1) as { name: string; port: number };
  const stateDir = await mkdtemp('/tmp/portico-bench-apps-state-');
  cleanup.push('apps portico state dir', () => rm(stateDir, { recursive: true, force: true }));
  const floorDir = await mkdtemp('/tmp/portico-bench-apps-floor-');
  cleanup.push('apps floor dir', () => rm(floorDir, { recursive: true, force: true }));

  progress(`apps: starting a second portico (HTTP_PORT ${http}, no stream)`);
  const portico = spawnPortico({
    repoDir: options.repoDir,
    nginxBin: options.nginxBin,
    stateDir,
    portRange,
    bindPort: api as number,
    httpPort: http as number,
    httpsPort: https as number,
    nodeArgs: options.nodeArgs,
  });
  cleanup.push('apps portico', () => portico.stop());
  await portico.ready();
  const caddy = await startPeer(caddyHttp as number, caddyAdmin as number, cleanup, progress);
  const createsAt = (hosts: number, count: number): Promise<CreatesAt> =>
    timeCreates({ portico, caddy: caddy.running, hosts, count, budgetMs: plan.creates.budgetMs, backend: createBackend });
  progress(`apps: ${plan.creates.atEmpty} new apps until served at 0 apps${caddy.running === undefined ? '' : ', alternating with as many Caddy routes at 0 hosts'}`);
  const empty = await createsAt(0, plan.creates.atEmpty);

  const apps = Array.from({ length: plan.apps }, (_, i) => benchApp(i, plan.apps, backendPorts.slice(0, BACKENDS), (replacers[0] as { port: number }).port));
  progress(`apps: filling portico with ${plan.apps} apps, ${options.fillConcurrency} requests in flight`);
  const filled = await fill(portico, apps, options.fillConcurrency, new Set(backends.slice(0, BACKENDS).map((b) => b.name)));
  progress(`apps: filled in ${(filled.ms / 1000).toFixed(1)} s with ${filled.reloads} reloads; starting the floor on a copy of its files`);
  const caddyFillMs = caddy.running === undefined ? undefined : await fillCaddy(caddy.running, apps);

  const floor = await startAppsFloor({
    nginxBin: options.nginxBin,
    dir: floorDir,
    porticoStateDir: stateDir,
    porticoMainConfig: await readFile(`${stateDir}/nginx.conf`, 'utf8'),
    porticoHttpDir: `${stateDir}/http.d`,
    porticoPorts: { http: http as number, https: https as number },
    ports: { http: floorHttp as number, https: floorHttps as number },
    change: { file: `app_${appName(0)}.conf`, host: appHost(0), address: `127.0.0.1:${replacers[0]?.port}`, backend: replacers[0]?.name as string },
    onSpawn: (stop) => cleanup.push('apps floor nginx', stop),
  });
  const floorGrowth = await floor.grow();

  // Warm-up (not recorded), then replaces and floor changes alternate; each flips app 0's upstream.
  const replace: ReplaceSample[] = [];
  const floorSamples: AppsFloorSample[] = [];
  const deadline = performance.now() + plan.budgetMs;
  for (let i = 0; i <= plan.replaces && performance.now() < deadline; i += 1) {
    const to = replacers[(i + 1) % 2] as { port: number; name: string };
    const r = await timeReplace(portico, apps[0] as BenchApp, to.port, to.name);
    const f = await floor.change(to.port, to.name);
    if (i === 0) continue;
    replace.push(r);
    floorSamples.push(f);
  }
  if (replace.length < plan.replaces) progress(`apps: time budget reached after ${replace.length} replaces`);
  progress(`apps: ${replace.length} replaces beside the floor; timing GET /v1/apps`);

  await timeList(portico, plan.apps);
  const queries: number[] = [];
  for (let i = 0; i < plan.queries; i += 1) queries.push(await timeList(portico, plan.apps));
  const memory = await memoryOf(portico.pid);
  progress(`apps: ${plan.creates.atFull} new apps until served at ${plan.apps} apps${caddy.running === undefined ? '' : `, alternating with as many Caddy routes at ${plan.apps} hosts`}`);
  const full = await createsAt(plan.apps, plan.creates.atFull);
  await caddy.running?.stop();
  const creates: AppCreates = { caddy: caddy.running === undefined ? { skipped: caddy.skipped } : { version: caddy.running.version }, empty, full, ...(caddyFillMs !== undefined && { caddyFillMs }) };
  return { plan, fill: filled, floorGrowth, replace, floor: floorSamples, queries, memory, servedStreak: SERVED_STREAK, creates, seconds: (performance.now() - started) / 1000 };
}

/** Caddy, started on its own loopback ports; or why not (not installed). */
async function startPeer(httpPort: number, adminPort: number, cleanup: Cleanup, progress: (m: string) => void): Promise<{ running?: RunningCaddy; skipped: string }> {
  const version = await caddyVersion();
  if (version === undefined) {
    progress('apps: no /usr/bin/caddy (scripts/install-caddy.sh installs it as root): Caddy is skipped');
    return { skipped: 'no /usr/bin/caddy (`make bench` installs it as root: scripts/install-caddy.sh)' };
  }
  const dir = await mkdtemp('/tmp/portico-bench-caddy-');
  cleanup.push('caddy dir', () => rm(dir, { recursive: true, force: true }));
  progress(`apps: starting caddy ${version} (HTTP ${httpPort}, admin ${adminPort}, automatic HTTPS off)`);
  const running = await startCaddy({ dir, httpPort, adminPort, version, onSpawn: (stop) => cleanup.push('caddy', stop) });
  return { running, skipped: '' };
}

/** Loads every app as a Caddy route in one POST /load; answers ms until the last app is served. */
async function fillCaddy(caddy: RunningCaddy, apps: BenchApp[]): Promise<number> {
  const start = performance.now();
  await caddy.load(apps.map(caddyRoute));
  const last = apps.at(-1) as BenchApp;
  const served = await httpGet(caddy.httpPort, last.serverNames[0] as string);
  if (served.status !== 200 || !/^b\d$/.test(served.body)) throw new Error(`after Caddy's fill, ${last.name} answers ${served.status} ${served.body.slice(0, 100)}`);
  return performance.now() - start;
}
