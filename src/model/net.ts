/**
 * Network atoms shared by every resource: ports, host names, addresses.
 *
 * Every string that can reach an nginx file is matched against one of the named allow-list patterns
 * below. Together they are the alphabet of our config files: none of them admits white space, `;`,
 * `{`, `}`, `#`, quotes, `$` or a path separator, so no value can end a directive or start another.
 */
import { isIPv6 } from 'node:net';
import { z } from 'zod';

/** One RFC 1123 label: letters, digits and inner hyphens, 1 to 63 characters. */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
/** A DNS host name: dot-separated RFC 1123 labels, at most 253 characters in all. */
export const HOSTNAME_PATTERN = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
/** A dotted-quad IPv4 address, each octet 0-255 without leading zeros. */
export const IPV4_PATTERN = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** The characters an IPv6 address may hold; the full grammar is checked by node:net. */
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
/** A bracketed IPv6 address followed by a port: `[::1]:5432`. */
export const ADDRESS_PATTERN_V6 = /^\[([0-9A-Fa-f:.]{2,45})\]:(\d{1,5})$/;
/** A host name or IPv4 address followed by a port: `db.internal:5432`. */
export const ADDRESS_PATTERN_NAME = /^([A-Za-z0-9.-]{1,253}):(\d{1,5})$/;

/**
 * An upstream group name or other nginx identifier Portico generates. The longest is an app's group:
 * a 63-character app name and "_r63_portico", 75 characters (79 in format 1, see model/app-file.ts).
 */
export const NAME_PATTERN = /^[A-Za-z0-9_]{1,96}$/;
/** An absolute path of the state or config directories; settings refuse any other. */
export const PATH_PATTERN = /^\/[A-Za-z0-9_.\/+@=,-]{0,4095}$/;
/** nginx's time syntax: a number with an optional unit, e.g. `30s`, `500ms`. */
export const TIME_PATTERN = /^\d{1,9}(?:ms|s|m|h|d)?$/;

export const MIN_PORT = 1;
export const MAX_PORT = 65535;

/** True when `text` is a decimal integer in 1..65535 written without sign, space or leading zero. */
export function isPortText(text: string): boolean {
  if (!/^[1-9]\d{0,4}$/.test(text)) return false;
  return Number(text) <= MAX_PORT;
}

export const portSchema = z
  .number({ invalid_type_error: 'must be an integer from 1 to 65535' })
  .int('must be an integer from 1 to 65535')
  .min(MIN_PORT, 'must be an integer from 1 to 65535')
  .max(MAX_PORT, 'must be an integer from 1 to 65535');
export type Port = z.infer<typeof portSchema>;

/** A port written in a URL path (`/createstream/9000/...`): digits only, then the number rules. */
export const portTextSchema = z
  .string()
  .refine(isPortText, 'must be an integer from 1 to 65535')
  .transform((text) => Number(text));

export function isHostname(text: string): boolean {
  return text.length <= 253 && HOSTNAME_PATTERN.test(text);
}

export function isIPv4(text: string): boolean {
  return IPV4_PATTERN.test(text);
}

export function isBracketableIPv6(text: string): boolean {
  return IPV6_CHARS.test(text) && isIPv6(text);
}

/** A parsed `host:port`: host is a DNS name, an IPv4 address or an IPv6 address (without brackets). */
export interface HostPort {
  host: string;
  port: number;
  family: 'name' | 'ipv4' | 'ipv6';
}

const ADDRESS_RULE =
  'must be host:port, host being a DNS name (RFC 1123 labels), an IPv4 address or a bracketed IPv6 address, and port 1-65535';

