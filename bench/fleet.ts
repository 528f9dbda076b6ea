/**
 * `make bench-fleet` (issue 16): what a create costs in a fleet, beside the single node and the floor
 * in the same run. A 3-member etcd cluster (Debian's etcd-server, test/helpers/etcd.ts) and three
 * Portico nodes (STORE=etcd, FLEET_WAIT=all, each with its own managed nginx bound by LISTEN_ADDRESS
 * to 127.0.0.11, .12 and .13), a single-node Portico (STORE=file, managed) and the floor nginx
 * (bench/floor.ts: a file, a bare `nginx -t`, a SIGHUP), all started through bin/portico as the other
 * benches start Portico. At each level (0 streams, then 200 in each of the three), rounds take one
 * sample of each side in turn, the first side rotating from round to round, so that the noise of a
 * shared machine hits all alike:
 *
 *   fleet   POST /v1/streams with a port to one node (rotating over the three): until it answered,
 *           and until the port echoed a byte on all three addresses (polled from the send, as the
 *           single create and the floor are); right after the answer each address is also probed
 *           once more, without retry: FLEET_WAIT=all promises it already echoes, and any that does
 *           not is counted
 *   single  the same POST to the single node: until answered, until the port echoes
 *   floor   one stream file rewritten to a new port, `nginx -t`, SIGHUP, until the port echoes
 *
 * Where the fleet's time goes, read from a watch of the fleet's prefix that this process holds on
 * etcd's v3 HTTP gateway (each event timed as it arrives): from the send to the stream's key in etcd
 * (the answering node's local dry run with `nginx -t`, its read and its transaction), from there to
 * each node's status key reporting that revision (watch, apply, status write), and from the last of
 * those to the answer; and each node's own account of its apply (GET /v1/status → lastApply).
 *
 * Writes bench/FLEET.md (rewritten each run) and the same tables into bench/RESULTS.md between
 * markers (`make bench` runs this after bench/run.ts). Everything on 127.0.0.0/8; every process it
 * starts it stops by pid, also on failure or Ctrl-C; every loop is bounded in count and time.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { prefixRangeEnd } from '../src/fleet/keys.js';
import { startEtcdCluster, etcdUnavailable } from '../test/helpers/etcd.js';
import { Cleanup } from './cleanup.js';
import { generatedStreamText, startFloor, type FloorNginx, type FloorSample } from './floor.js';
import { expectOk, request } from './http.js';
import { SETTLE_MS } from './ladder.js';
import { describeMachine, type Machine } from './machine.js';
import { assertOutsideEphemeral, ephemeralPort, freePortsIn, LOOPBACK, roundTrip, startEchoServer, waitUntilServing } from './net.js';
import { launcherNodeFlags, spawnPortico, type PorticoOptions, type RunningPortico } from './portico.js';
import { fillTo } from './scale.js';
import { putResultsSection } from './results-section.js';
import { percentile } from './stats.js';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const FLEET_FILE = `${REPO_DIR}bench/FLEET.md`;
const RESULTS_FILE = `${REPO_DIR}bench/RESULTS.md`;

const ADDRESSES = ['127.0.0.11', '127.0.0.12', '127.0.0.13'] as const;
const NODE_NAMES = ['edge-a', 'edge-b', 'edge-c'] as const;
const PREFIX = '/portico-bench/';
/** FLEET_BENCH_QUICK=1: 4 rounds at each level, to check the benchmark itself; written to /tmp, not bench/. */
const QUICK = process.env.FLEET_BENCH_QUICK === '1';
const ROUNDS = Number(process.env.FLEET_BENCH_ROUNDS ?? (QUICK ? 4 : 30));
const LEVELS = (process.env.FLEET_BENCH_LEVELS ?? '0,200').split(',').map(Number);
/** A level stops early (with fewer rounds) past this, so a slow machine still finishes. */
const LEVEL_BUDGET_MS = 150_000;
const FILL_CONCURRENCY = 50;

/**
 * Ports below Linux's ephemeral range and apart from the tests' (21000-28999, the fleet test's
 * 30400-30481) and from bench/run.ts's (10000-29999). Each side has its own: a single node's stream
 * listens on every address, so it would take a fleet node's port on 127.0.0.11 too. Fills take the
 * bottom of a PORT_RANGE, samples its top, each sample a port of its own (a port just closed can
 * linger in TIME_WAIT).
 */
const RANGES = {
  fleet: { from: 30500, to: 30999 },
  fleetSamples: { from: 30900, to: 30999 },
  single: { from: 31000, to: 31499 },
  singleSamples: { from: 31400, to: 31499 },
  floorChange: { from: 31500, to: 31599 },
  mirror: { from: 31600, to: 31999 },
  http: { from: 32000, to: 32019 },
};

