/**
 * 1,000 HTTP apps (issue 5): filled through `POST /v1/apps` with 100 requests in flight, as an
 * orchestrator would, then proven through the nginx Portico manages: the list answers exactly what
 * was stored, a sample of apps serves through its own routes to its own backends, a replace and two
 * deletes at 1,000 change what nginx serves, and the status is clean. Figures go to t.diagnostic.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { App } from '../../src/model/app.js';
import { CookieJar, send, startBackend, type Answer, type Backend } from '../helpers/http.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const HTTP = 28600;
const HTTPS = 28601;
const API = 28602;
const APPS = 1000;
const IN_FLIGHT = 100;
const BACKENDS = 4;
/** The one app with `default: true`: it answers every Host no app names. */
const DEFAULT = 500;
const SAMPLE = 20;
const APP_HEADER = 'x-scale-app';

type Route = App['routes'][number];

const pad = (i: number): string => String(i).padStart(4, '0');
const nameOf = (i: number): string => `app-${pad(i)}`;
const hostOf = (i: number): string => `a${pad(i)}.scale.test`;

const reloadsIn = async (stateDir: string): Promise<number> =>
  ((await readFile(`${stateDir}/logs/error.log`, 'utf8')).match(/signal 1 \(SIGHUP\) received/g) ?? []).length;

/**
 * App `i` of the mix: one to three server names; every third app has three routes (`/api` with its
 * prefix replaced by "/", `/static`, and the fallback "/"); every other app's fallback route is
 * sticky over two backends; some use least_conn, ip_hash, weights, WebSocket, a body limit or a
 * cache. Every route names its app in a response header, so a client can tell which app answered.
 */
function appOf(i: number, backends: Backend[]): App {
  const name = nameOf(i);
  const at = (k: number) => backends[(i + k) % backends.length] as Backend;
  const address = (b: Backend) => `127.0.0.1:${b.port}`;
  const headers = { 'X-Scale-App': name };
  const serverNames = [hostOf(i), ...(i % 5 === 0 ? [`www.${hostOf(i)}`] : []), ...(i % 50 === 0 ? [`a${pad(i)}.other.test`] : [])];
  const fallback: Route = i % 2 === 0
    ? { upstreams: [{ address: address(at(0)) }, { address: address(at(1)) }], balance: 'sticky', headers }
    : i % 7 === 1
      ? { upstreams: [{ address: address(at(0)), weight: 3 }, { address: address(at(1)) }], balance: 'least_conn', headers }
      : i % 7 === 3
        ? { upstreams: [{ address: address(at(0)) }], balance: 'ip_hash', headers, ...(i % 11 === 0 && { websocket: true }) }
        : { upstreams: [{ address: address(at(0)) }], headers, ...(i % 13 === 0 && { maxBodySize: '1m' }) };
  const routes: Route[] = i % 3 === 0
    ? [
        { path: '/api', replacePath: '/', upstreams: [{ address: address(at(2)) }], headers },
        { path: '/static', upstreams: [{ address: address(at(3)) }], headers, ...(i % 100 === 0 && { cache: { ttl: '5s' } }) },
        fallback,
      ]
    : [fallback];
  return { name, serverNames, ...(i === DEFAULT && { default: true }), routes };
}

