/**
 * What both container tests talk to: the API published on 127.0.0.1:5000 (with the API_TOKEN the
 * README's commands pass on), a page backend on the host's bridge address, and the app through the
 * published 443 with SNI and Host portico.test. Every request has a time bound.
 */
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fixturePem } from './backends.js';

export const API = 'http://127.0.0.1:5000';
export const PAGE = 'answered by the backend on the host';
const CA = fixturePem('ca.crt');
/** API_TOKEN, which the README's commands pass on from the shell (run-tests.sh exports one). */
const TOKEN = process.env.API_TOKEN ?? '';

/** One API request with the token; answers the status and the body's text. */
export async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: await response.text() };
}

/** An HTTP backend on `host` answering a page that names PAGE and the path; `/slow` answers after `slowMs`. */
export async function startPageBackend(host: string, slowMs = 0): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>page</title><p id="answer">${PAGE} ${req.url}</p>\n`);
    };
    if (req.url === '/slow') setTimeout(answer, slowMs);
    else answer();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** GET `path` over HTTPS through the published 443 with SNI and Host portico.test, trusting the test CA. */
export function httpsGet(path: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: 443, path, servername: 'portico.test', headers: { host: 'portico.test' }, ca: CA, agent: false, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`https://portico.test${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
