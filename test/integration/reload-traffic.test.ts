/**
 * Reloads never drop traffic (issue 5): while keep-alive HTTP clients drive one app at full speed
 * and 20 long-lived TCP connections exchange lines through a stream, 100 applies of unrelated
 * changes (streams created and deleted on other ports, another app PUT with a changing header), one
 * reload each, cost no request and no connection. nginx hands its listening sockets to the new
 * workers, so a new connection is never refused; the old workers finish their requests and keep
 * their stream connections until worker_shutdown_timeout (10 minutes here: far longer than the
 * test, also on a loaded machine, where a run took 90 s and outlived the 60 s this test used to set). With
 * keepalive_min_timeout (nginx 1.27.4 and later, rendered into the main config) an old worker does
 * not close a keep-alive client connection right after an answer, so the HTTP clients here do not
 * retry anything and no request may fail: strict for the nginx `make` builds (1.30.4), and the main
 * config must then carry the directive. Only with an nginx older than 1.27.4 (one passed as
 * NGINX_BIN) do the clients retry once a request reset on a reused connection before any answer, as
 * HTTP/1.1 allows.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startEcho, type EchoServer } from '../helpers/net.js';
import { nginxBin, nginxMasters, startInProcess, type InProcess } from '../helpers/portico.js';
import { drainingWorkers, reloadsIn, startLeanBackend } from '../helpers/reload-load.js';
import { versionAtLeast } from '../../src/render/main.js';

const run = promisify(execFile);

const HTTP = 28200;
const HTTPS = 28201;
/** The stream the long-lived connections go through. */
const HELD = 28100;
/** Streams created and deleted by the applies: 28101-28125, each once. */
const CHURN = 28101;
const APPLIES = 100;
const LOOPS = 16;
const CONNECTIONS = 20;
const EXCHANGE_EVERY_MS = 50;
/** A request or an echo slower than this counts as failed (the loaded machine has 2 cores). */
const ANSWER_MS = 5000;

/** A request that did not end in 200 with the backend's own body: when, on which loop, and why. */
interface Failure {
  atMs: number;
  loop: number;
  /** Sent on a keep-alive connection that had carried a request before. */
  reused: boolean;
  /** The answer's status line had arrived when it failed. */
  answered: boolean;
  reason: string;
}

/** "ECONNRESET on a reused connection before any answer", the kind a failure is counted under. */
const kindOf = (f: Failure): string => `${f.reason.split(':')[0]} on a ${f.reused ? 'reused' : 'fresh'} connection ${f.answered ? 'after' : 'before'} any answer`;

/**
 * `loops` request loops, each on its own keep-alive agent (one connection), sending GET
 * /load/<loop>/<n> with Host `host` to 127.0.0.1:`port` back to back until stopped; each answer
 * must be 200 with the body `<backend> /load/<loop>/<n>`. With `retryResets`, a request reset on a
 * reused connection before any answer is retried once on a new connection; without, it fails.
 */
function driveHttp(port: number, host: string, backend: string, loops: number, since: number, retryResets: boolean) {
  let stopping = false;
  let ok = 0;
  const failures: Failure[] = [];
  /** Requests retried once on a new connection after a reset of a reused one before any answer. */
  const retried: Failure[] = [];
  const agents = Array.from({ length: loops }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  const once = (loop: number, n: number, retry = false): Promise<void> =>
    new Promise<void>((resolve) => {
      const path = `/load/${loop}/${n}`;
      let settled = false;
      let answered = false;
      const req = httpRequest({ host: '127.0.0.1', port, path, agent: retry ? false : agents[loop], headers: { host } }, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? error.message));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200 || body !== `${backend} ${path}`) return fail(`${res.statusCode}: ${body.slice(0, 120)}`);
          if (settled) return;
          settled = true;
          ok += 1;
          resolve();
        });
      });
      const fail = (reason: string): void => {
        if (settled) return;
        settled = true;
        const failure = { atMs: Math.round(performance.now() - since), loop, reused: req.reusedSocket, answered, reason };
        // RFC 9112 9.3.1: a client may retry an idempotent request whose reused connection closed
        // before any answer; browsers and most HTTP libraries do. Once, on a new connection.
        if (retryResets && !retry && failure.reused && !answered && reason === 'ECONNRESET') {
          retried.push(failure);
          void once(loop, n, true).then(resolve);
          return;
        }
        failures.push(failure);
        resolve();
      };
      req.setTimeout(ANSWER_MS, () => req.destroy(new Error(`timeout: no answer within ${ANSWER_MS} ms`)));
      req.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? error.message));
      req.end();
    });
  const running = Promise.all(
    agents.map(async (_, loop) => {
      for (let n = 0; !stopping; n += 1) await once(loop, n);
    }),
  );
  return {
    count: () => ok + failures.length,
    /** Lets each loop finish its request in flight, then closes the agents' connections. */
    async stop(): Promise<{ ok: number; failures: Failure[]; retried: Failure[] }> {
      stopping = true;
      await running;
      for (const agent of agents) agent.destroy();
      return { ok, failures, retried };
    },
  };
}

