/**
 * Reads the file every HTTP app shares (`portico_http.conf`) back into what it says. Pure.
 *
 * It accepts exactly the shape `templates/http-shared.conf.hbs` renders, directive for directive
 * (comments aside), and refuses anything else with the line and the reason: so a rendered file is
 * checked like every other (DESIGN invariant 3), and a hand edit is seen and reported, never
 * silently served. The maps and the cache zone are each written or not, always in this order.
 */
import { ACME_CHALLENGE_PATH } from '../model/app-file.js';
import type { SharedCache, SharedHttp, StickyNames } from '../model/http-shared.js';
import { isListenHost } from '../model/net.js';
import { fail, parseFile, single, type Directive } from './directive.js';

const VARIABLE = /^\$([a-z0-9_]{1,64})$/;
const COOKIE_VARIABLE = /^\$cookie_([a-z0-9_]{1,64})$/;
const NUMBER = /^[1-9]\d{0,8}$/;

function number(text: string, directive: Directive, what: string): number {
  if (!NUMBER.test(text)) fail(`${what} must be a number, not "${text}"`, directive);
  return Number(text);
}

/** Takes the next top-level directive, which must be `name`. */
function take(queue: Directive[], name: string, after: Directive | undefined): Directive {
  const next = queue.shift();
  if (next === undefined) fail(`"${name}" is missing at the end of the file`, after);
  if (next.name !== name) fail(`expected "${name}", found "${next.name}"`, next);
  return next;
}

/** A block of `key value;` lines, exactly `entries` in order. */
function expectEntries(block: Directive, entries: Array<[string, string]>, what: string): void {
  const lines = (block.block ?? []).map((d) => (d.block === undefined && d.args.length === 1 ? [d.name, d.args[0] as string] : undefined));
  const same = lines.length === entries.length && entries.every(([k, v], i) => lines[i]?.[0] === k && lines[i]?.[1] === v);
  if (!same) fail(`${what} must map exactly ${entries.map(([k, v]) => `${JSON.stringify(k)} to ${JSON.stringify(v)}`).join(' and ')}`, block);
}

function args(directive: Directive, count: number, what: string): string[] {
  if (directive.args.length !== count) fail(`${what} must have ${count} argument${count === 1 ? '' : 's'}`, directive);
  return directive.args;
}

/** Whether the next directive is a `map` of `source` (`test` on its first argument). */
function nextMap(queue: Directive[], test: (source: string) => boolean): boolean {
  const next = queue[0];
  return next?.name === 'map' && test(next.args[0] ?? '');
}

function readUpgrade(queue: Directive[], after: Directive | undefined): Directive {
  const upgrade = take(queue, 'map', after);
  if (upgrade.args.join(' ') !== '$http_upgrade $portico_connection_upgrade') fail('the WebSocket "map" must read $http_upgrade into $portico_connection_upgrade', upgrade);
  expectEntries(upgrade, [['default', 'upgrade'], ['', '']], 'the WebSocket "map"');
  return upgrade;
}

function readSticky(queue: Directive[], after: Directive | undefined): { sticky: StickyNames; last: Directive } {
  const keyMap = take(queue, 'map', after);
  const [source = '', keyVariable = ''] = args(keyMap, 2, 'the sticky key\'s "map"');
  const cookie = COOKIE_VARIABLE.exec(source)?.[1];
  const key = VARIABLE.exec(keyVariable)?.[1];
  if (cookie === undefined || key === undefined) fail('the sticky key\'s "map" must read $cookie_NAME into a variable', keyMap);
  expectEntries(keyMap, [['', '$request_id'], ['default', `$cookie_${cookie}`]], 'the sticky key\'s "map"');

  const setMap = take(queue, 'map', keyMap);
  const [setSource = '', setVariable = ''] = args(setMap, 2, 'the sticky cookie\'s "map"');
  const setCookie = VARIABLE.exec(setVariable)?.[1];
  if (setSource !== `$cookie_${cookie}` || setCookie === undefined) fail(`the sticky cookie's "map" must read $cookie_${cookie} into a variable`, setMap);
  expectEntries(setMap, [['', `${cookie}=$request_id; Path=/; HttpOnly; SameSite=Lax`], ['default', '']], 'the sticky cookie\'s "map"');
  return { sticky: { cookie, key, setCookie }, last: setMap };
}

/** The map that marks a request carrying Authorization or a cookie, so a cached route neither serves nor stores its answer. */
function readCredentials(queue: Directive[], after: Directive | undefined): { cacheCredentials: string; last: Directive } {
  const map = take(queue, 'map', after);
  const [source = '', variable = ''] = args(map, 2, 'the credentials "map"');
  const name = VARIABLE.exec(variable)?.[1];
  if (source !== '$http_authorization$http_cookie' || name === undefined) fail('the credentials "map" must read $http_authorization$http_cookie into a variable', map);
  expectEntries(map, [['', ''], ['default', '1']], 'the credentials "map"');
  return { cacheCredentials: name, last: map };
}

