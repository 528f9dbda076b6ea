/**
 * One Portico per state directory: a lock file naming the owner by its pid and its start time. A
 * lock left by a process that is gone (a crash, a kill -9; a zombie counts as gone) is taken over,
 * and so is one whose pid now belongs to another process (pids are reused: in a restarted container
 * the same small pids come round again). A lock held by the live process it names stops start-up.
 *
 * Every step is atomic, so that of two processes starting at once exactly one runs:
 * - the lock is written whole under a private name and linked into place (`link` fails if the name
 *   exists), so nobody ever reads a half-written lock and judges it stale;
 * - a stale lock is replaced by `rename`, and only by the process that first hard-links that very
 *   file (its inode) to a marker name: a loser cannot remove the lock the winner just made, which
 *   is what "remove the stale file, then create ours" allowed.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PorticoError } from '../errors.js';
import { processInfo } from '../proc.js';

export interface Lock {
  release(): Promise<void>;
}

/** The lock's text: `<pid> <start time>`; earlier versions of Portico wrote the pid alone. */
const LOCK_TEXT = /^(\d+)(?: (\d+))?\n?$/;

/** Looks at the lock this many times at most: each look either takes it, refuses, or sees it change. */
const MAX_LOOKS = 50;
/** A marker older than this was left by a process that died while taking a lock over. */
const ABANDONED_MARKER_MS = 10_000;

/** The pid of the live process the lock's text names, or undefined: gone, reused, unreadable, or us. */
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

const code = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

/** Links `from` to the new name `to`; false when `to` exists. */
async function linkNew(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (error) {
    if (code(error) === 'EEXIST') return false;
    throw error;
  }
}

/** True when no process runs with `pid` (a zombie counts as gone). */
async function gone(pid: number): Promise<boolean> {
  const info = await processInfo(pid);
  return info === undefined || info.state === 'Z' || info.state === 'X';
}

/** The lock file's text and inode, or undefined when it is gone. */
async function readLock(file: string): Promise<{ text: string; ino: number } | undefined> {
  try {
    // The inode first: if the file is replaced in between, the text is the newer one's, and the
    // takeover's own check (the marker's inode) then fails, which only means looking again.
    const { ino } = await stat(file);
    return { text: await readFile(file, 'utf8'), ino };
  } catch (error) {
    if (code(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Replaces the stale lock (inode `ino`) with `mine`, if this process is the one to do it: the one
 * whose hard link of the lock to `<file>.stale-<ino>` succeeds. Answers whether it took the lock.
 */
async function takeOver(file: string, ino: number, mine: string): Promise<boolean> {
  const marker = `${file}.stale-${ino}`;
  try {
    await link(file, marker);
  } catch (error) {
    if (code(error) === 'ENOENT') return false; // the lock went meanwhile: look again
    if (code(error) !== 'EEXIST') throw error;
    // Another process is taking this lock over right now, or died doing so long ago.
    const left = await stat(marker).catch(() => undefined);
    if (left !== undefined && Date.now() - left.ctimeMs > ABANDONED_MARKER_MS) await rm(marker, { force: true });
    return false;
  }
  try {
    // The lock may have been replaced between our look and the link: then the marker is another file.
    const held = await stat(marker);
    if (held.ino !== ino) return false;
    if ((await holderRuns(await readFile(marker, 'utf8'))) !== undefined) return false;
    // Nobody else can hold this marker, so nobody else replaces the lock before this rename does.
    await rename(mine, file);
    return true;
  } finally {
    await rm(marker, { force: true });
  }
}

/** Takes the lock at `file` for this process; throws Conflict if another live Portico holds it. */
export async function acquireLock(file: string): Promise<Lock> {
  const self = await processInfo(process.pid);
  const text = `${process.pid}${self === undefined ? '' : ` ${self.startTime}`}\n`;
  const mine = `${file}.${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(mine, text, { flag: 'wx' });
  try {
    for (let look = 0; look < MAX_LOOKS; look += 1) {
      if (await linkNew(mine, file)) {
        await sweepLeftovers(file);
        return ownLock(file, text);
      }
      const found = await readLock(file);
      if (found === undefined) continue;
      const holder = await holderRuns(found.text);
      if (holder !== undefined) {
        throw new PorticoError('Conflict', `another Portico (pid ${holder}) owns this state directory (lock ${file})`);
      }
      if (await takeOver(file, found.ino, mine)) {
        await sweepLeftovers(file);
        return ownLock(file, text);
      }
      // Someone else is taking it over: in a moment the lock is theirs, and names a live process.
      await sleep(1 + Math.random() * 10);
    }
    throw new PorticoError('Conflict', `cannot take the lock ${file}: it kept changing`);
  } finally {
    await rm(mine, { force: true });
  }
}

/**
 * Removes what processes that died while taking the lock left beside it: their private copies
 * (`<lock>.<pid>-<random>`, by a pid no longer running) and takeover markers older than
 * `ABANDONED_MARKER_MS`. Called by the owner; a starting process's own copy names a live pid.
 */
async function sweepLeftovers(file: string): Promise<void> {
  const dir = path.dirname(file);
  const base = `${path.basename(file)}.`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(base)) continue;
    const rest = name.slice(base.length);
    const copy = /^(\d+)-[0-9a-f]{8}$/.exec(rest);
    if (copy !== null && (await gone(Number(copy[1])))) await rm(path.join(dir, name), { force: true });
    if (/^stale-\d+$/.test(rest)) {
      const info = await stat(path.join(dir, name)).catch(() => undefined);
      if (info !== undefined && Date.now() - info.ctimeMs > ABANDONED_MARKER_MS) await rm(path.join(dir, name), { force: true });
    }
  }
}

/** The lock as held by this process: released only while the file still holds its text (names it). */
function ownLock(file: string, text: string): Lock {
  return {
    async release() {
      if ((await readFile(file, 'utf8').catch(() => '')) === text) await rm(file, { force: true });
    },
  };
}
