/**
 * zod schemas of what the API answers, for the OpenAPI document (input is parsed by the model's own
 * schemas, which the document reuses as they are). Where a router builds an answer inline, its type
 * is inferred from the schema here and the router annotates the object with it, so a field added to
 * one and not the other fails the type check; where the answer is a type of another module
 * (BatchReport, LogsReopened, ...), `same` below holds the two types equal.
 */
import { z } from 'zod';
import type { BatchReport } from '../../apply/report.js';
import type { NginxBuild } from '../../nginx/exec.js';
import type { LogsReopened } from '../../nginx/nginx.js';
import type { FleetView } from '../../fleet/fleet.js';
import type { FileChange } from '../../store/journal.js';
import type { AppTraffic, HistoryWindow, StreamTraffic } from '../../traffic/history.js';
import type { UnreadableAppFile } from '../../store/apps.js';
import type { ForeignFile, UnreadableStreamFile } from '../../store/tree.js';
import { appSchema } from '../../model/app.js';
import { certificateFactsSchema } from '../../model/certificate.js';
import { ACME_STATUSES, acmeViewSchema } from '../../acme/state.js';
import { streamSchema } from '../../model/stream.js';
import { STATUS } from '../errors.js';
import type { ErrorKind } from '../../errors.js';

/** Compiles only when A and B are the same type (each assignable to the other). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function same<T extends true>(): T | undefined {
  return undefined;
}

/** Kinds answered by the connection limits (api/connection-limits.ts) before any route runs; not a PorticoError. */
export const CONNECTION_KIND = 'TooManyConnections';

/** Every error kind with the status it is answered with. */
export function kindsOf(status: number): string[] {
  const kinds: string[] = (Object.keys(STATUS) as ErrorKind[]).filter((kind) => STATUS[kind] === status);
  if (status === 429 || status === 503) kinds.push(CONNECTION_KIND);
  return kinds;
}

export const errorDetailSchema = z
  .object({
    kind: z.string().describe('What went wrong, one of the kinds this status answers'),
    message: z.string().describe('Lower case, context chained with ": "'),
    field: z.string().optional().describe('The input field that failed, as a dotted path (`upstreams.0.address`), or the header'),
    nginx: z.array(z.string()).optional().describe("nginx's own stderr or error-log lines"),
  })
  .strict();

/** The error body of every JSON route (api/errors.ts), its kind narrowed to those of one status. */
export function errorSchema(status: number) {
  const [first, ...rest] = kindsOf(status);
  if (first === undefined) throw new Error(`no error kind answers ${status}`);
  return z.object({ error: errorDetailSchema.extend({ kind: z.enum([first, ...rest]) }) }).strict();
}

/** A legacy route's own error (api/legacy.ts): stream-conductor's `result` and `errors`, and the error beside them. */
export function legacyErrorSchema(status: number) {
  return errorSchema(status).extend({
    result: z.literal('error'),
    errors: z.string().describe('The message, as stream-conductor answered it'),
  });
}

export const healthSchema = z.object({ status: z.literal('ok') }).strict();

export const readinessSchema = z
  .object({
    status: z.enum(['ready', 'not ready']),
    nginx: z.enum(['running', 'not running']),
    config: z.enum(['current', 'the running config may differ from the files']),
  })
  .strict();
export type Readiness = z.infer<typeof readinessSchema>;

// stream-conductor's answers.
export const legacyStatusSchema = z
  .object({
    version: z.string(),
    available_ports: z.string().describe("Python's range() repr, as stream-conductor printed it: `range(9000, 9010)`, the upper bound exclusive"),
    range: z.string().describe('`9000-9009`'),
    mode: z.enum(['managed', 'external']),
    streams: z.number().int(),
    free_ports: z.number().int().describe('The ports of the range no file claims'),
  })
  .strict();
export type LegacyStatus = z.infer<typeof legacyStatusSchema>;

export const legacyStreamsSchema = z.array(
  z
    .object({
      listen: z.number().int(),
      proxy_pass: z.string().describe("The upstream, or the upstream group's name for several, or the SNI map's variable"),
    })
    .strict(),
);
export type LegacyStreams = z.infer<typeof legacyStreamsSchema>;
export const legacyOkSchema = z.object({ result: z.literal('ok') }).strict();
export const legacyHasStreamSchema = z.object({ result: z.enum(['true', 'false']) }).strict();
export const legacyFreePortSchema = z.union([
  z.object({ result: z.literal('ok'), port: z.number().int().min(1).max(65535) }).strict(),
  z.object({ result: z.literal('none available') }).strict(),
]);
export type LegacyFreePort = z.infer<typeof legacyFreePortSchema>;

// The JSON API's answers.
export const fileChangeSchema = z
  .object({
    name: z.string(),
    text: z.string().nullable().describe('The rendered file; null for a file the change would remove'),
    mode: z.number().int().optional().describe("The new file's permission bits (0644 unless given)"),
  })
  .strict();
same<Same<z.infer<typeof fileChangeSchema>, FileChange>>();

