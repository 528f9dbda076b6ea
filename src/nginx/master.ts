/**
 * Finding and signalling an nginx master by its pid file. Used by both modes: external mode only
 * ever does this; managed mode does it to adopt a master a previous Portico left running.
 */
import { readFile } from 'node:fs/promises';

/**
 * True when a process with this pid runs (ours or not). A zombie does not count: where nothing
 * reaps orphans (a container whose init does not), a dead master lingers as one, and signals to it
 * still "succeed".
 */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** True when `pid` is an nginx master process (its title is "nginx: master process ..."). */
export async function isNginxMaster(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.startsWith('nginx: master process');
}

/** The pid in `pidFile` if it names a live nginx master, else undefined. */
export async function masterFromPidFile(pidFile: string): Promise<number | undefined> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid < 1) return undefined;
  return (await isAlive(pid)) && (await isNginxMaster(pid)) ? pid : undefined;
}

/** Sends `signal` to every process of the group led by `pgid`; false when there is none left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}
