/**
 * The HTTP app resource: virtual hosts on the shared HTTP/HTTPS listeners, routed by path prefix to
 * load-balanced upstreams, with TLS, HTTP/2, HTTP/3, mutual TLS, caching and WebSocket (rpxy's
 * feature set, carried by nginx).
 *
 * `appSchema` is the only parser of outside input for apps; the same rules hold for an app read back
 * from its file.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { certificateIdSchema } from './certificate.js';
import { addressSchema, isDuration, serverNameSchema } from './net.js';

export const MAX_SERVER_NAMES = 64;
export const MAX_ROUTES = 64;
export const MAX_UPSTREAMS = 64;
export const MAX_HEADERS = 32;

/** An app's name: it names the file (`app_<name>.conf`) and nginx identifiers. */
export const APP_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const appNameSchema = z
  .string({ invalid_type_error: 'must be a string' })
  .regex(APP_NAME_PATTERN, 'must be 1-63 characters of a-z, 0-9 and "-", not starting or ending with "-"');

/**
 * A URL path prefix: "/" and segments of unreserved characters. Nothing nginx would read as a regex,
 * a variable or the end of a directive, and no "." or ".." segment or empty segment.
 */
export const URL_PATH_PATTERN = /^\/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*\/?)?$/;
export function isUrlPath(text: string): boolean {
  return text.length <= 1024 && URL_PATH_PATTERN.test(text) && !text.split('/').some((s) => s === '.' || s === '..');
}
const urlPathSchema = z
  .string({ invalid_type_error: 'must be a string' })
  .refine(isUrlPath, 'must be "/" or a path of "/"-separated segments of A-Z, a-z, 0-9, ".", "_", "~" and "-", without "." or ".." segments, at most 1024 characters');

/** nginx's size syntax: a number and an optional k, m or g, at most 10g. */
export const SIZE_PATTERN = /^([1-9]\d{0,9}|0)([kmg])?$/;
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
export function isSize(text: string): boolean {
  const match = SIZE_PATTERN.exec(text);
  return match !== null && Number(match[1]) * (SIZE_UNITS[match[2] ?? ''] as number) <= 10 * 1024 ** 3;
}
const sizeSchema = z
  .string({ invalid_type_error: 'must be a string such as "10m"' })
  .refine(isSize, 'must be a size such as "512k", "10m" or "1g" (a number and an optional k, m or g), at most 10g; "0" means no limit');

/** An HTTP header name: an RFC 9110 token, without "#" and "'", which nginx reads as a comment and a quote. */
const HEADER_NAME = /^[A-Za-z0-9!%&*+.^_`|~-]{1,64}$/;
/**
 * A header value nginx prints as it is: visible ASCII and spaces, without a double quote, `$`, `\`,
 * `{` or `}`. A single quote is allowed (`default-src 'self'`): the value is written inside double
 * quotes, where nginx reads a single quote as itself.
 */
const HEADER_VALUE = /^[A-Za-z0-9 !#%&'()*+,./:;<=>?@[\]^_`|~-]{0,512}$/;
export function isHeaderName(text: string): boolean {
  // zod drops a record key "__proto__" without an issue: refuse it here rather than lose it silently.
  return HEADER_NAME.test(text) && text !== '__proto__' && reservedHeaderReason(text) === undefined;
}

/**
 * Headers that frame a message or belong to one connection (RFC 9110 §7.6.1, RFC 9112 §6-7): nginx
 * writes them itself for each hop, and `add_header` would send a second copy beside nginx's own (two
 * `Content-Length`s, `Transfer-Encoding: chunked` over a body that is not chunked), which clients and
 * caches read differently: the stuff of response splitting and desync.
 */
const FRAMING_HEADERS = new Set(['connection', 'content-length', 'host', 'keep-alive', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** Why a header may not be added to responses (compared case-insensitively), or undefined when it may. */
export function reservedHeaderReason(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (FRAMING_HEADERS.has(lower) || lower.startsWith('proxy-')) {
    return `"${name}" is a framing or hop-by-hop header (Connection, Content-Length, Host, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*): nginx sets it for each connection, and a second copy would make the answer ambiguous`;
  }
  return undefined;
}
export function isHeaderValue(text: string): boolean {
  return HEADER_VALUE.test(text) && !/^\s|\s$/.test(text);
}

/** How long a cached response is fresh: `proxy_cache_valid` reads whole seconds and refuses "ms". */
const cacheTtlSchema = z
  .string({ invalid_type_error: 'must be a string such as "30s" or "5m"' })
  .refine((text) => isDuration(text) && !text.endsWith('ms'), 'must be a duration from 1s to 24h: a number and a unit of s, m, h or d, such as "30s" or "5m" (nginx caches by the second)');

const int = (min: number, max: number) => {
  const rule = `must be an integer from ${min} to ${max}`;
  return z.number({ invalid_type_error: rule }).int(rule).min(min, rule).max(max, rule);
};
const bool = () => z.boolean({ invalid_type_error: 'must be true or false' });

/**
 * The variable the shared file's map sets when a request carries credentials (`Authorization`, or
 * any cookie); a cached route neither serves nor stores answers for such a request unless its cache
 * says `shareAuthenticated` (RFC 9111 §3.5: a shared cache must not reuse an answer to an
 * authenticated request for anyone else).
 */
export const CACHE_CREDENTIALS_VARIABLE = 'portico_cache_credentials';

export const APP_BALANCES = ['round_robin', 'random', 'least_conn', 'ip_hash', 'sticky'] as const;
export type AppBalance = (typeof APP_BALANCES)[number];

export const appUpstreamSchema = z.object({ address: addressSchema, weight: int(1, 1000).optional() }).strict();
export type AppUpstream = z.infer<typeof appUpstreamSchema>;

export const routeSchema = z
  .object({
    path: urlPathSchema.optional(),
    replacePath: urlPathSchema.optional(),
    upstreams: z
      .array(appUpstreamSchema, { invalid_type_error: 'must be an array of {"address": "host:port"}' })
      .min(1, 'must hold at least one upstream')
      .max(MAX_UPSTREAMS, `must hold at most ${MAX_UPSTREAMS} upstreams`),
    balance: z
      .enum(APP_BALANCES, { errorMap: () => ({ message: `must be one of ${APP_BALANCES.map((b) => `"${b}"`).join(', ')}` }) })
      .optional(),
    upstreamTls: bool().optional(),
    websocket: bool().optional(),
    cache: z.object({ ttl: cacheTtlSchema, shareAuthenticated: bool().optional() }).strict().optional(),
    maxBodySize: sizeSchema.optional(),
    headers: z
      .record(
        z
          .string()
          .refine((name) => HEADER_NAME.test(name) && name !== '__proto__', 'header names must be 1-64 token characters (RFC 9110), such as "X-Frame-Options"')
          .superRefine((name, ctx) => {
            const reason = reservedHeaderReason(name);
            if (reason !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `may not be added: ${reason}` });
          }),
        z.string({ invalid_type_error: 'must be a string' }).refine(isHeaderValue, 'header values must be up to 512 visible ASCII characters and inner spaces, single quotes included, but no double quote, "$", "\\", "{" or "}"'),
      )
      .refine((headers) => Object.keys(headers).length <= MAX_HEADERS, `must hold at most ${MAX_HEADERS} headers`)
      .optional(),
  })
  .strict()
  .superRefine((route, ctx) => {
    if (route.replacePath !== undefined && route.path === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['replacePath'], message: 'needs "path": it replaces that prefix' });
    }
  });
