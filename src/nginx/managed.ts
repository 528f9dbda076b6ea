/**
 * ManagedNginx: Portico's own nginx master, started, supervised and stopped under STATE_DIR.
 *
 * The master runs with `daemon off` in its own session, so it outlives Portico. A Portico that
 * starts while a master from the pid file is alive adopts it instead of starting a second one. A
 * master that dies is restarted with backoff; the orphaned workers of a master killed outright still
 * hold its listening sockets, so they are asked to quit (they close those at once and finish their
 * connections) before the new master binds.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { PorticoError } from '../errors.js';
import { spawnMaster, type NginxCommand } from './exec.js';
import { groupMembers, isAlive } from '../proc.js';
import { masterFromPidFile } from './master.js';
import { openClientConnections } from './connections.js';
import type { NginxEventBody } from '../events/feed.js';
import type { NginxProcess } from './process.js';
import { ErrorLogCursor } from './error-log.js';

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** A master that ran this long before dying is restarted without delay growth. */
const STABLE_AFTER_MS = 10_000;
const WATCH_INTERVAL_MS = 200;

export interface ManagedOptions {
  cmd: NginxCommand;
  conf: string;
  pidFile: string;
  errorLog: string;
  /** How long a graceful stop may take before the rest is killed. */
  stopTimeoutMs: number;
  /** WORKER_SHUTDOWN_TIMEOUT as configured (`30s`): how long nginx lets a connection finish; for the log. */
  workerShutdownTimeout: string;
  log: Logger;
  /** Told when the master dies and when it is restarted (the event feed). */
  onEvent?: (event: NginxEventBody) => void;
}

export class ManagedNginx implements NginxProcess {
  readonly mode = 'managed' as const;
  restarts = 0;
  adopted = false;
  private pid: number | undefined;
  private startedAt = 0;
  private backoffMs = BACKOFF_FIRST_MS;
  private stopping = false;
  /** Restarts are armed only once `start` succeeded, and disarmed by `stop`. */
  private supervising = false;
  private spawning: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watch: NodeJS.Timeout | undefined;
  private readonly pgids = new Set<number>();

  constructor(private readonly options: ManagedOptions) {}

  /**
   * The master's pid once it has started its workers. A master being started is not yet one to
   * signal: nginx sets its signal handlers only after reading its config, and a SIGHUP before that
   * kills it (seen: a change waiting for a restarted master reloaded it within milliseconds of its
   * spawn, and the loaded machine had not got that far).
   */
  async masterPid(): Promise<number | undefined> {
    if (this.pid === undefined || this.spawning !== undefined) return undefined;
    return (await isAlive(this.pid)) ? this.pid : undefined;
  }

