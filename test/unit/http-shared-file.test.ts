/**
 * The file every HTTP app shares (`portico_http.conf`) is read back like every other file: what is
 * rendered reads back as what it was rendered from, for any set of apps; a hand edit is refused with
 * its line and reason, or (when nginx would read it) reported as a difference from what Portico
 * writes for the apps as they are. A file holding maps or the cache zone no app uses, as Portico
 * wrote them before they were written on demand, is not a hand edit.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { App, Route } from '../../src/model/app.js';
import { ALL_SHARED_HTTP_USES } from '../../src/model/http-shared.js';
import { readSharedHttp } from '../../src/parse/http-shared.js';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { createSharedHttpRenderer, sharedHttpOf } from '../../src/render/http-shared.js';
import { renderSharedChecked, sharedHttpNeeds, sharedHttpProblem, sharedHttpView, type SharedHttpSettings } from '../../src/apply/shared-http.js';
import type { AppTree } from '../../src/store/apps.js';
import { appArbitrary } from '../helpers/arbitraries.js';

const render = createSharedHttpRenderer(await readFile(`${TEMPLATES_DIR}/http-shared.conf.hbs`, 'utf8'));
const settings: SharedHttpSettings = { httpPort: 8080, httpsPort: 8443, stateDir: '/var/lib/portico', mode: 'managed', acmeChallengeDir: '/var/lib/portico/acme-challenge' };
/** The settings of a version before issue 15: no challenge folder. */
const { acmeChallengeDir: _folder, ...withoutChallenges } = settings;
const upstreams = [{ address: '10.0.0.1:80' }];
const app = (name: string, extra: Partial<App> = {}): App => ({ name, serverNames: [`${name}.example.com`], routes: [{ upstreams }], ...extra });
const routed = (name: string, route: Partial<Route>): App => app(name, { routes: [{ upstreams, ...route }] });
/** A plain app's file: no map, no cache zone. */
const text = render(sharedHttpView([app('shop')], settings));
/** The same with every map and the cache zone. */
const full = render(sharedHttpView([app('shop')], settings, ALL_SHARED_HTTP_USES));
/** What the version before maps were written on demand wrote for app "shop" (the same settings): every part. */
const before = await readFile(new URL('../golden/http-shared/before-maps-on-demand.conf', import.meta.url), 'utf8');

