/**
 * The alternative source measured against the log files (bench/traffic-metrics.ts): nginx's syslog
 * output (`access_log syslog:server=127.0.0.1:PORT,nohostname,tag=portico FORMAT`) to a UDP socket
 * on loopback. nginx sends one datagram per request, unbuffered; a datagram the socket's buffer
 * cannot hold is dropped, and any local process may send to the port. Kept for the benchmark: the
 * files won (see the README's traffic metrics section).
 */
import { createSocket, type Socket } from 'node:dgram';

/** The message of an RFC 3164 datagram as nginx sends it: `<PRI>Mmm dd hh:mm:ss TAG: MESSAGE`. */
export function syslogMessage(datagram: string): string | undefined {
  if (!datagram.startsWith('<')) return undefined;
  const colon = datagram.indexOf(': ');
  return colon < 0 ? undefined : datagram.slice(colon + 2);
}

export class SyslogListener {
  private socket: Socket | undefined;

  constructor(private readonly onLine: (line: string | undefined) => void) {}

  /** Binds 127.0.0.1:`port` (0: any free port); answers the port. */
  async start(port: number, receiveBufferBytes?: number): Promise<number> {
    const socket = createSocket({ type: 'udp4', recvBufferSize: receiveBufferBytes });
    socket.on('message', (msg) => this.onLine(syslogMessage(msg.toString('latin1'))));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
    return socket.address().port;
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
