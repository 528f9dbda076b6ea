/**
 * Reloads do not cost HTTP/2 or HTTP/3 requests (issue 13, goal 5, with the early quit of old
 * workers): while an HTTP/2 client (node:http2 over TLS, ALPN h2) and an HTTP/3 client (headless
 * Chromium over QUIC, the only HTTP/3 client the tests have: test/helpers/chromium.ts) drive one
 * app without pause, 24 real API changes (another app replaced, apps created, a stream created and
 * deleted), one reload each, go through Portico. Ports 24700-24799 only (HTTP 24750, HTTPS and QUIC
 * 24751, streams from 24700).
 *
 * HTTP/2: one long-lived connection carries every loop's requests at once. When its worker is told
 * to quit, nginx answers GOAWAY naming the last stream it took; the client opens a new connection
 * and retries only what the server did not process: a request never sent, a stream refused
 * (REFUSED_STREAM: nghttp2 closes the streams above a GOAWAY's last stream id so), or one above
 * that id (RFC 9113 6.8 and 8.7). A request that fails any other way, or reaches the backend twice,
 * is a failure.
 *
 * HTTP/3: fetch() loops in a page of the app's own origin. Chromium re-sends by itself what a GOAWAY
 * tells it nginx did not take. Each try has a path of its own, so the backend tells which failed
 * try had been processed; a try that failed unprocessed is tried again (a pause, then the next try,
 * as an application would). Chromium's net log (--log-net-log; KEEP_NETLOG=1 keeps the file) shows
 * each stream on the wire: which nginx answered, refused at a GOAWAY, or left unanswered, and how
 * each connection ended. Two Chromium behaviours seen there are not nginx's doing and are allowed:
 * a request bound to a connection as its GOAWAY arrives fails unsent (ERR_CONNECTION_CLOSED), and an
 * answer that reached Chromium's QUIC stack just before nginx's CONNECTION_CLOSE is thrown away and
 * the request re-sent (the backend sees it twice, and nginx answered both).
 *
 * A further test holds nginx to more where the main config says `quic_bpf on` (QUIC_BPF=auto, on a
 * host whose probe at start-up passed: apply/quic-bpf.ts): nginx then routes each QUIC packet to
 * the worker that owns its connection, answers every stream below a GOAWAY across the reloads, and
 * every failed try is accounted for (see there); where the host refuses nginx's eBPF, it is a
 * todo. The last test, a todo, records what nginx still does at a reload with quic_bpf (see there).
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { connect as http2Connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import request from 'supertest';
import { fixtureCert, fixturePem } from '../helpers/backends.js';
import { http3Flags, launchChromium, type RunningChromium } from '../helpers/chromium.js';
import { startEcho } from '../helpers/net.js';
import { nginxMasters, startInProcess, type InProcess } from '../helpers/portico.js';
import { currentWorkers, reloadsIn, startLeanBackend } from '../helpers/reload-load.js';

const HTTP = 24750;
const HTTPS = 24751;
/** Streams created and deleted by the applies, from here on. */
const CHURN = 24700;
const HOST = 'portico.test';
const CA = fixturePem('ca.crt');
const PORTICO = fixtureCert('portico');
/** API changes made while the clients run, one reload each. */
const APPLIES = 24;
/** Concurrent request loops per protocol: HTTP/2's all share one connection at a time. */
const LOOPS = 4;
/** Bounds on each loop: requests, and time from the start of the traffic. */
const MAX_PER_LOOP = 20_000;
const MAX_TRAFFIC_MS = 45_000;
/** No apply starts after this long into the traffic (a loaded machine gets fewer, at least 20 are asserted). */
const MAX_APPLYING_MS = 35_000;
/** An answer slower than this is a failure. */
const ANSWER_MS = 5000;
/** Tries per HTTP/2 request: the first and its retries of what the server did not process. */
const H2_TRIES = 5;
/** Tries per HTTP/3 request (each under a path of its own). */
const H3_TRIES = 4;
/** The pause before an HTTP/3 request's next try, times the tries so far. */
const H3_RETRY_PAUSE_MS = 50;

/** A request that did not end in 200 with the backend's own body, or could not be retried. */
interface Failure {
  atMs: number;
  path: string;
  reason: string;
}

/** Why an HTTP/2 request may be sent again: the server cannot have processed it. */
type RetryKind = 'not sent' | 'refused' | 'above GOAWAY';

interface H2Outcome {
  ok: number;
  failures: Failure[];
  retries: Record<RetryKind, number>;
  /** Connections opened, and the ALPN protocol each agreed. */
  sessions: number;
  alpn: string[];
  goaways: Array<{ atMs: number; session: number; code: number; lastStreamId: number; requestsOnSession: number }>;
  sessionErrors: string[];
}

/**
 * `loops` request loops sharing one HTTP/2 connection to 127.0.0.1:`port` (SNI and :authority
 * HOST), each sending GET /h2/<loop>/<n> until stopped; each answer must be 200 with the body
 * `<backend> /h2/<loop>/<n>`. After a GOAWAY the connection takes no new request: the next one
 * opens a new connection. A request the server did not process is retried there.
 */
