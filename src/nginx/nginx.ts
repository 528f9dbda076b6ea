/**
 * Nginx: what the apply pipeline asks of nginx — test a config, reload, verify — whichever process
 * (managed or external) runs it.
 */
import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { PorticoError } from '../errors.js';
import { describeBuild, testConfig, type NginxBuild, type NginxCommand, type TestResult } from './exec.js';
import type { NginxProcess } from './process.js';
import { ErrorLogCursor } from './error-log.js';
import type { ServerClaim } from './ignored-servers.js';
import { reloadMaster, waitForListener, waitForUdpListener } from './verify.js';

/** A listener to check after a reload: `host` is where to connect (127.0.0.1 for a wildcard). */
export interface Listener {
  host: string;
  port: number;
  /** A UDP listener: checked by being bound, since nothing answers a datagram to say so. */
  udp?: boolean;
}

/** How often a change waiting for a restarting master looks for it. */
const RESTART_POLL_MS = 25;

/** How long a new listener may take to accept after nginx started its new workers. */
const LISTENER_TIMEOUT_MS = 2000;

export interface ReloadPlan {
  /** Listeners the new config adds: each must accept a connection. */
  opened: Listener[];
  /** Listeners the new config drops: each should refuse soon after (a warning if not). */
  closed: Listener[];
  /** Wait until old workers stop accepting: a stream was replaced or removed. */
  drainOld?: boolean;
  /** The servers the new config adds or changes: nginx ignoring one of them (or another for one of them) fails the reload. */
  servers?: ServerClaim[];
  /**
   * The reload puts back the previous tree after a change failed: counted, but it leaves the last
   * reload unsuccessful (the change it undoes was not applied) and is not the last success.
   */
  restore?: boolean;
}

/** What a reopen of the logs did: the master signalled, and whether it was seen writing the error log's path again. */
export interface LogsReopened {
  nginxPid: number;
  errorLog: string | null;
  /** False when Portico could not see it happen (no error log to read, or not within NGINX_TIMEOUT_MS). */
  confirmed: boolean;
}

/** True when the master's error log (its stderr, fd 2) is the file at `errorLog` now. */
async function writesTo(pid: number, errorLog: string): Promise<boolean> {
  const [current, written] = await Promise.all([stat(errorLog).catch(() => undefined), stat(`/proc/${pid}/fd/2`).catch(() => undefined)]);
  if (current === undefined) return false;
  // Unreadable (another user's master): only the log line can tell.
  if (written === undefined || !written.isFile()) return true;
  return current.dev === written.dev && current.ino === written.ino;
}

/** What became of the reloads asked of nginx (`Nginx.reloads`). */
export interface ReloadCounts {
  /** Reloads signalled (a master was there to signal). */
  total: number;
  /** Of them, refused by nginx or not verified (a listener that does not accept). */
  failed: number;
  /** Whether the last one succeeded (true before the first). */
  lastOk: boolean;
  /** When the last successful one was verified (ms since the epoch; 0: none yet). */
  lastSuccessAt: number;
}

export class Nginx {
  private build: NginxBuild | undefined;
  /** When the last reload was signalled (ms since the epoch; 0: never by this process). */
  lastReloadAt = 0;
  /** The reloads this process asked for and how they ended (rollbacks' reloads too), for /metrics. */
  readonly reloads: ReloadCounts = { total: 0, failed: 0, lastOk: true, lastSuccessAt: 0 };
  private reopenRunning: Promise<LogsReopened> | undefined;
  private reopenNext: Promise<LogsReopened> | undefined;
  /** Called once nginx reopened its logs at Portico's request (the traffic reader opens the new files at once). */
  private readonly reopenListeners = new Set<() => Promise<void>>();

  constructor(
    readonly cmd: NginxCommand,
    readonly process: NginxProcess,
    private readonly errorLog: string | undefined,
    private readonly log: Logger,
  ) {}

  /** `nginx -t` on `conf` (a staged tree's or an isolated file's main config). */
  test(conf: string): Promise<TestResult> {
    return testConfig(this.cmd, conf);
  }

  /** Version and modules of the nginx binary, read once. */
  async describe(): Promise<NginxBuild> {
    this.build ??= await describeBuild(this.cmd.bin, this.cmd.timeoutMs);
    return this.build;
  }

  /** True when a master is running. */
  async running(): Promise<boolean> {
    return (await this.process.masterPid()) !== undefined;
  }

  /**
   * The running master's pid; NginxUnavailable when there is none. A managed master that died is
   * being restarted (with backoff): a change waits for it, up to NGINX_TIMEOUT_MS, rather than fail.
   * An external master is someone else's to restart: no wait.
   */
  async requireMaster(): Promise<number> {
    let pid = await this.process.masterPid();
    const deadline = Date.now() + this.cmd.timeoutMs;
    while (pid === undefined && this.process.mode === 'managed' && Date.now() < deadline) {
      await sleep(RESTART_POLL_MS);
      pid = await this.process.masterPid();
    }
    if (pid === undefined) {
      throw new PorticoError(
        'NginxUnavailable',
        this.process.mode === 'managed'
          ? 'nginx is not running (it is being restarted)'
          : 'nginx is not running: no live master in the pid file',
      );
    }
    return pid;
  }

