/**
 * TrafficHistory: each stream's and app's traffic over the last minutes, for the console's charts.
 * Every `intervalMs` it reads the per-resource counters (metrics.ts) and keeps, in a ring of
 * `samples` entries, what moved since the last read: per stream the bytes in and out and the
 * sessions, per app the requests by status class. A resource that did not move costs nothing in the
 * ring (5,000 idle streams keep only their last totals, for the next delta; 5,000 busy ones take 28
 * bytes each a sample, 12.6 MB over the default window). A deleted one's history goes as its series
 * do (TrafficMetrics.onForget), and a counter that went down (counted again from zero) is read as
 * having restarted: its delta is its new value.
 */
import type { Logger } from 'pino';
import { CODE_CLASSES, type CodeClass, type ForgottenResources, type TrafficMetrics } from './metrics.js';
import { StreamDeltas, type StreamTraffic } from './stream-deltas.js';

export type { StreamTraffic } from './stream-deltas.js';

/** An app's requests in one interval, or over the window, by status class. */
export type AppTraffic = Record<CodeClass, number>;

/** What the counters say now, per resource that has series. */
export interface TrafficTotals {
  streams: Map<number, StreamTraffic>;
  apps: Map<string, AppTraffic>;
}

/** One interval: when it ended, and what moved in it. */
interface Sample {
  at: number;
  streams: StreamDeltas;
  apps: Map<string, AppTraffic>;
}

/** A resource's history as the API answers it: its totals over the window and the intervals it moved in. */
export interface ResourceHistory<T> {
  totals: T;
  series: Array<T & { at: string }>;
}

/** The window the ring holds: its first interval's start and its last sample. */
export interface HistoryWindow {
  intervalMs: number;
  from: string;
  to: string;
}

/** 10 s: the default TRAFFIC_HISTORY_INTERVAL. */
export const HISTORY_INTERVAL_MS = 10_000;
/** 90 samples: 15 minutes at the default interval. */
export const HISTORY_SAMPLES = 90;

/** The per-resource counters' values now (prom-client's get(): one array per metric). */
export async function readTotals(metrics: TrafficMetrics): Promise<TrafficTotals> {
  const [bytes, sessions, requests] = await Promise.all([metrics.streamBytes.get(), metrics.streamSessions.get(), metrics.appRequests.get()]);
  const streams = new Map<number, StreamTraffic>();
  const stream = (label: string | number | undefined): StreamTraffic => {
    const port = Number(label);
    let entry = streams.get(port);
    if (entry === undefined) {
      entry = { bytesIn: 0, bytesOut: 0, sessions: 0 };
      streams.set(port, entry);
    }
    return entry;
  };
  for (const { labels, value } of bytes.values) {
    if (labels.direction === 'in') stream(labels.port).bytesIn += value;
    else if (labels.direction === 'out') stream(labels.port).bytesOut += value;
  }
  for (const { labels, value } of sessions.values) stream(labels.port).sessions += value;
  const apps = new Map<string, AppTraffic>();
  for (const { labels, value } of requests.values) {
    const code = labels.code as CodeClass;
    if (typeof labels.app !== 'string' || !CODE_CLASSES.includes(code)) continue;
    let entry = apps.get(labels.app);
    if (entry === undefined) {
      entry = noRequests();
      apps.set(labels.app, entry);
    }
    entry[code] += value;
  }
  return { streams, apps };
}