function driveH2(port: number, backend: string, loops: number, since: number) {
  let stopping = false;
  const outcome: H2Outcome = { ok: 0, failures: [], retries: { 'not sent': 0, refused: 0, 'above GOAWAY': 0 }, sessions: 0, alpn: [], goaways: [], sessionErrors: [] };
  const all: ClientHttp2Session[] = [];
  interface Entry {
    session: ClientHttp2Session;
    no: number;
    requests: number;
    lastStreamId?: number;
  }
  let current: Entry | undefined;
  const at = (): number => Math.round(performance.now() - since);
  const sessionFor = (): Entry => {
    if (current !== undefined && current.lastStreamId === undefined && !current.session.closed && !current.session.destroyed) return current;
    const session = http2Connect(`https://127.0.0.1:${port}`, { ca: CA, servername: HOST });
    all.push(session);
    outcome.sessions += 1;
    const entry: Entry = { session, no: outcome.sessions, requests: 0 };
    session.on('connect', () => outcome.alpn.push(String(session.alpnProtocol)));
    session.on('goaway', (code: number, lastStreamId: number) => {
      entry.lastStreamId = lastStreamId;
      outcome.goaways.push({ atMs: at(), session: entry.no, code, lastStreamId, requestsOnSession: entry.requests });
    });
    // A session's error also reaches its open streams, where it is judged.
    session.on('error', (error: NodeJS.ErrnoException) => outcome.sessionErrors.push(`session ${entry.no} at ${at()} ms: ${error.code ?? error.message}`));
    current = entry;
    return entry;
  };
  /** One try: ok, a kind of retry, or a failure's reason. */
  const attempt = (path: string): Promise<{ ok: true } | { retry: RetryKind } | { failed: string }> => {
    const entry = sessionFor();
    let stream: ClientHttp2Stream;
    try {
      stream = entry.session.request({ ':path': path, ':authority': `${HOST}:${port}` }, { endStream: true });
    } catch (error) {
      // The session had closed (a GOAWAY between the look and the request): nothing was sent.
      return Promise.resolve({ retry: 'not sent' as const, reason: (error as NodeJS.ErrnoException).code });
    }
    entry.requests += 1;
    return new Promise((resolve) => {
      let status = 0;
      let ended = false;
      let errorCode = '';
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        errorCode = `timeout: no answer within ${ANSWER_MS} ms`;
        stream.close(h2.NGHTTP2_CANCEL);
      }, ANSWER_MS);
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => (ended = true));
      stream.on('error', (error: NodeJS.ErrnoException) => (errorCode ||= error.code ?? error.message));
      stream.on('close', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks).toString();
        if (ended && errorCode === '') {
          if (status === 200 && body === `${backend} ${path}`) return resolve({ ok: true });
          return resolve({ failed: `${status}: ${body.slice(0, 120)}` });
        }
        const id = stream.id;
        // RFC 9113 8.7: a stream never sent, one refused with REFUSED_STREAM, or one above the
        // last stream id of a GOAWAY was not processed by the server, and may be retried.
        if (id === undefined && status === 0) return resolve({ retry: 'not sent' });
        if (stream.rstCode === h2.NGHTTP2_REFUSED_STREAM && status === 0) return resolve({ retry: 'refused' });
        if (id !== undefined && entry.lastStreamId !== undefined && id > entry.lastStreamId && status === 0) return resolve({ retry: 'above GOAWAY' });
        resolve({
          failed: `${errorCode || 'closed'} (stream ${id ?? 'unsent'}, rst ${stream.rstCode}, status ${status}, GOAWAY last stream ${entry.lastStreamId ?? 'none'}, session ${entry.no})`,
        });
      });
    });
  };
  const once = async (loop: number, n: number): Promise<void> => {
    const path = `/h2/${loop}/${n}`;
    const startedMs = at();
    for (let tries = 1; ; tries += 1) {
      const result = await attempt(path);
      if ('ok' in result) {
        outcome.ok += 1;
        return;
      }
      if ('retry' in result && tries < H2_TRIES) {
        outcome.retries[result.retry] += 1;
        continue;
      }
      const reason = 'failed' in result ? result.failed : `still ${result.retry} after ${H2_TRIES} tries`;
      outcome.failures.push({ atMs: startedMs, path, reason });
      return;
    }
  };
  const running = Promise.all(
    Array.from({ length: loops }, async (_, loop) => {
      for (let n = 0; !stopping && n < MAX_PER_LOOP && performance.now() - since < MAX_TRAFFIC_MS; n += 1) await once(loop, n);
    }),
  );
  return {
    count: () => outcome.ok + outcome.failures.length,
    async stop(): Promise<H2Outcome> {
      stopping = true;
      await running;
      for (const session of all) session.destroy();
      return outcome;
    },
    destroy(): void {
      stopping = true;
      for (const session of all) session.destroy();
    },
  };
}

interface H3Outcome {
  /** Requests that ended in 200 with the backend's body (on some try). */
  ok: number;
  /** Requests that got a wrong answer, or no answer on any of their tries. */
  failures: Failure[];
  /** Tries whose fetch() failed without an answer; the request was tried again (see H3_TRIES). */
  failedTries: Failure[];
  /** Tries by the protocol Chromium says carried them (PerformanceResourceTiming.nextHopProtocol; '' for a failed one). */
  protocols: Record<string, number>;
}