describe('the shared HTTP file, read back', () => {
  it('reads back as what it was rendered from, for any apps, ports and mode', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(appArbitrary, { minLength: 1, maxLength: 6, selector: (a) => a.name }),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.constantFrom<'managed' | 'external'>('managed', 'external'),
        fc.boolean(),
        (apps, httpPort, httpsPort, mode, unknownFiles) => {
          const view = sharedHttpView(apps, { ...settings, httpPort, httpsPort, mode }, sharedHttpNeeds(apps, unknownFiles));
          assert.deepEqual(readSharedHttp(render(view)), sharedHttpOf(view));
          assert.equal(renderSharedChecked(render, view), render(view));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reads back which maps and whether the cache zone are there: none for a plain app, all of them as the previous version wrote them', () => {
    const plain = readSharedHttp(text);
    assert.deepEqual([plain.upgrade, plain.sticky, plain.cacheCredentials, plain.cache], [false, undefined, undefined, undefined]);
    assert.doesNotMatch(text, /^\s*(map|proxy_cache_path) /m);
    const all = sharedHttpOf(sharedHttpView([app('shop')], settings, ALL_SHARED_HTTP_USES));
    assert.deepEqual(readSharedHttp(full), all);
    assert.deepEqual(readSharedHttp(before), { ...all, acmeChallengeDir: undefined }, 'the four maps and the cache zone of a file written before read back as Portico writes them');
    assert.deepEqual(all.sticky, { cookie: 'portico_sticky', key: 'portico_sticky_key', setCookie: 'portico_sticky_set' });
    assert.deepEqual(all.cache, { dir: '/var/lib/portico/cache', keysMb: 10, maxMb: 1024 });
    assert.equal(all.cacheCredentials, 'portico_cache_credentials');
    assert.equal(all.upgrade, true);
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
    ['a map of another variable', (t) => t.replace('# Requests no app claims', 'map $host $mine { default 1; }\n# Requests no app claims'), /line \d+: expected "server", found "map"/],
    ['another map among them', (t) => t.replace('# Sticky routes', 'map $host $mine { default 1; }\n# Sticky routes'), /line \d+: a "map" Portico does not write here/],
    ['the maps in another order', (t) => t.replace(/(map \$http_upgrade[^}]*\})([\s\S]*?)(map \$http_authorization[^}]*\})/, '$3$2$1'), /a "map" Portico does not write here/],
    ['the credentials map of other headers', (t) => t.replace('$http_authorization$http_cookie', '$http_authorization'), /the credentials "map" must read \$http_authorization\$http_cookie/],
    ['a cache kept forever', (t) => t.replace('inactive=1h', 'inactive=365d'), /"proxy_cache_path" must read DIR levels=1:2/],
    ['half of the server name hash', (t) => t.replace(/server_names_hash_max_size \d+;/, ''), /expected "server_names_hash_max_size", found "proxy_cache_path"/],
    ['a syntax error', (t) => t.replace('return 404;', 'return 404'), /line \d+: /],
    ['a challenge location that follows symlinks', (t) => t.replace('        disable_symlinks on from=/var/lib/portico/acme-challenge;\n', '        disable_symlinks off;\n'), /the catch-all "server" must be/],
    ['a challenge location that checks symlinks from another folder', (t) => t.replace('disable_symlinks on from=/var/lib/portico/acme-challenge;', 'disable_symlinks on from=/var/lib;'), /the catch-all "server" must be/],
    ['a challenge location that lists its folder', (t) => t.replace('        default_type text/plain;\n', '        default_type text/plain;\n        autoindex on;\n'), /the catch-all "server" must be/],
    ['a challenge location without the 404 for the rest', (t) => t.replace(/\n    location \/ \{\n        return 404;\n    \}\n/, '\n'), /the catch-all "server" must be/],
    ['a challenge location proxied elsewhere', (t) => t.replace('alias /var/lib/portico/acme-challenge/;', 'proxy_pass http://10.0.0.1;'), /the catch-all "server" must be/],
  ];
  for (const [what, edit, message] of refused) {
    it(`refuses a hand edit that adds or changes what Portico does not write: ${what}`, () => {
      const edited = edit(full);
      assert.notEqual(edited, full, 'the edit applies');
      assert.throws(() => readSharedHttp(edited), message);
    });
  }

  it('serves HTTP-01 challenges for names no app serves, and reads back a catch-all from before (a server-level 404, no challenges)', () => {
    assert.match(text, /\n    location \^~ \/\.well-known\/acme-challenge\/ \{\n        alias \/var\/lib\/portico\/acme-challenge\/;\n        # .*\n        disable_symlinks on from=\/var\/lib\/portico\/acme-challenge;\n        default_type text\/plain;\n    \}\n\n    location \/ \{\n        return 404;\n    \}\n\}/);
    assert.equal(readSharedHttp(text).acmeChallengeDir, '/var/lib/portico/acme-challenge');
    // The catch-all as written before the location refused symlinks reads back the same.
    const withSymlinks = text.replace(/\n {8}# .*\n {8}disable_symlinks on from=\S+;/, '');
    assert.notEqual(withSymlinks, text);
    assert.deepEqual(readSharedHttp(withSymlinks), readSharedHttp(text));
    const older = render(sharedHttpView([app('shop')], withoutChallenges));
    assert.match(older, /ssl_reject_handshake on;\n    return 404;\n\}/);
    assert.equal(readSharedHttp(older).acmeChallengeDir, undefined);
  });

  it('ignores comments, which nginx ignores too', () => {
    for (const file of [text, full]) assert.deepEqual(readSharedHttp(`# a note\n${file.replaceAll('\n}', '\n    # inside\n}')}`), readSharedHttp(file));
  });
});

