/**
 * Caps on the API's open connections, overall and per client, enforced as each connection is
 * accepted and before node:http reads a byte of it: a client that opens connections without
 * finishing its requests (a slowloris) fills its own share, not the API. A refused connection is
 * answered 429 (its client's share is full) or 503 (the API's) with a JSON error, and closed.
 */
import type { Server } from 'node:http';
import { isIPv6, type Socket } from 'node:net';
import { ipv6Bits } from '../model/net.js';
import type { ApiLimits } from '../settings.js';

/** At most this many refused connections wait at once for their answer to be read; beyond, a refusal is a plain close. */
const MAX_LINGERING = 64;
/** How long a refused connection may take to read its answer. */
const LINGER_MS = 1000;

export interface Refusal {
  client: string;
  /** Connections open: the client's for 'client', all for 'total'. */
  open: number;
  cap: 'client' | 'total';
}

/**
 * Who a connection counts against: its IPv4 address (an IPv4-mapped IPv6 address is that IPv4
 * address), or its IPv6 /64, since one IPv6 host usually holds a whole /64 to pick addresses from.
 */
export function clientOf(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1] as string;
  if (!isIPv6(address)) return address;
  const prefix = (ipv6Bits(address.replace(/%.*$/, '')) >> 64n).toString(16).padStart(16, '0');
  return `${prefix.match(/.{4}/g)?.map((group) => group.replace(/^0{1,3}/, '')).join(':')}::/64`;
}

function answer(status: 429 | 503, message: string): string {
  const body = JSON.stringify({ error: { kind: 'TooManyConnections', message } });
  const reason = status === 429 ? 'Too Many Requests' : 'Service Unavailable';
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * Puts `limits` on `server`'s connections: node:http's own connection handler is called only for
 * the connections admitted. `onRefused` hears of the first refusal while a cap is full (not of
 * every one, so a flood cannot flood the log too). Call once, before the server accepts.
 */
export function limitConnections(server: Server, limits: Pick<ApiLimits, 'maxConnections' | 'maxConnectionsPerClient'>, onRefused: (refusal: Refusal) => void): void {
  const handlers = server.listeners('connection') as Array<(socket: Socket) => void>;
  const serve = handlers[0];
  // node:http registers exactly one handler; anything else means this is not the server we know.
  if (handlers.length !== 1 || serve === undefined) throw new Error(`limitConnections: expected node:http's one connection handler, found ${handlers.length}`);
  server.removeAllListeners('connection');

  const perClient = new Map<string, number>();
  let open = 0;
  let lingering = 0;
  /** Caps that have refused a connection since they were last below full: 'total' or a client. */
  const reported = new Set<string>();

  const refuse = (socket: Socket, status: 429 | 503, message: string): void => {
    socket.on('error', () => socket.destroy());
    if (lingering >= MAX_LINGERING) {
      socket.destroy();
      return;
    }
    lingering += 1;
    socket.once('close', () => (lingering -= 1));
    socket.setTimeout(LINGER_MS, () => socket.destroy());
    // Read and drop what the client sends, so that its request arriving after our answer does not
    // make the kernel reset the connection before the client has read the answer.
    socket.resume();
    socket.end(answer(status, message));
  };

  server.on('connection', (socket: Socket) => {
    const client = clientOf(socket.remoteAddress);
    const mine = perClient.get(client) ?? 0;
    if (open >= limits.maxConnections) {
      if (!reported.has('total')) onRefused({ client, open, cap: 'total' });
      reported.add('total');
      refuse(socket, 503, `the API has ${open} connections open, its limit (API_MAX_CONNECTIONS): try again in a moment`);
      return;
    }
    if (mine >= limits.maxConnectionsPerClient) {
      if (!reported.has(client)) onRefused({ client, open: mine, cap: 'client' });
      reported.add(client);
      refuse(socket, 429, `this client (${client}) has ${mine} connections open to the API, its limit (API_MAX_CONNECTIONS_PER_CLIENT): close some first`);
      return;
    }
    open += 1;
    perClient.set(client, mine + 1);
    socket.once('close', () => {
      open -= 1;
      const left = (perClient.get(client) ?? 1) - 1;
      if (left === 0) perClient.delete(client);
      else perClient.set(client, left);
      if (open < limits.maxConnections) reported.delete('total');
      if (left < limits.maxConnectionsPerClient) reported.delete(client);
    });
    serve.call(server, socket);
  });
}
