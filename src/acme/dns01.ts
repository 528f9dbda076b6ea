/**
 * DNS-01 by RFC 2136 dynamic update, signed with TSIG (RFC 8945): the TXT record
 * `_acme-challenge.<name>.` is added on the zone's authoritative server, awaited until that server
 * answers it, and deleted once the CA has decided. Works with any server that takes signed updates
 * (BIND, Knot, PowerDNS, most DNS hosts).
 *
 * Messages are encoded and decoded with dns-packet; it has no TSIG and no class NONE (RFC 2136 2.5.4's
 * "delete one RR"), so both are done here on the wire bytes. The TSIG secret lives in a `TsigSecret`
 * that prints as `[redacted]` everywhere (toString, JSON, util.inspect) and is never put in a message.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import * as dnsPacket from 'dns-packet';
import { z } from 'zod';
import type { Challenge, ChallengeSolver } from './challenge.js';

// ---------------------------------------------------------------------------------------------
// Names

/** Longest name in text form without the trailing dot (255 octets on the wire, RFC 1035 3.1). */
const MAX_NAME = 253;
/**
 * A label: letters, digits, underscores and inner hyphens. Underscores because a challenge's record is
 * the service label `_acme-challenge` and TSIG key names often hold one (`acme_update`); nothing else
 * of DNS's 8-bit alphabet is taken, so no name needs escaping anywhere.
 */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;

/**
 * Why `name` is not a DNS name Portico puts on the wire (letters, digits, underscores, hyphens not at
 * either end of a label, dots; labels of 1-63 characters, 253 in all), or undefined when it is. A
 * trailing dot is allowed.
 */
export function dnsNameProblem(name: string): string | undefined {
  const text = name.endsWith('.') ? name.slice(0, -1) : name;
  if (text === '') return 'is empty';
  if (text.length > MAX_NAME) return `is ${text.length} characters long (at most ${MAX_NAME})`;
  for (const label of text.split('.')) {
    if (label === '') return 'has an empty label (two dots in a row, or a leading dot)';
    if (label.length > 63) return `has a label of ${label.length} characters (at most 63)`;
    if (!LABEL.test(label)) return `has a label ${JSON.stringify(label.slice(0, 63))} that is not letters, digits, underscores and inner hyphens`;
  }
  return undefined;
}

/** `name` as an absolute, lowercase name with its trailing dot; throws on a name that is no DNS name. */
export function fqdn(name: string, what = 'name'): string {
  const problem = dnsNameProblem(name);
  if (problem !== undefined) throw new Rfc2136Error(`${what} ${JSON.stringify(name.slice(0, 300))} ${problem}`);
  return `${(name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase()}.`;
}

/** The name without its trailing dot, as dns-packet takes and gives names. */
const bare = (name: string): string => (name.endsWith('.') ? name.slice(0, -1) : name);

/** Whether `name` is `zone` or under it (both absolute, lowercase). */
export function inZone(name: string, zone: string): boolean {
  return zone === '.' || name === zone || name.endsWith(`.${zone}`);
}

/** The record DNS-01 asks for: `_acme-challenge.<identifier>.` (a wildcard order's identifier has no `*.`). */
export function challengeRecordName(identifier: string): string {
  return fqdn(`_acme-challenge.${identifier}`, 'identifier');
}

// ---------------------------------------------------------------------------------------------
// Settings

export const TSIG_ALGORITHMS = ['hmac-sha256', 'hmac-sha384', 'hmac-sha512', 'hmac-sha224', 'hmac-sha1'] as const;
export type TsigAlgorithm = (typeof TSIG_ALGORITHMS)[number];

const HASHES: Record<TsigAlgorithm, { hash: string; size: number }> = {
  'hmac-sha256': { hash: 'sha256', size: 32 },
  'hmac-sha384': { hash: 'sha384', size: 48 },
  'hmac-sha512': { hash: 'sha512', size: 64 },
  'hmac-sha224': { hash: 'sha224', size: 28 },
  'hmac-sha1': { hash: 'sha1', size: 20 },
};

/** A TSIG key's secret: its bytes are reachable only through `bytes()`; it prints as `[redacted]`. */
export class TsigSecret {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes);
  }
  static fromBase64(text: string): TsigSecret {
    return new TsigSecret(Buffer.from(text, 'base64'));
  }
  /** A copy of the key's bytes. */
  bytes(): Buffer {
    return Buffer.from(this.#bytes);
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return 'TsigSecret [redacted]';
  }
}