export type Route = z.infer<typeof routeSchema>;

export const appTlsSchema = z
  .object({
    certificate: certificateIdSchema.optional(),
    acme: bool().optional(),
    httpsRedirect: bool().optional(),
    http2: bool().optional(),
    http3: bool().optional(),
    altSvcMaxAge: int(0, 31_536_000).optional(),
    clientCa: certificateIdSchema.optional(),
  })
  .strict()
  .superRefine((tls, ctx) => {
    if (tls.altSvcMaxAge !== undefined && tls.http3 !== true) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['altSvcMaxAge'], message: 'needs "http3": true (it is the Alt-Svc header\'s max age)' });
    }
    if (tls.acme === true && tls.certificate !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['certificate'], message: 'goes without "acme": true (Portico then obtains and renews the app\'s certificate itself)' });
    }
    if (tls.acme !== true && tls.certificate === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['certificate'], message: 'is required (the id of a certificate), unless "acme": true' });
    }
  });

/** The suffix of the ids of the certificates apps' `tls.acme` make: no app name holds "_", and no caller may use it. */
export const APP_ACME_SUFFIX = '_acme';

/** The id of the managed certificate of app `name` (`tls.acme`): `<name>_acme`, a long name cut and told apart by a hash. */
export function appAcmeCertificateId(name: string): string {
  const base = name.length <= 58 ? name : `${name.slice(0, 49)}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
  return `${base}${APP_ACME_SUFFIX}`;
}

/** The certificate an app's TLS server serves: the one it names, or its managed one (`tls.acme`). */
export function appServedCertificate(app: Pick<App, 'name' | 'tls'>): string | undefined {
  if (app.tls === undefined) return undefined;
  return app.tls.certificate ?? (app.tls.acme === true ? appAcmeCertificateId(app.name) : undefined);
}

export const appSchema = z
  .object({
    name: appNameSchema,
    serverNames: z
      .array(serverNameSchema, { invalid_type_error: 'must be an array of host names' })
      .min(1, 'must hold at least one name')
      .max(MAX_SERVER_NAMES, `must hold at most ${MAX_SERVER_NAMES} names`),
    default: bool().optional(),
    routes: z
      .array(routeSchema, { invalid_type_error: 'must be an array of routes' })
      .min(1, 'must hold at least one route')
      .max(MAX_ROUTES, `must hold at most ${MAX_ROUTES} routes`),
    tls: appTlsSchema.optional(),
  })
  .strict()
  .superRefine((app, ctx) => {
    const names = new Set<string>();
    app.serverNames.forEach((name, i) => {
      if (names.has(name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['serverNames', i], message: `"${name}" is given twice` });
      names.add(name);
    });
    // A route without path is the one for "/"; "/api" and "/api/" are the same prefix.
    const paths = new Set<string>();
    app.routes.forEach((route, i) => {
      const key = (route.path ?? '/').replace(/(.)\/$/, '$1');
      if (paths.has(key)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['routes', i, 'path'], message: `"${key}" is routed twice (a route without path routes "/")` });
      }
      paths.add(key);
    });
  });
/** An app as stored: every field the caller gave, exactly as given. */
export type App = z.infer<typeof appSchema>;

/** The certificates an app refers to, with the field that names each. */
export function appCertificateRefs(app: App): Array<{ id: string; field: string; needsKey: boolean }> {
  const served = appServedCertificate(app);
  if (app.tls === undefined || served === undefined) return [];
  const refs = [{ id: served, field: app.tls.acme === true ? 'tls.acme' : 'tls.certificate', needsKey: true }];
  if (app.tls.clientCa !== undefined) refs.push({ id: app.tls.clientCa, field: 'tls.clientCa', needsKey: false });
  return refs;
}
