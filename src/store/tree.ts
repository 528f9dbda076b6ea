/**
 * ConfigTree: the directory of per-stream files that nginx includes, and the only code that reads or
 * writes it. Files are the truth: every query reads the live directory, parsing only the files whose
 * mtime, size or inode changed since the last read.
 *
 * Files named `<STREAM_PREFIX><port>.conf` are Portico's. Any other `*.conf` file is foreign: it is
 * reported, its listen ports are treated as taken, and it is never overwritten or deleted.
 */
import { link, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Stream, StreamFileOptions } from '../model/stream.js';
import { listenPorts, readStream } from '../parse/stream.js';
import { replaceAtomically, writeDurably, writeScratch } from './fsync.js';
import { Journal, clearWorkDir, workDir } from './journal.js';

export interface UnreadableStreamFile {
  name: string;
  port: number;
  reason: string;
}

export interface ForeignFile {
  name: string;
  ports: number[];
}

/** What the live stream directory holds, as of one read. */
export interface StreamTree {
  /** Portico's streams by port. */
  streams: Map<number, Stream>;
  /** Portico-named files that do not parse as a stream (edited by hand): reported, their port taken. */
  unreadable: UnreadableStreamFile[];
  foreign: ForeignFile[];
  /** Every `*.conf` file name in the directory, sorted: what nginx's include glob would read. */
  files: string[];
}

type Parsed = { kind: 'stream'; stream: Stream } | { kind: 'unreadable'; reason: string } | { kind: 'foreign'; ports: number[] };

interface CacheEntry {
  key: string;
  parsed: Parsed;
}

/** A file to write (`text`) or remove (`text: null`) in the stream directory. */
export interface FileChange {
  name: string;
  text: string | null;
}

/** New files written beside the live tree, waiting for `nginx -t` and the swap. */
export interface StagedTree {
  /** Every file the staged tree holds, live ones that stay and staged new ones, in include order. */
  includes: string[];
  /** The staged path of each new file, by name. */
  staged: Map<string, string>;
  /** Links to live files whose names cannot be written into an include (see `stage`). */
  aliases: string[];
  changes: FileChange[];
}

/** A file name that may appear in an `include` as it is; others are included through a link. */
const INCLUDABLE_NAME = /^[A-Za-z0-9_.+@=,-]{1,255}$/;

export class ConfigTree {
  readonly streamDir: string;
  private readonly prefix: string;
  private readonly namePattern: RegExp;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly journal: Journal;
  private readonly scratchDir: string;

  /** Where its files find certificates; what they are rendered and read back with. */
  readonly fileOptions: StreamFileOptions;

  constructor(options: { streamDir: string; streamPrefix: string; stateDir: string; certDir: string }) {
    this.streamDir = options.streamDir;
    this.fileOptions = { certDir: options.certDir };
    this.prefix = options.streamPrefix;
    const escaped = this.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.namePattern = new RegExp(`^${escaped}([1-9]\\d{0,4})\\.conf$`);
    this.journal = new Journal(this.streamDir, path.join(workDir(this.streamDir), 'stage'));
    this.scratchDir = path.join(options.stateDir, 'scratch');
  }

  /** The file name of the stream on `port`. */
  fileName(port: number): string {
    return `${this.prefix}${port}.conf`;
  }

  /**
   * Makes the directories, and finishes what a crash interrupted: a pending journal is rolled back
   * (the batch was never acknowledged) and half-staged files are removed. Answers the number of
   * files restored, or undefined when there was nothing to recover.
   */
  async open(): Promise<number | undefined> {
    await mkdir(this.streamDir, { recursive: true });
    await mkdir(this.scratchDir, { recursive: true });
    await mkdir(workDir(this.streamDir), { recursive: true });
    const restored = await this.journal.rollBack();
    await clearWorkDir(this.streamDir);
    return restored;
  }

