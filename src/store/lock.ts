/**
 * One Portico per state directory: a lock file naming the owner by its pid and its start time. A
 * lock left by a process that is gone (a crash, a kill -9; a zombie counts as gone) is taken over,
 * and so is one whose pid now belongs to another process (pids are reused: in a restarted container
 * the same small pids come round again). A lock held by the live process it names stops start-up.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { PorticoError } from '../errors.js';
import { processInfo } from '../proc.js';

export interface Lock {
  release(): Promise<void>;
}

/** The lock's text: `<pid> <start time>`; earlier versions of Portico wrote the pid alone. */
const LOCK_TEXT = /^(\d+)(?: (\d+))?\n?$/;

/** True when the process the lock's text names still runs: the same pid, started at the same time. */
async function holderRuns(text: string): Promise<number | undefined> {
  const match = LOCK_TEXT.exec(text);
  if (match === null) return undefined;
  const pid = Number(match[1]);
  if (pid <= 0 || pid === process.pid) return undefined;
  const info = await processInfo(pid);
  if (info === undefined || info.state === 'Z' || info.state === 'X') return undefined;
  // A lock without a start time cannot tell a reused pid apart: a live pid counts as the holder.
  if (match[2] !== undefined && Number(match[2]) !== info.startTime) return undefined;
  return pid;
}

/** Takes the lock at `file` for this process; throws Conflict if another live Portico holds it. */
export async function acquireLock(file: string): Promise<Lock> {
  const self = await processInfo(process.pid);
  const text = `${process.pid}${self === undefined ? '' : ` ${self.startTime}`}\n`;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      await writeFile(file, text, { flag: 'wx' });
      return { release: () => rm(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await holderRuns(await readFile(file, 'utf8').catch(() => ''));
    if (holder !== undefined) {
      throw new PorticoError('Conflict', `another Portico (pid ${holder}) owns this state directory (lock ${file})`);
    }
    await rm(file, { force: true });
  }
  throw new PorticoError('Conflict', `cannot take the lock ${file}`);
}
