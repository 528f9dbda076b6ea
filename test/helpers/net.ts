/**
 * Sockets for tests: TCP echo backends, a byte round-trip through a port, connect probes. Every
 * address is on 127.0.0.0/8; every wait is bounded.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface EchoServer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1 that writes back what it reads, prefixed with `tag` if given. */
export async function startEcho(tag = '', host = '127.0.0.1'): Promise<EchoServer> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (data) => socket.write(tag === '' ? data : Buffer.concat([Buffer.from(tag), data])));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Sends `payload` to host:port and answers what comes back once `expectBytes` arrived (or the connection ends). */
export function roundTrip(port: number, payload: string, options: { host?: string; timeoutMs?: number; expectBytes?: number } = {}): Promise<string> {
  const { host = '127.0.0.1', timeoutMs = 3000, expectBytes = Buffer.byteLength(payload) } = options;
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no echo from ${host}:${port} within ${timeoutMs} ms (got ${received} bytes)`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (data) => {
      chunks.push(data);
      received += data.length;
      if (received >= expectBytes) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Buffer.concat(chunks).toString());
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString());
    });
  });
}

/** True when host:port accepts a TCP connection within `timeoutMs`. */
export function accepts(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Polls `check` every `everyMs` until it is true or `timeoutMs` passed; answers its last value. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 3000, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** Holds a TCP port the way another program would: listening on 127.0.0.1. */
export async function holdPort(port: number): Promise<{ close(): Promise<void> }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return { close: () => new Promise((resolve) => server.close(() => resolve())) };
}
