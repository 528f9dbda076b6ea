/**
 * A new HTTP app until it is served (issue 13, goal 5), Portico beside Caddy: `POST /v1/apps` of an
 * app with one name and one route, and a route POSTed to Caddy's admin API for a host of its own,
 * each timed from sending until a request with the new Host (node:http, where Host can be set) gets
 * the backend's answer: the first one, as a client of a new site sees it; Portico's answer (which
 * comes only once it served) is timed too. Each create is removed again, untimed, so the tree keeps
 * its size. Portico and Caddy alternate, so that noise on the shared machine hurts both alike.
 */
import { waitUntilAnswers, type BenchApp } from './apps-mix.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { caddyRoute, type RunningCaddy } from './caddy.js';
import { expectOk } from './http.js';
import { SETTLE_MS } from './ladder.js';
import type { RunningPortico } from './portico.js';

export interface ServedSample {
  /** From sending until Portico (or Caddy's admin API) answered. */
  answeredMs: number;
  /** From sending until a request with the new Host got the backend's answer. */
  servingMs: number;
  /** Portico's phases of the batch (`lastApply.phasesMs`); none for Caddy. */
  phasesMs?: Record<string, number>;
}

export interface CreatesAt {
  /** Apps Portico held, and hosts Caddy held, while these were measured. */
  hosts: number;
  portico: ServedSample[];
  caddy: ServedSample[];
}

export interface Backend {
  name: string;
  port: number;
}

const SERVE_TIMEOUT_MS = 15_000;

/** The i-th new app: its own name and Host, one route to `backend`. */
const newApp = (side: string, i: number, backend: Backend): BenchApp => ({
  name: `new-${side}-${String(i).padStart(4, '0')}`,
  serverNames: [`${side}${String(i).padStart(4, '0')}.new.bench`],
  routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }],
});

/** Times one create: `send` is the request, polled from its start until `port` serves the Host. */
async function timeServed(port: number, app: BenchApp, backend: Backend, send: () => Promise<void>): Promise<ServedSample> {
  const host = app.serverNames[0] as string;
  const start = performance.now();
  const answered = send().then(() => performance.now());
  const serving = waitUntilAnswers(port, host, backend.name, SERVE_TIMEOUT_MS, 1);
  serving.catch(() => undefined); // awaited below; a failed create must not leave it unhandled
  const [answeredAt, servingAt] = await Promise.all([answered, serving]);
  return { answeredMs: answeredAt - start, servingMs: servingAt - start };
}

async function porticoCreate(portico: RunningPortico, app: BenchApp, backend: Backend): Promise<ServedSample> {
  const sample = await timeServed(portico.httpPort, app, backend, async () => {
    await expectOk(portico.apiPort, 'POST', '/v1/apps', app);
  });
  const status = JSON.parse((await expectOk(portico.apiPort, 'GET', '/v1/status')).body) as { lastApply: { phasesMs: Record<string, number> } | null };
  await expectOk(portico.apiPort, 'DELETE', `/v1/apps/${app.name}`);
  return { ...sample, phasesMs: status.lastApply?.phasesMs ?? {} };
}

async function caddyCreate(caddy: RunningCaddy, app: BenchApp, backend: Backend): Promise<ServedSample> {
  const sample = await timeServed(caddy.httpPort, app, backend, () => caddy.addRoute(caddyRoute(app)));
  await caddy.removeRoute(app.name);
  return sample;
}

let created = 0;

/**
 * `count` creates on each side after one unrecorded warm-up of each, alternating Portico and Caddy
 * (Caddy absent: Portico alone); stops early, with fewer samples, past `budgetMs`.
 */
export async function timeCreates(options: {
  portico: RunningPortico;
  caddy: RunningCaddy | undefined;
  hosts: number;
  count: number;
  budgetMs: number;
  backend: Backend;
}): Promise<CreatesAt> {
  const { portico, caddy, backend } = options;
  const result: CreatesAt = { hosts: options.hosts, portico: [], caddy: [] };
  const deadline = performance.now() + options.budgetMs;
  for (let i = 0; i <= options.count && performance.now() < deadline; i += 1) {
    created += 1;
    // The previous removal's reload: nginx's master must be past its signal-blocked sleep (`SETTLE_MS`).
    await sleep(SETTLE_MS);
    const p = await porticoCreate(portico, newApp('p', created, backend), backend);
    await sleep(SETTLE_MS);
    const c = caddy === undefined ? undefined : await caddyCreate(caddy, newApp('c', created, backend), backend);
    if (i === 0) continue;
    result.portico.push(p);
    if (c !== undefined) result.caddy.push(c);
  }
  return result;
}
