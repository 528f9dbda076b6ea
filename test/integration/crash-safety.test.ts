/**
 * Crash safety (DESIGN invariant 6): Portico's whole process group is killed -9 again and again
 * while batches of stream changes apply — inside each phase of the pipeline, through the test-only
 * PORTICO_TEST_DELAY, and at random moments — and after each restart the stream directory reads
 * back whole, holds every change a request was told succeeded and nothing no request asked for, and
 * the one nginx master (which outlives every kill) serves exactly those files.
 *
 * CRASH_KILLS sets how many kills: `make test` 105 (15 with each phase's pause, 8 or 7 of them
 * aimed inside it; about 160 s on 2 cores), `make test-soak` 350. CRASH_SEED replays a run's choices
 * (not its timing).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdir, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TEST_DELAY_PHASES } from '../../src/settings.js';
import { accepts, eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { nginxMasters, processRuns, spawnPortico, stopNginxUnder, tempDir, type ChildPortico } from '../helpers/portico.js';

const FROM = 28300;
const TO = 28399;
const API_PORT = 28296;
/** The ports the batches touch: few enough that creates, replaces and deletes keep meeting. */
const POOL = Array.from({ length: 16 }, (_, i) => FROM + i);
const DELAY_MS = 150;
const KILLS = Number(process.env.CRASH_KILLS ?? 105);
/** Every loop is bounded in time as well as in count: about 1.6 s a kill here, on 2 cores. */
const DEADLINE_MS = 30_000 + KILLS * 4_000;
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);

type Phase = (typeof TEST_DELAY_PHASES)[number];
type BackendName = 'A' | 'B';
/** What a port holds: the stream a request wrote (its `op` label and backend), or nothing. */
type Value = { op: string; backend: BackendName } | null;

