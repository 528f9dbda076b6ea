/**
 * LISTEN_ADDRESS (issue 16: several edges on one host, one address each): every stream without its
 * own `listenAddress`, and the apps' shared listeners, bind the node's address. The files say so and
 * read back as the resources they were rendered from (the node's address is not the stream's own),
 * for any stream and app.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { appSchema, type App } from '../../src/model/app.js';
import { streamSchema, type Stream } from '../../src/model/stream.js';
import { readApp } from '../../src/parse/app.js';
import { readStream } from '../../src/parse/stream.js';
import { readSharedHttp } from '../../src/parse/http-shared.js';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { createAppRenderer } from '../../src/render/app.js';
import { createSharedHttpRenderer } from '../../src/render/http-shared.js';
import { createStreamRenderer } from '../../src/render/stream.js';
import { renderSharedChecked, sharedHttpView, type SharedHttpSettings } from '../../src/apply/shared-http.js';
import { appArbitrary, streamArbitrary } from '../helpers/arbitraries.js';

const certDir = '/var/lib/portico/certs';
const streamTemplate = await readFile(`${TEMPLATES_DIR}/stream.conf.hbs`, 'utf8');
const appTemplate = await readFile(`${TEMPLATES_DIR}/app.conf.hbs`, 'utf8');
const sharedTemplate = await readFile(`${TEMPLATES_DIR}/http-shared.conf.hbs`, 'utf8');
const ADDRESSES = ['127.0.0.11', '10.1.2.3', '[::1]', '[2001:db8::7]'] as const;

const listens = (text: string): string[] => [...text.matchAll(/^\s*listen (.*);$/gm)].map((m) => m[1] as string);

describe('LISTEN_ADDRESS in the files', () => {
  it('a stream without its own address listens on the node\'s, records it as listenAddress=node, and reads back without it', () => {
    const stream: Stream = streamSchema.parse({ port: 9000, protocol: 'tcp+udp', upstreams: [{ address: 'db.internal:5432' }] });
    for (const address of ADDRESSES) {
      const text = createStreamRenderer(streamTemplate, { certDir, listenAddress: address })(stream);
      assert.deepEqual(listens(text), [`${address}:9000`, `${address}:9000 udp`]);
      assert.match(text, /^# portico-defaults: .*\blistenAddress=node\b/m);
      assert.deepEqual(readStream(text, { certDir }), stream);
    }
    // Without LISTEN_ADDRESS: every address, no annotation (the files of before issue 16, unchanged).
    const plain = createStreamRenderer(streamTemplate, { certDir })(stream);
    assert.deepEqual(listens(plain), ['9000', '9000 udp']);
    assert.doesNotMatch(plain, /listenAddress=node/);
  });

  it('a stream\'s own listenAddress wins over the node\'s, and reads back as its own', () => {
    const stream: Stream = streamSchema.parse({ port: 9001, listenAddress: '127.0.0.5', upstreams: [{ address: '10.0.0.1:5432' }] });
    const text = createStreamRenderer(streamTemplate, { certDir, listenAddress: '127.0.0.11' })(stream);
    assert.deepEqual(listens(text), ['127.0.0.5:9001']);
    assert.doesNotMatch(text, /listenAddress=node/);
    assert.deepEqual(readStream(text, { certDir }), stream);
  });

  it('refuses listenAddress=node on a listen without an address (a hand edit)', () => {
    const stream: Stream = streamSchema.parse({ port: 9002, upstreams: [{ address: '10.0.0.1:5432' }] });
    const text = createStreamRenderer(streamTemplate, { certDir, listenAddress: '127.0.0.11' })(stream).replace('listen 127.0.0.11:9002;', 'listen 9002;');
    assert.throws(() => readStream(text, { certDir }), /listenAddress=node/);
  });

  it('any stream renders on the node\'s address and reads back as itself', () => {
    fc.assert(
      fc.property(streamArbitrary, fc.constantFrom(...ADDRESSES), (stream, address) => {
        const text = createStreamRenderer(streamTemplate, { certDir, listenAddress: address })(stream);
        const bound = stream.listenAddress ?? address;
        for (const listen of listens(text)) assert.ok(listen.startsWith(`${bound}:`), `${listen} is not on ${bound}`);
        assert.deepEqual(readStream(text, { certDir }), stream);
      }),
      { numRuns: 300 },
    );
  });

  it('an app listens on the node\'s address, and its file reads back only under the same LISTEN_ADDRESS', () => {
    const app: App = appSchema.parse({ name: 'shop', serverNames: ['shop.example'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }] }], tls: { certificate: 'shop', http3: true } });
    const files = { certDir, httpPort: 8080, httpsPort: 8443, listenAddress: '127.0.0.12' };
    const text = createAppRenderer(appTemplate, files)(app);
    assert.deepEqual(listens(text), ['127.0.0.12:8080', '127.0.0.12:8443 ssl', '127.0.0.12:8443 quic']);
    assert.deepEqual(readApp(text, files, 'shop'), app);
    assert.throws(() => readApp(text, { certDir, httpPort: 8080, httpsPort: 8443 }, 'shop'), /listen PORT/);
    assert.throws(() => readApp(text, { ...files, listenAddress: '127.0.0.13' }, 'shop'), /listen 127\.0\.0\.13:PORT/);
  });

  it('any app renders on the node\'s address and reads back as itself', () => {
    fc.assert(
      fc.property(appArbitrary, fc.constantFrom(...ADDRESSES), (app, address) => {
        const files = { certDir, httpPort: 8080, httpsPort: 8443, listenAddress: address };
        const text = createAppRenderer(appTemplate, files)(app);
        for (const listen of listens(text)) assert.ok(listen.startsWith(`${address}:`), listen);
        assert.deepEqual(readApp(text, files, app.name), app);
      }),
      { numRuns: 200 },
    );
  });

  it('the shared file\'s catch-all listens on the node\'s address on all three listeners, and reads back', () => {
    const render = createSharedHttpRenderer(sharedTemplate);
    const app: App = appSchema.parse({ name: 'shop', serverNames: ['shop.example'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }] }] });
    for (const address of ADDRESSES) {
      const settings: SharedHttpSettings = { httpPort: 8080, httpsPort: 8443, stateDir: '/var/lib/portico', mode: 'managed', listenAddress: address };
      const text = renderSharedChecked(render, sharedHttpView([app], settings));
      assert.deepEqual(listens(text), [`${address}:8080 default_server`, `${address}:8443 ssl default_server`, `${address}:8443 quic reuseport default_server`]);
      assert.equal(readSharedHttp(text).listenAddress, address);
      // One listener on another address is a hand edit: refused.
      assert.throws(() => readSharedHttp(text.replace(`listen ${address}:8443 ssl`, 'listen 8443 ssl')), /catch-all/);
    }
    const settings: SharedHttpSettings = { httpPort: 8080, httpsPort: 8443, stateDir: '/var/lib/portico', mode: 'managed' };
    assert.equal(readSharedHttp(renderSharedChecked(render, sharedHttpView([app], settings))).listenAddress, undefined);
  });
});
