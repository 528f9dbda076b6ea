/**
 * HTTP backends and HTTP/1.1, HTTPS, HTTP/2 and TLS probes for tests that send traffic through
 * nginx's http listeners. Every address is 127.0.0.1; every probe is bounded by a timeout and destroys
 * its socket; a backend's close() destroys its open connections (nginx keeps idle ones to upstreams)
 * and resolves once it is closed.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';

const LOOPBACK = '127.0.0.1';
const DEFAULT_TIMEOUT_MS = 5000;

/** What an HTTP backend tells about a request it received. */
export interface Seen {
  who: string;
  method: string;
  url: string;
  host: string;
  forwardedProto: string | null;
}

/** A node:http server on 127.0.0.1 that answers every request 200 with a JSON `Seen`. */
export interface HttpBackend {
  port: number;
  /** Requests received so far. */
  requests(): number;
  close(): Promise<void>;
}

export async function startHttpBackend(who: string): Promise<HttpBackend> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    const header = (name: string): string | null => {
      const value = req.headers[name];
      return typeof value === 'string' ? value : null;
    };
    const seen: Seen = { who, method: req.method ?? '', url: req.url ?? '', host: header('host') ?? '', forwardedProto: header('x-forwarded-proto') };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(seen));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, LOOPBACK, () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An answer, and what the TLS connection that carried it showed (empty strings over plain HTTP). */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The server certificate's SHA-256 fingerprint ('AB:CD:...'). */
  fingerprint256: string;
  alpnProtocol: string;
}

/** `body` parsed as what a backend saw, or null when the answer did not come from a backend. */
export function seenBy(answer: Pick<Answer, 'body'>): Seen | null {
  try {
    const parsed = JSON.parse(answer.body) as Partial<Seen>;
    return typeof parsed.who === 'string' ? (parsed as Seen) : null;
  } catch {
    return null;
  }
}

