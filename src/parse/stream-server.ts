/**
 * Reads the `server` block of a stream file: listeners, TLS, access rules, timeouts, PROXY protocol,
 * TLS to the upstream, and the `proxy_pass` target. Pure.
 */
import { CERT_ID_PATTERN } from '../model/certificate.js';
import { isListenHost, isPortText } from '../model/net.js';
import type { Protocol, Stream, StreamFileOptions } from '../model/stream.js';
import { fail, flag, single, type Directive } from './directive.js';

export interface ServerRead {
  port: number;
  protocol?: Protocol;
  listenAddress?: string;
  proxyPass: string;
  /** The fields read from the block's other directives, in the order of the schema. */
  settings: Pick<Stream, 'connectTimeout' | 'idleTimeout' | 'allow' | 'deny' | 'proxyProtocol' | 'tls' | 'upstreamTls'>;
}

interface Listen {
  host?: string;
  port: number;
  ssl: boolean;
  udp: boolean;
}

function readListen(directive: Directive): Listen {
  if (directive.block !== undefined || directive.args.length === 0) fail('"listen" must be [address:]port and flags', directive);
  const [where, ...flags] = directive.args as [string, ...string[]];
  const at = where.lastIndexOf(':');
  const host = at < 0 ? undefined : where.slice(0, at);
  if (!isPortText(where.slice(at + 1)) || (host !== undefined && !isListenHost(host))) {
    fail(`listen "${where}" is not [address:]port`, directive);
  }
  if (flags.some((f) => f !== 'ssl' && f !== 'udp') || flags.length > 1) {
    fail(`unexpected listen parameters "${flags.join(' ')}"`, directive);
  }
  return { ...(host !== undefined && { host }), port: Number(where.slice(at + 1)), ssl: flags[0] === 'ssl', udp: flags[0] === 'udp' };
}

/** The certificate id of a path under the certificate directory (`<dir>/<id><suffix>`). */
function certificateId(directive: Directive, options: StreamFileOptions, suffix: '.crt' | '.key'): string {
  const file = single(directive);
  const prefix = `${options.certDir}/`;
  const id = file.startsWith(prefix) && file.endsWith(suffix) ? file.slice(prefix.length, -suffix.length) : '';
  if (!CERT_ID_PATTERN.test(id)) fail(`"${file}" is not a certificate of ${options.certDir}`, directive);
  return id;
}

/** Protocol and address of one or two `listen`s of the same port (TCP, UDP, or both). */
function readListens(listens: Listen[], block: Directive): { port: number; protocol?: Protocol; host?: string; ssl: boolean } {
  const [first, second, ...more] = listens;
  if (first === undefined) fail('the server block has no listen', block);
  if (more.length > 0 || (second !== undefined && (second.udp === first.udp || !second.udp))) {
    fail('a stream listens once on TCP, once on UDP, or TCP then UDP', block);
  }
  if (second !== undefined && (second.port !== first.port || second.host !== first.host)) {
    fail('the TCP and UDP listens must share address and port', block);
  }
  const protocol: Protocol | undefined = second !== undefined ? 'tcp+udp' : first.udp ? 'udp' : undefined;
  return { port: first.port, ...(protocol && { protocol }), ...(first.host !== undefined && { host: first.host }), ssl: first.ssl };
}

/** Reads the server block; `proxyPass` is returned raw for the caller to resolve. */
export function readServerBlock(block: Directive, options: StreamFileOptions): ServerRead {
  const listens: Listen[] = [];
  const once = new Map<string, Directive>();
  const allow: string[] = [];
  const deny: string[] = [];
  for (const inner of block.block ?? []) {
    if (inner.name === 'listen') listens.push(readListen(inner));
    else if (inner.name === 'allow' || inner.name === 'deny') {
      if (inner.name === 'allow' && deny.length > 0) fail('every allow must come before the first deny', inner);
      (inner.name === 'allow' ? allow : deny).push(single(inner));
    } else if (ONCE.has(inner.name) && !once.has(inner.name)) once.set(inner.name, inner);
    else fail(`unexpected "${inner.name}" in the server block`, inner);
  }
  const { port, protocol, host, ssl } = readListens(listens, block);
  const get = (name: string): Directive | undefined => once.get(name);
  const proxyPassDirective = get('proxy_pass');
  if (proxyPassDirective === undefined) fail('the server block has no proxy_pass', block);

  const preread = get('ssl_preread');
  if (preread !== undefined && !flag(preread)) fail('"ssl_preread" must be on when given', preread);
  const cert = get('ssl_certificate');
  const key = get('ssl_certificate_key');
  let tls: Stream['tls'];
  if (cert !== undefined || key !== undefined || ssl) {
    if (cert === undefined || key === undefined || !ssl) fail('TLS needs "listen ... ssl", ssl_certificate and ssl_certificate_key', block);
    const id = certificateId(cert, options, '.crt');
    if (certificateId(key, options, '.key') !== id) fail('ssl_certificate_key is not the key of ssl_certificate', key);
    tls = { certificate: id };
  }
  const upstreamTls = readUpstreamTls(get, options, block);
  const time = (name: string): string | undefined => {
    const directive = get(name);
    return directive === undefined ? undefined : single(directive);
  };
  const proxyProtocol = get('proxy_protocol');
  const settings: ServerRead['settings'] = {
    ...(time('proxy_connect_timeout') !== undefined && { connectTimeout: time('proxy_connect_timeout') }),
    ...(time('proxy_timeout') !== undefined && { idleTimeout: time('proxy_timeout') }),
    ...(allow.length > 0 && { allow }),
    ...(deny.length > 0 && { deny }),
    ...(proxyProtocol !== undefined && { proxyProtocol: flag(proxyProtocol) }),
    ...(tls !== undefined && { tls }),
    ...(upstreamTls !== undefined && { upstreamTls }),
  };
  const proxyPass = single(proxyPassDirective);
  if ((preread !== undefined) !== proxyPass.startsWith('$')) fail('"ssl_preread on" goes with a proxy_pass to the SNI map, and only then', block);
  return { port, ...(protocol && { protocol }), ...(host !== undefined && { listenAddress: host }), proxyPass, settings };
}

const ONCE = new Set([
  'ssl_preread',
  'ssl_certificate',
  'ssl_certificate_key',
  'proxy_connect_timeout',
  'proxy_timeout',
  'proxy_protocol',
  'proxy_ssl',
  'proxy_ssl_server_name',
  'proxy_ssl_name',
  'proxy_ssl_verify',
  'proxy_ssl_trusted_certificate',
  'proxy_pass',
]);

function readUpstreamTls(get: (name: string) => Directive | undefined, options: StreamFileOptions, block: Directive): Stream['upstreamTls'] {
  const on = get('proxy_ssl');
  const sni = get('proxy_ssl_server_name');
  const name = get('proxy_ssl_name');
  const verify = get('proxy_ssl_verify');
  const trusted = get('proxy_ssl_trusted_certificate');
  if (on === undefined) {
    if (sni ?? name ?? verify ?? trusted) fail('proxy_ssl_* directives need "proxy_ssl on"', block);
    return undefined;
  }
  if (!flag(on)) fail('"proxy_ssl" must be on when given', on);
  if ((sni === undefined) !== (name === undefined) || (sni !== undefined && !flag(sni))) {
    fail('"proxy_ssl_name" goes with "proxy_ssl_server_name on", and only then', block);
  }
  return {
    ...(name !== undefined && { serverName: single(name) }),
    ...(verify !== undefined && { verify: flag(verify) }),
    ...(trusted !== undefined && { trustedCertificate: certificateId(trusted, options, '.crt') }),
  };
}