export interface TsigKey {
  /** The key's name, absolute and lowercase (`portico-acme.`). */
  name: string;
  algorithm: TsigAlgorithm;
  secret: TsigSecret;
}

export interface DnsServer {
  /** An IP address or a host name (looked up through the system resolver at each use). */
  host: string;
  port: number;
}

export interface AcmeDnsSettings {
  server: DnsServer;
  tsig: TsigKey;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Shortest secret taken: RFC 8945 6 asks for keys no shorter than half the hash; tsig-keygen makes the whole hash. */
const MIN_SECRET_BYTES = 16;

/** `host`, `host:port`, `1.2.3.4:53`, `::1`, `[::1]:53` → a server, or the rule it breaks. */
export function parseDnsServer(text: string): DnsServer | { problem: string } {
  let host: string;
  let port = '53';
  const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(text);
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    port = bracketed[2] ?? port;
    if (isIP(host) !== 6) return { problem: 'must hold an IPv6 address between the brackets, e.g. [2001:db8::53]:53' };
  } else if (text.split(':').length > 2) {
    host = text;
    if (isIP(host) !== 6) return { problem: 'must be HOST or HOST:PORT (an IPv6 address with a port goes in brackets: [2001:db8::53]:53)' };
  } else {
    const [h = '', p] = text.split(':');
    host = h;
    if (p !== undefined) port = p;
    if (isIP(host) === 0 && dnsNameProblem(host) !== undefined) return { problem: `must be HOST or HOST:PORT, HOST an IP address or a host name (the host ${dnsNameProblem(host)})` };
  }
  if (!/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65535) return { problem: 'must have a port from 1 to 65535 (53 when none is given)' };
  return { host, port: Number(port) };
}

/** The DNS-01 variables' zod shape (each an optional string; the rules are checkAcmeDnsEnv's). */
export const acmeDnsEnvShape = {
  ACME_DNS_SERVER: z.string().optional(),
  ACME_DNS_TSIG_NAME: z.string().optional(),
  ACME_DNS_TSIG_ALGORITHM: z.string().optional(),
  ACME_DNS_TSIG_SECRET: z.string().optional(),
};

/** The four variables as the environment has them. */
export type AcmeDnsEnv = { [K in keyof typeof acmeDnsEnvShape]?: string | undefined };

/**
 * The rules across the four variables, as a superRefine: settings.ts may spread `acmeDnsEnvShape` into
 * its own object schema, call this from its superRefine and `toAcmeDnsSettings` once parsed.
 */
export function checkAcmeDnsEnv(e: AcmeDnsEnv, ctx: z.RefinementCtx): void {
  const issue = (variable: string, message: string): void => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [variable], message });
  const given = (v: string | undefined): v is string => v !== undefined && v !== '';
  const server = e.ACME_DNS_SERVER;
  if (!given(server)) {
    for (const variable of ['ACME_DNS_TSIG_NAME', 'ACME_DNS_TSIG_ALGORITHM', 'ACME_DNS_TSIG_SECRET'] as const) {
      if (given(e[variable])) issue(variable, 'is for DNS-01, which needs ACME_DNS_SERVER (the authoritative server taking RFC 2136 updates) too');
    }
    return;
  }
  const parsed = parseDnsServer(server);
  if ('problem' in parsed) issue('ACME_DNS_SERVER', parsed.problem);
  if (!given(e.ACME_DNS_TSIG_NAME)) issue('ACME_DNS_TSIG_NAME', 'is required with ACME_DNS_SERVER (the name of the TSIG key the server accepts updates from)');
  else {
    const problem = dnsNameProblem(e.ACME_DNS_TSIG_NAME);
    if (problem !== undefined) issue('ACME_DNS_TSIG_NAME', `must be a key name of letters, digits, underscores, hyphens and dots: it ${problem}`);
  }
  if (given(e.ACME_DNS_TSIG_ALGORITHM) && !(TSIG_ALGORITHMS as readonly string[]).includes(e.ACME_DNS_TSIG_ALGORITHM.toLowerCase())) {
    issue('ACME_DNS_TSIG_ALGORITHM', `must be one of ${TSIG_ALGORITHMS.join(', ')} (default hmac-sha256)`);
  }
  const secret = e.ACME_DNS_TSIG_SECRET;
  if (!given(secret)) issue('ACME_DNS_TSIG_SECRET', 'is required with ACME_DNS_SERVER (the TSIG key\'s secret, in base64, as tsig-keygen prints it)');
  else if (!BASE64.test(secret.trim())) issue('ACME_DNS_TSIG_SECRET', 'must be base64 (as tsig-keygen prints it)');
  else if (Buffer.from(secret.trim(), 'base64').length < MIN_SECRET_BYTES) issue('ACME_DNS_TSIG_SECRET', `must hold at least ${MIN_SECRET_BYTES} bytes (tsig-keygen makes 32 for hmac-sha256)`);
}

