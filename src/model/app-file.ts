/**
 * The names and constants of the app file format, in one place: `render/app.ts` writes them and
 * `parse/app*.ts` reads them back, so the two cannot drift apart.
 *
 * What lives here: the file's options (ports, certificate directory), the names of the upstream
 * groups and their shared zone, the sticky cookie, the request headers every proxying location sets,
 * and the locations and rewrites a route's `path` and `replacePath` become. Pure: no I/O.
 *
 * Format 2 (written since issue 13): each route's upstream group is named after the app first
 * (`<app>_r<N>_portico`, the app's `-` as `_`) and every group keeps its run-time state in one zone
 * shared by all apps (`zone portico_apps 32m;`). nginx looks an upstream name up by a linear scan
 * that compares lengths, then characters, and creates each zone apart: at 1,000 apps of two routes
 * (2,000 groups), `nginx -t` took 874-948 ms with format 1's names (`portico_app_<app>_r<N>`, a
 * common prefix of 12 characters) and a 64k zone per group, and 435 ms with format 2 (best of 7,
 * measured here on a synthetic tree; 84 ms for 1,000 streams alone). Format 1 is still read back;
 * an app is written in format 2 the next time it changes.
 */
import type { StreamFileOptions } from './stream.js';

/** The listeners every app shares, and where the certificates are. */
export interface AppFileOptions extends StreamFileOptions {
  httpPort: number;
  httpsPort: number;
  /**
   * The folder of HTTP-01 challenge answers (src/acme/http01.ts): every plain HTTP server, each
   * app's and the catch-all, serves it under ACME_CHALLENGE_PATH, straight from nginx. Unset, no
   * server does (and a file that does is refused).
   */
  acmeChallengeDir?: string;
}

/**
 * Format 3 (since issue 15): the URL path of HTTP-01 challenges (RFC 8555 8.3), a `^~` prefix location
 * that `alias`es the challenge folder, in every plain HTTP server. nginx checks a server-level
 * `return` before it picks a location, so an HTTPS redirect moved into `location /` (format 2 wrote
 * it at server level, and is still read back): a challenge is answered over plain HTTP even for an
 * app that redirects everything else. The templates write it as a literal (the `urlpath` helper
 * refuses a segment starting with "."), which the readers compare with this.
 */
export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';

/** Idle keep-alive connections each worker keeps to an app's upstream group (see render/app.ts). */
export const UPSTREAM_KEEPALIVE = 32;

/**
 * The one shared memory zone of every app's upstream groups (nginx: "several groups may share the
 * same zone"). A group of one server takes under 1 KB of it (2,000 did not fit in 1 MB and did in
 * 2 MB here): 32 MB holds tens of thousands. A zone too small fails the reload with nginx's
 * "ngx_slab_alloc() failed: no memory in upstream zone", which Portico answers and rolls back.
 */
export const APP_ZONE = { name: 'portico_apps', sizeMb: 32 } as const;

/**
 * The cookie of every sticky route and the two variables the shared file's maps make of it: the key
 * a sticky group hashes (the cookie, or a new `$request_id` on a client's first request) and the
 * Set-Cookie that hands a new client its id. One for all apps: a cookie is scoped to its host anyway,
 * and a map per route cost nginx -t 0.6 s at 500 sticky routes (739 ms against 144 ms with one).
 */
export interface StickyView {
  cookie: string;
  key: string;
  setCookie: string;
}
export const STICKY: StickyView = { cookie: 'portico_sticky', key: 'portico_sticky_key', setCookie: 'portico_sticky_set' };

/** Format 2's name of route `route`'s group of app `app`. */
export function appGroupName(app: string, route: number): string {
  return `${app.replace(/-/g, '_')}_r${route}_portico`;
}

/** Format 1's name, read back from files written before format 2. */
export function legacyAppGroupName(app: string, route: number): string {
  return `portico_app_${app.replace(/-/g, '_')}_r${route}`;
}

/** Format 1's zone: one per group, named as the group. */
export const LEGACY_ZONE_KB = 64;

/** True for a name either format gives some app's group (to tell "another app's" from "no group"). */
export function isAppGroupName(name: string): boolean {
  return /^portico_app_\w+_r\d+$/.test(name) || /^\w+_r\d+_portico$/.test(name);
}

