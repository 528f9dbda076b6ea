/**
 * App files: rendering (golden files), reading back, and the round trip parse(render(x)) = x over the
 * whole app schema (DESIGN invariant 3).
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_ROUTES, appSchema, type App } from '../../src/model/app.js';
import { readApp } from '../../src/parse/app.js';
import { createAppRenderer } from '../../src/render/app.js';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { appArbitrary } from '../helpers/arbitraries.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;
const files = { certDir: '/var/lib/portico/certs', httpPort: 8080, httpsPort: 8443, acmeChallengeDir: '/var/lib/portico/acme-challenge' };
const render = createAppRenderer(await readFile(`${TEMPLATES_DIR}/app.conf.hbs`, 'utf8'), files);
const read = (text: string, name: string): App => readApp(text, files, name);

/** One app with every feature, whose file the hand edits below start from. */
const shop: App = appSchema.parse({
  name: 'shop',
  serverNames: ['shop.example'],
  routes: [
    { balance: 'sticky', upstreams: [{ address: '10.0.0.1:80' }, { address: '10.0.0.2:80' }] },
    { path: '/api', replacePath: '/v1', cache: { ttl: '10s' }, headers: { 'X-Frame-Options': 'DENY' }, upstreams: [{ address: '10.0.0.3:80' }] },
  ],
  tls: { certificate: 'shop', http3: true },
});
const shopText = render(shop);
const { tls: _tls, ...plainShop } = shop;
/** The same app without TLS: one server block. */
const plainText = render(plainShop);

