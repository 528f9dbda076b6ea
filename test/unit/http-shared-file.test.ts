/**
 * The file every HTTP app shares (`portico_http.conf`) is read back like every other file: what is
 * rendered reads back as what it was rendered from, for any set of apps; a hand edit is refused with
 * its line and reason, or (when nginx would read it) reported as a difference from what Portico
 * writes for the apps as they are.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { App } from '../../src/model/app.js';
import { readSharedHttp } from '../../src/parse/http-shared.js';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { createSharedHttpRenderer, sharedHttpOf } from '../../src/render/http-shared.js';
import { renderSharedChecked, sharedHttpProblem, sharedHttpView, type SharedHttpSettings } from '../../src/apply/shared-http.js';
import type { AppTree } from '../../src/store/apps.js';
import { appArbitrary } from '../helpers/arbitraries.js';

const render = createSharedHttpRenderer(await readFile(`${TEMPLATES_DIR}/http-shared.conf.hbs`, 'utf8'));
const settings: SharedHttpSettings = { httpPort: 8080, httpsPort: 8443, stateDir: '/var/lib/portico', mode: 'managed' };
const app = (name: string, extra: Partial<App> = {}): App => ({ name, serverNames: [`${name}.example.com`], routes: [{ upstreams: [{ address: '10.0.0.1:80' }] }], ...extra });
const text = render(sharedHttpView([app('shop')], settings));

describe('the shared HTTP file, read back', () => {
  it('reads back as what it was rendered from, for any apps, ports and mode', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(appArbitrary, { minLength: 1, maxLength: 6, selector: (a) => a.name }),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.constantFrom<'managed' | 'external'>('managed', 'external'),
        (apps, httpPort, httpsPort, mode) => {
          const view = sharedHttpView(apps, { ...settings, httpPort, httpsPort, mode });
          assert.deepEqual(readSharedHttp(render(view)), sharedHttpOf(view));
          assert.equal(renderSharedChecked(render, view), render(view));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('tells apart what nginx would serve differently: a default app, the server name hash', () => {
    const plain = readSharedHttp(text);
    assert.equal(plain.httpDefault, true);
    assert.equal(readSharedHttp(render(sharedHttpView([app('www', { default: true })], settings))).httpDefault, false);
    assert.deepEqual(plain.serverNamesHash, { bucketSize: 128, maxSize: 512 });
    assert.equal(readSharedHttp(render(sharedHttpView([app('shop')], { ...settings, mode: 'external' }))).serverNamesHash, undefined);
  });

  const refused: Array<[string, (t: string) => string, RegExp]> = [
    ['an extra directive in the catch-all server', (t) => t.replace('return 404;', 'return 404;\n    include /etc/passwd;'), /line \d+: the catch-all "server" must be/],
    ['another listener', (t) => t.replace('listen 8080 default_server;', 'listen 8080 default_server;\n    listen 8081;'), /the catch-all "server" must be/],
    ['a certificate for unknown names', (t) => t.replace('ssl_reject_handshake on;', 'ssl_reject_handshake off;'), /the catch-all "server" must be/],
    ['a directive after the server', (t) => `${t}\nserver_tokens on;\n`, /unexpected "server_tokens" after the catch-all server/],
    ['another WebSocket map', (t) => t.replace('default upgrade;', 'default close;'), /the WebSocket "map" must map exactly "default" to "upgrade"/],
    ['the sticky cookie without HttpOnly', (t) => t.replace('HttpOnly; ', ''), /the sticky cookie's "map" must map exactly/],
    ['no cache zone', (t) => t.replace(/proxy_cache_path [^;]*;/, ''), /expected "proxy_cache_path", found "server"/],
    ['a cache kept forever', (t) => t.replace('inactive=1h', 'inactive=365d'), /"proxy_cache_path" must read DIR levels=1:2/],
    ['half of the server name hash', (t) => t.replace(/server_names_hash_max_size \d+;/, ''), /expected "server_names_hash_max_size", found "proxy_cache_path"/],
    ['a syntax error', (t) => t.replace('return 404;', 'return 404'), /line \d+: /],
  ];
  for (const [what, edit, message] of refused) {
    it(`refuses a hand edit that adds or changes what Portico does not write: ${what}`, () => {
      const edited = edit(text);
      assert.notEqual(edited, text, 'the edit applies');
      assert.throws(() => readSharedHttp(edited), message);
    });
  }

  it('ignores comments, which nginx ignores too', () => {
    assert.deepEqual(readSharedHttp(`# a note\n${text.replaceAll('\n}', '\n    # inside\n}')}`), readSharedHttp(text));
  });
});

describe('sharedHttpProblem (what /v1/status reports)', () => {
  const tree = (apps: App[], file: string | undefined): AppTree => {
    let shared: AppTree['shared'];
    if (file !== undefined) {
      try {
        shared = { read: readSharedHttp(file) };
      } catch (error) {
        shared = { reason: (error as Error).message };
      }
    }
    return { apps: new Map(apps.map((a) => [a.name, a])), unreadable: [], foreign: [], files: [], shared };
  };

  it('nothing to report when the file is what Portico writes for the apps, or absent with no app', () => {
    assert.equal(sharedHttpProblem(tree([app('shop')], text), settings), undefined);
    assert.equal(sharedHttpProblem(tree([], undefined), settings), undefined);
  });

  it('reports a readable hand edit by the first field that differs', () => {
    assert.equal(
      sharedHttpProblem(tree([app('shop')], text.replace('max_size=1024m', 'max_size=2048m')), settings),
      'it is not what Portico writes for the apps (edited by hand?): cacheMaxMb is 2048 where Portico renders 1024',
    );
    assert.match(sharedHttpProblem(tree([app('shop')], text.replace('listen 8080 default_server;', 'listen 8080;')), settings) ?? '', /httpDefault is false where Portico renders true/);
  });

  it('reports an unreadable one with the reader\'s reason, a missing one, and one left with no app', () => {
    assert.match(sharedHttpProblem(tree([app('shop')], `${text}\nserver_tokens on;\n`), settings) ?? '', /cannot be read as Portico writes it \(edited by hand\?\): line \d+: unexpected "server_tokens"/);
    assert.equal(sharedHttpProblem(tree([app('shop')], undefined), settings), 'it is missing although there are apps');
    assert.match(sharedHttpProblem(tree([], text), settings) ?? '', /exists although there is no app/);
  });
});