/** How long a port may take to echo after its create was sent. */
const SERVE_TIMEOUT_MS = 15_000;
/** A poller that echoed this long after the answer, when a connect made at the answer echoed at once, is named in the report. */
const HELD_UP_MS = 500;
/** The one probe of each address right after the fleet's answer: no retry, a short bound. */
const AFTER_ANSWER_PROBE_MS = 1000;

type Side = 'fleet' | 'single' | 'floor';
const SIDES: readonly Side[] = ['fleet', 'single', 'floor'];

interface Apply {
  totalMs: number;
  phasesMs: Record<string, number>;
}

interface FleetSample {
  /** The node the create was sent to. */
  node: string;
  answeredMs: number;
  /** Until the port echoed on every address (each polled from the send). */
  echoAllMs: number;
  /** Per address (ADDRESSES' order): until it first echoed. */
  echoMs: number[];
  /** One connect to each address made right after the answer, no retry: ms from the answer until its byte came back (NaN: not within 1 s). */
  afterAnswerMs: number[];
  /** The answer's `fleet.complete` and each node's outcome in it. */
  complete: boolean;
  outcomes: Record<string, string>;
  /** From the watch: the stream's key seen in etcd, and each node's status reporting its revision (ms from the send; NaN: not seen). */
  inEtcdMs: number;
  nodeReportedMs: Record<string, number>;
  /** Each node's own apply (its /v1/status lastApply after the create). */
  applies: Record<string, Apply>;
}

interface SingleSample {
  answeredMs: number;
  echoMs: number;
  afterAnswerMs: number;
  apply: Apply;
}

interface LevelResult {
  level: number;
  fill?: { fleetMs: number; singleMs: number; floorMs: number };
  fleet: FleetSample[];
  single: SingleSample[];
  floor: FloorSample[];
  seconds: number;
}

interface Results {
  date: string;
  machine: Machine;
  command: string;
  load: { before: string; after: string };
  durationS: number;
  etcd: string;
  /** The file system of etcd's data (its fsyncs are part of every fleet change). */
  etcdDisk: string;
  levels: LevelResult[];
}

function progress(message: string): void {
  process.stderr.write(`bench-fleet: ${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

const loadAverage = async (): Promise<string> => (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

/** The file system `dir` is on (the longest mount point of /proc/mounts that holds it): where etcd's writes go. */
async function fileSystemOf(dir: string): Promise<string> {
  const mounts = (await readFile('/proc/mounts', 'utf8').catch(() => '')).split('\n').map((line) => line.split(' '));
  const holding = mounts.filter(([, point]) => point !== undefined && (dir === point || dir.startsWith(point.endsWith('/') ? point : `${point}/`)));
  const best = holding.sort((a, b) => (b[1] ?? '').length - (a[1] ?? '').length)[0];
  return best === undefined ? 'unknown' : `${best[2]} on ${best[0]}`;
}

/** Every Portico started, by label: their last output explains a failed run. */
const porticos: Array<{ label: string; portico: RunningPortico }> = [];

function take(ports: number[], what: string): number {
  const port = ports.shift();
  if (port === undefined) throw new Error(`ran out of ports for ${what}`);
  return port;
}

// ---------------------------------------------------------------------------------------------
// The watch: every event under the fleet's prefix, timed as it arrives here.
// ---------------------------------------------------------------------------------------------

interface Seen {
  key: string;
  value: string | undefined;
  modRevision: number;
  at: number;
}

interface Watch {
  seen: Seen[];
  stop(): Promise<void>;
}

/** A watch of `prefix` through etcd's v3 HTTP gateway (POST /v3/watch: one JSON message a line). */
async function watchPrefix(endpoint: string, prefix: string): Promise<Watch> {
  const controller = new AbortController();
  const body = { create_request: { key: Buffer.from(prefix).toString('base64'), range_end: prefixRangeEnd(prefix).toString('base64') } };
  const response = await fetch(`${endpoint}/v3/watch`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal: controller.signal });
  if (!response.ok || response.body === null) throw new Error(`etcd watch answered HTTP ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const seen: Seen[] = [];
  let created: () => void = () => undefined;
  const isCreated = new Promise<void>((resolve) => (created = resolve));
  const pump = (async (): Promise<void> => {
    let buffered = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const at = performance.now();
      buffered += decoder.decode(value, { stream: true });
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line === '') continue;
        const message = JSON.parse(line) as { result?: { created?: boolean; events?: Array<{ type?: string; kv: { key: string; value?: string; mod_revision: string } }> } };
        if (message.result?.created === true) created();
        for (const event of message.result?.events ?? []) {
          const text = (b64: string | undefined): string => Buffer.from(b64 ?? '', 'base64').toString('utf8');
          seen.push({ key: text(event.kv.key), value: event.type === 'DELETE' ? undefined : text(event.kv.value), modRevision: Number(event.kv.mod_revision), at });
        }
      }
    }
  })().catch((error: unknown) => {
    if (!controller.signal.aborted) progress(`the etcd watch ended: ${String(error)}`);
  });
  const timedOut = sleep(5000).then(() => 'timeout' as const);
  if ((await Promise.race([isCreated.then(() => 'created' as const), timedOut])) === 'timeout') {
    controller.abort();
    throw new Error('etcd did not confirm the watch within 5 s');
  }
  return {
    seen,
    async stop() {
      controller.abort();
      await pump;
    },
  };
}