  /**
   * Asks the running master to reopen its log files (SIGUSR1), as a rotation that renamed them
   * needs: nginx writes to the renamed files until then. Answers once the master said so in its log
   * ("reopening logs", logged at notice level, as the managed config has it) and writes its error log
   * at the path again; or, after NGINX_TIMEOUT_MS, that it could not see it happen.
   */
  reopenLogs(): Promise<LogsReopened> {
    // Callers that come while one reopen runs share the next one: each answer is of a USR1 sent
    // after its request, and a flood of requests sends two signals, not one each.
    if (this.reopenNext !== undefined) return this.reopenNext;
    if (this.reopenRunning === undefined) return this.startReopen();
    this.reopenNext = this.reopenRunning
      .catch(() => undefined)
      .then(() => {
        this.reopenNext = undefined;
        return this.startReopen();
      });
    return this.reopenNext;
  }

  /** Calls `listener` after each reopen of the logs Portico asked for; answers the function that stops it. */
  onLogsReopened(listener: () => Promise<void>): () => void {
    this.reopenListeners.add(listener);
    return () => {
      this.reopenListeners.delete(listener);
    };
  }

  private startReopen(): Promise<LogsReopened> {
    const running = this.signalReopen()
      .then(async (answer) => {
        for (const listener of [...this.reopenListeners]) await listener().catch(() => undefined);
        return answer;
      })
      .finally(() => {
      if (this.reopenRunning === running) this.reopenRunning = undefined;
    });
    this.reopenRunning = running;
    return running;
  }

  private async signalReopen(): Promise<LogsReopened> {
    const pid = await this.requireMaster();
    const logsNotices = this.process.mode === 'managed';
    const cursor = await ErrorLogCursor.open(this.errorLog, pid);
    try {
      try {
        process.kill(pid, 'SIGUSR1');
      } catch (error) {
        throw new PorticoError('NginxUnavailable', `signalling the nginx master (pid ${pid}): ${(error as Error).message}`, { cause: error });
      }
      const errorLog = this.errorLog;
      if (errorLog === undefined) return { nginxPid: pid, errorLog: null, confirmed: false };
      const deadline = Date.now() + this.cmd.timeoutMs;
      for (let delay = 1; Date.now() < deadline; delay = Math.min(delay * 2, 20)) {
        await sleep(delay);
        const said = !logsNotices || (await cursor.lines()).some((line) => line.includes(` ${pid}#`) && line.endsWith('reopening logs'));
        if (said && (await writesTo(pid, errorLog))) {
          this.log.info({ nginxPid: pid, errorLog }, 'nginx reopened its logs');
          return { nginxPid: pid, errorLog, confirmed: true };
        }
      }
      this.log.warn({ nginxPid: pid, errorLog }, `nginx was asked to reopen its logs, but was not seen doing so within ${this.cmd.timeoutMs} ms`);
      return { nginxPid: pid, errorLog, confirmed: false };
    } finally {
      await cursor.close();
    }
  }

  /**
   * Reloads the running master and verifies the outcome: new workers started without an error in
   * the log, every opened listener accepts. Throws NginxRejected (with nginx's lines) otherwise.
   */
  async reload(plan: ReloadPlan): Promise<void> {
    const pid = await this.requireMaster();
    this.lastReloadAt = Date.now();
    this.reloads.total += 1;
    try {
      await this.reloadAndVerify(pid, plan);
    } catch (error) {
      this.reloads.failed += 1;
      this.reloads.lastOk = false;
      throw error;
    }
    if (plan.restore === true) return;
    this.reloads.lastOk = true;
    this.reloads.lastSuccessAt = Date.now();
  }

  private async reloadAndVerify(pid: number, plan: ReloadPlan): Promise<void> {
    const survived = await reloadMaster(pid, this.errorLog, this.cmd.timeoutMs, {
      drainOld: plan.drainOld ?? plan.closed.length > 0,
      logsNotices: this.process.mode === 'managed',
      servers: plan.servers ?? [],
    });
    // The new config runs, but not quite as written (say, quic_bpf's routing left out for the new
    // workers, until a reload after the old ones have gone): said, not refused.
    if (survived.length > 0) this.log.warn({ nginxPid: pid, nginx: survived }, `nginx took the new config but logged errors while loading it: ${survived.join('; ')}`);
    const [opened, closed] = await Promise.all([
      Promise.all(
        plan.opened.map((l) =>
          l.udp === true ? waitForUdpListener(l.host, l.port, LISTENER_TIMEOUT_MS) : waitForListener(l.host, l.port, true, LISTENER_TIMEOUT_MS),
        ),
      ),
      // A UDP socket cannot be seen closing from outside without racing nginx for the port.
      Promise.all(plan.closed.map((l) => (l.udp === true ? true : waitForListener(l.host, l.port, false, LISTENER_TIMEOUT_MS)))),
    ]);
    const dead = plan.opened.filter((_, i) => !opened[i]).map((l) => l.port);
    if (dead.length > 0) {
      throw new PorticoError('NginxRejected', `nginx reloaded but port ${dead.join(', ')} does not accept connections`);
    }
    const lingering = plan.closed.filter((_, i) => !closed[i]).map((l) => l.port);
    if (lingering.length > 0) this.log.warn({ ports: lingering }, 'removed listeners still accept connections after the reload');
  }
}