/**
 * A request header every proxying location sets, `proxy_set_header NAME $VARIABLE;`, or clears,
 * `proxy_set_header NAME "";` (variable null). nginx's own defaults would send `Host` as the group's
 * name and `Connection: close`; these forward the client's host and address and keep the upstream
 * connection alive (or upgrade it, for a WebSocket route).
 */
export interface ProxyHeader {
  name: string;
  variable: string | null;
}

/** Set by every proxying location, in this order. */
const FORWARD_HEADERS: readonly ProxyHeader[] = [
  { name: 'Host', variable: 'host' },
  { name: 'X-Forwarded-For', variable: 'proxy_add_x_forwarded_for' },
  { name: 'X-Forwarded-Proto', variable: 'scheme' },
  { name: 'X-Real-IP', variable: 'remote_addr' },
];
/** Then, for a WebSocket route: the upgrade, through the shared file's map of `$http_upgrade`. */
const WEBSOCKET_HEADERS: readonly ProxyHeader[] = [
  { name: 'Upgrade', variable: 'http_upgrade' },
  { name: 'Connection', variable: 'portico_connection_upgrade' },
];
/** Or, for any other route: no `Connection` header, so the upstream keep-alive holds. */
const PLAIN_HEADERS: readonly ProxyHeader[] = [{ name: 'Connection', variable: null }];

/** The `proxy_set_header`s of a proxying location, in the order they are written and must be read. */
export function proxyHeaders(websocket: boolean): readonly ProxyHeader[] {
  return [...FORWARD_HEADERS, ...(websocket ? WEBSOCKET_HEADERS : PLAIN_HEADERS)];
}

/** The value argument of a `proxy_set_header` as the file's parser gives it: `$VARIABLE`, or "" to clear. */
export function proxyHeaderValue(header: ProxyHeader): string {
  return header.variable === null ? '' : `$${header.variable}`;
}

/** A `rewrite REGEX REPLACEMENT break;` of a location. */
export interface Rewrite {
  regex: string;
  replacement: string;
}

/** One location of a route: `location = PATH` (exact) or `location PATH`, with its rewrite, if any. */
export interface RouteLocation {
  exact: boolean;
  path: string;
  rewrite: Rewrite | undefined;
}

/** `^` and a path prefix as a `rewrite` regex: only "." of the path alphabet is special in a regex. */
function prefixRegex(path: string): string {
  return `^${path.replace(/\./g, '\\.')}`;
}

/**
 * The locations of a route of path `path` (a route without path is "/"). A path "/api" matches
 * "/api" and "/api/...", not "/apix": `location = /api` and `location /api/`; a path ending in "/"
 * is that one prefix location. `replacePath` swaps the prefix, keeping the rest and the query
 * ("/api/x?q=1" becomes "/x?q=1" with replacePath "/"). For a path "/static/", "/v1" and "/v1/" both
 * swap "/static/x" for "/v1/x", each with its own rewrite, so the file reads back as the replacePath
 * it was written from.
 */
export function routeLocations(path: string, replacePath: string | undefined): RouteLocation[] {
  if (path.endsWith('/')) {
    const rewrite =
      replacePath === undefined
        ? undefined
        : replacePath.endsWith('/')
          ? { regex: `${prefixRegex(path)}(.*)$`, replacement: `${replacePath}$1` }
          : { regex: `${prefixRegex(path.slice(0, -1))}(/.*)$`, replacement: `${replacePath}$1` };
    return [{ exact: false, path, rewrite }];
  }
  return [
    { exact: true, path, rewrite: replacePath === undefined ? undefined : { regex: `${prefixRegex(path)}$`, replacement: replacePath } },
    {
      exact: false,
      path: `${path}/`,
      rewrite: replacePath === undefined ? undefined : { regex: `${prefixRegex(path)}(/.*)$`, replacement: `${replacePath.replace(/\/$/, '')}$1` },
    },
  ];
}

/**
 * The replacePath a route's rewrite was written from, as `routeLocations` writes it: the exact
 * location's replacement when the route has one (`exact`), else the prefix location's without its
 * `$1`. Only a candidate: the reader checks it by writing the rewrites again and comparing.
 */
export function replacePathOf(rewrite: Rewrite, exact: boolean): string {
  const replacePath = exact ? rewrite.replacement : rewrite.replacement.replace(/\$1$/, '');
  return replacePath === '' ? '/' : replacePath;
}
