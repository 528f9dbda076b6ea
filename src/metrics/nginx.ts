/**
 * nginx as /metrics shows it: whether a master runs, its restarts, the reloads Portico asked for, and
 * stub_status's connection and request numbers, read at scrape time. A stub_status that does not
 * answer within STATUS_TIMEOUT_MS leaves its numbers out and says `portico_nginx_status_up 0`: the
 * scrape itself always answers.
 */
import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
import type { Nginx } from '../nginx/nginx.js';
import { readStubStatus, type StubStatus } from './stub-status.js';

/** How long a scrape waits for stub_status: nginx answers it from memory in well under a millisecond. */
export const STATUS_TIMEOUT_MS = 1000;

export interface NginxSources {
  nginx: Nginx;
  /** Where stub_status answers (undefined: nowhere, and its metrics are absent). */
  statusUrl: string | undefined;
  /** When Portico started: the config nginx runs was loaded then, as far as a scrape before the first reload can tell. */
  startedAt: Date;
}

/** A counter whose value is kept elsewhere, set at each scrape. */
function mirroredCounter(registry: Registry, name: string, help: string, value: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(value());
    },
  });
}

/**
 * A metric of one sample, `pick` of what `read` answers, and none when it answers nothing. prom-client's
 * own Gauge and Counter always write a sample when they have no labels (0 after a reset): a counter
 * read as 0 while nginx's page is unreachable would look like a restart of nginx to Prometheus, and
 * its next real value like a burst. The registry takes any object of this shape (its `get`).
 */
function scrapedMetric(name: string, help: string, type: 'gauge' | 'counter', read: () => Promise<StubStatus | undefined>, pick: (s: StubStatus) => number): Metric {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    async get() {
      const status = await read();
      return { name, help, type, aggregator: 'sum', values: status === undefined ? [] : [{ value: pick(status), labels: {} }] };
    },
    reset() {},
  };
  return metric as unknown as Metric;
}

/** Registers the nginx metrics on `registry`. */
export function registerNginxMetrics(registry: Registry, sources: NginxSources): void {
  const { nginx, statusUrl } = sources;
  new Gauge({
    name: 'portico_nginx_up',
    help: '1 while an nginx master runs (managed: Portico\'s, being restarted when 0; external: the pid file\'s).',
    registers: [registry],
    async collect() {
      this.set((await nginx.process.masterPid()) === undefined ? 0 : 1);
    },
  });
  mirroredCounter(registry, 'portico_nginx_restarts_total', 'Times Portico restarted a managed nginx master that died (always 0 in external mode).', () => nginx.process.restarts);
  mirroredCounter(registry, 'portico_reloads_total', 'Reloads Portico asked of nginx (rollbacks\' included).', () => nginx.reloads.total);
  mirroredCounter(registry, 'portico_reload_failures_total', 'Of the reloads, those nginx refused or that did not verify (then rolled back).', () => nginx.reloads.failed);
  new Gauge({
    name: 'portico_config_last_reload_successful',
    help: '1 when the last reload of a change succeeded (or none happened yet), 0 when it failed (the reload that then restores the previous files does not make it 1).',
    registers: [registry],
    collect() {
      this.set(nginx.reloads.lastOk ? 1 : 0);
    },
  });
  new Gauge({
    name: 'portico_config_last_reload_success_timestamp_seconds',
    help: 'When the last successful reload of a change was verified, in seconds since the epoch (before the first one: when Portico started).',
    registers: [registry],
    collect() {
      const at = nginx.reloads.lastSuccessAt === 0 ? sources.startedAt.getTime() : nginx.reloads.lastSuccessAt;
      this.set(at / 1000);
    },
  });
  new Gauge({
    name: 'portico_nginx_info',
    help: 'Always 1; the labels say which nginx runs and how Portico runs it.',
    labelNames: ['version', 'mode'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      this.set({ version: (await nginx.describe()).version, mode: nginx.process.mode }, 1);
    },
  });
  if (statusUrl === undefined) return;

  // One read of stub_status per scrape, shared by its metrics (collected at once).
  let inFlight: Promise<StubStatus | undefined> | undefined;
  const status = (): Promise<StubStatus | undefined> => {
    inFlight ??= readStubStatus(statusUrl, STATUS_TIMEOUT_MS).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  new Gauge({
    name: 'portico_nginx_status_up',
    help: '1 when nginx\'s stub_status answered this scrape; 0 when it did not (its numbers are then absent).',
    registers: [registry],
    async collect() {
      this.set((await status()) === undefined ? 0 : 1);
    },
  });
  const gauge = (name: string, help: string, pick: (s: StubStatus) => number): void => {
    registry.registerMetric(scrapedMetric(name, help, 'gauge', status, pick));
  };
  const counter = (name: string, help: string, pick: (s: StubStatus) => number): void => {
    registry.registerMetric(scrapedMetric(name, help, 'counter', status, pick));
  };
  gauge('portico_nginx_connections_active', 'Client connections open now, waiting ones included (stub_status "Active connections").', (s) => s.active);
  gauge('portico_nginx_connections_reading', 'Connections whose request header nginx is reading (stub_status "Reading").', (s) => s.reading);
  gauge('portico_nginx_connections_writing', 'Connections nginx is answering (stub_status "Writing"; the scrape\'s own among them).', (s) => s.writing);
  gauge('portico_nginx_connections_waiting', 'Idle keep-alive connections (stub_status "Waiting").', (s) => s.waiting);
  counter('portico_nginx_connections_accepted_total', 'Client connections nginx accepted since its master started (stub_status "accepts"; HTTP servers and streams alike).', (s) => s.accepted);
  counter('portico_nginx_connections_handled_total', 'Of the accepted connections, those handled (fewer only when nginx ran out of worker_connections).', (s) => s.handled);
  counter('portico_nginx_http_requests_total', 'HTTP requests nginx served since its master started (stub_status "requests").', (s) => s.requests);
}
