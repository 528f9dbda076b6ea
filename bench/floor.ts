/**
 * The floor: what one change costs with nothing but nginx. A separate nginx, started here with its
 * own prefix, runs a hand-written config shaped like Portico's managed main config (same event and
 * worker sizing, one stream file included from a directory). One change is: write the stream file
 * with a new listen port, `nginx -t`, SIGHUP to the master, wait until the port serves. Whatever
 * Portico spends beyond this is its own overhead.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { LOOPBACK, waitUntilServing } from './net.js';
import { isAlive, stopPid } from './processes.js';
import { since } from './stats.js';

const run = promisify(execFile);

export interface FloorSample {
  /** Writing the stream file and `nginx -t -q`. */
  testMs: number;
  /** From SIGHUP until the new port echoes a byte. */
  reloadMs: number;
  totalMs: number;
}

export interface FloorNginx {
  pid: number;
  /** One change: the stream now listens on `port` (which must be free). */
  change(port: number): Promise<FloorSample>;
  /** The end of its error log, to explain a failed run. */
  logTail(): Promise<string>;
  stop(): Promise<void>;
}

const SERVE_TIMEOUT_MS = 5000;

/** Portico's main template with its sizing for a 200-port range (see render/main.ts `sizeWorkers`). */
function mainConfig(dir: string, listeners: number): string {
  const workerConnections = listeners + 4096;
  return `daemon off;
master_process on;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log notice;
worker_rlimit_nofile ${workerConnections * 2 + 64};
worker_shutdown_timeout 30s;
events { worker_connections ${workerConnections}; }
stream { include ${dir}/stream.d/*.conf; }
http {
    access_log ${dir}/logs/access.log;
    client_body_temp_path ${dir}/temp/client_body;
    proxy_temp_path ${dir}/temp/proxy;
    fastcgi_temp_path ${dir}/temp/fastcgi;
    uwsgi_temp_path ${dir}/temp/uwsgi;
    scgi_temp_path ${dir}/temp/scgi;
}
`;
}

function streamConfig(port: number, backend: number): string {
  return `server {\n    listen ${port};\n    proxy_pass ${LOOPBACK}:${backend};\n}\n`;
}

/**
 * Starts the floor nginx in `dir` serving `firstPort`; resolves once that port echoes. `onSpawn`
 * receives the way to stop it as soon as it runs, so an interrupted start-up leaves nothing behind.
 */
export async function startFloor(options: {
  nginxBin: string;
  dir: string;
  echoPort: number;
  firstPort: number;
  listeners: number;
  onSpawn: (stop: () => Promise<void>) => void;
}): Promise<FloorNginx> {
  const { nginxBin, dir, echoPort } = options;
  for (const sub of ['logs', 'temp', 'stream.d']) await mkdir(`${dir}/${sub}`, { recursive: true });
  const conf = `${dir}/nginx.conf`;
  const streamFile = `${dir}/stream.d/floor.conf`;
  await writeFile(conf, mainConfig(dir, options.listeners));
  await writeFile(streamFile, streamConfig(options.firstPort, echoPort));
  const prefix = ['-p', `${dir}/`, '-c', conf];
  // `daemon off` keeps the master our direct child, so its pid is the one we signal and stop.
  const child = spawn(nginxBin, [...prefix, '-e', `${dir}/logs/error.log`], { stdio: 'ignore' });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${nginxBin}`);
  const stop = (): Promise<void> => stopPid(pid, 'SIGQUIT', 10_000);
  options.onSpawn(stop);
  try {
    await waitUntilServing(options.firstPort, SERVE_TIMEOUT_MS);
  } catch (error) {
    await stop();
    throw new Error(`floor nginx did not serve: ${(error as Error).message}`);
  }

  return {
    pid,
    async change(port) {
      if (!(await isAlive(pid))) throw new Error(`floor nginx (pid ${pid}) is gone`);
      const start = performance.now();
      await writeFile(streamFile, streamConfig(port, echoPort));
      await run(nginxBin, [...prefix, '-t', '-q'], { timeout: 10_000 });
      const tested = performance.now();
      process.kill(pid, 'SIGHUP');
      const served = await waitUntilServing(port, SERVE_TIMEOUT_MS);
      return { testMs: tested - start, reloadMs: served - tested, totalMs: since(start) };
    },
    async logTail() {
      const text = await readFile(`${dir}/logs/error.log`, 'utf8').catch(() => '');
      return text.split('\n').slice(-40).join('\n');
    },
    stop,
  };
}