const noRequests = (): AppTraffic => ({ '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 });
const noStreamTraffic = (): StreamTraffic => ({ bytesIn: 0, bytesOut: 0, sessions: 0 });

const STREAM_FIELDS = ['bytesIn', 'bytesOut', 'sessions'] as const;

/**
 * The change of each field from `last` to `now`, or undefined when nothing moved. A field that went
 * down means the resource's counters restarted from zero (its series removed and made again): then
 * every field's change is its new value.
 */
function moved<K extends string>(fields: readonly K[], now: Record<K, number>, last: Record<K, number> | undefined): Record<K, number> | undefined {
  const restarted = last === undefined || fields.some((field) => now[field] < last[field]);
  let any = false;
  const change = {} as Record<K, number>;
  for (const field of fields) {
    const value = restarted ? now[field] : now[field] - last[field];
    change[field] = value;
    if (value !== 0) any = true;
  }
  return any ? change : undefined;
}

export interface TrafficHistoryOptions {
  /** Reads the counters (readTotals of the reader's metrics). */
  read: () => Promise<TrafficTotals>;
  /** Subscribes to deleted resources (TrafficMetrics.onForget); answers the unsubscribe. */
  onForget?: (listener: (gone: ForgottenResources) => void) => () => void;
  intervalMs?: number;
  samples?: number;
  log?: Logger;
  now?: () => number;
}

export class TrafficHistory {
  readonly intervalMs: number;
  readonly capacity: number;
  private readonly ring: Sample[] = [];
  /** The counters at the last read, for the next delta. */
  private last: TrafficTotals = { streams: new Map(), apps: new Map() };
  /** Where the window starts: the baseline read, then the time of the last sample the ring let go. */
  private from: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Resources deleted while a read was under way: not taken from that read. */
  private forgottenDuringRead: { ports: Set<number>; apps: Set<string> } | undefined;
  private readonly unsubscribe: (() => void) | undefined;
  private readonly now: () => number;

  constructor(private readonly options: TrafficHistoryOptions) {
    this.intervalMs = options.intervalMs ?? HISTORY_INTERVAL_MS;
    this.capacity = options.samples ?? HISTORY_SAMPLES;
    this.now = options.now ?? Date.now;
    this.from = this.now();
    this.unsubscribe = options.onForget?.((gone) => this.forget(gone));
  }

  /** The history of a reader's metrics, sampled by them and dropping what they drop. */
  static of(metrics: TrafficMetrics, options: Omit<TrafficHistoryOptions, 'read' | 'onForget'> = {}): TrafficHistory {
    return new TrafficHistory({ ...options, read: () => readTotals(metrics), onForget: (listener) => metrics.onForget(listener) });
  }

  /** Reads the counters as they are (the baseline: what was counted before is not in the window), then samples every interval. */
  async start(): Promise<void> {
    await this.baseline();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  /** Reads the counters as they are: the next sample counts from here, and the window starts now. */
  async baseline(): Promise<void> {
    this.last = await this.options.read();
    this.from = this.now();
  }

  /** Stops sampling, after a sample under way; the history stays readable. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    await this.running;
  }

  /** One sample: what moved since the last read, as one entry of the ring. Never throws; one at a time. */
  sample(): Promise<void> {
    this.running ??= this.sampleOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async sampleOnce(): Promise<void> {
    const forgotten = { ports: new Set<number>(), apps: new Set<string>() };
    this.forgottenDuringRead = forgotten;
    let now: TrafficTotals;
    try {
      now = await this.options.read();
    } catch (error) {
      this.options.log?.warn({ err: error }, 'reading the traffic counters failed; the next interval counts what this one missed');
      return;
    } finally {
      this.forgottenDuringRead = undefined;
    }
    for (const port of forgotten.ports) now.streams.delete(port);
    for (const app of forgotten.apps) now.apps.delete(app);
    const streams = new Map<number, StreamTraffic>();
    for (const [port, totals] of now.streams) {
      const change = moved(STREAM_FIELDS, totals, this.last.streams.get(port));
      if (change !== undefined) streams.set(port, change);
    }
    const sample: Sample = { at: this.now(), streams: StreamDeltas.of(streams), apps: new Map() };
    for (const [app, totals] of now.apps) {
      const change = moved(CODE_CLASSES, totals, this.last.apps.get(app));
      if (change !== undefined) sample.apps.set(app, change);
    }
    this.last = now;
    this.ring.push(sample);
    while (this.ring.length > this.capacity) this.from = this.ring.shift()!.at;
  }

  /** Drops the history of deleted resources; a stream created again on the port starts afresh. */
  private forget(gone: ForgottenResources): void {
    for (const port of gone.ports) {
      this.last.streams.delete(port);
      this.forgottenDuringRead?.ports.add(port);
    }
    // Each sample copied once, whatever the number of streams gone (a bulk delete of thousands).
    const ports = new Set(gone.ports);
    if (ports.size > 0) for (const sample of this.ring) sample.streams = sample.streams.without(ports);
    for (const app of gone.apps) {
      this.last.apps.delete(app);
      this.forgottenDuringRead?.apps.add(app);
      for (const sample of this.ring) sample.apps.delete(app);
    }
  }

  /** The window the ring holds now. */
  window(): HistoryWindow {
    const last = this.ring.at(-1);
    return { intervalMs: this.intervalMs, from: new Date(this.from).toISOString(), to: new Date(last?.at ?? this.from).toISOString() };
  }

  /** Each port's history over the window (a port without traffic, or without a stream: zero totals, no series). */
  streams(ports: readonly number[]): Array<{ port: number } & ResourceHistory<StreamTraffic>> {
    return ports.map((port) => ({ port, ...this.historyOf(STREAM_FIELDS, (sample) => sample.streams.get(port), noStreamTraffic) }));
  }

  /** Each app's history over the window, by status class. */
  apps(names: readonly string[]): Array<{ name: string } & ResourceHistory<AppTraffic>> {
    return names.map((name) => ({ name, ...this.historyOf(CODE_CLASSES, (sample) => sample.apps.get(name), noRequests) }));
  }

  private historyOf<K extends string>(fields: readonly K[], of: (sample: Sample) => Record<K, number> | undefined, zero: () => Record<K, number>): ResourceHistory<Record<K, number>> {
    const totals = zero();
    const series: Array<Record<K, number> & { at: string }> = [];
    for (const sample of this.ring) {
      const change = of(sample);
      if (change === undefined) continue;
      for (const field of fields) totals[field] += change[field];
      series.push({ at: new Date(sample.at).toISOString(), ...change });
    }
    return { totals, series };
  }

  /** How many resource entries the ring holds in all (what it costs, for tests and the bench). */
  entries(): number {
    return this.ring.reduce((n, sample) => n + sample.streams.size + sample.apps.size, 0);
  }

  /** How many samples the ring holds. */
  get length(): number {
    return this.ring.length;
  }
}
