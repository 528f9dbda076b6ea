/**
 * Reload and verification: signal the master, then check that nginx really took the new config.
 *
 * `nginx -t` and the reload signal both succeed when another process holds a port the new config
 * listens on; the master then logs `bind() ... failed (98: Address already in use)` and keeps the old
 * config. So success is read from nginx itself: the error log names new workers (or new worker
 * processes appear under the master), and each new listener accepts a TCP connection.
 */
import { childPids, commandLine, processInfo } from '../proc.js';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { PorticoError } from '../errors.js';
import { isUdpPortBound } from '../ports/probe.js';
import { ErrorLogCursor } from './error-log.js';
import { tidyLogLine } from './exec.js';
import { ignoredServers, type ServerClaim } from './ignored-servers.js';

const FAILURE = /\[(emerg|alert|crit)\]/;

/**
 * The master refused the new config (its parse failed, or a port could not be bound) and logged why:
 * it keeps running the old config, so the old files only need to be put back, with no reload.
 */
export class ReloadRefused extends PorticoError {}

/**
 * How long a failed reload may keep the master busy: on `bind() failed` nginx tries again five
 * times, 500 ms apart, before it logs "still could not bind()" and keeps the old config.
 */
const BIND_RETRY_MARK = 'still could not bind()';
/**
 * Errors a reload logs and goes on past, starting the new workers anyway: with `quic_bpf on`, a
 * socket map too full for them ("quic bpf failed to update socket map", then "ngx_quic_bpf_module
 * failed to initialize properly, ignored"). Read between two such lines, the log must not look like a
 * refusal; the workers' start (or, failing it, the timeout) decides.
 */
const PASSED_OVER = /quic bpf|ngx_quic_bpf_module|, ignored/;
/** Longest pause between two looks at a reload's progress; a reload itself takes a few ms. */
const POLL_MAX_MS = 10;

export interface ReloadOptions {
  /** Wait until the old workers stopped accepting (a stream was replaced or removed). */
  drainOld: boolean;
  /**
   * The error log is written at `notice` level or finer, so "start worker process" shows a reload's
   * success. True in managed mode (our main config says so); in external mode the operator's level
   * is unknown and new worker processes under the master are looked for as well.
   */
  logsNotices: boolean;
  /** Servers the new config adds or changes: a warning that nginx ignores one fails the reload (`ignored-servers.ts`). */
  servers: ServerClaim[];
}

/**
 * Sends SIGHUP to the master and waits until it has started new workers on the new config, or has
 * refused it (and finished trying). With `drainOld`, it also waits until the old workers stopped
 * accepting connections: until then a new connection may still reach the old config. Only the
 * master's own error lines count (a worker's `[crit] connect() failed` is about traffic, not the
 * config). Throws NginxRejected with nginx's own error lines. Answers the error lines the master
 * logged and went past, starting the new workers anyway (a bind() that succeeded on a retry; with
 * `quic_bpf on`, a socket map too full for the new workers' sockets: "ngx_quic_bpf_module failed to
 * initialize properly, ignored"), for the caller to warn of.
 */
export async function reloadMaster(pid: number, errorLog: string | undefined, timeoutMs: number, options: ReloadOptions): Promise<string[]> {
  // Follows the log across a rotation: a renamed or truncated log would hide the reload's lines.
  const cursor = await ErrorLogCursor.open(errorLog, pid);
  try {
    return await signalAndWatch(pid, cursor, errorLog !== undefined, timeoutMs, options);
  } finally {
    await cursor.close();
  }
}

