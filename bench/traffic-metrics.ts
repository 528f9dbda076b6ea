/**
 * `make bench-traffic`: what the per-resource traffic metrics cost, and the two ways of feeding them
 * side by side. Three nginx of the same build, same job (the data-plane bench's: an HTTP server
 * proxying GET / to a backend nginx, a TCP stream to an echo server, every request also in the
 * buffered access log as Portico's main config has it), differing only in the per-resource log:
 *
 *   none    no per-resource log (TRAFFIC_METRICS=off)
 *   file    Portico's way: `access_log FILE portico_traffic buffer=64k flush=1s`, read by the real
 *           TrafficReader (src/traffic/reader.ts) polling once a second
 *   syslog  `access_log syslog:server=127.0.0.1:PORT,nohostname,tag=portico portico_traffic`, one
 *           UDP datagram per request/session, read by SyslogListener (src/traffic/syslog.ts)
 *
 * Rounds alternate none, file, syslog after one warm-up each. Per round: the nginx workers' CPU per
 * request (wrk, 32 keep-alive connections for 3 s: the data-plane bench's HTTP load) and per stream
 * connection (6,000 connect + 1 byte + close, 16 at a time) on the logged stream and on its twin, a
 * second server of the same nginx with `access_log off` (same workers, same moment: the twin's cost
 * over the logged one's is the log's efficiency, and in the `none` nginx, whose two streams are
 * alike, it shows the measurement's own noise); this process's CPU per 1,000 requests
 * (wrk runs outside it, so it is the reader's, beside the `none` rounds' as the floor of an idle
 * process); how long after the load ended the counters held every request (latency of the
 * numbers); and how many were never counted (loss). Prints a Markdown table and writes
 * bench/TRAFFIC.md. Everything on 127.0.0.1; every process it starts it stops by pid.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { HTTP_LOG_FORMAT, STREAM_LOG_FORMAT, TRAFFIC_FORMAT_NAME, parseTrafficLine } from '../src/traffic/line.js';
import { TrafficMetrics } from '../src/traffic/metrics.js';
import { TrafficReader } from '../src/traffic/reader.js';
import { SyslogListener } from '../src/traffic/syslog.js';
import { churn } from './blaster.js';
import { Cleanup } from './cleanup.js';
import { APP_HOST, REFERENCE_KEEPALIVE, backendConfig, frontPreamble } from './dataplane-configs.js';
import { freePortsIn, startEchoServer } from './net.js';
import { startOwnNginx } from './own-nginx.js';
import { CpuMeter, workerPids } from './proc-stats.js';
import { percentile } from './stats.js';
import { runWrk, wrkAvailable } from './wrk.js';
import { putResultsSection } from './results-section.js';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const VARIANTS = ['none', 'file', 'syslog'] as const;
type Variant = (typeof VARIANTS)[number];
const ROUNDS = Number(process.env.TRAFFIC_BENCH_ROUNDS ?? 5);
const WRK_CONNECTIONS = 32;
const WRK_SECONDS = 3;
const CHURN_CONNECTIONS = 6000;
const CHURN_CONCURRENCY = 16;
/** How long the counters may take to hold every request after the load ended. */
const SETTLE_MAX_MS = 10_000;

