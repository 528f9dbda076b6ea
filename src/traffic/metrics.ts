/**
 * The per-resource traffic metrics: prom-client objects registered in no registry of their own, so
 * that whoever serves /metrics registers them in theirs (registerTrafficMetrics). Labels come only
 * from resources Portico knows: a stream's port as a number, an app's name as Portico named it; a
 * line naming anything else is counted as skipped, and a resource's series are removed once it is
 * gone, so the number of series is bounded by the streams and apps that exist.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { HttpRequest, StreamSession } from './line.js';

export const SKIP_REASONS = ['malformed', 'oversized', 'unknown_resource'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type CodeClass = (typeof CODE_CLASSES)[number];
const PROTOCOLS = ['tcp', 'udp'] as const;
const DIRECTIONS = ['in', 'out'] as const;

/** The resources that may be labels: stream ports, and each app's server names to its name. */
export interface KnownResources {
  streamPorts: ReadonlySet<number>;
  /** Every server name of every app, to the app's name. */
  appsByServerName: ReadonlyMap<string, string>;
}

/** The streams and apps whose series setKnown just removed: they are gone. */
export interface ForgottenResources {
  ports: number[];
  apps: string[];
}

export class TrafficMetrics {
  readonly streamSessions = new Counter({
    name: 'portico_stream_sessions_total',
    help: 'Sessions (TCP connections, UDP sessions) a stream served, by its port, counted when they end (from nginx\'s stream log)',
    labelNames: ['port', 'protocol'] as const,
    registers: [],
  });
  readonly streamBytes = new Counter({
    name: 'portico_stream_bytes_total',
    help: 'Bytes through a stream, by port: in = received from clients ($bytes_received), out = sent to clients ($bytes_sent), counted when a session ends',
    labelNames: ['port', 'direction'] as const,
    registers: [],
  });
  readonly appRequests = new Counter({
    name: 'portico_app_requests_total',
    help: 'HTTP requests an app answered (HTTP/1.1, HTTP/2 and HTTP/3), by status class',
    labelNames: ['app', 'code'] as const,
    registers: [],
  });
  readonly appSeconds = new Histogram({
    name: 'portico_app_request_seconds',
    help: 'Time nginx took over an app\'s requests ($request_time: first byte read to last byte sent)',
    labelNames: ['app'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [],
  });
  readonly linesRead = new Counter({
    name: 'portico_traffic_lines_total',
    help: 'Lines read from nginx\'s per-resource traffic logs',
    registers: [],
  });
  readonly linesSkipped = new Counter({
    name: 'portico_traffic_lines_skipped_total',
    help: 'Traffic log lines not counted: malformed (not Portico\'s format), oversized, or naming no stream or app Portico has (default server, a resource just deleted)',
    labelNames: ['reason'] as const,
    registers: [],
  });

  private known: KnownResources = { streamPorts: new Set(), appsByServerName: new Map() };
  /** The ports and apps that have series, to remove them when their resource goes. */
  private readonly labelledPorts = new Set<number>();
  private readonly labelledApps = new Set<string>();
  private readonly forgetListeners = new Set<(gone: ForgottenResources) => void>();

  constructor() {
    for (const reason of SKIP_REASONS) this.linesSkipped.inc({ reason }, 0);
    this.linesRead.inc(0);
  }

  /** Every metric, to register in a registry. */
  all(): Array<Counter<string> | Histogram<string>> {
    return [this.streamSessions, this.streamBytes, this.appRequests, this.appSeconds, this.linesRead, this.linesSkipped];
  }

  /**
   * Calls `listener` (synchronously, inside setKnown) with the resources whose series are removed,
   * so that what is kept of them elsewhere (traffic/history.ts) goes too. Answers the unsubscribe.
   */
  onForget(listener: (gone: ForgottenResources) => void): () => void {
    this.forgetListeners.add(listener);
    return () => this.forgetListeners.delete(listener);
  }

  /** Sets which resources exist, and drops the series of those that no longer do. */
  setKnown(known: KnownResources): void {
    this.known = known;
    const gone: ForgottenResources = { ports: [], apps: [] };
    for (const port of [...this.labelledPorts]) {
      if (known.streamPorts.has(port)) continue;
      const label = String(port);
      for (const protocol of PROTOCOLS) this.streamSessions.remove({ port: label, protocol });
      for (const direction of DIRECTIONS) this.streamBytes.remove({ port: label, direction });
      this.labelledPorts.delete(port);
      gone.ports.push(port);
    }
    const apps = new Set(known.appsByServerName.values());
    for (const app of [...this.labelledApps]) {
      if (apps.has(app)) continue;
      for (const code of CODE_CLASSES) this.appRequests.remove({ app, code });
      this.appSeconds.remove({ app });
      this.labelledApps.delete(app);
      gone.apps.push(app);
    }
    if (gone.ports.length > 0 || gone.apps.length > 0) for (const listener of this.forgetListeners) listener(gone);
  }

  /** Whether the stream or app a line names exists, as of the last setKnown. */
  knows(line: StreamSession | HttpRequest): boolean {
    return line.kind === 'stream' ? this.known.streamPorts.has(line.port) : this.known.appsByServerName.has(line.serverName);
  }

  skip(reason: SkipReason, lines = 1): void {
    this.linesRead.inc(lines);
    this.linesSkipped.inc({ reason }, lines);
  }

  /**
   * Counts lines of known resources in one go: the counters are added to once per series (a
   * prom-client inc hashes its labels each time), the histogram still per request.
   */
  recordBatch(lines: ReadonlyArray<StreamSession | HttpRequest>): void {
    if (lines.length === 0) return;
    const sums = new Map<string, { port: number; protocol: 'tcp' | 'udp'; sessions: number; received: number; sent: number }>();
    const requests = new Map<string, { app: string; code: string; n: number }>();
    let unknown = 0;
    for (const line of lines) {
      if (line.kind === 'stream') {
        if (!this.known.streamPorts.has(line.port)) {
          unknown += 1;
          continue;
        }
        const key = `${line.port}/${line.protocol}`;
        const sum = sums.get(key);
        if (sum === undefined) sums.set(key, { port: line.port, protocol: line.protocol, sessions: 1, received: line.received, sent: line.sent });
        else {
          sum.sessions += 1;
          sum.received += line.received;
          sum.sent += line.sent;
        }
      } else {
        const app = this.known.appsByServerName.get(line.serverName);
        if (app === undefined) {
          unknown += 1;
          continue;
        }
        const code = `${Math.floor(line.status / 100)}xx`;
        const key = `${app}/${code}`;
        const count = requests.get(key);
        if (count === undefined) requests.set(key, { app, code, n: 1 });
        else count.n += 1;
        this.labelledApps.add(app);
        this.appSeconds.observe({ app }, line.seconds);
      }
    }
    this.linesRead.inc(lines.length);
    if (unknown > 0) this.linesSkipped.inc({ reason: 'unknown_resource' }, unknown);
    for (const sum of sums.values()) {
      const port = String(sum.port);
      this.labelledPorts.add(sum.port);
      this.streamSessions.inc({ port, protocol: sum.protocol }, sum.sessions);
      this.streamBytes.inc({ port, direction: 'in' }, sum.received);
      this.streamBytes.inc({ port, direction: 'out' }, sum.sent);
    }
    for (const { app, code, n } of requests.values()) this.appRequests.inc({ app, code }, n);
  }

  stream(session: StreamSession): void {
    this.linesRead.inc();
    if (!this.known.streamPorts.has(session.port)) {
      this.linesSkipped.inc({ reason: 'unknown_resource' });
      return;
    }
    const port = String(session.port);
    this.labelledPorts.add(session.port);
    this.streamSessions.inc({ port, protocol: session.protocol });
    this.streamBytes.inc({ port, direction: 'in' }, session.received);
    this.streamBytes.inc({ port, direction: 'out' }, session.sent);
  }

  http(request: HttpRequest): void {
    this.linesRead.inc();
    const app = this.known.appsByServerName.get(request.serverName);
    if (app === undefined) {
      this.linesSkipped.inc({ reason: 'unknown_resource' });
      return;
    }
    this.labelledApps.add(app);
    this.appRequests.inc({ app, code: `${Math.floor(request.status / 100)}xx` });
    this.appSeconds.observe({ app }, request.seconds);
  }
}

/** What registerTrafficMetrics needs of a traffic reader. */
export interface TrafficSource {
  readonly metrics: TrafficMetrics;
}

/**
 * Registers the per-resource traffic metrics in `registry` (the /metrics route's). They keep their
 * counts from the reader's start, whenever they are registered.
 */
export function registerTrafficMetrics(registry: Registry, source: TrafficSource): void {
  for (const metric of source.metrics.all()) registry.registerMetric(metric);
}
