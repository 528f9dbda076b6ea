/**
 * The nginx of external mode's ladder: one the benchmark starts as an operator would (daemonized,
 * from its own nginx.conf that includes a stream directory, with a pid file), and that Portico,
 * started beside it with NGINX_MODE=external, did not start. Stopped by the pid in its pid file.
 *
 * Its config is a sidecar's neighbour's: a stream block including the shared directory and nothing
 * else (no http block), at notice level so that each SIGHUP is counted in its error log; worker
 * count and descriptor limits as Portico's managed config would size them for the same range.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { isNginxMaster, stopPid } from './processes.js';

const run = promisify(execFile);

export interface OperatorNginx {
  /** The folder holding everything: nginx.conf, stream.d/, http.d/ (not included), logs/, nginx.pid. */
  root: string;
  conf: string;
  /** The text of `conf`: the external floor runs on a copy of it. */
  confText: string;
  pidFile: string;
  errorLog: string;
  streamDir: string;
  httpDir: string;
  pid: number;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;

/** Listening sockets per worker plus room for connections, as Portico's `sizeWorkers` reasons. */
function operatorConfig(root: string, listeners: number): string {
  const connections = listeners + 1024;
  return [
    '# The operator\'s nginx (written by bench/operator-nginx.ts): Portico manages only stream.d/.',
    'worker_processes auto;',
    `pid ${root}/nginx.pid;`,
    `error_log ${root}/logs/error.log notice;`,
    `worker_rlimit_nofile ${connections * 2 + 64};`,
    `events { worker_connections ${connections}; }`,
    'stream {',
    '    include stream.d/*.conf;',
    '}',
    '',
  ].join('\n');
}

/**
 * Writes the operator's config under `root` for up to `listeners` listening sockets and starts nginx
 * daemonized on it (`nginx` forks the master and exits); answers once the master's pid is in its pid
 * file. `onSpawn` receives the way to stop it as soon as it is known.
 */
export async function startOperatorNginx(options: {
  nginxBin: string;
  root: string;
  listeners: number;
  onSpawn: (stop: () => Promise<void>) => void;
}): Promise<OperatorNginx> {
  const { nginxBin, root } = options;
  const paths = {
    conf: `${root}/nginx.conf`,
    pidFile: `${root}/nginx.pid`,
    errorLog: `${root}/logs/error.log`,
    streamDir: `${root}/stream.d`,
    httpDir: `${root}/http.d`,
  };
  for (const dir of [paths.streamDir, paths.httpDir, `${root}/logs`]) await mkdir(dir, { recursive: true });
  const confText = operatorConfig(root, options.listeners);
  await writeFile(paths.conf, confText);
  // Registered before the start: a daemon that came up while we were interrupted is still found.
  let known: number | undefined;
  const stop = async (): Promise<void> => {
    const pid = known ?? (await readPid(paths.pidFile));
    if (pid !== undefined && (await isNginxMaster(pid))) await stopPid(pid, 'SIGQUIT', 15_000);
  };
  options.onSpawn(stop);
  await run(nginxBin, ['-p', `${root}/`, '-c', paths.conf, '-e', paths.errorLog], { timeout: START_TIMEOUT_MS });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (known === undefined && Date.now() < deadline) {
    const pid = await readPid(paths.pidFile);
    if (pid !== undefined && (await isNginxMaster(pid))) known = pid;
    else await sleep(10);
  }
  if (known === undefined) throw new Error(`the operator's nginx in ${root} wrote no live pid within ${START_TIMEOUT_MS} ms`);
  return { root, confText, pid: known, stop, ...paths };
}

async function readPid(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}