function frontConfig(dir: string, variant: Variant, p: { http: number; stream: number; twin: number; echo: number; backend: number; syslog: number }): string {
  const target = (kind: 'stream' | 'http'): string =>
    variant === 'file' ? `${dir}/logs/traffic-${kind}.log ${TRAFFIC_FORMAT_NAME} buffer=64k flush=1s` : `syslog:server=127.0.0.1:${p.syslog},nohostname,tag=portico ${TRAFFIC_FORMAT_NAME}`;
  const perResource = (kind: 'stream' | 'http', format: string): string =>
    variant === 'none' ? '' : `    log_format ${TRAFFIC_FORMAT_NAME} '${format}';\n    access_log ${target(kind)};\n`;
  return `${frontPreamble(dir)}
stream {
${perResource('stream', STREAM_LOG_FORMAT)}    server {
        listen 127.0.0.1:${p.stream};
        proxy_pass 127.0.0.1:${p.echo};
    }
    server {
        listen 127.0.0.1:${p.twin};
        proxy_pass 127.0.0.1:${p.echo};
        access_log off;
    }
}

http {
    log_format portico '$remote_addr [$time_local] "$request" $status $server_protocol $host';
    access_log ${dir}/logs/access.log portico buffer=64k flush=1s;
${perResource('http', HTTP_LOG_FORMAT)}${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `    ${n}_temp_path ${dir}/temp/${n};`).join('\n')}
    upstream backend {
        zone backend 64k;
        server 127.0.0.1:${p.backend};
        keepalive ${REFERENCE_KEEPALIVE};
    }
    server {
        listen 127.0.0.1:${p.http};
        server_name ${APP_HOST};
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
        }
    }
}
`;
}

