/**
 * A real Portico, started the way an operator would (through bin/portico, as `make start`, `npm start`
 * and the container run it; `make bench` builds it first) in managed mode, talked to only through its
 * HTTP API: the benchmark measures the service, not its modules. With `external`, it runs beside an
 * nginx the benchmark started itself (`operator-nginx.ts`), as a sidecar would (NGINX_MODE=external). Not through tsx: its loader alone
 * adds some 35 MB to the resident memory that the benchmark reports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from './http.js';
import { isNginxMaster, stopPid, waitForExit } from './processes.js';

export interface PorticoOptions {
  repoDir: string;
  nginxBin: string;
  stateDir: string;
  portRange: { from: number; to: number };
  bindPort: number;
  /** The apps' shared listeners (HTTP_PORT, HTTPS_PORT): kept away from the defaults others use. */
  httpPort: number;
  httpsPort: number;
  /** Options for node itself (PORTICO_NODE_FLAGS); absent: the launcher's own, as `make start` runs it. */
  nodeArgs?: string[];
  /** NGINX_MODE=external beside this operator's nginx; absent: managed mode. */
  external?: ExternalNginxPaths;
  /** More settings, over the ones above (a fleet node's STORE=etcd and the rest, bench/fleet.ts). */
  env?: Record<string, string>;
}

/** What a sidecar is told about the operator's nginx (NGINX_CONF, NGINX_PID_FILE, NGINX_ERROR_LOG, STREAM_CONFIG_PATH). */
export interface ExternalNginxPaths {
  conf: string;
  pidFile: string;
  errorLog: string;
  streamDir: string;
  /** HTTP_CONFIG_PATH: a folder of the benchmark's (the operator's config includes no apps). */
  httpDir: string;
}

export interface RunningPortico {
  pid: number;
  apiPort: number;
  /** HTTP_PORT: where its apps are served. */
  httpPort: number;
  stateDir: string;
  /** nginx's error log (managed, or the operator's), where reloads are counted. */
  errorLog: string;
  /** Resolves once GET /healthz answers; rejects (quoting Portico's output) if it exits or times out. */
  ready(): Promise<void>;
  /** The managed nginx master's pid (known once `ready()` resolved; never in external mode). */
  nginxPid(): number;
  /** The last lines Portico wrote (warnings and errors), for diagnosing a failed run. */
  output(): string;
  /** Stops Portico (SIGTERM: it quits its nginx) and, should it fail to, that nginx too. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const OUTPUT_KEEP_CHARS = 20_000;

/**
 * Spawns Portico and answers at once, so the caller can register `stop` before waiting for
 * `ready()`: a benchmark interrupted during start-up must not leave Portico behind.
 */
/** node's flags as bin/portico runs Portico: its `node_flags='…'` line, their one definition. */
export async function launcherNodeFlags(repoDir: string): Promise<string[]> {
  const line = /^node_flags='(.*)'$/m.exec(await readFile(`${repoDir}/bin/portico`, 'utf8'));
  if (line === null) throw new Error('bin/portico defines no node_flags');
  return (line[1] as string).split(/\s+/).filter((flag) => flag !== '');
}

export function spawnPortico(options: PorticoOptions): RunningPortico {
  const { repoDir, nginxBin, stateDir, portRange, bindPort } = options;
  // The launcher execs node, so the pid spawned is Portico's own (the one measured and signalled).
  const { PORTICO_NODE_FLAGS: _inherited, ...env } = process.env;
  const child = spawn(`${repoDir}/bin/portico`, [], {
    cwd: repoDir,
    env: {
      ...env,
      ...(options.nodeArgs === undefined ? {} : { PORTICO_NODE_FLAGS: options.nodeArgs.join(' ') }),
      ...modeEnv(options.external),
      NGINX_BIN: nginxBin,
      STATE_DIR: stateDir,
      PORT_RANGE: `${portRange.from}-${portRange.to}`,
      BIND_ADDRESS: '127.0.0.1',
      BIND_PORT: String(bindPort),
      HTTP_PORT: String(options.httpPort),
      HTTPS_PORT: String(options.httpsPort),
      // Info level logs every request; that cost is not what this benchmark is about.
      LOG_LEVEL: 'warn',
      // The fills keep up to FILL_CONCURRENCY (500) requests in flight from this one client.
      API_MAX_CONNECTIONS_PER_CLIENT: '1024',
      // No stub_status listener: Porticos run side by side here (parallel-probe), and its default port (8081) is one for all.
      NGINX_STATUS_PORT: 'off',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn portico');
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // The operator's nginx is not Portico's to stop: only a managed one is looked for.
  const pidFile = options.external === undefined ? `${stateDir}/nginx.pid` : '';
  let nginxPid: number | undefined;

  return {
    pid,
    apiPort: bindPort,
    httpPort: options.httpPort,
    stateDir,
    errorLog: options.external?.errorLog ?? `${stateDir}/logs/error.log`,
    output: () => output,
    nginxPid() {
      if (nginxPid === undefined) throw new Error('portico is not ready: its nginx pid is unknown');
      return nginxPid;
    },
    async ready() {
      await waitForHealth(child, bindPort).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\n--- portico output ---\n${output}`);
      });
      // Remembered now: nginx removes its pid file when it exits, and we may need the pid after.
      nginxPid = await readPid(pidFile);
    },
    async stop() {
      const managed = nginxPid ?? (await readPid(pidFile));
      await stopPid(pid, 'SIGTERM', 20_000);
      await waitForChild(child);
      // Portico runs nginx in its own session, so nginx outlives a Portico that died uncleanly.
      if (managed !== undefined && (await isNginxMaster(managed))) {
        process.stderr.write(`bench: portico left nginx ${managed} running; quitting it\n`);
        await stopPid(managed, 'SIGQUIT', 10_000);
      }
    },
  };
}

function modeEnv(external: ExternalNginxPaths | undefined): Record<string, string> {
  if (external === undefined) return { NGINX_MODE: 'managed' };
  return {
    NGINX_MODE: 'external',
    NGINX_CONF: external.conf,
    NGINX_PID_FILE: external.pidFile,
    NGINX_ERROR_LOG: external.errorLog,
    STREAM_CONFIG_PATH: external.streamDir,
    HTTP_CONFIG_PATH: external.httpDir,
  };
}

async function readPid(file: string): Promise<number | undefined> {
  if (file === '') return undefined;
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** Polls GET /healthz until it answers 200; fails early if Portico exits. */
async function waitForHealth(child: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`portico exited at start (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    const answer = await request(port, 'GET', '/healthz', undefined, 1000).catch(() => undefined);
    if (answer?.status === 200) return;
    await sleep(50);
  }
  throw new Error(`portico did not answer /healthz within ${START_TIMEOUT_MS} ms`);
}

/** Waits for the child's 'exit' so its pipes are closed before the benchmark exits. */
async function waitForChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.pid !== undefined) await waitForExit(child.pid, 1000);
  await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(1000)]);
}
