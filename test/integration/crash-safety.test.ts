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
 * changes alone, and all three kinds side by side: stream and app changes, and PUTs of a certificate
 * that a TLS stream and an HTTPS app serve, replaced back and forth between two pairs (a batch holds
 * one kind, so these apply as consecutive batches of each kind; in that mix the kills aimed inside a
 * pause aim at the certificate's first batch, and the others come once its first PUT was answered,
 * at a random moment of the batches behind it). The TLS stream, made in the first round of that mix, stays; the HTTPS app
 * exists through the rounds of that mix only, so that the other mixes still see the apps' listeners
 * close when their last app goes. After each restart the certificate's two files on disk are one
 * pair, the one GET answers, and the handshakes of its users present it. An app change writes its op's name into a response
 * header of the app's one route, so a read-back (GET /v1/apps, and a request through nginx) names
 * the request that wrote it.
 *
 * CRASH_KILLS sets how many kills: `make test` 105 (15 with each phase's pause, 8 or 7 of them
 * aimed inside it; 5 of each mix; as long as the run before the certificate joined, measured side
 * by side with it), `make test-soak` 350. CRASH_SEED replays a run's choices (not its timing).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TEST_DELAY_PHASES } from '../../src/settings.js';
import { fixtureCert, startTaggedServer, tlsWhoAnswers, type TaggedServer } from '../helpers/backends.js';
import { send as sendHttp, startBackend, type Backend } from '../helpers/http.js';
import { httpsGet } from '../helpers/tls-http.js';
import { accepts, eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { nginxMasters, pendingJournal, processRuns, spawnPortico, stopNginxUnder, tempDir, type ChildPortico } from '../helpers/portico.js';

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
/** The certificate the third mix replaces, back and forth between two pairs (`PAIRS`). */
const CERT_ID = 'crash-cert';
const PAIRS = { A: fixtureCert('a'), B: fixtureCert('b') };
const fingerprintOf = (pair: BackendName): string => new X509Certificate(PAIRS[pair].cert).fingerprint256;
/** What serves the certificate through the third mix's rounds: a TLS stream (in PORT_RANGE, outside POOL) and an HTTPS app. */
const TLS_PORT = TO - 1;
const TLS_APP = 'crash-tls';
const TLS_HOST = 'tls.crash.test';
/** Which kinds of change a kill's batches carry; the mixes rotate after each round of phases. */
const MIXES = ['streams', 'apps', 'all'] as const;
const DELAY_MS = 150;
const KILLS = Number(process.env.CRASH_KILLS ?? 105);
/**
 * Every loop is bounded in time as well as in count: 2.3 s a kill here with certificate batches in
 * the third mix (2 cores, load 4: 105 kills in 237 s), 5.2 s at load 11-16 (86 kills in 450 s): a
 * bound, not a speed target.
 */
const DEADLINE_MS = 30_000 + KILLS * 6_000;
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);

type Phase = (typeof TEST_DELAY_PHASES)[number];
type Kind = 'stream' | 'app' | 'cert';
type BackendName = 'A' | 'B';
/**
 * What a slot (a port of the pool, an app name, the certificate) holds: the stream or app a request
 * wrote (its op, as a stream's `op` label or an app's OP_HEADER, and its backend), the certificate's
 * pair (op `pair`: a PUT carries no op of its own, and two PUTs of one pair write the same files), or nothing.
 */
type Value = { op: string; backend: BackendName } | null;
const CERT_OP = 'pair';

interface Op {
  kind: Kind;
  /** The port (a stream), the name (an app) or the id (the certificate) the change is about. */
  key: string;
  method: 'POST' | 'PUT' | 'DELETE';
  /** The value the slot holds once the change is applied. */
  after: Value;
}

/** The key of a slot in the maps of values: `stream:28300`, `app:crash-0`. */
const slot = (kind: Kind, key: string | number): string => `${kind}:${key}`;
const SLOTS = [...POOL.map((port) => slot('stream', port)), ...APPS.map((name) => slot('app', name)), slot('cert', CERT_ID)];

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

/** The test-delay pauses a Portico's log shows, each with the kind of the batch it paused. */
const pausesLogged = (output: string): Array<{ time: number; phase: string; kind: string; ms: number }> =>
  output
    .split('\n')
    .filter((line) => line.includes('"event":"test-delay"'))
    .map((line) => JSON.parse(line));