/**
 * Starts `loops` fetch() loops in `page` (of the app's origin), each asking for /h3/<loop>/<n>/<try>
 * until told to stop; each answer must be 200 with the body `<backend> <path>`. A fetch that fails
 * without an answer is tried again under the next <try>, up to H3_TRIES: every try has a path of its
 * own, so the backend tells afterwards whether a failed one had been processed (then it was no
 * retry of an unprocessed request but a lost answer: a failure). Runs in the page, as plain
 * JavaScript in a string (the tests compile without the DOM's types).
 */
async function driveH3(page: Page, backend: string, loops: number) {
  const setup = `(() => {
    const state = { stop: false, ok: 0, failures: [], failedTries: [], protocols: {}, since: performance.now() };
    window.__h3 = state;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) state.protocols[entry.nextHopProtocol] = (state.protocols[entry.nextHopProtocol] ?? 0) + 1;
      performance.clearResourceTimings();
    }).observe({ type: 'resource' });
    const once = async (l, n) => {
      for (let t = 0; t < ${H3_TRIES}; t += 1) {
        const path = '/h3/' + l + '/' + n + '/' + t;
        const atMs = Math.round(performance.now() - state.since);
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(new Error('timeout: no answer within ${ANSWER_MS} ms')), ${ANSWER_MS});
        try {
          const response = await fetch(path, { cache: 'no-store', signal: abort.signal });
          const body = await response.text();
          if (response.status === 200 && body === ${JSON.stringify(backend)} + ' ' + path) state.ok += 1;
          else state.failures.push({ atMs, path, reason: response.status + ': ' + body.slice(0, 120) });
          return;
        } catch (error) {
          state.failedTries.push({ atMs, path, reason: String(error && error.message ? error.message : error) });
        } finally {
          clearTimeout(timer);
        }
        // As an application would: a moment's pause before trying again, longer each time.
        await new Promise((resolve) => setTimeout(resolve, ${H3_RETRY_PAUSE_MS} * (t + 1)));
      }
      state.failures.push({ atMs: Math.round(performance.now() - state.since), path: '/h3/' + l + '/' + n, reason: 'no answer on any of ${H3_TRIES} tries' });
    };
    const loop = async (l) => {
      for (let n = 0; !state.stop && n < ${MAX_PER_LOOP} && performance.now() - state.since < ${MAX_TRAFFIC_MS}; n += 1) await once(l, n);
    };
    window.__h3run = Promise.all(Array.from({ length: ${loops} }, (_, l) => loop(l)));
  })()`;
  await page.evaluate(setup);
  return {
    count: async (): Promise<number> => Number(await page.evaluate('window.__h3.ok + window.__h3.failures.length')),
    async stop(): Promise<H3Outcome> {
      return (await page.evaluate(`(async () => {
        window.__h3.stop = true;
        await window.__h3run;
        // The observer's last entries come in a task after the last fetch.
        await new Promise((resolve) => setTimeout(resolve, 100));
        const { ok, failures, failedTries, protocols } = window.__h3;
        return { ok, failures, failedTries, protocols };
      })()`)) as H3Outcome;
    },
  };
}

/** What Chromium's net log tells about its QUIC connections and the HTTP/3 streams on them. */
interface QuicLog {
  /** QUIC connections Chromium opened. */
  opened: number;
  /** Connections closed, by QUIC error and by which side. */
  closed: Record<string, number>;
  /** HTTP/3 GOAWAY frames received from nginx. */
  goaways: number;
  /** Request streams sent, per path (a path Chromium sent again counts twice). */
  sent: Map<string, number>;
  /** Request streams nginx answered (a response's headers decoded), per path and status. */
  answered: Map<string, number>;
  non200: string[];
  /** Streams at or above their connection's GOAWAY id that nginx did not answer: refused, not processed. */
  refused: number;
  /** ... their paths, each time one was refused so. */
  refusedPaths: Map<string, number>;
  /** Streams below their connection's GOAWAY id (or on a connection closed without one) that got no answer. */
  unanswered: string[];
  /** ... of them, those on a connection that got a GOAWAY, below its id: nginx took them. */
  unansweredBelowGoaway: string[];
  /** ... and those on a connection nginx closed without a GOAWAY (its worker told to quit during the handshake). */
  unansweredWithoutGoaway: Array<{ path: string; text: string }>;
  /** Chromium's own restarts of a transaction, by net error (it re-sends the request on a new connection). */
  restarts: Record<string, number>;
  /** Requests that failed inside Chromium, by net error. */
  requestErrors: Record<string, number>;
}

/**
 * Reads Chromium's net log (--log-net-log): the constants on its first line name the event types,
 * then one event a line. Only the few event types this test needs are parsed. Tolerates a log that
 * lacks its closing lines (a browser killed at close).
 */
