/**
 * What the apps rung serves: small HTTP backends that answer their own name, the mix of apps it
 * creates (as an orchestrator of many sites would: several names, path routes, sticky sessions, one
 * default), and an HTTP probe that waits until a Host is answered by a given backend.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOOPBACK } from './net.js';

export interface NameBackend {
  name: string;
  port: number;
  close(): Promise<void>;
}

/** A node:http server on 127.0.0.1:`port` answering every request 200 with its name; keeps no record. */
export async function startNameBackend(name: string, port: number): Promise<NameBackend> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(name));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, LOOPBACK, () => resolve()));
  return {
    name,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        // nginx keeps upstream connections of draining workers open; do not wait for them.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface BenchApp {
  name: string;
  serverNames: string[];
  default?: boolean;
  routes: Array<{ path?: string; replacePath?: string; balance?: string; upstreams: Array<{ address: string }> }>;
}

export const appName = (i: number): string => `app-${String(i).padStart(4, '0')}`;
export const appHost = (i: number): string => `a${String(i).padStart(4, '0')}.apps.bench`;
const address = (port: number): string => `${LOOPBACK}:${port}`;

/**
 * App 0 is the one the rung replaces: one route to `replacePort`, so its file differs between two
 * replaces only in that address. The others: every fifth has a second name, every third three routes
 * (`/api` with its prefix replaced, `/static`, the fallback), every second a sticky fallback over two
 * backends; the app in the middle is the default.
 */
export function benchApp(i: number, count: number, backendPorts: number[], replacePort: number): BenchApp {
  if (i === 0) return { name: appName(0), serverNames: [appHost(0)], routes: [{ upstreams: [{ address: address(replacePort) }] }] };
  const at = (k: number): { address: string } => ({ address: address(backendPorts[(i + k) % backendPorts.length] as number) });
  const fallback = i % 2 === 0 ? { balance: 'sticky', upstreams: [at(0), at(1)] } : { upstreams: [at(0)] };
  return {
    name: appName(i),
    serverNames: [appHost(i), ...(i % 5 === 0 ? [`www.${appHost(i)}`] : [])],
    ...(i === Math.floor(count / 2) && { default: true }),
    routes: i % 3 === 0 ? [{ path: '/api', replacePath: '/', upstreams: [at(2)] }, { path: '/static', upstreams: [at(3)] }, fallback] : [fallback],
  };
}

/** GET `path` with Host `host` from 127.0.0.1:`port` on a fresh connection: status and body. */
export function httpGet(port: number, host: string, path = '/', timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: LOOPBACK, port, path, agent: false, timeout: timeoutMs, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}${path} via ${port}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Pause between two probes: each is a whole proxied request, which costs nginx and the backend. */
const PROBE_EVERY_MS = 2;
/**
 * Answers in a row from the new backend that make a change count as served. All apps share one
 * listening socket, and after a reload old workers keep accepting from it beside the new ones until
 * the master tells them to stop (100 ms later in nginx 1.26): a single new answer only shows that one
 * new worker won one connection. With two old and two new workers accepting, 10 new answers in a row
 * happen by chance about once in a thousand changes.
 */
export const SERVED_STREAK = 10;

/**
 * Polls GET / with Host `host` until `backend` answered it (200 with its name) `streak` times in a
 * row (a new Host: once is enough, no old config knew it); answers `performance.now()` when the
 * first of those answers arrived. Answers from another
 * backend before that are expected (the old config). Throws after `timeoutMs`.
 */
export async function waitUntilAnswers(port: number, host: string, backend: string, timeoutMs: number, streakNeeded = SERVED_STREAK): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = 'nothing';
  let streak = 0;
  let streakStart = 0;
  while (performance.now() < deadline) {
    const answer = await httpGet(port, host, '/', Math.max(1, Math.min(2000, deadline - performance.now()))).catch((error: Error) => ({ status: 0, body: error.message }));
    if (answer.status === 200 && answer.body === backend) {
      if (streak === 0) streakStart = performance.now();
      streak += 1;
      if (streak >= streakNeeded) return streakStart;
    } else {
      streak = 0;
      last = `${answer.status} ${answer.body.slice(0, 100)}`;
    }
    await sleep(PROBE_EVERY_MS);
  }
  throw new Error(`${host} via ${port} was not answered by ${backend} ${streakNeeded} times in a row within ${timeoutMs} ms (last other answer: ${last})`);
}
