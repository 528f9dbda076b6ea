/**
 * Scale through the API: filling Portico with thousands of streams the way an orchestrator would
 * (many `POST /v1/streams` in flight at once, no ports given), and timing the list queries on the
 * tree that results.
 */
import { expectOk, request } from './http.js';
import { LOOPBACK, roundTrip } from './net.js';
import { countReloads } from './processes.js';
import type { RunningPortico } from './portico.js';

export interface Fill {
  /** Streams before and after. */
  from: number;
  to: number;
  /** Requests kept in flight. */
  concurrency: number;
  ms: number;
  /** SIGHUPs in nginx's error log during the fill: one per batch Portico applied. */
  reloads: number;
}

/** How long one create may wait in a queue behind thousands of others. */
const FILL_REQUEST_TIMEOUT_MS = 180_000;
/** Ports checked to echo after a fill (all of them would take longer than the fill). */
const FILL_SPOT_CHECKS = 50;

/** Portico's own count of its streams (GET /v1/status). */
export async function streamCount(portico: RunningPortico): Promise<number> {
  const status = JSON.parse((await expectOk(portico.apiPort, 'GET', '/v1/status')).body) as { streams: number };
  return status.streams;
}

/**
 * Creates streams to `echoPort` until Portico holds `target`, keeping `concurrency` requests in
 * flight (each answer is followed at once by the next request, so Portico's queue stays full and
 * every batch takes what arrived during the one before). Then checks a sample of ports echoes.
 */
export async function fillTo(portico: RunningPortico, target: number, concurrency: number, echoPort: number): Promise<Fill> {
  const from = await streamCount(portico);
  const before = await countReloads(portico.errorLog);
  const body = { upstreams: [{ address: `${LOOPBACK}:${echoPort}` }] };
  let sent = from;
  const ports: number[] = [];
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (sent < target) {
      sent += 1;
      const answer = await request(portico.apiPort, 'POST', '/v1/streams', body, FILL_REQUEST_TIMEOUT_MS);
      if (answer.status !== 201) throw new Error(`filling: POST /v1/streams answered ${answer.status}: ${answer.body.slice(0, 300)}`);
      ports.push((JSON.parse(answer.body) as { port: number }).port);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, target - from) }, worker));
  const ms = performance.now() - start;
  const reloads = (await countReloads(portico.errorLog)) - before;
  const to = await streamCount(portico);
  if (to !== target) throw new Error(`filling to ${target} streams left ${to}`);
  const step = Math.max(1, Math.floor(ports.length / FILL_SPOT_CHECKS));
  const sample = ports.filter((_, i) => i % step === 0);
  const serving = await Promise.all(sample.map((port) => roundTrip(port, 5000)));
  const dead = sample.filter((_, i) => !serving[i]);
  if (dead.length > 0) throw new Error(`after filling to ${target}, port(s) ${dead.join(', ')} do not echo`);
  return { from, to, concurrency, ms, reloads };
}

export interface QuerySamples {
  /** `GET /getstreams` (legacy), milliseconds from sending to the last byte of the answer. */
  getstreams: number[];
  /** `GET /v1/streams`. */
  v1streams: number[];
}

async function timeQuery(portico: RunningPortico, path: string, expected: number): Promise<number> {
  const start = performance.now();
  const answer = await expectOk(portico.apiPort, 'GET', path);
  const ms = performance.now() - start;
  const listed = (JSON.parse(answer.body) as unknown[]).length;
  if (listed !== expected) throw new Error(`GET ${path} listed ${listed} streams, not ${expected}`);
  return ms;
}

/** Times both list routes `runs` times each, alternating, one request at a time (after one untimed each). */
export async function timeQueries(portico: RunningPortico, runs: number, expected: number): Promise<QuerySamples> {
  await timeQuery(portico, '/getstreams', expected);
  await timeQuery(portico, '/v1/streams', expected);
  const samples: QuerySamples = { getstreams: [], v1streams: [] };
  for (let i = 0; i < runs; i += 1) {
    samples.getstreams.push(await timeQuery(portico, '/getstreams', expected));
    samples.v1streams.push(await timeQuery(portico, '/v1/streams', expected));
  }
  return samples;
}
