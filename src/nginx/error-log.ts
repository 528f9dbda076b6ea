/**
 * Reading what nginx writes to its error log from a moment on, across a log rotation.
 *
 * A rotation either renames the file, and nginx keeps writing to the renamed file until it reopens
 * its logs (USR1, or the new config of a reload), or copies and truncates it in place (logrotate's
 * `copytruncate`), and nginx keeps writing at the new end. Reading "the path from the offset it had"
 * sees neither: a renamed log leaves the path empty or missing, a truncated one shorter than the
 * offset. So a cursor follows each file the log may be in, by inode: the file at the path when it was
 * opened, any other file that appears at the path later, and the file the master really writes to
 * (nginx points its stderr, fd 2, at its error log, so `/proc/<pid>/fd/2` is that file whatever its
 * name now). A file that became shorter than what was read of it was truncated: it is read again
 * from its start.
 */
import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

/** Most bytes read from one file per look: a look is for the lines of one reload, not a whole log. */
const MAX_READ = 1 << 20;

interface Source {
  handle: FileHandle;
  /** `dev:ino`: how a file is told apart from another at the same path. */
  id: string;
  position: number;
  /** The start of a line nginx has not finished writing. */
  partial: string;
}

const idOf = (info: { dev: number; ino: number }): string => `${info.dev}:${info.ino}`;

export class ErrorLogCursor {
  private readonly sources: Source[] = [];
  private readonly seen: string[] = [];

  private constructor(
    private readonly file: string | undefined,
    private readonly masterPid: number | undefined,
  ) {}

  /**
   * A cursor at the end of the error log `file` (undefined: no log to read; every read is empty) and
   * of the file master `masterPid` writes its log to, if that is another file.
   */
  static async open(file: string | undefined, masterPid?: number): Promise<ErrorLogCursor> {
    const cursor = new ErrorLogCursor(file, masterPid);
    if (file !== undefined) await cursor.follow(false);
    return cursor;
  }

  /** Every line written since the cursor was opened, in the order read (file by file). */
  async lines(): Promise<string[]> {
    if (this.file === undefined) return this.seen;
    // A file found now, after the cursor was opened, holds only new lines: read from its start.
    await this.follow(true);
    for (const source of this.sources) await this.readNew(source);
    return this.seen;
  }

  /** Closes every file; safe to call twice. */
  async close(): Promise<void> {
    const sources = this.sources.splice(0);
    await Promise.all(sources.map((source) => source.handle.close().catch(() => undefined)));
  }

  /** Starts following the file at the path and the master's, if not followed yet. */
  private async follow(fromStart: boolean): Promise<void> {
    const candidates = [this.file as string, ...(this.masterPid === undefined ? [] : [`/proc/${this.masterPid}/fd/2`])];
    for (const path of candidates) {
      const info = await stat(path).catch(() => undefined);
      // Not a file: gone, a pipe (a container's stderr), /dev/null before nginx redirects it.
      if (info === undefined || !info.isFile() || this.sources.some((s) => s.id === idOf(info))) continue;
      // Non-blocking: a FIFO put in the file's place after the stat would block an open for reading.
      const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => undefined);
      if (handle === undefined) continue;
      const opened = await handle.stat();
      if (idOf(opened) !== idOf(info) || this.sources.some((s) => s.id === idOf(opened))) {
        await handle.close(); // replaced between the stat and the open: the next look finds it
        continue;
      }
      this.sources.push({ handle, id: idOf(opened), position: fromStart ? 0 : opened.size, partial: '' });
    }
  }

  private async readNew(source: Source): Promise<void> {
    const { size } = await source.handle.stat();
    if (size < source.position) {
      // Truncated in place (copytruncate): what nginx wrote since is at the start.
      source.position = 0;
      source.partial = '';
    }
    if (size === source.position) return;
    const buffer = Buffer.alloc(Math.min(size - source.position, MAX_READ));
    const { bytesRead } = await source.handle.read(buffer, 0, buffer.length, source.position);
    source.position += bytesRead;
    const text = source.partial + buffer.subarray(0, bytesRead).toString('utf8');
    const parts = text.split('\n');
    source.partial = parts.pop() ?? '';
    this.seen.push(...parts.filter((line) => line !== ''));
  }
}
