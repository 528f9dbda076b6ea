/**
 * Backends and client probes for tests that send traffic through nginx stream proxies: TCP and TLS
 * servers that say who they are, a UDP echo, a PROXY protocol v1 receiver, and probes that connect
 * from a given address or time how long a peer keeps an idle connection. Every address is on
 * 127.0.0.0/8; every wait is bounded by a timeout; every server's close() destroys its open sockets
 * and resolves once the server is closed.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect, createServer, isIPv6, type AddressInfo, type Server, type Socket } from 'node:net';
import * as tls from 'node:tls';

const LOOPBACK = '127.0.0.1';
const CERTS = new URL('../fixtures/certs/', import.meta.url);

/** A TCP (or TLS) backend that names itself with a tag line on every connection. accepted() counts TCP connections, active() those still open; close() destroys them and resolves once closed. */
export interface TaggedServer {
  port: number;
  accepted(): number;
  active(): number;
  close(): Promise<void>;
}

/** The reason a probe's wait ran out, so callers can tell a timeout from a failure of the peer. */
export class ProbeTimeout extends Error {}

/**
 * Runs `body` (which answers its cleanup) until it calls `done` once, or `timeoutMs` passed and
 * `onTimeout` decides the answer; an Error rejects, anything else resolves. Cleanup always runs.
 */
function within<T>(timeoutMs: number, onTimeout: () => T | Error, body: (done: (result: T | Error) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let cleanup: (() => void) | undefined;
    const done = (result: T | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cleanup?.();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => done(onTimeout()), timeoutMs);
    cleanup = body(done);
    if (settled) cleanup();
  });
}

/** Listens on 127.0.0.1:0 and tracks every accepted socket, so close() can destroy them. */
async function serve(server: Server): Promise<TaggedServer> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, LOOPBACK, () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    active: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Writes `tag` and a newline, then echoes whatever the socket reads. */
function tagThenEcho(socket: Socket, tag: string): void {
  socket.on('error', () => socket.destroy());
  socket.write(`${tag}\n`);
  socket.on('data', (data) => socket.write(data));
}

/** Answers the first line `socket` reads (without its '\n'); rejects on error, on close before a line, or with a ProbeTimeout. Destroys the socket. */
function firstLine(socket: Socket, timeoutMs: number, what: string): Promise<string> {
  return within<string>(timeoutMs, () => new ProbeTimeout(`${what}: no line within ${timeoutMs} ms`), (done) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\n');
      if (end >= 0) done(text.slice(0, end));
    });
    socket.on('error', (error) => done(error));
    socket.on('close', () => done(new Error(`${what}: connection closed before a line (read ${JSON.stringify(text)})`)));
    return () => socket.destroy();
  });
}

/** A TCP server on 127.0.0.1 that writes `tag + '\n'` on every accepted connection, then echoes what it reads. */
export function startTaggedServer(tag: string): Promise<TaggedServer> {
  return serve(createServer((socket) => tagThenEcho(socket, tag)));
}

/**
 * Connects to host:port (default 127.0.0.1), from `localAddress` if given, and answers the first line
 * read (the backend's tag). Rejects on a socket error, a close before a line, or after `timeoutMs`
 * (default 2000) with a ProbeTimeout.
 */
export function whoAnswers(port: number, options: { host?: string; localAddress?: string; timeoutMs?: number } = {}): Promise<string> {
  const { host = LOOPBACK, localAddress, timeoutMs = 2000 } = options;
  const socket = connect({ host, port, ...(localAddress === undefined ? {} : { localAddress }) });
  return firstLine(socket, timeoutMs, `${host}:${port}`);
}

/** A UDP echo on 127.0.0.1; received() counts datagrams. */
export interface UdpEcho {
  port: number;
  received(): number;
  close(): Promise<void>;
}