/** From the watch: when the stream's key was written, and when each node first reported `revision` or later (ms after `start`). */
function readWatch(seen: readonly Seen[], port: number, revision: number, start: number): { inEtcdMs: number; nodeReportedMs: Record<string, number> } {
  const put = seen.find((s) => s.at >= start && s.key === `${PREFIX}streams/${port}` && s.value !== undefined && s.modRevision === revision);
  const nodeReportedMs: Record<string, number> = {};
  for (const name of NODE_NAMES) {
    const status = seen.find((s) => s.at >= start && s.key === `${PREFIX}nodes/${name}` && s.value !== undefined && (JSON.parse(s.value) as { revision: number }).revision >= revision);
    nodeReportedMs[name] = status === undefined ? Number.NaN : status.at - start;
  }
  return { inEtcdMs: put === undefined ? Number.NaN : put.at - start, nodeReportedMs };
}

// ---------------------------------------------------------------------------------------------
// The samples.
// ---------------------------------------------------------------------------------------------

async function lastApply(portico: RunningPortico): Promise<Apply> {
  const status = JSON.parse((await expectOk(portico.apiPort, 'GET', '/v1/status')).body) as { lastApply: Apply | null };
  return { totalMs: status.lastApply?.totalMs ?? Number.NaN, phasesMs: status.lastApply?.phasesMs ?? {} };
}

interface Rig {
  nodes: RunningPortico[];
  single: RunningPortico;
  floor: FloorNginx;
  watch: Watch;
  echoPort: number;
  ports: Record<Side, number[]>;
}

async function sampleFleet(rig: Rig, turn: number): Promise<FleetSample> {
  const index = turn % rig.nodes.length;
  const node = rig.nodes[index] as RunningPortico;
  const port = take(rig.ports.fleet, 'fleet creates');
  const start = performance.now();
  // Polled from the send on every address, as the single create and the floor are.
  const pollers = ADDRESSES.map((host) => waitUntilServing(port, SERVE_TIMEOUT_MS, host));
  for (const poller of pollers) poller.catch(() => undefined); // awaited below
  const answer = await request(node.apiPort, 'POST', '/v1/streams', { port, upstreams: [{ address: `${LOOPBACK}:${rig.echoPort}` }] }, SERVE_TIMEOUT_MS);
  const answeredAt = performance.now();
  if (answer.status !== 201) throw new Error(`fleet create on ${NODE_NAMES[index]} answered ${answer.status}: ${answer.body.slice(0, 500)}`);
  const afterAnswerMs = await Promise.all(ADDRESSES.map((host) => probeAfter(port, host, answeredAt)));
  const echoedAt = await Promise.all(pollers);
  const fleet = (JSON.parse(answer.body) as { fleet: { revision: number; complete: boolean; nodes: Array<{ node: string; outcome: string }> } }).fleet;
  const applies: Record<string, Apply> = {};
  for (const [i, name] of NODE_NAMES.entries()) applies[name] = await lastApply(rig.nodes[i] as RunningPortico);
  // The watch's events may reach this process a little after the answer.
  await sleep(50);
  const watched = readWatch(rig.watch.seen, port, fleet.revision, start);
  const removed = await request(node.apiPort, 'DELETE', `/v1/streams/${port}`);
  if (removed.status !== 204) throw new Error(`fleet delete of ${port} answered ${removed.status}: ${removed.body.slice(0, 300)}`);
  rig.watch.seen.length = 0;
  return {
    node: NODE_NAMES[index] as string,
    answeredMs: answeredAt - start,
    echoAllMs: Math.max(...echoedAt) - start,
    echoMs: echoedAt.map((at) => at - start),
    afterAnswerMs,
    complete: fleet.complete,
    outcomes: Object.fromEntries(fleet.nodes.map((n) => [n.node, n.outcome])),
    ...watched,
    applies,
  };
}

/**
 * One connect to `host`:`port`, one byte, no retry (bounded by AFTER_ANSWER_PROBE_MS): ms from
 * `answeredAt` until the byte came back, NaN if it did not. A port nothing listens on refuses at once;
 * one whose listening socket exists but no worker accepts yet queues the connect until one does.
 */
async function probeAfter(port: number, host: string, answeredAt: number): Promise<number> {
  return (await roundTrip(port, AFTER_ANSWER_PROBE_MS, host)) ? performance.now() - answeredAt : Number.NaN;
}

