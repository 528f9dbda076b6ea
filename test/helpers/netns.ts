/**
 * A private network, process and mount namespace for a test that must use fixed, well-known ports
 * (the README's localhost:5000, 9000-9009, 8080, 8443) while other tests and a developer's own
 * Portico use the machine's. Inside it only loopback exists and every port is free.
 *
 * Its first process (`sleep`, pid 1 of the namespace) is the holder: when it dies, the kernel kills
 * every process left in the namespace, so whatever a test starts inside (Portico, nginx, a backend a
 * README block leaves in the background) is stopped by stopping one pid, and nothing outlives the
 * holder's bounded sleep even if the test runner itself is killed. Needs root (unshare, nsenter).
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { eventually } from './net.js';

const run = promisify(execFile);

/** Why this machine cannot give a test a private namespace, or undefined when it can. */
export async function namespaceUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root, for a private network namespace (unshare --net) and to install Debian packages';
  try {
    await run('unshare', ['--net', '--pid', '--fork', '--mount-proc', 'true'], { timeout: 10_000 });
  } catch (error) {
    return `unshare --net --pid --mount-proc fails here: ${(error as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/**
 * Installs the Debian packages whose commands are missing (`{command: package}`), as root, the way
 * `make` installs what it needs: no recommends, nothing upgraded; `apt-get update` only when the
 * first attempt fails (a fresh machine has no package lists).
 */
export async function ensureCommands(packagesByCommand: Record<string, string>): Promise<void> {
  const missing: string[] = [];
  for (const [command, pkg] of Object.entries(packagesByCommand)) {
    const found = await run('sh', ['-c', `command -v ${command}`]).then(() => true, () => false);
    if (!found && !missing.includes(pkg)) missing.push(pkg);
  }
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', '--no-upgrade', ...missing], { env, timeout: 300_000 });
  await install().catch(async () => {
    await run('apt-get', ['update', '-qq'], { env, timeout: 300_000 });
    await install();
  });
}

/** The first child of `pid` (nsenter and unshare fork once to enter a pid namespace), or undefined. */
async function childOf(pid: number): Promise<number | undefined> {
  let child: number | undefined;
  await eventually(async () => {
    const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
    child = children.trim() === '' ? undefined : Number(children.trim().split(/\s+/)[0]);
    return child !== undefined;
  }, 5000, 10);
  return child;
}

function exitOf(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export interface Entered {
  /** nsenter, as spawned: its exit is the process's exit (it forwards the exit status). */
  child: ChildProcess;
  /** The process itself (nsenter's child), as this machine numbers it: signal this one. */
  pid: number;
  exited(timeoutMs: number): Promise<boolean>;
}

export interface Namespace {
  /** Runs `command` inside the namespace (cwd `options.cwd`, environment `options.env`). */
  spawn(command: string, args: string[], options: SpawnOptions & { cwd: string }): Promise<Entered>;
  /** Stops every process in the namespace (the holder, and with it the rest) and waits for it. */
  stop(): Promise<void>;
}

/** Creates the namespace with loopback up; it lives at most `lifetimeSeconds`. */
export async function startNamespace(lifetimeSeconds: number): Promise<Namespace> {
  const unshare = spawn(
    'unshare',
    ['--net', '--pid', '--fork', '--mount-proc', '--kill-child', '--', 'sh', '-c', `ip link set lo up && echo up && exec sleep ${lifetimeSeconds}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  unshare.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  unshare.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const up = await eventually(async () => output.includes('up\n') || unshare.exitCode !== null, 10_000, 10);
  const holder = up && unshare.exitCode === null ? await childOf(unshare.pid as number) : undefined;
  if (holder === undefined) {
    unshare.kill('SIGKILL');
    throw new Error(`could not create the namespace: ${output}`);
  }
  return {
    async spawn(command, args, options) {
      const child = spawn('nsenter', ['-t', String(holder), '--net', '--pid', '--mount', `--wd=${options.cwd}`, '--', command, ...args], options);
      const pid = await childOf(child.pid as number);
      if (pid === undefined) {
        child.kill('SIGKILL');
        throw new Error(`nsenter started no ${command}`);
      }
      return { child, pid, exited: (timeoutMs) => exitOf(child, timeoutMs) };
    },
    async stop() {
      // The holder is pid 1 of the namespace: when it dies the kernel kills every process left in
      // it. (unshare ignores SIGTERM while it waits for its child; it exits once the holder has.)
      try {
        process.kill(holder, 'SIGKILL');
      } catch {
        // already gone
      }
      if (!(await exitOf(unshare, 5000))) unshare.kill('SIGKILL');
    },
  };
}
