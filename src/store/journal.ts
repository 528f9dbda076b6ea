/**
 * The swap of a batch of files into the live tree, made crash-safe by an undo journal.
 *
 * Order of a swap: (1) hard-link each live file the batch replaces or removes into a backup folder;
 * (2) write the journal, naming every file the batch touches, durably; (3) rename each staged file
 * over its live name, unlink each removed one. Removing the journal is the commit point. A journal
 * found at start-up therefore means a batch that was never acknowledged: `rollBack` puts every
 * touched file back as it was, so after any crash the tree is the old one or the new one, never a mix.
 */
import { linkSync, renameSync, rmSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { replaceAtomically, storageError, syncDir, writeDurably } from './fsync.js';

/** A file to write (`text`) or remove (`text: null`) in a directory. */
export interface FileChange {
  name: string;
  text: string | null;
  /** The new file's permission bits (0644 unless given): a private key's are 0600. */
  mode?: number;
}

export interface JournalEntry {
  /** The live directory. */
  dir: string;
  /** The file's name in it. */
  name: string;
  /** Where the new text waits (a put), or null (a removal). */
  staged: string | null;
  /** Whether a live file existed and was backed up before the swap. */
  backedUp: boolean;
}

/** The private folder Portico keeps inside a config directory (nginx's `*.conf` glob skips it). */
export function workDir(dir: string): string {
  return path.join(dir, '.portico');
}

const backupPath = (entry: { dir: string; name: string }): string =>
  path.join(workDir(entry.dir), 'backup', entry.name);

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * Hard-links `live` to `backup` and answers true, or false when there is no live file (a creation).
 * The backup folder is emptied after every batch, so a backup left in the way is a leftover of a
 * crash: it is replaced.
 */
function backUp(live: string, backup: string): boolean {
  for (let attempt = 0; ; attempt += 1) {
    try {
      linkSync(live, backup);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code !== 'EEXIST' || attempt > 0) throw storageError('backing up', live, error);
      try {
        rmSync(backup, { force: true });
      } catch (removal) {
        throw storageError('removing a stale backup', backup, removal);
      }
    }
  }
}

/** A file name in a config directory: no separator, no NUL, not "." or "..". */
const FILE_NAME = /^(?!\.\.?$)[^/\0]{1,255}$/;

export class Journal {
  private readonly file: string;
  private readonly schema;

  /** The journal of batches swapped into `dir`, whose staged files live in `stageDir`. */
  constructor(dir: string, stageDir: string) {
    this.file = path.join(workDir(dir), 'journal.json');
    // The journal is read back from disk: it names only files of `dir` and of the staging folder.
    this.schema = z
      .object({
        entries: z.array(
          z
            .object({
              dir: z.literal(dir),
              name: z.string().regex(FILE_NAME),
              staged: z
                .string()
                .refine((p) => path.dirname(p) === stageDir && FILE_NAME.test(path.basename(p)))
                .nullable(),
              backedUp: z.boolean(),
            })
            .strict(),
        ),
      })
      .strict();
  }

  /** Swaps `changes` into the live tree as described above; throws with the tree possibly half-swapped (roll back). */
  async swap(changes: Array<{ dir: string; name: string; staged: string | null }>): Promise<void> {
    if (new Set(changes.map((c) => `${c.dir}/${c.name}`)).size !== changes.length) {
      throw new Error('a batch names one file twice');
    }
    // A journal still pending belongs to a batch never acknowledged: undo it before it is overwritten.
    await this.rollBack();
    for (const dir of new Set(changes.map((c) => c.dir))) await mkdir(path.join(workDir(dir), 'backup'), { recursive: true });
    // Links, renames and unlinks are made synchronously, one after another: each is a metadata call
    // of microseconds, which a trip through the thread pool would make cost ten times that, and a
    // batch may swap hundreds of files.
    const entries: JournalEntry[] = [];
    try {
      for (const change of changes) entries.push({ ...change, backedUp: backUp(path.join(change.dir, change.name), backupPath(change)) });
    } catch (error) {
      // No journal names them: drop the links made so far (they would keep old files' inodes alive).
      for (const entry of entries.filter((e) => e.backedUp)) {
        try {
          rmSync(backupPath(entry), { force: true });
        } catch {
          // Left for the next start, which clears the backup folder.
        }
      }
      throw error;
    }
    try {
      // The backup links must be on disk before a journal that names them (a batch of creations has none).
      for (const dir of new Set(entries.filter((e) => e.backedUp).map((e) => e.dir))) await syncDir(path.join(workDir(dir), 'backup'));
      await replaceAtomically(this.file, JSON.stringify({ entries }, null, 1));
    } catch (error) {
      // No journal, so nothing live was touched (a full or read-only disk): drop the backups made for it.
      await Promise.all(entries.map((entry) => rm(backupPath(entry), { force: true })));
      throw error;
    }
    // Every entry is tried before a failure is thrown, so the roll-back sees the whole of what happened.
    let failure: unknown;
    for (const entry of entries) {
      const live = path.join(entry.dir, entry.name);
      try {
        if (entry.staged !== null) renameSync(entry.staged, live);
        else rmSync(live, { force: true });
      } catch (error) {
        failure ??= storageError(entry.staged !== null ? 'renaming into' : 'removing', live, error);
      }
    }
    if (failure !== undefined) throw failure;
    for (const dir of new Set(entries.map((e) => e.dir))) await syncDir(dir);
  }

