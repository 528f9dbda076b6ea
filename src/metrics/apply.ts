/**
 * What the applier did, counted from the event feed (events/feed.ts): batches and changes by kind
 * and outcome, and how long each phase of a batch took. The feed is the one record of batches, so
 * /metrics and /v1/events never disagree.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ApplyEventBody, ChangeOutcome, EventFeed } from '../events/feed.js';

const KINDS: Array<ApplyEventBody['resource']> = ['stream', 'app', 'certificate'];
const BATCH_OUTCOMES: Array<ApplyEventBody['outcome']> = ['applied', 'unchanged', 'rejected', 'rolled-back', 'failed'];
const CHANGE_OUTCOMES: Array<ChangeOutcome['outcome']> = ['applied', 'unchanged', 'rejected'];

/**
 * Seconds, from half a millisecond (a plan, a swap) to ten seconds (an `nginx -t` of a large tree, a
 * reload that waits for old workers to stop accepting, NGINX_TIMEOUT_MS's default).
 */
export const PHASE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Registers the apply metrics on `registry` and counts every batch `events` records from now on; answers the function that stops counting. */
export function registerApplyMetrics(registry: Registry, events: EventFeed): () => void {
  const batches = new Counter({
    name: 'portico_apply_batches_total',
    help: 'Batches of changes the applier ended, by kind of resource and outcome (applied, unchanged, rejected, rolled-back, failed).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const changes = new Counter({
    name: 'portico_apply_changes_total',
    help: 'Changes (API requests that create, replace or remove a resource) by kind of resource and what became of each (applied, unchanged, rejected).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const phases = new Histogram({
    name: 'portico_apply_phase_seconds',
    help: 'Time each phase of a batch took (read, plan, stage, test, swap, reload, commit; isolate, retest and rollback when a batch fails).',
    labelNames: ['phase'] as const,
    buckets: PHASE_BUCKETS,
    registers: [registry],
  });
  const total = new Histogram({
    name: 'portico_apply_batch_seconds',
    help: 'Time a batch took from its start to its outcome.',
    buckets: PHASE_BUCKETS,
    registers: [registry],
  });
  // Every series from the start: a rate() over a counter that appears at its first increment misses it.
  for (const kind of KINDS) {
    for (const outcome of BATCH_OUTCOMES) batches.inc({ kind, outcome }, 0);
    for (const outcome of CHANGE_OUTCOMES) changes.inc({ kind, outcome }, 0);
  }
  return events.subscribe((event) => {
    if (event.type !== 'apply') return;
    batches.inc({ kind: event.resource, outcome: event.outcome });
    for (const change of event.changes) changes.inc({ kind: event.resource, outcome: change.outcome });
    for (const [phase, ms] of Object.entries(event.phasesMs)) phases.observe({ phase }, ms / 1000);
    // A batch that threw has no timings: its zero would be a lie.
    if (event.outcome !== 'failed') total.observe(event.totalMs / 1000);
  });
}