/** A udp4 socket on 127.0.0.1 that sends every datagram back to its sender, prefixed with `tag`. */
export async function startUdpEcho(tag = ''): Promise<UdpEcho> {
  let received = 0;
  const socket = createSocket('udp4');
  socket.on('message', (message, sender) => {
    received += 1;
    socket.send(Buffer.concat([Buffer.from(tag), message]), sender.port, sender.address, () => {});
  });
  await new Promise<void>((resolve, reject) => socket.once('error', reject).bind(0, LOOPBACK, () => resolve()));
  socket.on('error', () => {});
  return {
    port: socket.address().port,
    received: () => received,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/**
 * Sends `payload` as one datagram to host:port (default 127.0.0.1) from a fresh udp4 socket bound to
 * 127.0.0.1, and answers the first reply as text. Rejects on a socket error or after `timeoutMs`
 * (default 2000) with a ProbeTimeout.
 */
export function udpRoundTrip(port: number, payload: string, options: { host?: string; timeoutMs?: number } = {}): Promise<string> {
  const { host = LOOPBACK, timeoutMs = 2000 } = options;
  return within<string>(timeoutMs, () => new ProbeTimeout(`udp ${host}:${port}: no reply within ${timeoutMs} ms`), (done) => {
    const socket = createSocket('udp4');
    socket.on('message', (message) => done(message.toString()));
    socket.on('error', (error) => done(error));
    socket.bind(0, LOOPBACK, () => socket.send(payload, port, host, (error) => error && done(error)));
    return () => socket.close();
  });
}

/** A TLS backend: `accepted()` counts TCP connections, `handshakes()` completed TLS handshakes. */
export interface TlsServer extends TaggedServer {
  handshakes(): number;
}

/** A node:tls server on 127.0.0.1 with the given PEM cert and key; once a handshake is done it writes `tag + '\n'`, then echoes. */
export async function startTlsServer(options: { cert: string; key: string; tag: string }): Promise<TlsServer> {
  let handshakes = 0;
  const server = tls.createServer({ cert: options.cert, key: options.key }, (socket) => {
    handshakes += 1;
    tagThenEcho(socket, options.tag);
  });
  server.on('tlsClientError', () => {});
  return { ...(await serve(server)), handshakes: () => handshakes };
}

/** Options of the TLS probes; `cert`/`key` present a client certificate. rejectUnauthorized defaults to true (pass `ca`). */
export interface TlsProbeOptions {
  host?: string;
  servername?: string;
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  timeoutMs?: number;
}

function tlsConnect(port: number, options: TlsProbeOptions): tls.TLSSocket {
  const { host = LOOPBACK, servername, ca, cert, key, rejectUnauthorized = true } = options;
  return tls.connect({ host, port, servername, ca, cert, key, rejectUnauthorized });
}

/**
 * Opens TLS to host:port (default 127.0.0.1) and answers the first line read (the tag) with the
 * server certificate's subject CN and SHA-256 fingerprint ('AB:CD:...'). Rejects when the connection
 * or handshake fails, the socket closes before a line, or after `timeoutMs` (default 2000).
 */
export async function tlsWhoAnswers(port: number, options: TlsProbeOptions = {}): Promise<{ tag: string; peerCertificate: { subjectCN: string; fingerprint256: string } }> {
  const socket = tlsConnect(port, options);
  const peerCertificate = { subjectCN: '', fingerprint256: '' };
  socket.once('secureConnect', () => {
    const certificate = socket.getPeerCertificate();
    peerCertificate.subjectCN = String(certificate.subject?.CN ?? '');
    peerCertificate.fingerprint256 = certificate.fingerprint256 ?? '';
  });
  const tag = await firstLine(socket, options.timeoutMs ?? 2000, `tls ${options.host ?? LOOPBACK}:${port}`);
  return { tag, peerCertificate };
}

/**
 * Opens TLS to host:port and answers the error message when the connection or handshake fails, or
 * the socket closes before any line. Rejects when a line was read (TLS did not fail) and with a
 * ProbeTimeout when nothing happened within `timeoutMs` (default 2000).
 */
export async function tlsConnectFails(port: number, options: TlsProbeOptions = {}): Promise<string> {
  const what = `tls ${options.host ?? LOOPBACK}:${port}`;
  let line: string;
  try {
    line = await firstLine(tlsConnect(port, options), options.timeoutMs ?? 2000, what);
  } catch (error) {
    if (error instanceof ProbeTimeout) throw error;
    return (error as Error).message;
  }
  throw new Error(`${what}: TLS did not fail, read ${JSON.stringify(line)}`);
}

/** A PROXY protocol v1 header, as sent by nginx's `proxy_protocol on`. */
export interface ProxyV1Header {
  family: 'TCP4' | 'TCP6';
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const PORT = /^(?:0|[1-9]\d{0,4})$/;

/**
 * Parses `PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>` (a trailing CRLF is allowed) strictly per
 * the haproxy spec: single spaces, at most 107 bytes with CRLF, dotted quads for TCP4 (no leading
 * zeros), IPv6 without zone for TCP6, decimal ports 0-65535 without leading zeros. Throws otherwise,
 * and for `PROXY UNKNOWN`, which carries no addresses.
 */
export function parseProxyV1(line: string): ProxyV1Header {
  const fail = (why: string): never => {
    throw new Error(`invalid PROXY v1 header ${JSON.stringify(line)}: ${why}`);
  };
  const text = line.endsWith('\r\n') ? line.slice(0, -2) : line;
  if (Buffer.byteLength(text) + 2 > 107) fail('longer than 107 bytes');
  const parts = text.split(' ');
  if (parts[0] === 'PROXY' && parts[1] === 'UNKNOWN') fail('PROXY UNKNOWN carries no addresses');
  if (parts.length !== 6 || parts[0] !== 'PROXY') fail('expected "PROXY <family> <src> <dst> <srcport> <dstport>" with single spaces');
  const [, family, source, destination, sourcePort, destinationPort] = parts as [string, string, string, string, string, string];
  if (family !== 'TCP4' && family !== 'TCP6') return fail(`family "${family}" is not TCP4 or TCP6`);
  const isAddress = family === 'TCP4' ? (a: string) => IPV4.test(a) : (a: string) => isIPv6(a) && !a.includes('%');
  for (const address of [source, destination]) if (!isAddress(address)) fail(`"${address}" is not an ${family} address`);
  for (const port of [sourcePort, destinationPort]) if (!PORT.test(port) || Number(port) > 65535) fail(`"${port}" is not a port`);
  return { family, source, destination, sourcePort: Number(sourcePort), destinationPort: Number(destinationPort) };
}

/** A TCP backend expecting a PROXY v1 header; headers() answers each connection's header line (no CRLF), valid or not, in arrival order. */
export interface ProxyProtocolServer {
  port: number;
  headers(): string[];
  close(): Promise<void>;
}

/**
 * A TCP server on 127.0.0.1 that reads the PROXY v1 header line at the start of each connection (up to
 * 107 bytes with its CRLF), records it, then echoes the remaining bytes. A connection whose header
 * has no CRLF within 107 bytes, or fails parseProxyV1 (recorded anyway), is destroyed.
 */
export async function startProxyProtocolServer(): Promise<ProxyProtocolServer> {
  const headers: string[] = [];
  const server = createServer((socket) => {
    let pending: Buffer | undefined = Buffer.alloc(0);
    socket.on('data', (data) => {
      if (pending === undefined) return void socket.write(data);
      pending = Buffer.concat([pending, data]);
      const end = pending.indexOf('\r\n');
      if (end < 0 || end + 2 > 107) {
        if (end >= 0 || pending.length >= 107) socket.destroy();
        return;
      }
      const line = pending.subarray(0, end).toString('latin1');
      headers.push(line);
      try {
        parseProxyV1(line);
      } catch {
        return void socket.destroy();
      }
      const rest = pending.subarray(end + 2);
      pending = undefined;
      if (rest.length > 0) socket.write(rest);
    });
  });
  const { port, close } = await serve(server);
  return { port, headers: () => [...headers], close };
}

/**
 * Connects to host:port (default 127.0.0.1) from `localAddress` (e.g. '127.0.0.2'), writes 'ping',
 * and answers whether the TCP connection was established and what came back before the peer closed
 * (or reset) it, `expectBytes` arrived, or `timeoutMs` (default 1500) passed. A refused connection
 * answers `{ connected: false, reply: '' }`; nginx's `deny` answers `{ connected: true, reply: '' }`.
 * Rejects on other errors before the connection is established (e.g. a bad localAddress).
 */
export function connectFrom(port: number, localAddress: string, options: { host?: string; timeoutMs?: number; expectBytes?: number } = {}): Promise<{ connected: boolean; reply: string }> {
  const { host = LOOPBACK, timeoutMs = 1500, expectBytes } = options;
  let connected = false;
  let reply = '';
  return within(timeoutMs, () => ({ connected, reply }), (done) => {
    const socket = connect({ host, port, localAddress });
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write('ping');
    });
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (expectBytes !== undefined && Buffer.byteLength(reply) >= expectBytes) done({ connected, reply });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (connected || error.code === 'ECONNREFUSED') done({ connected, reply });
      else done(error);
    });
    socket.on('close', () => done({ connected, reply }));
    return () => socket.destroy();
  });
}

