/**
 * The swap of a batch of files into the live tree, made crash-safe by one journal that holds the
 * batch's old and new contents: a group commit, with one flush on the way in and one to commit.
 *
 * A batch, in order: (1) hard-link each live file it replaces or removes into a backup folder (for a
 * fast roll-back at run time; a crash does not rely on them); (2) write the journal (every touched
 * file's old and new text and mode) and flush it: the one flush the batch's data needs, since the
 * staged files themselves are never flushed; (3) rename each staged file over its live name, unlink
 * each removed one. (4) `commit` appends a commit mark to the journal and flushes it: that is the
 * commit point, and only then is the change acknowledged; the backups go. (5) After the answer, in
 * the background, the live files and their directory are flushed, and only then is the journal
 * emptied (the file stays, empty); the next batch waits for that before it writes its own journal.
 *
 * At start-up (`recover`), a journal with its commit mark is rolled forward (each file written from
 * the journal's new text, durably), one without it rolled back (each file written from its old
 * text, or removed): after any crash, of Portico or of the machine, the tree is the old one or the
 * new one, never a mix, and an acknowledged batch is never lost. A journal whose own write was cut
 * off (its checksum does not match) comes before any rename, so there is nothing to undo.
 * DESIGN.md's proposal in the issue-13 note argues the power-cut half.
 */
import { linkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { storageError, syncDir, writeDurably } from './fsync.js';

/** A file to write (`text`) or remove (`text: null`) in a directory. */
export interface FileChange {
  name: string;
  text: string | null;
  /** The new file's permission bits (0644 unless given): a private key's are 0600. */
  mode?: number;
}

/** One file of a swap, as the journal records it. */
export interface JournalEntry {
  /** The live directory. */
  dir: string;
  /** The file's name in it. */
  name: string;
  /** Where the new text waits (a put), or null (a removal). */
  staged: string | null;
  /** Whether a live file existed and was backed up (linked) before the swap. */
  backedUp: boolean;
  /** The new text (null: removed) and mode, to roll forward. */
  text: string | null;
  mode: number;
  /** The text before the swap (null: there was no file) and its mode, to roll back. */
  oldText: string | null;
  oldMode: number;
}

/** A file of a swap as the caller hands it in. */
export interface SwapChange {
  dir: string;
  name: string;
  staged: string | null;
  text: string | null;
  mode?: number;
}

/** The private folder Portico keeps inside a config directory (nginx's `*.conf` glob skips it). */
export function workDir(dir: string): string {
  return path.join(dir, '.portico');
}

const backupPath = (entry: { dir: string; name: string }): string =>
  path.join(workDir(entry.dir), 'backup', entry.name);

/** First line of a journal: a tag, then the sha256 of the entries' line that follows. */
const HEADER = 'portico-journal 2 ';
/** The line `commit` appends. */
const COMMITTED = 'committed\n';

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

/** Flushes each file (open, fsync) at most `FLUSH_WIDTH` at a time; a file gone since is skipped. */
const FLUSH_WIDTH = 64;
async function flushFiles(files: string[]): Promise<void> {
  for (let i = 0; i < files.length; i += FLUSH_WIDTH) {
    await Promise.all(
      files.slice(i, i + FLUSH_WIDTH).map(async (file) => {
        let handle;
        try {
          handle = await open(file, 'r');
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw storageError('flushing', file, error);
        }
        try {
          await handle.sync();
        } catch (error) {
          throw storageError('flushing', file, error);
        } finally {
          await handle.close();
        }
      }),
    );
  }
}

export class Journal {
  private readonly file: string;
  private readonly schema;
  /** The version 1 journal (an undo list of backups, before group commit), still rolled back at start. */
  private readonly legacySchema;
  /** The batch swapped in and not yet emptied from the journal. */
  private current: JournalEntry[] | undefined;
  /** The background flush of the last committed batch; the next swap waits for it. */
  private flushing: Promise<void> | undefined;
  /** Whether the journal file exists (its creation is flushed once). */
  private created = false;

  /** The journal of batches swapped into `dir`, whose staged files live in `stageDir`. */
  constructor(dir: string, stageDir: string) {
    this.file = path.join(workDir(dir), 'journal.json');
    // The journal is read back from disk: it names only files of `dir` and of the staging folder.
    const name = z.string().regex(FILE_NAME);
    const staged = z
      .string()
      .refine((p) => path.dirname(p) === stageDir && FILE_NAME.test(path.basename(p)))
      .nullable();
    const mode = z.number().int().min(0).max(0o7777);
    this.schema = z
      .object({
        entries: z.array(
          z
            .object({ dir: z.literal(dir), name, staged, backedUp: z.boolean(), text: z.string().nullable(), mode, oldText: z.string().nullable(), oldMode: mode })
            .strict(),
        ),
      })
      .strict();
    this.legacySchema = z.object({ entries: z.array(z.object({ dir: z.literal(dir), name, staged, backedUp: z.boolean() }).strict()) }).strict();
  }

  /** Swaps `changes` into the live tree as described above; throws with the tree possibly half-swapped (roll back). */
  async swap(changes: SwapChange[]): Promise<void> {
    if (new Set(changes.map((c) => `${c.dir}/${c.name}`)).size !== changes.length) {
      throw new Error('a batch names one file twice');
    }
    // The last batch's files must be on disk before its journal is overwritten.
    await this.settle();
    // A journal still pending belongs to a batch never acknowledged: undo it before it is overwritten.
    if (this.current !== undefined) await this.rollBack();
    for (const dir of new Set(changes.map((c) => c.dir))) await mkdir(path.join(workDir(dir), 'backup'), { recursive: true });
    // Links, reads, renames and unlinks are made synchronously, one after another: each is a call of
    // microseconds, which a trip through the thread pool would make cost ten times that, and a
    // batch may swap hundreds of files.
    const entries: JournalEntry[] = [];
    try {
      for (const change of changes) {
        const live = path.join(change.dir, change.name);
        const backedUp = backUp(live, backupPath(change));
        const old = backedUp ? readOld(backupPath(change)) : { text: null, mode: 0o644 };
        entries.push({
          dir: change.dir,
          name: change.name,
          staged: change.staged,
          backedUp,
          text: change.text,
          mode: change.mode ?? 0o644,
          oldText: old.text,
          oldMode: old.mode,
        });
      }
    } catch (error) {
      // No journal names them: drop the links made so far (they would keep old files' inodes alive).
      dropBackups(entries);
      throw error;
    }
    try {
      await this.write(entries);
    } catch (error) {
      // No journal, so nothing live was touched (a full or read-only disk): drop the backups made for it.
      dropBackups(entries);
      throw error;
    }
    this.current = entries;
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
  }

  /**
   * The commit point: appends the commit mark to the journal and flushes it. The swapped files are
   * flushed after this answers, in the background (see `settle`).
   */
  async commit(): Promise<void> {
    const entries = this.current;
    if (entries === undefined) return;
    await appendDurably(this.file, COMMITTED);
    this.current = undefined;
    // Not needed once committed: a crash from here on rolls forward from the journal's texts.
    dropBackups(entries);
    this.flushing = this.flushAndEmpty(entries);
    // Awaited by the next swap, `settle` or `recover`; a failure is thrown there.
    this.flushing.catch(() => undefined);
  }

  /**
   * Waits until the last committed batch's files are on disk and the journal is empty. A flush that
   * failed is tried again; if it fails again, the error is thrown (the journal keeps the batch,
   * which the next start rolls forward).
   */
  async settle(): Promise<void> {
    const flushing = this.flushing;
    if (flushing === undefined) return;
    try {
      await flushing;
    } catch {
      const committed = await this.read();
      if (committed?.committed === true) await this.flushAndEmpty(committed.entries);
    }
    if (this.flushing === flushing) this.flushing = undefined;
  }

  private async flushAndEmpty(entries: JournalEntry[]): Promise<void> {
    await flushFiles(entries.filter((e) => e.text !== null).map((e) => path.join(e.dir, e.name)));
    for (const dir of new Set(entries.map((e) => e.dir))) await syncDir(dir);
    await this.empty();
  }

  /**
   * Restores the tree as it was before the swap of the batch in the journal (one not committed),
   * and empties the journal; answers the number of files restored, or undefined when there was no
   * such batch. At run time (a failed reload) the backups are renamed back, so the old inodes (and
   * the read cache) come back; the texts in the journal serve where a backup is gone.
   */
  async rollBack(): Promise<number | undefined> {
    const entries = this.current ?? (await this.read())?.entries;
    if (entries === undefined) return undefined;
    for (const entry of entries) {
      const live = path.join(entry.dir, entry.name);
      if (entry.backedUp) {
        const backup = backupPath(entry);
        // The backup is gone only if an earlier roll-back already renamed it into place.
        if (await exists(backup)) await rename(backup, live);
        else if (entry.oldText !== null && !(await sameText(live, entry.oldText))) await replaceDurably(live, entry.oldText, entry.oldMode);
      } else {
        await rm(live, { force: true });
      }
      if (entry.staged !== null) await rm(entry.staged, { force: true });
    }
    await this.restored(entries);
    return entries.length;
  }

  /**
   * At start-up: finishes the batch a crash interrupted. A committed one is rolled forward, one
   * that never reached its commit rolled back (from the texts in the journal: the backups may not
   * have reached the disk). Answers the number of files restored or completed, or undefined.
   */
  async recover(): Promise<number | undefined> {
    const found = await this.read();
    if (found === undefined) return undefined;
    if (found.legacy) return this.rollBackLegacy(found.entries);
    for (const entry of found.entries) {
      const live = path.join(entry.dir, entry.name);
      const [text, mode] = found.committed ? [entry.text, entry.mode] : [entry.oldText, entry.oldMode];
      if (text === null) await rm(live, { force: true });
      else await replaceDurably(live, text, mode);
      if (entry.staged !== null) await rm(entry.staged, { force: true });
    }
    await this.restored(found.entries);
    return found.entries.length;
  }

  /** A version 1 journal: every file put back from its backup link. */
  private async rollBackLegacy(entries: JournalEntry[]): Promise<number> {
    for (const entry of entries) {
      const live = path.join(entry.dir, entry.name);
      if (entry.backedUp) {
        const backup = backupPath(entry);
        if (await exists(backup)) await rename(backup, live);
      } else {
        await rm(live, { force: true });
      }
      if (entry.staged !== null) await rm(entry.staged, { force: true });
    }
    await this.restored(entries);
    return entries.length;
  }

  /** After a roll-back or roll-forward: the files on disk, then the journal emptied. */
  private async restored(entries: JournalEntry[]): Promise<void> {
    for (const dir of new Set(entries.map((e) => e.dir))) await syncDir(dir);
    await this.empty();
    this.current = undefined;
    dropBackups(entries);
  }

  /** Writes the journal of `entries` in place and flushes it (its creation too, the first time). */
  private async write(entries: JournalEntry[]): Promise<void> {
    const body = JSON.stringify({ entries });
    const digest = createHash('sha256').update(body).digest('hex');
    await writeDurably(this.file, `${HEADER}${digest}\n${body}\n`, 0o600);
    if (!this.created) {
      await syncDir(path.dirname(this.file));
      this.created = true;
    }
  }

  /** Empties the journal (the file stays, so the next batch need not flush its creation). */
  private async empty(): Promise<void> {
    await writeDurably(this.file, '', 0o600).catch(async (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    });
  }

  /**
   * The batch in the journal: undefined when there is none (no file, an empty one, or one whose
   * write was cut off: the checksum tells). A file that is not a journal at all is an error.
   */
  private async read(): Promise<{ entries: JournalEntry[]; committed: boolean; legacy: boolean } | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    this.created = true;
    if (text === '') return undefined;
    if (text.startsWith(HEADER)) {
      const [header, body, mark, ...rest] = text.split('\n');
      const digest = (header as string).slice(HEADER.length);
      // Cut off while it was written: no rename had happened yet.
      if (body === undefined || createHash('sha256').update(body).digest('hex') !== digest) return undefined;
      const parsed = this.parseWith(this.schema, body);
      const committed = `${mark}\n` === COMMITTED && rest.join('\n') === '';
      return { entries: parsed.entries, committed, legacy: false };
    }
    const legacy = this.parseWith(this.legacySchema, text);
    return { entries: legacy.entries.map((e) => ({ ...e, text: null, mode: 0o644, oldText: null, oldMode: 0o644 })), committed: false, legacy: true };
  }

  private parseWith<T>(schema: z.ZodType<T>, text: string): T {
    let parsed;
    try {
      parsed = schema.safeParse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !parsed.success) {
      throw new Error(`${this.file} is not a journal Portico wrote: move it away to start`);
    }
    return parsed.data;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** The text and permission bits of a file just linked as a backup. */
function readOld(file: string): { text: string; mode: number } {
  try {
    return { text: readFileSync(file, 'utf8'), mode: statSync(file).mode & 0o7777 };
  } catch (error) {
    throw storageError('reading', file, error);
  }
}

function dropBackups(entries: JournalEntry[]): void {
  for (const entry of entries.filter((e) => e.backedUp)) {
    try {
      rmSync(backupPath(entry), { force: true });
    } catch {
      // Left for the next start, which clears the backup folder.
    }
  }
}

async function sameText(file: string, text: string): Promise<boolean> {
  return readFile(file, 'utf8').then(
    (found) => found === text,
    () => false,
  );
}

/** Replaces `file` with `text` (a new inode, flushed), as a roll-back or roll-forward at start does. */
async function replaceDurably(file: string, text: string, mode: number): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.recover.tmp`);
  await writeDurably(temp, text, mode);
  await rename(temp, file);
}

/** Appends `text` to `file` and flushes it. */
async function appendDurably(file: string, text: string): Promise<void> {
  try {
    const handle = await open(file, 'a');
    try {
      await handle.write(text);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw storageError('committing', file, error);
  }
}

/**
 * Writes the new files of a batch into `stageDir`, where the swap takes them from; answers each
 * staged path by name. They are not flushed: the journal holds their text (see above). Nothing is left half-staged when a write fails (a full or
 * read-only disk).
 *
 * Written synchronously, one after another, like the swap's links and renames: three trips through
 * the thread pool per file (open, write, close), with a promise and a file handle each, cost more
 * CPU than the calls themselves (200 files of a stream's size on ext4: 30-50 ms of CPU written so,
 * 55-78 ms through the pool, in about the same time).
 */
export async function writeStaged(stageDir: string, changes: FileChange[]): Promise<Map<string, string>> {
  await mkdir(stageDir, { recursive: true });
  const staged = new Map<string, string>();
  try {
    for (const change of changes) {
      if (change.text === null) continue;
      const file = path.join(stageDir, change.name);
      try {
        // A mode applies only to a file the write creates: a leftover must not lend a key its own.
        if (change.mode !== undefined) rmSync(file, { force: true });
        writeFileSync(file, change.text, { mode: change.mode ?? 0o644 });
      } catch (error) {
        throw storageError('writing', file, error);
      }
      staged.set(change.name, file);
    }
  } catch (error) {
    for (const change of changes) {
      try {
        rmSync(path.join(stageDir, change.name), { force: true });
      } catch {
        // Left for the next start, which clears the staging folder.
      }
    }
    throw error;
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