async function sampleSingle(rig: Rig): Promise<SingleSample> {
  const port = take(rig.ports.single, 'single creates');
  const start = performance.now();
  const serving = waitUntilServing(port, SERVE_TIMEOUT_MS);
  serving.catch(() => undefined); // awaited below
  const answer = await request(rig.single.apiPort, 'POST', '/v1/streams', { port, upstreams: [{ address: `${LOOPBACK}:${rig.echoPort}` }] }, SERVE_TIMEOUT_MS);
  const answeredAt = performance.now();
  if (answer.status !== 201) throw new Error(`single create answered ${answer.status}: ${answer.body.slice(0, 500)}`);
  const afterAnswerMs = await probeAfter(port, LOOPBACK, answeredAt);
  const echoedAt = await serving;
  const apply = await lastApply(rig.single);
  await expectOk(rig.single.apiPort, 'DELETE', `/v1/streams/${port}`);
  return { answeredMs: answeredAt - start, echoMs: echoedAt - start, afterAnswerMs, apply };
}

async function sample(rig: Rig, side: Side, turn: number, into: LevelResult): Promise<void> {
  await sleep(SETTLE_MS);
  if (side === 'fleet') into.fleet.push(await sampleFleet(rig, turn));
  else if (side === 'single') into.single.push(await sampleSingle(rig));
  else into.floor.push(await rig.floor.change(take(rig.ports.floor, 'the floor')));
}

