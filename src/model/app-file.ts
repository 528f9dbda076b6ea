/**
 * The names and constants of the app file format, in one place: `render/app.ts` writes them and
 * `parse/app*.ts` reads them back, so the two cannot drift apart.
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