/** The settings from variables checkAcmeDnsEnv passed: undefined when DNS-01 is not configured. */
export function toAcmeDnsSettings(e: AcmeDnsEnv): AcmeDnsSettings | undefined {
  if (e.ACME_DNS_SERVER === undefined || e.ACME_DNS_SERVER === '') return undefined;
  const server = parseDnsServer(e.ACME_DNS_SERVER) as DnsServer;
  return {
    server,
    tsig: {
      name: fqdn(e.ACME_DNS_TSIG_NAME as string),
      algorithm: ((e.ACME_DNS_TSIG_ALGORITHM ?? '') === '' ? 'hmac-sha256' : (e.ACME_DNS_TSIG_ALGORITHM as string).toLowerCase()) as TsigAlgorithm,
      secret: TsigSecret.fromBase64((e.ACME_DNS_TSIG_SECRET as string).trim()),
    },
  };
}

/**
 * The DNS-01 settings, from the environment's variables of those names. All absent: no DNS-01
 * (undefined). `ACME_DNS_SERVER` given: the key's name and secret are required too. Every message names
 * its variable and the rule, and none quotes the secret.
 */
export const acmeDnsSettingsSchema = z.object(acmeDnsEnvShape).superRefine(checkAcmeDnsEnv).transform(toAcmeDnsSettings);