interface Round {
  variant: Variant;
  requests: number;
  httpNginxCpuMs: number;
  connections: number;
  streamNginxCpuMs: number;
  /** The same churn on the twin stream (no log), in the same nginx, right before or after. */
  twinConnections: number;
  twinNginxCpuMs: number;
  /** This process's CPU from the start of wrk until every request was counted (or SETTLE_MAX_MS). */
  readerCpuMs: number;
  /** After wrk ended, until the counters held every request. */
  latencyMs: number;
  /**
   * Counted minus sent: negative is lost; a few positive are requests wrk had in flight when it
   * stopped (nginx answered and logged them; wrk no longer counted them): at most its 32 connections.
   */
  lostRequests: number;
  lostSessions: number;
  errors: number;
}

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main(): Promise<void> {
  const nginxBin = process.env.NGINX_BIN;
  if (nginxBin === undefined || nginxBin === '') throw new Error('NGINX_BIN is not set: run `make bench-traffic`');
  const wrk = await wrkAvailable();
  if (wrk === undefined) throw new Error('wrk is not installed (apt-get install -y wrk)');
  const cleanup = new Cleanup();
  const onSignal = (): void => void cleanup.run().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const base = await mkdtemp(`${os.tmpdir()}/portico-bench-traffic-`);
    cleanup.push('temporary directory', () => rm(base, { recursive: true, force: true }));
    const echo = await startEchoServer();
    cleanup.push('echo server', () => echo.close());
    const ports = await freePortsIn(18100, 18199, 11);
    const [backendPort, syslogPort] = ports as [number, number];
    await startOwnNginx({ nginxBin, dir: `${base}/backend`, mainConfig: backendConfig(`${base}/backend`, backendPort), httpPort: backendPort, onSpawn: (stop) => cleanup.push('backend nginx', stop) });

    // The readers, as Portico runs them: the file reader with its one app and one stream known.
    const known = { streamPorts: new Set<number>(), appsByServerName: new Map([[APP_HOST, 'bench']]) };
    const fronts = {} as Record<Variant, { pid: number; http: number; stream: number; twin: number; counted: () => Promise<{ requests: number; sessions: number }> }>;
    const counterValue = async (metrics: TrafficMetrics): Promise<{ requests: number; sessions: number }> => {
      const requests = (await metrics.appRequests.get()).values.reduce((sum, v) => sum + v.value, 0);
      const sessions = (await metrics.streamSessions.get()).values.reduce((sum, v) => sum + v.value, 0);
      return { requests, sessions };
    };
    for (const [i, variant] of VARIANTS.entries()) {
      const dir = `${base}/${variant}`;
      const http = ports[2 + i * 3] as number;
      const stream = ports[3 + i * 3] as number;
      const twin = ports[4 + i * 3] as number;
      known.streamPorts.add(stream);
      const front = await startOwnNginx({
        nginxBin,
        dir,
        mainConfig: frontConfig(dir, variant, { http, stream, twin, echo: echo.port, backend: backendPort, syslog: syslogPort }),
        servingPort: stream,
        httpPort: http,
        onSpawn: (stop) => cleanup.push(`${variant} nginx`, stop),
      });
      let counted = async (): Promise<{ requests: number; sessions: number }> => ({ requests: 0, sessions: 0 });
      if (variant === 'file') {
        const reader = new TrafficReader({ streamLog: `${dir}/logs/traffic-stream.log`, httpLog: `${dir}/logs/traffic-http.log`, resources: async () => known, log: pino({ level: 'silent' }) });
        await reader.start();
        cleanup.push('file reader', () => reader.stop());
        counted = () => counterValue(reader.metrics);
      } else if (variant === 'syslog') {
        const metrics = new TrafficMetrics();
        metrics.setKnown(known);
        const listener = new SyslogListener((line) => {
          const parsed = line === undefined ? undefined : parseTrafficLine(line);
          if (parsed === undefined) metrics.skip('malformed');
          else if (parsed.kind === 'stream') metrics.stream(parsed);
          else metrics.http(parsed);
        });
        await listener.start(syslogPort);
        cleanup.push('syslog listener', () => listener.stop());
        counted = () => counterValue(metrics);
      }
      fronts[variant] = { pid: front.pid, http, stream, twin, counted };
    }

    const rounds: Round[] = [];
    const runOne = async (variant: Variant, warmUp: boolean): Promise<void> => {
      const front = fronts[variant];
      const workers = await workerPids(front.pid);
      const before = await front.counted();
      // HTTP: the data-plane bench's load.
      const cpuStart = cpuNow();
      const httpMeter = await CpuMeter.begin(workers);
      const r = await runWrk(wrk, { port: front.http, host: APP_HOST, connections: WRK_CONNECTIONS, seconds: warmUp ? 1 : WRK_SECONDS });
      const httpNginxCpuMs = await httpMeter.elapsedMs();
      const ended = performance.now();
      let latencyMs = Number.NaN;
      for (let waited = 0; waited < SETTLE_MAX_MS; waited = performance.now() - ended) {
        const now = await front.counted();
        if (variant === 'none' || now.requests - before.requests >= r.requests) {
          latencyMs = performance.now() - ended;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const readerCpuMs = cpuNow() - cpuStart;
      const afterHttp = await front.counted();
      // Stream connections (in this process: no reader CPU is read over it): the logged stream and
      // its twin in turn, the first of the two alternating from round to round.
      const churnOn = async (port: number): Promise<{ cpuMs: number; connections: number; failed: number }> => {
        const meter = await CpuMeter.begin(workers);
        const c = await churn(port, warmUp ? 200 : CHURN_CONNECTIONS, CHURN_CONCURRENCY, 30_000);
        return { cpuMs: await meter.elapsedMs(), connections: c.connections, failed: c.failed };
      };
      const twinFirst = rounds.length % 2 === 1;
      const twinBefore = twinFirst ? await churnOn(front.twin) : undefined;
      const c = await churnOn(front.stream);
      const twin = twinBefore ?? (await churnOn(front.twin));
      const streamEnded = performance.now();
      while (variant !== 'none' && performance.now() - streamEnded < SETTLE_MAX_MS && (await front.counted()).sessions - afterHttp.sessions < c.connections) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const after = await front.counted();
      if (warmUp) return;
      rounds.push({
        variant,
        requests: r.requests,
        httpNginxCpuMs,
        connections: c.connections,
        streamNginxCpuMs: c.cpuMs,
        twinConnections: twin.connections,
        twinNginxCpuMs: twin.cpuMs,
        readerCpuMs,
        latencyMs,
        lostRequests: variant === 'none' ? 0 : afterHttp.requests - before.requests - r.requests,
        lostSessions: variant === 'none' ? 0 : after.sessions - afterHttp.sessions - c.connections,
        errors: r.errors + c.failed + twin.failed,
      });
      process.stderr.write(`bench-traffic: ${variant}: ${r.requests} requests, ${((httpNginxCpuMs * 1000) / r.requests).toFixed(2)} us nginx/request, ${((readerCpuMs * 1000) / r.requests).toFixed(1)} ms reader/1000, latency ${latencyMs.toFixed(0)} ms, counted - sent ${afterHttp.requests - before.requests - r.requests}\n`);
    };
    for (const variant of VARIANTS) await runOne(variant, true);
    for (let i = 0; i < ROUNDS; i += 1) for (const variant of VARIANTS) await runOne(variant, false);

    const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
    await publish(rounds, load);
    if (process.env.TRAFFIC_BENCH_JSON !== undefined) await writeFile(process.env.TRAFFIC_BENCH_JSON, JSON.stringify({ load, rounds }, null, 1));
  } finally {
    await cleanup.run();
  }
}

const median = (values: number[]): number => percentile(values, 50);

const RESULTS_BEGIN = '<!-- traffic-metrics:begin (bench/traffic-metrics.ts rewrites this part) -->';
const RESULTS_END = '<!-- traffic-metrics:end -->';

/**
 * Prints the report, writes bench/TRAFFIC.md, and puts the same table into bench/RESULTS.md beside
 * the data plane's (5), replacing the one a previous run put there: `make bench` runs this after
 * bench/run.ts has rewritten RESULTS.md.
 */
async function publish(rounds: Round[], load: string): Promise<void> {
  const report = renderReport(rounds, load);
  process.stdout.write(report);
  await writeFile(`${REPO_DIR}bench/TRAFFIC.md`, report);
  const body = report.replace(/^# .*$/m, "### (5b) Per-resource traffic metrics' cost (bench/traffic-metrics.ts; bench/TRAFFIC.md)");
  await putResultsSection(`${REPO_DIR}bench/RESULTS.md`, { begin: RESULTS_BEGIN, end: RESULTS_END }, body, '### (6)');
}

/** TRAFFIC_BENCH_RENDER=a.json,b.json: renders the rounds that TRAFFIC_BENCH_JSON saved (runs one after another), measures nothing. */
async function renderSaved(files: string[]): Promise<void> {
  const saved = await Promise.all(files.map(async (file) => JSON.parse(await readFile(file, 'utf8')) as { load: string; rounds: Round[] }));
  // JSON wrote a NaN latency (never all counted) as null.
  const rounds = saved.flatMap((s) => s.rounds).map((r) => ({ ...r, latencyMs: r.latencyMs ?? Number.NaN }));
  await publish(rounds, saved.map((s) => s.load).join('; '));
}

function renderReport(rounds: Round[], load: string): string {
  const of = (v: Variant): Round[] => rounds.filter((r) => r.variant === v);
  const httpUs = (v: Variant): number => median(of(v).map((r) => (r.httpNginxCpuMs * 1000) / r.requests));
  const streamUs = (v: Variant): number => median(of(v).map((r) => (r.streamNginxCpuMs * 1000) / r.connections));
  const readerMs = (v: Variant): number => median(of(v).map((r) => (r.readerCpuMs * 1000) / r.requests));
  const rate = (v: Variant): number => median(of(v).map((r) => r.requests / WRK_SECONDS));
  // Rounds run none, file, syslog in turn: the ratio within each turn cancels most of the drift of a
  // loaded machine, so its median is the efficiency figure (as the data-plane bench's pairs).
  const pairs = (v: Variant, perUnit: (r: Round) => number): string => {
    const none = of('none');
    const ratios = of(v).map((r, i) => perUnit(none[i] as Round) / perUnit(r));
    return `${median(ratios).toFixed(3)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
  };
  const httpPer = (r: Round): number => r.httpNginxCpuMs / r.requests;
  const twinUs = (v: Variant): number => median(of(v).map((r) => (r.twinNginxCpuMs * 1000) / r.twinConnections));
  // The stream log's efficiency: within one round and one nginx, the twin's CPU per connection over
  // the logged stream's (the two churns ran back to back, on the same workers).
  const twinRatio = (v: Variant): string => {
    const ratios = of(v).map((r) => r.twinNginxCpuMs / r.twinConnections / (r.streamNginxCpuMs / r.connections));
    return `${median(ratios).toFixed(3)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
  };
  const latency = (v: Variant): string => {
    const all = of(v).map((r) => r.latencyMs);
    const never = all.filter((ms) => Number.isNaN(ms)).length;
    const done = all.filter((ms) => !Number.isNaN(ms));
    const shown = done.length === 0 ? '' : `${median(done).toFixed(0)} ms (max ${Math.max(...done).toFixed(0)})`;
    return never === 0 ? shown : `${shown}${shown === '' ? '' : '; '}never all counted in ${never} of ${all.length} rounds`;
  };
  const lines = [
    '# Per-resource traffic metrics: cost (make bench-traffic)',
    '',
    `${new Date().toISOString()}, ${os.cpus().length} CPUs, load average at the end ${load}; ${of('file').length} rounds of each, medians.`,
    `HTTP: wrk, ${WRK_CONNECTIONS} keep-alive connections for ${WRK_SECONDS} s (the data-plane bench's load); stream: ${CHURN_CONNECTIONS} connect + 1 byte + close, ${CHURN_CONCURRENCY} at a time.`,
    '',
    '| per-resource log | request/s | nginx workers CPU per request | efficiency vs none, per turn (range) | nginx workers CPU per stream connection: logged stream / its twin without a log | stream efficiency, twin over logged, per round (range) | reader CPU per 1,000 requests (this process) | latency of the numbers | requests counted − answered to wrk, per round | sessions counted − made | errors |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const v of VARIANTS) {
    const diffs = of(v).map((r) => r.lostRequests);
    const diffsS = of(v).map((r) => r.lostSessions);
    const lost = `${Math.min(...diffs)} to ${Math.max(...diffs)} (of ${median(of(v).map((r) => r.requests))})`;
    const lostS = `${Math.min(...diffsS)} to ${Math.max(...diffsS)} (of ${CHURN_CONNECTIONS})`;
    lines.push(
      `| ${v} | ${rate(v).toFixed(0)} | ${httpUs(v).toFixed(2)} µs | ${pairs(v, httpPer)} | ${streamUs(v).toFixed(1)} / ${twinUs(v).toFixed(1)} µs | ${twinRatio(v)}${v === 'none' ? ' (both without a log: the noise)' : ''} | ${readerMs(v).toFixed(1)} ms | ${v === 'none' ? '–' : latency(v)} | ${v === 'none' ? '–' : lost} | ${v === 'none' ? '–' : lostS} | ${of(v).reduce((s, r) => s + r.errors, 0)} |`,
    );
  }
  lines.push(
    '',
    'A negative count is lost lines; a positive one up to 32 is requests wrk had in flight when it stopped counting (nginx answered and logged them).',
    '',
    "Streams: each nginx serves two streams to the same echo server, the logged one and a twin with `access_log off`; each round churns both back to back (the first of the two alternating), so the twin-over-logged ratio compares the same workers at the same moment. In the `none` nginx neither is logged, so its ratio is the measurement's own noise.",
    '',
    `Reader CPU net of the idle floor (the \`none\` rounds'): file ${(readerMs('file') - readerMs('none')).toFixed(1)} ms, syslog ${(readerMs('syslog') - readerMs('none')).toFixed(1)} ms per 1,000 requests.`,
    '',
  );
  return lines.join('\n');
}

const savedRuns = process.env.TRAFFIC_BENCH_RENDER;
(savedRuns === undefined ? main() : renderSaved(savedRuns.split(','))).catch((error: unknown) => {
  process.stderr.write(`bench-traffic: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
