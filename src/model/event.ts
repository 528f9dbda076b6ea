/**
 * The events of the feed (events/feed.ts) as zod schemas: the TypeScript types the feed records are
 * inferred from them, and the OpenAPI document describes /v1/events with them, so an event's shape
 * cannot change without its documented schema changing too.
 */
import { z } from 'zod';

export const EVENT_RESOURCES = ['stream', 'app', 'certificate'] as const;
export const APPLY_OUTCOMES = ['applied', 'unchanged', 'rejected', 'rolled-back', 'failed'] as const;

/** What one change of a batch became. */
export const changeOutcomeSchema = z
  .object({
    request: z.string().describe('The API request that asked for the change (its Portico-Request-Id)'),
    token: z.string().optional().describe('The name of the token it authenticated with (none when the API is open)'),
    change: z.string().describe('The change as the applier names it (`applying stream 9000`, `removing stream 9000`)'),
    outcome: z.enum(['applied', 'unchanged', 'rejected']),
    error: z
      .object({ kind: z.string(), message: z.string(), field: z.string().optional(), nginx: z.array(z.string()).optional() })
      .strict()
      .optional()
      .describe("Why it was rejected: the error's kind, message and field, with nginx's lines when nginx refused"),
  })
  .strict();
export type ChangeOutcome = z.infer<typeof changeOutcomeSchema>;

const phasesMsSchema = z.record(z.number()).describe('Milliseconds each phase took, in the order they ran');

export const applyEventBodySchema = z
  .object({
    type: z.literal('apply'),
    resource: z.enum(EVENT_RESOURCES).describe('The kind of resource the batch changed'),
    outcome: z
      .enum(APPLY_OUTCOMES)
      .describe(
        'applied: committed and served; unchanged: nothing to write; rejected: refused before the swap; rolled-back: refused at or after the swap, the old tree restored; failed: the batch threw (a disk, a bug)',
      ),
    changes: z.array(changeOutcomeSchema),
    phasesMs: phasesMsSchema,
    totalMs: z.number(),
  })
  .strict();
export type ApplyEventBody = z.infer<typeof applyEventBodySchema>;

export const NGINX_EVENTS = ['exited', 'restarted', 'restart-failed'] as const;

export const nginxEventBodySchema = z
  .object({
    type: z.literal('nginx'),
    what: z
      .enum(NGINX_EVENTS)
      .describe('exited: a managed master died (a restart follows after `restartInMs`); restarted: a new master was started; restart-failed: it could not be'),
    pid: z.number().int().optional(),
    detail: z.string().optional(),
    restartInMs: z.number().optional(),
  })
  .strict();
export type NginxEventBody = z.infer<typeof nginxEventBodySchema>;

export const ACME_EVENTS = ['ordered', 'issued', 'renewed', 'failed'] as const;

/** What became of an ACME order (src/acme/manager.ts): the CA's own words on failure. */
export const acmeEventBodySchema = z
  .object({
    type: z.literal('acme'),
    certificate: z.string().describe('The managed certificate\'s id'),
    what: z
      .enum(ACME_EVENTS)
      .describe('ordered: an order was sent to the CA; issued: its first certificate is served; renewed: a new one replaced it; failed: the order failed (the previous certificate keeps serving)'),
    names: z.array(z.string()),
    challenge: z.enum(['http-01', 'dns-01']),
    detail: z.string().optional().describe("On failure, the step that failed and the CA's own problem detail"),
    notAfter: z.string().datetime().optional().describe('The new certificate\'s expiry (issued, renewed)'),
    retryAt: z.string().datetime().optional().describe('When Portico tries again (failed)'),
  })
  .strict();
export type AcmeEventBody = z.infer<typeof acmeEventBodySchema>;

export type EventBody = ApplyEventBody | NginxEventBody | AcmeEventBody;

/** The sequence number (the SSE id, increasing across restarts of Portico, see `EventFeed`) and the time. */
const stamp = {
  id: z.number().int().describe('A sequence number, the Server-Sent Event id: it counts up from the time the feed started (ms since the epoch), so it keeps increasing across restarts of Portico'),
  at: z.string().datetime().describe('When the event was recorded (ISO 8601 UTC)'),
};

/** An event as answered. */
export const porticoEventSchema = z.discriminatedUnion('type', [applyEventBodySchema.extend(stamp), nginxEventBodySchema.extend(stamp), acmeEventBodySchema.extend(stamp)]);
export type PorticoEvent = z.infer<typeof porticoEventSchema>;
