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
const files = { certDir: '/var/lib/portico/certs' };
const render = createStreamRenderer(await readFile(`${TEMPLATES_DIR}/stream.conf.hbs`, 'utf8'), files);
const read = (text: string): Stream => readStream(text, files);

describe('stream files', () => {
  it('render as the golden files (UPDATE_GOLDEN=1 rewrites them)', async () => {
    const cases = (await readdir(GOLDEN)).filter((f) => f.startsWith('stream-') && f.endsWith('.json'));
    assert.ok(cases.length >= 16, 'golden cases are missing');
    for (const name of cases) {
      const stream = streamSchema.parse(JSON.parse(await readFile(`${GOLDEN}${name}`, 'utf8')));
      const expectedFile = `${GOLDEN}${name.replace(/\.json$/, '.conf')}`;
      const text = render(stream);
      if (process.env.UPDATE_GOLDEN === '1') await writeFile(expectedFile, text);
      assert.equal(text, await readFile(expectedFile, 'utf8'), `${name} renders differently from its golden file`);
      assert.deepEqual(read(text), stream, `${name} does not read back`);
    }
  });

  it('parse(render(x)) equals x for every stream the schema admits', () => {
    fc.assert(
      fc.property(streamArbitrary, (stream) => {
        const back = read(render(stream));
        assert.deepEqual(back, stream);
        assert.equal(JSON.stringify(back), JSON.stringify(streamSchema.parse(stream)), 'fields come back in the schema\'s order');
      }),
      { numRuns: 1000 },
    );
  });

  it('reads stream-conductor\'s files as they were written', () => {
    assert.deepEqual(read('server {\n\tlisten 9000;\n\tproxy_pass mybackend:22;\n}\n'), {
      port: 9000,
      upstreams: [{ address: 'mybackend:22' }],
    });
  });

  it('reads an upstream group written before groups had a zone (Portico 0.1)', () => {
    const text = 'upstream portico_stream_9000 {\n    server a:1;\n    server b:1;\n}\nserver {\n    listen 9000;\n    proxy_pass portico_stream_9000;\n}\n';
    assert.deepEqual(read(text), { port: 9000, upstreams: [{ address: 'a:1' }, { address: 'b:1' }] });
  });

  it('refuses a hand edit it cannot represent, saying where', () => {
    const cases: Array<[string, RegExp]> = [
      ['server { listen 9000; proxy_pass a:1; proxy_buffer_size 4k; }', /line 1: unexpected "proxy_buffer_size"/],
      ['server { listen 127.0.0.1.1:9000; proxy_pass a:1; }', /listen "127.0.0.1.1:9000" is not \[address:\]port/],
      ['server { listen 9000 reuseport; proxy_pass a:1; }', /unexpected listen parameters "reuseport"/],
      ['server { listen 9000 udp; listen 9000; proxy_pass a:1; }', /once on TCP, once on UDP, or TCP then UDP/],
      ['server { listen 9000; listen 9001 udp; proxy_pass a:1; }', /share address and port/],
      ['server { listen 9000; deny all; allow 10.0.0.0/8; proxy_pass a:1; }', /every allow must come before the first deny/],
      ['server { listen 9000; allow 10.0.0.1/8; proxy_pass a:1; }', /allow.0: .*bits set beyond/],
      ['server { listen 9000; proxy_timeout 2d; proxy_pass a:1; }', /idleTimeout: must be a duration from 1ms to 24h/],
      ['server { listen 9000 ssl; ssl_certificate /etc/ssl/x.crt; ssl_certificate_key /etc/ssl/x.key; proxy_pass a:1; }', /is not a certificate of \/var\/lib\/portico\/certs/],
      ['server { listen 9000 ssl; ssl_certificate /var/lib/portico/certs/a.crt; ssl_certificate_key /var/lib/portico/certs/b.key; proxy_pass a:1; }', /not the key of ssl_certificate/],
      ['server { listen 9000; proxy_ssl_verify on; proxy_pass a:1; }', /need "proxy_ssl on"/],
      ['upstream portico_stream_9000 { server a:1 backup; }\nserver { listen 9000; proxy_pass portico_stream_9000; }', /at least one upstream that is not a backup/],
      ['upstream portico_stream_9000 { hash $remote_addr; server a:1; }\nserver { listen 9000; proxy_pass portico_stream_9000; }', /must read "hash \$remote_addr consistent"/],
      ['upstream portico_stream_9000 { zone other 64k; server a:1; server b:1; }\nserver { listen 9000; proxy_pass portico_stream_9000; }', /"zone" must come first and read "zone portico_stream_9000 <size>k"/],
      ['upstream portico_stream_9000 { server a:1 down; }\nserver { listen 9000; proxy_pass portico_stream_9000; }', /unexpected server parameter "down"/],
      ['# portico-defaults: protocol=udp\nserver { listen 9000; proxy_pass a:1; }', /"protocol=udp" is not a default Portico records/],
      ['# portico-defaults: protocol=tcp\nserver { listen 9000 udp; proxy_pass a:1; }', /the directives say otherwise/],
      ['# portico-labels: Owner=x\nserver { listen 9000; proxy_pass a:1; }', /labels.Owner: label names must be/],
      ['# portico-labels: a=b a=c\nserver { listen 9000; proxy_pass a:1; }', /label "a" is given twice/],
      ['map $ssl_preread_server_name $portico_sni_9000 { hostnames; a.example portico_stream_9000_sni_0; }\nserver { listen 9000; ssl_preread on; proxy_pass $portico_sni_9000; }', /no upstream "portico_stream_9000_sni_0"/],
      ['server { listen 9000; ssl_preread on; proxy_pass a:1; }', /"ssl_preread on" goes with a proxy_pass to the SNI map/],
      ['server { listen 9000; }', /no proxy_pass/],
      ['server { listen 9000; proxy_pass a b; }', /exactly one argument/],
      ['server { listen 9000; proxy_pass $upstream; }', /goes with a proxy_pass to the SNI map/],
      ['server { listen 9000; proxy_pass a:1; }\nserver { listen 9001; proxy_pass a:1; }', /unexpected "server"/],
      ['upstream x { server a:1; }\nserver { listen 9000; proxy_pass x; }', /not named for port 9000/],
      ['server { listen 9000; proxy_pass a:1;', /expecting "}"/],
    ];
    for (const [text, reason] of cases) assert.throws(() => read(text), reason, text);
  });

  it('never renders a value outside its helper\'s alphabet, even one the schema was bypassed for', () => {
    const forged = { port: 9000, upstreams: [{ address: 'a:1; include /etc/passwd' }] } as Stream;
    assert.throws(() => render(forged), /refusing to render "a:1; include \/etc\/passwd" as address/);
    const forgedRules: Array<[Partial<Stream>, RegExp]> = [
      [{ allow: ['all; include /etc/passwd'] }, /as cidr/],
      [{ idleTimeout: '1s; proxy_pass evil:1' }, /as time/],
      [{ labels: { owner: 'x\nserver { listen 1; }' } }, /as label/],
      [{ tls: { certificate: '../../etc/ssl/private/key' } }, /as path/],
      [{ upstreamTls: { serverName: 'a b' } }, /as hostname/],
      [{ listenAddress: '0.0.0.0:1; listen 2' }, /as listenhost/],
      [{ upstreams: [{ address: 'a:1', weight: '1 down' as unknown as number }] }, /as int/],
    ];
    for (const [fields, reason] of forgedRules) {
      assert.throws(() => render({ port: 9000, upstreams: [{ address: 'a:1' }], ...fields } as Stream), reason, JSON.stringify(fields));
    }
    const forgedSni = { port: 9000, sni: { routes: [{ serverName: 'a.example; }', upstreams: [{ address: 'a:1' }] }] } } as Stream;
    assert.throws(() => render(forgedSni), /as servername/);
    const badPort = { port: '9000; listen 1' as unknown as number, upstreams: [{ address: 'a:1' }] };
    assert.throws(() => render(badPort), /refusing to render/);
  });

  it('bounds the number of upstreams', () => {
    const many = Array.from({ length: MAX_UPSTREAMS + 1 }, (_, i) => ({ address: `h${i}:1` }));
    assert.equal(streamSchema.safeParse({ port: 1, upstreams: many }).success, false);
  });
});