/** Parses the DNS-01 variables of `env`; throws one error naming each bad variable and its rule. */
export function loadAcmeDnsSettings(env: NodeJS.ProcessEnv = process.env): AcmeDnsSettings | undefined {
  const parsed = acmeDnsSettingsSchema.safeParse(env);
  if (!parsed.success) throw new Error(`invalid settings: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** What went wrong talking to the DNS server: its rcode (and TSIG error) when it answered one. */
export class Rfc2136Error extends Error {
  readonly rcode: string | undefined;
  readonly tsigError: string | undefined;
  readonly server: string | undefined;
  constructor(message: string, details: { rcode?: string; tsigError?: string; server?: string; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'Rfc2136Error';
    this.rcode = details.rcode;
    this.tsigError = details.tsigError;
    this.server = details.server;
  }
}

const RCODES: Record<number, string> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 6: 'YXDOMAIN',
  7: 'YXRRSET', 8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE',
};
/** TSIG's own error field (RFC 8945 3, IANA's RCODE registry). */
const TSIG_ERRORS: Record<number, string> = { 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' };
const rcodeName = (code: number): string => RCODES[code] ?? TSIG_ERRORS[code] ?? `RCODE ${code}`;
/** The rcode of a message, by name. */
export const rcodeOf = (message: Buffer): string => rcodeName(message.readUInt16BE(2) & 0xf);

const RCODE_MEANING: Record<string, string> = {
  NOTAUTH: 'the server is not authoritative for the zone, or refused the key',
  REFUSED: 'the server refuses updates from this key for this name (check its allow-update or update-policy)',
  NOTZONE: 'the name is outside the zone',
  SERVFAIL: 'the server failed',
  FORMERR: 'the server could not read the message',
  NOTIMP: 'the server does not take dynamic updates',
  BADSIG: 'the server found the signature wrong: ACME_DNS_TSIG_SECRET or ACME_DNS_TSIG_ALGORITHM differs from the server\'s key',
  BADKEY: 'the server does not know the key: ACME_DNS_TSIG_NAME or ACME_DNS_TSIG_ALGORITHM differs from the server\'s key',
  BADTIME: 'the clocks of this machine and the server differ by more than the fudge',
  BADTRUNC: 'the server refused a truncated MAC',
};

// ---------------------------------------------------------------------------------------------
// Wire: walking a message, TSIG

const TYPE_TSIG = 250;
const CLASS_IN = 1;
const CLASS_NONE = 254;
const CLASS_ANY = 255;
const OPCODE_UPDATE = 5;
/** Seconds of clock difference a signature tolerates either way (RFC 8945 10 recommends 300). */
export const TSIG_FUDGE = 300;

/** The name in canonical wire form (lowercase, uncompressed). */
export function wireName(name: string): Buffer {
  const labels = bare(name.toLowerCase()).split('.').filter((l) => l !== '');
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
}

/** The offset just past the (possibly compressed) name at `offset`. */
function skipName(buf: Buffer, offset: number): number {
  for (let o = offset, steps = 0; steps < 128; steps += 1) {
    const len = buf.readUInt8(o);
    if (len === 0) return o + 1;
    if ((len & 0xc0) === 0xc0) return o + 2;
    if ((len & 0xc0) !== 0) throw new Rfc2136Error(`malformed name at byte ${o}`);
    o += 1 + len;
    if (o > buf.length) throw new Rfc2136Error('name runs past the end of the message');
  }
  throw new Rfc2136Error('name of more than 127 labels');
}

/** Reads the (possibly compressed) name at `offset` as lowercase text with a trailing dot. */
function readName(buf: Buffer, offset: number): string {
  const labels: string[] = [];
  for (let o = offset, jumps = 0; ; ) {
    const len = buf.readUInt8(o);
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      if ((jumps += 1) > 64) throw new Rfc2136Error('compression loop in a name');
      o = buf.readUInt16BE(o) & 0x3fff;
      continue;
    }
    labels.push(buf.subarray(o + 1, o + 1 + len).toString('latin1').toLowerCase());
    o += 1 + len;
    if (labels.length > 127) throw new Rfc2136Error('name of more than 127 labels');
  }
  return `${labels.join('.')}.`;
}

export interface RecordSpan {
  /** Where the record starts (its owner name). */
  start: number;
  /** Where TYPE is (CLASS at +2, TTL at +4, RDLENGTH at +8, RDATA at +10). */
  fixed: number;
  /** Just past its RDATA. */
  end: number;
}

/** Where each record of each section of `buf` lies (questions have no TTL or RDATA: `end` is past CLASS). */
export function messageLayout(buf: Buffer): { questions: RecordSpan[]; answers: RecordSpan[]; authorities: RecordSpan[]; additionals: RecordSpan[] } {
  if (buf.length < 12) throw new Rfc2136Error(`message of ${buf.length} bytes, shorter than a header`);
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
  let offset = 12;
  const sections: RecordSpan[][] = [];
  for (let s = 0; s < 4; s += 1) {
    const spans: RecordSpan[] = [];
    for (let i = 0; i < counts[s]!; i += 1) {
      const start = offset;
      const fixed = skipName(buf, offset);
      if (s === 0) offset = fixed + 4;
      else {
        if (fixed + 10 > buf.length) throw new Rfc2136Error('record runs past the end of the message');
        offset = fixed + 10 + buf.readUInt16BE(fixed + 8);
      }
      if (offset > buf.length) throw new Rfc2136Error('record runs past the end of the message');
      spans.push({ start, fixed, end: offset });
    }
    sections.push(spans);
  }
  return { questions: sections[0]!, answers: sections[1]!, authorities: sections[2]!, additionals: sections[3]! };
}

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u48 = (n: number): Buffer => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};

/** RFC 8945 4.3.3's TSIG variables: what the MAC covers of the TSIG record besides the message. */
function tsigVariables(keyName: string, algorithm: string, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  return Buffer.concat([
    wireName(keyName), u16(CLASS_ANY), Buffer.alloc(4) /* TTL 0 */, wireName(algorithm),
    u48(timeSigned), u16(fudge), u16(error), u16(other.length), other,
  ]);
}

function hmac(key: TsigKey, parts: Buffer[]): Buffer {
  const mac = createHmac(HASHES[key.algorithm].hash, key.secret.bytes());
  for (const part of parts) mac.update(part);
  return mac.digest();
}

export interface Signed {
  /** The message with its TSIG record appended (ARCOUNT one higher). */
  wire: Buffer;
  /** The MAC, which the answer's MAC covers (RFC 8945 4.3.1). */
  mac: Buffer;
}

/**
 * Signs `message` (a whole DNS message without a TSIG record) with `key` (RFC 8945 4.3): the MAC covers
 * the message as it is, then the TSIG variables; the record (key name, TSIG, ANY, TTL 0, algorithm,
 * time, fudge, MAC, original ID, error 0, no other data) goes last in the additional section.
 */
export function signMessage(message: Buffer, key: TsigKey, timeSigned = Math.floor(Date.now() / 1000), fudge = TSIG_FUDGE): Signed {
  const mac = hmac(key, [message, tsigVariables(key.name, key.algorithm, timeSigned, fudge, 0, Buffer.alloc(0))]);
  const rdata = Buffer.concat([wireName(key.algorithm), u48(timeSigned), u16(fudge), u16(mac.length), mac, message.subarray(0, 2), u16(0), u16(0)]);
  const record = Buffer.concat([wireName(key.name), u16(TYPE_TSIG), u16(CLASS_ANY), Buffer.alloc(4), u16(rdata.length), rdata]);
  const wire = Buffer.concat([message, record]);
  wire.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { wire, mac };
}

export interface TsigRecord {
  keyName: string;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
  /** The message as it was before the record was added: ARCOUNT one lower, ID the original one. */
  unsigned: Buffer;
}

/** The TSIG record that ends `buf`'s additional section, or undefined when there is none. */
export function readTsig(buf: Buffer): TsigRecord | undefined {
  const last = messageLayout(buf).additionals.at(-1);
  if (last === undefined || buf.readUInt16BE(last.fixed) !== TYPE_TSIG) return undefined;
  let o = last.fixed + 10;
  const algorithm = readName(buf, o);
  o = skipName(buf, o);
  const timeSigned = buf.readUIntBE(o, 6);
  const fudge = buf.readUInt16BE(o + 6);
  const macSize = buf.readUInt16BE(o + 8);
  const mac = buf.subarray(o + 10, o + 10 + macSize);
  o += 10 + macSize;
  const originalId = buf.readUInt16BE(o);
  const error = buf.readUInt16BE(o + 2);
  const otherLen = buf.readUInt16BE(o + 4);
  const other = buf.subarray(o + 6, o + 6 + otherLen);
  if (o + 6 + otherLen !== last.end) throw new Rfc2136Error('TSIG record of the wrong length');
  const unsigned = Buffer.from(buf.subarray(0, last.start));
  unsigned.writeUInt16BE(originalId, 0);
  unsigned.writeUInt16BE(buf.readUInt16BE(10) - 1, 10);
  return { keyName: readName(buf, last.start), algorithm, timeSigned, fudge, mac: Buffer.from(mac), originalId, error, other: Buffer.from(other), unsigned };
}

/**
 * Checks the TSIG of an answer to a request whose MAC was `requestMac` (RFC 8945 5.3): the record is
 * there, names our key and algorithm, carries no TSIG error, its full-length MAC covers (request MAC,
 * message, variables), and its time lies within the fudge of `now`. Throws an Rfc2136Error naming
 * what failed; answers the message without the record.
 */
export function verifyAnswer(answer: Buffer, key: TsigKey, requestMac: Buffer, now = Math.floor(Date.now() / 1000)): Buffer {
  const rcode = rcodeOf(answer);
  const tsig = readTsig(answer);
  if (tsig === undefined) throw new Rfc2136Error(`the answer (${rcode}) is not signed`, { rcode });
  if (tsig.error !== 0) {
    const tsigError = rcodeName(tsig.error);
    const serverTime = tsig.error === 18 && tsig.other.length === 6 ? ` (the server's time is ${new Date(tsig.other.readUIntBE(0, 6) * 1000).toISOString()})` : '';
    throw new Rfc2136Error(`${rcode}/${tsigError}: ${RCODE_MEANING[tsigError] ?? 'a TSIG error'}${serverTime}`, { rcode, tsigError });
  }
  if (tsig.keyName !== fqdn(key.name) || tsig.algorithm !== `${key.algorithm}.`) {
    throw new Rfc2136Error(`the answer (${rcode}) is signed with key ${tsig.keyName} (${tsig.algorithm}), not ${fqdn(key.name)} (${key.algorithm})`, { rcode });
  }
  const expected = hmac(key, [u16(requestMac.length), requestMac, tsig.unsigned, tsigVariables(tsig.keyName, tsig.algorithm, tsig.timeSigned, tsig.fudge, tsig.error, tsig.other)]);
  if (tsig.mac.length !== expected.length || !timingSafeEqual(tsig.mac, expected)) {
    throw new Rfc2136Error(`the answer (${rcode}) has a wrong TSIG MAC: it was not signed with this key, or was altered`, { rcode, tsigError: 'BADSIG' });
  }
  if (Math.abs(now - tsig.timeSigned) > tsig.fudge) {
    throw new Rfc2136Error(`the answer (${rcode}) was signed at ${new Date(tsig.timeSigned * 1000).toISOString()}, more than ${tsig.fudge} s from this machine's clock`, { rcode, tsigError: 'BADTIME' });
  }
  return tsig.unsigned;
}

// ---------------------------------------------------------------------------------------------
// Messages

export type UpdateClass = 'IN' | 'NONE' | 'ANY';

export interface TxtUpdate {
  /** Absolute name. */
  name: string;
  /** IN adds the RR; NONE deletes just this RR; ANY with no value deletes the whole TXT RRset (RFC 2136 2.5). */
  class: UpdateClass;
  ttl: number;
  /** The TXT's one string (none for a class ANY delete). */
  value?: string;
}

const UPDATE_CLASS: Record<UpdateClass, number> = { IN: CLASS_IN, NONE: CLASS_NONE, ANY: CLASS_ANY };

/**
 * An RFC 2136 UPDATE for `zone` (zone section: zone SOA IN; no prerequisites) carrying `updates`,
 * encoded with dns-packet, then each update record's CLASS set (dns-packet knows no class NONE).
 */
export function encodeUpdate(id: number, zone: string, updates: TxtUpdate[]): Buffer {
  const wire = dnsPacket.encode({
    type: 'query',
    id,
    flags: OPCODE_UPDATE << 11,
    questions: [{ type: 'SOA', class: 'IN', name: bare(zone) }],
    authorities: updates.map((u) => ({ type: 'TXT' as const, class: 'IN' as const, name: bare(u.name), ttl: u.ttl, data: u.value === undefined ? [] : [Buffer.from(u.value, 'ascii')] })),
  });
  messageLayout(wire).authorities.forEach((span, i) => wire.writeUInt16BE(UPDATE_CLASS[updates[i]!.class], span.fixed + 2));
  return wire;
}

/** A query (no recursion asked) for `name`'s `type`. */
export function encodeQuery(id: number, name: string, type: 'SOA' | 'TXT'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type, class: 'IN', name: bare(name) }] });
}

