/**
 * The API's socket, bound before Portico starts: a taken BIND_PORT then stops start-up before any
 * nginx runs or the state lock is taken. Until `serve` hands it the app, every request answers 503.
 * No client can hold it: a request's headers and the whole request must arrive within the
 * timeouts of `ApiLimits` (node:http answers 408 and closes otherwise), and the connections open at
 * once are capped overall and per client (`connection-limits.ts`).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type RequestListener, type Server } from 'node:http';
import { PorticoError } from '../errors.js';
import type { ApiLimits } from '../settings.js';
import { limitConnections, type Refusal } from './connection-limits.js';
import { STATUS, errorBody } from './errors.js';
import { REQUEST_ID_HEADER } from './request-id.js';

export type { Refusal };

export interface ApiListener {
  server: Server;
  /** `host:port` as a URL writes it (an IPv6 address in brackets). */
  address: string;
  /** Hands every request from now on to `app`. */
  serve(app: RequestListener): void;
  /** Stops listening and closes the connections still open. */
  close(): Promise<void>;
}

/** What a failed listen means for the operator, by errno. */
const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use (EADDRINUSE): another program (or another Portico) listens there; stop it or set BIND_PORT to a free port',
  EACCES: 'permission denied (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE; set BIND_PORT to 1024 or above',
  EADDRNOTAVAIL: 'address not available (EADDRNOTAVAIL): BIND_ADDRESS is not an address of this host',
};

const starting: RequestListener = (_req, res) => {
  const error = new PorticoError('NginxUnavailable', 'portico is starting (recovering its files, starting or adopting nginx); try again in a moment');
  res.writeHead(STATUS[error.kind], { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1', [REQUEST_ID_HEADER]: randomUUID() });
  res.end(JSON.stringify(errorBody(error)));
};

/**
 * Listens on host:port within `limits`; rejects with a message naming the address and the reason
 * when it cannot. `onRefused` hears when a connection cap starts refusing connections.
 */
export async function bindApi(host: string, port: number, limits: ApiLimits, onRefused: (refusal: Refusal) => void = () => {}): Promise<ApiListener> {
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  let handler = starting;
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // node checks the two timeouts on this interval (30 s by default): check often enough that a
      // connection is cut close to its timeout.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => handler(req, res),
  );
  limitConnections(server, limits, onRefused);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const reason = LISTEN_ERRORS[error.code ?? ''] ?? error.message;
      reject(new Error(`cannot listen on ${address}: ${reason}`, { cause: error }));
    });
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    address,
    serve(app) {
      handler = app;
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
