/**
 * What the benchmark reads of other processes from /proc: resident memory (VmRSS, VmHWM), an nginx
 * master's worker processes, and their CPU time (utime + stime of /proc/PID/stat).
 */
import { spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

export interface Memory {
  /** Resident set size now (VmRSS), in MiB. */
  rssMb: number;
  /** The highest resident set size so far (VmHWM), in MiB. */
  peakMb: number;
}

/** VmRSS and VmHWM of `pid`; throws when the process is gone. */
export async function memoryOf(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** The fields of /proc/PID/stat after the command name (which may hold spaces): [0] is the state. */
async function statFields(pid: number): Promise<string[] | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (text === '') return undefined;
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

/** Clock ticks per second, the unit of utime and stime (100 on every common Linux). */
export const CLOCK_TICKS: number = (() => {
  const answer = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).stdout?.trim());
  return Number.isInteger(answer) && answer > 0 ? answer : 100;
})();

/** utime + stime of `pid` in milliseconds; undefined when it is gone. */
export async function cpuMs(pid: number): Promise<number | undefined> {
  const fields = await statFields(pid);
  if (fields === undefined) return undefined;
  // After the state: ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/**
 * The pids of `master`'s live worker processes (not its cache manager or loader, and not old
 * workers that are shutting down after a reload).
 */
export async function workerPids(master: number): Promise<number[]> {
  const workers: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = await statFields(Number(name));
    if (fields === undefined || Number(fields[1]) !== master) continue;
    const title = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    if (title.startsWith('nginx: worker process') && !title.includes('shutting down')) workers.push(Number(name));
  }
  return workers;
}

/**
 * CPU time of a fixed set of processes between two readings. Made before a round of load and read
 * after it; a process that exits in between counts for nothing (the data plane runs no reloads).
 */
export class CpuMeter {
  private constructor(private readonly start: Map<number, number>) {}

  static async begin(pids: number[]): Promise<CpuMeter> {
    const start = new Map<number, number>();
    for (const pid of pids) {
      const ms = await cpuMs(pid);
      if (ms !== undefined) start.set(pid, ms);
    }
    if (start.size === 0) throw new Error(`none of the processes ${pids.join(', ')} is running`);
    return new CpuMeter(start);
  }

  /** Milliseconds of CPU the processes used since `begin`. */
  async elapsedMs(): Promise<number> {
    let total = 0;
    for (const [pid, before] of this.start) {
      const now = await cpuMs(pid);
      if (now !== undefined) total += now - before;
    }
    return total;
  }
}