/** A TXT value Portico writes: 1-255 printable ASCII characters (one TXT string; an ACME proof is 43). */
export function txtValueProblem(value: string): string | undefined {
  if (value.length === 0 || value.length > 255) return `is ${value.length} characters long (1 to 255)`;
  if (!/^[\x20-\x7e]+$/.test(value)) return 'has characters other than printable ASCII';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Transport

export interface Rfc2136Options {
  /** How long one attempt waits for an answer. */
  timeoutMs?: number;
  /** Attempts over UDP before giving up (each waits timeoutMs). */
  attempts?: number;
  /** waitForTxt's pause between two queries. */
  pollMs?: number;
}

const DEFAULTS = { timeoutMs: 2000, attempts: 3, pollMs: 500 } as const;

/** A message ID no off-path sender guesses easily (the unsigned queries' only defence against a forged answer). */
const randomId = (): number => randomInt(0x10000);

function udpExchange(address: string, port: number, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
    const id = query.readUInt16BE(0);
    let settled = false;
    const done = (error: Error | undefined, answer?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      if (error !== undefined) reject(error);
      else resolve(answer);
    };
    const timer = setTimeout(() => done(undefined, undefined), timeoutMs);
    socket.on('error', (error) => done(error));
    socket.on('message', (message, from) => {
      // Only an answer from the server, to this ID: anything else is ignored.
      if (from.address !== address || from.port !== port || message.length < 12 || message.readUInt16BE(0) !== id || (message.readUInt8(2) & 0x80) === 0) return;
      done(undefined, message);
    });
    socket.connect(port, address, () => socket.send(query));
  });
}

