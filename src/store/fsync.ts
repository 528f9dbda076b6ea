/**
 * Durable file operations: a write is complete only when its data and its directory entry are on
 * disk, so that a crash (of Portico or of the machine) leaves either the old or the new file.
 */
import { open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Flushes a directory's entries (creations, renames, removals) to disk. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `text` to `file` and flushes it before returning. */
export async function writeDurably(file: string, text: string, mode = 0o644): Promise<void> {
  const handle = await open(file, 'w', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `file` atomically: readers see the old text or the new, never a part. */
export async function replaceAtomically(file: string, text: string, mode = 0o644): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await writeDurably(temp, text, mode);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(path.dirname(file));
}

/** Writes a scratch file nobody relies on surviving a crash (throwaway test configs). */
export async function writeScratch(file: string, text: string): Promise<void> {
  await writeFile(file, text);
}