/**
 * `count` TCP connections to 127.0.0.1:`port`, each sending a numbered line every `everyMs` and
 * waiting for it to come back whole before the next. A connection that closes, errs, or answers
 * other bytes (or none within ANSWER_MS) is a problem; it is not reopened.
 */
async function holdConnections(port: number, count: number, everyMs: number) {
  let stopping = false;
  /** Lines that came back whole, per connection. */
  const exchanges: number[] = Array.from({ length: count }, () => 0);
  const problems: string[] = [];
  const sockets: Socket[] = [];
  const hold = async (id: number): Promise<void> => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    let buffered = '';
    let wake: (() => void) | undefined;
    let broken: string | undefined;
    socket.on('data', (data: Buffer) => {
      buffered += data.toString();
      wake?.();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => (broken ??= `error ${error.code ?? error.message}`));
    socket.on('close', () => {
      broken ??= 'closed by the other end';
      wake?.();
    });
    for (let n = 0; !stopping; n += 1) {
      const line = `connection ${id} line ${n} ${'x'.repeat(n % 40)}\n`;
      socket.write(line);
      const deadline = Date.now() + ANSWER_MS;
      while (buffered.length < line.length && broken === undefined && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now());
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
      if (broken === undefined && buffered !== line) {
        broken = buffered.length < line.length ? `line ${n}: ${buffered.length} of ${line.length} bytes came back within ${ANSWER_MS} ms` : `line ${n} came back as ${JSON.stringify(buffered.slice(0, 80))}`;
      }
      if (broken !== undefined) {
        if (!stopping) problems.push(`connection ${id}, after ${n} exchanges: ${broken}`);
        return;
      }
      buffered = '';
      exchanges[id] = n + 1;
      await sleep(everyMs);
    }
  };
  const opened = Array.from({ length: count }, (_, id) => hold(id).catch((error: Error) => void problems.push(`connection ${id}: ${error.message}`)));
  return {
    /** The fewest lines any connection has exchanged so far. */
    fewest: () => Math.min(...exchanges),
    /** Stops exchanging; answers the lines exchanged per connection and the problems seen while they were meant to live. */
    async stop(): Promise<{ exchanges: number[]; problems: string[] }> {
      stopping = true;
      await Promise.all(opened);
      return { exchanges, problems };
    },
    destroy(): void {
      for (const socket of sockets) socket.destroy();
    },
  };
}

