/**
 * An nginx the benchmark runs itself (the floor, the data plane's reference and backend), beside
 * Portico's: its own directory, config, pid and ports. `daemon off` keeps the master our direct
 * child, so the pid we signal and stop is the one we spawned.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { waitUntilServing } from './net.js';
import { isAlive, stopPid } from './processes.js';

const run = promisify(execFile);

/** `nginx -t` of a tree of 5,000 stream files takes seconds on a busy machine. */
const TEST_TIMEOUT_MS = 60_000;

export interface OwnNginx {
  pid: number;
  dir: string;
  /** `nginx -t -q` of the config as it is on disk now; rejects with nginx's message. */
  test(): Promise<void>;
  /** SIGHUP to the master: it re-reads the config and starts new workers. */
  reload(): Promise<void>;
  /** The end of its error log, to explain a failed run. */
  logTail(): Promise<string>;
  stop(): Promise<void>;
}

export interface OwnNginxOptions {
  nginxBin: string;
  dir: string;
  /** The main config's text; it must say `daemon off`, and `pid` and `error_log` inside `dir`. */
  mainConfig: string;
  /** Resolves once this TCP port echoes a byte (the config must proxy it to an echo backend)... */
  servingPort?: number;
  /** ...or once this port accepts HTTP (any answer). */
  httpPort?: number;
  /** Receives the way to stop it as soon as it runs, so an interrupted start-up leaves nothing behind. */
  onSpawn: (stop: () => Promise<void>) => void;
}

const START_TIMEOUT_MS = 15_000;

/** Makes `dir` (logs/, temp/), writes `dir`/nginx.conf and starts nginx on it. */
export async function startOwnNginx(options: OwnNginxOptions): Promise<OwnNginx> {
  const { nginxBin, dir } = options;
  for (const sub of ['logs', 'temp']) await mkdir(`${dir}/${sub}`, { recursive: true });
  const conf = `${dir}/nginx.conf`;
  await writeFile(conf, options.mainConfig);
  const prefix = ['-p', `${dir}/`, '-c', conf];
  // In a session of its own, as Portico starts its nginx (and as a service manager would): with
  // Linux's autogroup scheduling a session is a scheduling group, and an nginx sharing the
  // benchmark's session (and wrk's) was measured spending 2-5% less CPU per request than the same
  // config in a session of its own, which is the gap the data plane would then report.
  const child = spawn(nginxBin, [...prefix, '-e', `${dir}/logs/error.log`], { stdio: 'ignore', detached: true });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${nginxBin}`);
  const stop = (): Promise<void> => stopPid(pid, 'SIGQUIT', 15_000);
  options.onSpawn(stop);
  const logTail = async (): Promise<string> => {
    const text = await readFile(`${dir}/logs/error.log`, 'utf8').catch(() => '');
    return text.split('\n').slice(-40).join('\n');
  };
  try {
    if (options.servingPort !== undefined) await waitUntilServing(options.servingPort, START_TIMEOUT_MS);
    if (options.httpPort !== undefined) await waitUntilHttp(options.httpPort, START_TIMEOUT_MS);
  } catch (error) {
    const tail = await logTail();
    await stop();
    throw new Error(`nginx in ${dir} did not serve: ${(error as Error).message}\n${tail}`);
  }

  return {
    pid,
    dir,
    async test() {
      await run(nginxBin, [...prefix, '-t', '-q'], { timeout: TEST_TIMEOUT_MS });
    },
    async reload() {
      if (!(await isAlive(pid))) throw new Error(`nginx ${pid} (${dir}) is gone`);
      process.kill(pid, 'SIGHUP');
    },
    logTail,
    stop,
  };
}

/** Polls until an HTTP GET / on 127.0.0.1:`port` gets any answer. */
async function waitUntilHttp(port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) }).then(
      (res) => res.arrayBuffer().then(() => true),
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`port ${port} answered no HTTP within ${timeoutMs} ms`);
}