const same = (a: Value, b: Value): boolean => (a === null || b === null ? a === b : a.op === b.op && a.backend === b.backend);
const show = (v: Value): string => (v === null ? 'nothing' : `${v.op}→${v.backend}`);

describe('crash safety: kill -9 of Portico at any moment', () => {
  let stateDir: string;
  let echoes: Record<BackendName, EchoServer>;
  /** The apps' HTTP backends: each answers the JSON of what it received, naming itself ("A" or "B"). */
  let webs: Record<BackendName, Backend>;
  /** The TLS stream's backend: it writes its tag line first, so a client sees that bytes went through. */
  let behindTls: TaggedServer;
  let portico: ChildPortico | undefined;

  before(async () => {
    for (const port of [API_PORT, HTTP_PORT, HTTPS_PORT]) assert.equal(await accepts(port), false, `port ${port} is taken: the crash test needs it`);
    stateDir = await tempDir('crash');
    echoes = { A: await startEcho('A:'), B: await startEcho('B:') };
    webs = { A: await startBackend('A'), B: await startBackend('B') };
    behindTls = await startTaggedServer('behind-tls');
  });
  after(async () => {
    if (portico !== undefined && (await processRuns(portico.pid))) process.kill(-portico.pid, 'SIGKILL');
    await stopNginxUnder(stateDir);
    await echoes?.A.close();
    await echoes?.B.close();
    await webs?.A.close();
    await webs?.B.close();
    await behindTls?.close();
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

  /** The TLS stream and the HTTPS app that serve the certificate, as requests send them and GET answers them. */
  const tlsStreamBody = () => ({ port: TLS_PORT, upstreams: [{ address: `127.0.0.1:${behindTls.port}` }], tls: { certificate: CERT_ID } });
  const tlsAppBody = () => ({
    name: TLS_APP,
    serverNames: [TLS_HOST],
    routes: [{ upstreams: [{ address: `127.0.0.1:${webs.A.port}` }] }],
    tls: { certificate: CERT_ID },
  });

  /** Sends one change; answers what came back, `none` when the process died first. */
  async function send(op: Op): Promise<Sent> {
    const value = op.after as Exclude<Value, null>;
    const base = op.kind === 'stream' ? '/v1/streams' : op.kind === 'app' ? '/v1/apps' : '/v1/certificates';
    const body = (withKey: boolean) =>
      op.kind === 'stream'
        ? streamBody(Number(op.key), value, withKey)
        : op.kind === 'app'
          ? appBody(op.key, value, withKey)
          : { certificate: PAIRS[value.backend].cert, key: PAIRS[value.backend].key };
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

  /** A directory's `.portico`: no batch left pending in the journal after start-up, nothing staged or backed up. */
  async function noLeftovers(dir: string, context: string): Promise<void> {
    assert.equal(await pendingJournal(dir), false, `${context}: a batch never committed is left in ${dir}'s journal after start-up`);
    assert.deepEqual(await readdir(`${dir}/.portico/stage`), [], `${context}: staged files left in ${dir}`);
    assert.deepEqual(await readdir(`${dir}/.portico/backup`), [], `${context}: backups left in ${dir}`);
  }

  /**
   * Checks the restarted Portico against what the requests were told: each slot (port, app,
   * certificate) holds one of the values `allowed` gives it, the files on disk are exactly the
   * streams, apps and certificate listed (the certificate's two files one pair), one master runs (the
   * first one), and nginx serves every listed stream and app through its backend and nothing else;
   * the certificate's users (`users`: the TLS stream, the HTTPS app) exist and present the certificate listed.
   */
  async function check(
    allowed: Map<string, Value[]>,
    master: number | undefined,
    users: { stream: boolean; app: boolean },
    context: string,
  ): Promise<{ state: Map<string, Value>; master: number }> {
    const status = await getJson('/v1/status');
    assert.deepEqual(status.files.unreadable, [], `${context}: unreadable files`);
    assert.deepEqual(status.files.foreign, [], `${context}: foreign files`);
    assert.deepEqual(status.files.unreadableApps, [], `${context}: unreadable app files`);
    assert.deepEqual(status.files.foreignHttp, [], `${context}: foreign files in the apps' directory`);
    assert.equal(status.consistent, true, context);
    assert.equal(status.nginx.running, true, context);

    const state = new Map<string, Value>();
    for (const stream of (await getJson('/v1/streams')) as Array<{ port: number; upstreams: Array<{ address: string }>; labels?: { op?: string } }>) {
      if (stream.port === TLS_PORT && users.stream) {
        assert.deepEqual(stream, tlsStreamBody(), `${context}: the TLS stream reads back otherwise than it was sent`);
        continue;
      }
      const backend = backendOf(stream.upstreams[0]?.address ?? '');
      assert.ok(POOL.includes(stream.port), `${context}: stream ${stream.port} appeared, which no request asked for`);
      assert.ok(backend !== undefined && stream.labels?.op !== undefined, `${context}: stream ${stream.port} is not one a request wrote: ${JSON.stringify(stream)}`);
      state.set(slot('stream', stream.port), { op: stream.labels.op, backend });
    }
    type ListedApp = { name: string; routes?: Array<{ upstreams?: Array<{ address: string }>; headers?: Record<string, string> }> };
    for (const app of (await getJson('/v1/apps')) as ListedApp[]) {
      if (app.name === TLS_APP && users.app) {
        assert.deepEqual(app, tlsAppBody(), `${context}: the HTTPS app reads back otherwise than it was sent`);
        continue;
      }
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
    type ListedCertificate = { id: string; fingerprint: string; usedBy: { streams: number[]; apps: string[] } };
    for (const certificate of (await getJson('/v1/certificates')) as ListedCertificate[]) {
      assert.equal(certificate.id, CERT_ID, `${context}: certificate ${certificate.id} appeared, which no request asked for`);
      const pair = (['A', 'B'] as const).find((p) => fingerprintOf(p) === certificate.fingerprint);
      assert.ok(pair !== undefined, `${context}: the certificate is neither pair: ${JSON.stringify(certificate)}`);
      const usedBy = { streams: users.stream ? [TLS_PORT] : [], apps: users.app ? [TLS_APP] : [] };
      assert.deepEqual(certificate.usedBy, usedBy, `${context}: who uses the certificate`);
      state.set(slot('cert', CERT_ID), { op: CERT_OP, backend: pair });
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
    const ports = [...POOL.filter((port) => state.has(slot('stream', port))), ...(users.stream ? [TLS_PORT] : [])];
    const files = (await readdir(streamDir)).filter((name) => !name.startsWith('.')).sort();
    assert.deepEqual(files, ports.map((port) => `_conductor_${port}.conf`).sort(), `${context}: files on disk`);
    await noLeftovers(streamDir, context);
    const httpDir = `${stateDir}/http.d`;
    const apps = APPS.filter((name) => state.has(slot('app', name)));
    const listening = apps.length > 0 || users.app;
    const appFiles = (await readdir(httpDir)).filter((name) => !name.startsWith('.')).sort();
    const expectedAppFiles = [...[...apps, ...(users.app ? [TLS_APP] : [])].map((name) => `app_${name}.conf`), ...(listening ? ['portico_http.conf'] : [])].sort();
    assert.deepEqual(appFiles, expectedAppFiles, `${context}: files in the apps' directory`);
    await noLeftovers(httpDir, context);
    // The certificate's files are one pair, the pair listed: never a new key beside an old certificate.
    const certDir = `${stateDir}/certs`;
    const pair = state.get(slot('cert', CERT_ID))?.backend;
    const certFiles = (await readdir(certDir)).filter((name) => !name.startsWith('.')).sort();
    assert.deepEqual(certFiles, pair === undefined ? [] : [`${CERT_ID}.crt`, `${CERT_ID}.key`], `${context}: files in the certificates' directory`);
    if (pair !== undefined) {
      const [certificate, key] = await Promise.all([readFile(`${certDir}/${CERT_ID}.crt`, 'utf8'), readFile(`${certDir}/${CERT_ID}.key`, 'utf8')]);
      assert.ok(new X509Certificate(certificate).checkPrivateKey(createPrivateKey(key)), `${context}: the key on disk does not belong to the certificate`);
      assert.deepEqual({ certificate, key }, { certificate: PAIRS[pair].cert, key: PAIRS[pair].key }, `${context}: the files on disk are not pair ${pair}`);
    }
    await noLeftovers(certDir, context);

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
        assert.equal(await accepts(port, '127.0.0.1', 1000), listening, `${context}: the apps' port ${port}, with ${apps.length} apps listed${users.app ? ' and the HTTPS app' : ''}`);
      }),
      ...(listening ? APPS : []).map(async (name) => {
        const value = state.get(slot('app', name)) ?? null;
        assert.equal(await answerOf(name), expectedAnswer(value), `${context}: ${hostOf(name)} on port ${HTTP_PORT} (app ${show(value)})`);
      }),
      // The certificate's users present the pair on disk: nginx was reloaded onto it before the API answered.
      ...(users.stream && pair !== undefined
        ? [
            (async () => {
              const seen = await tlsWhoAnswers(TLS_PORT, { servername: TLS_HOST, rejectUnauthorized: false, timeoutMs: 3000 }).catch((error: Error) => error.message);
              const actual = typeof seen === 'string' ? seen : { tag: seen.tag, fingerprint: seen.peerCertificate.fingerprint256 };
              assert.deepEqual(actual, { tag: 'behind-tls', fingerprint: fingerprintOf(pair) }, `${context}: the TLS stream on ${TLS_PORT} should present pair ${pair}`);
            })(),
          ]
        : []),
      ...(users.app && pair !== undefined
        ? [
            (async () => {
              const answer = await httpsGet(HTTPS_PORT, { servername: TLS_HOST, rejectUnauthorized: false, timeoutMs: 3000 }).catch((error: Error) => error.message);
              const actual = typeof answer === 'string' ? answer : { status: answer.status, fingerprint: answer.fingerprint256 };
              assert.deepEqual(actual, { status: 200, fingerprint: fingerprintOf(pair) }, `${context}: the HTTPS app on ${HTTPS_PORT} should present pair ${pair}`);
            })(),
          ]
        : []),
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
    type BatchKindName = 'stream' | 'app' | 'certificate';
    /** By phase: kills aimed inside its pause, and kills that landed inside it (from Portico's log) by the kind of the batch paused. */
    const perPhase = new Map<string, { aimed: number; landed: Record<BatchKindName, number> }>();
    const tally = {
      byMix: { streams: 0, apps: 0, all: 0 },
      beforeCommit: 0,
      midApply: 0,
      /** Kills with a change of each kind in flight. */
      inFlightOf: { stream: 0, app: 0, cert: 0 },
      answered: { stream: 0, app: 0, cert: 0 },
      applied: { stream: 0, app: 0, cert: 0 },
      dropped: { stream: 0, app: 0, cert: 0 },
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
    /** Where the time goes: restarts (spawn to API answering), checks after them, arranging the certificate's users. */
    const spent = { restartMs: 0, checkMs: 0, arrangeMs: 0 };
    const timed = async <T>(what: keyof typeof spent, work: () => Promise<T>): Promise<T> => {
      const from = Date.now();
      try {
        return await work();
      } finally {
        spent[what] += Date.now() - from;
      }
    };
    /** Which users of the certificate exist: the TLS stream from the third mix's first round on, the HTTPS app through its rounds. */
    const users = { stream: false, app: false };

    /**
     * Before a kill's changes (and never killed): in the third mix's rounds, the certificate (uploaded
     * once, as pair A), the TLS stream (made once) and the HTTPS app that serve it; in the others'
     * rounds, no HTTPS app.
     */
    async function arrange(mix: (typeof MIXES)[number], state: Map<string, Value>, context: string): Promise<void> {
      const expect = async (method: string, path: string, status: number, body?: unknown): Promise<void> => {
        const res = await call(method, path, body);
        assert.equal(res.status, status, `${context}: ${method} ${path}: ${res.text}`);
      };
      if (mix === 'all' && (state.get(slot('cert', CERT_ID)) ?? null) === null) {
        await expect('POST', '/v1/certificates', 201, { id: CERT_ID, certificate: PAIRS.A.cert, key: PAIRS.A.key });
        state.set(slot('cert', CERT_ID), { op: CERT_OP, backend: 'A' });
      }
      if (mix === 'all' && !users.stream) {
        await expect('POST', '/v1/streams', 201, tlsStreamBody());
        users.stream = true;
      }
      if ((mix === 'all') !== users.app) {
        if (mix === 'all') await expect('POST', '/v1/apps', 201, tlsAppBody());
        else await expect('DELETE', `/v1/apps/${TLS_APP}`, 204);
        users.app = mix === 'all';
      }
    }

    for (let i = 0; i < KILLS && Date.now() < deadline; i += 1) {
      const phase: Phase = TEST_DELAY_PHASES[i % TEST_DELAY_PHASES.length] as Phase;
      // A round of phases with one mix, then the next: every phase meets every mix, aimed and at random.
      const mix = MIXES[Math.floor(i / TEST_DELAY_PHASES.length) % MIXES.length] as (typeof MIXES)[number];
      const context = `seed ${SEED}, kill ${i + 1} (${phase}, ${mix})`;
      const previous = i === 0 ? 'at the first start' : `after kill ${i} (${TEST_DELAY_PHASES[(i - 1) % TEST_DELAY_PHASES.length]})`;
      portico = await timed('restartMs', () => spawnPortico({ ...env, PORTICO_TEST_DELAY: `${phase}:${DELAY_MS}` }));
      const checked = await timed('checkMs', () => check(allowed, master, users, `seed ${SEED}, ${previous}`));
      master = checked.master;
      const state = checked.state;
      countInFlight(state);
      tally.byMix[mix] += 1;
      await timed('arrangeMs', () => arrange(mix, state, context));
      /** The pauses of the arranging batches, which no kill aims at. */
      const arranged = pausesLogged(portico.output()).length;

      // The batches: 3 to 6 ports or 2 to 4 apps alone, or 2 to 4 ports, 1 to 3 apps and the
      // certificate together; each a chain of 1 to 3 changes sent in order (the certificate's
      // alternate between its two pairs); the chains run side by side.
      const streamCount = mix === 'apps' ? 0 : mix === 'streams' ? 3 + Math.floor(rng() * 4) : 2 + Math.floor(rng() * 3);
      const appCount = mix === 'streams' ? 0 : mix === 'apps' ? 2 + Math.floor(rng() * 3) : 1 + Math.floor(rng() * 3);
      const targets: Array<{ kind: Kind; key: string }> = [
        ...[...POOL].sort(() => rng() - 0.5).slice(0, streamCount).map((port) => ({ kind: 'stream' as const, key: String(port) })),
        ...[...APPS].sort(() => rng() - 0.5).slice(0, appCount).map((name) => ({ kind: 'app' as const, key: name })),
        ...(mix === 'all' ? [{ kind: 'cert' as const, key: CERT_ID }] : []),
      ];
      const chains = targets.map(({ kind, key }, c) => {
        let value = state.get(slot(kind, key)) ?? null;
        return Array.from({ length: 1 + Math.floor(rng() * 3) }, (_, s): Op => {
          if (kind === 'cert') {
            value = { op: CERT_OP, backend: value?.backend === 'A' ? 'B' : 'A' };
            return { kind, key, method: 'PUT', after: value };
          }
          const next: Value = value !== null && rng() < 0.4 ? null : { op: `k${i}${kind === 'app' ? 'a' : 'c'}${c}s${s}`, backend: pick(['A', 'B'] as const) };
          const method = next === null ? 'DELETE' : value === null && rng() < 0.5 ? 'POST' : 'PUT';
          value = next;
          return { kind, key, method, after: next };
        });
      });
      const sent: Sent[][] = chains.map(() => []);
      const running = Promise.all(
        chains.map(async (chain, c) => {
          // The certificate's chain starts first, so that its first batch leads the queue and a kill aimed
          // inside it need not wait for a stream and an app batch (the test's time stays what it was).
          const start = Math.floor(rng() * 20);
          await sleep(chain[0]?.kind === 'cert' ? 0 : 1 + start);
          for (const op of chain) {
            const result = await send(op);
            (sent[c] as Sent[]).push(result);
            if (result.answer === 'none') return;
          }
        }),
      );

      // Half the kills are aimed inside the pause after `phase` (of one of the first batches; with the
      // certificate, of its first batch), half at random (with the certificate, once its first PUT was answered).
      const aimed = i % 2 === 0;
      const aimedAt: BatchKindName | undefined = mix === 'all' ? 'certificate' : undefined;
      if (aimed) {
        // Every chain's n-th change goes into the n-th batch or a later one: there are that many pauses.
        // With the certificate, its first batch is aimed at (its chain starts first, see above).
        const nth = aimedAt === undefined ? 1 + Math.floor(rng() * Math.max(...chains.map((chain) => chain.length))) : 1;
        const pausesSeen = (): number =>
          pausesLogged(portico!.output())
            .slice(arranged)
            .filter((pause) => aimedAt === undefined || pause.kind === aimedAt).length;
        // A bound, not a wait: under load a batch of apps takes up to a second, and the certificate's may queue behind two.
        const paused = await eventually(() => pausesSeen() >= nth, 8000, 2);
        assert.ok(paused, `${context}: no pause after ${phase}${aimedAt === undefined ? '' : ` of a ${aimedAt} batch`} was logged:\n${portico.output()}`);
        await sleep(Math.floor(rng() * (DELAY_MS - 50)));
      } else if (mix === 'all') {
        // After the certificate's first PUT was answered (bounded: a kill comes anyway), at a random
        // moment of the batches behind it: so that every such kill has an acknowledged PUT to keep.
        const certSent = sent[chains.findIndex((chain) => chain[0]?.kind === 'cert')] as Sent[];
        await eventually(() => certSent.length > 0, 8000, 5);
        await sleep(Math.floor(rng() * 300));
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
      const last = pausesLogged(portico.output()).at(-1);
      // The pause ends no sooner than `ms` after its line was logged; 5 ms spare the rounding of both clocks' reads.
      const landed = last !== undefined && killedAt - last.time < last.ms - 5 ? last : undefined;

      // What each slot may hold now: the value its last acknowledged change left, or, if a change
      // was in flight (no answer), that change applied, unless the kill came inside a pause before a
      // commit: the batches before that one (of any kind: one queue applies them one at a time)
      // were answered, so every change in flight was in the killed batch or waiting for a later one,
      // and none may have survived.
      const beforeCommit = landed !== undefined && landed.phase !== 'commit';
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
      for (const kind of new Set(inFlight.map((op) => op.kind))) tally.inFlightOf[kind] += 1;

      const row = perPhase.get(phase) ?? { aimed: 0, landed: { stream: 0, app: 0, certificate: 0 } };
      if (aimed) row.aimed += 1;
      if (landed !== undefined) row.landed[landed.kind as BatchKindName] += 1;
      perPhase.set(phase, row);
      portico = undefined;
    }

    portico = await spawnPortico(env);
    const final = await check(allowed, master, users, `seed ${SEED}, after the last kill`);
    countInFlight(final.state);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const landedIn = (kind: BatchKindName): number => [...perPhase.values()].reduce((sum, row) => sum + row.landed[kind], 0);
    const phases = TEST_DELAY_PHASES.map((p) => {
      const row = perPhase.get(p) ?? { aimed: 0, landed: { stream: 0, app: 0, certificate: 0 } };
      const { stream, app, certificate } = row.landed;
      return `${p} ${stream + app + certificate}/${row.aimed} (stream ${stream}, app ${app}, certificate ${certificate})`;
    }).join(', ');
    const { byMix, answered, applied, dropped, inFlightOf } = tally;
    t.diagnostic(
      `seed ${SEED}: ${kills} kills in ${seconds} s (${byMix.streams} with stream changes alone, ${byMix.apps} with app changes alone, ${byMix.all} with all three kinds); ` +
        `${tally.midApply} with a change in flight: ${inFlightOf.stream} with a stream change, ${inFlightOf.app} with an app change, ${inFlightOf.cert} with a certificate PUT`,
    );
    t.diagnostic(`changes acknowledged: ${answered.stream} of streams, ${answered.app} of apps, ${answered.cert} certificate PUTs`);
    t.diagnostic(`kills that landed inside the pause after each phase / kills aimed there, by the kind of the batch paused: ${phases}`);
    t.diagnostic(
      `changes in flight at a kill, found applied after the restart / not: streams ${applied.stream}/${dropped.stream}, apps ${applied.app}/${dropped.app}, ` +
        `certificate ${applied.cert}/${dropped.cert}`,
    );
    t.diagnostic(`kills inside a pause before the commit, whose changes in flight had all to be rolled back: ${tally.beforeCommit}`);
    t.diagnostic(`time in restarts ${(spent.restartMs / 1000).toFixed(1)} s, in checks ${(spent.checkMs / 1000).toFixed(1)} s, arranging the certificate's users ${(spent.arrangeMs / 1000).toFixed(1)} s`);
    // The aimed kills of the third mix wait for a certificate batch's pause: some must have landed there.
    if (byMix.all >= TEST_DELAY_PHASES.length) assert.ok(landedIn('certificate') > 0, `no kill landed inside a certificate batch: ${phases}`);

    // SIGTERM: the last Portico stops its nginx gracefully.
    process.kill(portico.pid, 'SIGTERM');
    assert.ok(await closed(portico.child, 40_000), 'portico did not stop on SIGTERM');
    portico = undefined;
    assert.equal(kills, KILLS, `only ${kills} of ${KILLS} kills within ${DEADLINE_MS / 1000} s`);
  });
});
