/**
 * TrafficReader: feeds the per-resource traffic metrics from the two logs nginx writes for them
 * (the managed main config's `access_log ... portico_traffic buffer=64k flush=1s` in `stream {}`
 * and in `http {}`), polled once a second. Which streams and apps exist is read from Portico's
 * stores at start, after every batch that changed them, and every minute (a hand edit), so that
 * only existing resources become labels and a deleted one's series go.
 */
import type { Logger } from 'pino';
import type { EventFeed } from '../events/feed.js';
import { parseTrafficLine } from './line.js';
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
  private running: Promise<void> | undefined;
  private stale = true;
  private refreshedAt = 0;
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
    await this.poll();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.poll().finally(() => this.schedule());
    }, this.options.pollMs ?? TRAFFIC_POLL_MS);
    this.timer.unref();
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
      if (this.stale || now - this.refreshedAt > (this.options.refreshMs ?? 60_000)) {
        this.stale = false;
        this.refreshedAt = now;
        this.metrics.setKnown(await this.options.resources());
      }
      for (const tail of this.tails) await tail.poll();
    } catch (error) {
      this.options.log.warn({ err: error }, 'reading the traffic logs failed; trying again at the next poll');
    }
  }

  private count(lines: string[]): void {
    for (const line of lines) {
      const parsed = parseTrafficLine(line);
      if (parsed === undefined) this.metrics.skip('malformed');
      else if (parsed.kind === 'stream') this.metrics.stream(parsed);
      else this.metrics.http(parsed);
    }
  }

  /** Stops polling, reads what the logs hold once more, and closes them. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.unsubscribe?.();
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
