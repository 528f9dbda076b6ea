/**
 * HTTP written byte for byte, for requests no client library sends: two Host headers, absolute-form
 * targets, HTTP/1.0 without Host, odd spacing. Every wait is bounded.
 */
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `head` (request line and headers, CRLF-separated, without the blank line) and `body` to
 * host:port, and reads the answer until the server closes the connection (the request should say
 * `Connection: close`, or be HTTP/1.0). Rejects after `timeoutMs`.
 */
export function rawRequest(host: string, port: number, head: string, body = '', timeoutMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer from ${host}:${port} within ${timeoutMs} ms to ${JSON.stringify(head)}`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${head}\r\n\r\n${body}`));
    socket.on('data', (data) => chunks.push(data));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString();
      const split = text.indexOf('\r\n\r\n');
      const lines = (split === -1 ? text : text.slice(0, split)).split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status, headers, body: split === -1 ? '' : text.slice(split + 4) });
    });
  });
}
