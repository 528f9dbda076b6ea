/**
 * TrafficReader: feeds the per-resource traffic metrics from the two logs nginx writes for them
 * (the managed main config's `access_log ... portico_traffic buffer=64k flush=1s` in `stream {}`
 * and in `http {}`), polled once a second. Which streams and apps exist is read from Portico's
 * stores at start, after every batch that changed them, and every minute (a hand edit), so that
 * only existing resources become labels and a deleted one's series go.
 */
import type { Logger } from 'pino';
import type { EventFeed } from '../events/feed.js';
import { parseTrafficLine, type TrafficLine } from './line.js';
import { TrafficMetrics, type KnownResources, type TrafficSource } from './metrics.js';
import { LogTail } from './tail.js';

export interface TrafficReaderOptions {
  /** The stream and HTTP traffic logs. */
  streamLog: string;
  httpLog: string;
  /** Reads which streams and apps exist now. */
  resources: () => Promise<KnownResources>;
  /** Batches: each applied one may have added or removed resources. */
  events?: EventFeed;
  /** Subscribes to nginx's reopens of its logs (Nginx.onLogsReopened); answers the unsubscribe. */
  onLogsReopened?: (listener: () => Promise<void>) => () => void;
  log: Logger;
  pollMs?: number;
  /** How long a renamed log is read on after it last grew: old workers write to it until they exit. */
  drainMs?: number;
  /** How often the resources are read again without a batch (a hand edit of the files). */
  refreshMs?: number;
}

/** nginx flushes each log's buffer at least once a second (flush=1s). */
export const TRAFFIC_POLL_MS = 1000;

export class TrafficReader implements TrafficSource {
  readonly metrics = new TrafficMetrics();
  private readonly tails: LogTail[];
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeReopen: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stale = true;
  private refreshedAt = 0;
  /** Lines of this poll naming a resource not known yet: counted once the resources are read again. */
  private unknown: TrafficLine[] = [];
  private unknownRefreshAt = 0;
  private stopped = false;

  constructor(private readonly options: TrafficReaderOptions) {
    const sink = {
      lines: (lines: string[]) => this.count(lines),
      oversized: () => this.metrics.skip('oversized'),
    };
    // Old workers live up to worker_shutdown_timeout after a reload (30 s by default).
    const drainMs = options.drainMs ?? 60_000;
    this.tails = [new LogTail(options.streamLog, sink, drainMs), new LogTail(options.httpLog, sink, drainMs)];
  }

  /** Reads the resources and the logs' current ends, then polls. */
  async start(): Promise<void> {
    this.unsubscribe = this.options.events?.subscribe((event) => {
      if (event.type === 'apply' && event.resource !== 'certificate' && event.outcome !== 'unchanged' && event.outcome !== 'rejected') this.stale = true;
    });
    this.unsubscribeReopen = this.options.onLogsReopened?.(() => this.pollNow());
    await this.poll();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    // A poll that stopped at its bound goes on at once.
    const behind = this.tails.some((tail) => tail.behind);
    this.timer = setTimeout(() => {
      void this.poll().finally(() => this.schedule());
    }, behind ? 0 : (this.options.pollMs ?? TRAFFIC_POLL_MS));
    this.timer.unref();
  }

  /**
   * A read of both logs that starts now, after any running one: after nginx reopened its logs (at
   * Portico's request) the new files are opened at once, before a next rotation could rename them
   * unseen. A file created and renamed away between two polls (a rotation that signals nginx
   * directly, twice within a second) would be missed.
   */
  async pollNow(): Promise<void> {
    await this.running;
    await this.poll();
  }

  /** One read of both logs (one at a time: a caller during a poll shares it). Never throws. */
  poll(): Promise<void> {
    this.running ??= this.pollOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pollOnce(): Promise<void> {
    try {
      const now = performance.now();
      if (this.stale || now - this.refreshedAt > (this.options.refreshMs ?? 60_000)) await this.refresh(now);
      for (const tail of this.tails) await tail.poll();
      // A line of a stream or app created a moment ago can come before the batch's event: the
      // resources are read again (at most every 5 s; the default server's requests never ask).
      const unknown = this.unknown;
      this.unknown = [];
      if (unknown.length > 0 && (this.stale || now - this.unknownRefreshAt > 5000)) {
        this.unknownRefreshAt = now;
        await this.refresh(now);
      }
      this.metrics.recordBatch(unknown);
    } catch (error) {
      this.options.log.warn({ err: error }, 'reading the traffic logs failed; trying again at the next poll');
    }
  }

  private async refresh(now: number): Promise<void> {
    this.stale = false;
    this.refreshedAt = now;
    this.metrics.setKnown(await this.options.resources());
  }

  private count(lines: string[]): void {
    const known: TrafficLine[] = [];
    let malformed = 0;
    for (const line of lines) {
      const parsed = parseTrafficLine(line);
      if (parsed === undefined) malformed += 1;
      else if (this.metrics.knows(parsed) || (parsed.kind === 'http' && parsed.serverName === '')) known.push(parsed);
      else this.unknown.push(parsed);
    }
    if (malformed > 0) this.metrics.skip('malformed', malformed);
    this.metrics.recordBatch(known);
  }

  /** Stops polling, reads what the logs hold once more, and closes them. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.unsubscribe?.();
    this.unsubscribeReopen?.();
    await this.running;
    for (const tail of this.tails) await tail.stop();
  }
}

/** The resources Portico has, from its stores: every stream's port, every app's server names. */
export async function knownResources(stores: {
  tree: { read(): Promise<{ streams: Map<number, unknown> }> };
  apps: { read(): Promise<{ apps: Map<string, { name: string; serverNames: string[] }> }> };
}): Promise<KnownResources> {
  const [tree, apps] = await Promise.all([stores.tree.read(), stores.apps.read()]);
  const appsByServerName = new Map<string, string>();
  for (const app of apps.apps.values()) for (const name of app.serverNames) appsByServerName.set(name, app.name);
  return { streamPorts: new Set(tree.streams.keys()), appsByServerName };
}
