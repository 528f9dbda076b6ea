/**
 * Duplicate keys in a JSON text. `JSON.parse` keeps the last of two equal keys without a word, so
 * `{"backend": "=", "port": 9000, "backend": "10.0.0.1:22"}` would parse as if the first never was
 * (a text/plain form can only send a body with a stray "=" in it, and this is how such a body is made
 * to parse). Bodies are strict: each key once per object. Pure.
 */

/** A key written twice in one object: where the object is, the key, and both places in the text. */
export interface DuplicateKey {
  /** The path of the object holding the key: keys and array indices from the top (empty: the body itself). */
  path: (string | number)[];
  key: string;
  /** Offsets in the text (UTF-16 code units) of the key's first and second opening quote. */
  first: number;
  second: number;
}

/** An open object or array; `parent` links give a path without copying it per container (nesting may be deep). */
interface Frame {
  parent: Frame | undefined;
  /** This container's key or index in its parent. */
  at: string | number | undefined;
  /** Keys seen so far and the offset of each, for an object; undefined for an array. */
  keys: Map<string, number> | undefined;
  /** The current member: the last key of an object, the index of an array. */
  member: string | number;
  /** An object expects a key next (after `{` and `,`). */
  expectKey: boolean;
}

const [OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY, COMMA, QUOTE] = [...'{}[],"'].map((c) => c.charCodeAt(0));

function pathOf(frame: Frame): (string | number)[] {
  const path: (string | number)[] = [];
  for (let at: Frame | undefined = frame; at?.parent !== undefined; at = at.parent) path.push(at.at as string | number);
  return path.reverse();
}

/** The offset just past the string that opens at `start` (a `"`): the first quote after it not escaped. */
function stringEnd(text: string, start: number): number {
  let quote = text.indexOf('"', start + 1);
  while (quote !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c /* \ */) backslashes += 1;
    if (backslashes % 2 === 0) return quote + 1;
    quote = text.indexOf('"', quote + 1);
  }
  return text.length;
}

/**
 * The first key that appears twice in one object of `text`, compared as decoded (`"a"` and
 * `"\u0061"` are the same key), or undefined. `text` must be valid JSON (`JSON.parse` it first): the
 * scan trusts its syntax. Iterative, linear in the text's length.
 */
export function findDuplicateKey(text: string): DuplicateKey | undefined {
  let top: Frame | undefined;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      top = { parent: top, at: top?.member, keys: c === OPEN_OBJECT ? new Map() : undefined, member: 0, expectKey: c === OPEN_OBJECT };
      i += 1;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      top = top?.parent;
      i += 1;
    } else if (c === COMMA) {
      if (top?.keys === undefined) {
        if (top !== undefined) top.member = (top.member as number) + 1;
      } else top.expectKey = true;
      i += 1;
    } else if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (top?.keys !== undefined && top.expectKey) {
        const raw = text.slice(i + 1, end - 1);
        // Only an escape can make two spellings one key; JSON.parse decodes those.
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        const first = top.keys.get(key);
        if (first !== undefined) return { path: pathOf(top), key, first, second: i };
        top.keys.set(key, i);
        top.member = key;
        top.expectKey = false;
      }
      i = end;
    } else {
      i += 1;
    }
  }
  return undefined;
}
