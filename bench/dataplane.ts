/**
 * The data plane: does what Portico generates cost nginx more than what a person would write by
 * hand? A stream and an HTTP app created through Portico (served by its nginx, on its generated
 * main config) against a reference nginx of the same build with a hand-written config for the same
 * backends, driven in the same run, alternating A B A B. On 2 shared cores one round's throughput
 * swings widely, so the figure that counts is the nginx workers' CPU time (utime + stime) per unit
 * of work: per MB, per connection, per request.
 */
import { expectOk } from './http.js';
import { LOOPBACK, startEchoServer, waitUntilServing } from './net.js';
import { startOwnNginx, type OwnNginx } from './own-nginx.js';
import type { RunningPortico } from './portico.js';
import { CpuMeter, workerPids } from './proc-stats.js';
import { blast, churn } from './blaster.js';
import { referenceConfig, backendConfig, APP_HOST } from './dataplane-configs.js';
import { runWrk, wrkAvailable } from './wrk.js';

/** The reference with one change, a 64 KiB zone in its upstream group as Portico gives every app route (HTTP only). */
export const WITH_ZONE = 'reference, with a 64k zone';
/** The reference with one change, Portico's per-resource traffic log on its stream (streams only). */
export const WITH_LOG = 'reference, with the per-resource stream log';
export type Side = 'generated' | 'reference' | typeof WITH_ZONE | typeof WITH_LOG;

export interface Round {
  side: Side;
  /** Units of `Workload.unit` done in the round. */
  work: number;
  ms: number;
  /** CPU time of the serving nginx's workers during the round. */
  cpuMs: number;
  /** Failed connections or requests (must be 0). */
  errors: number;
}

export interface Workload {
  name: string;
  unit: string;
  rounds: Round[];
}

export interface DataPlane {
  workloads: Workload[];
  /** Why the HTTP workload is missing, when it is. */
  skipped: string[];
  ports: { generatedStream: number; referenceStream: number; referenceStreamLog: number; generatedHttp: number; referenceHttp: number; referenceHttpZone: number };
}

export interface DataPlaneOptions {
  portico: RunningPortico;
  nginxBin: string;
  /** Directories for the reference and backend nginx. */
  referenceDir: string;
  backendDir: string;
  /** Free ports: the reference's two streams, its two HTTP servers, the HTTP backend. */
  ports: [number, number, number, number, number];
  rounds: number;
  /** Registers a cleanup step (stopping a server or nginx). */
  onCleanup: (name: string, run: () => Promise<void>) => void;
  progress: (message: string) => void;
}

const BLAST_CONNECTIONS = 4;
const BLAST_MS = 2500;
/**
 * Enough that the workers' CPU per round is about 60 clock ticks of 10 ms (at about 100 µs a
 * connection): with 3,000 it was 30, and one tick moved a round's figure by 3%.
 */
const CHURN_CONNECTIONS = 6000;
const CHURN_CONCURRENCY = 16;
const CHURN_MAX_MS = 15_000;
const WRK_CONNECTIONS = 32;
const WRK_SECONDS = 3;

async function measureRound(side: Side, master: number, load: () => Promise<{ work: number; ms: number; errors: number }>): Promise<Round> {
  const meter = await CpuMeter.begin(await workerPids(master));
  const { work, ms, errors } = await load();
  return { side, work, ms, cpuMs: await meter.elapsedMs(), errors };
}

/** Runs `rounds` rounds of each side in turn (A B A B...), after one unrecorded warm-up of each. */
async function alternate(
  rounds: number,
  sides: Side[],
  masters: Record<Side, number>,
  load: (side: Side, warmUp: boolean) => Promise<{ work: number; ms: number; errors: number }>,
): Promise<Round[]> {
  for (const side of sides) await load(side, true);
  const out: Round[] = [];
  for (let i = 0; i < rounds; i += 1) {
    for (const side of sides) out.push(await measureRound(side, masters[side], () => load(side, false)));
  }
  return out;
}

