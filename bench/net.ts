/**
 * The data plane as a client sees it: a TCP echo backend, and "serving" checks that send a byte
 * through a proxied port. A bare TCP connect is not enough: nginx's master binds and listens on a
 * new port while it reads the config, so the kernel completes handshakes before any worker exists
 * to accept them. Only a byte that comes back proves new workers proxy the port.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every address the benchmark talks to: nothing leaves the loopback interface. */
export const LOOPBACK = '127.0.0.1';

export interface EchoServer {
  port: number;
  close(): Promise<void>;
}

/** Starts a TCP server on 127.0.0.1 (ephemeral port) that writes back whatever it reads. */
export function startEchoServer(): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('echo server has no TCP port'));
      resolve({
        port: address.port,
        close: () =>
          new Promise((done) => {
            // nginx keeps upstream connections of draining workers open; do not wait for them.
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** True when a connection to `host`:`port` (127.0.0.1 unless told) is accepted and one byte comes back within `timeoutMs`. */
export function roundTrip(port: number, timeoutMs: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => socket.write('x'));
    socket.once('data', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/**
 * Retries `roundTrip` until it succeeds; answers `performance.now()` at that moment. A refused
 * connect fails in microseconds, so retrying every millisecond resolves the moment a port starts
 * serving without keeping a core busy. Throws after `timeoutMs`.
 */
export async function waitUntilServing(port: number, timeoutMs: number, host = LOOPBACK): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await roundTrip(port, Math.max(1, deadline - performance.now()), host)) return performance.now();
    await sleep(1);
  }
  throw new Error(`${host}:${port} did not echo a byte within ${timeoutMs} ms`);
}

/** True when some process listens on TCP `port` (any address): the check nginx's own bind would fail. */
export function isPortBound(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(true));
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(false)));
  });
}

/** The first `count` ports of from–to (inclusive) that nothing listens on; throws when too few are free. */
export async function freePortsIn(from: number, to: number, count: number): Promise<number[]> {
  const free: number[] = [];
  for (let port = from; port <= to && free.length < count; port += 1) {
    if (!(await isPortBound(port))) free.push(port);
  }
  if (free.length < count) throw new Error(`only ${free.length} of ${count} ports free in ${from}-${to}`);
  return free;
}

/** An unused port outside every range the benchmark uses, picked by the kernel. */
export function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = address !== null && typeof address !== 'string' ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no ephemeral port'))));
    });
  });
}

/**
 * Throws when from–to overlaps the kernel's ephemeral port range. Outgoing connections (our probes,
 * nginx's own connections to the backend) take local ports from that range, and a port an outgoing
 * connection left in TIME_WAIT cannot be bound for about a minute: Portico then answers 409 "in use
 * by another process", or nginx's bind fails after a reload.
 */
export function assertOutsideEphemeral(name: string, from: number, to: number): void {
  let text = '';
  try {
    text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    return; // Not Linux: nothing to check against.
  }
  const [low = 0, high = 0] = text.trim().split(/\s+/).map(Number);
  if (from <= high && to >= low) {
    throw new Error(`${name} ${from}-${to} overlaps the ephemeral port range ${low}-${high}; pick ports outside it`);
  }
}
