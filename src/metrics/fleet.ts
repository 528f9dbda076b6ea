/**
 * The fleet (STORE=etcd, fleet/fleet.ts) in /metrics: whether this node reaches etcd, the revision it
 * applied, what it could not apply, and each live node's lag as this node sees it. Registered with the
 * file store too, where they have no series, so that one set of dashboards fits both.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Fleet } from '../fleet/fleet.js';

export function registerFleetMetrics(registry: Registry, fleet: Pick<Fleet, 'snapshot'> | undefined): void {
  new Gauge({
    name: 'portico_fleet_stale',
    help: 'STORE=etcd: 1 while this node cannot reach etcd (reads are stale-marked, changes answer 503), else 0.',
    registers: [registry],
    collect() {
      this.reset();
      if (fleet !== undefined) this.set(fleet.snapshot().stale ? 1 : 0);
    },
  });
  new Gauge({
    name: 'portico_fleet_applied_revision',
    help: 'STORE=etcd: the revision of the fleet\'s table this node has applied.',
    registers: [registry],
    collect() {
      this.reset();
      if (fleet !== undefined) this.set(fleet.snapshot().applied);
    },
  });
  new Gauge({
    name: 'portico_fleet_apply_errors',
    help: 'STORE=etcd: resources of the fleet this node could not apply (it keeps its old config for them and tries again at each revision; alert on > 0).',
    registers: [registry],
    collect() {
      this.reset();
      if (fleet !== undefined) this.set(fleet.snapshot().errors);
    },
  });
  new Gauge({
    name: 'portico_fleet_node_lag',
    help: 'STORE=etcd: revisions each live node is behind the newest change this node knows of.',
    labelNames: ['node'] as const,
    registers: [registry],
    collect() {
      this.reset();
      if (fleet !== undefined) for (const { node, lag } of fleet.snapshot().lags) this.set({ node }, lag);
    },
  });
}
