/**
 * Turns the locations of an app's server back into its routes. Pure.
 *
 * Route N is what proxies to the group `..._rN`: a path "/x/" is `location /x/`, a path "/x" is
 * `location = /x` and `location /x/`, with the same proxying; `replacePath` is read from the rewrites
 * and must give back exactly the rewrites the renderer writes. A path no route serves is `location /`
 * answering 404.
 */
import type { Route } from '../model/app.js';
import { isAppGroupName, type StickyView } from '../model/app-file.js';
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

/** `^` and a path prefix as a regex: only "." of the path alphabet is special. */
const prefixRegex = (path: string): string => `^${path.replace(/\./g, '\\.')}`;

type Rewrite = { regex: string; replacement: string };

/** The rewrites of a route's locations for `path` and `replacePath`: [prefix location's, exact location's]. */
function rewritesFor(path: string, replacePath: string | undefined): [Rewrite | undefined, Rewrite | undefined] {
  if (replacePath === undefined) return [undefined, undefined];
  if (path.endsWith('/')) {
    return replacePath.endsWith('/')
      ? [{ regex: `${prefixRegex(path)}(.*)$`, replacement: `${replacePath}$1` }, undefined]
      : [{ regex: `${prefixRegex(path.slice(0, -1))}(/.*)$`, replacement: `${replacePath}$1` }, undefined];
  }
  return [
    { regex: `${prefixRegex(path)}(/.*)$`, replacement: `${replacePath.replace(/\/$/, '')}$1` },
    { regex: `${prefixRegex(path)}$`, replacement: replacePath },
  ];
}

/** The replacePath the rewrites of a route's locations were written for; throws when they are not such rewrites. */
function readReplacePath(path: string, prefix: LocationRead, exact: LocationRead | undefined): string | undefined {
  const given = exact === undefined ? prefix.rewrite : exact.rewrite;
  let candidate: string | undefined;
  if (given !== undefined) {
    candidate = exact === undefined ? given.replacement.replace(/\$1$/, '') : given.replacement;
    if (candidate === '') candidate = '/';
  }
  const wanted = rewritesFor(path, candidate);
  for (const [location, want] of [[prefix, wanted[0]], [exact, wanted[1]]] as const) {
    if (location === undefined) continue;
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
  const [a, b, ...more] = [...locations].sort((x, y) => Number(y.exact) - Number(x.exact));
  if (a === undefined) fail(`upstream ${name} (route ${index}) is not used by any location`);
  let path: string;
  let prefix: LocationRead;
  let exact: LocationRead | undefined;
  if (b === undefined && !a.exact && a.path.endsWith('/')) {
    [path, prefix] = [a.path, a];
  } else if (b !== undefined && more.length === 0 && a.exact && !b.exact && !a.path.endsWith('/') && b.path === `${a.path}/`) {
    [path, prefix, exact] = [a.path, b, a];
  } else {
    const keys = locations.map((l) => `"location ${locationKey(l)}"`).join(', ');
    fail(`route ${index} (proxy_pass to ${name}) must have "location PATH/", or "location = PATH" and "location PATH/"; it has ${keys}`, a);
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
