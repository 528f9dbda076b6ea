/**
 * The decisions that span apps, made over the whole set: across the shared file and every app file,
 * `reuseport` appears once per address:port, `quic` listeners are plain in app files, and each port
 * has exactly one `default_server`; the shared file defines every variable and zone the app files
 * name, and no map or zone none of them names.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { App } from '../../src/model/app.js';
import { ALL_SHARED_HTTP_USES } from '../../src/model/http-shared.js';
import { parseConfig, type Directive } from '../../src/parse/syntax.js';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { createAppRenderer } from '../../src/render/app.js';
import { createSharedHttpRenderer, serverNamesHash, sharedServerNamesHash } from '../../src/render/http-shared.js';
import { sharedHttpNeeds, sharedHttpView, type SharedHttpSettings } from '../../src/apply/shared-http.js';
import { appArbitrary } from '../helpers/arbitraries.js';

const options = { certDir: '/var/lib/portico/certs', httpPort: 8080, httpsPort: 8443 };
const renderApp = createAppRenderer(await readFile(`${TEMPLATES_DIR}/app.conf.hbs`, 'utf8'), options);
const renderShared = createSharedHttpRenderer(await readFile(`${TEMPLATES_DIR}/http-shared.conf.hbs`, 'utf8'));
const settings: SharedHttpSettings = { httpPort: 8080, httpsPort: 8443, stateDir: '/var/lib/portico', mode: 'managed' };

/** Every directive of `directives`, blocks' contents included. */
function flatten(directives: Directive[]): Directive[] {
  return directives.flatMap((d) => [d, ...flatten(d.block ?? [])]);
}

/** The `$portico_*` variables and the cache zones the app files name. */
function named(texts: string[]): { variables: Set<string>; zones: Set<string> } {
  const variables = new Set<string>();
  const zones = new Set<string>();
  for (const directive of texts.flatMap((text) => flatten(parseConfig(text)))) {
    for (const arg of directive.args) for (const [, name] of arg.matchAll(/\$(portico_\w+)/g)) variables.add(name as string);
    if (directive.name === 'proxy_cache') zones.add(directive.args[0] as string);
  }
  return { variables, zones };
}

/** The variables the shared file's maps set and the cache zones it defines. */
function defined(text: string): { variables: Set<string>; zones: Set<string> } {
  const directives = parseConfig(text);
  const variables = new Set(directives.filter((d) => d.name === 'map').map((d) => (d.args[1] as string).slice(1)));
  const zones = new Set(directives.filter((d) => d.name === 'proxy_cache_path').map((d) => /keys_zone=(\w+):/.exec(d.args.join(' '))?.[1] as string));
  return { variables, zones };
}

/** Every `listen` of every server block in `texts`, as [port and kind, its flags]. */
function listens(texts: string[]): Array<{ where: string; flags: string[] }> {
  const out: Array<{ where: string; flags: string[] }> = [];
  for (const text of texts) {
    for (const server of parseConfig(text).filter((d: Directive) => d.name === 'server')) {
      for (const listen of (server.block ?? []).filter((d) => d.name === 'listen')) {
        const [port = '', ...flags] = listen.args;
        out.push({ where: `${port}${flags.includes('quic') ? '/udp' : '/tcp'}`, flags });
      }
    }
  }
  return out;
}

/** Apps as a batch leaves them: distinct names, one default at most. */
const appSets = fc
  .uniqueArray(appArbitrary, { minLength: 1, maxLength: 6, selector: (app) => app.name })
  .map((apps) => {
    let seenDefault = false;
    return apps.map((app): App => {
      if (app.default !== true) return app;
      if (seenDefault) return { ...app, default: false };
      seenDefault = true;
      return app;
    });
  });