  /** Reads the live directory; unchanged files come from the cache. */
  async read(): Promise<StreamTree> {
    const entries = await readdir(this.streamDir, { withFileTypes: true });
    const tree: StreamTree = { streams: new Map(), unreadable: [], foreign: [], files: [] };
    const seen = new Set<string>();
    for (const entry of entries) {
      if (!entry.name.endsWith('.conf') || entry.name.startsWith('.')) continue;
      const file = path.join(this.streamDir, entry.name);
      const info = await stat(file).catch(() => undefined);
      if (info === undefined || !info.isFile()) continue;
      seen.add(entry.name);
      tree.files.push(entry.name);
      const key = `${info.ino}:${info.size}:${info.mtimeMs}`;
      let cached = this.cache.get(entry.name);
      if (cached === undefined || cached.key !== key) {
        cached = { key, parsed: this.parse(entry.name, await readFile(file, 'utf8')) };
        this.cache.set(entry.name, cached);
      }
      const { parsed } = cached;
      const port = Number(this.namePattern.exec(entry.name)?.[1]);
      if (parsed.kind === 'stream') tree.streams.set(parsed.stream.port, parsed.stream);
      else if (parsed.kind === 'unreadable') tree.unreadable.push({ name: entry.name, port, reason: parsed.reason });
      else tree.foreign.push({ name: entry.name, ports: parsed.ports });
    }
    for (const name of this.cache.keys()) if (!seen.has(name)) this.cache.delete(name);
    tree.files.sort();
    return tree;
  }

  private parse(name: string, text: string): Parsed {
    const match = this.namePattern.exec(name);
    if (!match) return { kind: 'foreign', ports: listenPorts(text) };
    try {
      const stream = readStream(text, this.fileOptions);
      if (stream.port !== Number(match[1])) {
        return { kind: 'unreadable', reason: `it listens on ${stream.port}, not on the port its name says` };
      }
      return { kind: 'stream', stream };
    } catch (error) {
      return { kind: 'unreadable', reason: (error as Error).message };
    }
  }

  /**
   * Writes the new files of a batch into the staging folder and lists the tree nginx would read
   * after the swap. Nothing live changes.
   */
  async stage(changes: FileChange[], current: StreamTree): Promise<StagedTree> {
    const stageDir = path.join(workDir(this.streamDir), 'stage');
    await mkdir(stageDir, { recursive: true });
    const staged = new Map<string, string>();
    const touched = new Set(changes.map((c) => c.name));
    // Written side by side: one batch's flushes overlap instead of queueing one after another.
    await Promise.all(
      changes.map(async (change) => {
        if (change.text === null) return;
        const file = path.join(stageDir, change.name);
        await writeDurably(file, change.text);
        staged.set(change.name, file);
      }),
    );
    const names = new Set(current.files.filter((name) => !touched.has(name)));
    for (const name of staged.keys()) names.add(name);
    const includes: string[] = [];
    const aliases: string[] = [];
    for (const name of [...names].sort()) {
      const live = path.join(this.streamDir, name);
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
    return { includes, staged, aliases, changes };
  }

  /** Discards a staged tree that will not be swapped in (or the links left by one that was). */
  async unstage(staged: StagedTree): Promise<void> {
    await Promise.all([...staged.staged.values(), ...staged.aliases].map((file) => rm(file, { force: true })));
  }

  /** Swaps a staged tree in (see `Journal.swap`); the change is not permanent until `commit`. */
  async swap(staged: StagedTree): Promise<void> {
    await this.journal.swap(
      staged.changes.map((c) => ({ dir: this.streamDir, name: c.name, staged: staged.staged.get(c.name) ?? null })),
    );
  }

  /** Makes a swapped tree permanent. */
  async commit(staged: StagedTree): Promise<void> {
    await this.journal.commit();
    await this.unstage(staged);
  }

  /** Restores the tree as it was before the last swap. */
  async rollBack(staged: StagedTree): Promise<void> {
    await this.journal.rollBack();
    await this.unstage(staged);
  }

  /** Writes a main config nginx runs (managed mode), atomically. */
  async writeMain(file: string, text: string): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    await replaceAtomically(file, text);
  }

  /** Writes a throwaway file (a test config) under the state directory; answers its path. */
  async writeScratch(name: string, text: string): Promise<string> {
    const file = path.join(this.scratchDir, name);
    await writeScratch(file, text);
    return file;
  }

  /** Reads a config file that is not Portico's (the operator's nginx.conf in external mode). */
  async readOther(file: string): Promise<string> {
    return readFile(file, 'utf8');
  }

  /** Writes a throwaway file beside `besides` (so that relative includes resolve the same). */
  async writeBeside(besides: string, name: string, text: string): Promise<string> {
    const file = path.join(path.dirname(besides), name);
    await writeScratch(file, text);
    return file;
  }
}

/** Every port a file of the tree listens on: Portico's streams, unreadable and foreign files. */
export function claimedPorts(tree: StreamTree): Set<number> {
  const ports = new Set<number>(tree.streams.keys());
  for (const file of tree.unreadable) ports.add(file.port);
  for (const file of tree.foreign) for (const port of file.ports) ports.add(port);
  return ports;
}
