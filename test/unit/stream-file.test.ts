/**
 * Stream files: rendering (golden files), reading back, and the round trip parse(render(x)) = x
 * over the whole stream schema (DESIGN invariant 3).
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_UPSTREAMS, streamSchema, type Stream } from '../../src/model/stream.js';
import { readStream } from '../../src/parse/stream.js';
import { createStreamRenderer } from '../../src/render/stream.js';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { streamArbitrary } from '../helpers/arbitraries.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;
const render = createStreamRenderer(await readFile(`${TEMPLATES_DIR}/stream.conf.hbs`, 'utf8'));

describe('stream files', () => {
  it('render as the golden files (UPDATE_GOLDEN=1 rewrites them)', async () => {
    const cases = (await readdir(GOLDEN)).filter((f) => f.startsWith('stream-') && f.endsWith('.json'));
    assert.ok(cases.length >= 3, 'golden cases are missing');
    for (const name of cases) {
      const stream = streamSchema.parse(JSON.parse(await readFile(`${GOLDEN}${name}`, 'utf8')));
      const expectedFile = `${GOLDEN}${name.replace(/\.json$/, '.conf')}`;
      const text = render(stream);
      if (process.env.UPDATE_GOLDEN === '1') await writeFile(expectedFile, text);
      assert.equal(text, await readFile(expectedFile, 'utf8'), `${name} renders differently from its golden file`);
      assert.deepEqual(readStream(text), stream, `${name} does not read back`);
    }
  });

  it('parse(render(x)) equals x for every stream the schema admits', () => {
    fc.assert(
      fc.property(streamArbitrary, (stream) => {
        assert.deepEqual(readStream(render(stream)), stream);
      }),
      { numRuns: 500 },
    );
  });

  it('reads stream-conductor\'s files as they were written', () => {
    assert.deepEqual(readStream('server {\n\tlisten 9000;\n\tproxy_pass mybackend:22;\n}\n'), {
      port: 9000,
      upstreams: [{ address: 'mybackend:22' }],
    });
  });

  it('refuses a hand edit it cannot represent, saying where', () => {
    const cases: Array<[string, RegExp]> = [
      ['server { listen 9000; proxy_pass a:1; proxy_timeout 5s; }', /line 1: unexpected "proxy_timeout"/],
      ['server { listen 127.0.0.1:9000; proxy_pass a:1; }', /listen "127.0.0.1:9000" is not a port/],
      ['server { listen 9000; }', /no proxy_pass/],
      ['server { listen 9000; proxy_pass a b; }', /exactly one argument/],
      ['server { listen 9000; proxy_pass $upstream; }', /not a host:port address/],
      ['server { listen 9000; proxy_pass a:1; }\nserver { listen 9001; proxy_pass a:1; }', /unexpected "server"/],
      ['upstream x { server a:1; }\nserver { listen 9000; proxy_pass x; }', /not named for port 9000/],
      ['server { listen 9000; proxy_pass a:1;', /expecting "}"/],
    ];
    for (const [text, reason] of cases) assert.throws(() => readStream(text), reason, text);
  });

  it('never renders a value outside its helper\'s alphabet, even one the schema was bypassed for', () => {
    const forged = { port: 9000, upstreams: [{ address: 'a:1; include /etc/passwd' }] } as Stream;
    assert.throws(() => render(forged), /refusing to render "a:1; include \/etc\/passwd" as address/);
    const badPort = { port: '9000; listen 1' as unknown as number, upstreams: [{ address: 'a:1' }] };
    assert.throws(() => render(badPort), /refusing to render/);
  });

  it('bounds the number of upstreams', () => {
    const many = Array.from({ length: MAX_UPSTREAMS + 1 }, (_, i) => ({ address: `h${i}:1` }));
    assert.equal(streamSchema.safeParse({ port: 1, upstreams: many }).success, false);
  });
});