const verdictSchema = z.object({ ok: z.boolean(), lines: z.array(z.string()).describe("nginx -t's lines") }).strict();
const outcomeSchema = z.enum(['created', 'replaced', 'unchanged', 'deleted']);

export const streamDryRunSchema = z
  .object({
    dryRun: z.literal(true),
    outcome: outcomeSchema,
    port: z.number().int(),
    stream: streamSchema.optional().describe('The stream as it would be stored (none for a removal)'),
    files: z.array(fileChangeSchema),
    nginx: verdictSchema,
  })
  .strict();
export const appDryRunSchema = z
  .object({
    dryRun: z.literal(true),
    outcome: outcomeSchema,
    name: z.string(),
    app: appSchema.optional().describe('The app as it would be stored (none for a removal)'),
    files: z.array(fileChangeSchema),
    nginx: verdictSchema,
  })
  .strict();

export const certificateViewSchema = certificateFactsSchema
  .extend({
    id: z.string(),
    usedBy: z.object({ streams: z.array(z.number().int()), apps: z.array(z.string()) }).strict().describe('The streams (by port) and apps (by name) that name it'),
    acme: acmeViewSchema.optional().describe('Present when Portico obtains and renews it from an ACME CA'),
    certificate: z.string().optional().describe('The PEM chain as stored (GET of one certificate only); the key is never answered'),
  })
  .strict();
export type CertificateView = z.infer<typeof certificateViewSchema>;

export const batchReportSchema = z
  .object({
    at: z.string().datetime(),
    outcome: z.enum(['applied', 'unchanged', 'rejected', 'rolled-back']),
    changes: z.number().int(),
    applied: z.number().int(),
    phasesMs: z.record(z.number()),
    totalMs: z.number(),
  })
  .strict();
same<Same<z.infer<typeof batchReportSchema>, BatchReport>>();

const unreadableStreamSchema = z.object({ name: z.string(), port: z.number().int(), reason: z.string() }).strict();
same<Same<z.infer<typeof unreadableStreamSchema>, UnreadableStreamFile>>();
const foreignFileSchema = z.object({ name: z.string(), ports: z.array(z.number().int()) }).strict();
same<Same<z.infer<typeof foreignFileSchema>, ForeignFile>>();
const unreadableAppSchema = z.object({ name: z.string(), app: z.string(), reason: z.string() }).strict();
same<Same<z.infer<typeof unreadableAppSchema>, UnreadableAppFile>>();
const nginxBuildSchema = z.object({ version: z.string(), modules: z.array(z.string()) });
same<Same<z.infer<typeof nginxBuildSchema>, NginxBuild>>();

export const statusSchema = z
  .object({
    version: z.string(),
    mode: z.enum(['managed', 'external']),
    range: z.object({ from: z.number().int(), to: z.number().int() }).strict(),
    streams: z.number().int(),
    apps: z.number().int(),
    certificates: z.number().int(),
    http: z.object({ port: z.number().int(), httpsPort: z.number().int() }).strict(),
    freePorts: z.number().int(),
    reservedPorts: z.number().int().describe('Handed out by getfreeport or /v1/ports/free and not yet used by a create; in memory only'),
    portReservationTtlMs: z.number().int(),
    nginx: nginxBuildSchema
      .extend({
        running: z.boolean(),
        pid: z.number().int().nullable(),
        adopted: z.boolean(),
        restarts: z.number().int(),
        conf: z.string(),
      })
      .strict(),
    lastApply: batchReportSchema.nullable(),
    consistent: z.boolean().describe('False when the running config may differ from the files (a rollback failed)'),
    files: z
      .object({
        streamDir: z.string(),
        unreadable: z.array(unreadableStreamSchema),
        foreign: z.array(foreignFileSchema),
        httpDir: z.string(),
        unreadableApps: z.array(unreadableAppSchema),
        foreignHttp: z.array(z.string()),
        sharedHttp: z.object({ name: z.string(), problem: z.string() }).strict().nullable().describe('null, or the file the apps share when it is not as Portico writes it'),
      })
      .strict(),
    startedAt: z.string().datetime(),
    acme: z
      .object({
        directoryUrl: z.string(),
        email: z.string().nullable(),
        account: z.string().nullable().describe("The ACME account's URL at the CA, once an order has talked to it since Portico started"),
        challenges: z.array(z.enum(['http-01', 'dns-01'])).describe('The challenge types this Portico can answer (dns-01 needs ACME_DNS_SERVER and a TSIG key)'),
        certificates: z
          .array(z.object({ id: z.string(), status: z.enum(ACME_STATUSES), nextRenewal: z.string().datetime().nullable(), lastError: z.string().nullable() }).strict())
          .describe('Every managed certificate, the next renewal (or retry) first'),
      })
      .strict(),
  })
  .strict();
export type StatusAnswer = z.infer<typeof statusSchema>;

export const logsReopenedSchema = z
  .object({
    nginxPid: z.number().int(),
    errorLog: z.string().nullable(),
    confirmed: z.boolean().describe('False when Portico could not see nginx write its error log at the path again within NGINX_TIMEOUT_MS'),
  })
  .strict();
