/**
 * Crash safety (DESIGN invariant 6): Portico's whole process group is killed -9 again and again
 * while batches of stream and HTTP app changes apply — inside each phase of the pipeline, through
 * the test-only PORTICO_TEST_DELAY, and at random moments — and after each restart the stream and
 * app directories read back whole, hold every change a request was told succeeded and nothing no
 * request asked for, and the one nginx master (which outlives every kill) serves exactly those
 * files: each stream echoes through its backend, each app answers its host name from its backend
 * with its op's header, and the host of an app that is not there falls to the catch-all server (or,
 * while no app exists, the apps' listeners are closed: the shared file that opens them is gone).
 *
 * The kills rotate through three mixes, one phase's pause after another: stream changes alone, app
 * changes alone, and both side by side (a batch holds one kind, so these apply as consecutive
 * batches of either kind). An app change writes its op's name into a response header of the app's
 * one route, so a read-back (GET /v1/apps, and a request through nginx) names the request that wrote it.
 *
 * CRASH_KILLS sets how many kills: `make test` 105 (15 with each phase's pause, 8 or 7 of them
 * aimed inside it; 5 of each mix; about 170 s on 2 cores under a load average of 6, as long as the
 * streams-only version took under the same load), `make test-soak` 350. CRASH_SEED replays a run's
 * choices (not its timing).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdir, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TEST_DELAY_PHASES } from '../../src/settings.js';
import { send as sendHttp, startBackend, type Backend } from '../helpers/http.js';
import { accepts, eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { nginxMasters, processRuns, spawnPortico, stopNginxUnder, tempDir, type ChildPortico } from '../helpers/portico.js';

const FROM = 28300;
/** The apps' listeners must lie outside PORT_RANGE (settings refuse them inside): the range stops below them. */
const TO = 28389;
const HTTP_PORT = 28390;
const HTTPS_PORT = 28391;
const API_PORT = 28296;
/** The ports the batches touch: few enough that creates, replaces and deletes keep meeting. */
const POOL = Array.from({ length: 16 }, (_, i) => FROM + i);
/** The apps the batches touch, each serving `<name>.crash.test`. */
const APPS = ['crash-0', 'crash-1', 'crash-2', 'crash-3', 'crash-4'];
const hostOf = (name: string): string => `${name}.crash.test`;
/** The response header an app's route adds, carrying the op that wrote the app. */
const OP_HEADER = 'X-Portico-Op';
/** Which kinds of change a kill's batches carry; the mixes rotate after each round of phases. */
const MIXES = ['streams', 'apps', 'both'] as const;
const DELAY_MS = 150;
const KILLS = Number(process.env.CRASH_KILLS ?? 105);
/** Every loop is bounded in time as well as in count: about 1.6 s a kill here, on 2 cores. */
const DEADLINE_MS = 30_000 + KILLS * 4_000;
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);

type Phase = (typeof TEST_DELAY_PHASES)[number];
type Kind = 'stream' | 'app';
type BackendName = 'A' | 'B';
/**
 * What a slot (a port of the pool, or an app name) holds: the stream or app a request wrote (its op,
 * as a stream's `op` label or an app's OP_HEADER, and its backend), or nothing.
 */
type Value = { op: string; backend: BackendName } | null;

interface Op {
  kind: Kind;
  /** The port (a stream) or the name (an app) the change is about. */
  key: string;
  method: 'POST' | 'PUT' | 'DELETE';
  /** The value the slot holds once the change is applied. */
  after: Value;
}

/** The key of a slot in the maps of values: `stream:28300`, `app:crash-0`. */
const slot = (kind: Kind, key: string | number): string => `${kind}:${key}`;
const SLOTS = [...POOL.map((port) => slot('stream', port)), ...APPS.map((name) => slot('app', name))];

interface Sent {
  op: Op;
  /** A 2xx answer, an error answer, or none (the process died first). */
  answer: 'ok' | 'error' | 'none';
  detail: string;
}

