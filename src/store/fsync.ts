/**
 * Durable file operations: a write is complete only when its data and its directory entry are on
 * disk, so that a crash (of Portico or of the machine) leaves either the old or the new file.
 */
import { randomBytes } from 'node:crypto';
import { chmod, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PorticoError } from '../errors.js';

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
};

/** A failed write as StorageUnavailable, naming the path and why; other errors pass unchanged. */
export function storageError(action: string, file: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code === undefined ? undefined : REASONS[code];
  if (reason === undefined) return error;
  return new PorticoError('StorageUnavailable', `${action} ${file}: ${reason} (${code})`, { cause: error });
}

/** Runs `work`, turning a storage failure into one that names `file`. */
export async function naming<T>(action: string, file: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw storageError(action, file, error);
  }
}

/** Flushes a directory's entries (creations, renames, removals) to disk. */
export async function syncDir(dir: string): Promise<void> {
  await naming('flushing', dir, async () => {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

/** Writes `text` to `file` and flushes it (fsync) before returning. */
export async function writeDurably(file: string, text: string, mode = 0o644): Promise<void> {
  // An explicit sync rather than writeFile's `flush`, which a node before 20.10 ignores silently.
  await naming('writing', file, async () => {
    const handle = await open(file, 'w', mode);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

/** Replaces `file` atomically: readers see the old text or the new, never a part. */
export async function replaceAtomically(file: string, text: string, mode = 0o644): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeDurably(temp, text, mode);
    await naming('renaming into', file, () => rename(temp, file));
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(path.dirname(file));
}

/**
 * Lets every user pass through `dir` (search permission, not listing), and answers whether it had
 * to. Files below keep their own modes: the certificates' directory stays 0700.
 */
export async function makeTraversable(dir: string): Promise<boolean> {
  const { mode } = await stat(dir);
  if ((mode & 0o111) === 0o111) return false;
  await chmod(dir, (mode & 0o7777) | 0o111);
  return true;
}

/** The first folder above `dir` that other users cannot pass through, if any. */
export async function closedAncestor(dir: string): Promise<string | undefined> {
  let current = path.dirname(path.resolve(dir));
  for (;;) {
    const { mode } = await stat(current);
    if ((mode & 0o001) === 0) return current;
    const parent = path.dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

/**
 * Writes a scratch file nobody relies on surviving a crash (throwaway test configs). Through a new
 * file of a random name (O_EXCL) renamed over `file`: a symlink someone left at `file` (the sidecar's
 * /etc/nginx is a volume other containers may write) is replaced, never followed, so Portico, root
 * there, writes through it to no other file.
 */
export async function writeScratch(file: string, text: string): Promise<void> {
  const fresh = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}`);
  await writeFile(fresh, text, { flag: 'wx', mode: 0o644 });
  try {
    await rename(fresh, file);
  } catch (error) {
    await rm(fresh, { force: true });
    throw error;
  }
}