async function signalAndWatch(pid: number, cursor: ErrorLogCursor, hasLog: boolean, timeoutMs: number, options: ReloadOptions): Promise<string[]> {
  const logTells = hasLog && options.logsNotices;
  // Scanning /proc costs milliseconds: only when the log cannot tell, or old workers must be waited for.
  const before = !logTells || options.drainOld ? await childPids(pid) : new Set<number>();
  try {
    process.kill(pid, 'SIGHUP');
  } catch (error) {
    throw new PorticoError('NginxUnavailable', `signalling the nginx master (pid ${pid}): ${(error as Error).message}`, {
      cause: error,
    });
  }
  const deadline = Date.now() + timeoutMs;
  const master = ` ${pid}#`;
  let started = false;
  let log: string[] = [];
  for (let delay = 1; Date.now() < deadline; delay = Math.min(delay * 2, POLL_MAX_MS)) {
    await sleep(delay);
    log = (await cursor.lines()).filter((line) => line.includes(master));
    const lastFailure = log.findLastIndex((line) => FAILURE.test(line) && !PASSED_OVER.test(line));
    // New workers after the last error: a bind() that failed at first may succeed on a retry.
    started = log.findLastIndex((line) => line.includes('start worker process')) > lastFailure;
    if (!started && !logTells) started = [...(await childPids(pid))].some((child) => !before.has(child));
    if (started) break;
    if (lastFailure < 0) continue;
    const retrying = (log[lastFailure] as string).includes('bind()') && !log.some((l) => l.includes(BIND_RETRY_MARK));
    if (retrying) continue; // nginx tries bind() five times, 500 ms apart: wait for its verdict
    const failures = [...new Set(log.filter((line) => FAILURE.test(line)).map(tidyLogLine))];
    throw new ReloadRefused('NginxRejected', `nginx refused the new config: ${failures.join('; ')}`, {
      nginx: failures,
      command: `kill -HUP ${pid}`,
    });
  }
  if (!started) {
    throw new PorticoError('NginxRejected', `nginx started no new workers within ${timeoutMs} ms of the reload signal`, {
      command: `kill -HUP ${pid}`,
    });
  }
  // Logged while the master parsed the new config, before it started the workers: they run it.
  const ignored = ignoredServers(log, options.servers).map(tidyLogLine);
  if (ignored.length > 0) {
    throw new PorticoError('NginxRejected', `nginx took the new config but ignores a server of it: ${ignored.join('; ')}`, {
      nginx: ignored,
      command: `kill -HUP ${pid}`,
    });
  }
  if (options.drainOld) {
    await quitOldWorkersEarly(pid, before, deadline);
    await waitForOldWorkers(before, deadline);
  }
  return [...new Set(log.filter((line) => FAILURE.test(line)).map(tidyLogLine))];
}

const WORKER_TITLE = 'nginx: worker process';
/** How long the early quit waits for the new workers to be ready before leaving it to the master. */
const READY_WAIT_MS = 1000;

/**
 * Sends the old workers their graceful quit (SIGQUIT: stop accepting, finish what they hold, exit)
 * as soon as as many new workers as there were old ones are ready, instead of waiting for the
 * master, which sleeps a fixed 100 ms after starting the new workers before it tells the old ones
 * (`ngx_msleep(100)` in nginx's process cycle). Until they quit, old workers keep accepting on the
 * shared listeners with the old config. A new worker is ready once it has retitled itself "worker
 * process": nginx does that after its initialisation, right before its event loop. The listening
 * sockets belong to the master (a reuseport socket per worker slot too), so connections waiting to
 * be accepted stay queued for the new workers. Best effort: if the new workers are not seen ready
 * within `READY_WAIT_MS`, or a signal fails, the master's own quit follows as it always does.
 */
async function quitOldWorkersEarly(master: number, before: Set<number>, deadline: number): Promise<void> {
  const old = (await Promise.all([...before].map(async (p) => ((await commandLine(p)) === WORKER_TITLE ? p : 0)))).filter((p) => p > 0);
  if (old.length === 0) return;
  const until = Math.min(deadline, Date.now() + READY_WAIT_MS);
  for (let delay = 1; ; delay = Math.min(delay * 2, 5)) {
    const fresh = [...(await childPids(master))].filter((p) => !before.has(p));
    const ready = (await Promise.all(fresh.map(commandLine))).filter((title) => title === WORKER_TITLE).length;
    if (ready >= old.length) break;
    if (Date.now() >= until) return;
    await sleep(delay);
  }
  for (const worker of old) {
    // Still the master's child and still an old worker not yet shutting down: never another process.
    const [info, title] = await Promise.all([processInfo(worker), commandLine(worker)]);
    if (info?.ppid !== master || title !== WORKER_TITLE) continue;
    try {
      process.kill(worker, 'SIGQUIT');
    } catch {
      // Gone meanwhile, or not ours to signal: the master's quit follows.
    }
  }
}

/**
 * Waits until none of `workers` still accepts: each is gone, or is no worker (a cache helper), or
 * has retitled itself "worker process is shutting down", which nginx does as it closes its
 * listening sockets on the master's quit signal.
 */
async function waitForOldWorkers(workers: Set<number>, deadline: number): Promise<void> {
  for (let delay = 5; Date.now() < deadline; delay = Math.min(delay * 2, 50)) {
    const titles = await Promise.all([...workers].map((w) => commandLine(w)));
    if (!titles.some((t) => t.startsWith('nginx: worker process') && !t.includes('shutting down'))) return;
    await sleep(delay);
  }
}

/** True when a TCP connection to host:port is accepted within `timeoutMs`. */
export function acceptsConnection(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Polls until host:port accepts (or refuses, `want: false`), for at most `timeoutMs`. */
export async function waitForListener(host: string, port: number, want: boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if ((await acceptsConnection(host, port, Math.max(1, Math.min(500, deadline - Date.now())))) === want) return true;
    if (Date.now() >= deadline) return false;
    await sleep(delay);
  }
}

/**
 * Waits until UDP `port` is bound on `host` (nothing answers a datagram to say so, so the probe is
 * a bind of our own that nginx's socket makes fail); answers false at the timeout.
 */
export async function waitForUdpListener(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if (await isUdpPortBound(port, host)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(delay);
  }
}
