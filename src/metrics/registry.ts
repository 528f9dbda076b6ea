/**
 * The Prometheus registry of one Portico: its own metrics (apply.ts, state.ts, nginx.ts) and node's
 * default process metrics, on a registry of its own rather than prom-client's global one (several
 * Porticos may run in one process, as the tests run them). Other metrics join through `collectors`:
 * each registers its own on the registry it is handed and may answer a function that stops it.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { EventFeed } from '../events/feed.js';
import { registerApplyMetrics } from './apply.js';
import { registerNginxMetrics, type NginxSources } from './nginx.js';
import { registerStateMetrics, type StateSources } from './state.js';

/** Registers more metrics on Portico's registry (say, traffic per resource); may answer how to stop them. */
export type MetricsCollector = (registry: Registry) => void | (() => void);

export interface MetricsSources extends StateSources, NginxSources {
  events: EventFeed;
}

export interface Metrics {
  registry: Registry;
  /** Stops what keeps counting in the background (the event feed's subscription, the collectors'). */
  close(): void;
}

export function createMetrics(sources: MetricsSources, collectors: MetricsCollector[] = []): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const stops: Array<() => void> = [registerApplyMetrics(registry, sources.events)];
  registerStateMetrics(registry, sources);
  registerNginxMetrics(registry, sources);
  for (const collector of collectors) {
    const stop = collector(registry);
    if (typeof stop === 'function') stops.push(stop);
  }
  return {
    registry,
    close() {
      for (const stop of stops.splice(0)) stop();
    },
  };
}