describe('sharedHttpProblem (what /v1/status reports)', () => {
  const tree = (apps: App[], file: string | undefined, unreadable: AppTree['unreadable'] = []): AppTree => {
    let shared: AppTree['shared'];
    if (file !== undefined) {
      try {
        shared = { read: readSharedHttp(file) };
      } catch (error) {
        shared = { reason: (error as Error).message };
      }
    }
    return { apps: new Map(apps.map((a) => [a.name, a])), unreadable, foreign: [], files: [], shared };
  };
  const cached = routed('shop', { cache: { ttl: '1m' } });
  const cachedText = render(sharedHttpView([cached], settings));

  it('nothing to report when the file is what Portico writes for the apps, or absent with no app', () => {
    assert.equal(sharedHttpProblem(tree([app('shop')], text), settings), undefined);
    assert.equal(sharedHttpProblem(tree([cached], cachedText), settings), undefined);
    assert.equal(sharedHttpProblem(tree([], undefined), settings), undefined);
  });

  it('a catch-all written before it answered HTTP-01 challenges is no hand edit (the next app change adds them); one serving another folder is', () => {
    const older = render(sharedHttpView([app('shop')], withoutChallenges));
    assert.equal(sharedHttpProblem(tree([app('shop')], older), settings), undefined);
    const elsewhere = render(sharedHttpView([app('shop')], { ...settings, acmeChallengeDir: '/etc' }));
    assert.match(sharedHttpProblem(tree([app('shop')], elsewhere), settings) ?? '', /acmeChallengeDir is "\/etc" where Portico renders "\/var\/lib\/portico\/acme-challenge"/);
  });

  it('nothing to report for maps and a cache zone no app uses, as Portico writes them: a file written before they were written on demand', () => {
    // (Written before the catch-all served HTTP-01 challenges, as that version's settings had it.)
    assert.equal(sharedHttpProblem(tree([app('shop')], before), withoutChallenges), undefined);
    assert.equal(sharedHttpProblem(tree([app('shop')], full), settings), undefined);
    assert.equal(sharedHttpProblem(tree([cached, routed('chat', { websocket: true })], full), settings), undefined);
    // One part too many, the others as needed.
    const withUpgrade = render(sharedHttpView([app('shop')], settings, { ...ALL_SHARED_HTTP_USES, sticky: false, cache: false, cacheCredentials: false }));
    assert.equal(sharedHttpProblem(tree([app('shop')], withUpgrade), settings), undefined);
  });

  it('reports a readable hand edit by the first field that differs, in a part no app uses too', () => {
    assert.equal(
      sharedHttpProblem(tree([cached], cachedText.replace('max_size=1024m', 'max_size=2048m')), settings),
      'it is not what Portico writes for the apps (edited by hand?): cache is {"dir":"/var/lib/portico/cache","keysMb":10,"maxMb":2048} where Portico renders {"dir":"/var/lib/portico/cache","keysMb":10,"maxMb":1024}',
    );
    assert.match(sharedHttpProblem(tree([app('shop')], text.replace('listen 8080 default_server;', 'listen 8080;')), settings) ?? '', /httpDefault is false where Portico renders true/);
    assert.equal(
      sharedHttpProblem(tree([app('shop')], full.replace('max_size=1024m', 'max_size=2048m')), settings),
      'it is not what Portico writes for the apps (edited by hand?): cache is {"dir":"/var/lib/portico/cache","keysMb":10,"maxMb":2048} where Portico renders none',
    );
  });

  it('reports a map or the cache zone an app uses and the file lacks (nginx would refuse the app)', () => {
    assert.equal(
      sharedHttpProblem(tree([app('shop'), routed('chat', { websocket: true })], text), settings),
      'it is not what Portico writes for the apps (edited by hand?): upgrade is false where Portico renders true',
    );
    assert.match(sharedHttpProblem(tree([routed('shop', { balance: 'sticky' })], text), settings) ?? '', /sticky is absent where Portico renders \{"cookie":"portico_sticky"/);
    assert.match(sharedHttpProblem(tree([cached], cachedText.replace(/proxy_cache_path [^;]*;/, '')), settings) ?? '', /cache is absent where Portico renders \{"dir"/);
    assert.match(sharedHttpProblem(tree([routed('shop', { cache: { ttl: '1m', shareAuthenticated: true } })], text), settings) ?? '', /cache is absent/);
  });

  it('wants every part while an app file cannot be read (it may use any)', () => {
    const unreadable = [{ name: 'app_edited.conf', app: 'edited', reason: 'line 3: edited' }];
    assert.match(sharedHttpProblem(tree([app('shop')], text, unreadable), settings) ?? '', /upgrade is false where Portico renders true/);
    assert.equal(sharedHttpProblem(tree([app('shop')], full, unreadable), settings), undefined);
  });

  it('reports an unreadable one with the reader\'s reason, a missing one, and one left with no app', () => {
    assert.match(sharedHttpProblem(tree([app('shop')], `${text}\nserver_tokens on;\n`), settings) ?? '', /cannot be read as Portico writes it \(edited by hand\?\): line \d+: unexpected "server_tokens"/);
    assert.equal(sharedHttpProblem(tree([app('shop')], undefined), settings), 'it is missing although there are apps');
    assert.match(sharedHttpProblem(tree([], text), settings) ?? '', /exists although there is no app/);
  });
});
