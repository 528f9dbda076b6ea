/**
 * The API_TOKENS_FILE format: one token a line, `name scope sha256`, where `sha256` is the hex
 * SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`): the file never holds a token itself.
 * Blank lines and lines starting with `#` are skipped; fields are separated by spaces or tabs.
 *
 * An error names the line and the rule, and never quotes the line: a caller who pasted a token where
 * its hash belongs would otherwise find it in the log.
 */
import { createHash } from 'node:crypto';

export type Scope = 'read' | 'write';
export const SCOPES: readonly Scope[] = ['read', 'write'];

/** A token's name: it appears in logs and answers, so it is kept to a quiet alphabet. */
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NAME_RULE = 'a name is 1-64 letters, digits, "_", "." or "-", starting with a letter or digit';

/** The name API_TOKEN takes when API_TOKENS_FILE is set too. */
export const API_TOKEN_NAME = 'API_TOKEN';

/** Larger files are refused: the table is scanned on every request. */
export const MAX_TOKENS = 10_000;
export const MAX_FILE_BYTES = 1024 * 1024;

export interface TokenEntry {
  name: string;
  scope: Scope;
  /** SHA-256 of the token, 32 bytes. */
  hash: Buffer;
}

export class TokensFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokensFileError';
  }
}

export const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** What `printf %s "$UNSET" | sha256sum` gives: a recipe run with an empty variable. */
const EMPTY_HASH = sha256('').toString('hex');

/**
 * Parses the file's text. `extra` (API_TOKEN, when set) joins the table as if it were a line before
 * the first, so a name or token the file repeats is refused like any repetition.
 */
export function parseTokensFile(text: string, extra: TokenEntry[] = []): TokenEntry[] {
  const entries = [...extra];
  const where = new Map<string, string>(extra.map((e) => [e.name, e.name]));
  const hashes = new Map<string, string>(extra.map((e) => [e.hash.toString('hex'), e.name]));
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    // trim() also drops a byte-order mark, which some editors write before the first line.
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const at = `line ${index + 1}`;
    const fields = line.split(/[ \t]+/);
    if (fields.length !== 3) {
      const hint = fields.length === 4 && fields[3] === '-' ? ' (drop the "-" sha256sum prints after the hash)' : '';
      throw new TokensFileError(`${at}: expected 3 fields "name scope sha256", found ${fields.length}${hint}`);
    }
    const [name = '', scope = '', hex = ''] = fields;
    if (!TOKEN_NAME_PATTERN.test(name)) throw new TokensFileError(`${at}: the name is invalid: ${NAME_RULE}`);
    if (!(SCOPES as string[]).includes(scope)) throw new TokensFileError(`${at}: the scope must be "read" or "write"`);
    if (!/^[0-9A-Fa-f]{64}$/.test(hex)) {
      throw new TokensFileError(`${at}: the third field must be the token's SHA-256 as 64 hex digits (the file holds hashes, never tokens)`);
    }
    const hash = hex.toLowerCase();
    if (hash === EMPTY_HASH) throw new TokensFileError(`${at}: the hash is that of an empty token (was the variable hashed unset?)`);
    const sameName = where.get(name);
    if (sameName !== undefined) throw new TokensFileError(`${at}: the name is already used by ${sameName}`);
    const sameToken = hashes.get(hash);
    if (sameToken !== undefined) throw new TokensFileError(`${at}: the same token as ${sameToken}: one token has one name`);
    if (entries.length >= MAX_TOKENS + extra.length) throw new TokensFileError(`${at}: the file holds more than ${MAX_TOKENS} tokens`);
    where.set(name, at);
    hashes.set(hash, at);
    entries.push({ name, scope: scope as Scope, hash: Buffer.from(hash, 'hex') });
  }
  return entries;
}
