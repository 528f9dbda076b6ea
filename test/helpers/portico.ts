/**
 * Starting Portico for tests, through the same code users run: in-process (for supertest) or as a
 * child process (for crash and signal tests). Each start gets its own state directory and its own
 * nginx; `close`/`stop` stop what was started, by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { BoundProbe } from '../../src/ports/allocate.js';
import { startPortico, type RunningPortico } from '../../src/portico.js';
import { loadSettings, type Settings } from '../../src/settings.js';
import { checkAnswers } from './contract.js';
import { eventually } from './net.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The nginx binary `make test` hands over. */
export function nginxBin(): string {
  const bin = process.env.NGINX_BIN;
  if (bin === undefined || bin === '') throw new Error('NGINX_BIN is not set: run the tests with `make test`');
  return bin;
}

export async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `portico-${label}-`));
}

/** True while a process runs (a zombie does not count). */
export async function processRuns(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return false;
  return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
}

/** The parent pid of a process (0 when it is gone). */
async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? 0);
}

/** Process groups of the masters seen per state directory: their orphaned workers are stopped too. */
const groups = new Map<string, Set<number>>();

/** The pids of every running nginx master whose command line mentions `stateDir`. */
export async function nginxMasters(stateDir: string): Promise<number[]> {
  const { readdir } = await import('node:fs/promises');
  const titled = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    if (cmdline.startsWith('nginx: master process') && cmdline.includes(stateDir) && (await processRuns(Number(name)))) {
      titled.set(Number(name), await parentOf(Number(name)));
    }
  }
  // A worker the master has just forked carries the master's title until it names itself (under load,
  // for some milliseconds after the master logged "start worker process"): it is no master. A
  // managed master's parent is never a master (Portico started it, or it was reparented).
  const masters = [...titled].filter(([, parent]) => !titled.has(parent)).map(([pid]) => pid);
  // Managed masters lead their own process group; remember it to find their workers later.
  const seen = groups.get(stateDir) ?? new Set<number>();
  for (const pid of masters) seen.add(pid);
  groups.set(stateDir, seen);
  return masters;
}

/**
 * A test's cleanup of a child Portico: kills its process group if it still runs (a test that wanted
 * a graceful stop has done it), stops any nginx left under `stateDir` and removes the directory.
 */
export async function discardPortico(portico: { pid: number } | undefined, stateDir: string): Promise<void> {
  if (portico !== undefined && (await processRuns(portico.pid))) process.kill(-portico.pid, 'SIGKILL');
  await stopNginxUnder(stateDir);
  await rm(stateDir, { recursive: true, force: true });
}

/**
 * Stops every nginx master started under `stateDir` (QUIT, then KILL after 3 s), and any worker
 * left in the process group of a master seen before (a master a test killed leaves its workers).
 */
export async function stopNginxUnder(stateDir: string): Promise<void> {
  for (const pid of await nginxMasters(stateDir)) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      continue; // gone since the scan
    }
    if (!(await eventually(async () => !(await processRuns(pid)), 3000))) process.kill(-pid, 'SIGKILL');
  }
  for (const pgid of groups.get(stateDir) ?? []) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // the group is empty: nothing left to stop
    }
  }
  groups.delete(stateDir);
}

export interface InProcess extends RunningPortico {
  settings: Settings;
  stateDir: string;
  /** Answers that disagreed with the OpenAPI document so far (see helpers/contract.ts). */
  contractViolations: string[];
  /** Stops Portico and its nginx and removes the state directory. */
  stop(): Promise<void>;
}

/** Starts Portico in this process (managed mode unless `env` says otherwise). */
export async function startInProcess(
  env: Record<string, string>,
  options: { isBound?: BoundProbe; stateDir?: string } = {},
): Promise<InProcess> {
  const stateDir = options.stateDir ?? (await tempDir('state'));
  // NGINX_STATUS_PORT's default (8081) would be one port for every Portico the tests run at once: none unless a test asks.
  const settings = loadSettings({ NGINX_BIN: nginxBin(), STATE_DIR: stateDir, LOG_LEVEL: 'silent', NGINX_STATUS_PORT: 'off', ...env });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const running = await startPortico(settings, { log, ...(options.isBound && { isBound: options.isBound }) });
  // Every answer is checked against the OpenAPI document (helpers/contract.ts): one that disagrees is
  // printed at once and fails the test file at its exit.
  const violations = checkAnswers(running.app);
  return {
    ...running,
    settings,
    stateDir,
    contractViolations: violations,
    async stop() {
      await running.close();
      await stopNginxUnder(stateDir);
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export interface ChildPortico {
  child: ChildProcess;
  pid: number;
  url: string;
  output(): string;
}

/**
 * Runs `node src/main.ts` as its own process group (so a test can kill the whole group, as a crash
 * of its container would) and waits for /healthz.
 */
export async function spawnPortico(env: Record<string, string>): Promise<ChildPortico> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO,
    // NGINX_STATUS_PORT's default would be one port for every Portico the tests run at once: none unless a test asks.
    env: { PATH: process.env.PATH, NGINX_BIN: nginxBin(), LOG_LEVEL: 'info', NGINX_STATUS_PORT: 'off', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${env.BIND_PORT}`;
  const up = await eventually(
    async () => {
      if (child.exitCode !== null) return true;
      return fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
    },
    20_000,
    50,
  );
  if (!up || child.exitCode !== null) {
    child.kill('SIGKILL');
    throw new Error(`portico did not come up (exit ${child.exitCode}):\n${output}`);
  }
  return { child, pid: child.pid as number, url, output: () => output };
}

/** SIGTERM, then SIGKILL if it is still there after `graceMs`; by pid; never rejects. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await exited(child, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await exited(child, 2000);
  await eventually(async () => !(await processRuns(pid)), 2000);
}

/** Waits (bounded) for a child to exit; answers whether it did. */
export async function exited(child: ChildProcess, timeoutMs = 10_000): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  // The timer is cleared on exit: a pending one would keep the test's process alive for its length.
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * True when the journal of config directory `dir` holds a batch that was never committed: one left
 * pending. Between batches the file is empty, or holds the last committed batch until its files
 * are flushed (in the background, after the answer).
 */
export async function pendingJournal(dir: string): Promise<boolean> {
  const text = await readFile(path.join(dir, '.portico', 'journal.json'), 'utf8').catch(() => '');
  return text !== '' && !text.endsWith('\ncommitted\n');
}

/**
 * True for a config directory's journal file: a snapshot of "what changed on disk" leaves it out,
 * since between batches it is empty or holds the last committed batch until its background flush
 * empties it, after the answer (`pendingJournal` tells a batch left pending).
 */
export function isJournalFile(name: string): boolean {
  return name === path.join('.portico', 'journal.json') || name.endsWith(`${path.sep}.portico${path.sep}journal.json`);
}
