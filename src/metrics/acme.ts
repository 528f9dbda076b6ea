/**
 * Managed certificates (acme/manager.ts) in /metrics: every order's outcome, counted from the event
 * feed as the apply metrics are, and each certificate's ACME status and next renewal, read from its
 * state when scraped. `portico_certificate_not_after_seconds` (state.ts) covers their expiry.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AcmeManager } from '../acme/manager.js';
import { ACME_STATUSES } from '../acme/state.js';
import type { EventFeed } from '../events/feed.js';
import { ACME_EVENTS } from '../model/event.js';

/** Registers the ACME metrics; answers the function that stops counting the feed. */
export function registerAcmeMetrics(registry: Registry, events: EventFeed, acme: Pick<AcmeManager, 'list'>): () => void {
  const orders = new Counter({
    name: 'portico_acme_orders_total',
    help: 'ACME orders by what became of them: ordered (sent to the CA), issued (a first certificate), renewed, failed (the certificate served is unchanged; alert on increase()).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of ACME_EVENTS) orders.inc({ outcome }, 0);
  new Gauge({
    name: 'portico_acme_certificate_status',
    help: 'Each managed certificate\'s ACME status: 1 on the series of its status (pending, valid, renewing, failed), 0 on the others.',
    labelNames: ['id', 'status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const record of await acme.list()) {
        for (const status of ACME_STATUSES) this.set({ id: record.id, status }, record.status === status ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'portico_acme_next_order_seconds',
    help: 'When Portico orders each managed certificate next (its renewal, or the retry after a failure), in seconds since the epoch.',
    labelNames: ['id'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const record of await acme.list()) if (record.nextRenewal !== null) this.set({ id: record.id }, Date.parse(record.nextRenewal) / 1000);
    },
  });
  return events.subscribe((event) => {
    if (event.type === 'acme') orders.inc({ outcome: event.what });
  });
}