  /** Makes the swapped tree permanent: removes the journal, then the backups. */
  async commit(): Promise<void> {
    const entries = await this.read();
    await rm(this.file, { force: true });
    await syncDir(path.dirname(this.file));
    await Promise.all((entries ?? []).filter((e) => e.backedUp).map((entry) => rm(backupPath(entry), { force: true })));
  }

  /**
   * Puts every file named in the journal back as it was before the swap, then removes the journal.
   * Idempotent: a crash during a roll-back is finished by the next one. Answers the number of files
   * restored, or undefined when there was no journal.
   */
  async rollBack(): Promise<number | undefined> {
    const entries = await this.read();
    if (entries === undefined) return undefined;
    for (const entry of entries) {
      const live = path.join(entry.dir, entry.name);
      if (entry.backedUp) {
        const backup = backupPath(entry);
        // The backup is gone only if an earlier roll-back already renamed it into place.
        if (await exists(backup)) await rename(backup, live);
      } else {
        await rm(live, { force: true });
      }
      if (entry.staged !== null) await rm(entry.staged, { force: true });
    }
    for (const dir of new Set(entries.map((e) => e.dir))) await syncDir(dir);
    await rm(this.file, { force: true });
    await syncDir(path.dirname(this.file));
    return entries.length;
  }

  private async read(): Promise<JournalEntry[] | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    let parsed;
    try {
      parsed = this.schema.safeParse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !parsed.success) {
      throw new Error(`${this.file} is not a journal Portico wrote: move it away to start`);
    }
    return parsed.data.entries;
  }
}

/**
 * Writes the new files of a batch into `stageDir`, where the swap takes them from, each flushed;
 * answers each staged path by name. Nothing is left half-staged when a write fails (a full or
 * read-only disk).
 */
export async function writeStaged(stageDir: string, changes: FileChange[]): Promise<Map<string, string>> {
  await mkdir(stageDir, { recursive: true });
  const staged = new Map<string, string>();
  // Written side by side: one batch's flushes overlap instead of queueing one after another.
  const written = await Promise.allSettled(
    changes.map(async (change) => {
      if (change.text === null) return;
      const file = path.join(stageDir, change.name);
      // A mode applies only to a file the write creates: a leftover must not lend a key its own.
      if (change.mode !== undefined) await rm(file, { force: true });
      await writeDurably(file, change.text, change.mode);
      staged.set(change.name, file);
    }),
  );
  const failed = written.find((w): w is PromiseRejectedResult => w.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(changes.map((change) => rm(path.join(stageDir, change.name), { force: true })));
    throw failed.reason;
  }
  return staged;
}

/** Removes leftovers of batches that never reached their swap (staged files, stale backups). */
export async function clearWorkDir(dir: string): Promise<void> {
  const work = workDir(dir);
  await mkdir(work, { recursive: true });
  for (const sub of ['stage', 'backup']) {
    const folder = path.join(work, sub);
    await mkdir(folder, { recursive: true });
    for (const name of await readdir(folder)) await rm(path.join(folder, name), { force: true, recursive: true });
  }
}
