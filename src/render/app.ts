/**
 * Renders an HTTP app into the text of its file (`http` context). Pure: every decision is made here
 * in a flat view; `templates/app.conf.hbs` only prints it.
 *
 * What spans apps (the catch-all server, `reuseport` on the QUIC listener, the maps and the cache
 * every app uses) is in the shared file (`render/http-shared.ts`), rendered from the set of apps.
 */
import { certificatePath, keyPath } from '../model/stream.js';
import { CACHE_CREDENTIALS_VARIABLE, appServedCertificate, type App, type AppUpstream, type Route } from '../model/app.js';
import {
  APP_ZONE,
  STICKY,
  UPSTREAM_KEEPALIVE,
  appGroupName,
  proxyHeaders,
  routeLocations,
  type AppFileOptions,
  type ProxyHeader,
  type Rewrite,
  type StickyView,
} from '../model/app-file.js';
import { compileTemplate, type Template } from './engine.js';

export { STICKY, UPSTREAM_KEEPALIVE, appGroupName, type StickyView };

/*
 * UPSTREAM_KEEPALIVE: 32 as in make bench's hand-tuned reference: with 16, reopened upstream
 * connections were about half of the gap in nginx's CPU per request between a generated app and
 * the reference.
 */


export interface AppGroupView {
  name: string;
  zone: string;
  zoneMb: number;
  leastConn: boolean;
  random: boolean;
  ipHash: boolean;
  /** The variable a sticky group hashes on (`STICKY.key`), or null. */
  stickyKey: string | null;
  servers: Array<{ address: string; weight: number | null }>;
  keepalive: number;
}

export interface LocationView {
  /** `location = PATH` or `location PATH`. */
  exact: boolean;
  path: string;
  /** `rewrite REGEX REPLACEMENT break;` lines, for `replacePath` (one at most). */
  rewrites: Rewrite[];
  /** null: `return 404` (no route). */
  proxy: {
    /** TLS to the upstream. */
    https: boolean;
    group: string;
    /**
     * The `proxy_set_header`s (model/app-file.ts): the template prints each name with the `hostname`
     * guard (header names Portico sets are letters, digits and hyphens; `headername` is the guard of
     * the user's response headers and refuses Host, Connection and Upgrade) and each variable with `name`.
     */
    requestHeaders: readonly ProxyHeader[];
    /** `credentials`: the variable whose requests bypass the cache, or null when the route shares authenticated answers. */
    cache: { ttl: string; credentials: string | null } | null;
    maxBodySize: string | null;
    headers: Array<{ name: string; value: string }>;
    sticky: StickyView | null;
  } | null;
  /** Alt-Svc advertising HTTP/3; `maxAge` null leaves `ma` out (clients then assume 24 hours). */
  altSvc: { port: number; maxAge: number | null } | null;
}

export interface ServerView {
  tls: boolean;
  listens: Array<{ host: string | null; port: number; ssl: boolean; quic: boolean; defaultServer: boolean }>;
  serverNames: string[];
  http2: boolean;
  certificate: { certificate: string; key: string } | null;
  clientCa: string | null;
  /** Refuse a request whose Host is not the TLS server name (421, as rpxy). */
  checkSni: boolean;
  /** Plain HTTP redirected to HTTPS: the port to put in the Location, or null for 443. */
  redirect: { port: number | null } | null;
  /** The HTTP-01 challenge folder this plain HTTP server serves at ACME_CHALLENGE_PATH (the template's literal), or null. */
  acmeChallenge: { dir: string } | null;
  locations: LocationView[];
}

export interface AppView {
  name: string;
  defaults: string[];
  groups: AppGroupView[];
  servers: ServerView[];
}

function groupView(app: App, route: Route, index: number): AppGroupView {
  const balance = route.balance;
  return {
    name: appGroupName(app.name, index),
    zone: APP_ZONE.name,
    zoneMb: APP_ZONE.sizeMb,
    leastConn: balance === 'least_conn',
    random: balance === 'random',
    ipHash: balance === 'ip_hash',
    stickyKey: balance === 'sticky' ? STICKY.key : null,
    servers: route.upstreams.map((u: AppUpstream) => ({ address: u.address, weight: u.weight ?? null })),
    keepalive: UPSTREAM_KEEPALIVE,
  };
}

/** The locations of one route, as model/app-file.ts lays them out for its path and replacePath. */
function routeLocationViews(app: App, route: Route, index: number, altSvc: LocationView['altSvc']): LocationView[] {
  const proxy: LocationView['proxy'] = {
    https: route.upstreamTls === true,
    group: appGroupName(app.name, index),
    requestHeaders: proxyHeaders(route.websocket === true),
    cache:
      route.cache === undefined
        ? null
        : { ttl: route.cache.ttl, credentials: route.cache.shareAuthenticated === true ? null : CACHE_CREDENTIALS_VARIABLE },
    maxBodySize: route.maxBodySize ?? null,
    headers: Object.entries(route.headers ?? {}).map(([name, value]) => ({ name, value })),
    sticky: route.balance === 'sticky' ? STICKY : null,
  };
  return routeLocations(route.path ?? '/', route.replacePath).map(({ exact, path, rewrite }) => ({
    exact,
    path,
    rewrites: rewrite === undefined ? [] : [rewrite],
    proxy,
    altSvc,
  }));
}