/** The backend names a route may reach, and the URL the backend must see for a request to `path`. */
function expectation(route: Route, path: string, backends: Backend[]): { reach: string[]; url: string } {
  const byAddress = new Map(backends.map((b) => [`127.0.0.1:${b.port}`, b.name]));
  const reach = route.upstreams.map((u) => byAddress.get(u.address) as string);
  const url = route.replacePath === undefined || route.path === undefined ? path : route.replacePath + path.slice(route.path.length).replace(/^\//, '');
  return { reach, url };
}

/** A pick of `count` distinct indices from [from, to): enough randomness for a spot check. */
function pick(count: number, from: number, to: number, exclude: Set<number>): number[] {
  const chosen = new Set<number>();
  for (let tries = 0; chosen.size < count && tries < 10 * count; tries += 1) {
    const i = from + Math.floor(Math.random() * (to - from));
    if (!exclude.has(i)) chosen.add(i);
  }
  return [...chosen].sort((a, b) => a - b);
}

interface ApiAnswer {
  status: number;
  body: unknown;
  ms: number;
}

async function api(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
  const start = performance.now();
  const res = await fetch(`http://127.0.0.1:${API}${path}`, {
    method,
    signal: AbortSignal.timeout(60_000),
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), ms: performance.now() - start };
}

describe('1,000 HTTP apps through the API and a managed nginx', () => {
  let portico: InProcess;
  let server: Server;
  let backends: Backend[] = [];
  /** The apps that exist, as sent. */
  const stored = new Map<string, App>();
  const to = (host: string, path: string, jar?: CookieJar): Promise<Answer> => send({ port: HTTP, host, path, timeoutMs: 10_000, ...(jar && { jar }) });

  /** Sends one request per route of `app` (Host: its last server name) and checks app, backend, URL and the sticky cookie. */
  const servesOwnRoutes = async (app: App): Promise<void> => {
    const host = app.serverNames.at(-1) as string;
    for (const route of app.routes) {
      const path = `${route.path ?? ''}/probe-${app.name}`;
      const answer = await to(host, path);
      assert.equal(answer.status, 200, `${host}${path}: ${answer.status} ${answer.body.slice(0, 200)}`);
      assert.equal(answer.headers[APP_HEADER], app.name, `${host}${path} was answered by another app`);
      const seen = JSON.parse(answer.body) as { backend: string; url: string; headers: Record<string, string> };
      const { reach, url } = expectation(route, path, backends);
      assert.ok(reach.includes(seen.backend), `${host}${path} reached ${seen.backend}, not one of ${reach}`);
      assert.equal(seen.url, url, `${host}${path} arrived as ${seen.url}`);
      assert.equal(seen.headers.host, host);
      if (route.balance === 'sticky') assert.match(String(answer.headers['set-cookie']), /^portico_sticky=[0-9a-f]{32};/);
    }
  };

  before(async () => {
    portico = await startInProcess({ PORT_RANGE: '28603-28611', HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS), WORKER_SHUTDOWN_TIMEOUT: '3s' });
    server = createServer(portico.app);
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(API, '127.0.0.1', () => resolve()));
    backends = await Promise.all(Array.from({ length: BACKENDS }, (_, k) => startBackend(`b${k}`)));
  });
  after(async () => {
    for (const b of backends) await b.close().catch(() => {});
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await portico?.stop();
  });

  it(`${APPS} POST /v1/apps, ${IN_FLIGHT} in flight, all answer 201 in far fewer reloads than apps`, async (t) => {
    const reloadsBefore = await reloadsIn(portico.stateDir);
    const statuses = new Map<number, number>();
    let next = 0;
    const start = performance.now();
    const worker = async (): Promise<void> => {
      while (next < APPS) {
        const i = next;
        next += 1;
        const app = appOf(i, backends);
        const answer = await api('POST', '/v1/apps', app);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (answer.status === 201) stored.set(app.name, app);
        else t.diagnostic(`POST ${app.name}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const seconds = (performance.now() - start) / 1000;
    const reloads = (await reloadsIn(portico.stateDir)) - reloadsBefore;
    t.diagnostic(`fill: ${APPS} apps in ${seconds.toFixed(1)} s, ${reloads} reloads, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.deepEqual(Object.fromEntries(statuses), { 201: APPS });
    // One reload per batch: with 100 in flight a batch holds at most 100 changes, so at least 10.
    assert.ok(reloads >= APPS / IN_FLIGHT && reloads <= 50, `${reloads} reloads for ${APPS} creates`);
  });

  it('GET /v1/apps lists exactly the 1,000 apps, sorted by name, each as it was sent', async (t) => {
    await api('GET', '/v1/apps');
    const timings: number[] = [];
    let listed: App[] = [];
    for (let k = 0; k < 5; k += 1) {
      const answer = await api('GET', '/v1/apps');
      assert.equal(answer.status, 200);
      timings.push(answer.ms);
      listed = answer.body as App[];
    }
    t.diagnostic(`GET /v1/apps at ${listed.length} apps: ${timings.map((ms) => ms.toFixed(1)).join(', ')} ms`);
    assert.equal(listed.length, APPS);
    assert.deepEqual(listed.map((a) => a.name), [...stored.keys()].sort());
    for (const app of listed) assert.deepEqual(app, stored.get(app.name));
  });

  it('the first, the last, the default and 20 random apps serve each route through nginx, by Host, from their own backends', async (t) => {
    const sample = [0, APPS - 1, DEFAULT, ...pick(SAMPLE, 1, APPS - 1, new Set([DEFAULT]))];
    t.diagnostic(`sampled apps ${sample.join(', ')}`);
    for (const i of sample) await servesOwnRoutes(stored.get(nameOf(i)) as App);
    // Any Host no app names reaches the default app.
    const unknown = await to('nobody.scale.test', '/x');
    assert.equal(unknown.headers[APP_HEADER], nameOf(DEFAULT));
    // A sticky client keeps its backend.
    const sticky = stored.get(nameOf(2)) as App;
    const jar = new CookieJar();
    const first = JSON.parse((await to(hostOf(2), '/s', jar)).body) as { backend: string };
    for (let k = 0; k < 5; k += 1) assert.equal((JSON.parse((await to(hostOf(2), '/s', jar)).body) as { backend: string }).backend, first.backend);
    assert.equal(sticky.routes[0]?.balance, 'sticky');
  });

  it('PUT of one app at 1,000 replaces what it serves, in one reload', async (t) => {
    const i = 999;
    const name = nameOf(i);
    const old = stored.get(name) as App;
    const target = backends.find((b) => !old.routes.some((r) => expectation(r, '/', backends).reach.includes(b.name))) as Backend;
    assert.ok(target !== undefined, 'every backend is already one of the app\'s');
    const replaced: App = { name, serverNames: [hostOf(i), `new.${hostOf(i)}`], routes: [{ path: '/v2', upstreams: [{ address: `127.0.0.1:${target.port}` }], headers: { 'X-Scale-App': `${name}-v2` } }] };
    const reloadsBefore = await reloadsIn(portico.stateDir);
    const answer = await api('PUT', `/v1/apps/${name}`, replaced);
    const served = await to(`new.${hostOf(i)}`, '/v2/x');
    const status = (await api('GET', '/v1/status')).body as { lastApply: { phasesMs: Record<string, number> } };
    t.diagnostic(`replace at ${APPS} apps: PUT answered in ${answer.ms.toFixed(0)} ms; phases ${JSON.stringify(status.lastApply.phasesMs)}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, replaced);
    stored.set(name, replaced);
    assert.equal((await reloadsIn(portico.stateDir)) - reloadsBefore, 1);
    assert.equal(served.status, 200);
    assert.equal(served.headers[APP_HEADER], `${name}-v2`);
    assert.equal((JSON.parse(served.body) as { backend: string }).backend, target.name);
    // The old fallback route is gone: "/" has no route now, and nginx answers 404 itself.
    const before = backends.reduce((n, b) => n + b.requests(), 0);
    assert.equal((await to(hostOf(i), '/')).status, 404);
    assert.equal(backends.reduce((n, b) => n + b.requests(), 0), before, 'a request without a route reached a backend');
  });

  it('DELETE of an app sends its Host to the default app; DELETE of the default leaves both to the catch-all 404', async () => {
    const gone = nameOf(1);
    assert.equal((await to(hostOf(1), '/x')).headers[APP_HEADER], gone);
    assert.equal((await api('DELETE', `/v1/apps/${gone}`)).status, 204);
    stored.delete(gone);
    const fallen = await to(hostOf(1), '/x');
    assert.deepEqual([fallen.status, fallen.headers[APP_HEADER]], [200, nameOf(DEFAULT)]);

    assert.equal((await api('DELETE', `/v1/apps/${nameOf(DEFAULT)}`)).status, 204);
    stored.delete(nameOf(DEFAULT));
    const before = backends.reduce((n, b) => n + b.requests(), 0);
    const answers = await Promise.all([hostOf(1), hostOf(DEFAULT), 'nobody.scale.test'].map((h) => to(h, '/x')));
    assert.deepEqual(answers.map((a) => [a.status, a.headers[APP_HEADER]]), [[404, undefined], [404, undefined], [404, undefined]]);
    assert.equal(backends.reduce((n, b) => n + b.requests(), 0), before, 'the catch-all reached a backend');
    // Its neighbours still serve.
    await servesOwnRoutes(stored.get(nameOf(2)) as App);
    await servesOwnRoutes(stored.get(nameOf(3)) as App);
  });

  it('GET /v1/status is clean: the apps counted, nothing unreadable or foreign, nginx running, the last batch applied', async () => {
    const { status, body } = await api('GET', '/v1/status');
    assert.equal(status, 200);
    const s = body as {
      apps: number;
      consistent: boolean;
      nginx: { running: boolean };
      lastApply: { outcome: string };
      files: { unreadableApps: unknown[]; foreignHttp: unknown[] };
    };
    assert.deepEqual(
      [s.apps, s.consistent, s.nginx.running, s.lastApply.outcome, s.files.unreadableApps, s.files.foreignHttp],
      [APPS - 2, true, true, 'applied', [], []],
    );
    const listed = (await api('GET', '/v1/apps')).body as App[];
    assert.deepEqual(listed.map((a) => a.name), [...stored.keys()].sort());
  });

  // nginx's default server name hash refuses a long name outright: an entry (a pointer, the name and
  // 2 bytes, aligned to 8) and the bucket's end marker must fit in 64 bytes, so 46 characters pass and
  // 47 fail nginx -t ("could not build server_names_hash"). Portico sizes the hash from the names.
  it('an app with a 253-character server name, the longest DNS allows, is accepted beside the 1,000 and serves', async () => {
    const host = `${['a', 'b', 'c'].map((c) => c.repeat(63)).join('.')}.${'d'.repeat(56)}.test`;
    assert.equal(host.length, 253);
    const answer = await api('POST', '/v1/apps', { name: 'long-name', serverNames: [host], routes: [{ upstreams: [{ address: `127.0.0.1:${backends[0]?.port}` }] }] });
    assert.equal(answer.status, 201, JSON.stringify(answer.body).slice(0, 300));
    assert.equal((await to(host, '/')).status, 200);
  });

  const logLines = async (level: RegExp): Promise<string[]> =>
    (await readFile(`${portico.stateDir}/logs/error.log`, 'utf8')).split('\n').filter((line) => level.test(line));

  it("nginx's error log holds no error from any of the reloads", async (t) => {
    const errors = await logLines(/\[(error|crit|alert|emerg)\]/);
    const warnings = await logLines(/\[warn\]/);
    t.diagnostic(`error log: ${errors.length} error lines, ${warnings.length} warnings${warnings.length > 0 ? `, e.g. ${warnings[0]?.replace(/^.*\[warn\] \S+ /, '')}` : ''}`);
    assert.deepEqual(errors.slice(0, 10), [], `${errors.length} error lines`);
  });

  // With nginx's defaults (max_size 512, bucket_size 64) 1,000 apps (1,220 names here) made every
  // nginx -t and reload warn "could not build optimal server_names_hash".
  it('nginx builds its server-name hash at 1,000 apps without a warning', async () => {
    assert.deepEqual(await logLines(/server_names_hash/), []);
  });
});
