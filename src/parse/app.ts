/**
 * Reads an app's file (`app_<name>.conf`) back into the `App` it was rendered from. Pure.
 *
 * The reader accepts exactly the shape `render/app.ts` writes and derives every field from the
 * directives (the header comment is not trusted): anything else is refused with the line and the
 * reason, so a hand edit Portico cannot represent is reported, never silently misread. Every nginx
 * identifier must be the one of the app named by the file, and what is read passes the app schema.
 */
import { APP_NAME_PATTERN, appAcmeCertificateId, appSchema, type App } from '../model/app.js';
import { STICKY, appGroupName, legacyAppGroupName, type AppFileOptions } from '../model/app-file.js';
import { readAppGroup } from './app-group.js';
import type { LocationRead } from './app-location.js';
import { locationKey, readRoutes, type RouteGroup } from './app-routes.js';
import { readAppServer, type AppServerRead } from './app-server.js';
import { applyDefaults, readAnnotations, type DefaultsRule } from './annotations.js';
import { UnreadableFile, fail, parseFile, type Directive } from './directive.js';

export { UnreadableFile };
export type { AppFileOptions };

/** What `# portico-defaults:` may record for an app, and the value each stands for. */
const DEFAULT_VALUES: Record<string, () => unknown> = { false: () => false, true: () => true, round_robin: () => 'round_robin', root: () => '/', empty: () => ({}) };
const DEFAULTS: DefaultsRule = {
  allowed:
    /^(?:default=false|routes\.(?:0|[1-9]\d?)\.(?:path=root|balance=round_robin|upstreamTls=false|websocket=false|headers=empty|cache\.shareAuthenticated=false)|tls\.(?:httpsRedirect|http2|http3|acme)=false|tls\.(?:acme|httpsRedirect)=true)$/,
  what: 'the app',
  recordsFor: ' for an app',
  valueOf: (value) => (DEFAULT_VALUES[value] as () => unknown)(),
};

/** The same locations, Alt-Svc aside, in both servers: the TLS server serves what the HTTP one does. */
function checkSameLocations(http: LocationRead[], https: LocationRead[]): void {
  const strip = ({ line: _line, altSvc: _altSvc, rewrite, ...rest }: LocationRead) =>
    JSON.stringify({ ...rest, rewrite: rewrite === undefined ? null : { regex: rewrite.regex, replacement: rewrite.replacement } });
  const theirs = new Map(https.map((l) => [locationKey(l), l]));
  for (const location of http) {
    const other = theirs.get(locationKey(location));
    if (other === undefined) fail(`"location ${locationKey(location)}" of the HTTP server is missing from the TLS server`, location);
    if (strip(other) !== strip(location)) fail(`"location ${locationKey(location)}" differs between the HTTP and the TLS server`, other);
    theirs.delete(locationKey(location));
  }
  const extra = [...theirs.values()][0];
  if (extra !== undefined) fail(`"location ${locationKey(extra)}" of the TLS server is missing from the HTTP server`, extra);
}

/** Every location of the TLS server carries the same Alt-Svc when it listens on QUIC, none otherwise. */
function readAltSvc(server: AppServerRead, options: AppFileOptions): number | undefined {
  let maxAge: number | undefined;
  server.locations.forEach((location, i) => {
    const alt = location.altSvc;
    if (!server.quic) {
      if (alt !== undefined) fail('Alt-Svc advertises HTTP/3, but the server does not listen on QUIC', alt);
      return;
    }
    if (alt === undefined) fail(`"location ${locationKey(location)}" lacks the Alt-Svc header of HTTP/3`, location);
    if (alt.port !== options.httpsPort) fail(`Alt-Svc must advertise the HTTPS port ${options.httpsPort}`, alt);
    if (i > 0 && alt.maxAge !== maxAge) fail('every location must advertise the same Alt-Svc', alt);
    maxAge = alt.maxAge;
  });
  return maxAge;
}

/**
 * Parses the text of an app's file; `name` is the app's name, from the file's name. Throws
 * `UnreadableFile` (with the line, when there is one) if the text is not a file of that app.
 */