  /** Adopts the master named by the pid file if it is alive, else starts one. */
  async start(): Promise<void> {
    this.stopping = false;
    const running = await masterFromPidFile(this.options.pidFile, this.options.conf);
    if (running !== undefined) {
      this.pid = running;
      this.adopted = true;
      this.pgids.add(running);
      this.options.log.info({ nginxPid: running }, 'adopted the running nginx master');
      this.watchAdopted(running);
    } else {
      const stale = Number((await readFile(this.options.pidFile, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(stale) && stale > 1) this.pgids.add(stale);
      await this.spawn();
    }
    this.supervising = true;
  }

  /** Starts a master; one spawn at a time, so that `stop` can wait for it. */
  private spawn(): Promise<void> {
    this.spawning ??= this.spawnOnce().finally(() => {
      this.spawning = undefined;
    });
    return this.spawning;
  }

  private async spawnOnce(): Promise<void> {
    await this.quitOrphans();
    const cursor = await ErrorLogCursor.open(this.options.errorLog);
    try {
      await this.startAndWatch(cursor);
    } finally {
      await cursor.close();
    }
  }

  /** Spawns the master and waits until it has started its workers (as `cursor` reads them in the log). */
  private async startAndWatch(cursor: ErrorLogCursor): Promise<void> {
    const { cmd, conf, errorLog, pidFile } = this.options;
    const subprocess = spawnMaster(cmd, conf, errorLog);
    const pid = subprocess.pid;
    if (pid === undefined) throw new PorticoError('NginxUnavailable', `cannot start ${cmd.bin}`);
    let exited = false;
    void subprocess.then((result) => {
      exited = true;
      this.onExit(pid, `exit code ${result.exitCode ?? '-'}, signal ${result.signal ?? '-'}`);
    });
    this.pid = pid;
    this.adopted = false;
    this.pgids.add(pid);
    this.startedAt = Date.now();
    const deadline = Date.now() + cmd.timeoutMs;
    while (Date.now() < deadline) {
      await sleep(10);
      const log = await cursor.lines();
      if (exited) {
        const errors = log.filter((line) => /\[(emerg|alert|crit)\]/.test(line));
        throw new PorticoError('NginxUnavailable', `nginx exited at start: ${errors.join('; ') || 'no message'}`, {
          nginx: errors,
        });
      }
      const written = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (written === pid && log.some((line) => line.includes('start worker process'))) {
        this.options.log.info({ nginxPid: pid }, 'nginx master started');
        return;
      }
    }
    // Not started in time: do not leave it behind to race the next attempt.
    for (const member of await groupMembers(pid, 'nginx: ')) process.kill(member, 'SIGKILL');
    throw new PorticoError('NginxUnavailable', `nginx did not start its workers within ${cmd.timeoutMs} ms`);
  }

  /** Asks workers left by dead masters to quit: they hold listening sockets the new master needs. */
  private async quitOrphans(): Promise<void> {
    for (const pgid of this.pgids) {
      const pids = await groupMembers(pgid, 'nginx: ');
      for (const pid of pids) process.kill(pid, 'SIGQUIT');
      if (pids.length > 0) this.options.log.warn({ pgid, pids }, 'asked orphaned nginx workers to quit');
      else this.pgids.delete(pgid);
    }
  }

  private onExit(pid: number, how: string): void {
    if (pid !== this.pid) return;
    this.pid = undefined;
    if (this.stopping || !this.supervising) return;
    const ranMs = Date.now() - this.startedAt;
    if (ranMs >= STABLE_AFTER_MS) this.backoffMs = BACKOFF_FIRST_MS;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.options.log.error({ nginxPid: pid, how, restartInMs: delay }, 'nginx master exited; restarting');
    this.options.onEvent?.({ type: 'nginx', what: 'exited', pid, detail: how, restartInMs: delay });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopping) return;
      this.restarts += 1;
      this.spawn().then(
        () => this.options.onEvent?.({ type: 'nginx', what: 'restarted', ...(this.pid !== undefined && { pid: this.pid }) }),
        (error: unknown) => {
          this.options.log.error({ err: error }, 'restarting nginx failed');
          this.options.onEvent?.({ type: 'nginx', what: 'restart-failed', detail: error instanceof Error ? error.message : String(error) });
          this.onExit(this.pid ?? -1, 'failed to start');
        },
      );
    }, delay);
  }

  private watchAdopted(pid: number): void {
    const timer = setInterval(() => {
      void isAlive(pid).then((alive) => {
        if (alive || this.pid !== pid) return;
        clearInterval(timer);
        this.onExit(pid, 'the adopted master is gone');
      });
    }, WATCH_INTERVAL_MS);
    timer.unref();
    this.watch = timer;
  }

  /** Stops supervising, leaving the master as it is (a start-up that failed after adopting one). */
  release(): void {
    this.supervising = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.watch !== undefined) clearInterval(this.watch);
  }

  /** Stops nginx gracefully (`quit`): connections finish, bounded by `stopTimeoutMs`, then the rest is killed. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.release();
    // A master being started now would appear after we looked: let it finish, then quit it.
    await this.spawning?.catch(() => undefined);
    const pid = this.pid;
    if (pid === undefined || !(await isAlive(pid))) return;
    // Counted before the quit: a quitting worker closes its listeners at once, and they tell clients' connections apart.
    const open = await openClientConnections(await groupMembers(pid, 'nginx: '));
    const startedAt = Date.now();
    process.kill(pid, 'SIGQUIT');
    this.logWaiting(pid, open);
    const deadline = startedAt + this.options.stopTimeoutMs;
    while (Date.now() < deadline && (await isAlive(pid))) await sleep(20);
    if (await isAlive(pid)) {
      this.options.log.warn({ nginxPid: pid }, 'nginx did not quit in time; killing it');
      for (const member of await groupMembers(pid, 'nginx: ')) process.kill(member, 'SIGKILL');
    } else {
      this.options.log.info({ nginxPid: pid, ms: Date.now() - startedAt }, 'nginx stopped');
    }
    this.pid = undefined;
  }

  /** Says what a stop waits for: a quit lets every open connection finish, up to worker_shutdown_timeout. */
  private logWaiting(pid: number, open: number | undefined): void {
    const { workerShutdownTimeout, stopTimeoutMs } = this.options;
    const what = open === undefined ? 'their open connections' : `${open} open client connection${open === 1 ? '' : 's'}`;
    this.options.log.info(
      { nginxPid: pid, openConnections: open, workerShutdownTimeout, killAfterMs: stopTimeoutMs },
      `stopping nginx: waiting for its workers to finish ${what} (up to ${workerShutdownTimeout}, WORKER_SHUTDOWN_TIMEOUT)`,
    );
  }
}