/** Creates fleet streams on `ports`, FILL_CONCURRENCY at a time spread over the nodes (each waits for all nodes). */
async function fillFleet(rig: Rig, ports: number[]): Promise<number> {
  const start = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ports.length) {
      const i = next;
      next += 1;
      const node = rig.nodes[i % rig.nodes.length] as RunningPortico;
      const answer = await request(node.apiPort, 'POST', '/v1/streams', { port: ports[i], upstreams: [{ address: `${LOOPBACK}:${rig.echoPort}` }] }, 120_000);
      if (answer.status !== 201) throw new Error(`filling the fleet: ${ports[i]} answered ${answer.status}: ${answer.body.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(FILL_CONCURRENCY, ports.length) }, worker));
  const ms = performance.now() - start;
  // Every node holds them all: a sample of ports echoes on every address.
  for (const port of ports.filter((_, i) => i % 20 === 0)) {
    for (const host of ADDRESSES) if (!(await roundTrip(port, 5000, host))) throw new Error(`after the fill, ${host}:${port} does not echo`);
  }
  rig.watch.seen.length = 0;
  return ms;
}

async function runLevel(rig: Rig, level: number, fillPorts: { fleet: number[]; mirror: number[] }, current: number): Promise<LevelResult> {
  const started = performance.now();
  const result: LevelResult = { level, fleet: [], single: [], floor: [], seconds: 0 };
  if (level > current) {
    progress(`filling each side to ${level} streams`);
    const fleetMs = await fillFleet(rig, fillPorts.fleet.splice(0, level - current));
    const single = await fillTo(rig.single, level, FILL_CONCURRENCY, rig.echoPort);
    const growth = await rig.floor.grow(fillPorts.mirror.splice(0, level - current));
    result.fill = { fleetMs, singleMs: single.ms, floorMs: growth.ms };
    progress(`filled: fleet ${(fleetMs / 1000).toFixed(1)} s, single ${(single.ms / 1000).toFixed(1)} s, floor ${(growth.ms / 1000).toFixed(1)} s`);
  }
  // Warm-up, not recorded: the first requests at a level compile code paths and fill caches.
  const warm: LevelResult = { level, fleet: [], single: [], floor: [], seconds: 0 };
  for (const [i, side] of SIDES.entries()) await sample(rig, side, i, warm);
  const deadline = started + LEVEL_BUDGET_MS;
  for (let round = 0; round < ROUNDS && performance.now() < deadline; round += 1) {
    for (let k = 0; k < SIDES.length; k += 1) await sample(rig, SIDES[(round + k) % SIDES.length] as Side, round, result);
    if ((round + 1) % 10 === 0) progress(`level ${level}: ${round + 1}/${ROUNDS} rounds`);
  }
  if (result.fleet.length < ROUNDS) progress(`level ${level}: time budget reached after ${result.fleet.length} rounds`);
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Setting up and tearing down.
// ---------------------------------------------------------------------------------------------

async function measure(nginxBin: string, cleanup: Cleanup): Promise<Pick<Results, 'levels' | 'etcd' | 'etcdDisk'>> {
  for (const [name, r] of Object.entries(RANGES)) assertOutsideEphemeral(name, r.from, r.to);
  const unavailable = etcdUnavailable();
  if (unavailable !== undefined) throw new Error(unavailable);
  const nodeArgs = await launcherNodeFlags(REPO_DIR);
  const echo = await startEchoServer();
  cleanup.push('echo server', () => echo.close());
  const samplesPerSide = LEVELS.length * (ROUNDS + 1);
  const top = Math.max(0, ...LEVELS);
  const ports: Record<Side, number[]> = {
    fleet: await freePortsIn(RANGES.fleetSamples.from, RANGES.fleetSamples.to, samplesPerSide),
    single: await freePortsIn(RANGES.singleSamples.from, RANGES.singleSamples.to, samplesPerSide),
    floor: await freePortsIn(RANGES.floorChange.from, RANGES.floorChange.to, samplesPerSide + 1),
  };
  const fillPorts = { fleet: await freePortsIn(RANGES.fleet.from, RANGES.fleetSamples.from - 1, top), mirror: await freePortsIn(RANGES.mirror.from, RANGES.mirror.to, top) };
  const [httpPort, httpsPort, singleHttp, singleHttps] = (await freePortsIn(RANGES.http.from, RANGES.http.to, 4)) as [number, number, number, number];

  progress('starting a 3-member etcd cluster');
  const etcd = await startEtcdCluster({ members: 3 });
  cleanup.push('etcd cluster', () => etcd.stop());
  const etcdVersion = (await fetch(`${etcd.endpoints[0]}/version`).then((r) => r.json() as Promise<{ etcdserver?: string }>).catch(() => ({}) as { etcdserver?: string })).etcdserver ?? 'unknown';
  const watch = await watchPrefix(etcd.endpoints[0] as string, PREFIX);
  cleanup.push('etcd watch', () => watch.stop());

  const secret = randomBytes(32).toString('base64');
  const start = async (label: string, options: Omit<PorticoOptions, 'repoDir' | 'nginxBin' | 'stateDir' | 'bindPort' | 'nodeArgs'>): Promise<RunningPortico> => {
    const stateDir = await mkdtemp(`/tmp/portico-bench-fleet-${label}-`);
    cleanup.push(`${label} state dir`, () => rm(stateDir, { recursive: true, force: true }));
    const portico = spawnPortico({ repoDir: REPO_DIR, nginxBin, stateDir, bindPort: await ephemeralPort(), nodeArgs, ...options });
    cleanup.push(label, () => portico.stop());
    porticos.push({ label, portico });
    await portico.ready();
    return portico;
  };
  progress('starting three fleet nodes (127.0.0.11-13) and a single node');
  const nodes: RunningPortico[] = [];
  for (const [i, address] of ADDRESSES.entries()) {
    nodes.push(
      await start(NODE_NAMES[i] as string, {
        portRange: RANGES.fleet,
        httpPort,
        httpsPort,
        env: { STORE: 'etcd', ETCD_ENDPOINTS: etcd.endpoints.join(','), FLEET_PREFIX: PREFIX, FLEET_SECRET: secret, NODE_NAME: NODE_NAMES[i] as string, LISTEN_ADDRESS: address, FLEET_WAIT: 'all' },
      }),
    );
  }
  const first = nodes[0] as RunningPortico;
  const deadline = performance.now() + 15_000;
  for (;;) {
    const view = JSON.parse((await expectOk(first.apiPort, 'GET', '/v1/fleet')).body) as { nodes: unknown[] };
    if (view.nodes.length === NODE_NAMES.length) break;
    if (performance.now() > deadline) throw new Error(`the fleet lists ${view.nodes.length} nodes, not ${NODE_NAMES.length}, after 15 s`);
    await sleep(100);
  }
  const single = await start('single', { portRange: RANGES.single, httpPort: singleHttp, httpsPort: singleHttps });

  progress('starting the floor nginx');
  const floorDir = await mkdtemp('/tmp/portico-bench-fleet-floor-');
  cleanup.push('floor dir', () => rm(floorDir, { recursive: true, force: true }));
  const floor = await startFloor({
    nginxBin,
    dir: floorDir,
    porticoStateDir: single.stateDir,
    porticoMainConfig: await readFile(`${single.stateDir}/nginx.conf`, 'utf8'),
    streamText: await generatedStreamText(single.apiPort, echo.port),
    firstPort: take(ports.floor, 'the floor'),
    onSpawn: (stop) => cleanup.push('floor nginx', stop),
  });

  const rig: Rig = { nodes, single, floor, watch, echoPort: echo.port, ports };
  const levels: LevelResult[] = [];
  let current = 0;
  for (const level of LEVELS) {
    progress(`level ${level}`);
    levels.push(await runLevel(rig, level, fillPorts, current));
    current = Math.max(current, level);
  }
  return { levels, etcd: etcdVersion, etcdDisk: await fileSystemOf(os.tmpdir()) };
}

async function main(): Promise<void> {
  const saved = process.env.FLEET_BENCH_RENDER;
  if (saved !== undefined) return publish(JSON.parse(await readFile(saved, 'utf8')) as Results);
  const nginxBin = process.env.NGINX_BIN;
  if (nginxBin === undefined || nginxBin === '') throw new Error('NGINX_BIN is not set: run `make bench-fleet`');
  const started = performance.now();
  const loadBefore = await loadAverage();
  progress(`load average before: ${loadBefore}`);
  const cleanup = new Cleanup();
  const measured = await cleanup.around(progress, () => measure(nginxBin, cleanup), () => {
    for (const { label, portico } of porticos) process.stderr.write(`--- ${label}'s output ---\n${portico.output()}\n`);
  });
  if (measured === undefined) return;
  const results: Results = {
    date: new Date().toISOString(),
    machine: describeMachine(nginxBin),
    // As run: `make bench-fleet`, or what FLEET_BENCH_COMMAND says wrapped it (a private network namespace, say).
    command: process.env.FLEET_BENCH_COMMAND ?? 'make bench-fleet',
    load: { before: loadBefore, after: await loadAverage() },
    durationS: (performance.now() - started) / 1000,
    ...measured,
  };
  if (process.env.FLEET_BENCH_JSON !== undefined) await writeFile(process.env.FLEET_BENCH_JSON, JSON.stringify(results));
  await publish(results);
}