/** Runs `start` until it settles, or rejects after `timeoutMs` and runs `abort`. */
function bounded<T>(timeoutMs: number, what: string, start: (resolve: (v: T) => void, reject: (e: Error) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let abort = (): void => {};
    const timer = setTimeout(() => {
      abort();
      reject(new Error(`${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const settle = <A>(f: (a: A) => void) => (a: A): void => {
      clearTimeout(timer);
      f(a);
    };
    abort = start(settle(resolve), settle(reject));
  });
}

function readAnswer(res: IncomingMessage, resolve: (a: Answer) => void, reject: (e: Error) => void): void {
  const socket = res.socket as tls.TLSSocket;
  const tlsInfo = typeof socket.getPeerCertificate === 'function'
    ? { fingerprint256: socket.getPeerCertificate().fingerprint256 ?? '', alpnProtocol: String(socket.alpnProtocol ?? '') }
    : { fingerprint256: '', alpnProtocol: '' };
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => (body += chunk));
  res.on('error', reject);
  res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ...tlsInfo }));
}

export interface HttpOptions {
  /** The Host header, without port (the port is added). */
  host: string;
  path?: string;
  timeoutMs?: number;
}

/** GET over plain HTTP/1.1 to 127.0.0.1:port on a fresh connection. */
export function httpGet(port: number, options: HttpOptions): Promise<Answer> {
  const { host, path = '/', timeoutMs = DEFAULT_TIMEOUT_MS } = options;
  return bounded(timeoutMs, `http ${host}:${port}${path}`, (resolve, reject) => {
    const req = httpRequest({ host: LOOPBACK, port, path, agent: false, headers: { host: `${host}:${port}` } }, (res) => readAnswer(res, resolve, reject));
    req.on('error', reject).end();
    return () => req.destroy();
  });
}

export interface HttpsOptions extends Partial<HttpOptions> {
  /** The TLS server name (SNI); also the Host unless `host` says otherwise. */
  servername: string;
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
}

/** GET over HTTPS (HTTP/1.1) to 127.0.0.1:port on a fresh connection: no agent, no session reuse. */
export function httpsGet(port: number, options: HttpsOptions): Promise<Answer> {
  const { servername, host = servername, path = '/', ca, cert, key, rejectUnauthorized = true, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
  return bounded(timeoutMs, `https ${servername}:${port}${path}`, (resolve, reject) => {
    const req = httpsRequest(
      { host: LOOPBACK, port, path, servername, ca, cert, key, rejectUnauthorized, agent: false, headers: { host: `${host}:${port}` } },
      (res) => readAnswer(res, resolve, reject),
    );
    req.on('error', reject).end();
    return () => req.destroy();
  });
}

/** GET over HTTP/2 (node:http2) to 127.0.0.1:port with SNI and :authority `servername`; the session is closed after. */
export function h2Get(port: number, options: { servername: string; ca: string; path?: string; timeoutMs?: number }): Promise<Answer> {
  const { servername, ca, path = '/', timeoutMs = DEFAULT_TIMEOUT_MS } = options;
  return bounded(timeoutMs, `h2 ${servername}:${port}${path}`, (resolve, reject) => {
    const session = http2Connect(`https://${LOOPBACK}:${port}`, { ca, servername });
    const fail = (error: Error): void => {
      session.destroy();
      reject(error);
    };
    session.on('error', fail);
    const req = session.request({ ':method': 'GET', ':path': path, ':authority': `${servername}:${port}` });
    let headers: IncomingHttpHeaders = {};
    let status = 0;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => {
      status = Number(h[':status']);
      headers = h as IncomingHttpHeaders;
    });
    req.on('data', (chunk: string) => (body += chunk));
    req.on('error', fail);
    req.on('end', () => {
      const fingerprint256 = session.socket instanceof tls.TLSSocket ? (session.socket.getPeerCertificate().fingerprint256 ?? '') : '';
      const answer = { status, headers, body, fingerprint256, alpnProtocol: String(session.alpnProtocol ?? '') };
      session.close(() => resolve(answer));
    });
    return () => session.destroy();
  });
}

export interface HandshakeOptions {
  servername: string;
  ca?: string;
  rejectUnauthorized?: boolean;
  ALPNProtocols?: string[];
  timeoutMs?: number;
}

/** Completes a TLS handshake with 127.0.0.1:port and answers the ALPN protocol chosen (false: none); the socket is destroyed. */
export function negotiatedAlpn(port: number, options: HandshakeOptions): Promise<string | false> {
  const { timeoutMs = DEFAULT_TIMEOUT_MS, rejectUnauthorized = true, ...rest } = options;
  return bounded(timeoutMs, `tls ${options.servername}:${port}`, (resolve, reject) => {
    const socket = tls.connect({ host: LOOPBACK, port, rejectUnauthorized, ...rest }, () => {
      resolve(socket.alpnProtocol ?? false);
      socket.destroy();
    });
    socket.on('error', reject);
    return () => socket.destroy();
  });
}

/** Opens TLS to 127.0.0.1:port and answers the error that ended the handshake; rejects if the handshake completed. */
export function handshakeFailure(port: number, options: HandshakeOptions): Promise<Error & { code?: string }> {
  const { timeoutMs = DEFAULT_TIMEOUT_MS, rejectUnauthorized = true, ...rest } = options;
  return bounded(timeoutMs, `tls ${options.servername}:${port}`, (resolve, reject) => {
    const socket = tls.connect({ host: LOOPBACK, port, rejectUnauthorized, ...rest }, () => {
      socket.destroy();
      reject(new Error(`tls ${options.servername}:${port}: the handshake completed`));
    });
    socket.on('error', resolve);
    socket.on('close', () => resolve(new Error('closed before the handshake completed')));
    return () => socket.destroy();
  });
}

export interface ServedCertificate {
  serial: string;
  /** The issuer's fields, space-separated (e.g. "Pebble Intermediate CA 4f19a1"). */
  issuer: string;
  subjectAltName: string;
}

/**
 * The leaf a TLS listener on host:port (127.0.0.1 by default) serves for `servername`: with `ca`, the handshake must
 * verify against it; without, any leaf is taken (to see a placeholder). Bounded by `timeoutMs`.
 */
export function servedCertificate(port: number, servername: string, ca: string | undefined, timeoutMs = 5000, host = LOOPBACK): Promise<ServedCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername, ...(ca === undefined ? { rejectUnauthorized: false } : { ca }) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS handshake with ${servername} on ${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const peer = socket.getPeerCertificate();
      socket.end();
      resolve({ serial: peer.serialNumber, issuer: Object.values(peer.issuer ?? {}).join(' '), subjectAltName: peer.subjectaltname ?? '' });
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
  });
}
