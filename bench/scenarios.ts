/**
 * The two ways of creating streams that the benchmark times, each against a running Portico:
 * one legacy `GET /createstream` at a time, and a burst of parallel `POST /v1/streams`. Both count
 * a stream as created only when its port echoes a byte, and both clean up what they created.
 */
import { expectOk } from './http.js';
import { LOOPBACK, waitUntilServing, roundTrip } from './net.js';
import { countReloads } from './processes.js';
import type { RunningPortico } from './portico.js';

/** How long a port may take to serve after its create was sent (Portico's verify allows 2 s). */
const SERVE_TIMEOUT_MS = 15_000;

export interface CreateSample {
  /** From sending the request until Portico answered. */
  answeredMs: number;
  /** From sending the request until the port echoed a byte. */
  servingMs: number;
  /** The create is done when both happened. */
  totalMs: number;
  reloads: number;
  /** The batch's phase timings as Portico reports them in /v1/status `lastApply`. */
  phasesMs: Record<string, number>;
}

export interface ParallelSample {
  /** From sending the first request until every port echoed a byte. */
  wallMs: number;
  /** From sending the first request until the last answer. */
  answeredMs: number;
  reloads: number;
  /** The last batch of the round, as /v1/status reports it. */
  lastBatch: { changes: number; phasesMs: Record<string, number> };
  /** Distinct ports allocated, and ports still echoing once all had answered (the round fails unless both are `count`). */
  distinct: number;
  serving: number;
}

interface LastApply {
  changes: number;
  phasesMs: Record<string, number>;
}

/** Portico's own account of its last batch (GET /v1/status → lastApply). */
async function lastApply(portico: RunningPortico): Promise<LastApply> {
  const status = JSON.parse((await expectOk(portico.apiPort, 'GET', '/v1/status')).body) as { lastApply: LastApply | null };
  return status.lastApply ?? { changes: 0, phasesMs: {} };
}

/**
 * Creates a stream on `port` with the legacy route, timing it while polling the port in parallel
 * (the port may serve before the answer arrives: Portico answers only after its own verify), then
 * removes it again.
 */
export async function timeSingleCreate(portico: RunningPortico, port: number, echoPort: number): Promise<CreateSample> {
  const before = await countReloads(portico.errorLog);
  const start = performance.now();
  const answered = expectOk(portico.apiPort, 'GET', `/createstream/${port}/${LOOPBACK}:${echoPort}`).then(() => performance.now());
  const serving = waitUntilServing(port, SERVE_TIMEOUT_MS);
  const [answeredAt, servingAt] = await Promise.all([answered, serving]);
  const reloads = (await countReloads(portico.errorLog)) - before;
  const { phasesMs } = await lastApply(portico);
  await expectOk(portico.apiPort, 'GET', `/removestream/${port}`);
  return {
    answeredMs: answeredAt - start,
    servingMs: servingAt - start,
    totalMs: Math.max(answeredAt, servingAt) - start,
    reloads,
    phasesMs,
  };
}

/**
 * Sends `count` creates at once, without ports, and times until all answered and every allocated
 * port serves; checks the ports are distinct and all still serve at the end (a later batch's reload
 * must not lose an earlier batch's listener); then deletes them all.
 */
export async function timeParallelCreates(portico: RunningPortico, count: number, echoPort: number): Promise<ParallelSample> {
  const before = await countReloads(portico.errorLog);
  const body = { upstreams: [{ address: `${LOOPBACK}:${echoPort}` }] };
  const start = performance.now();
  const createOne = async (): Promise<{ port: number; answeredAt: number; servingAt: number }> => {
    const answer = await expectOk(portico.apiPort, 'POST', '/v1/streams', body);
    const answeredAt = performance.now();
    const { port } = JSON.parse(answer.body) as { port: number };
    return { port, answeredAt, servingAt: await waitUntilServing(port, SERVE_TIMEOUT_MS) };
  };
  const created = await Promise.all(Array.from({ length: count }, createOne));
  const wallMs = Math.max(...created.map((c) => c.servingAt)) - start;
  const answeredMs = Math.max(...created.map((c) => c.answeredAt)) - start;
  const reloads = (await countReloads(portico.errorLog)) - before;
  const last = await lastApply(portico);

  const ports = created.map((c) => c.port);
  const distinct = new Set(ports).size;
  let serving = 0;
  try {
    if (distinct !== count) throw new Error(`${count} parallel creates got ${distinct} distinct ports: ${ports.join(',')}`);
    const echoed = await Promise.all(ports.map((port) => roundTrip(port, 2000)));
    serving = echoed.filter(Boolean).length;
    const dead = ports.filter((_, i) => !echoed[i]);
    if (dead.length > 0) throw new Error(`after all ${count} creates, port(s) ${dead.join(', ')} no longer serve`);
  } finally {
    await Promise.all([...new Set(ports)].map((port) => expectOk(portico.apiPort, 'DELETE', `/v1/streams/${port}`)));
  }
  return { wallMs, answeredMs, reloads, lastBatch: { changes: last.changes, phasesMs: last.phasesMs }, distinct, serving };
}
