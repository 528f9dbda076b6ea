/**
 * A minimal HTTP client for Portico's API. `agent: false` gives every request its own connection,
 * so 50 parallel requests really arrive in parallel instead of queueing behind a pooled socket.
 */
import { request as httpRequest } from 'node:http';
import { LOOPBACK } from './net.js';

export interface Answer {
  status: number;
  body: string;
}

/** Sends one request to 127.0.0.1:`port`; rejects on a network error or after `timeoutMs`. */
export function request(port: number, method: string, path: string, body?: unknown, timeoutMs = 20_000): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: LOOPBACK,
        port,
        method,
        path,
        agent: false,
        timeout: timeoutMs,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Like `request`, but an answer outside 2xx is an error that quotes the body. */
export async function expectOk(port: number, method: string, path: string, body?: unknown): Promise<Answer> {
  const answer = await request(port, method, path, body);
  if (answer.status < 200 || answer.status > 299) {
    throw new Error(`${method} ${path} answered ${answer.status}: ${answer.body.slice(0, 500)}`);
  }
  return answer;
}
