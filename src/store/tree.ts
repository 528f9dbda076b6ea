/**
 * ConfigTree: the directory of per-stream files that nginx includes, and the only code that reads or
 * writes it. Files are the truth: every query reads the live directory, parsing only the files whose
 * mtime, size or inode changed since the last read.
 *
 * Files named `<STREAM_PREFIX><port>.conf` are Portico's. Any other `*.conf` file is foreign: it is
 * reported, its listen ports are treated as taken, and it is never overwritten or deleted.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Stream, StreamFileOptions } from '../model/stream.js';
import { listenPorts, readStream } from '../parse/stream.js';
import { ConfigDir, type FileChange, type StagedTree } from './config-dir.js';
import { replaceAtomically, writeScratch } from './fsync.js';

export type { FileChange, StagedTree };

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

export class ConfigTree {
  readonly streamDir: string;
  private readonly prefix: string;
  private readonly namePattern: RegExp;
  private readonly files: ConfigDir<Parsed>;
  private readonly scratchDir: string;
  /**
   * Texts of the batch under way that were just read back as a stream (`noteReadBack`), by file name:
   * the read after the swap takes the stream from here instead of parsing the same text a second time.
   */
  private readonly readBack = new Map<string, { text: string; stream: Stream }>();

  /** Where its files find certificates; what they are rendered and read back with. */
  readonly fileOptions: StreamFileOptions;

  constructor(options: { streamDir: string; streamPrefix: string; stateDir: string; certDir: string; rescanMs?: number }) {
    this.streamDir = options.streamDir;
    this.fileOptions = { certDir: options.certDir };
    this.prefix = options.streamPrefix;
    const escaped = this.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.namePattern = new RegExp(`^${escaped}([1-9]\\d{0,4})\\.conf$`);
    this.files = new ConfigDir(this.streamDir, (name, text) => this.parse(name, text), options.rescanMs);
    this.scratchDir = path.join(options.stateDir, 'scratch');
  }

  /** The directory (`Staging`). */
  get dir(): string {
    return this.streamDir;
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
    await mkdir(this.scratchDir, { recursive: true });
    return this.files.open();
  }

  /** Reads the live directory; unchanged files come from the cache. */
  async read(): Promise<StreamTree> {
    const tree: StreamTree = { streams: new Map(), unreadable: [], foreign: [], files: [] };
    for (const { name, parsed } of await this.files.read()) {
      tree.files.push(name);
      const port = Number(this.namePattern.exec(name)?.[1]);
      if (parsed.kind === 'stream') tree.streams.set(parsed.stream.port, parsed.stream);
      else if (parsed.kind === 'unreadable') tree.unreadable.push({ name, port, reason: parsed.reason });
      else tree.foreign.push({ name, ports: parsed.ports });
    }
    return tree;
  }

  /**
   * Records that `text`, to be written as `name`, reads back (`readStream` with `fileOptions`) as
   * `stream`. Parsing is a pure function of the name and the text, so the record stands for the parse
   * whenever that very text is read under that name; it is used once, and dropped with the batch.
   */
  noteReadBack(name: string, text: string, stream: Stream): void {
    this.readBack.set(name, { text, stream });
  }

  private parse(name: string, text: string): Parsed {
    const match = this.namePattern.exec(name);
    if (!match) return { kind: 'foreign', ports: listenPorts(text) };
    const known = this.readBack.get(name);
    if (known !== undefined) {
      this.readBack.delete(name);
      if (known.text === text && known.stream.port === Number(match[1])) return { kind: 'stream', stream: known.stream };
    }
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

  /** See `ConfigDir.stage`. */
  stage(changes: FileChange[], current: { files: string[] }): Promise<StagedTree> {
    return this.files.stage(changes, current);
  }

  unstage(staged: StagedTree): Promise<void> {
    this.readBack.clear();
    return this.files.unstage(staged);
  }

  swap(staged: StagedTree): Promise<void> {
    return this.files.swap(staged);
  }

  async commit(staged: StagedTree): Promise<void> {
    try {
      await this.files.commit(staged);
    } finally {
      this.readBack.clear();
    }
  }

  /** See `ConfigDir.settle`. */
  settle(): Promise<void> {
    return this.files.settle();
  }

  rollBack(staged: StagedTree): Promise<void> {
    this.readBack.clear();
    return this.files.rollBack(staged);
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
