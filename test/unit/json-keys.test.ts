/**
 * Duplicate JSON keys: found wherever they are, compared as decoded, never found where there are none.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { findDuplicateKey } from '../../src/api/json-keys.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every `\uXXXX`: the same key, spelled another way. */
const escaped = (key: string): string => `"${[...key].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`;

/**
 * JSON.stringify, except that the `target`-th non-empty object (pre-order) writes its first key once
 * more at its end, escaped. Answers the text and the path and key of that duplicate.
 */
function serializeWithDuplicate(value: Json, target: number): { text: string; path: (string | number)[]; key: string } | undefined {
  let seen = 0;
  let found: { path: (string | number)[]; key: string } | undefined;
  const write = (v: Json, path: (string | number)[]): string => {
    if (Array.isArray(v)) return `[${v.map((item, i) => write(item, [...path, i])).join(',')}]`;
    if (v === null || typeof v !== 'object') return JSON.stringify(v);
    const keys = Object.keys(v);
    const members = keys.map((k) => `${JSON.stringify(k)}:${write(v[k] as Json, [...path, k])}`);
    if (keys.length > 0 && seen++ === target && found === undefined) {
      found = { path, key: keys[0] as string };
      members.push(`${escaped(keys[0] as string)} : 0`);
    }
    return `{${members.join(' , ')}}`;
  };
  const text = write(value, []);
  return found === undefined ? undefined : { text, ...found };
}

describe('duplicate JSON keys', () => {
  it('finds none in any JSON a serializer writes, pretty or not', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, pretty) => {
        assert.equal(findDuplicateKey(JSON.stringify(value, null, pretty ? 2 : undefined)), undefined);
      }),
      { numRuns: 200 },
    );
  });

  it('finds a duplicate in any object of any JSON, with the object\'s path and the key, however the key is escaped', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(50), (value, target) => {
        const written = serializeWithDuplicate(value as Json, target);
        fc.pre(written !== undefined);
        const { text, path, key } = written as NonNullable<typeof written>;
        JSON.parse(text);
        const found = findDuplicateKey(text);
        assert.deepEqual(found && { path: found.path, key: found.key }, { path, key }, text);
        assert.ok(found !== undefined && found.first < found.second && text[found.first] === '"' && text[found.second] === '"');
      }),
      { numRuns: 200 },
    );
  });

  it('names the path through arrays and nested objects, and tells keys from values that look like them', () => {
    assert.deepEqual(findDuplicateKey('{"upstreams": [{"address": "a:1"}, {"address": "b:1", "weight": 1, "address": "c:1"}]}'), {
      path: ['upstreams', 1],
      key: 'address',
      first: 36,
      second: 67,
    });
    assert.equal(findDuplicateKey('{"a": "a", "b": ["a", "a"], "c": {"a": {"a": 1}}, "d": "\\"a\\": 1"}'), undefined);
    assert.equal(findDuplicateKey('[{"a": 1}, {"a": 1}]'), undefined);
    assert.deepEqual(findDuplicateKey('{"backend":"=", "port": 9000, "backend": "127.0.0.1:22"}\r\n')?.key, 'backend');
    assert.deepEqual(findDuplicateKey('{"a\\\\": 1, "a\\u005c": 2}')?.key, 'a\\');
    assert.deepEqual(findDuplicateKey('{"": 1, "": 2}')?.path, []);
    assert.equal(findDuplicateKey('{"a": 1, "A": 2, "a ": 3}'), undefined);
  });

  it('scans a body nested 80,000 deep in linear time, without recursion', () => {
    const deep = `${'['.repeat(80_000)}{"k": 1, "k": 2}${']'.repeat(80_000)}`;
    const startedAt = performance.now();
    const found = findDuplicateKey(deep);
    assert.equal(found?.path.length, 80_000);
    assert.ok(performance.now() - startedAt < 2000, `took ${performance.now() - startedAt} ms`);
  });
});
