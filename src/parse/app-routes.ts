/**
 * Turns the locations of an app's server back into its routes. Pure.
 *
 * Route N is what proxies to the group `..._rN`: a path "/x/" is `location /x/`, a path "/x" is
 * `location = /x` and `location /x/`, with the same proxying, as `routeLocations` of model/app-file.ts
 * lays them out; `replacePath` is read from the rewrites and must give back exactly the rewrites that
 * function writes. A path no route serves is `location /` answering 404.
 */
import type { Route } from '../model/app.js';
import { isAppGroupName, replacePathOf, routeLocations, type StickyView } from '../model/app-file.js';
import type { AppGroupRead } from './app-group.js';
import type { LocationRead, ProxyRead } from './app-location.js';
import { fail } from './directive.js';

export interface RouteGroup {
  name: string;
  sticky: StickyView;
  group: AppGroupRead;
}

export function locationKey(location: Pick<LocationRead, 'exact' | 'path'>): string {
  return `${location.exact ? '= ' : ''}${location.path}`;
}

/** The replacePath the rewrites of a route's locations were written for; throws when they are not such rewrites. */
function readReplacePath(path: string, prefix: LocationRead, exact: LocationRead | undefined): string | undefined {
  const given = exact === undefined ? prefix.rewrite : exact.rewrite;
  const candidate = given === undefined ? undefined : replacePathOf(given, exact !== undefined);
  const wanted = routeLocations(path, candidate);
  for (const location of [prefix, exact]) {
    if (location === undefined) continue;
    const want = wanted.find((w) => w.exact === location.exact)?.rewrite;
    const got = location.rewrite;
    if (want === undefined && got !== undefined) fail(`location ${locationKey(location)} has a rewrite its route does not have`, got);
    if (want !== undefined && (got?.regex !== want.regex || got.replacement !== want.replacement)) {
      fail(`location ${locationKey(location)} must hold "rewrite ${want.regex} ${want.replacement} break" (replacePath "${candidate}")`, got ?? location);
    }
  }
  return candidate;
}

/** One route from the locations that proxy to its group. */
function readRoute(locations: LocationRead[], index: number, { name, sticky, group }: RouteGroup): Route {
  // The route's path is its exact location's, or its one prefix location's; its locations must be
  // the ones that path is written as.
  const exact = locations.find((l) => l.exact);
  const first = exact ?? locations[0];
  if (first === undefined) fail(`upstream ${name} (route ${index}) is not used by any location`);
  const path = first.path;
  const want = routeLocations(path, undefined).map(locationKey).sort();
  const got = locations.map(locationKey).sort();
  const prefix = locations.find((l) => !l.exact);
  if (prefix === undefined || got.length !== want.length || got.some((key, i) => key !== want[i])) {
    const keys = locations.map((l) => `"location ${locationKey(l)}"`).join(', ');
    fail(`route ${index} (proxy_pass to ${name}) must have "location PATH/", or "location = PATH" and "location PATH/"; it has ${keys}`, first);
  }
  const proxy = prefix.proxy as ProxyRead;
  if (exact !== undefined && JSON.stringify(exact.proxy) !== JSON.stringify(proxy)) {
    fail(`locations "= ${path}" and "${path}/" proxy differently: they are one route and must agree`, prefix);
  }
  const replacePath = readReplacePath(path, prefix, exact);
  if ((group.balance === 'sticky') !== (proxy.setCookie !== undefined) || (proxy.setCookie !== undefined && proxy.setCookie !== sticky.setCookie)) {
    fail(`"add_header Set-Cookie $${sticky.setCookie}" goes with the sticky balancing of ${name}, and only then`, prefix);
  }
  return {
    // "location /" is also a route without path: a path "/" is in the file when it has a replacePath,
    // otherwise in the annotation routes.N.path=root.
    ...((path !== '/' || replacePath !== undefined) && { path }),
    ...(replacePath !== undefined && { replacePath }),
    upstreams: group.upstreams,
    ...(group.balance !== undefined && { balance: group.balance }),
    ...(proxy.https && { upstreamTls: true }),
    ...(proxy.websocket && { websocket: true }),
    ...(proxy.cacheTtl !== undefined && { cache: { ttl: proxy.cacheTtl, ...(proxy.cacheSharesAuthenticated === true && { shareAuthenticated: true }) } }),
    ...(proxy.maxBodySize !== undefined && { maxBodySize: proxy.maxBodySize }),
    ...(proxy.headers.length > 0 && { headers: headersRecord(proxy.headers) }),
  };
}

function headersRecord(headers: Array<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  return out;
}

/** The routes of app `app` from the locations of a server; `groups` are its upstream groups, by route. */
export function readRoutes(locations: LocationRead[], groups: RouteGroup[], app: string): Route[] {
  const byKey = new Map<string, LocationRead>();
  const perRoute: LocationRead[][] = groups.map(() => []);
  for (const location of locations) {
    const key = locationKey(location);
    if (byKey.has(key)) fail(`"location ${key}" is given twice`, location);
    byKey.set(key, location);
    if (location.proxy === undefined) {
      if (key !== '/') fail(`"location ${key}" answers 404: only "location /" does, when no route serves "/"`, location);
      continue;
    }
    const index = groups.findIndex((g) => g.name === location.proxy?.group);
    if (index < 0) {
      const theirs = isAppGroupName(location.proxy.group) ? ', it belongs to another app' : '';
      fail(`proxy_pass names "${location.proxy.group}", which is not a group of app "${app}"${theirs} (${groups.map((g) => g.name).join(', ')})`, location);
    }
    perRoute[index]?.push(location);
  }
  if (!byKey.has('/')) fail('the server has no "location /" (a route for "/", or "return 404" when none serves it)');
  return groups.map((group, i) => readRoute(perRoute[i] ?? [], i, group));
}