describe('app files', () => {
  it('render as the golden files (UPDATE_GOLDEN=1 rewrites them)', async () => {
    const cases = (await readdir(GOLDEN)).filter((f) => f.startsWith('app-') && f.endsWith('.json'));
    assert.ok(cases.length >= 20, 'golden cases are missing');
    for (const name of cases) {
      const app = appSchema.parse(JSON.parse(await readFile(`${GOLDEN}${name}`, 'utf8')));
      const expectedFile = `${GOLDEN}${name.replace(/\.json$/, '.conf')}`;
      const text = render(app);
      if (process.env.UPDATE_GOLDEN === '1') await writeFile(expectedFile, text);
      assert.equal(text, await readFile(expectedFile, 'utf8'), `${name} renders differently from its golden file`);
      assert.deepEqual(read(text, app.name), app, `${name} does not read back`);
    }
  });

  it('reads back the files of format 2 (before issue 15: no challenge location, the HTTPS redirect at server level) as the same apps', async () => {
    const cases = (await readdir(`${GOLDEN}format2`)).filter((f) => f.endsWith('.conf'));
    assert.ok(cases.length >= 20, 'format 2 cases are missing');
    let redirects = 0;
    for (const file of cases) {
      const app = appSchema.parse(JSON.parse(await readFile(`${GOLDEN}${file.replace(/\.conf$/, '.json')}`, 'utf8')));
      const old = await readFile(`${GOLDEN}format2/${file}`, 'utf8');
      assert.doesNotMatch(old, /acme-challenge/);
      if (/^ {4}return 301 /m.test(old)) redirects += 1;
      assert.deepEqual(read(old, app.name), app, `format 2's ${file} does not read back`);
    }
    assert.ok(redirects >= 2, 'format 2 cases with a server-level redirect are missing');
  });

  it('answers HTTP-01 challenges from the challenge folder in every plain HTTP server, redirecting or not, and nowhere else', () => {
    const redirecting = render({ ...shop, tls: { certificate: 'shop', httpsRedirect: true } });
    for (const text of [shopText, plainText, redirecting]) {
      const servers = text.split(/^server \{$/m).slice(1);
      const plain = servers.filter((server) => /^ {4}listen 8080;$/m.test(server));
      assert.equal(plain.length, 1);
      assert.match(plain[0] as string, /\n {4}location \^~ \/\.well-known\/acme-challenge\/ \{\n {8}alias \/var\/lib\/portico\/acme-challenge\/;\n {8}# .*\n {8}disable_symlinks on from=\/var\/lib\/portico\/acme-challenge;\n {8}default_type text\/plain;\n {4}\}\n/);
      for (const tls of servers.filter((server) => /listen 8443 ssl;/.test(server))) assert.doesNotMatch(tls, /acme-challenge/);
    }
    // The redirect moved into "location /": nginx runs a server-level return before any location.
    assert.doesNotMatch(redirecting, /^ {4}return 301/m);
    assert.match(redirecting, /^ {4}location \/ \{\n {8}return 301 https:\/\/\$host:8443\$request_uri;\n {4}\}$/m);
    // Without a challenge folder (a reader given none), the location is not Portico's.
    const noFolder = { certDir: files.certDir, httpPort: 8080, httpsPort: 8443 };
    assert.throws(() => readApp(plainText, noFolder, 'shop'), /no challenge folder is set/);
    // A file written before the location refused symlinks (issue 15's first form) reads back as the same app.
    const withSymlinks = plainText.replace(/\n {8}# .*\n {8}disable_symlinks on from=\S+;/, '');
    assert.notEqual(withSymlinks, plainText);
    assert.deepEqual(read(withSymlinks, 'shop'), read(plainText, 'shop'));
  });

  it('serves an app with "tls": {"acme": true} its managed certificate, <name>_acme, and reads it back as acme, not as that id', () => {
    const managed = appSchema.parse({ ...plainShop, tls: { acme: true, http2: true } });
    const text = render(managed);
    assert.match(text, /^# portico-defaults: tls\.acme=true$/m);
    assert.match(text, /ssl_certificate \/var\/lib\/portico\/certs\/shop_acme\.crt;\n    ssl_certificate_key \/var\/lib\/portico\/certs\/shop_acme\.key;/);
    assert.deepEqual(read(text, 'shop'), managed);
    // Recorded as acme, but serving another certificate: a hand edit Portico cannot represent.
    assert.throws(() => read(text.replaceAll('shop_acme', 'other'), 'shop'), /"tls\.acme=true" is recorded, but the TLS server serves "other"/);
    // Both, or neither: the schema says which field.
    const issue = (tls: unknown) => {
      const parsed = appSchema.safeParse({ ...plainShop, tls });
      return parsed.success ? undefined : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    assert.match(issue({ acme: true, certificate: 'shop' }) ?? '', /^tls\.certificate: goes without "acme": true/);
    assert.match(issue({ http2: true }) ?? '', /^tls\.certificate: is required \(the id of a certificate\), unless "acme": true/);
  });

  it('an HTTPS redirect that waits for an ACME certificate serves the routes over plain HTTP, and reads back as httpsRedirect', () => {
    const app = appSchema.parse({ ...plainShop, tls: { acme: true, httpsRedirect: true } });
    const waiting = render(app, { redirectWaits: true });
    assert.match(waiting, /^# portico-defaults: tls\.acme=true tls\.httpsRedirect=true$/m);
    assert.doesNotMatch(waiting, /return 301/);
    assert.match(waiting, /listen 8080;[\s\S]*proxy_pass http:\/\/shop_r0_portico;[\s\S]*listen 8443 ssl;/, 'the plain HTTP server proxies');
    assert.deepEqual(read(waiting, 'shop'), app);
    const redirecting = render(app);
    assert.match(redirecting, /return 301 https:\/\/\$host:8443\$request_uri;/);
    assert.deepEqual(read(redirecting, 'shop'), app);
    // Recorded as waiting while the file redirects: a hand edit Portico cannot represent.
    assert.throws(() => read(redirecting.replace('tls.acme=true', 'tls.acme=true tls.httpsRedirect=true'), 'shop'), /"tls\.httpsRedirect" is recorded as true but the directives say otherwise/);
  });

  it('reads back the files of format 1 (before issue 13: portico_app_ names, a zone per group) as the same apps', async () => {
    const cases = (await readdir(`${GOLDEN}format1`)).filter((f) => f.endsWith('.conf'));
    assert.ok(cases.length >= 20, 'format 1 cases are missing');
    for (const file of cases) {
      const app = appSchema.parse(JSON.parse(await readFile(`${GOLDEN}${file.replace(/\.conf$/, '.json')}`, 'utf8')));
      const legacy = await readFile(`${GOLDEN}format1/${file}`, 'utf8');
      assert.match(legacy, /upstream portico_app_\w+_r0 \{\n    zone portico_app_\w+_r0 64k;/);
      assert.deepEqual(read(legacy, app.name), app, `format 1's ${file} does not read back`);
      // A file mixing the two formats is a hand edit Portico cannot represent.
      const mixed = legacy.replace(/zone portico_app_(\w+)_r0 64k;/, 'zone portico_apps 32m;');
      assert.throws(() => read(mixed, app.name), /must start with "zone portico_app_\w+_r0 64k;"/);
    }
  });

  it('parse(render(x)) equals x for every app the schema admits', () => {
    fc.assert(
      fc.property(appArbitrary, (app) => {
        const back = read(render(app), app.name);
        assert.deepEqual(back, app);
        assert.equal(JSON.stringify(back), JSON.stringify(appSchema.parse(app)), "fields come back in the schema's order");
      }),
      { numRuns: 600 },
    );
  });

  it('tells apart what nginx would serve the same: a path "/" from no path, "/v1" from "/v1/", {} from no headers', () => {
    const upstreams = [{ address: '10.0.0.1:80' }];
    const variants: App[] = [
      { name: 'a', serverNames: ['a.example'], routes: [{ upstreams }] },
      { name: 'a', serverNames: ['a.example'], routes: [{ path: '/', upstreams }] },
      { name: 'a', serverNames: ['a.example'], routes: [{ upstreams, headers: {} }] },
      { name: 'a', serverNames: ['a.example'], routes: [{ path: '/', replacePath: '/v1', upstreams }] },
      { name: 'a', serverNames: ['a.example'], routes: [{ path: '/', replacePath: '/v1/', upstreams }] },
      { name: 'a', serverNames: ['a.example'], routes: [{ path: '/x/', replacePath: '/v1', upstreams }] },
      { name: 'a', serverNames: ['a.example'], routes: [{ path: '/x/', replacePath: '/v1/', upstreams }] },
    ];
    const texts = new Set(variants.map((app) => render(app)));
    assert.equal(texts.size, variants.length, 'two different apps render the same file');
    for (const app of variants) assert.deepEqual(read(render(app), 'a'), app);
  });

  it('renders and reads the longest names: a 63-character app name with 64 routes, the last one sticky', () => {
    const name = `${'x'.repeat(31)}-${'y'.repeat(31)}`;
    const routes = Array.from({ length: MAX_ROUTES }, (_, i) => ({
      path: `/r${i}`,
      upstreams: [{ address: `10.0.0.${i}:80` }],
      ...(i === MAX_ROUTES - 1 && { balance: 'sticky' as const }),
    }));
    const app = appSchema.parse({ name, serverNames: ['a.example'], routes });
    const text = render(app);
    assert.match(text, new RegExp(`upstream ${'x'.repeat(31)}_${'y'.repeat(31)}_r63_portico \\{`));
    assert.match(text, /hash \$portico_sticky_key consistent;/);
    assert.deepEqual(read(text, name), app);
  });

  it('refuses a hand edit it cannot represent, saying where and why', () => {
    const edit = (from: string | RegExp, to: string): string => {
      const text = shopText.replace(from, to);
      assert.notEqual(text, shopText, `the edit of ${String(from)} changes nothing`);
      return text;
    };
    const everywhere = (from: string, to: string): string => shopText.replaceAll(from, to);
    const cases: Array<[string, RegExp, string?]> = [
      [edit('        proxy_http_version 1.1;\n', '        proxy_http_version 1.1;\n        proxy_buffering off;\n'), /line \d+: unexpected "proxy_buffering" in location \//],
      [everywhere('http://shop_r1_portico;', 'http://blog_r1_portico;'), /proxy_pass names "blog_r1_portico", which is not a group of app "shop", it belongs to another app/],
      [everywhere('http://shop_r1_portico;', 'http://10.0.0.9:80;'), /"proxy_pass" must read "proxy_pass http:\/\/GROUP"/],
      [shopText, /upstream block must be named blog_r0_portico/, 'blog'],
      [shopText, /"Shop" is not an app name/, 'Shop'],
      [edit(/(server \{\n    listen 8443 ssl;[^]*?)location \/api\/ \{/, '$1location /apx/ {'), /"location \/api\/" of the HTTP server is missing from the TLS server/],
      [edit(/(server \{\n    listen 8443 ssl;[^]*?)proxy_cache_valid 200 301 302 10s;/, '$1proxy_cache_valid 200 301 302 20s;'), /"location = \/api" differs between the HTTP and the TLS server/],
      [everywhere('add_header X-Frame-Options "DENY" always;', 'add_header X-Frame-Options "$request_uri" always;'), /routes\.1\.headers\.X-Frame-Options: header values must be/],
      [edit('add_header X-Frame-Options "DENY" always;', 'add_header X-Frame-Options "DENY" always;\n        add_header X-Frame-Options "SAMEORIGIN" always;'), /add_header X-Frame-Options is given twice in location = \/api/],
      [everywhere('add_header X-Frame-Options "DENY" always;', 'add_header __proto__ "x" always;'), /header names must be/],
      [edit('add_header X-Frame-Options "DENY" always;', 'add_header X-Frame-Options DENY;'), /"add_header" must read add_header NAME "VALUE" always/],
      [everywhere('rewrite ^/api$ /v1 break;', 'rewrite ^/api$ /v2 break;'), /location \/api\/ must hold "rewrite \^\/api\(\/\.\*\)\$ \/v2\$1 break" \(replacePath "\/v2"\)/],
      [everywhere('rewrite ^/api$ /v1 break;\n', ''), /location \/api\/ has a rewrite its route does not have/],
      [edit('rewrite ^/api$ /v1 break;', 'rewrite ^/api$ /v1 last;'), /"rewrite" must read "rewrite REGEX REPLACEMENT break"/],
      [edit('        proxy_cache_valid 200 301 302 10s;\n', ''), /a cache is proxy_cache, proxy_cache_key, proxy_cache_valid and the X-Cache-Status header, all four/],
      [edit('proxy_set_header X-Real-IP $remote_addr;', 'proxy_set_header X-Real-IP $http_x_real_ip;'), /must set the request headers Host \$host, .*, in this order/],
      [edit('listen 8080;', 'listen 80;'), /listen 80 is not the HTTP port 8080 every app shares/],
      [edit('listen 8080;', 'listen 8080 reuseport;'), /unexpected listen parameters "reuseport" \(only default_server\)/],
      [edit('listen 8443 ssl;', 'listen 8443 ssl default_server;'), /first listen must read "listen 8443 ssl"/],
      [edit('ssl_certificate /var/lib/portico/certs/shop.crt;', 'ssl_certificate /etc/ssl/shop.crt;'), /"\/etc\/ssl\/shop.crt" is not a certificate of \/var\/lib\/portico\/certs/],
      [edit('ssl_certificate_key /var/lib/portico/certs/shop.key;', 'ssl_certificate_key /var/lib/portico/certs/other.key;'), /ssl_certificate_key is not the key of ssl_certificate/],
      [edit('        return 421;\n', '        return 403;\n'), /must hold "if \(\$host != \$ssl_server_name\) \{ return 421; \}"/],
      [edit('    server_name shop.example;\n    ssl_certificate', '    server_name shop.example www.shop.example;\n    ssl_certificate'), /the TLS server must have the server names of the HTTP server/],
      [edit(/add_header Alt-Svc 'h3=":8443"' always;/, `add_header Alt-Svc 'h3=":443"' always;`), /Alt-Svc must advertise the HTTPS port 8443/],
      [edit(/\n        add_header Alt-Svc 'h3=":8443"' always;/, ''), /lacks the Alt-Svc header of HTTP\/3/],
      [edit('    listen 8443 quic;\n', ''), /Alt-Svc advertises HTTP\/3, but the server does not listen on QUIC/],
      [edit('        proxy_set_header Connection "";\n', '        proxy_set_header Connection "";\n        add_header Alt-Svc \'h3=":8443"\' always;\n'), /Alt-Svc belongs to the TLS server, not to the HTTP one/],
      [edit(/    zone portico_apps 32m;/, '    zone portico_apps 1m;'), /must start with "zone portico_apps 32m;"/],
      [edit(/    zone portico_apps 32m;/, '    zone shop_r0_portico 64k;'), /upstream shop_r0_portico must start with "zone portico_apps 32m;"/],
      [edit('    keepalive 32;\n}\n\nupstream shop_r1_portico', '    keepalive 8;\n}\n\nupstream shop_r1_portico'), /must end with "keepalive 32;"/],
      [edit('server 10.0.0.2:80;', 'server 10.0.0.2:80 down;'), /unexpected server parameter "down"/],
      [everywhere('server 10.0.0.2:80;', 'server 10.0.0.2:80 weight=0;'), /routes\.0\.upstreams\.1\.weight: must be an integer from 1 to 1000/],
      [edit('server 10.0.0.2:80;', 'server evil.example;'), /routes\.0\.upstreams\.1\.address: must be host:port/],
      [edit('hash $portico_sticky_key consistent;', 'hash $remote_addr consistent;'), /"hash" must read "hash \$portico_sticky_key consistent"/],
      [edit('\nserver {', '\nmap $cookie_x $portico_sticky_key { default $cookie_x; }\n\nserver {'), /unexpected map: an app file holds no map/],
      [everywhere('        add_header Set-Cookie $portico_sticky_set;\n', ''), /"add_header Set-Cookie \$portico_sticky_set" goes with the sticky balancing of shop_r0_portico/],
      [plainText.replace('    location / {\n', '    location /other/ {\n        return 404;\n    }\n\n    location / {\n'), /"location \/other\/" answers 404: only "location \/" does/],
      [everywhere('location = /api {', 'location = /apx {'), /route 1 \(proxy_pass to shop_r1_portico\) must have "location PATH\/", or "location = PATH" and "location PATH\/"/],
      [`# portico-defaults: default=false\n# portico-defaults: tls.http2=false\n${shopText}`, /"portico-defaults:" is given twice/],
      [`# portico-defaults: routes.0.balance=round_robin\n${shopText}`, /"routes.0.balance" is recorded as round_robin but the directives say otherwise/],
      [`# portico-defaults: routes.1.path=root\n${shopText}`, /"routes.1.path" is recorded as root but the directives say otherwise/],
      [`# portico-defaults: routes.7.websocket=false\n${shopText}`, /"routes.7.websocket" names no field of the app/],
      [`# portico-defaults: routes.0.cache=none\n${shopText}`, /"routes.0.cache=none" is not a default Portico records for an app/],
      [`# portico-labels: a=b\n${shopText}`, /an app has no labels/],
      [`${shopText}\nserver {\n    listen 8080;\n    server_name x.example;\n}\n`, /an app has two server blocks at most/],
      [`${shopText}\nlimit_req_zone $binary_remote_addr zone=x:1m rate=1r/s;\n`, /unexpected "limit_req_zone" at the top of an app file/],
      [edit('    location / {\n', '    location ~ ^/ {\n'), /a location must read "location PATH \{" or "location = PATH \{"/],
      [plainText.replace('    location / {\n', '    location = /x {\n        return 404;\n    }\n\n    location / {\n'), /"location = \/x" answers 404/],
      [plainText.replace(/\n    location \/ \{[^}]*\}\n/, '\n    location / {\n        return 404;\n    }\n'), /upstream shop_r0_portico \(route 0\) is not used by any location/],
      [plainText.replace(/location \/ \{/, 'location /x/ {'), /the server has no "location \/"/],
      [plainText.replace('    location / {\n', '    location / {\n        return 404;\n    }\n\n    location / {\n'), /"location \/" is given twice/],
      [plainText.replace('listen 8080;', 'listen 8080;\n    return 301 https://$host:8443$request_uri;'), /the HTTP server redirects to HTTPS: it has no route locations/],
      [plainText.replace('listen 8080;', 'listen 8080;\n    http2 on;'), /"http2" belongs to the TLS server, not to the HTTP one/],
      // The challenge location serves files from disk: only Portico's folder, only over plain HTTP.
      [plainText.replace('alias /var/lib/portico/acme-challenge/;', 'alias /etc/;'), /"location \^~ \/\.well-known\/acme-challenge\/" must read "alias \/var\/lib\/portico\/acme-challenge\/; disable_symlinks on from=\/var\/lib\/portico\/acme-challenge; default_type text\/plain;"/],
      [plainText.replace('        disable_symlinks on from=/var/lib/portico/acme-challenge;\n', '        disable_symlinks off;\n'), /must read "alias \/var\/lib\/portico\/acme-challenge\/; disable_symlinks on/],
      [plainText.replace('        disable_symlinks on from=/var/lib/portico/acme-challenge;\n', '        disable_symlinks on from=/var;\n'), /must read "alias \/var\/lib\/portico\/acme-challenge\/; disable_symlinks on/],
      [plainText.replace('        default_type text/plain;\n', '        default_type text/plain;\n        autoindex on;\n'), /must read "alias \/var\/lib\/portico\/acme-challenge\/; disable_symlinks on from=\/var\/lib\/portico\/acme-challenge; default_type text\/plain;"/],
      [shopText.replace('    if ($host != $ssl_server_name) {', '    location ^~ /.well-known/acme-challenge/ {\n        alias /var/lib/portico/acme-challenge/;\n        default_type text/plain;\n    }\n\n    if ($host != $ssl_server_name) {'), /the TLS server has no challenge location/],
      [plainText.replace('    location ^~ /.well-known/acme-challenge/ {', '    location ^~ /.well-known/acme-challenge/ {\n        alias /var/lib/portico/acme-challenge/;\n        default_type text/plain;\n    }\n\n    location ^~ /.well-known/acme-challenge/ {'), /is given twice in the server block/],
      [plainText.replace('location ^~ /.well-known/acme-challenge/ {', 'location ^~ /.well-known/ {'), /a location must read "location PATH \{" or "location = PATH \{"/],
      [shopText.slice(0, -3), /expecting "}"/],
      [everywhere('add_header X-Frame-Options "DENY" always;', 'add_header content-LENGTH "0" always;'), /routes\.1\.headers\.content-LENGTH: may not be added: .* framing or hop-by-hop header/],
      [everywhere('        proxy_no_cache $portico_cache_credentials;\n', ''), /"proxy_cache_bypass" and "proxy_no_cache" of \$portico_cache_credentials go together, and with a cache/],
      [everywhere('proxy_no_cache $portico_cache_credentials;', 'proxy_no_cache $http_x;'), /"proxy_no_cache" must read "proxy_no_cache \$portico_cache_credentials"/],
      [`# portico-defaults: routes.1.cache.shareAuthenticated=false\n${shopText.replaceAll(/ {8}proxy_(?:cache_bypass|no_cache) .*\n/g, '')}`, /"routes.1.cache.shareAuthenticated" is recorded as false but the directives say otherwise/],
    ];
    const wrong: string[] = [];
    for (const [text, reason, name = 'shop'] of cases) {
      try {
        read(text, name);
        wrong.push(`${reason}: read without error`);
      } catch (error) {
        if (!reason.test((error as Error).message)) wrong.push(`${reason}: ${(error as Error).message}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('never renders a value outside its helper\'s alphabet, even one the schema was bypassed for', () => {
    const base = { name: 'a', serverNames: ['a.example'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }] }] };
    const forged: Array<[unknown, RegExp]> = [
      [{ ...base, name: 'a; include /etc/passwd' }, /as appname/],
      [{ ...base, serverNames: ['a.example; include /etc/passwd'] }, /as servername/],
      [{ ...base, routes: [{ upstreams: [{ address: '10.0.0.1:80; include /etc/passwd' }] }] }, /as address/],
      [{ ...base, routes: [{ upstreams: [{ address: '10.0.0.1:80', weight: '1 down' }] }] }, /as int/],
      [{ ...base, routes: [{ path: '/a { }', upstreams: [{ address: '10.0.0.1:80' }] }] }, /as urlpath/],
      [{ ...base, routes: [{ path: '/a', replacePath: '/b$http_host', upstreams: [{ address: '10.0.0.1:80' }] }] }, /as rewritetarget/],
      [{ ...base, routes: [{ upstreams: [{ address: '10.0.0.1:80' }], headers: { 'X-A': 'x" always; include /etc/passwd; #' } }] }, /as headervalue/],
      [{ ...base, routes: [{ upstreams: [{ address: '10.0.0.1:80' }], headers: { 'X-A x': 'y' } }] }, /as headername/],
      [{ ...base, routes: [{ upstreams: [{ address: '10.0.0.1:80' }], maxBodySize: '1m; proxy_pass http://evil' }] }, /as size/],
      [{ ...base, routes: [{ upstreams: [{ address: '10.0.0.1:80' }], cache: { ttl: '1s; proxy_pass http://evil' } }] }, /as time/],
      [{ ...base, tls: { certificate: '../../etc/ssl/private/key' } }, /as path/],
      [{ ...base, tls: { certificate: 'a', clientCa: 'a.crt /etc/passwd' } }, /as path/],
      [{ ...base, tls: { certificate: 'a', http3: true, altSvcMaxAge: "1' always; include /x; #" } }, /as int/],
    ];
    for (const [app, reason] of forged) assert.throws(() => render(app as App), reason, JSON.stringify(app));
  });

  it('takes a header value with single quotes and writes it back verbatim inside double quotes; refuses a double quote, saying which quotes may appear', () => {
    const withValue = (value: string) => ({ name: 'a', serverNames: ['a.example'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }], headers: { 'Content-Security-Policy': value } }] });
    const csp = appSchema.parse(withValue("default-src 'self'; script-src 'none'"));
    const text = render(csp);
    assert.match(text, /add_header Content-Security-Policy "default-src 'self'; script-src 'none'" always;/);
    assert.deepEqual(readApp(text, files, 'a'), csp);
    const refused = appSchema.safeParse(withValue('say "hi"'));
    assert.equal(refused.success, false);
    assert.match(refused.error?.issues[0]?.message ?? '', /single quotes included, but no double quote, "\$", "\\", "\{" or "\}"/);
  });

  it('refuses framing and hop-by-hop response headers in any spelling of their case, naming the header', () => {
    const route = (headers: Record<string, string>) => ({ name: 'a', serverNames: ['a.example'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }], headers }] });
    const reserved = ['Content-Length', 'content-length', 'TRANSFER-ENCODING', 'Connection', 'Keep-Alive', 'Upgrade', 'Host', 'hOsT', 'TE', 'te', 'Trailer', 'Trailers', 'Proxy-Authenticate', 'proxy-connection', 'Proxy-Anything', 'HTTP2-Settings'];
    for (const name of reserved) {
      const parsed = appSchema.safeParse(route({ 'X-Ok': '1', [name]: '0' }));
      assert.equal(parsed.success, false, name);
      const issue = parsed.error?.issues[0];
      assert.deepEqual(issue?.path, ['routes', 0, 'headers', name]);
      assert.match(issue?.message ?? '', /framing or hop-by-hop header/);
    }
    // Names that merely start or end like one are other headers.
    for (const name of ['X-Content-Length', 'Content-Length-X', 'Hosts', 'Proxy', 'Tea', 'Upgrade-Insecure-Requests', 'Content-Type']) {
      assert.equal(appSchema.safeParse(route({ [name]: '1' })).success, true, name);
    }
  });

  it('a cached route skips requests with credentials unless it shares authenticated answers, and reads back as it was sent', () => {
    const app = (cache: Record<string, unknown>) => appSchema.parse({ name: 'a', serverNames: ['a.example'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }], cache }] });
    const skip = /proxy_cache_bypass \$portico_cache_credentials;\n {8}proxy_no_cache \$portico_cache_credentials;/;
    for (const [cache, skips] of [[{ ttl: '1m' }, true], [{ ttl: '1m', shareAuthenticated: false }, true], [{ ttl: '1m', shareAuthenticated: true }, false]] as const) {
      const text = render(app(cache));
      assert.equal(skip.test(text), skips, JSON.stringify(cache));
      assert.deepEqual(read(text, 'a'), app(cache));
    }
  });

  it('refuses a header named __proto__ rather than dropping it', () => {
    const app = { name: 'a', serverNames: ['a.example'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }], headers: JSON.parse('{"__proto__": "x"}') as Record<string, string> }] };
    assert.equal(appSchema.safeParse(app).success, false);
  });
});
