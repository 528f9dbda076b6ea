/**
 * Small readers shared by the file readers of `parse/`: the error they throw, and the common shapes
 * of a directive. Pure.
 */
import { parseConfig, type Comment, type Directive } from './syntax.js';

export type { Directive };

/** A file Portico cannot read back as one of its resources; the message says where and why. */
export class UnreadableFile extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreadableFile';
  }
}

export function fail(message: string, directive?: { line: number }): never {
  throw new UnreadableFile(directive === undefined ? message : `line ${directive.line}: ${message}`);
}

/** A file's directives and comments; a text nginx would refuse as malformed is an UnreadableFile. */
export function parseFile(text: string): { directives: Directive[]; comments: Comment[] } {
  const comments: Comment[] = [];
  try {
    return { directives: parseConfig(text, comments), comments };
  } catch (error) {
    fail((error as Error).message);
  }
}

/** The one argument of a simple directive. */
export function single(directive: Directive): string {
  if (directive.block !== undefined || directive.args.length !== 1) {
    fail(`"${directive.name}" must have exactly one argument`, directive);
  }
  return directive.args[0] as string;
}

/** The value of an `on`/`off` flag. */
export function flag(directive: Directive): boolean {
  const value = single(directive);
  if (value !== 'on' && value !== 'off') fail(`"${directive.name}" must be on or off`, directive);
  return value === 'on';
}
