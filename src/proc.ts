/**
 * The process table, read from /proc: the one place that parses /proc/PID/stat. A leaf module
 * (no imports of ours), used by store/ (the lock) and nginx/ (masters and workers).
 *
 * Zombies count as gone everywhere: where pid 1 does not reap orphans (a container whose init
 * does not), a dead process lingers as one, and signals to it still "succeed".
 */
import { readdir, readFile } from 'node:fs/promises';

export interface ProcessInfo {
  pid: number;
  /** R, S, D, Z, ... */
  state: string;
  ppid: number;
  pgid: number;
  /** When the process started, in clock ticks since boot: with the pid, it names one process for good. */
  startTime: number;
}

/** Reads one process's stat line; undefined when it does not exist. */
export async function processInfo(pid: number): Promise<ProcessInfo | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return parseStat(pid, text);
}

function parseStat(pid: number, text: string): ProcessInfo | undefined {
  if (text === '') return undefined;
  // The command name may hold spaces and parentheses: the fields after the last ")" are fixed.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // proc(5) numbers the fields from 1: state is field 3, starttime field 22.
  return { pid, state: fields[0] ?? '?', ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: Number(fields[19]) };
}

/** True when `pid` runs (a zombie does not). */
export async function isAlive(pid: number): Promise<boolean> {
  const info = await processInfo(pid);
  return info !== undefined && info.state !== 'Z' && info.state !== 'X';
}

/** A process's command line with its NULs as spaces (nginx rewrites it into its process title). */
export async function commandLine(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ').trim();
}

/** Every live process, read concurrently. */
export async function allProcesses(): Promise<ProcessInfo[]> {
  const names = (await readdir('/proc').catch(() => [] as string[])).filter((name) => /^\d+$/.test(name));
  const stats = await Promise.all(names.map((name) => readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')));
  return stats
    .map((text, i) => parseStat(Number(names[i]), text))
    .filter((info): info is ProcessInfo => info !== undefined && info.state !== 'Z' && info.state !== 'X');
}

/** The pids of a process's live children: /proc/PID/task/PID/children where the kernel has it, else a scan. */
export async function childPids(parent: number): Promise<Set<number>> {
  const listed = await readFile(`/proc/${parent}/task/${parent}/children`, 'utf8').catch(() => undefined);
  if (listed !== undefined) return new Set(listed.split(' ').filter((p) => p !== '').map(Number));
  return new Set((await allProcesses()).filter((p) => p.ppid === parent).map((p) => p.pid));
}

/** The live members of process group `pgid` whose command line starts with `prefix`. */
export async function groupMembers(pgid: number, prefix: string): Promise<number[]> {
  const members = (await allProcesses()).filter((p) => p.pgid === pgid);
  const lines = await Promise.all(members.map((p) => commandLine(p.pid)));
  return members.filter((_, i) => lines[i]?.startsWith(prefix)).map((p) => p.pid);
}