function tcpExchange(address: string, port: number, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port });
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (error: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error !== undefined) reject(error);
      else resolve(answer as Buffer);
    };
    const timer = setTimeout(() => finish(new Error(`no answer over TCP within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.write(Buffer.concat([u16(query.length), query])));
    socket.on('data', (data) => {
      chunks.push(data);
      received += data.length;
      const all = Buffer.concat(chunks);
      if (received < 2 || received < 2 + all.readUInt16BE(0)) return;
      const answer = all.subarray(2, 2 + all.readUInt16BE(0));
      if (answer.length < 12 || answer.readUInt16BE(0) !== query.readUInt16BE(0)) finish(new Error('the TCP answer is not one to this query (another ID)'));
      else finish(undefined, answer);
    });
    socket.on('error', (error) => finish(error));
    socket.on('end', () => finish(new Error('the server closed the TCP connection before answering')));
  });
}

// ---------------------------------------------------------------------------------------------
// The client

/** An RFC 2136 client of one server, signing every update with one TSIG key. */
export class Rfc2136Client {
  readonly server: DnsServer;
  readonly #key: TsigKey;
  readonly #options: Required<Rfc2136Options>;

  constructor(settings: AcmeDnsSettings, options: Rfc2136Options = {}) {
    this.server = settings.server;
    this.#key = settings.tsig;
    this.#options = {
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      attempts: Math.max(1, options.attempts ?? DEFAULTS.attempts),
      pollMs: options.pollMs ?? DEFAULTS.pollMs,
    };
  }

  /** `host:port` as errors name the server. */
  get serverText(): string {
    return isIP(this.server.host) === 6 ? `[${this.server.host}]:${this.server.port}` : `${this.server.host}:${this.server.port}`;
  }

  toString(): string {
    return `Rfc2136Client(${this.serverText}, key ${this.#key.name} ${this.#key.algorithm})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  async #address(): Promise<string> {
    if (isIP(this.server.host) !== 0) return this.server.host;
    try {
      return (await lookup(this.server.host)).address;
    } catch (error) {
      throw new Rfc2136Error(`cannot resolve the DNS server ${this.serverText}: ${(error as Error).message}`, { server: this.serverText, cause: error });
    }
  }

  /**
   * Sends `query` (over UDP, each attempt waiting timeoutMs; over TCP when the answer is truncated) and
   * answers the server's reply. `what` names the exchange in errors.
   */
  async exchange(query: Buffer, what: string): Promise<Buffer> {
    const address = await this.#address();
    const { timeoutMs, attempts } = this.#options;
    let answer: Buffer | undefined;
    try {
      for (let attempt = 0; attempt < attempts && answer === undefined; attempt += 1) {
        answer = await udpExchange(address, this.server.port, query, timeoutMs);
      }
      if (answer !== undefined && (answer.readUInt8(2) & 0x02) !== 0) answer = await tcpExchange(address, this.server.port, query, timeoutMs);
    } catch (error) {
      throw new Rfc2136Error(`${what}: DNS server ${this.serverText}: ${(error as Error).message}`, { server: this.serverText, cause: error });
    }
    if (answer === undefined) throw new Rfc2136Error(`${what}: DNS server ${this.serverText} did not answer (${attempts} attempts of ${timeoutMs} ms over UDP)`, { server: this.serverText });
    return answer;
  }

  /**
   * The zone `name` lies in: asks the server for the SOA of `name`, then of each parent, and answers the
   * first it answers authoritatively (AA set, a SOA owned by that very name).
   */
  async findZone(name: string): Promise<string> {
    const absolute = fqdn(name);
    const labels = bare(absolute).split('.');
    const seen: string[] = [];
    for (let i = 0; i < labels.length; i += 1) {
      const candidate = `${labels.slice(i).join('.')}.`;
      const answer = await this.exchange(encodeQuery(randomId(), candidate, 'SOA'), `finding the zone of ${absolute}`);
      const decoded = dnsPacket.decode(answer);
      const soa = (decoded.answers ?? []).find((a) => a.type === 'SOA' && fqdn(a.name) === candidate);
      if (decoded.flag_aa && rcodeOf(answer) === 'NOERROR' && soa !== undefined) return candidate;
      seen.push(`${candidate} ${rcodeOf(answer)}${decoded.flag_aa ? '' : ' (not authoritative)'}`);
    }
    throw new Rfc2136Error(`DNS server ${this.serverText} is authoritative for no zone enclosing ${absolute} (SOA queries answered: ${seen.join(', ')})`, { server: this.serverText });
  }

  /** Sends one signed update to `zone` and checks the signed answer is NOERROR. */
  async update(zone: string, updates: TxtUpdate[], what: string): Promise<void> {
    const signed = signMessage(encodeUpdate(randomId(), zone, updates), this.#key);
    const answer = await this.exchange(signed.wire, what);
    const rcode = rcodeOf(answer);
    try {
      verifyAnswer(answer, this.#key, signed.mac);
    } catch (error) {
      const e = error as Rfc2136Error;
      throw new Rfc2136Error(`${what}: DNS server ${this.serverText} answered ${e.message}`, { rcode: e.rcode ?? rcode, tsigError: e.tsigError, server: this.serverText, cause: error });
    }
    if (rcode !== 'NOERROR') {
      throw new Rfc2136Error(`${what}: DNS server ${this.serverText} answered ${rcode}${RCODE_MEANING[rcode] === undefined ? '' : `: ${RCODE_MEANING[rcode]}`}`, { rcode, server: this.serverText });
    }
  }

  /** Adds the TXT record `name` → `value` (other values of the name stay). */
  async addTxt(name: string, value: string, ttl = 60): Promise<void> {
    const absolute = fqdn(name);
    checkTxtValue(value);
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2_147_483_647) throw new Rfc2136Error(`ttl ${ttl} must be a whole number of seconds from 0 to 2147483647`);
    const zone = await this.findZone(absolute);
    await this.update(zone, [{ name: absolute, class: 'IN', ttl, value }], `adding TXT ${absolute} in zone ${zone}`);
  }

  /** Deletes the TXT record `name` → `value` alone; a record already gone is no error. */
  async removeTxt(name: string, value: string): Promise<void> {
    const absolute = fqdn(name);
    checkTxtValue(value);
    const zone = await this.findZone(absolute);
    await this.update(zone, [{ name: absolute, class: 'NONE', ttl: 0, value }], `removing TXT ${absolute} in zone ${zone}`);
  }

  /** The TXT values the server answers for `name` (each record's strings joined), asked directly. */
  async queryTxt(name: string): Promise<string[]> {
    const absolute = fqdn(name);
    const answer = await this.exchange(encodeQuery(randomId(), absolute, 'TXT'), `asking TXT ${absolute}`);
    const rcode = rcodeOf(answer);
    if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') throw new Rfc2136Error(`asking TXT ${absolute}: DNS server ${this.serverText} answered ${rcode}`, { rcode, server: this.serverText });
    const values: string[] = [];
    for (const a of dnsPacket.decode(answer).answers ?? []) {
      if (a.type !== 'TXT' || fqdn(a.name) !== absolute) continue;
      const parts = Array.isArray(a.data) ? a.data : [a.data];
      values.push(parts.map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : p)).join(''));
    }
    return values;
  }

  /** Resolves once the server answers `value` among `name`'s TXT records; polls every pollMs for timeoutMs at most. */
  async waitForTxt(name: string, value: string, timeoutMs: number): Promise<void> {
    const absolute = fqdn(name);
    const deadline = Date.now() + timeoutMs;
    let last: string[] | string = [];
    for (;;) {
      try {
        last = await this.queryTxt(absolute);
        if (last.includes(value)) return;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() + this.#options.pollMs > deadline) break;
      await sleep(this.#options.pollMs);
    }
    const seen = typeof last === 'string' ? `last query: ${last}` : `it answers ${last.length === 0 ? 'no TXT record' : JSON.stringify(last)}`;
    throw new Rfc2136Error(`DNS server ${this.serverText} did not answer TXT ${absolute} = ${JSON.stringify(value)} within ${timeoutMs} ms (${seen})`, { server: this.serverText });
  }
}

function checkTxtValue(value: string): void {
  const problem = txtValueProblem(value);
  if (problem !== undefined) throw new Rfc2136Error(`TXT value ${problem}`);
}

// ---------------------------------------------------------------------------------------------
// The solver

export interface Rfc2136SolverOptions {
  /** The TXT record's TTL, in seconds. */
  ttl?: number;
  /** How long present() waits for the server to answer the record. */
  propagationTimeoutMs?: number;
}

/**
 * DNS-01 through RFC 2136: present adds `_acme-challenge.<identifier>.` TXT <proof> and waits until the
 * server answers it; remove deletes that one record. A wildcard and the bare name of one order share
 * the record name: each adds and removes its own value, so both coexist.
 */
export class Rfc2136Solver implements ChallengeSolver {
  readonly type = 'dns-01' as const;
  readonly #client: Rfc2136Client;
  readonly #ttl: number;
  readonly #timeoutMs: number;

  constructor(client: Rfc2136Client, options: Rfc2136SolverOptions = {}) {
    this.#client = client;
    this.#ttl = options.ttl ?? 60;
    this.#timeoutMs = options.propagationTimeoutMs ?? 60_000;
  }

  /** A solver with a client of its own for `settings` (as loadAcmeDnsSettings or settings.ts parse them). */
  static fromSettings(settings: AcmeDnsSettings, options: Rfc2136SolverOptions & Rfc2136Options = {}): Rfc2136Solver {
    return new Rfc2136Solver(new Rfc2136Client(settings, options), options);
  }

  async present(challenge: Challenge): Promise<void> {
    const name = challengeRecordName(challenge.identifier);
    await this.#client.addTxt(name, challenge.proof, this.#ttl);
    await this.#client.waitForTxt(name, challenge.proof, this.#timeoutMs);
  }

  async remove(challenge: Challenge): Promise<void> {
    // Deleting an RR that is not there is a successful no-op in RFC 2136 (3.4.2.4).
    await this.#client.removeTxt(challengeRecordName(challenge.identifier), challenge.proof);
  }

  toString(): string {
    return `Rfc2136Solver(${this.#client.toString()})`;
  }
}