export function readApp(text: string, options: AppFileOptions, name: string): App {
  if (!APP_NAME_PATTERN.test(name)) fail(`"${name}" is not an app name`);
  const { directives, comments } = parseFile(text);
  const annotations = readAnnotations(comments);
  if (annotations.labels !== undefined) fail('an app has no labels ("portico-labels:")');

  const upstreams: Directive[] = [];
  const maps: Directive[] = [];
  const servers: Directive[] = [];
  const blocks = new Map([['upstream', upstreams], ['map', maps], ['server', servers]]);
  for (const directive of directives) {
    const list = directive.block === undefined ? undefined : blocks.get(directive.name);
    if (list === undefined) fail(`unexpected "${directive.name}" at the top of an app file`, directive);
    list.push(directive);
  }
  // Format 1 (before issue 13) is told by its first group's name; a file is all one format.
  const legacy = upstreams[0]?.args[0] === legacyAppGroupName(name, 0);
  const groups: RouteGroup[] = upstreams.map((directive, i) => {
    const groupName = legacy ? legacyAppGroupName(name, i) : appGroupName(name, i);
    return { name: groupName, sticky: STICKY, group: readAppGroup(directive, groupName, STICKY, legacy) };
  });
  if (groups.length === 0) fail('no upstream block: an app has at least one route');
  // The sticky cookie's maps are in the shared file: an app file holds none.
  if (maps[0] !== undefined) fail('unexpected map: an app file holds no map', maps[0]);

  const [httpBlock, tlsBlock, extra] = servers;
  if (httpBlock === undefined) fail('no server block');
  if (extra !== undefined) fail('an app has two server blocks at most (HTTP, then TLS)', extra);
  const http = readAppServer(httpBlock, options);
  if (http.tls) fail('the first server block must be the plain HTTP one', httpBlock);
  const tls = tlsBlock === undefined ? undefined : readAppServer(tlsBlock, options);
  if (tls !== undefined && !tls.tls) fail('the second server block must be the TLS one ("listen PORT ssl")', tlsBlock);
  if (http.redirect && tls === undefined) fail('the HTTP server redirects to HTTPS, but there is no TLS server', httpBlock);
  if (tls !== undefined && tls.serverNames.join(' ') !== http.serverNames.join(' ')) {
    fail('the TLS server must have the server names of the HTTP server, in the same order', tlsBlock);
  }
  for (const location of http.locations) {
    if (location.altSvc !== undefined) fail('Alt-Svc belongs to the TLS server, not to the HTTP one', location.altSvc);
  }
  if (tls !== undefined && !http.redirect) checkSameLocations(http.locations, tls.locations);
  const altSvcMaxAge = tls === undefined ? undefined : readAltSvc(tls, options);
  const routes = readRoutes(http.redirect && tls !== undefined ? tls.locations : http.locations, groups, name);

  const app: Record<string, unknown> = {
    name,
    serverNames: http.serverNames,
    ...(http.defaultServer && { default: true }),
    routes,
    ...(tls !== undefined && {
      tls: {
        certificate: tls.certificate,
        ...(http.redirect && { httpsRedirect: true }),
        ...(tls.http2 && { http2: true }),
        ...(tls.quic && { http3: true }),
        ...(altSvcMaxAge !== undefined && { altSvcMaxAge }),
        ...(tls.clientCa !== undefined && { clientCa: tls.clientCa }),
      },
    }),
  };
  applyDefaults(app, annotations.defaults, DEFAULTS);
  // `tls.acme=true` is recorded: the certificate served is the app's managed one, not one it names.
  const readTls = app.tls as { certificate?: string; acme?: boolean } | undefined;
  if (readTls?.acme === true) {
    if (readTls.certificate !== appAcmeCertificateId(name)) fail(`"tls.acme=true" is recorded, but the TLS server serves "${readTls.certificate}", not the app's managed certificate "${appAcmeCertificateId(name)}"`);
    delete readTls.certificate;
  }
  const parsed = appSchema.safeParse(app);
  if (!parsed.success) fail(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return parsed.data;
}