/** mulberry32: small, seeded, good enough to pick ports and moments reproducibly. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One HTTP exchange on a fresh connection (no pooled socket outlives a killed Portico); bounded. */
function call(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port: API_PORT,
        method,
        path,
        agent: false,
        timeout: 15_000,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 15 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function getJson(path: string): Promise<any> {
  const res = await call('GET', path);
  assert.equal(res.status, 200, `GET ${path}: ${res.text}`);
  return JSON.parse(res.text);
}

/** Resolves once the child and its pipes are closed (all its output read), or after `timeoutMs`. */
function closed(child: ChildProcess, timeoutMs = 10_000): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) {
    if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) return Promise.resolve(true);
  }
  return Promise.race([new Promise<boolean>((resolve) => child.once('close', () => resolve(true))), sleep(timeoutMs, undefined, { ref: false }).then(() => false)]);
}

/** How many test-delay pauses a Portico's log shows. */
const pausesLogged = (output: string): number => output.split('"event":"test-delay"').length - 1;

const same = (a: Value, b: Value): boolean => (a === null || b === null ? a === b : a.op === b.op && a.backend === b.backend);
const show = (v: Value): string => (v === null ? 'nothing' : `${v.op}→${v.backend}`);

describe('crash safety: kill -9 of Portico at any moment', () => {
  let stateDir: string;
  let echoes: Record<BackendName, EchoServer>;
  /** The apps' HTTP backends: each answers the JSON of what it received, naming itself ("A" or "B"). */
  let webs: Record<BackendName, Backend>;
  let portico: ChildPortico | undefined;

  before(async () => {
    for (const port of [API_PORT, HTTP_PORT, HTTPS_PORT]) assert.equal(await accepts(port), false, `port ${port} is taken: the crash test needs it`);
    stateDir = await tempDir('crash');
    echoes = { A: await startEcho('A:'), B: await startEcho('B:') };
    webs = { A: await startBackend('A'), B: await startBackend('B') };
  });
  after(async () => {
    if (portico !== undefined && (await processRuns(portico.pid))) process.kill(-portico.pid, 'SIGKILL');
    await stopNginxUnder(stateDir);
    await echoes?.A.close();
    await echoes?.B.close();
    await webs?.A.close();
    await webs?.B.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const backendOf = (address: string): BackendName | undefined =>
    address === `127.0.0.1:${echoes.A.port}` ? 'A' : address === `127.0.0.1:${echoes.B.port}` ? 'B' : undefined;
  const webOf = (address: string): BackendName | undefined =>
    address === `127.0.0.1:${webs.A.port}` ? 'A' : address === `127.0.0.1:${webs.B.port}` ? 'B' : undefined;

  const streamBody = (port: number, value: Exclude<Value, null>, withPort: boolean) => ({
    ...(withPort && { port }),
    upstreams: [{ address: `127.0.0.1:${echoes[value.backend].port}` }],
    labels: { op: value.op },
  });

  /** An app as a request sends it, and as GET /v1/apps answers it (`withName`): one route to its backend, with its op's header. */
  const appBody = (name: string, value: Exclude<Value, null>, withName: boolean) => ({
    ...(withName && { name }),
    serverNames: [hostOf(name)],
    routes: [{ upstreams: [{ address: `127.0.0.1:${webs[value.backend].port}` }], headers: { [OP_HEADER]: value.op } }],
  });

  /** Sends one change; answers what came back, `none` when the process died first. */
  async function send(op: Op): Promise<Sent> {
    const value = op.after as Exclude<Value, null>;
    const base = op.kind === 'stream' ? '/v1/streams' : '/v1/apps';
    const body = (withKey: boolean) => (op.kind === 'stream' ? streamBody(Number(op.key), value, withKey) : appBody(op.key, value, withKey));
    try {
      const res =
        op.method === 'DELETE'
          ? await call('DELETE', `${base}/${op.key}`)
          : op.method === 'POST'
            ? await call('POST', base, body(true))
            : await call('PUT', `${base}/${op.key}`, body(false));
      const ok = res.status >= 200 && res.status < 300;
      return { op, answer: ok ? 'ok' : 'error', detail: `${res.status} ${res.text}` };
    } catch (error) {
      return { op, answer: 'none', detail: (error as Error).message };
    }
  }

  /** What an app's host answers on HTTP_PORT, as `200 <op> via <backend>`; `-` for a missing header or backend. */
  async function answerOf(name: string): Promise<string> {
    try {
      const answer = await sendHttp({ port: HTTP_PORT, host: hostOf(name), timeoutMs: 3000 });
      const op = answer.headers[OP_HEADER.toLowerCase()];
      let backend = '-';
      try {
        backend = (JSON.parse(answer.body) as { backend?: string }).backend ?? '-';
      } catch {
        // not a backend's JSON: nginx's own page (the catch-all's 404)
      }
      return `${answer.status} ${typeof op === 'string' ? op : '-'} via ${backend}`;
    } catch (error) {
      return (error as Error).message;
    }
  }
  /** A listed app answers from its backend with its op's header; any other host, the catch-all's 404. */
  const expectedAnswer = (value: Value): string => (value === null ? '404 - via -' : `200 ${value.op} via ${value.backend}`);

  /** A directory's `.portico`: no journal after start-up, nothing staged or backed up. */
  async function noLeftovers(dir: string, context: string): Promise<void> {
    await assert.rejects(stat(`${dir}/.portico/journal.json`), `${context}: a journal is left in ${dir} after start-up`);
    assert.deepEqual(await readdir(`${dir}/.portico/stage`), [], `${context}: staged files left in ${dir}`);
    assert.deepEqual(await readdir(`${dir}/.portico/backup`), [], `${context}: backups left in ${dir}`);
  }

  /**
   * Checks the restarted Portico against what the requests were told: each slot (port or app) holds
   * one of the values `allowed` gives it, the files on disk are exactly the streams and apps listed,
   * one master runs (the first one), and nginx serves every listed stream and app through its backend
   * and nothing else.
   */
  async function check(allowed: Map<string, Value[]>, master: number | undefined, context: string): Promise<{ state: Map<string, Value>; master: number }> {
    const status = await getJson('/v1/status');
    assert.deepEqual(status.files.unreadable, [], `${context}: unreadable files`);
    assert.deepEqual(status.files.foreign, [], `${context}: foreign files`);
    assert.deepEqual(status.files.unreadableApps, [], `${context}: unreadable app files`);
    assert.deepEqual(status.files.foreignHttp, [], `${context}: foreign files in the apps' directory`);
    assert.equal(status.consistent, true, context);
    assert.equal(status.nginx.running, true, context);

    const state = new Map<string, Value>();
    for (const stream of (await getJson('/v1/streams')) as Array<{ port: number; upstreams: Array<{ address: string }>; labels?: { op?: string } }>) {
      const backend = backendOf(stream.upstreams[0]?.address ?? '');
      assert.ok(POOL.includes(stream.port), `${context}: stream ${stream.port} appeared, which no request asked for`);
      assert.ok(backend !== undefined && stream.labels?.op !== undefined, `${context}: stream ${stream.port} is not one a request wrote: ${JSON.stringify(stream)}`);
      state.set(slot('stream', stream.port), { op: stream.labels.op, backend });
    }
    type ListedApp = { name: string; routes?: Array<{ upstreams?: Array<{ address: string }>; headers?: Record<string, string> }> };
    for (const app of (await getJson('/v1/apps')) as ListedApp[]) {
      assert.ok(APPS.includes(app.name), `${context}: app ${app.name} appeared, which no request asked for`);
      const route = app.routes?.[0];
      const backend = webOf(route?.upstreams?.[0]?.address ?? '');
      const op = route?.headers?.[OP_HEADER];
      assert.ok(backend !== undefined && op !== undefined, `${context}: app ${app.name} is not one a request wrote: ${JSON.stringify(app)}`);
      const value = { op, backend };
      // The whole app, not just the two fields that name its writer: exactly what request `op` sent.
      assert.deepEqual(app, appBody(app.name, value, true), `${context}: app ${app.name} reads back otherwise than ${op} sent it`);
      state.set(slot('app', app.name), value);
    }
    for (const key of SLOTS) {
      const actual = state.get(key) ?? null;
      const options = allowed.get(key) ?? [null];
      assert.ok(
        options.some((v) => same(v, actual)),
        `${context}: ${key} holds ${show(actual)}; the requests allow only ${options.map(show).join(' or ')}`,
      );
    }

    // On disk: exactly the listed streams' and apps' files (and the apps' shared file while an app
    // exists), no journal, nothing staged or backed up.
    const streamDir = `${stateDir}/stream.d`;
    const ports = POOL.filter((port) => state.has(slot('stream', port)));
    const files = (await readdir(streamDir)).filter((name) => !name.startsWith('.')).sort();
    assert.deepEqual(files, ports.map((port) => `_conductor_${port}.conf`).sort(), `${context}: files on disk`);
    await noLeftovers(streamDir, context);
    const httpDir = `${stateDir}/http.d`;
    const apps = APPS.filter((name) => state.has(slot('app', name)));
    const appFiles = (await readdir(httpDir)).filter((name) => !name.startsWith('.')).sort();
    const expectedAppFiles = [...apps.map((name) => `app_${name}.conf`), ...(apps.length > 0 ? ['portico_http.conf'] : [])].sort();
    assert.deepEqual(appFiles, expectedAppFiles, `${context}: files in the apps' directory`);
    await noLeftovers(httpDir, context);

    const masters = await nginxMasters(stateDir);
    assert.equal(masters.length, 1, `${context}: nginx masters ${masters.join(', ')}`);
    const [only] = masters as [number];
    if (master !== undefined) assert.equal(only, master, `${context}: the master changed (was ${master}, is ${only})`);

    // nginx serves the files, from the moment the API answers: each listed stream through its
    // backend, no other port of the pool (not even an old worker of a rolled-back batch); each listed
    // app on its host name through its backend, the host of every other app of the pool to the
    // catch-all, and the apps' listeners open exactly while an app exists (the shared file opens them).
    await Promise.all([
      ...POOL.map(async (port) => {
        const value = state.get(slot('stream', port)) ?? null;
        if (value === null) {
          assert.equal(await accepts(port, '127.0.0.1', 1000), false, `${context}: port ${port} accepts, but no stream is listed on it`);
        } else {
          const echoed = await roundTrip(port, 'ping', { timeoutMs: 3000 }).catch((error: Error) => error.message);
          assert.equal(echoed, `${value.backend}:ping`, `${context}: port ${port} should echo through ${value.backend}`);
        }
      }),
      ...[HTTP_PORT, HTTPS_PORT].map(async (port) => {
        assert.equal(await accepts(port, '127.0.0.1', 1000), apps.length > 0, `${context}: the apps' port ${port}, with ${apps.length} apps listed`);
      }),
      ...(apps.length === 0 ? [] : APPS).map(async (name) => {
        const value = state.get(slot('app', name)) ?? null;
        assert.equal(await answerOf(name), expectedAnswer(value), `${context}: ${hostOf(name)} on port ${HTTP_PORT} (app ${show(value)})`);
      }),
    ]);
    return { state, master: only };
  }

  it(`${KILLS} kills -9 of the process group, inside each phase and at random moments, never lose or invent a change`, { timeout: DEADLINE_MS + 60_000 }, async (t) => {
    const rng = random(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
    const env = {
      PORT_RANGE: `${FROM}-${TO}`,
      HTTP_PORT: String(HTTP_PORT),
      HTTPS_PORT: String(HTTPS_PORT),
      BIND_PORT: String(API_PORT),
      STATE_DIR: stateDir,
      LOG_LEVEL: 'warn',
    };
    const started = Date.now();
    const deadline = started + DEADLINE_MS;
    /** By phase: kills aimed inside its pause, kills that landed inside it (from Portico's log), and of those, inside an app batch. */
    const perPhase = new Map<string, { aimed: number; landed: number; inApps: number }>();
    const tally = {
      byMix: { streams: 0, apps: 0, both: 0 },
      beforeCommit: 0,
      midApply: 0,
      appInFlight: 0,
      /** Kills inside a pause, by the kind of the paused batch as the changes in flight tell it. */
      landedIn: { app: 0, stream: 0, either: 0, none: 0 },
      answered: { stream: 0, app: 0 },
      applied: { stream: 0, app: 0 },
      dropped: { stream: 0, app: 0 },
    };
    let allowed = new Map<string, Value[]>();
    /** The changes that had no answer when Portico died: did the restart find them applied? */
    let inFlight: Op[] = [];
    const countInFlight = (state: Map<string, Value>): void => {
      for (const op of inFlight) {
        if (same(state.get(slot(op.kind, op.key)) ?? null, op.after)) tally.applied[op.kind] += 1;
        else tally.dropped[op.kind] += 1;
      }
      inFlight = [];
    };
    let master: number | undefined;
    let kills = 0;

    for (let i = 0; i < KILLS && Date.now() < deadline; i += 1) {
      const phase: Phase = TEST_DELAY_PHASES[i % TEST_DELAY_PHASES.length] as Phase;
      // A round of phases with one mix, then the next: every phase meets every mix, aimed and at random.
      const mix = MIXES[Math.floor(i / TEST_DELAY_PHASES.length) % MIXES.length] as (typeof MIXES)[number];
      const context = `seed ${SEED}, kill ${i + 1} (${phase}, ${mix})`;
      const previous = i === 0 ? 'at the first start' : `after kill ${i} (${TEST_DELAY_PHASES[(i - 1) % TEST_DELAY_PHASES.length]})`;
      portico = await spawnPortico({ ...env, PORTICO_TEST_DELAY: `${phase}:${DELAY_MS}` });
      const checked = await check(allowed, master, `seed ${SEED}, ${previous}`);
      master = checked.master;
      const state = checked.state;
      countInFlight(state);
      tally.byMix[mix] += 1;

      // The batches: 3 to 6 ports or 2 to 4 apps alone, or 2 to 4 ports and 1 to 3 apps together;
      // each a chain of 1 to 3 changes sent in order; the chains run side by side.
      const streamCount = mix === 'apps' ? 0 : mix === 'streams' ? 3 + Math.floor(rng() * 4) : 2 + Math.floor(rng() * 3);
      const appCount = mix === 'streams' ? 0 : mix === 'apps' ? 2 + Math.floor(rng() * 3) : 1 + Math.floor(rng() * 3);
      const targets = [
        ...[...POOL].sort(() => rng() - 0.5).slice(0, streamCount).map((port) => ({ kind: 'stream' as const, key: String(port) })),
        ...[...APPS].sort(() => rng() - 0.5).slice(0, appCount).map((name) => ({ kind: 'app' as const, key: name })),
      ];
      const chains = targets.map(({ kind, key }, c) => {
        let value = state.get(slot(kind, key)) ?? null;
        return Array.from({ length: 1 + Math.floor(rng() * 3) }, (_, s): Op => {
          const next: Value = value !== null && rng() < 0.4 ? null : { op: `k${i}${kind === 'app' ? 'a' : 'c'}${c}s${s}`, backend: pick(['A', 'B'] as const) };
          const method = next === null ? 'DELETE' : value === null && rng() < 0.5 ? 'POST' : 'PUT';
          value = next;
          return { kind, key, method, after: next };
        });
      });
      const sent: Sent[][] = chains.map(() => []);
      const running = Promise.all(
        chains.map(async (chain, c) => {
          await sleep(Math.floor(rng() * 20));
          for (const op of chain) {
            const result = await send(op);
            (sent[c] as Sent[]).push(result);
            if (result.answer === 'none') return;
          }
        }),
      );

      // Half the kills are aimed inside the pause after `phase` (of one of the first batches), half at random.
      const aimed = i % 2 === 0;
      if (aimed) {
        // Every chain's n-th change goes into the n-th batch or a later one, whatever its kind: there are that many pauses.
        const nth = 1 + Math.floor(rng() * Math.max(...chains.map((chain) => chain.length)));
        // A bound, not a speed target: on a loaded machine (load 6 on 2 cores) a batch took over a second.
        const paused = await eventually(() => pausesLogged(portico!.output()) >= nth, 6000, 2);
        assert.ok(paused, `${context}: no pause after ${phase} was logged:\n${portico.output()}`);
        await sleep(Math.floor(rng() * (DELAY_MS - 50)));
      } else {
        // An app batch takes longer than a stream batch (its reload waits for the old workers, which
        // share the apps' listeners): with apps, the moment is drawn from a longer span, so that some
        // batches of them are acknowledged before a kill.
        await sleep(Math.floor(rng() * (mix === 'streams' ? 300 : 700)));
      }
      const killedAt = Date.now();
      process.kill(-portico.pid, 'SIGKILL');
      assert.ok(await closed(portico.child), `${context}: portico survived kill -9`);
      await running;
      kills += 1;

      // Where did it land? The last pause Portico logged before it died, if the kill came inside it.
      const pauses = portico
        .output()
        .split('\n')
        .filter((line) => line.includes('"event":"test-delay"'))
        .map((line) => JSON.parse(line) as { time: number; phase: string; ms: number });
      const last = pauses.at(-1);
      // The pause ends no sooner than `ms` after its line was logged; 5 ms spare the rounding of both clocks' reads.
      const landed = last !== undefined && killedAt - last.time < last.ms - 5 ? last.phase : undefined;

      // What each slot may hold now: the value its last acknowledged change left, or, if a change
      // was in flight (no answer), that change applied, unless the kill came inside a pause before a
      // commit: the batches before that one (of either kind: one queue applies them one at a time)
      // were answered, so every change in flight was in the killed batch or waiting for a later one,
      // and none may have survived.
      const beforeCommit = landed !== undefined && landed !== 'commit';
      if (beforeCommit) tally.beforeCommit += 1;
      allowed = new Map();
      for (const key of SLOTS) allowed.set(key, [state.get(key) ?? null]);
      for (const results of sent) {
        for (const result of results) {
          const key = slot(result.op.kind, result.op.key);
          const current = (allowed.get(key) as Value[])[0] as Value;
          if (result.answer === 'ok') {
            allowed.set(key, [result.op.after]);
            tally.answered[result.op.kind] += 1;
          } else if (result.answer === 'none') {
            allowed.set(key, beforeCommit ? [current] : [current, result.op.after]);
            inFlight.push(result.op);
          } else {
            assert.fail(`${context}: ${result.op.method} ${key} was answered ${result.detail}`);
          }
        }
      }
      if (inFlight.length > 0) tally.midApply += 1;
      const kindsInFlight = new Set(inFlight.map((op) => op.kind));
      if (kindsInFlight.has('app')) tally.appInFlight += 1;

      // The paused batch holds a change still unanswered: if the changes in flight are of one kind, so was that batch.
      const row = perPhase.get(phase) ?? { aimed: 0, landed: 0, inApps: 0 };
      if (aimed) row.aimed += 1;
      if (landed !== undefined) {
        row.landed += 1;
        const where = kindsInFlight.size === 0 ? 'none' : kindsInFlight.size === 2 ? 'either' : kindsInFlight.has('app') ? 'app' : 'stream';
        tally.landedIn[where] += 1;
        if (where === 'app') row.inApps += 1;
      }
      perPhase.set(phase, row);
      portico = undefined;
    }

    portico = await spawnPortico(env);
    const final = await check(allowed, master, `seed ${SEED}, after the last kill`);
    countInFlight(final.state);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const phases = TEST_DELAY_PHASES.map((p) => `${p} ${perPhase.get(p)?.landed ?? 0}/${perPhase.get(p)?.aimed ?? 0} (${perPhase.get(p)?.inApps ?? 0} in app batches)`).join(', ');
    const { byMix, landedIn, answered, applied, dropped } = tally;
    t.diagnostic(
      `seed ${SEED}: ${kills} kills in ${seconds} s (${byMix.streams} with stream changes alone, ${byMix.apps} with app changes alone, ${byMix.both} with both); ` +
        `${tally.midApply} with a change in flight, ${tally.appInFlight} of them with an app change in flight`,
    );
    t.diagnostic(`changes acknowledged: ${answered.stream} of streams, ${answered.app} of apps`);
    t.diagnostic(`kills that landed inside the pause after each phase / kills aimed there: ${phases}`);
    t.diagnostic(
      `kills inside a pause, by the paused batch's kind as the changes in flight tell it: app ${landedIn.app}, stream ${landedIn.stream}, ` +
        `either (changes of both kinds in flight) ${landedIn.either}, none in flight ${landedIn.none}`,
    );
    t.diagnostic(
      `changes in flight at a kill, found applied after the restart / not: streams ${applied.stream}/${dropped.stream}, apps ${applied.app}/${dropped.app}`,
    );
    t.diagnostic(`kills inside a pause before the commit, whose changes in flight had all to be rolled back: ${tally.beforeCommit}`);

    // SIGTERM: the last Portico stops its nginx gracefully.
    process.kill(portico.pid, 'SIGTERM');
    assert.ok(await closed(portico.child, 40_000), 'portico did not stop on SIGTERM');
    portico = undefined;
    assert.equal(kills, KILLS, `only ${kills} of ${KILLS} kills within ${DEADLINE_MS / 1000} s`);
  });
});
