/**
 * What names the API itself, as HTTP carries it: the grammar of a `Host` header and of an `Origin`,
 * and the API_ALLOWED_HOSTS and API_ALLOWED_ORIGINS lists. A browser under DNS rebinding sends the
 * attacker's name in `Host`, and a cross-site page its own origin in `Origin`; both are compared here
 * against the names the API answers to. Pure: the connection's own address is passed in.
 */
import { z } from 'zod';

/** A host as a request names it, canonical: lower case, IPv6 in brackets and compressed, no trailing dot. */
export interface HostName {
  name: string;
  /** The port written after the name; undefined when none was (the scheme's default). */
  port: number | undefined;
}

/** An API_ALLOWED_HOSTS entry: a name, valid with the API's port (or none), or `name:port`, valid with that port only. */
export type AllowedHost = HostName;

/**
 * `name[:port]` where name is a bracketed IPv6 address or dot-separated labels of letters, digits,
 * `-` and `_` (Docker's service names), with at most one trailing dot. Nothing else: no user info
 * (`127.0.0.1:5000@evil`), no white space, no percent-encoding, no second port.
 */
const HOST_PATTERN = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?)(?::(\d{1,5}))?$/;
/** The scheme and authority of a serialized origin (RFC 6454): no path, query, fragment or user info. */
const ORIGIN_PATTERN = /^(https?):\/\/([^/?#@\s]{1,300})$/i;

const DEFAULT_PORT: Record<string, number> = { http: 80, https: 443 };

/**
 * The canonical form of a name the pattern above admitted, as WHATWG URL parsing (the browser's own)
 * gives it: `127.1` and `0x7f.0.0.1` are 127.0.0.1, `[0:0::1]` is [::1]. The trailing dot of an
 * absolute DNS name is dropped: `localhost.` is localhost. Undefined when URL parsing refuses it
 * (`1.2.3.999`, `foo.123`).
 */
function canonicalName(raw: string): string | undefined {
  let hostname: string;
  try {
    hostname = new URL(`http://${raw}/`).hostname;
  } catch {
    return undefined;
  }
  if (hostname === '' || hostname.length > 253) return undefined;
  return hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
}

/** Parses a `Host` header value (or the authority of a URL); undefined when it is not `name[:port]`. */
export function parseHost(text: string): HostName | undefined {
  const match = HOST_PATTERN.exec(text);
  if (match === null) return undefined;
  const port = match[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  const name = canonicalName(match[1] as string);
  return name === undefined ? undefined : { name, port };
}

/** An address as node reports a socket's (`::ffff:127.0.0.1`, `::1`, `0.0.0.0`) in canonical Host form. */
export function addressName(address: string): string | undefined {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped !== null) return canonicalName(mapped[1] as string);
  return canonicalName(address.includes(':') ? `[${address}]` : address);
}

/** The names every API answers to, whatever BIND_ADDRESS is: this machine's loopback names. */
export const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'] as const;

/** Who the API is for one connection: its names (loopback, BIND_ADDRESS, the connection's own address) and port. */
export interface ApiIdentity {
  names: ReadonlySet<string>;
  /** The port the connection reached: BIND_PORT. */
  port: number;
  allowedHosts: readonly AllowedHost[];
}

/**
 * True when `host` names the API: one of its names with its port or none (a proxy in front forwards
 * `Host: name` without one), or an API_ALLOWED_HOSTS entry (with its own port when the entry has one).
 */
export function namesApi(host: HostName, api: ApiIdentity): boolean {
  const portFits = (expected: number | undefined): boolean =>
    expected === undefined ? host.port === undefined || host.port === api.port : host.port === expected;
  if (api.names.has(host.name) && portFits(undefined)) return true;
  return api.allowedHosts.some((entry) => entry.name === host.name && portFits(entry.port));
}

/** A parsed origin: its scheme, name, and port (the scheme's default when none is written). */
export interface ParsedOrigin {
  scheme: 'http' | 'https';
  host: HostName;
  port: number;
  /** The serialization browsers send: lower case, no default port. */
  text: string;
}

/** Parses an `Origin` header value; undefined for `null`, a list, a path, or anything not `scheme://host[:port]`. */
export function parseOrigin(text: string): ParsedOrigin | undefined {
  const match = ORIGIN_PATTERN.exec(text);
  if (match === null) return undefined;
  const scheme = (match[1] as string).toLowerCase() as 'http' | 'https';
  const host = parseHost(match[2] as string);
  if (host === undefined) return undefined;
  const port = host.port ?? (DEFAULT_PORT[scheme] as number);
  const shownPort = port === DEFAULT_PORT[scheme] ? '' : `:${port}`;
  return { scheme, host, port, text: `${scheme}://${host.name}${shownPort}` };
}

/**
 * True when `origin` is one of the API's own: plain http, a name of the API, and the very port the
 * request was sent to (`requestPort`: the Host header's, or 80 when it has none). A page on another
 * port of localhost is another origin, and another program's.
 */
export function isOwnOrigin(origin: ParsedOrigin, api: ApiIdentity, requestPort: number): boolean {
  if (origin.scheme !== 'http' || origin.port !== requestPort) return false;
  if (api.names.has(origin.host.name)) return true;
  return api.allowedHosts.some((entry) => entry.name === origin.host.name && (entry.port ?? requestPort) === origin.port);
}

/** Entries of a list setting: separated by commas and/or white space; empty entries are skipped. */
const listEntries = (text: string): string[] => text.split(/[\s,]+/).filter((entry) => entry !== '');

/** API_ALLOWED_HOSTS: `name[:port]` entries, host names or IP addresses (IPv6 in brackets). */
export const allowedHostsSchema = z.string().transform((text, ctx): AllowedHost[] => {
  const hosts: AllowedHost[] = [];
  for (const entry of listEntries(text)) {
    const host = parseHost(entry);
    if (host === undefined) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `"${entry.slice(0, 100)}" is not a host name or IP address with an optional :port (IPv6 in brackets; no scheme, path or wildcard)`,
      });
      return z.NEVER;
    }
    hosts.push(host);
  }
  return hosts;
});

/** API_ALLOWED_ORIGINS: `http://` or `https://` origins, as browsers serialize them (`null` and `*` are refused). */
export const allowedOriginsSchema = z.string().transform((text, ctx): string[] => {
  const origins: string[] = [];
  for (const entry of listEntries(text)) {
    const origin = parseOrigin(entry.replace(/\/$/, ''));
    if (origin === undefined) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `"${entry.slice(0, 100)}" is not an origin: scheme://host[:port] with scheme http or https (no path; "null" and "*" are never allowed)`,
      });
      return z.NEVER;
    }
    origins.push(origin.text);
  }
  return origins;
});