function readCache(directive: Directive): SharedCache {
  const [dir = '', levels, zone = '', max = '', ...rest] = args(directive, 6, '"proxy_cache_path"');
  const keys = /^keys_zone=portico_cache:(\d+)m$/.exec(zone)?.[1];
  const size = /^max_size=(\d+)m$/.exec(max)?.[1];
  if (levels !== 'levels=1:2' || keys === undefined || size === undefined || rest.join(' ') !== 'inactive=1h use_temp_path=off') {
    fail('"proxy_cache_path" must read DIR levels=1:2 keys_zone=portico_cache:Nm max_size=Nm inactive=1h use_temp_path=off', directive);
  }
  return { dir, keysMb: number(keys, directive, 'the zone\'s size'), maxMb: number(size, directive, 'max_size') };
}

/**
 * The catch-all server: the three listeners, no name, no certificate, 404; since issue 15 maybe with
 * the HTTP-01 challenge location (and the 404 in `location /`, where a challenge does not meet it).
 */
function readCatchAll(server: Directive): { listenAddress: string | undefined; httpPort: number; httpsPort: number; httpDefault: boolean; acmeChallengeDir: string | undefined } {
  if (server.block === undefined || server.args.length > 0) fail('"server" must be a block', server);
  const lineOf = (d: Directive): string => (d.block === undefined ? [d.name, ...d.args].join(' ') : `${d.name} ${d.args.join(' ')} { ${(d.block ?? []).map(lineOf).join('; ')} }`);
  const lines = server.block.map(lineOf);
  const [http = '', ssl = '', quic = '', ...rest] = lines;
  // Each listener is [ADDRESS:]PORT, the same address on all three (LISTEN_ADDRESS).
  const httpMatch = /^listen (?:(\S+):)?(\d{1,5})( default_server)?$/.exec(http);
  const sslMatch = /^listen (?:(\S+):)?(\d{1,5}) ssl default_server$/.exec(ssl);
  const host = httpMatch?.[1];
  const at = host === undefined ? '' : `${host}:`;
  const httpsPort = sslMatch !== null && sslMatch[1] === host ? sslMatch[2] : undefined;
  const same = httpMatch !== null && httpsPort !== undefined && quic === `listen ${at}${httpsPort} quic reuseport default_server` && (host === undefined || isListenHost(host));
  const body = rest.join('; ');
  const challenge = new RegExp(`^server_name ; ssl_reject_handshake on; location \\^~ ${ACME_CHALLENGE_PATH.replace(/\./g, '\\.')} \\{ alias (\\S+)/; (?:disable_symlinks on from=\\1; )?default_type text/plain \\}; location / \\{ return 404 \\}$`).exec(body);
  if (!same || (body !== 'server_name ; ssl_reject_handshake on; return 404' && challenge === null)) {
    fail(
      `the catch-all "server" must be: listen HTTP_PORT [default_server]; listen HTTPS_PORT ssl default_server; listen HTTPS_PORT quic reuseport default_server; server_name ""; ssl_reject_handshake on; then either return 404, or location ^~ ${ACME_CHALLENGE_PATH} { alias DIR/; disable_symlinks on from=DIR; default_type text/plain; } and location / { return 404; }`,
      server,
    );
  }
  return {
    listenAddress: host,
    httpPort: number(httpMatch[2] as string, server, 'the HTTP port'),
    httpsPort: number(httpsPort, server, 'the HTTPS port'),
    httpDefault: httpMatch[3] !== undefined,
    acmeChallengeDir: challenge?.[1],
  };
}

/** Parses the shared file's text; throws `UnreadableFile` (with the line) if it is not one Portico renders. */
export function readSharedHttp(text: string): SharedHttp {
  const queue = [...parseFile(text).directives];
  let last: Directive | undefined;

  let upgrade = false;
  if (nextMap(queue, (source) => source === '$http_upgrade')) {
    last = readUpgrade(queue, last);
    upgrade = true;
  }
  let sticky: StickyNames | undefined;
  if (nextMap(queue, (source) => source.startsWith('$cookie_'))) ({ sticky, last } = readSticky(queue, last));
  let cacheCredentials: string | undefined;
  if (nextMap(queue, (source) => source.startsWith('$http_authorization'))) ({ cacheCredentials, last } = readCredentials(queue, last));
  const map = queue[0];
  if (map?.name === 'map') {
    fail('a "map" Portico does not write here: the file holds the WebSocket map, then the two sticky maps, then the credentials map, each or not', map);
  }

  let serverNamesHash: SharedHttp['serverNamesHash'];
  if (queue[0]?.name === 'server_names_hash_bucket_size') {
    const bucket = take(queue, 'server_names_hash_bucket_size', last);
    const max = take(queue, 'server_names_hash_max_size', bucket);
    serverNamesHash = { bucketSize: number(single(bucket), bucket, 'the bucket size'), maxSize: number(single(max), max, 'the max size') };
    last = max;
  }
  let cache: SharedCache | undefined;
  if (queue[0]?.name === 'proxy_cache_path') {
    const directive = take(queue, 'proxy_cache_path', last);
    cache = readCache(directive);
    last = directive;
  }
  const server = readCatchAll(take(queue, 'server', last));
  const extra = queue[0];
  if (extra !== undefined) fail(`unexpected "${extra.name}" after the catch-all server`, extra);
  return { listenAddress: server.listenAddress, httpPort: server.httpPort, httpsPort: server.httpsPort, httpDefault: server.httpDefault, upgrade, sticky, cacheCredentials, cache, serverNamesHash, acmeChallengeDir: server.acmeChallengeDir };
}
