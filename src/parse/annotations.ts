/**
 * The two comments a stream or app file may carry for what nginx has no directive for (see
 * `render/stream.ts`, `render/app.ts`): `# portico-defaults: path=value ...` (fields given with their
 * default value) and `# portico-labels: name=value ...`. Pure.
 */
import type { Comment } from './syntax.js';
import { fail } from './directive.js';

export interface Annotations {
  /** `path` → value of each field given with its default value. */
  defaults: Map<string, string>;
  labels: Record<string, string> | undefined;
}

const DEFAULTS = 'portico-defaults:';
const LABELS = 'portico-labels:';

function entries(comment: Comment, body: string): Array<[string, string]> {
  const words = body.split(' ').filter((word) => word !== '');
  return words.map((word) => {
    const at = word.indexOf('=');
    if (at <= 0) fail(`"${word}" is not name=value`, comment);
    return [word.slice(0, at), word.slice(at + 1)];
  });
}

/** Reads the annotations among a file's comments; other comments are ignored. */
export function readAnnotations(comments: Comment[]): Annotations {
  const result: Annotations = { defaults: new Map(), labels: undefined };
  let sawDefaults = false;
  for (const comment of comments) {
    const text = comment.text.trim();
    if (!text.startsWith('portico-')) continue;
    if (!comment.topLevel) fail('a portico- comment inside a block', comment);
    if (text.startsWith(DEFAULTS)) {
      if (sawDefaults) fail(`"${DEFAULTS}" is given twice`, comment);
      sawDefaults = true;
      for (const [path, value] of entries(comment, text.slice(DEFAULTS.length))) {
        if (result.defaults.has(path)) fail(`"${path}" is given twice`, comment);
        result.defaults.set(path, value);
      }
    } else if (text.startsWith(LABELS)) {
      if (result.labels !== undefined) fail(`"${LABELS}" is given twice`, comment);
      result.labels = {};
      for (const [name, value] of entries(comment, text.slice(LABELS.length))) {
        if (Object.hasOwn(result.labels, name)) fail(`label "${name}" is given twice`, comment);
        result.labels[name] = value;
      }
    } else {
      fail(`unknown annotation "${text.split(/\s/)[0]}"`, comment);
    }
  }
  return result;
}

/** What a kind of file may record in `# portico-defaults:`, and what each recorded value stands for. */
export interface DefaultsRule {
  /** Matches every `path=value` the kind records. */
  allowed: RegExp;
  /** What the file describes ("the app"), and how a refusal names the kind (" for an app", or ""). */
  what: string;
  recordsFor: string;
  valueOf: (value: string) => unknown;
}

/** Applies `# portico-defaults:` to what the directives said (`target`); each must fill a field they left out. */
export function applyDefaults(target: Record<string, unknown>, defaults: Annotations['defaults'], rule: DefaultsRule): void {
  for (const [path, value] of defaults) {
    if (!rule.allowed.test(`${path}=${value}`)) fail(`"${path}=${value}" is not a default Portico records${rule.recordsFor}`);
    const keys = path.split('.');
    const last = keys.pop() as string;
    let owner: unknown = target;
    for (const key of keys) owner = (owner as Record<string, unknown> | undefined)?.[key];
    if (typeof owner !== 'object' || owner === null) fail(`"${path}" names no field of ${rule.what}`);
    const fields = owner as Record<string, unknown>;
    if (fields[last] !== undefined) fail(`"${path}" is recorded as ${value} but the directives say otherwise`);
    fields[last] = rule.valueOf(value);
  }
}
