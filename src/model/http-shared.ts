/**
 * The file every HTTP app shares (`portico_http.conf`): its name, what it holds as Portico renders it
 * and reads it back, and which of its parts the apps use. Pure; `render/http-shared.ts` writes it,
 * `parse/http-shared.ts` reads it, and whatever the apps and the settings call for is decided in
 * `apply/`.
 *
 * Each map and the cache zone is written only while some app uses it: nginx builds every `map`'s
 * hashes (allocating and zeroing their key arrays) and creates the cache's shared zone at each
 * config load, which every app change's `nginx -t` and the master's reload paid for, used or not.
 * The isolated config Portico tests one plain app with took 54 ms of CPU with the four maps and the
 * cache zone and 32 ms without (2,635 and 1,038 page faults; median of 21 `nginx -t`, nginx 1.30.4;
 * an empty `http {}` took 22 ms on the same, busy, machine).
 */
import type { App } from './app.js';

export const SHARED_HTTP_FILE = 'portico_http.conf';

/** The names of the sticky cookie and of the two variables the shared maps make of it. */
export interface StickyNames {
  cookie: string;
  key: string;
  setCookie: string;
}

/** The cache zone every caching route stores in (`proxy_cache_path ... keys_zone=portico_cache:...`). */
export interface SharedCache {
  dir: string;
  keysMb: number;
  maxMb: number;
}

/** What the shared file says, directive for directive (its comments aside). */
export interface SharedHttp {
  /** The address the three listeners bind (LISTEN_ADDRESS), or undefined: every address. */
  listenAddress: string | undefined;
  httpPort: number;
  httpsPort: number;
  /** The catch-all server is the default on the plain HTTP port: no app has `"default": true`. */
  httpDefault: boolean;
  /** The WebSocket map, `$http_upgrade` into `$portico_connection_upgrade`, is written. */
  upgrade: boolean;
  /** The sticky maps, when they are written. */
  sticky: StickyNames | undefined;
  /** The variable the credentials map sets for a request with Authorization or a cookie (cached routes skip those), when it is written. */
  cacheCredentials: string | undefined;
  /** The cache zone, when it is written. */
  cache: SharedCache | undefined;
  /** `server_names_hash_bucket_size` and `_max_size`, when the file sets them. */
  serverNamesHash: { bucketSize: number; maxSize: number } | undefined;
  /**
   * The HTTP-01 challenge folder the catch-all serves at ACME_CHALLENGE_PATH (model/app-file.ts), for
   * names no app serves; undefined when it serves none (before issue 15, or without a folder).
   */
  acmeChallengeDir: string | undefined;
}

/** Which of the shared file's optional parts are written: what some app file refers to. */
export interface SharedHttpUses {
  /** `proxy_set_header Connection $portico_connection_upgrade`: a WebSocket route. */
  upgrade: boolean;
  /** `hash $portico_sticky_key consistent` and `add_header Set-Cookie $portico_sticky_set`: a route balancing "sticky". */
  sticky: boolean;
  /** `proxy_cache portico_cache`: a route with a cache. */
  cache: boolean;
  /** `proxy_cache_bypass` and `proxy_no_cache $portico_cache_credentials`: a cache without `shareAuthenticated`. */
  cacheCredentials: boolean;
}

/** Every part: what versions before maps were written on demand always wrote. */
export const ALL_SHARED_HTTP_USES: Readonly<SharedHttpUses> = { upgrade: true, sticky: true, cache: true, cacheCredentials: true };

/**
 * What the files of `apps` refer to in the shared file, as `render/app.ts` writes them (and
 * `parse/app*.ts` reads them back, in either app file format): an app file that names a variable or
 * a zone the shared file does not define fails `nginx -t`.
 */
export function sharedHttpUses(apps: Iterable<App>): SharedHttpUses {
  const uses: SharedHttpUses = { upgrade: false, sticky: false, cache: false, cacheCredentials: false };
  for (const app of apps) {
    for (const route of app.routes) {
      if (route.websocket === true) uses.upgrade = true;
      if (route.balance === 'sticky') uses.sticky = true;
      if (route.cache !== undefined) {
        uses.cache = true;
        if (route.cache.shareAuthenticated !== true) uses.cacheCredentials = true;
      }
    }
  }
  return uses;
}
