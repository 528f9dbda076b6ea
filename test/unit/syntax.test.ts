/**
 * The nginx syntax parser, on the constructs nginx's own tokenizer knows.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/parse/syntax.js';

describe('parseConfig', () => {
  it('reads directives, blocks, comments and quoted words', () => {
    const tree = parseConfig(`# a comment
events { worker_connections 64; }
stream {
    server { listen 9000; proxy_pass "db.internal:5432"; } # trailing
    log_format x 'a b\\'c';
}
`);
    assert.deepEqual(
      tree.map((d) => [d.name, d.args, d.line]),
      [
        ['events', [], 2],
        ['stream', [], 3],
      ],
    );
    const stream = tree[1]?.block ?? [];
    assert.equal(stream[0]?.name, 'server');
    assert.deepEqual(stream[0]?.block?.map((d) => [d.name, d.args]), [
      ['listen', ['9000']],
      ['proxy_pass', ['db.internal:5432']],
    ]);
    assert.deepEqual(stream[1]?.args, ['x', "a b'c"]);
  });

  it('keeps a backslash as nginx does: dropped before a quote or a backslash, kept before anything else', () => {
    const [rewrite] = parseConfig(String.raw`rewrite ^/a\.b(/.*)$ "x\"y" 'a\\b' c\;d e\tf;`);
    assert.deepEqual(rewrite?.args, ['^/a\\.b(/.*)$', 'x"y', 'a\\b', 'c\\;d', 'e\tf']);
  });

  it('refuses what nginx would refuse, naming the line', () => {
    assert.throws(() => parseConfig('server {\n listen 9000;\n'), /expecting "}"/);
    assert.throws(() => parseConfig('listen 9000'), /line 1: unexpected end of file/);
    assert.throws(() => parseConfig('}'), /unexpected "}"/);
    assert.throws(() => parseConfig(';'), /unexpected ";"/);
    assert.throws(() => parseConfig('a "open;'), /unterminated quoted string/);
    assert.throws(() => parseConfig('server {\n listen 9000\n}'), /line 3: directive "listen" is not terminated/);
  });
});