/** Splits and checks `host:port`; answers the reason it is refused, or the parts. */
export function parseAddress(text: string): HostPort | { error: string } {
  if (text.length > 253 + 8) return { error: `${ADDRESS_RULE} (it is ${text.length} characters long)` };
  const v6 = ADDRESS_PATTERN_V6.exec(text);
  if (v6) {
    const [, host = '', port = ''] = v6;
    if (!isBracketableIPv6(host)) return { error: `${ADDRESS_RULE} ("${host}" is not an IPv6 address)` };
    if (!isPortText(port)) return { error: `${ADDRESS_RULE} (port "${port}" is out of range)` };
    return { host, port: Number(port), family: 'ipv6' };
  }
  const named = ADDRESS_PATTERN_NAME.exec(text);
  if (!named) return { error: ADDRESS_RULE };
  const [, host = '', port = ''] = named;
  if (!isPortText(port)) return { error: `${ADDRESS_RULE} (port "${port}" is out of range)` };
  if (isIPv4(host)) return { host, port: Number(port), family: 'ipv4' };
  // nginx reads "unix:" (in any case) as a Unix-domain socket path, never as a host.
  if (host.toLowerCase() === 'unix') return { error: `${ADDRESS_RULE} ("unix:" would name a Unix socket)` };
  // A name of digits and dots only would be read by nginx as a malformed IPv4 address.
  if (/^[\d.]+$/.test(host)) return { error: `${ADDRESS_RULE} ("${host}" is not a valid IPv4 address)` };
  if (!isHostname(host)) return { error: `${ADDRESS_RULE} ("${host}" is not a valid host name)` };
  return { host, port: Number(port), family: 'name' };
}

/** True when `text` is an address as `parseAddress` accepts it. */
export function isAddress(text: string): boolean {
  return !('error' in parseAddress(text));
}

/** `host:port` as nginx reads it. */
export const addressSchema = z.string({ invalid_type_error: 'must be a string' }).superRefine((text, ctx) => {
  const parsed = parseAddress(text);
  if ('error' in parsed) ctx.addIssue({ code: z.ZodIssueCode.custom, message: parsed.error });
});
export type Address = z.infer<typeof addressSchema>;

/** An address to listen on: an IPv4 address or a bracketed IPv6 address, without a port. */
export function isListenHost(text: string): boolean {
  if (isIPv4(text)) return true;
  return text.startsWith('[') && text.endsWith(']') && isBracketableIPv6(text.slice(1, -1));
}

export const listenHostSchema = z
  .string({ invalid_type_error: 'must be a string' })
  .refine(isListenHost, 'must be an IPv4 address or a bracketed IPv6 address such as "[::1]", without a port');

/** nginx's time syntax as Portico accepts it: a number and one unit (no unit means seconds). */
const DURATION_PATTERN = /^([1-9]\d{0,7}|0)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
export const MAX_DURATION_MS = 86_400_000;

/** Milliseconds of a duration in nginx's syntax, or undefined when it is not one. */
export function durationMs(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * (UNIT_MS[match[2] ?? 's'] as number);
}

export function isDuration(text: string): boolean {
  const ms = durationMs(text);
  return ms !== undefined && ms >= 1 && ms <= MAX_DURATION_MS;
}

export const durationSchema = z
  .string({ invalid_type_error: 'must be a string such as "500ms", "10s" or "5m"' })
  .refine(isDuration, 'must be a duration from 1ms to 24h: a number and a unit of ms, s, m, h or d, such as "500ms" or "10s"');

/** The 32-bit value of a dotted-quad IPv4 address. */
export function ipv4Bits(text: string): bigint {
  return text.split('.').reduce((bits, octet) => (bits << 8n) | BigInt(Number(octet)), 0n);
}

/** The 128-bit value of an IPv6 address written without brackets (an embedded IPv4 address allowed). */
export function ipv6Bits(text: string): bigint {
  let head = text;
  let tail4: string[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    // An embedded IPv4 address fills the last two groups.
    const v4 = ipv4Bits(text.slice(lastColon + 1));
    head = text.slice(0, lastColon + 1) + '0:0';
    tail4 = [(v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16)];
  }
  const [left = '', right] = head.split('::');
  const leftGroups = left === '' ? [] : left.split(':');
  const rightGroups = right === undefined || right === '' ? [] : right.split(':');
  const groups =
    right === undefined ? leftGroups : [...leftGroups, ...Array(8 - leftGroups.length - rightGroups.length).fill('0'), ...rightGroups];
  if (tail4.length === 2) groups.splice(6, 2, ...tail4);
  return groups.reduce((bits, group) => (bits << 16n) | BigInt(parseInt(group, 16)), 0n);
}