same<Same<z.infer<typeof logsReopenedSchema>, LogsReopened>>();

export const freePortSchema = z
  .object({
    port: z.number().int().min(1).max(65535),
    reservedUntil: z.string().datetime().optional().describe('When the reservation lapses (absent when PORT_RESERVATION_TTL is 0)'),
  })
  .strict();
export type FreePort = z.infer<typeof freePortSchema>;

const nodeErrorSchema = z
  .object({
    resource: z.string().describe('The key under FLEET_PREFIX, such as streams/9000'),
    revision: z.number().int(),
    message: z.string(),
    nginx: z.array(z.string()).optional(),
  })
  .strict();

/** STORE=etcd: what each node writes to `nodes/<name>`, and /v1/fleet lists with its lag. */
export const fleetNodeSchema = z
  .object({
    name: z.string(),
    revision: z.number().int().describe('The last revision of the fleet\'s table this node applied (or failed: see errors)'),
    outcome: z.enum(['applied', 'failed']),
    errors: z.array(nodeErrorSchema).describe('What this node could not apply: it keeps its old config for those, and tries again at the next revision'),
    nginx: z.object({ running: z.boolean(), version: z.string() }).strict(),
    listenAddress: z.string().nullable(),
    version: z.string(),
    startedAt: z.string(),
    updatedAt: z.string(),
    lag: z.number().int().describe('Revisions behind the newest change the answering node knows of'),
  })
  .strict();

export const fleetViewSchema = z
  .object({
    node: z.string().describe('The node that answers (NODE_NAME)'),
    prefix: z.string(),
    stale: z.boolean().describe('True while this node cannot reach etcd: the list is as it last knew it'),
    etcdRevision: z.number().int().optional(),
    wait: z.enum(['all', 'quorum', 'local', 'none']),
    nodes: z.array(fleetNodeSchema).describe('Every live node (its lease held)'),
  })
  .strict();
same<Same<z.infer<typeof fleetViewSchema>, FleetView>>();

export const fleetImportSchema = z
  .object({ streams: z.number().int(), apps: z.number().int(), certificates: z.number().int(), revision: z.number().int() })
  .strict();

/** A mutation's `fleet`: the revision written and each live node's outcome. */
export const fleetOutcomeSchema = z
  .object({
    revision: z.number().int(),
    wait: z.enum(['all', 'quorum', 'local', 'none']),
    complete: z.boolean().describe('Whether FLEET_WAIT was met within FLEET_WAIT_TIMEOUT'),
    nodes: z.array(
      z
        .object({
          node: z.string(),
          outcome: z.enum(['applied', 'failed', 'pending']),
          revision: z.number().int(),
          error: z.object({ message: z.string(), nginx: z.array(z.string()).optional() }).strict().optional(),
        })
        .strict(),
    ),
  })
  .strict();

/** In a fleet (STORE=etcd), a write's answer is the resource with `fleet` beside its fields. */
export function inFleet(what: string): z.ZodTypeAny {
  return z.object({ fleet: fleetOutcomeSchema }).passthrough().describe(`STORE=etcd: ${what}, and \`fleet\`, each live node's outcome`);
}

export { appSchema, streamSchema };

const count = z.number().int().min(0);
const streamTrafficSchema = z.object({ bytesIn: count, bytesOut: count, sessions: count }).strict();
same<Same<z.infer<typeof streamTrafficSchema>, StreamTraffic>>();
const appTrafficSchema = z.object({ '1xx': count, '2xx': count, '3xx': count, '4xx': count, '5xx': count }).strict();
same<Same<z.infer<typeof appTrafficSchema>, AppTraffic>>();
const historyWindowSchema = z
  .object({
    intervalMs: z.number().int().describe('The sampling interval (TRAFFIC_HISTORY_INTERVAL): each point counts what moved in the interval that ended at its `at`'),
    from: z.string().datetime().describe('Where the window starts: the oldest interval held begins here'),
    to: z.string().datetime().describe('The last sample'),
  })
  .strict();
same<Same<z.infer<typeof historyWindowSchema>, HistoryWindow>>();
const at = z.string().datetime().describe('When the interval ended');

export const streamsTrafficSchema = historyWindowSchema
  .extend({
    streams: z.array(
      z
        .object({
          port: z.number().int(),
          totals: streamTrafficSchema.describe('Over the window'),
          series: z.array(streamTrafficSchema.extend({ at })).describe('The intervals in which the stream moved, oldest first; an interval left out had no traffic'),
        })
        .strict(),
    ),
  })
  .strict();

export const appsTrafficSchema = historyWindowSchema
  .extend({
    apps: z.array(
      z
        .object({
          name: z.string(),
          totals: appTrafficSchema.describe('Requests over the window, by status class'),
          series: z.array(appTrafficSchema.extend({ at })).describe('The intervals in which the app answered requests, oldest first'),
        })
        .strict(),
    ),
  })
  .strict();