describe('decisions that span apps', () => {
  it('reuseport once per address:port, one default_server per port, over any set of apps', () => {
    fc.assert(
      fc.property(appSets, (apps) => {
        const shared = renderShared(sharedHttpView(apps, settings));
        const all = listens([shared, ...apps.map((app) => renderApp(app))]);
        for (const where of ['8080/tcp', '8443/tcp', '8443/udp']) {
          const here = all.filter((l) => l.where === where);
          assert.ok(here.length >= 1, `nothing listens on ${where}`);
          assert.equal(here.filter((l) => l.flags.includes('default_server')).length, 1, `default_server on ${where}`);
          assert.ok(here.filter((l) => l.flags.includes('reuseport')).length <= 1, `reuseport on ${where}`);
        }
        assert.equal(all.filter((l) => l.flags.includes('reuseport')).length, 1, 'the QUIC listener carries reuseport once');
      }),
      { numRuns: 200 },
    );
  });

  it('the shared file defines exactly the variables and the cache zone the app files name, over any set of apps', () => {
    fc.assert(
      fc.property(appSets, (apps) => {
        const used = named(apps.map((app) => renderApp(app)));
        const shared = defined(renderShared(sharedHttpView(apps, settings)));
        // The sticky key's map sets the key and the Set-Cookie map the cookie: an app names both or neither.
        assert.deepEqual([...shared.variables].sort(), [...used.variables].sort(), 'the maps are exactly what the apps use');
        assert.deepEqual([...shared.zones].sort(), [...used.zones].sort(), 'the cache zone is there exactly when an app caches');
      }),
      { numRuns: 200 },
    );
  });

  it('writes no map and no cache zone for plain apps, and each for the first app that uses it', () => {
    const plain: App = { name: 'plain', serverNames: ['plain.test'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }] }] };
    const route = plain.routes[0] as App['routes'][number];
    const text = (apps: App[]): string => renderShared(sharedHttpView(apps, settings));
    assert.doesNotMatch(text([plain]), /^\s*(map|proxy_cache_path) /m);
    const cases: Array<[string, App['routes'][number], RegExp[]]> = [
      ['websocket', { ...route, websocket: true }, [/^map \$http_upgrade \$portico_connection_upgrade /m]],
      ['sticky', { ...route, balance: 'sticky' }, [/^map \$cookie_portico_sticky \$portico_sticky_key /m, /^map \$cookie_portico_sticky \$portico_sticky_set /m]],
      ['cache', { ...route, cache: { ttl: '1m' } }, [/^map \$http_authorization\$http_cookie \$portico_cache_credentials /m, /^proxy_cache_path /m]],
      ['shared cache', { ...route, cache: { ttl: '1m', shareAuthenticated: true } }, [/^proxy_cache_path /m]],
    ];
    for (const [what, withIt, patterns] of cases) {
      const rendered = text([plain, { ...plain, name: what.replace(' ', '-'), serverNames: ['other.test'], routes: [withIt] }]);
      for (const pattern of patterns) assert.match(rendered, pattern, what);
      assert.equal(rendered.match(/^(map|proxy_cache_path) /gm)?.length, patterns.length, `${what}: only its own`);
    }
  });

  it('writes every part while the directory holds a file Portico cannot read, which may use any', () => {
    assert.deepEqual(sharedHttpNeeds([], true), ALL_SHARED_HTTP_USES);
    const plain: App = { name: 'plain', serverNames: ['plain.test'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }] }] };
    const rendered = renderShared(sharedHttpView([plain], settings, sharedHttpNeeds([plain], true)));
    assert.equal(rendered.match(/^(map|proxy_cache_path) /gm)?.length, 5);
  });

  it("sizes nginx's server name hash from the longest name and the number of names", () => {
    // A name of 46 characters fits nginx's default 64-byte bucket with its pointer and length; 47 do not.
    assert.deepEqual(serverNamesHash(['a'.repeat(46)]), { names: 1, longest: 46, bucketSize: 128, maxSize: 512 });
    assert.deepEqual(serverNamesHash([]), { names: 0, longest: 0, bucketSize: 128, maxSize: 512 });
    assert.equal(serverNamesHash(['x'.repeat(253)]).bucketSize, 1024);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 253 }), { minLength: 1, maxLength: 3000 }), (lengths) => {
        const hash = serverNamesHash(lengths.map((n) => 'n'.repeat(n)));
        const longest = Math.max(...lengths);
        const element = 8 + Math.ceil((longest + 2) / 8) * 8;
        assert.ok(hash.bucketSize >= 2 * element + 8, 'two of the longest name fit in a bucket');
        assert.ok(hash.maxSize >= 4 * lengths.length && hash.maxSize >= 512);
        for (const size of [hash.bucketSize, hash.maxSize]) assert.equal(size & (size - 1), 0, `${size} is a power of two`);
      }),
    );
  });

  it('sets the server name hash in external mode only where nginx\'s defaults fail (a name over 46 characters)', () => {
    const short = Array.from({ length: 600 }, (_, i) => `app-${i}.example.com`);
    assert.ok(sharedServerNamesHash(short, 'managed'), 'managed mode owns the main config: always sized');
    assert.equal(sharedServerNamesHash(short, 'external'), undefined, "an operator's http block may set it");
    assert.equal(sharedServerNamesHash([...short, 'x'.repeat(46)], 'external'), undefined);
    assert.equal(sharedServerNamesHash([...short, 'x'.repeat(47)], 'external')?.longest, 47);
  });
});
