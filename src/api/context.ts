/**
 * What the routes are handed: the parts of a running Portico they call into.
 */
import type { AcmeManager } from '../acme/manager.js';
import type { Applier } from '../apply/applier.js';
import type { EventFeed } from '../events/feed.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Arrivals } from '../apply/arrivals.js';
import type { PortAllocator } from '../apply/port-allocator.js';
import type { Nginx } from '../nginx/nginx.js';
import type { Registry } from 'prom-client';
import type { Settings } from '../settings.js';
import type { AppStore } from '../store/apps.js';
import type { CertStore } from '../store/certs.js';
import type { ConfigTree } from '../store/tree.js';
import type { TrafficHistory } from '../traffic/history.js';
import type { TrafficReader } from '../traffic/reader.js';

export interface Portico {
  settings: Settings;
  tree: ConfigTree;
  apps: AppStore;
  certs: CertStore;
  applier: Applier;
  /** The requests on their way to the applier's queue, which a batch about to start waits for. */
  arrivals: Arrivals;
  nginx: Nginx;
  /** Hands out free ports (reserving them for a later create) and counts the reservations. */
  ports: PortAllocator;
  /** What happened to the edge: batches and nginx restarts (events/feed.ts). */
  events: EventFeed;
  /** The Prometheus registry /metrics answers (metrics/registry.ts). */
  metrics: Registry;
  /**
   * The per-resource traffic metrics' reader (TRAFFIC_METRICS on), or undefined when off. The
   * /metrics route registers them: `registerTrafficMetrics(registry, portico.traffic)` (traffic/metrics.ts).
   */
  traffic: TrafficReader | undefined;
  /** Each stream's and app's traffic over the last minutes, sampled from `traffic` (traffic/history.ts); undefined when it is off. */
  trafficHistory: TrafficHistory | undefined;
  /** Managed certificates: their ACME orders and renewals (acme/manager.ts). */
  acme: AcmeManager;
  /** STORE=etcd: this node's part in the fleet, through which every mutation goes; undefined with the file store. */
  fleet: Fleet | undefined;
  version: string;
  startedAt: Date;
}
