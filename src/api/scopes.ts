/**
 * Which token scope each route needs: the one table `requiredScope` reads and the route-table test
 * holds against express's router, so a route missing here fails the tests. A `write` route is any
 * that changes state (a dry run included: it runs nginx -t on the caller's input), the legacy GET
 * routes that create, remove or reserve among them; `open` routes need no token at all.
 */
import type { Scope } from './tokens-file.js';

export type RouteScope = Scope | 'open';

export interface RouteRule {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** The path as express knows it (mount path and route path joined, no trailing "/"). */
  path: string;
  scope: RouteScope;
}

const rule = (method: RouteRule['method'], path: string, scope: RouteScope): RouteRule => ({ method, path, scope });

export const ROUTE_SCOPES: readonly RouteRule[] = [
  rule('GET', '/healthz', 'open'),
  // The API's description (api/openapi/): it tells what the routes are, nothing of the edge, so it
  // needs no token; the browser guard (Host, Origin, Sec-Fetch-Site) still applies.
  rule('GET', '/openapi.json', 'open'),
  rule('GET', '/docs', 'open'),
  rule('GET', '/docs/docs.js', 'open'),
  rule('GET', '/docs/swagger-ui-bundle.js', 'open'),
  rule('GET', '/docs/swagger-ui.css', 'open'),
  // The console's page, scripts and styles (api/console.ts, a fixed list): static, no data; what
  // they fetch needs the token.
  rule('GET', '/ui', 'open'),
  rule('GET', '/ui/:file', 'open'),
  rule('GET', '/ui/vendor/:file', 'open'),
  rule('GET', '/readyz', 'read'),
  // Prometheus's scrape: counts and states, never a credential; a scrape config carries a read token.
  rule('GET', '/metrics', 'read'),
  // stream-conductor's routes: three of its GETs change state.
  rule('GET', '/status', 'read'),
  rule('GET', '/getstreams', 'read'),
  rule('GET', '/hasstream/:port', 'read'),
  rule('GET', '/createstream/:port/:backend', 'write'),
  rule('GET', '/createstream', 'write'),
  rule('GET', '/createstream/*rest', 'write'),
  rule('GET', '/removestream/:port', 'write'),
  // It hands out a port for a create to take (and will reserve it for that create): a writer's step.
  rule('GET', '/getfreeport', 'write'),
  rule('GET', '/v1/streams', 'read'),
  rule('GET', '/v1/streams/:port', 'read'),
  rule('POST', '/v1/streams', 'write'),
  rule('POST', '/v1/logs/reopen', 'write'),
  rule('PUT', '/v1/streams/:port', 'write'),
  rule('DELETE', '/v1/streams/:port', 'write'),
  rule('GET', '/v1/certificates', 'read'),
  rule('GET', '/v1/certificates/:id', 'read'),
  rule('POST', '/v1/certificates', 'write'),
  rule('PUT', '/v1/certificates/:id', 'write'),
  rule('DELETE', '/v1/certificates/:id', 'write'),
  rule('POST', '/v1/certificates/:id/renew', 'write'),
  rule('GET', '/v1/apps', 'read'),
  rule('GET', '/v1/apps/:name', 'read'),
  rule('POST', '/v1/apps', 'write'),
  rule('PUT', '/v1/apps/:name', 'write'),
  rule('DELETE', '/v1/apps/:name', 'write'),
  rule('GET', '/v1/status', 'read'),
  rule('GET', '/v1/events', 'read'),
  rule('GET', '/v1/traffic/streams', 'read'),
  rule('GET', '/v1/traffic/apps', 'read'),
  rule('GET', '/v1/ports/free', 'write'),
  rule('GET', '/v1/fleet', 'read'),
  rule('POST', '/v1/fleet/import', 'write'),
];

/**
 * A rule's path as a pattern that matches at least what express's matcher does: any case, any
 * trailing slashes, a parameter any non-empty segment, a `*rest` anything.
 */
export function routePattern(path: string): RegExp {
  const body = path
    .split('/')
    .map((segment) => {
      if (segment.startsWith(':')) return '[^/]+';
      if (segment.startsWith('*')) return '.+';
      return segment.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
    })
    .join('/');
  return new RegExp(`^${body}/*$`, 'i');
}

const COMPILED = ROUTE_SCOPES.map((r) => ({ ...r, pattern: routePattern(r.path) }));

/** The path with percent-escapes decoded where they decode (a hostile spelling must not slip by). */
function decoded(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * The scope a request needs. HEAD runs GET's handler in express, so it needs what GET needs. A
 * request no rule names needs `read` for GET and HEAD (it can only be a 404) and `write` otherwise;
 * where several rules match, the strongest wins.
 */
export function requiredScope(method: string, path: string): Scope {
  const verb = method === 'HEAD' ? 'GET' : method;
  const spellings = [path, decoded(path)];
  const matching = COMPILED.filter((r) => r.method === verb && spellings.some((p) => r.pattern.test(p)));
  if (matching.some((r) => r.scope === 'write')) return 'write';
  if (matching.length > 0) return 'read';
  return verb === 'GET' ? 'read' : 'write';
}
