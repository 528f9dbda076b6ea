/**
 * Reads a log file that nginx appends to, incrementally and rotation-safe. The file is read through
 * an open descriptor from the last offset, so a rename does not lose what nginx still writes to the
 * renamed file: once the path names another file (nginx reopened its logs: SIGUSR1, a reload, or a
 * restart), the old one is read on until nginx has stopped writing to it (old workers flush their
 * buffers as they reopen or exit) and the new one from its start. Bytes are counted once: each
 * descriptor has one offset. A file truncated in place (copytruncate) is read again from its start;
 * lines written between the last read and the truncation are lost, which a rename never loses.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { MAX_LINE_BYTES } from './line.js';

interface Open {
  handle: FileHandle;
  ino: number;
  dev: number;
  offset: number;
  /** The bytes after the last newline read, waiting for the rest of their line. */
  partial: Buffer;
  /** Inside a line longer than MAX_LINE_BYTES: dropped up to its newline. */
  discarding: boolean;
  /** When it last grew (performance.now()), for a file being drained. */
  grewAt: number;
}

export interface TailSink {
  lines(lines: string[]): void;
  /** A line too long to be Portico's: dropped. */
  oversized(): void;
}

/** Read at most this much per file and poll, so one poll stays bounded; the rest comes next poll. */
const READ_CHUNK = 1 << 20;
const MAX_CHUNKS_PER_POLL = 16;
/** At most this many renamed files are read on at once; an older one is closed. */
const MAX_DRAINING = 8;

export class LogTail {
  private current: Open | undefined;
  private readonly draining: Open[] = [];
  private started = false;
  private readonly buffer = Buffer.allocUnsafe(READ_CHUNK);

  constructor(
    readonly path: string,
    private readonly sink: TailSink,
    /** How long a renamed file is read on after it last grew: old workers write to it until they exit. */
    private readonly drainMs: number,
  ) {}

  /** True when the last poll stopped at its bound with more to read. */
  behind = false;

  /** Reads what was appended since the last poll. Never throws for a missing file. */
  async poll(): Promise<void> {
    this.behind = false;
    const now = performance.now();
    if (this.current === undefined) {
      // At the first poll the file's past is skipped: the counters start with Portico.
      this.current = await this.openPath(this.started);
      this.started = true;
    }
    if (this.current !== undefined) await this.readFrom(this.current, now);
    const onDisk = await stat(this.path).catch(() => undefined);
    const cur = this.current;
    if (cur !== undefined && (onDisk === undefined || onDisk.ino !== cur.ino || onDisk.dev !== cur.dev)) {
      // Renamed (or deleted): nginx writes on to it until it reopens; read it on while it grows.
      cur.grewAt = now;
      this.draining.push(cur);
      this.current = undefined;
      if (onDisk !== undefined) {
        this.current = await this.openPath(true);
        if (this.current !== undefined) await this.readFrom(this.current, now);
      }
    } else if (cur !== undefined && onDisk !== undefined && onDisk.size < cur.offset) {
      // Truncated in place.
      cur.offset = 0;
      cur.partial = Buffer.alloc(0);
      await this.readFrom(cur, now);
    }
    for (const old of [...this.draining]) {
      await this.readFrom(old, now);
      if (now - old.grewAt > this.drainMs || this.draining.length > MAX_DRAINING) await this.close(old);
    }
  }

  /** Reads every file to its end once more and closes them. */
  async stop(): Promise<void> {
    const now = performance.now();
    for (const file of [...this.draining, ...(this.current === undefined ? [] : [this.current])]) {
      await this.readFrom(file, now).catch(() => undefined);
      await this.close(file);
    }
    this.current = undefined;
  }

  /** Open files: the current one and those renamed and still read. */
  get openFiles(): number {
    return this.draining.length + (this.current === undefined ? 0 : 1);
  }

  private async close(file: Open): Promise<void> {
    const i = this.draining.indexOf(file);
    if (i >= 0) this.draining.splice(i, 1);
    await file.handle.close().catch(() => undefined);
  }

  private async openPath(fromStart: boolean): Promise<Open | undefined> {
    const handle = await open(this.path, 'r').catch(() => undefined);
    if (handle === undefined) return undefined;
    const st = await handle.stat();
    return { handle, ino: st.ino, dev: st.dev, offset: fromStart ? 0 : st.size, partial: Buffer.alloc(0), discarding: false, grewAt: performance.now() };
  }

  private async readFrom(file: Open, now: number): Promise<void> {
    for (let chunk = 0; chunk < MAX_CHUNKS_PER_POLL; chunk += 1) {
      const { bytesRead } = await file.handle.read(this.buffer, 0, READ_CHUNK, file.offset);
      if (bytesRead === 0) return;
      file.offset += bytesRead;
      file.grewAt = now;
      this.split(file, this.buffer.subarray(0, bytesRead));
      if (bytesRead < READ_CHUNK) return;
    }
    this.behind = true;
  }

  private split(file: Open, data: Buffer): void {
    const lines: string[] = [];
    let start = 0;
    for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
      const piece = data.subarray(start, nl);
      start = nl + 1;
      if (file.discarding) {
        file.discarding = false;
        file.partial = Buffer.alloc(0);
        continue;
      }
      const whole = file.partial.length > 0 ? Buffer.concat([file.partial, piece]) : piece;
      file.partial = Buffer.alloc(0);
      if (whole.length > MAX_LINE_BYTES) this.sink.oversized();
      else lines.push(whole.toString('latin1'));
    }
    const rest = data.subarray(start);
    if (!file.discarding && rest.length > 0) {
      if (file.partial.length + rest.length > MAX_LINE_BYTES) {
        file.discarding = true;
        file.partial = Buffer.alloc(0);
        this.sink.oversized();
      } else {
        file.partial = Buffer.concat([file.partial, rest]);
      }
    }
    if (lines.length > 0) this.sink.lines(lines);
  }
}