/**
 * Opens TCP to host:port (default 127.0.0.1), sends 'ping\n', reads, then stays idle. Answers the
 * milliseconds (rounded) from the last byte received (or from the connect, if none came) until the
 * peer ended, closed or reset the connection; answers undefined when it is still open `maxMs` after
 * the start (and destroys it). Rejects when the connection cannot be established.
 */
export function timeUntilClosed(port: number, options: { host?: string; maxMs: number }): Promise<number | undefined> {
  const { host = LOOPBACK, maxMs } = options;
  return within<number | undefined>(maxMs, () => undefined, (done) => {
    const socket = connect({ host, port });
    let connected = false;
    let last = 0;
    const closed = (): void => done(Math.round(performance.now() - last));
    socket.on('connect', () => {
      connected = true;
      last = performance.now();
      socket.write('ping\n');
    });
    socket.on('data', () => void (last = performance.now()));
    socket.on('end', closed);
    socket.on('close', () => (connected ? closed() : done(new Error(`${host}:${port}: closed before connecting`))));
    socket.on('error', (error) => (connected ? closed() : done(error)));
    return () => socket.destroy();
  });
}

/** The PEM text of `file` in test/fixtures/certs/ (e.g. 'ca.crt'). */
export function fixturePem(file: string): string {
  return readFileSync(new URL(file, CERTS), 'utf8');
}

/** The PEM cert and key `<name>.crt` / `<name>.key` of test/fixtures/certs/ (e.g. 'portico', 'a', 'b'). */
export function fixtureCert(name: string): { cert: string; key: string } {
  return { cert: fixturePem(`${name}.crt`), key: fixturePem(`${name}.key`) };
}
