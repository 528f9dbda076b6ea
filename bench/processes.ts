/**
 * Helpers for the processes the benchmark starts: liveness by pid, bounded waits, and stopping a
 * process by its own pid (never by name: other nginx and node processes share this machine).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** True when `pid` runs and is not a zombie (a signal to a zombie "succeeds" but does nothing). */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** True when `pid` is an nginx master (so a recycled pid is never signalled by mistake). */
export async function isNginxMaster(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.startsWith('nginx: master process');
}

/** Waits up to `timeoutMs` for `pid` to exit; answers whether it did. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isAlive(pid))) return true;
    await sleep(20);
  }
  return !(await isAlive(pid));
}

/** Sends `signal`, waits up to `timeoutMs`, then SIGKILLs; a process already gone is fine. */
export async function stopPid(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  if (!(await isAlive(pid))) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  if (await waitForExit(pid, timeoutMs)) return;
  process.stderr.write(`bench: pid ${pid} ignored ${signal} for ${timeoutMs} ms; killing it\n`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone between the check and the kill.
  }
  await waitForExit(pid, 2000);
}

/** Counts reload signals in an nginx error log (`notice` level logs one line per SIGHUP). */
export async function countReloads(errorLog: string): Promise<number> {
  const text = await readFile(errorLog, 'utf8').catch(() => '');
  return text.split('signal 1 (SIGHUP) received').length - 1;
}
