/**
 * What the API trusts from web browsers: nothing it did not ask for. A page an operator opens can
 * make the browser send requests to 127.0.0.1:5000 (an `<img>`, a no-cors `fetch`, a form post) and,
 * once its own name re-resolves to 127.0.0.1 (DNS rebinding), read the answers. Browsers say who
 * sends: `Host` carries the name the page used, `Origin` the page's origin, `Sec-Fetch-Site` whether
 * it is another site. Scripts (curl, wget, requests, node's fetch) send a Host naming the API and
 * neither of the others, so they pass unchanged. Caddy's admin API checks `Host` and `Origin` alike.
 *
 * /healthz is mounted before this guard: it changes nothing and says only that the process answers,
 * and a container's or Kubernetes' probe sends whatever Host its configuration gives it.
 */
import type { Request, RequestHandler } from 'express';
import { PorticoError, invalidInput } from '../errors.js';
import {
  LOOPBACK_NAMES,
  addressName,
  isOwnOrigin,
  namesApi,
  parseHost,
  parseOrigin,
  type AllowedHost,
  type ApiIdentity,
} from '../model/api-host.js';
import { sendError } from './errors.js';

/** What the guard reads of a request: every value of each header it judges (a repeated header is refused). */
export interface RequestFacts {
  hosts: string[];
  origins: string[];
  fetchSites: string[];
  /** The request target as sent: `/path?query`, or `http://authority/path` (absolute form). */
  target: string;
  httpVersion: string;
  /** The connection's own address and port: the API as this client reached it. */
  localAddress: string | undefined;
  localPort: number;
}

export interface GuardPolicy {
  bindAddress: string;
  allowedHosts: readonly AllowedHost[];
  allowedOrigins: ReadonlySet<string>;
}

export type Verdict = { allowed: true; corsOrigin: string | undefined } | { allowed: false; error: PorticoError };

const refuse = (field: string, message: string): Verdict => ({
  allowed: false,
  error: new PorticoError('Forbidden', `${field}: ${message}`, { field }),
});

const shown = (value: string): string => JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);

const HOST_RULE =
  'does not name this API: allowed are localhost, 127.0.0.1, [::1] and the address Portico listens on, with its port or none, and the names in API_ALLOWED_HOSTS';

/** The API's names for one connection: the loopback names, BIND_ADDRESS, and the address the client reached. */
function identityOf(facts: RequestFacts, policy: GuardPolicy): ApiIdentity {
  const names = new Set<string>(LOOPBACK_NAMES);
  for (const address of [policy.bindAddress, facts.localAddress]) {
    const name = address === undefined ? undefined : addressName(address);
    if (name !== undefined) names.add(name);
  }
  return { names, port: facts.localPort, allowedHosts: policy.allowedHosts };
}

/**
 * Judges a request before any route sees it. In order: one Host, naming the API (an HTTP/1.0
 * request may have none: no browser sends one without it); an absolute-form target's authority,
 * naming it too; an Origin, if any, that is the API's own or listed in API_ALLOWED_ORIGINS; and a
 * `Sec-Fetch-Site` other than `same-origin` or `none` (typed in the address bar) only with a listed
 * Origin. A browser without Fetch Metadata (Safari before 16.4) sends nothing that tells its `<img>`
 * from curl: API_TOKEN is the answer there, and the README says so.
 */