export async function runDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const { portico, onCleanup, progress } = options;
  const [refStreamPort, refStreamLogPort, refHttpPort, refHttpZonePort, backendPort] = options.ports;
  const echo = await startEchoServer();
  onCleanup('data plane echo server', () => echo.close());
  await startOwnNginx({
    nginxBin: options.nginxBin,
    dir: options.backendDir,
    mainConfig: backendConfig(options.backendDir, backendPort),
    httpPort: backendPort,
    onSpawn: (stop) => onCleanup('backend nginx', stop),
  });
  const reference: OwnNginx = await startOwnNginx({
    nginxBin: options.nginxBin,
    dir: options.referenceDir,
    mainConfig: referenceConfig(options.referenceDir, {
      streamPort: refStreamPort,
      streamPortLog: refStreamLogPort,
      httpPort: refHttpPort,
      httpPortZone: refHttpZonePort,
      echoPort: echo.port,
      backendPort,
    }),
    servingPort: refStreamPort,
    httpPort: refHttpPort,
    onSpawn: (stop) => onCleanup('reference nginx', stop),
  });

  progress('data plane: creating the generated stream and app through Portico');
  const created = await expectOk(portico.apiPort, 'POST', '/v1/streams', { upstreams: [{ address: `${LOOPBACK}:${echo.port}` }] });
  const streamPort = (JSON.parse(created.body) as { port: number }).port;
  await waitUntilServing(streamPort, 15_000);
  await expectOk(portico.apiPort, 'POST', '/v1/apps', {
    name: 'bench',
    serverNames: [APP_HOST],
    routes: [{ upstreams: [{ address: `${LOOPBACK}:${backendPort}` }] }],
  });
  const httpPort = portico.httpPort;
  // Old workers of the reloads just made drain first: only the live workers' CPU is read.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const masters: Record<Side, number> = { generated: portico.nginxPid(), reference: reference.pid, [WITH_ZONE]: reference.pid, [WITH_LOG]: reference.pid };
  const streamPorts: Partial<Record<Side, number>> = { generated: streamPort, reference: refStreamPort, [WITH_LOG]: refStreamLogPort };
  const httpPorts: Partial<Record<Side, number>> = { generated: httpPort, reference: refHttpPort, [WITH_ZONE]: refHttpZonePort };
  const portOf = (ports: Partial<Record<Side, number>>, side: Side): number => {
    const port = ports[side];
    if (port === undefined) throw new Error(`the data plane has no port for "${side}" in this workload`);
    return port;
  };
  const pair: Side[] = ['generated', 'reference'];

  const workloads: Workload[] = [];
  const skipped: string[] = [];
  progress('data plane: TCP throughput through the streams (blaster)');
  workloads.push({
    name: `stream throughput: ${BLAST_CONNECTIONS} connections writing 64 KiB chunks for ${BLAST_MS / 1000} s, echoed back`,
    unit: 'MB',
    rounds: await alternate(options.rounds, pair, masters, async (side, warmUp) => {
      const r = await blast(portOf(streamPorts, side), BLAST_CONNECTIONS, warmUp ? 500 : BLAST_MS);
      return { work: r.bytes / 1e6, ms: r.ms, errors: 0 };
    }),
  });
  progress('data plane: short connections through the streams');
  workloads.push({
    name: `stream connections: ${CHURN_CONNECTIONS} connect + 1 byte echoed + close, ${CHURN_CONCURRENCY} at a time`,
    unit: 'connection',
    rounds: await alternate(options.rounds, [...pair, WITH_LOG], masters, async (side, warmUp) => {
      const r = await churn(portOf(streamPorts, side), warmUp ? 200 : CHURN_CONNECTIONS, CHURN_CONCURRENCY, CHURN_MAX_MS);
      return { work: r.connections, ms: r.ms, errors: r.failed };
    }),
  });
  const wrk = await wrkAvailable();
  if (wrk === undefined) {
    progress('data plane: no wrk, so no HTTP half');
    skipped.push('HTTP: wrk is not installed (`apt-get install -y wrk`)');
  } else {
    progress('data plane: HTTP through the apps (wrk)');
    workloads.push({
      name: `HTTP app: wrk, ${WRK_CONNECTIONS} keep-alive connections for ${WRK_SECONDS} s, GET / answered by a backend nginx`,
      unit: 'request',
      rounds: await alternate(options.rounds, [...pair, WITH_ZONE], masters, async (side, warmUp) => {
        const r = await runWrk(wrk, { port: portOf(httpPorts, side), host: APP_HOST, connections: WRK_CONNECTIONS, seconds: warmUp ? 1 : WRK_SECONDS });
        return { work: r.requests, ms: r.ms, errors: r.errors };
      }),
    });
  }
  return { workloads, skipped, ports: { generatedStream: streamPort, referenceStream: refStreamPort, referenceStreamLog: refStreamLogPort, generatedHttp: httpPort, referenceHttp: refHttpPort, referenceHttpZone: refHttpZonePort } };
}
