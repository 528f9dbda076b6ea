/**
 * Asks the host whether a port is taken, by trying to bind it on all IPv4 addresses. On Linux that
 * fails while any process listens on the port at any address, which is exactly what would make
 * nginx's own bind fail after a reload.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/** True when some process listens on TCP `port`. */
export function isTcpPortBound(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE' || error.code === 'EACCES'));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(false)));
  });
}

/** True when some process has bound UDP `port` on `host` (or on an address that covers it). */
export function isUdpPortBound(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.close();
      resolve(error.code === 'EADDRINUSE' || error.code === 'EACCES');
    });
    socket.bind({ port, address: host, exclusive: true }, () => socket.close(() => resolve(false)));
  });
}

/** The host probe Portico runs with: TCP always, UDP too for a stream that listens on it. */
export async function isPortBound(port: number, udp = false, listenAddress?: string): Promise<boolean> {
  // LISTEN_ADDRESS: only that address matters (another edge of the same host may hold the port on its own).
  const host = listenAddress === undefined ? '0.0.0.0' : listenAddress.replace(/^\[(.*)\]$/, '$1');
  if (await isTcpPortBound(port, host)) return true;
  return udp && isUdpPortBound(port, host);
}

/** A UDP port on `host` free a moment ago (the kernel's pick from its ephemeral range), for a throwaway listener. */
export function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ port: 0, address: host, exclusive: true }, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}