async function readQuicLog(netLog: string): Promise<QuicLog> {
  const text = await readFile(netLog, 'utf8').catch(() => '');
  const newline = text.indexOf('\n');
  const log: QuicLog = { opened: 0, closed: {}, goaways: 0, sent: new Map(), answered: new Map(), non200: [], refused: 0, refusedPaths: new Map(), unanswered: [], unansweredBelowGoaway: [], unansweredWithoutGoaway: [], restarts: {}, requestErrors: {} };
  let constants: { logEventTypes: Record<string, number>; netError: Record<string, number>; logEventPhase: Record<string, number> };
  try {
    constants = (JSON.parse(text.slice(0, newline).replace(/,$/, '').replace(/^\{"constants":/, '')) as { constants?: never } & typeof constants);
  } catch {
    return log;
  }
  const type = constants.logEventTypes;
  const netErrors = new Map(Object.entries(constants.netError).map(([name, code]) => [code, name]));
  const wanted = new Map(
    ['QUIC_SESSION', 'QUIC_SESSION_CLOSED', 'HTTP3_GOAWAY_RECEIVED', 'HTTP3_HEADERS_SENT', 'HTTP3_HEADERS_DECODED', 'HTTP_TRANSACTION_RESTART_AFTER_ERROR', 'REQUEST_ALIVE'].map((name) => [type[name], name]),
  );
  interface Session {
    goaway?: number;
    streams: Map<number, { path: string; status?: string }>;
    closedBy?: string;
  }
  const sessions = new Map<number, Session>();
  const sessionOf = (id: number): Session => sessions.get(id) ?? (sessions.set(id, { streams: new Map() }).get(id) as Session);
  const bump = (record: Record<string, number>, key: string): void => void (record[key] = (record[key] ?? 0) + 1);
  for (const line of text.slice(newline + 1).split('\n')) {
    // The event's own type is its last field (its source's type comes earlier).
    const name = wanted.get(Number(/"type":(\d+)\},?$/.exec(line)?.[1]));
    if (name === undefined) continue;
    let event: { phase: number; source: { id: number }; params?: Record<string, unknown> };
    try {
      event = JSON.parse(line.replace(/,$/, '')) as typeof event;
    } catch {
      continue;
    }
    const params = event.params ?? {};
    const session = (): Session => sessionOf(event.source.id);
    const pathIn = (headers: unknown): string => ((headers as string[] | undefined) ?? []).find((h) => h.startsWith(':path: '))?.slice(7) ?? '';
    const statusIn = (headers: unknown): string => ((headers as string[] | undefined) ?? []).find((h) => h.startsWith(':status: '))?.slice(9) ?? '';
    if (name === 'QUIC_SESSION' && event.phase === constants.logEventPhase.PHASE_BEGIN) log.opened += 1;
    else if (name === 'QUIC_SESSION_CLOSED') session().closedBy ??= `${String(params.details)} (QUIC error ${String(params.quic_error)}) ${params.from_peer === true ? 'from nginx' : 'by Chromium'}`;
    else if (name === 'HTTP3_GOAWAY_RECEIVED') {
      log.goaways += 1;
      session().goaway = Number(params.stream_id);
    } else if (name === 'HTTP3_HEADERS_SENT') session().streams.set(Number(params.stream_id), { path: pathIn(params.headers) });
    else if (name === 'HTTP3_HEADERS_DECODED') {
      const stream = session().streams.get(Number(params.stream_id));
      if (stream !== undefined) stream.status = statusIn(params.headers);
    } else if (name === 'HTTP_TRANSACTION_RESTART_AFTER_ERROR') bump(log.restarts, netErrors.get(Number(params.net_error)) ?? String(params.net_error));
    else if (name === 'REQUEST_ALIVE' && event.phase === constants.logEventPhase.PHASE_END && params.net_error !== undefined) {
      bump(log.requestErrors, netErrors.get(Number(params.net_error)) ?? String(params.net_error));
    }
  }
  for (const session of sessions.values()) {
    if (session.closedBy !== undefined) bump(log.closed, session.closedBy);
    for (const [id, stream] of session.streams) {
      if (!stream.path.startsWith('/h3/')) continue;
      log.sent.set(stream.path, (log.sent.get(stream.path) ?? 0) + 1);
      if (stream.status !== undefined) {
        log.answered.set(stream.path, (log.answered.get(stream.path) ?? 0) + 1);
        if (stream.status !== '200') log.non200.push(`${stream.path}: ${stream.status}`);
      } else if (session.goaway !== undefined && id >= session.goaway) {
        log.refused += 1;
        log.refusedPaths.set(stream.path, (log.refusedPaths.get(stream.path) ?? 0) + 1);
      }
      else {
        const text = `${stream.path} (stream ${id}, GOAWAY ${session.goaway ?? 'none'}, closed ${session.closedBy ?? 'not'})`;
        log.unanswered.push(text);
        if (session.goaway !== undefined) log.unansweredBelowGoaway.push(text);
        else log.unansweredWithoutGoaway.push({ path: stream.path, text });
      }
    }
  }
  return log;
}

