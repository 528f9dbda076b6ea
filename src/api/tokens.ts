/**
 * The API's tokens: API_TOKEN (one write token) and the named, scoped tokens of API_TOKENS_FILE,
 * which `reload` reads again (main.ts calls it on SIGHUP). A file that cannot be read or parsed stops
 * start-up; on a reload it leaves the table as it was, and the error is logged.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { API_TOKEN_NAME, MAX_FILE_BYTES, TokensFileError, parseTokensFile, sha256, type Scope, type TokenEntry } from './tokens-file.js';

export interface TokenSources {
  /** API_TOKEN: a write token, named "API_TOKEN". */
  apiToken: string | undefined;
  /** API_TOKENS_FILE: its path. */
  file: string | undefined;
}

/** Who a request authenticated as: never the token, only its name and scope. */
export interface Caller {
  name: string;
  scope: Scope;
}

/**
 * Reads the file, refusing one every user may write (anyone could grant themselves a token), and
 * anything but a regular file of at most MAX_FILE_BYTES.
 */
async function readTokensFile(file: string, log: Logger): Promise<string> {
  // O_NONBLOCK: a FIFO put in the file's place would otherwise hold the open (and every reload) forever.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    throw new TokensFileError(`cannot be read (${error.code ?? error.message})`);
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new TokensFileError('is not a regular file');
    const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
    if ((stat.mode & 0o002) !== 0) throw new TokensFileError(`is writable by every user (mode ${mode}): anyone could add a token; chmod o-w it`);
    if ((stat.mode & 0o004) !== 0) {
      log.warn({ file, mode }, `API_TOKENS_FILE is readable by every user (mode ${mode}): its hashes let anyone test guesses of a weak token; chmod 600 it`);
    }
    // Read at most one byte past the limit, whatever the stat said: the file may grow meanwhile.
    const buffer = Buffer.alloc(MAX_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      length += bytesRead;
      if (bytesRead === 0 || length === buffer.length) break;
    }
    if (length > MAX_FILE_BYTES) throw new TokensFileError(`is larger than ${MAX_FILE_BYTES} bytes`);
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}

export class Tokens {
  private entries: TokenEntry[];
  private reloading: Promise<void> = Promise.resolve();

  private constructor(
    private readonly sources: TokenSources,
    private readonly log: Logger,
    entries: TokenEntry[],
  ) {
    this.entries = entries;
  }

  /** Undefined when neither API_TOKEN nor API_TOKENS_FILE is set: the API is open. */
  static async load(sources: TokenSources, log: Logger): Promise<Tokens | undefined> {
    if (sources.apiToken === undefined && sources.file === undefined) return undefined;
    const tokens = new Tokens(sources, log, await Tokens.read(sources, log));
    if (sources.file !== undefined) {
      if (tokens.entries.length === 0) log.warn({ file: sources.file }, 'API_TOKENS_FILE holds no token: every route but /healthz answers 401');
      else log.info({ file: sources.file, tokens: tokens.describe() }, `API tokens: ${tokens.entries.length} read`);
    }
    return tokens;
  }

  private static async read(sources: TokenSources, log: Logger): Promise<TokenEntry[]> {
    const extra = sources.apiToken === undefined ? [] : [{ name: API_TOKEN_NAME, scope: 'write' as const, hash: sha256(sources.apiToken) }];
    if (sources.file === undefined) return extra;
    try {
      return parseTokensFile(await readTokensFile(sources.file, log), extra);
    } catch (error) {
      if (error instanceof TokensFileError) throw new TokensFileError(`API_TOKENS_FILE ${sources.file}: ${error.message}`);
      throw error;
    }
  }

  /**
   * The caller `token` authenticates, or undefined. Every entry is compared, in the same time
   * whichever matches (or none): the time tells nothing about the tokens.
   */
  find(token: string): Caller | undefined {
    const presented = sha256(token);
    let found: TokenEntry | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.hash, presented) && found === undefined) found = entry;
    }
    return found === undefined ? undefined : { name: found.name, scope: found.scope };
  }

  /** The names and scopes, for the log (never a hash). */
  describe(): string[] {
    return this.entries.map((e) => `${e.name}:${e.scope}`);
  }

  /**
   * Reads API_TOKENS_FILE again. A file that fails leaves the table as it was; the error is logged
   * (and answered, for tests). Reloads run one after the other, so the last one read wins.
   */
  reload(): Promise<Error | undefined> {
    const run = this.reloading.then(async () => {
      if (this.sources.file === undefined) {
        this.log.info('SIGHUP: no API_TOKENS_FILE to read again');
        return undefined;
      }
      try {
        this.entries = await Tokens.read(this.sources, this.log);
        this.log.info({ file: this.sources.file, tokens: this.describe() }, `API tokens: ${this.entries.length} read again`);
        return undefined;
      } catch (error) {
        this.log.error(
          { file: this.sources.file, kept: this.describe() },
          `${(error as Error).message}; keeping the ${this.entries.length} tokens read before`,
        );
        return error as Error;
      }
    });
    this.reloading = run.then(() => undefined);
    return run;
  }
}