describe('reloads never drop traffic (managed nginx, worker_shutdown_timeout 600s)', () => {
  let portico: InProcess;
  let echo: EchoServer;
  const cleanups: Array<() => Promise<void> | void> = [];
  /** What the 100 applies did to the traffic, measured in before(), asserted below. */
  const phase = {
    reloads: 0,
    durationMs: 0,
    slowestApplyMs: 0,
    http: { ok: 0, failures: [] as Failure[], retried: [] as Failure[] },
    tcp: { exchanges: [] as number[], problems: [] as string[] },
    applyWindows: [] as Array<{ apply: number; fromMs: number; toMs: number }>,
    lastHeader: undefined as unknown,
    /** Connections the held stream's backend accepted during the applies. */
    newUpstreamConnections: 0,
    /** Old workers still draining after the last apply: those holding the long-lived connections. */
    draining: 0,
    /** Requests the loaded app's backend answered while the load ran. */
    backendAnswered: 0,
    /** The main config's keepalive_min_timeout, if it sets one. */
    minTimeout: undefined as string | undefined,
    /** The nginx under test, from `nginx -v`. */
    nginxVersion: '',
    /** It knows keepalive_min_timeout (1.27.4 or later): no retries allowed. */
    strict: false,
  };

  before(async () => {
    echo = await startEcho();
    // The churned streams get their own backend: Portico's check that a new listener accepts is a connection too.
    const churnEcho = await startEcho();
    cleanups.push(() => echo.close(), () => churnEcho.close());
    const loaded = await startLeanBackend('loaded');
    const other = await startLeanBackend('other');
    cleanups.push(() => loaded.close(), () => other.close());
    portico = await startInProcess({ PORT_RANGE: '28100-28199', HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS), WORKER_SHUTDOWN_TIMEOUT: '600s' });
    phase.minTimeout = /^\s*keepalive_min_timeout (\S+);/m.exec(await readFile(portico.settings.nginxConf, 'utf8'))?.[1];
    const { stderr } = await run(nginxBin(), ['-v'], { timeout: 5000 });
    phase.nginxVersion = /nginx\/(\d+\.\d+\.\d+)/.exec(stderr)?.[1] ?? '';
    assert.notEqual(phase.nginxVersion, '', `cannot read the version from nginx -v: ${stderr}`);
    phase.strict = versionAtLeast(phase.nginxVersion, [1, 27, 4]);
    const api = request(portico.app);
    await api.post('/v1/streams').send({ port: HELD, backend: `127.0.0.1:${echo.port}` }).expect(201);
    await api.post('/v1/apps').send({ name: 'loaded', serverNames: ['loaded.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${loaded.port}` }] }] }).expect(201);
    const otherApp = (generation: number) => ({
      serverNames: ['other.test'],
      routes: [{ upstreams: [{ address: `127.0.0.1:${other.port}` }], headers: { 'X-Generation': `g${generation}` } }],
    });
    await api.put('/v1/apps/other').send(otherApp(0)).expect(201);

    const held = await holdConnections(HELD, CONNECTIONS, EXCHANGE_EVERY_MS);
    cleanups.push(() => held.destroy());
    const start = performance.now();
    const answeredBefore = loaded.requests();
    const load = driveHttp(HTTP, 'loaded.test', 'loaded', LOOPS, start, !phase.strict);
    cleanups.push(async () => void (await load.stop()));
    // Both kinds of traffic are flowing before the first reload.
    while (load.count() < 200 || held.fewest() < 1) await sleep(20);
    const reloadsBefore = await reloadsIn(portico.stateDir);
    const acceptedBefore = echo.accepted();
    for (let i = 0; i < APPLIES; i += 1) {
      const fromMs = performance.now() - start;
      const port = CHURN + Math.floor(i / 4);
      if (i % 2 === 1) await api.put('/v1/apps/other').send(otherApp(i)).expect(200);
      else if (i % 4 === 0) await api.post('/v1/streams').send({ port, backend: `127.0.0.1:${churnEcho.port}` }).expect(201);
      else await api.delete(`/v1/streams/${port}`).expect(204);
      const toMs = performance.now() - start;
      phase.applyWindows.push({ apply: i, fromMs: Math.round(fromMs), toMs: Math.round(toMs) });
      phase.slowestApplyMs = Math.max(phase.slowestApplyMs, Math.round(toMs - fromMs));
    }
    phase.reloads = (await reloadsIn(portico.stateDir)) - reloadsBefore;
    const [master] = await nginxMasters(portico.stateDir);
    phase.draining = master === undefined ? 0 : await drainingWorkers(master);
    phase.http = await load.stop();
    phase.backendAnswered = loaded.requests() - answeredBefore;
    phase.tcp = await held.stop();
    phase.durationMs = Math.round(performance.now() - start);
    phase.newUpstreamConnections = echo.accepted() - acceptedBefore;
    phase.lastHeader = await fetchHeader(HTTP, 'other.test', 'x-generation');
  });

  after(async () => {
    // Clients first: a graceful stop of nginx waits for the held connections.
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
    await portico?.stop();
  });

  it(`${APPLIES} applies of unrelated changes, one reload each, while ${LOOPS} keep-alive loops drive an app: 0 failed requests, and none retried on nginx 1.27.4 or later (keepalive_min_timeout)`, (t) => {
    const { ok, failures, retried } = phase.http;
    t.diagnostic(`nginx ${phase.nginxVersion}, keepalive_min_timeout ${phase.minTimeout ?? 'absent'}${phase.strict ? '' : ' (nginx before 1.27.4): resets of reused connections are retried once'}`);
    t.diagnostic(`requests ${ok + failures.length}, failed ${failures.length}, retried ${retried.length}, reloads ${phase.reloads}, duration ${phase.durationMs} ms, slowest apply ${phase.slowestApplyMs} ms`);
    const kinds: Record<string, number> = {};
    for (const f of failures) kinds[kindOf(f)] = (kinds[kindOf(f)] ?? 0) + 1;
    const during = (f: Failure) => phase.applyWindows.find((w) => f.atMs >= w.fromMs && f.atMs <= w.toMs);
    t.diagnostic(`failed by kind ${JSON.stringify(kinds)}, ${failures.filter(during).length} of them while an apply ran`);
    // Every request that succeeded reached the backend once; any excess reached it and failed after.
    t.diagnostic(`the backend answered ${phase.backendAnswered}: ${phase.backendAnswered - ok} of the failed requests had reached it`);
    for (const f of failures.slice(0, 10)) {
      const apply = during(f);
      t.diagnostic(`failed at ${f.atMs} ms on loop ${f.loop}: ${kindOf(f)}${apply ? ` (apply ${apply.apply}, ${apply.fromMs}-${apply.toMs} ms)` : ''}`);
    }
    assert.ok(phase.reloads >= APPLIES, `${APPLIES} applies caused ${phase.reloads} reloads`);
    assert.equal(phase.lastHeader, `g${APPLIES - 1}`, 'the last PUT of the other app is served');
    assert.ok(ok >= 1000, `only ${ok} requests completed`);
    if (phase.strict) {
      assert.ok(phase.minTimeout !== undefined, `nginx ${phase.nginxVersion} knows keepalive_min_timeout, but the main config does not set it`);
      // keepalive_min_timeout keeps an old worker from closing a keep-alive connection it has just
      // answered on: the clients' next request is served there, and nothing is reset.
      assert.deepEqual(kinds, {}, `${failures.length} of ${ok + failures.length} requests failed (no retries)`);
      assert.equal(retried.length, 0);
    } else {
      // Before 1.27.4 nginx closes an old worker's idle keep-alive connections the moment it is told
      // to quit (ngx_close_idle_connections): a request already sent on one gets a TCP RST, not an
      // answer. Such a request never reached the backend, so a retry is safe, and with one retry
      // nothing fails.
      assert.deepEqual(kinds, {}, `${failures.length} of ${ok + failures.length} requests failed even after one retry`);
      assert.ok(retried.length <= (ok * 2) / 100, `${retried.length} of ${ok} requests needed a retry (more than 2%)`);
    }
    assert.equal(phase.backendAnswered, ok, 'a request that failed had reached the backend');
  });

  it(`${CONNECTIONS} long-lived TCP connections through a stream exchange a line every ${EXCHANGE_EVERY_MS} ms across all the reloads: none closes, every echo comes back intact`, (t) => {
    const { exchanges, problems } = phase.tcp;
    const total = exchanges.reduce((a, b) => a + b, 0);
    t.diagnostic(`exchanges ${total} over ${CONNECTIONS} connections (${Math.min(...exchanges)} to ${Math.max(...exchanges)} each), new upstream connections ${phase.newUpstreamConnections}, reloads ${phase.reloads}, old workers still draining after the last apply ${phase.draining}`);
    assert.deepEqual(problems, []);
    // Each connection kept exchanging for the whole phase: a line every 50 ms plus the round trip,
    // which the loaded event loop may stretch, but not fourfold.
    const floor = Math.floor(phase.durationMs / (EXCHANGE_EVERY_MS * 4));
    assert.ok(Math.min(...exchanges) >= floor, `a connection exchanged only ${Math.min(...exchanges)} lines in ${phase.durationMs} ms (floor ${floor})`);
    // No connection was re-established behind the clients' backs: the backend saw no new one.
    assert.equal(phase.newUpstreamConnections, 0);
    // They live on in old workers, which worker_shutdown_timeout 600s lets finish.
    assert.ok(phase.draining >= 1, 'no old worker was left draining: the long-lived connections were not on one');
  });
});

/** One request on a fresh connection; answers the value of response header `name`. */
function fetchHeader(port: number, host: string, name: string): Promise<string | string[] | undefined> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers[name]));
    });
    req.setTimeout(ANSWER_MS, () => req.destroy(new Error(`no answer from ${host} within ${ANSWER_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}