describe('reloads never drop HTTP/2 or HTTP/3 requests (managed nginx, early quit of old workers)', () => {
  let portico: InProcess;
  let browser: RunningChromium | undefined;
  const netLog = path.join(tmpdir(), `portico-reload-h3-netlog-${process.pid}.json`);
  const cleanups: Array<() => Promise<void> | void> = [];
  const phase = {
    reloads: 0,
    durationMs: 0,
    slowestApplyMs: 0,
    /** Distinct worker pids seen across the applies, and the workers of one generation. */
    workerPids: 0,
    workersPerGeneration: 0,
    /** None of the first generation's workers is a current worker at the end. */
    firstWorkersReplaced: false,
    h2: undefined as H2Outcome | undefined,
    h3: undefined as H3Outcome | undefined,
    quic: undefined as QuicLog | undefined,
    /** How often the backend saw each path (each HTTP/2 request and each HTTP/3 try has its own). */
    seen: new Map<string, number>(),
    applyWindows: [] as Array<{ apply: number; what: string; fromMs: number; toMs: number; reloads: number }>,
    lastHeader: undefined as unknown,
    /** The main config says `quic_bpf on` (the probe at start-up passed). */
    quicBpf: false,
    /** nginx's error log lines about its eBPF (a reload whose socket map could not take the new workers' sockets says so). */
    bpfLog: [] as string[],
  };

  before(async () => {
    const loaded = await startLeanBackend('loaded', { countPaths: true });
    const other = await startLeanBackend('other');
    const churnEcho = await startEcho();
    cleanups.push(() => loaded.close(), () => other.close(), () => churnEcho.close());
    portico = await startInProcess({ PORT_RANGE: '24700-24749', HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS) });
    phase.quicBpf = /^quic_bpf on;$/m.test(await readFile(`${portico.stateDir}/nginx.conf`, 'utf8'));
    const api = request(portico.app);
    await api.post('/v1/certificates').send({ id: 'portico', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    await api
      .post('/v1/apps')
      .send({ name: 'loaded', serverNames: [HOST], routes: [{ upstreams: [{ address: `127.0.0.1:${loaded.port}` }] }], tls: { certificate: 'portico', http2: true, http3: true } })
      .expect(201);
    const otherApp = (generation: number) => ({
      serverNames: ['other.test'],
      routes: [{ upstreams: [{ address: `127.0.0.1:${other.port}` }], headers: { 'X-Generation': `g${generation}` } }],
    });
    await api.put('/v1/apps/other').send(otherApp(0)).expect(201);

    browser = await launchChromium([...http3Flags(HOST, HTTPS, PORTICO.cert), `--log-net-log=${netLog}`, '--net-log-capture-mode=Default']);
    const page = await browser.browser.newPage();
    const landing = await page.goto(`https://${HOST}:${HTTPS}/`, { timeout: 15_000 });
    assert.equal(landing?.status(), 200);
    assert.equal(await page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol"), 'h3');

    const [master] = await nginxMasters(portico.stateDir);
    assert.ok(master !== undefined, 'no nginx master');
    const firstWorkers = await currentWorkers(master);
    phase.workersPerGeneration = firstWorkers.length;
    const workerPids = new Set(firstWorkers);

    const start = performance.now();
    const h2Load = driveH2(HTTPS, 'loaded', LOOPS, start);
    cleanups.push(() => h2Load.destroy());
    const h3Load = await driveH3(page, 'loaded', LOOPS);
    // Both clients are flowing before the first reload.
    for (let i = 0; i < 500 && (h2Load.count() < 100 || (await h3Load.count()) < 100); i += 1) await sleep(20);
    const reloadsBefore = await reloadsIn(portico.stateDir);
    let reloadsSoFar = reloadsBefore;
    for (let i = 0; i < APPLIES && performance.now() - start < MAX_APPLYING_MS; i += 1) {
      const fromMs = performance.now() - start;
      const port = CHURN + Math.floor(i / 4);
      let what: string;
      // An app replaced or created while apps exist, and a stream deleted, take the early quit of
      // the old workers; a stream created takes the master's own quit after its 100 ms.
      if (i % 4 === 0) {
        what = 'PUT app other';
        await api.put('/v1/apps/other').send(otherApp(i + 1)).expect(200);
      } else if (i % 4 === 1) {
        what = `POST app extra${i}`;
        await api.post('/v1/apps').send({ name: `extra${i}`, serverNames: [`extra${i}.test`], routes: [{ upstreams: [{ address: `127.0.0.1:${other.port}` }] }] }).expect(201);
      } else if (i % 4 === 2) {
        what = `POST stream ${port}`;
        await api.post('/v1/streams').send({ port, backend: `127.0.0.1:${churnEcho.port}` }).expect(201);
      } else {
        what = `DELETE stream ${port}`;
        await api.delete(`/v1/streams/${port}`).expect(204);
      }
      const toMs = performance.now() - start;
      const reloads = await reloadsIn(portico.stateDir);
      phase.applyWindows.push({ apply: i, what, fromMs: Math.round(fromMs), toMs: Math.round(toMs), reloads: reloads - reloadsSoFar });
      reloadsSoFar = reloads;
      phase.slowestApplyMs = Math.max(phase.slowestApplyMs, Math.round(toMs - fromMs));
      for (const pid of await currentWorkers(master)) workerPids.add(pid);
    }
    phase.reloads = (await reloadsIn(portico.stateDir)) - reloadsBefore;
    const lastWorkers = await currentWorkers(master);
    phase.firstWorkersReplaced = firstWorkers.every((pid) => !lastWorkers.includes(pid));
    phase.workerPids = workerPids.size;
    [phase.h2, phase.h3] = await Promise.all([h2Load.stop(), h3Load.stop()]);
    phase.durationMs = Math.round(performance.now() - start);
    phase.seen = new Map(loaded.paths);
    phase.lastHeader = await api.get('/v1/apps/other').expect(200).then((res) => (res.body as { routes?: Array<{ headers?: Record<string, string> }> }).routes?.[0]?.headers?.['X-Generation']);
    await browser.close();
    browser = undefined;
    phase.quic = await readQuicLog(netLog);
    phase.bpfLog = (await readFile(`${portico.stateDir}/logs/error.log`, 'utf8')).split('\n').filter((line) => /bpf/i.test(line));
  });

  after(async () => {
    try {
      await browser?.close().catch(() => {});
    } finally {
      for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
      await portico?.stop();
      if (process.env.KEEP_NETLOG === undefined) await rm(netLog, { force: true });
    }
  });

  const during = (atMs: number) => phase.applyWindows.find((w) => atMs >= w.fromMs - 50 && atMs <= w.toMs + 50);
  const explain = (f: Failure): string => {
    const apply = during(f.atMs);
    return `${f.path} at ${f.atMs} ms: ${f.reason}${apply ? ` (apply ${apply.apply}, ${apply.what}, ${apply.fromMs}-${apply.toMs} ms)` : ''}`;
  };
  const seenUnder = (prefix: string): Array<[string, number]> => [...phase.seen].filter(([p]) => p.startsWith(prefix));
  const applies = (): number => phase.applyWindows.length;

  it(`at least 20 API changes (up to ${APPLIES}) each reload nginx while the clients run, replacing its workers`, (t) => {
    t.diagnostic(`applies ${applies()}, reloads ${phase.reloads}, worker pids seen ${phase.workerPids} (${phase.workersPerGeneration} a generation), traffic ${phase.durationMs} ms, slowest apply ${phase.slowestApplyMs} ms`);
    const without = phase.applyWindows.filter((w) => w.reloads !== 1);
    for (const w of without) t.diagnostic(`apply ${w.apply} (${w.what}) caused ${w.reloads} reloads`);
    assert.ok(applies() >= 20, `only ${applies()} applies within ${MAX_APPLYING_MS} ms`);
    assert.ok(phase.reloads >= applies(), `${applies()} applies caused ${phase.reloads} reloads`);
    assert.ok(phase.firstWorkersReplaced, 'a worker of the first generation still accepts after every reload');
    // Each reload started new workers; a look after each apply sees most generations.
    assert.ok(phase.workerPids >= phase.workersPerGeneration * 15, `only ${phase.workerPids} worker pids seen across ${phase.reloads} reloads`);
    const lastPut = phase.applyWindows.filter((w) => w.what === 'PUT app other').at(-1);
    assert.equal(phase.lastHeader, `g${(lastPut?.apply ?? 0) + 1}`);
  });

  it(`HTTP/2 over one long-lived connection at a time (${LOOPS} concurrent streams): no request fails; after a GOAWAY only unprocessed requests are retried`, (t) => {
    const h2o = phase.h2 as H2Outcome;
    const requests = h2o.ok + h2o.failures.length;
    const fromReload = h2o.goaways.filter((g) => g.requestsOnSession < 1000);
    const seen = seenUnder('/h2/');
    const twice = seen.filter(([, n]) => n > 1).map(([p, n]) => `${p} x${n}`);
    t.diagnostic(
      `requests ${requests}, failed ${h2o.failures.length}, retried ${JSON.stringify(h2o.retries)}, connections ${h2o.sessions} (ALPN ${[...new Set(h2o.alpn)].join(',')}), ` +
        `GOAWAYs ${h2o.goaways.length} (${fromReload.length} before keepalive_requests' 1000), codes ${[...new Set(h2o.goaways.map((g) => g.code))].join(',')}`,
    );
    t.diagnostic(`backend saw ${seen.length} distinct /h2/ paths, ${twice.length} more than once`);
    for (const e of h2o.sessionErrors.slice(0, 5)) t.diagnostic(`session error: ${e}`);
    for (const f of h2o.failures.slice(0, 10)) t.diagnostic(`failed: ${explain(f)}`);
    assert.ok(h2o.ok >= 1000, `only ${h2o.ok} HTTP/2 requests completed`);
    assert.deepEqual([...new Set(h2o.alpn)], ['h2']);
    assert.deepEqual(h2o.failures.map(explain), []);
    assert.deepEqual(twice, [], 'a retried HTTP/2 request had been processed');
    assert.equal(seen.length, h2o.ok, 'the backend saw an HTTP/2 request that was not answered');
    // The long-lived connections really were ended by reloads, and the clients went on through GOAWAY.
    assert.ok(fromReload.length >= 5, `only ${fromReload.length} GOAWAYs other than keepalive_requests' across ${phase.reloads} reloads`);
  });

  /** HTTP/3 figures both HTTP/3 tests report. */
  const h3Figures = () => {
    const h3o = phase.h3 as H3Outcome;
    const quic = phase.quic as QuicLog;
    const seen = new Map(seenUnder('/h3/'));
    return {
      h3o,
      quic,
      seen,
      /** Failed tries the backend had processed: their answers were lost somewhere. */
      processedThenFailed: h3o.failedTries.filter((f) => (seen.get(f.path) ?? 0) > 0),
      /**
       * Tries the backend processed more often than nginx's answer reached Chromium, leaving out those
       * sent on a connection closed without a GOAWAY (nginx's close of a connection in its handshake,
       * or Chromium's close at a QUIC protocol error): the todo test below holds those.
       */
      unansweredOnTheWire: [...seen]
        .filter(([p, n]) => n > (quic.answered.get(p) ?? 0) && !quic.unansweredWithoutGoaway.some((u) => u.path === p))
        .map(([p, n]) => `${p}: processed ${n}, answered ${quic.answered.get(p) ?? 0}`),
    };
  };

  it(`HTTP/3 from Chromium (${LOOPS} concurrent fetch loops over QUIC): every request answered, a try that failed unprocessed retried; nginx answered every request it processed`, (t) => {
    const { h3o, quic, seen, processedThenFailed, unansweredOnTheWire } = h3Figures();
    const twice = [...seen].filter(([, n]) => n > 1);
    const reasons: Record<string, number> = {};
    for (const f of h3o.failedTries) reasons[f.reason] = (reasons[f.reason] ?? 0) + 1;
    t.diagnostic(
      `requests ${h3o.ok + h3o.failures.length}, failed ${h3o.failures.length}, failed tries retried ${h3o.failedTries.length} ${JSON.stringify(reasons)} ` +
        `(${processedThenFailed.length} of them processed), protocols ${JSON.stringify(h3o.protocols)}`,
    );
    t.diagnostic(`QUIC connections opened ${quic.opened}, closed ${JSON.stringify(quic.closed)}, HTTP/3 GOAWAYs ${quic.goaways}`);
    t.diagnostic(
      `streams refused at a GOAWAY ${quic.refused}, unanswered below a GOAWAY or without one ${quic.unanswered.length}, ` +
        `Chromium's own restarts ${JSON.stringify(quic.restarts)}, requests failed in Chromium ${JSON.stringify(quic.requestErrors)}`,
    );
    t.diagnostic(`backend saw ${seen.size} distinct /h3/ tries, ${twice.length} twice (answered each time, re-sent by Chromium): ${twice.slice(0, 5).map(([p, n]) => `${p} x${n}`).join(', ')}`);
    for (const f of h3o.failedTries.slice(0, 5)) t.diagnostic(`failed try: ${explain(f)}`);
    for (const f of h3o.failures.slice(0, 10)) t.diagnostic(`failed: ${explain(f)}`);
    assert.ok(h3o.ok >= 500, `only ${h3o.ok} HTTP/3 requests completed`);
    assert.deepEqual(Object.keys(h3o.protocols).filter((p) => p !== ''), ['h3'], 'a request went over something other than HTTP/3');
    assert.ok((h3o.protocols[''] ?? 0) <= h3o.failedTries.length);
    assert.deepEqual(h3o.failures.map(explain), []);
    assert.deepEqual(quic.non200, []);
    // The early quit's promise: an old worker told to quit finishes what it took. Every time the
    // backend processed a try, nginx's answer reached Chromium's QUIC stack (whatever Chromium did
    // with it next), and every successful try was processed once.
    assert.deepEqual(unansweredOnTheWire, [], 'the backend processed a try whose answer never reached Chromium');
    assert.equal(seen.size - processedThenFailed.length, h3o.ok, 'the backend saw an HTTP/3 try that was not answered');
    assert.ok(quic.goaways >= 5, `only ${quic.goaways} HTTP/3 GOAWAYs across ${phase.reloads} reloads`);
  });

  /** The failed HTTP/3 tries by what the net log and the backend say became of them. */
  const failedTries = () => {
    const { h3o, quic, seen } = h3Figures();
    const processed = (p: string): number => seen.get(p) ?? 0;
    const answered = (p: string): number => quic.answered.get(p) ?? 0;
    const kinds = {
      /** Chromium failed it unsent: it had bound it to a connection as that connection's GOAWAY arrived. */
      unsent: h3o.failedTries.filter((f) => !quic.sent.has(f.path)),
      /** Every time it was sent, nginx refused it at a GOAWAY (not processed). */
      refused: h3o.failedTries.filter((f) => quic.sent.has(f.path) && quic.refusedPaths.get(f.path) === quic.sent.get(f.path)),
      /**
       * Sent on a connection closed without a GOAWAY: by nginx, its worker told to quit while the
       * connection was in its handshake, or by Chromium at a QUIC protocol error (seen once in CI:
       * "Peer provides more connection IDs than the limit"). Whether nginx had processed it or not,
       * this is nginx's and Chromium's QUIC behaviour, not a reload's; the todo test below holds it.
       */
      withoutGoaway: h3o.failedTries.filter((f) => quic.unansweredWithoutGoaway.some((u) => u.path === f.path) && !(processed(f.path) > 0 && answered(f.path) >= processed(f.path))),
      /** Processed, and nginx's answer reached Chromium, which threw it away at the CONNECTION_CLOSE that followed. */
      discarded: h3o.failedTries.filter((f) => processed(f.path) > 0 && answered(f.path) >= processed(f.path)),
      /** Processed on a connection that got a GOAWAY or stayed open, and nginx's answer never reached Chromium: lost. */
      lost: h3o.failedTries.filter((f) => processed(f.path) > answered(f.path) && !quic.unansweredWithoutGoaway.some((u) => u.path === f.path)),
    };
    const known = Object.values(kinds).flat();
    return { ...kinds, other: h3o.failedTries.filter((f) => !known.includes(f)), processed, answered };
  };

  // Without quic_bpf (measured before it was rendered: lost streams in 8 of 11 runs, 0-12 a run),
  // every generation of workers reads the same reuseport UDP sockets, and an old worker still
  // draining takes packets of connections that are not its own and drops them (an exiting worker
  // refuses new connections; an unknown connection id gets a stateless reset signed with a key the
  // client does not know). Handshakes and requests stall; then, when that worker is told to quit,
  // nginx closes a connection still in its handshake at once, without a GOAWAY ("graceful
  // shutdown": streams not initialized), and may close a request stream whose headers have not come
  // yet although its id is below the GOAWAY it sends. With `quic_bpf on` nginx routes each packet by
  // its connection id to the socket of the worker that owns it (each generation has sockets of its
  // own). Held here: every reload's sockets went into nginx's eBPF map, every stream below a GOAWAY
  // was answered, and no try nginx processed failed without its answer reaching Chromium. Every
  // failed try is accounted for from the net log and the backend (`failedTries`).
  it('HTTP/3 with quic_bpf on: nginx routes by eBPF at every reload, answers every stream below its GOAWAY, and no failed try was processed without its answer reaching Chromium', (t) => {
    const { h3o, quic } = h3Figures();
    if (!phase.quicBpf) {
      t.todo('quic_bpf is off: the probe at start-up found that this host refuses nginx\'s eBPF (QUIC_BPF=auto), and without it nginx drops the QUIC packets of other generations at a reload');
    }
    const kinds = failedTries();
    t.diagnostic(
      `quic_bpf ${phase.quicBpf ? 'on' : 'off'}; nginx's lines about eBPF ${phase.bpfLog.length}; streams unanswered below a GOAWAY ${quic.unansweredBelowGoaway.length}, ` +
        `on connections closed without a GOAWAY ${quic.unansweredWithoutGoaway.length}; connections closed ${JSON.stringify(quic.closed)}`,
    );
    t.diagnostic(
      `failed tries ${h3o.failedTries.length}: never sent ${kinds.unsent.length}, refused at a GOAWAY ${kinds.refused.length}, sent on a connection closed without a GOAWAY ${kinds.withoutGoaway.length}, ` +
        `processed and answered but thrown away by Chromium ${kinds.discarded.length}, processed and never answered ${kinds.lost.length}, other ${kinds.other.length}`,
    );
    for (const line of phase.bpfLog.slice(0, 5)) t.diagnostic(`error log: ${line}`);
    for (const u of quic.unansweredBelowGoaway.slice(0, 8)) t.diagnostic(`unanswered below a GOAWAY: ${u}`);
    for (const f of [...kinds.lost, ...kinds.other].slice(0, 5)) {
      t.diagnostic(`failed try: ${explain(f)} (sent ${quic.sent.get(f.path) ?? 0}, refused ${quic.refusedPaths.get(f.path) ?? 0}, answered ${kinds.answered(f.path)}, processed ${kinds.processed(f.path)})`);
    }
    // Every reload's workers got their sockets into nginx's eBPF socket map.
    if (phase.quicBpf) assert.deepEqual(phase.bpfLog, [], 'nginx logged a failure of its eBPF routing');
    assert.deepEqual(quic.unansweredBelowGoaway, [], 'streams below a GOAWAY that nginx never answered');
    assert.deepEqual(kinds.lost.map(explain), [], 'a failed try had been processed, and nginx\'s answer never reached Chromium');
    assert.deepEqual(kinds.other.map(explain), [], 'a failed try none of the kinds explains');
  });

  // What quic_bpf does not remove (measured with it and without, this test on this machine: 9
  // connections closed in their handshake in 12 runs with it, 27 in 9 runs without; streams left
  // unanswered on them 2, in 1 run of 12, against 16, in 3 runs of 9; processed tries that failed 3,
  // in 2 runs of 12, against 3, in 1 run of 9). The first packets of a new connection carry
  // the client's connection id, not one of nginx's, so the kernel hashes them over the sockets of
  // every generation still alive; a connection that a worker took just before it is told to quit is
  // closed in its handshake, without a GOAWAY, and the requests Chromium had sent on it get no
  // answer (nginx never processed them; Chromium sends them again itself). And Chromium throws away
  // an answer it received just before nginx's CONNECTION_CLOSE; when its own re-send then fails (a
  // new connection closed so), the page sees a processed request fail (`discarded` above).
  it('HTTP/3: no stream is left unanswered on a connection nginx closes in its handshake, and no processed try fails', { todo: 'nginx closes a QUIC connection still in its handshake when its worker is told to quit, with or without quic_bpf; Chromium drops answers that precede a CONNECTION_CLOSE' }, (t) => {
    const { quic, processedThenFailed } = h3Figures();
    for (const u of quic.unansweredWithoutGoaway.slice(0, 8)) t.diagnostic(`unanswered: ${u.text}`);
    for (const f of processedThenFailed.slice(0, 5)) t.diagnostic(`processed, then failed: ${explain(f)} (nginx's answer reached Chromium ${quic.answered.get(f.path) ?? 0} times)`);
    assert.deepEqual(quic.unansweredWithoutGoaway.map((u) => u.text), [], 'streams unanswered on a connection nginx closed in its handshake');
    assert.deepEqual(processedThenFailed.map(explain), [], 'a failed HTTP/3 try had been processed');
  });
});