export function judgeRequest(facts: RequestFacts, policy: GuardPolicy): Verdict {
  for (const [field, values] of [['Host', facts.hosts], ['Origin', facts.origins], ['Sec-Fetch-Site', facts.fetchSites]] as const) {
    if (values.length > 1) {
      return { allowed: false, error: invalidInput(field, `appears ${values.length} times; a request carries it once at most`) };
    }
  }
  const api = identityOf(facts, policy);
  const [hostText] = facts.hosts;
  let requestPort = api.port;
  if (hostText === undefined) {
    if (facts.httpVersion !== '1.0') return { allowed: false, error: invalidInput('Host', 'is required (HTTP/1.1)') };
  } else {
    const host = parseHost(hostText);
    if (host === undefined || !namesApi(host, api)) return refuse('Host', `${shown(hostText)} ${HOST_RULE}`);
    // The port the browser sent the request to: a page's origin must carry the same one to be ours.
    requestPort = host.port ?? 80;
  }
  if (!facts.target.startsWith('/')) {
    const authority = /^https?:\/\/([^/?#]*)/i.exec(facts.target)?.[1];
    if (authority === undefined) return { allowed: false, error: invalidInput('request target', 'must be a path (or an absolute http URL)') };
    const host = parseHost(authority);
    if (host === undefined || !namesApi(host, api)) return refuse('request target', `its authority ${shown(authority)} ${HOST_RULE}`);
  }

  const [originText] = facts.origins;
  const origin = originText === undefined ? undefined : parseOrigin(originText);
  const listed = origin !== undefined && policy.allowedOrigins.has(origin.text);
  if (originText !== undefined && !listed && (origin === undefined || !isOwnOrigin(origin, api, requestPort))) {
    return refuse('Origin', `${shown(originText)} is neither this API's origin nor listed in API_ALLOWED_ORIGINS: a web page may call the API only from an origin listed there`);
  }
  const [site] = facts.fetchSites;
  const fetchSite = site?.trim().toLowerCase();
  if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none' && !listed) {
    return refuse(
      'Sec-Fetch-Site',
      `the browser marked this request ${shown(site as string)}: a page of another site may call the API only from an origin listed in API_ALLOWED_ORIGINS`,
    );
  }
  return { allowed: true, corsOrigin: listed ? originText : undefined };
}

/** Every value of header `name` (lower case) as sent: node folds a repeated Host into its first. */
function valuesOf(req: Request, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if ((req.rawHeaders[i] as string).toLowerCase() === name) values.push(req.rawHeaders[i + 1] as string);
  }
  return values;
}

export function requestFacts(req: Request): RequestFacts {
  return {
    hosts: valuesOf(req, 'host'),
    origins: valuesOf(req, 'origin'),
    fetchSites: valuesOf(req, 'sec-fetch-site'),
    target: req.originalUrl,
    httpVersion: req.httpVersion,
    localAddress: req.socket.localAddress,
    localPort: req.socket.localPort ?? 0,
  };
}

/** What a page of a listed origin may send and read (CORS); the token travels as an explicit header, never as a cookie. */
const ALLOW_METHODS = 'GET, POST, PUT, DELETE';
const ALLOW_HEADERS = 'Authorization, Content-Type, If-Match, If-None-Match';
const EXPOSE_HEADERS = 'ETag, Location, Portico-Outcome, Retry-After';

/**
 * The guard as middleware: refuses what `judgeRequest` refuses (403, or 400 for a malformed request),
 * answers the CORS preflight of a listed origin, and marks every answer `nosniff` so that no browser
 * reads a JSON answer as anything else.
 */
export function browserGuard(settings: { bindAddress: string; apiAllowedHosts: readonly AllowedHost[]; apiAllowedOrigins: readonly string[] }): RequestHandler {
  const policy: GuardPolicy = {
    bindAddress: settings.bindAddress,
    allowedHosts: settings.apiAllowedHosts,
    allowedOrigins: new Set(settings.apiAllowedOrigins),
  };
  return (req, res, next) => {
    res.set('X-Content-Type-Options', 'nosniff');
    res.vary('Origin');
    const verdict = judgeRequest(requestFacts(req), policy);
    if (!verdict.allowed) {
      sendError(res, verdict.error);
      return;
    }
    if (verdict.corsOrigin !== undefined) {
      res.set('Access-Control-Allow-Origin', verdict.corsOrigin);
      if (req.method === 'OPTIONS' && req.get('access-control-request-method') !== undefined) {
        res.set({ 'Access-Control-Allow-Methods': ALLOW_METHODS, 'Access-Control-Allow-Headers': ALLOW_HEADERS, 'Access-Control-Max-Age': '600' });
        // Chrome's Private Network Access asks before a public page may reach a loopback address.
        if (req.get('access-control-request-private-network') === 'true') res.set('Access-Control-Allow-Private-Network', 'true');
        res.status(204).end();
        return;
      }
      res.set('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    }
    next();
  };
}
