/**
 * A parser for nginx's configuration syntax: text → a tree of directives. Pure.
 *
 * It follows nginx's own tokenizer (ngx_conf_file.c): words are separated by white space, `;` ends a
 * simple directive, `{ ... }` holds a block, `#` at the start of a word runs to the end of the line,
 * and single or double quotes group a word; a backslash escapes the next character (see `unescape`).
 */

export interface Directive {
  name: string;
  args: string[];
  /** The directives inside `{ ... }`, or undefined for a simple directive ended by `;`. */
  block?: Directive[];
  /** 1-based line of the directive's name, for error messages. */
  line: number;
}

export class SyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'NginxSyntaxError';
  }
}

/** A `#` comment: its text after the `#`, and whether it stood outside every block. */
export interface Comment {
  text: string;
  line: number;
  topLevel: boolean;
}

type Token =
  | { type: 'word'; value: string; line: number; quoted: boolean }
  | { type: 'comment'; value: string; line: number }
  | { type: ';' | '{' | '}'; line: number };

/**
 * The text of a backslash and the character after it: nginx (ngx_conf_read_token) drops the
 * backslash before a quote or a backslash, turns `\t`, `\r` and `\n` into their control characters,
 * and keeps it before anything else (`\.` in a regex stays `\.`).
 */
function unescape(next: string): string {
  if (next === '"' || next === "'" || next === '\\') return next;
  if (next === 't') return '\t';
  if (next === 'r') return '\r';
  if (next === 'n') return '\n';
  return `\\${next}`;
}

function* tokenize(text: string): Generator<Token> {
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (c === '\n') {
      line += 1;
      i += 1;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i += 1;
    } else if (c === '#') {
      const start = i + 1;
      while (i < n && text[i] !== '\n') i += 1;
      yield { type: 'comment', value: text.slice(start, i), line };
    } else if (c === ';' || c === '{' || c === '}') {
      yield { type: c, line };
      i += 1;
    } else if (c === '"' || c === "'") {
      const start = line;
      let value = '';
      i += 1;
      while (i < n && text[i] !== c) {
        if (text[i] === '\\' && i + 1 < n) {
          value += unescape(text[i + 1] as string);
          i += 1;
        } else {
          value += text[i];
        }
        if (text[i] === '\n') line += 1;
        i += 1;
      }
      if (i >= n) throw new SyntaxError('unterminated quoted string', start);
      i += 1;
      yield { type: 'word', value, line: start, quoted: true };
    } else {
      let value = '';
      while (i < n) {
        const d = text[i] as string;
        if (d === ' ' || d === '\t' || d === '\r' || d === '\n' || d === ';' || d === '{' || d === '}') break;
        if (d === '\\' && i + 1 < n) {
          i += 1;
          if (text[i] === '\n') line += 1;
          value += unescape(text[i] as string);
        } else {
          value += d;
        }
        i += 1;
      }
      yield { type: 'word', value, line, quoted: false };
    }
  }
}

/**
 * Parses a whole file; throws `SyntaxError` where nginx would refuse the text as malformed. The
 * comments, which nginx ignores, are pushed onto `comments` when it is given.
 */
export function parseConfig(text: string, comments?: Comment[]): Directive[] {
  const root: Directive[] = [];
  const stack: Directive[][] = [root];
  let current: { name: string; args: string[]; line: number } | undefined;
  for (const token of tokenize(text)) {
    const level = stack[stack.length - 1] as Directive[];
    if (token.type === 'comment') {
      comments?.push({ text: token.value, line: token.line, topLevel: stack.length === 1 && current === undefined });
    } else if (token.type === 'word') {
      if (current === undefined) current = { name: token.value, args: [], line: token.line };
      else current.args.push(token.value);
    } else if (token.type === ';') {
      if (current === undefined) throw new SyntaxError('unexpected ";"', token.line);
      level.push({ ...current });
      current = undefined;
    } else if (token.type === '{') {
      if (current === undefined) throw new SyntaxError('unexpected "{"', token.line);
      const block: Directive[] = [];
      level.push({ ...current, block });
      stack.push(block);
      current = undefined;
    } else {
      if (current !== undefined) throw new SyntaxError(`directive "${current.name}" is not terminated by ";"`, token.line);
      if (stack.length === 1) throw new SyntaxError('unexpected "}"', token.line);
      stack.pop();
    }
  }
  if (current !== undefined) throw new SyntaxError(`unexpected end of file, expecting ";" or "}"`, current.line);
  if (stack.length !== 1) throw new SyntaxError('unexpected end of file, expecting "}"', text.split('\n').length);
  return root;
}
