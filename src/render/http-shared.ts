/**
 * Renders the file every HTTP app shares (`portico_http.conf` in the apps' directory): the maps and
 * the cache zone the apps use (each only while some app uses it, see model/http-shared.ts), and the
 * catch-all server that answers requests no app claims. Pure.
 *
 * It holds the decisions that span apps, made here over the whole set: `reuseport` on the QUIC
 * listener (allowed once per address:port), and `default_server` on the plain HTTP port unless an app
 * is the default.
 */
import { SHARED_HTTP_FILE, type SharedHttp } from '../model/http-shared.js';
import type { StickyView } from './app.js';
import { compileTemplate, type Template } from './engine.js';

export { SHARED_HTTP_FILE };

/**
 * What the template prints: what the file says (`SharedHttp`, which the reader gives back), with the
 * sticky names as the apps' renderer has them and the server name hash's inputs beside its sizes.
 */
export interface SharedHttpView extends Omit<SharedHttp, 'sticky' | 'serverNamesHash'> {
  /** The sticky cookie and its variables (`STICKY`), when the sticky maps are written. */
  sticky: StickyView | undefined;
  /** `server_names_hash_*`, sized from every app's server names (`serverNamesHash`), or nothing (see `sharedServerNamesHash`). */
  serverNamesHash: ServerNamesHash | undefined;
}

export interface ServerNamesHash {
  names: number;
  longest: number;
  bucketSize: number;
  maxSize: number;
}

const POINTER = 8;
const align = (n: number): number => Math.ceil(n / POINTER) * POINTER;
const powerOfTwoAtLeast = (n: number): number => 2 ** Math.ceil(Math.log2(n));

/**
 * nginx's server name hash, sized so that it builds for any set of names the apps may hold. nginx
 * stores each name in a bucket as a pointer, a length and the name (rounded up to 8 bytes), and a
 * bucket ends with a pointer: with the default 64-byte buckets a name of more than 46 characters
 * fails `nginx -t` ("could not build server_names_hash"), and past a few hundred names nginx cannot
 * find a table size where every bucket fits ("could not build optimal server_names_hash").
 *
 * The bucket holds two of the longest name (at least 128 bytes), and the table may grow to four
 * times the number of names (at least nginx's 512): checked with nginx -t on up to 5,000 random names
 * of up to 253 characters. Both are limits, not allocations: nginx builds the smallest table where
 * every bucket fits and each bucket takes only what it holds, so a small bucket and a large table
 * keep a Host lookup's linear scan of its bucket short.
 */
/** The longest server name nginx's default 64-byte bucket holds (a pointer, the name and 2 bytes, aligned, and the bucket's end). */
export const DEFAULT_BUCKET_LONGEST_NAME = 46;

/**
 * What the shared file sets. In managed mode Portico writes the main config, so the sizing is always
 * its own. In external mode the operator's `http` block may set the same directives (nginx refuses a
 * duplicate), so the shared file sets them only where nginx's defaults fail outright, for a name
 * over 46 characters; a few hundred names only make nginx warn.
 */
export function sharedServerNamesHash(names: string[], mode: 'managed' | 'external'): ServerNamesHash | undefined {
  const hash = serverNamesHash(names);
  return mode === 'managed' || hash.longest > DEFAULT_BUCKET_LONGEST_NAME ? hash : undefined;
}

export function serverNamesHash(names: string[]): ServerNamesHash {
  const longest = Math.max(0, ...names.map((name) => name.length));
  const element = POINTER + align(longest + 2);
  return {
    names: names.length,
    longest,
    bucketSize: Math.max(128, powerOfTwoAtLeast(2 * element + POINTER)),
    maxSize: Math.max(512, powerOfTwoAtLeast(4 * names.length)),
  };
}

/** What a file rendered from `view` says, as `readSharedHttp` reads it: the counts in its comments aside. */
export function sharedHttpOf(view: SharedHttpView): SharedHttp {
  const { serverNamesHash: hash, sticky } = view;
  return {
    listenAddress: view.listenAddress,
    httpPort: view.httpPort,
    httpsPort: view.httpsPort,
    httpDefault: view.httpDefault,
    upgrade: view.upgrade,
    sticky: sticky === undefined ? undefined : { cookie: sticky.cookie, key: sticky.key, setCookie: sticky.setCookie },
    cacheCredentials: view.cacheCredentials,
    cache: view.cache === undefined ? undefined : { dir: view.cache.dir, keysMb: view.cache.keysMb, maxMb: view.cache.maxMb },
    serverNamesHash: hash === undefined ? undefined : { bucketSize: hash.bucketSize, maxSize: hash.maxSize },
    acmeChallengeDir: view.acmeChallengeDir,
  };
}

export type SharedHttpRenderer = (view: SharedHttpView) => string;

export function createSharedHttpRenderer(source: string): SharedHttpRenderer {
  const template: Template<SharedHttpView> = compileTemplate(source);
  return (view) => template(view);
}