// ---------------------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------------------

const RESULTS_BEGIN = '<!-- fleet:begin (bench/fleet.ts rewrites this part) -->';
const RESULTS_END = '<!-- fleet:end -->';

/** Prints the report, writes bench/FLEET.md, and puts it into bench/RESULTS.md in place of a previous run's. */
async function publish(results: Results): Promise<void> {
  const report = renderReport(results);
  process.stdout.write(report);
  if (QUICK) {
    await writeFile('/tmp/portico-bench-quick-FLEET.md', report);
    return;
  }
  await writeFile(FLEET_FILE, report);
  const body = renderReport(results, false).replace(/^# .*$/m, '### (16) Fleet: a create until it echoes on all three nodes, beside the single node and the floor (bench/fleet.ts; bench/FLEET.md)').replace(/^## /gm, '#### ');
  await putResultsSection(RESULTS_FILE, { begin: RESULTS_BEGIN, end: RESULTS_END }, body, '## Where a target is missed');
}

const fmt = (ms: number): string => (Number.isNaN(ms) ? '–' : ms.toFixed(1));
const finite = (values: number[]): number[] => values.filter((v) => Number.isFinite(v));
const med = (values: number[]): number => percentile(finite(values), 50);
const p90 = (values: number[]): number => percentile(finite(values), 90);
const row = (label: string, values: number[]): string => {
  const v = finite(values);
  return `| ${label} | ${fmt(med(v))} | ${fmt(p90(v))} | ${fmt(v.length === 0 ? Number.NaN : Math.min(...v))} | ${fmt(v.length === 0 ? Number.NaN : Math.max(...v))} | ${v.length} |`;
};
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
/** The union of phase names in the order they ran. */
const phaseNames = (applies: Apply[]): string[] => [...new Set(applies.flatMap((a) => Object.keys(a.phasesMs)))];

/** Samples answered before the benchmark saw the last status, where the node asked was that last one. */
function askedLastAndEarly(l: LevelResult): number {
  return l.fleet.filter((s) => {
    const last = Math.max(...NODE_NAMES.map((n) => s.nodeReportedMs[n] ?? Number.NaN));
    return s.answeredMs < last && s.nodeReportedMs[s.node] === last;
  }).length;
}

/** One level's tables; `full` adds where the fleet's time goes (FLEET.md has it, RESULTS.md points there). */
function renderLevel(l: LevelResult, full: boolean): string[] {
  const fleetAnswered = l.fleet.map((s) => s.answeredMs);
  const fleetEcho = l.fleet.map((s) => s.echoAllMs);
  const singleAnswered = l.single.map((s) => s.answeredMs);
  const singleEcho = l.single.map((s) => s.echoMs);
  const floor = l.floor.map((s) => s.totalMs);
  const fleetDone = l.fleet.map((s) => Math.max(s.answeredMs, s.echoAllMs));
  const singleDone = l.single.map((s) => Math.max(s.answeredMs, s.echoMs));
  const probes = l.fleet.flatMap((s) => s.afterAnswerMs);
  const missed = l.fleet.flatMap((s) => s.afterAnswerMs.map((ms, i) => (Number.isFinite(ms) ? '' : `${ADDRESSES[i]} after a create on ${s.node}`))).filter((m) => m !== '');
  // The pollers' view: creates answered before the port echoed on every address, and by how much.
  const early = l.fleet.map((s) => s.echoAllMs - s.answeredMs).filter((d) => d > 0);
  const singleEarly = l.single.map((s) => s.echoMs - s.answeredMs).filter((d) => d > 0);
  // A poller that saw the echo long after a connect made at the answer did: its own connection was held up, not the port.
  const heldUp = [
    ...l.fleet.flatMap((s, n) => s.echoMs.map((ms, i) => ({ what: `fleet create ${n + 1}, ${ADDRESSES[i]}`, late: ms - s.answeredMs, probe: s.afterAnswerMs[i] ?? Number.NaN }))),
    ...l.single.map((s, n) => ({ what: `single create ${n + 1}`, late: s.echoMs - s.answeredMs, probe: s.afterAnswerMs })),
  ].filter((h) => h.late > HELD_UP_MS && h.probe < h.late / 10);
  const incomplete = l.fleet.filter((s) => !s.complete || Object.values(s.outcomes).some((o) => o !== 'applied'));
  const lines = [
    `## ${l.level.toLocaleString('en-US')} streams${l.level > 0 ? ' in each (the fleet, the single node and the floor\'s mirror)' : ''}: ${l.fleet.length} rounds, ${l.seconds.toFixed(0)} s`,
    '',
    ...(l.fill === undefined
      ? []
      : [`Filled first (not measured here): the fleet in ${(l.fill.fleetMs / 1000).toFixed(1)} s (${FILL_CONCURRENCY} creates with ports in flight, spread over the three nodes), the single node in ${(l.fill.singleMs / 1000).toFixed(1)} s, the floor's mirror in ${(l.fill.floorMs / 1000).toFixed(1)} s (one reload).`, '']),
    '| ms | median | p90 | min | max | n |',
    '|---|---|---|---|---|---|',
    row('**fleet** create → answered', fleetAnswered),
    row('**fleet** create → echoing on all three nodes', fleetEcho),
    row('**fleet** create → answered and echoing on all three', fleetDone),
    row('single node create → answered', singleAnswered),
    row('single node create → echoes', singleEcho),
    row('single node create → answered and echoing', singleDone),
    row('floor (file, `nginx -t`, HUP) → echoes', floor),
    row('fleet: the answer → a connect made right then echoes (each address, no retry)', probes),
    row('single node: the answer → a connect made right then echoes', l.single.map((s) => s.afterAnswerMs)),
    '',
    `Ratios of the medians (of the p90s): fleet / single, answered ${ratio(med(fleetAnswered), med(singleAnswered))} (${ratio(p90(fleetAnswered), p90(singleAnswered))}); ` +
      `answered and echoing ${ratio(med(fleetDone), med(singleDone))} (${ratio(p90(fleetDone), p90(singleDone))}). ` +
      `Fleet / floor: answered and echoing on all three ${ratio(med(fleetDone), med(floor))} (${ratio(p90(fleetDone), p90(floor))}); single / floor ${ratio(med(singleDone), med(floor))} (${ratio(p90(singleDone), p90(floor))}).`,
    '',
    `Right after each fleet answer, one connect to each address, no retry (bounded ${AFTER_ANSWER_PROBE_MS} ms): ${finite(probes).length} of ${probes.length} echoed${missed.length > 0 ? ` (not: ${missed.join('; ')})` : ''} ` +
      "(the times above include this process's own turns on a busy machine: where the three connects of one create came back equally late, most likely this process was the one waiting); " +
      `single node: ${finite(l.single.map((s) => s.afterAnswerMs)).length} of ${l.single.length}. ` +
      `Answers with \`fleet.complete\` false or a node not \`applied\`: ${incomplete.length} of ${l.fleet.length}. ` +
      `As the pollers saw it (each polling from the send), the fleet answered before the port echoed on all three addresses in ${early.length} of ${l.fleet.length} creates` +
      `${early.length > 0 ? ` (by ${fmt(med(early))} ms median, ${fmt(Math.max(...early))} at most)` : ''}, the single node before its port echoed in ${singleEarly.length} of ${l.single.length}` +
      `${singleEarly.length > 0 ? ` (by ${fmt(med(singleEarly))} ms median, ${fmt(Math.max(...singleEarly))} at most)` : ''}: ` +
      "a node's check that a new port serves is the master's \"start worker process\" line and a TCP connect, which the kernel completes once the master has bound the port, before a new worker accepts (src/nginx/verify.ts, nginx.ts); a connect made then waits in the queue and echoes once one does." +
      (heldUp.length === 0
        ? ''
        : ` Long waits of a poller: ${heldUp.map((h) => `${h.what}, echoed ${fmt(h.late)} ms after the answer by the poller, ${fmt(h.probe)} ms by the connect made at the answer`).join('; ')}: the poller's own connection was held up, not the port.`),
    '',
  ];
  if (!full) return lines;
  const reported = (s: FleetSample, name: string): number => (s.nodeReportedMs[name] ?? Number.NaN) - s.inEtcdMs;
  const ownApply = l.fleet.flatMap((s) => NODE_NAMES.map((name) => s.applies[name]?.totalMs ?? Number.NaN));
  const rest = l.fleet.flatMap((s) => NODE_NAMES.map((name) => reported(s, name) - (s.applies[name]?.totalMs ?? Number.NaN)));
  lines.push(
    '**Where the fleet\'s time goes** (ms from the send; the watch\'s events are timed as they reach the benchmark):',
    '',
    '| ms | median | p90 | min | max | n |',
    '|---|---|---|---|---|---|',
    row('send → the stream\'s key in etcd (the answering node: local dry run with `nginx -t`, read, transaction)', l.fleet.map((s) => s.inEtcdMs)),
    ...NODE_NAMES.map((name) => row(`key in etcd → ${name} reports the revision (watch, apply, status write)`, l.fleet.map((s) => reported(s, name)))),
    row('… of which a node\'s own apply (its `lastApply.totalMs`; the three nodes\' samples together)', ownApply),
    row('… and the rest: the watch\'s delivery, `fleet/applied.json`, the status write (the three nodes together)', rest),
    row('key in etcd → the last node reports it', l.fleet.map((s) => Math.max(...NODE_NAMES.map((n) => s.nodeReportedMs[n] ?? Number.NaN)) - s.inEtcdMs)),
    row('the last node reports it → answered', l.fleet.map((s) => s.answeredMs - Math.max(...NODE_NAMES.map((n) => s.nodeReportedMs[n] ?? Number.NaN)))),
    '',
    `A negative "→ answered" is an answer that came before the benchmark saw the last status (${l.fleet.filter((s) => s.answeredMs < Math.max(...NODE_NAMES.map((n) => s.nodeReportedMs[n] ?? Number.NaN))).length} of ${l.fleet.length}, ${askedLastAndEarly(l)} of them when the node asked was itself the last to report): a node learns that its status write is done from etcd's answer to it, the benchmark from its watch, whose events reach this process a few ms later (through etcd's HTTP gateway, to an event loop that also polls the ports).`,
    '',
  );
  const lastCounts = NODE_NAMES.map((name) => l.fleet.filter((s) => NODE_NAMES.every((other) => (s.nodeReportedMs[name] ?? Number.NaN) >= (s.nodeReportedMs[other] ?? Number.NaN))).length);
  const askedLast = l.fleet.filter((s) => NODE_NAMES.every((other) => (s.nodeReportedMs[s.node] ?? Number.NaN) >= (s.nodeReportedMs[other] ?? Number.NaN))).length;
  lines.push(
    `The last node to report: ${NODE_NAMES.map((n, i) => `${n} ${lastCounts[i]}×`).join(', ')} (the node that was asked: ${askedLast} of ${l.fleet.length}).`,
    '',
    "Each node's own apply of the create (its `/v1/status` `lastApply`), beside the single node's, median ms:",
    '',
  );
  const applies = [...NODE_NAMES.map((name) => ({ name, list: l.fleet.map((s) => s.applies[name] as Apply) })), { name: 'single node', list: l.single.map((s) => s.apply) }];
  const phases = phaseNames(applies.flatMap((a) => a.list));
  lines.push(`| node | total | ${phases.join(' | ')} |`, `|---|---|${phases.map(() => '---|').join('')}`);
  for (const { name, list } of applies) {
    lines.push(`| ${name} | ${fmt(med(list.map((a) => a.totalMs)))} | ${phases.map((p) => fmt(med(list.map((a) => a.phasesMs[p] ?? Number.NaN)))).join(' | ')} |`);
  }
  lines.push('');
  return lines;
}

function renderReport(r: Results, full = true): string {
  const m = r.machine;
  return [
    '# Fleet: a create until it echoes on all three nodes (make bench-fleet)',
    '',
    `${r.date}, ${r.durationS.toFixed(0)} s; ${m.cpus} CPUs (${m.model}), ${m.memory}, ${m.kernel}; node ${m.node}; nginx ${m.nginx}; etcd ${r.etcd}. ` +
      `Load average ${r.load.before} before, ${r.load.after} after. Command: \`${r.command}\`.`,
    '',
    `A 3-member etcd cluster and three fleet nodes (STORE=etcd, FLEET_WAIT=all, LISTEN_ADDRESS ${ADDRESSES.join(', ')}), a single node (STORE=file) and the floor nginx, all on this one machine and all measured in the same run, one sample of each per round, the first of the three rotating. ` +
      `Every Portico through bin/portico (dist/, node's shipped flags), managed mode, the same settings but for the store. ` +
      'A create is `POST /v1/streams` with a port and one upstream (to one fleet node, the three in turn); each is deleted again before the next sample (untimed), and each side pauses 150 ms before its sample (bench/ladder.ts `SETTLE_MS`). ' +
      "The ports are polled from the send (a byte echoed through nginx; every 1 ms, on each of the fleet's three addresses). Percentiles are nearest-rank.",
    '',
    "Caveat: the three nodes, the three etcd members, the single node and the floor share this machine's CPUs: the three nodes' `nginx -t` and reloads of a fleet create run at the same time on them, as they would not on three machines. " +
      `etcd's data is in ${os.tmpdir()} (${r.etcdDisk}): its fsyncs are part of every fleet change.`,
    '',
    ...r.levels.flatMap((l) => renderLevel(l, full)),
    ...(full ? [] : ["Where the fleet's time goes (the answering node's dry run, each node's apply, the status writes): bench/FLEET.md.", '']),
  ].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`bench-fleet: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