function locations(app: App, altSvc: LocationView['altSvc']): LocationView[] {
  const out = app.routes.flatMap((route, i) => routeLocationViews(app, route, i, altSvc));
  // Without a route for "/", nginx would serve files from its html directory: answer 404 instead.
  if (!out.some((l) => !l.exact && l.path === '/')) out.push({ exact: false, path: '/', rewrites: [], proxy: null, altSvc });
  return out.sort((a, b) => (a.path === b.path ? Number(b.exact) - Number(a.exact) : a.path < b.path ? -1 : 1));
}

/**
 * The fields given with a default value nginx cannot show, as `path=value`: `path=root` is a path "/"
 * without replacePath (a route without path has the same `location /`), `headers=empty` is `{}`.
 */
export function appDefaultAnnotations(app: App): string[] {
  const out: string[] = [];
  if (app.default === false) out.push('default=false');
  app.routes.forEach((route, i) => {
    if (route.path === '/' && route.replacePath === undefined) out.push(`routes.${i}.path=root`);
    if (route.balance === 'round_robin') out.push(`routes.${i}.balance=round_robin`);
    if (route.upstreamTls === false) out.push(`routes.${i}.upstreamTls=false`);
    if (route.websocket === false) out.push(`routes.${i}.websocket=false`);
    if (route.cache?.shareAuthenticated === false) out.push(`routes.${i}.cache.shareAuthenticated=false`);
    if (route.headers !== undefined && Object.keys(route.headers).length === 0) out.push(`routes.${i}.headers=empty`);
  });
  const tls = app.tls;
  if (tls?.acme === true) out.push('tls.acme=true');
  if (tls?.acme === false) out.push('tls.acme=false');
  if (tls?.httpsRedirect === false) out.push('tls.httpsRedirect=false');
  if (tls?.http2 === false) out.push('tls.http2=false');
  if (tls?.http3 === false) out.push('tls.http3=false');
  return out;
}

/**
 * How a file is rendered beyond the app itself. `redirectWaits`: the certificate the app serves is
 * still an ACME placeholder (acme/placeholder.ts), so its `httpsRedirect` waits: the plain HTTP server
 * serves the routes, and the file records `tls.httpsRedirect=true` for the reader. Once the CA's
 * certificate is in, the app is written again with the redirect.
 */
export interface AppRenderState {
  redirectWaits?: boolean;
}

export function appView(app: App, options: AppFileOptions, state: AppRenderState = {}): AppView {
  const tls = app.tls;
  const servers: ServerView[] = [];
  const redirect = tls?.httpsRedirect === true && state.redirectWaits !== true;
  servers.push({
    tls: false,
    listens: [{ host: options.listenAddress ?? null, port: options.httpPort, ssl: false, quic: false, defaultServer: app.default === true }],
    serverNames: app.serverNames,
    http2: false,
    certificate: null,
    clientCa: null,
    checkSni: false,
    redirect: redirect ? { port: options.httpsPort === 443 ? null : options.httpsPort } : null,
    acmeChallenge: options.acmeChallengeDir === undefined ? null : { dir: options.acmeChallengeDir },
    locations: redirect ? [] : locations(app, null),
  });
  if (tls !== undefined) {
    const altSvc = tls.http3 === true ? { port: options.httpsPort, maxAge: tls.altSvcMaxAge ?? null } : null;
    servers.push({
      tls: true,
      listens: [
        { host: options.listenAddress ?? null, port: options.httpsPort, ssl: true, quic: false, defaultServer: false },
        ...(tls.http3 === true ? [{ host: options.listenAddress ?? null, port: options.httpsPort, ssl: false, quic: true, defaultServer: false }] : []),
      ],
      serverNames: app.serverNames,
      http2: tls.http2 === true,
      certificate: { certificate: certificatePath(options, appServedCertificate(app) as string), key: keyPath(options, appServedCertificate(app) as string) },
      clientCa: tls.clientCa === undefined ? null : certificatePath(options, tls.clientCa),
      checkSni: true,
      redirect: null,
      acmeChallenge: null,
      locations: locations(app, altSvc),
    });
  }
  return {
    name: app.name,
    defaults: [...appDefaultAnnotations(app), ...(tls?.httpsRedirect === true && !redirect ? ['tls.httpsRedirect=true'] : [])],
    groups: app.routes.map((route, i) => groupView(app, route, i)),
    servers,
  };
}

export type AppRenderer = (app: App, state?: AppRenderState) => string;

/** Compiles the app template once; the returned function renders one app per call. */
export function createAppRenderer(source: string, options: AppFileOptions): AppRenderer {
  const template: Template<AppView> = compileTemplate(source);
  return (app, state) => template(appView(app, options, state));
}
