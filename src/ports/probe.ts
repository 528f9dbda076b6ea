/**
 * Asks the host whether a port is taken, by trying to bind it on all IPv4 addresses. On Linux that
 * fails while any process listens on the port at any address, which is exactly what would make
 * nginx's own bind fail after a reload.
 */
import { createServer } from 'node:net';

/** True when some process listens on TCP `port`. */
export function isTcpPortBound(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE' || error.code === 'EACCES'));
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(false)));
  });
}