interface Op {
  port: number;
  method: 'POST' | 'PUT' | 'DELETE';
  /** The value the port holds once the change is applied. */
  after: Value;
}

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
  let portico: ChildPortico | undefined;

  before(async () => {
    assert.equal(await accepts(API_PORT), false, `port ${API_PORT} is taken: the crash test needs it for Portico's API`);
    stateDir = await tempDir('crash');
    echoes = { A: await startEcho('A:'), B: await startEcho('B:') };
  });
  after(async () => {
    if (portico !== undefined && (await processRuns(portico.pid))) process.kill(-portico.pid, 'SIGKILL');
    await stopNginxUnder(stateDir);
    await echoes?.A.close();
    await echoes?.B.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const backendOf = (address: string): BackendName | undefined =>
    address === `127.0.0.1:${echoes.A.port}` ? 'A' : address === `127.0.0.1:${echoes.B.port}` ? 'B' : undefined;

  const streamBody = (port: number, value: Exclude<Value, null>, withPort: boolean) => ({
    ...(withPort && { port }),
    upstreams: [{ address: `127.0.0.1:${echoes[value.backend].port}` }],
    labels: { op: value.op },
  });

  /** Sends one change; answers what came back, `none` when the process died first. */
  async function send(op: Op): Promise<Sent> {
    try {
      const res =
        op.method === 'DELETE'
          ? await call('DELETE', `/v1/streams/${op.port}`)
          : op.method === 'POST'
            ? await call('POST', '/v1/streams', streamBody(op.port, op.after as Exclude<Value, null>, true))
            : await call('PUT', `/v1/streams/${op.port}`, streamBody(op.port, op.after as Exclude<Value, null>, false));
      const ok = res.status >= 200 && res.status < 300;
      return { op, answer: ok ? 'ok' : 'error', detail: `${res.status} ${res.text}` };
    } catch (error) {
      return { op, answer: 'none', detail: (error as Error).message };
    }
  }

  /**
   * Checks the restarted Portico against what the requests were told: each port holds one of the
   * values `allowed` gives it, the files on disk are exactly the streams listed, one master runs (the
   * first one), and nginx serves every listed stream through its backend and nothing else.
   */
  async function check(allowed: Map<number, Value[]>, master: number | undefined, context: string): Promise<{ state: Map<number, Value>; master: number }> {
    const status = await getJson('/v1/status');
    assert.deepEqual(status.files.unreadable, [], `${context}: unreadable files`);
    assert.deepEqual(status.files.foreign, [], `${context}: foreign files`);
    assert.equal(status.consistent, true, context);
    assert.equal(status.nginx.running, true, context);

    const state = new Map<number, Value>();
    for (const stream of (await getJson('/v1/streams')) as Array<{ port: number; upstreams: Array<{ address: string }>; labels?: { op?: string } }>) {
      const backend = backendOf(stream.upstreams[0]?.address ?? '');
      assert.ok(POOL.includes(stream.port), `${context}: stream ${stream.port} appeared, which no request asked for`);
      assert.ok(backend !== undefined && stream.labels?.op !== undefined, `${context}: stream ${stream.port} is not one a request wrote: ${JSON.stringify(stream)}`);
      state.set(stream.port, { op: stream.labels.op, backend });
    }
    for (const port of POOL) {
      const actual = state.get(port) ?? null;
      const options = allowed.get(port) ?? [null];
      assert.ok(
        options.some((v) => same(v, actual)),
        `${context}: port ${port} holds ${show(actual)}; the requests allow only ${options.map(show).join(' or ')}`,
      );
    }

    // On disk: exactly the listed streams' files, no journal, nothing staged or backed up.
    const streamDir = `${stateDir}/stream.d`;
    const files = (await readdir(streamDir)).filter((name) => !name.startsWith('.')).sort();
    assert.deepEqual(files, [...state.keys()].sort().map((port) => `_conductor_${port}.conf`), `${context}: files on disk`);
    await assert.rejects(stat(`${streamDir}/.portico/journal.json`), `${context}: a journal is left after start-up`);
    assert.deepEqual(await readdir(`${streamDir}/.portico/stage`), [], `${context}: staged files left`);
    assert.deepEqual(await readdir(`${streamDir}/.portico/backup`), [], `${context}: backups left`);

    const masters = await nginxMasters(stateDir);
    assert.equal(masters.length, 1, `${context}: nginx masters ${masters.join(', ')}`);
    const [only] = masters as [number];
    if (master !== undefined) assert.equal(only, master, `${context}: the master changed (was ${master}, is ${only})`);

    // nginx serves the files, from the moment the API answers: each listed stream through its
    // backend, no other port of the pool (not even an old worker of a rolled-back batch).
    await Promise.all(
      POOL.map(async (port) => {
        const value = state.get(port) ?? null;
        if (value === null) {
          assert.equal(await accepts(port, '127.0.0.1', 1000), false, `${context}: port ${port} accepts, but no stream is listed on it`);
        } else {
          const echoed = await roundTrip(port, 'ping', { timeoutMs: 3000 }).catch((error: Error) => error.message);
          assert.equal(echoed, `${value.backend}:ping`, `${context}: port ${port} should echo through ${value.backend}`);
        }
      }),
    );
    return { state, master: only };
  }

  it(`${KILLS} kills -9 of the process group, inside each phase and at random moments, never lose or invent a change`, { timeout: DEADLINE_MS + 60_000 }, async (t) => {
    const rng = random(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
    const env = { PORT_RANGE: `${FROM}-${TO}`, BIND_PORT: String(API_PORT), STATE_DIR: stateDir, LOG_LEVEL: 'warn' };
    const started = Date.now();
    const deadline = started + DEADLINE_MS;
    /** By phase: kills aimed inside its pause, and kills that landed inside it (from Portico's log). */
    const perPhase = new Map<string, { aimed: number; landed: number }>();
    const tally = { beforeCommit: 0, midApply: 0, unansweredApplied: 0, unansweredDropped: 0, answered: 0 };
    let allowed = new Map<number, Value[]>();
    /** The changes that had no answer when Portico died: did the restart find them applied? */
    let inFlight: Op[] = [];
    const countInFlight = (state: Map<number, Value>): void => {
      for (const op of inFlight) {
        if (same(state.get(op.port) ?? null, op.after)) tally.unansweredApplied += 1;
        else tally.unansweredDropped += 1;
      }
      inFlight = [];
    };
    let master: number | undefined;
    let kills = 0;

    for (let i = 0; i < KILLS && Date.now() < deadline; i += 1) {
      const phase: Phase = TEST_DELAY_PHASES[i % TEST_DELAY_PHASES.length] as Phase;
      const context = `seed ${SEED}, kill ${i + 1} (${phase})`;
      const previous = i === 0 ? 'at the first start' : `after kill ${i} (${TEST_DELAY_PHASES[(i - 1) % TEST_DELAY_PHASES.length]})`;
      portico = await spawnPortico({ ...env, PORTICO_TEST_DELAY: `${phase}:${DELAY_MS}` });
      const checked = await check(allowed, master, `seed ${SEED}, ${previous}`);
      master = checked.master;
      const state = checked.state;
      countInFlight(state);

      // A batch: 3 to 6 ports, each a chain of 1 to 3 changes sent in order; the chains run side by side.
      const ports = [...POOL].sort(() => rng() - 0.5).slice(0, 3 + Math.floor(rng() * 4));
      const chains = ports.map((port, c) => {
        let value = state.get(port) ?? null;
        return Array.from({ length: 1 + Math.floor(rng() * 3) }, (_, s): Op => {
          const next: Value = value !== null && rng() < 0.4 ? null : { op: `k${i}c${c}s${s}`, backend: pick(['A', 'B'] as const) };
          const method = next === null ? 'DELETE' : value === null && rng() < 0.5 ? 'POST' : 'PUT';
          value = next;
          return { port, method, after: next };
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
        // Every chain's n-th change goes into the n-th batch or a later one: there are that many pauses.
        const nth = 1 + Math.floor(rng() * Math.max(...chains.map((chain) => chain.length)));
        const paused = await eventually(() => pausesLogged(portico!.output()) >= nth, 2000, 2);
        assert.ok(paused, `${context}: no pause after ${phase} was logged:\n${portico.output()}`);
        await sleep(Math.floor(rng() * (DELAY_MS - 50)));
      } else {
        await sleep(Math.floor(rng() * 300));
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
      const row = perPhase.get(phase) ?? { aimed: 0, landed: 0 };
      if (aimed) row.aimed += 1;
      if (landed !== undefined) row.landed += 1;
      perPhase.set(phase, row);

      // What each port may hold now: the value its last acknowledged change left, or, if a change
      // was in flight (no answer), that change applied, unless the kill came inside a pause before a
      // commit: the batches before that one were answered, so every change in flight was in the
      // killed batch or waiting for a later one, and none may have survived.
      const beforeCommit = landed !== undefined && landed !== 'commit';
      if (beforeCommit) tally.beforeCommit += 1;
      allowed = new Map();
      for (const port of POOL) allowed.set(port, [state.get(port) ?? null]);
      for (const results of sent) {
        for (const result of results) {
          const { port } = result.op;
          const current = (allowed.get(port) as Value[])[0] as Value;
          if (result.answer === 'ok') {
            allowed.set(port, [result.op.after]);
            tally.answered += 1;
          } else if (result.answer === 'none') {
            allowed.set(port, beforeCommit ? [current] : [current, result.op.after]);
            inFlight.push(result.op);
          } else {
            assert.fail(`${context}: ${result.op.method} ${port} was answered ${result.detail}`);
          }
        }
      }
      if (inFlight.length > 0) tally.midApply += 1;
      portico = undefined;
    }

    portico = await spawnPortico(env);
    const final = await check(allowed, master, `seed ${SEED}, after the last kill`);
    countInFlight(final.state);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const phases = TEST_DELAY_PHASES.map((p) => `${p} ${perPhase.get(p)?.landed ?? 0}/${perPhase.get(p)?.aimed ?? 0}`).join(', ');
    t.diagnostic(`seed ${SEED}: ${kills} kills in ${seconds} s; ${tally.midApply} with a change in flight; ${tally.answered} changes acknowledged`);
    t.diagnostic(`kills that landed inside the pause after each phase / kills aimed there: ${phases}`);
    t.diagnostic(`changes in flight at a kill: ${tally.unansweredApplied} found applied after the restart, ${tally.unansweredDropped} not`);
    t.diagnostic(`kills inside a pause before the commit, whose changes in flight had all to be rolled back: ${tally.beforeCommit}`);

    // SIGTERM: the last Portico stops its nginx gracefully.
    process.kill(portico.pid, 'SIGTERM');
    assert.ok(await closed(portico.child, 40_000), 'portico did not stop on SIGTERM');
    portico = undefined;
    assert.equal(kills, KILLS, `only ${kills} of ${KILLS} kills within ${DEADLINE_MS / 1000} s`);
  });
});