const CIDR_RULE = 'must be "all", an IPv4 or IPv6 address, or a network such as "10.0.0.0/8" or "2001:db8::/32"';

/** Checks an access rule's subject (`allow`/`deny`); answers why it is refused, or undefined. */
export function cidrError(text: string): string | undefined {
  if (text === 'all') return undefined;
  if (text.length > 50) return CIDR_RULE;
  const [host = '', bits, extra] = text.split('/');
  if (extra !== undefined) return CIDR_RULE;
  const v4 = isIPv4(host);
  if (!v4 && !isBracketableIPv6(host)) return CIDR_RULE;
  if (bits === undefined) return undefined;
  const width = v4 ? 32 : 128;
  if (!/^(?:0|[1-9]\d{0,2})$/.test(bits) || Number(bits) > width) {
    return `${CIDR_RULE} (the prefix length must be 0-${width})`;
  }
  const value = v4 ? ipv4Bits(host) : ipv6Bits(host);
  const hostMask = (1n << BigInt(width - Number(bits))) - 1n;
  if ((value & hostMask) !== 0n) return `${CIDR_RULE} ("${text}" has bits set beyond its /${bits} prefix)`;
  return undefined;
}

export function isCidr(text: string): boolean {
  return cidrError(text) === undefined;
}

export const cidrSchema = z.string({ invalid_type_error: 'must be a string' }).superRefine((text, ctx) => {
  const error = cidrError(text);
  if (error !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: error });
});

/** A TLS server name to route by: a lower-case DNS name, or `*.` and one, matching every name under it (as nginx matches wildcard names). */
const LOWER_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
export const SERVER_NAME_PATTERN = new RegExp(`^(?:\\*\\.)?${LOWER_LABEL}(?:\\.${LOWER_LABEL})*$`);

/** Words a `map` reads as its own parameters, not as keys, when they stand first on a line. */
const MAP_KEYWORDS = new Set(['default', 'hostnames', 'include', 'volatile']);

/** A wildcard directly under a top-level domain, such as `*.com`. */
const TLD_WILDCARD = /^\*\.[a-z0-9-]+$/;

export function isServerName(text: string): boolean {
  return (
    text.length <= 253 &&
    SERVER_NAME_PATTERN.test(text) &&
    !/^(?:\*\.)?[\d.]+$/.test(text) &&
    !MAP_KEYWORDS.has(text) &&
    // "*.com" would claim every name under a top-level domain: a wildcard needs a label besides the TLD.
    !TLD_WILDCARD.test(text)
  );
}

export const serverNameSchema = z.string({ invalid_type_error: 'must be a string' }).superRefine((text, ctx) => {
  if (isServerName(text)) return;
  const message = TLD_WILDCARD.test(text)
    ? `"${text}" would match every name under a top-level domain: a wildcard needs at least one label besides the TLD, such as "*.example.com"`
    : 'must be a lower-case DNS name (RFC 1123 labels), optionally starting with "*." to match every name under it, such as "*.example.com", and not one of the map keywords "default", "hostnames", "include" and "volatile"';
  ctx.addIssue({ code: z.ZodIssueCode.custom, message });
});

/** A DNS name to send as SNI and verify an upstream's certificate against. */
export const hostnameSchema = z
  .string({ invalid_type_error: 'must be a string' })
  .refine((text) => isHostname(text) && !/^[\d.]+$/.test(text), 'must be a DNS name (RFC 1123 labels)');

export const LABEL_KEY_PATTERN = /^[a-z0-9_.-]{1,63}$/;
export const LABEL_VALUE_PATTERN = /^[A-Za-z0-9_.:/@-]{0,255}$/;
