/**
 * ConfigDir: one directory of config files that nginx includes with a `*.conf` glob, as Portico
 * reads and changes it. Reads are cached by inode, size and mtime, so a query parses only the files
 * that changed; changes are staged beside the live files, swapped in under an undo journal, and
 * committed or rolled back. What the files mean is the caller's: it hands in the parser.
 *
 * At thousands of files even looking at each one costs more than a query may: while the directory
 * itself is unchanged (every write Portico makes is a rename, which changes it), a read answers the
 * last scan, and scans again at most `RESCAN_MS` later, which is when a file edited in place by
 * hand is seen.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { link, mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Journal, clearWorkDir, workDir, writeStaged, type FileChange } from './journal.js';

export type { FileChange };

/** New files written beside the live tree, waiting for `nginx -t` and the swap. */
export interface StagedTree {
  /** Every file the staged tree holds, live ones that stay and staged new ones, in include order. */
  includes: string[];
  /** The staged path of each new file, by name. */
  staged: Map<string, string>;
  /** Links to live files whose names cannot be written into an include (see `stage`). */
  aliases: string[];
  /** Each staged file's inode, size and mtime: a rename keeps them, so after the swap they tell Portico's file from a hand edit. */
  keys: Map<string, string>;
  changes: FileChange[];
}

/** A file name that may appear in an `include` as it is; others are included through a link. */
const INCLUDABLE_NAME = /^[A-Za-z0-9_.+@=,-]{1,255}$/;

/** How stale a read may be for a file edited in place (Portico's own changes are seen at once). */
export const RESCAN_MS = 1000;

/** What tells one version of a file from another without reading it. */
const fileKey = (info: Stats): string => `${info.ino}:${info.size}:${info.mtimeMs}`;

/** Files a scan looks at per turn of the event loop (see `look`). */
const SCAN_CHUNK = 256;

interface CacheEntry<P> {
  key: string;
  parsed: P;
}

export class ConfigDir<P> {
  private readonly cache = new Map<string, CacheEntry<P>>();
  private readonly journal: Journal;
  private snapshot: { dirKey: string; at: number; entries: Array<{ name: string; parsed: P }> } | undefined;

  constructor(
    readonly dir: string,
    private readonly parseFile: (name: string, text: string) => P,
    private readonly rescanMs = RESCAN_MS,
  ) {
    this.journal = new Journal(dir, path.join(workDir(dir), 'stage'));
  }

  /**
   * Makes the directory, and finishes what a crash interrupted: the batch in the journal is rolled
   * forward if it was committed, back if not (see `Journal.recover`), and half-staged files are removed. Answers the number of
   * files restored, or undefined when there was nothing to recover.
   */
  async open(): Promise<number | undefined> {
    await mkdir(this.dir, { recursive: true });
    await mkdir(workDir(this.dir), { recursive: true });
    const restored = await this.journal.recover();
    await clearWorkDir(this.dir);
    return restored;
  }

  /** Every `*.conf` file of the directory, sorted as nginx's glob reads them, each parsed (from the cache when unchanged). */
  async read(): Promise<Array<{ name: string; parsed: P }>> {
    const dirInfo = await stat(this.dir);
    const dirKey = `${dirInfo.ino}:${dirInfo.mtimeMs}`;
    const now = Date.now();
    if (this.snapshot !== undefined && this.snapshot.dirKey === dirKey && now - this.snapshot.at < this.rescanMs) {
      return this.snapshot.entries;
    }
    const names = (await readdir(this.dir)).filter((name) => name.endsWith('.conf') && !name.startsWith('.')).sort();
    const entries: Array<{ name: string; parsed: P }> = [];
    for (let i = 0; i < names.length; i += 1) {
      if (i > 0 && i % SCAN_CHUNK === 0) await yieldToEventLoop();
      const name = names[i] as string;
      const parsed = this.look(name);
      if (parsed !== undefined) entries.push({ name, parsed });
    }
    const seen = new Set(names);
    for (const name of this.cache.keys()) if (!seen.has(name)) this.cache.delete(name);
    this.snapshot = { dirKey, at: now, entries };
    return entries;
  }

  /**
   * The parsed file `name`, from the cache while its inode, size and mtime are unchanged, or
   * undefined when it is gone or not a file. `written` is the text Portico itself just put there,
   * which spares reading it back when the size agrees.
   *
   * Synchronous on purpose: a stat through the thread pool costs several times a direct one (5,000
   * files: 37-75 ms against 10-22 ms, measured here), and scans take `SCAN_CHUNK` files per turn of
   * the event loop, so other requests wait a few ms at most.
   */
  private look(name: string, written?: { text: string; key: string }): P | undefined {
    const file = path.join(this.dir, name);
    let info: Stats | undefined;
    try {
      info = statSync(file, { throwIfNoEntry: false });
    } catch {
      // A link loop or a folder Portico may not search: not a file it can read, as a vanished one.
      info = undefined;
    }
    if (info === undefined || !info.isFile()) {
      this.cache.delete(name);
      return undefined;
    }
    const key = fileKey(info);
    const cached = this.cache.get(name);
    if (cached !== undefined && cached.key === key) return cached.parsed;
    // The very file Portico staged (same inode, size and mtime), not one written over it since.
    let text = written !== undefined && written.key === key ? written.text : undefined;
    if (text === undefined) {
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        // Removed or made unreadable between the stat and the read: not part of the tree now.
        this.cache.delete(name);
        return undefined;
      }
    }
    const parsed = this.parseFile(name, text);
    this.cache.set(name, { key, parsed });
    return parsed;
  }

  /**
   * Writes the new files of a batch into the staging folder and lists the tree nginx would read
   * after the swap. Nothing live changes.
   */
  async stage(changes: FileChange[], current: { files: string[] }): Promise<StagedTree> {
    const stageDir = path.join(workDir(this.dir), 'stage');
    const staged = await writeStaged(stageDir, changes);
    const keys = new Map<string, string>();
    // Synchronously, as the staging writes (see `writeStaged`).
    for (const [name, file] of staged) keys.set(name, fileKey(statSync(file)));
    const touched = new Set(changes.map((c) => c.name));
    const names = new Set(current.files.filter((name) => !touched.has(name)));
    for (const name of staged.keys()) names.add(name);
    const includes: string[] = [];
    const aliases: string[] = [];
    for (const name of [...names].sort()) {
      const live = path.join(this.dir, name);
      if (staged.has(name)) includes.push(staged.get(name) as string);
      else if (INCLUDABLE_NAME.test(name)) includes.push(live);
      else {
        // A foreign file named with spaces or other characters no include may carry unchecked:
        // nginx's glob reads it, so the test must too, through a link of a plain name.
        const alias = path.join(stageDir, `alias-${aliases.length}.conf`);
        await rm(alias, { force: true });
        await link(live, alias);
        aliases.push(alias);
        includes.push(alias);
      }
    }
    return { includes, staged, aliases, changes, keys };
  }

  /** Discards a staged tree that will not be swapped in (or the links left by one that was). */
  async unstage(staged: StagedTree): Promise<void> {
    await Promise.all([...staged.staged.values(), ...staged.aliases].map((file) => rm(file, { force: true })));
  }

  /** Swaps a staged tree in (see `Journal.swap`); the change is not permanent until `commit`. */
  async swap(staged: StagedTree): Promise<void> {
    await this.journal.swap(
      staged.changes.map((c) => ({ dir: this.dir, name: c.name, staged: staged.staged.get(c.name) ?? null, text: c.text, ...(c.mode !== undefined && { mode: c.mode }) })),
    );
  }

  /** Makes a swapped tree permanent. */
  async commit(staged: StagedTree): Promise<void> {
    await this.journal.commit();
    // Committed: what follows only tidies up, and must not turn a batch that is live into one
    // reported as failed (and rolled back from a journal that is gone).
    try {
      // The staged files are live now (the swap renamed each one); only the links are left.
      await Promise.all(staged.aliases.map((file) => rm(file, { force: true })));
      await this.refresh(
        staged.changes.map((c) => {
          const key = staged.keys.get(c.name);
          return { name: c.name, written: c.text !== null && key !== undefined ? { text: c.text, key } : undefined };
        }),
      );
    } catch {
      // The next read scans the directory instead (a link left behind is cleared at the next start).
      this.snapshot = undefined;
    }
  }

  /** Waits until the last committed batch is on disk and the journal is empty (see `Journal.settle`). */
  settle(): Promise<void> {
    return this.journal.settle();
  }

  /** Restores the tree as it was before the last swap. */
  async rollBack(staged: StagedTree): Promise<void> {
    await this.journal.rollBack();
    await this.unstage(staged);
    // The restored files are the old inodes, still in the cache: nothing is parsed again.
    await this.refresh(staged.changes.map((c) => ({ name: c.name, written: undefined })));
  }

  /**
   * Brings the last scan up to date with files Portico itself just changed, so that the next read
   * need not look at every file again because the directory changed. The scan's time is kept: a
   * file edited in place by hand is still seen within `rescanMs` of the last full scan.
   */
  private async refresh(changes: Array<{ name: string; written: { text: string; key: string } | undefined }>): Promise<void> {
    const snapshot = this.snapshot;
    if (snapshot === undefined) return;
    const entries = new Map(snapshot.entries.map((entry) => [entry.name, entry]));
    for (const change of changes) {
      const parsed = this.look(change.name, change.written);
      if (parsed === undefined) entries.delete(change.name);
      else entries.set(change.name, { name: change.name, parsed });
    }
    const dirInfo = await stat(this.dir);
    const sorted = [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.snapshot = { dirKey: `${dirInfo.ino}:${dirInfo.mtimeMs}`, at: snapshot.at, entries: sorted };
  }
}
