/**
 * Every route of the API as an OpenAPI operation, one `Route` per route express knows, grouped as
 * the routers are. Parameters and bodies are the very zod schemas the routes parse input with;
 * answers are the schemas of answers.ts. To add a route: add it to its router, to ROUTE_SCOPES
 * (scopes.ts), and a `Route` here; the contract tests fail until all three agree.
 *
 * What every route may also answer is added by `operation` in document.ts, so the lists below name
 * only what the route itself answers: the guard's 400/403, the token's 401/403, the body's 415, the
 * connection limits' 429/503, a starting Portico's 503 and a bug's 500 come from the layers in front.
 */
import { z, type ZodTypeAny } from 'zod';
import './zod.js';
import { appNameSchema, appSchema } from '../../model/app.js';
import { certificateIdSchema, certificateInputSchema } from '../../model/certificate.js';
import { acmeCertificateInputSchema } from '../../acme/state.js';
import { porticoEventSchema } from '../../model/event.js';
import { addressSchema, portTextSchema } from '../../model/net.js';
import { streamInputSchema, streamSchema } from '../../model/stream.js';
import { HEARTBEAT_MS, MAX_FOLLOWERS, eventsQuerySchema } from '../v1/events.js';
import { MAX_TRAFFIC_RESOURCES, trafficAppsQuerySchema, trafficStreamsQuerySchema } from '../v1/traffic.js';
import {
  appDryRunSchema,
  certificateViewSchema,
  freePortSchema,
  healthSchema,
  legacyFreePortSchema,
  legacyHasStreamSchema,
  legacyOkSchema,
  legacyStatusSchema,
  legacyStreamsSchema,
  logsReopenedSchema,
  readinessSchema,
  statusSchema,
  streamDryRunSchema,
  fleetImportSchema,
  fleetViewSchema,
  inFleet,
  streamsTrafficSchema,
  appsTrafficSchema,
} from './answers.js';

/** An answer of a route: JSON by a schema, or another media type (text, HTML, a stream of events). */
export interface Answer {
  description: string;
  /** Media type to schema; a bare schema is `application/json`. */
  content?: ZodTypeAny | Record<string, ZodTypeAny>;
  /** Names of the answer headers (components/headers) it carries. */
  headers?: Array<'ETag' | 'Location' | 'Portico-Outcome' | 'Portico-Fleet' | 'Retry-After' | 'Content-Security-Policy'>;
  /** The status is also an error of its kinds (the JSON content is either). */
  orError?: true;
}

export interface Route {
  method: 'get' | 'post' | 'put' | 'delete';
  /** The path as express knows it (`/v1/streams/:port`); the document writes `{port}`. */
  path: string;
  tag: string;
  summary: string;
  description?: string;
  /** Where the route sits in the middleware chain (app.ts): before the guard, before the token, or behind both. */
  layer: 'probe' | 'open' | 'api';
  /** stream-conductor's routes: their own failures answer in the legacy shape. */
  legacy?: boolean;
  params?: z.AnyZodObject;
  query?: z.AnyZodObject;
  headers?: z.AnyZodObject;
  body?: ZodTypeAny;
  /** Answers by status: successes, and errors as the kinds of that status (the route's own failures). */
  answers: Record<number, Answer | 'error'>;
  /** The scope for a route ROUTE_SCOPES does not name yet (one being merged); when both name one, they must agree. */
  scope?: 'read' | 'write' | 'open';
}

const json = (description: string, schema: ZodTypeAny, headers?: Answer['headers']): Answer => ({ description, content: schema, ...(headers && { headers }) });

// Parameters: the schemas the routes parse them with (api/params.ts), with a description.
const portParams = z.object({ port: portTextSchema.openapi({ description: 'The stream\'s port, 1-65535, digits only', example: '9000' }) });
const appParams = z.object({ name: appNameSchema.openapi({ description: "The app's name", example: 'shop' }) });
const certParams = z.object({ id: certificateIdSchema.openapi({ description: "The certificate's id", example: 'shop-cert' }) });
const dryRunQuery = z.object({
  dryRun: z
    .enum(['true', 'false', ''])
    .optional()
    .openapi({ description: 'Run every step up to the swap and change nothing: answers the rendered files and nginx -t\'s verdict (200 accepted, 422 refused). A bare `?dryRun` is `true`.' }),
});
const preconditionHeaders = z.object({
  'If-Match': z.string().optional().openapi({ description: 'Apply only while the resource is as this ETag says (`*`: it exists); 412 otherwise' }),
  'If-None-Match': z.string().optional().openapi({ description: '`*`: create only (412 if it exists); a list of ETags refuses the change while the resource is one of them' }),
});

const STREAM_WRITE_ERRORS = { 400: 'error', 404: 'error', 409: 'error', 412: 'error', 422: 'error', 503: 'error' } as const;

export const probeRoutes: Route[] = [
  {
    method: 'get',
    path: '/healthz',
    tag: 'probes',
    layer: 'probe',
    summary: 'Liveness: the process answers',
    description: 'Needs no token and takes any Host (a container or Kubernetes probe sends its own); 503 with Retry-After while Portico starts.',
    answers: { 200: json('Portico runs', healthSchema) },
  },
  {
    method: 'get',
    path: '/readyz',
    tag: 'probes',
    layer: 'api',
    summary: 'Readiness: nginx runs and serves the files as they are',
    answers: { 200: json('Ready', readinessSchema), 503: { description: 'Not ready, or (an error body) Portico is starting', content: readinessSchema, orError: true } },
  },
];

export const legacyRoutes: Route[] = [
  { method: 'get', path: '/status', tag: 'legacy', layer: 'api', legacy: true, summary: "stream-conductor's status", answers: { 200: json('The status', legacyStatusSchema) } },
  {
    method: 'get',
    path: '/getstreams',
    tag: 'legacy',
    layer: 'api',
    legacy: true,
    summary: 'Every stream, as stream-conductor listed them',
    answers: { 200: json('The streams by port', legacyStreamsSchema) },
  },
  {
    method: 'get',
    path: '/hasstream/:port',
    tag: 'legacy',
    layer: 'api',
    legacy: true,
    summary: 'Whether a stream listens on the port',
    params: portParams,
    answers: { 200: json('"true" or "false", as strings', legacyHasStreamSchema) },
  },
  {
    method: 'get',
    path: '/createstream/:port/:backend',
    tag: 'legacy',
    layer: 'api',
    legacy: true,
    summary: 'Create a stream to one backend (a GET that changes state: needs a write token)',
    params: z.object({ port: portParams.shape.port, backend: addressSchema.openapi({ description: 'host:port', example: 'db.internal:5432' }) }),
    answers: { 200: json('Created and served', legacyOkSchema), ...STREAM_WRITE_ERRORS },
  },
  {
    method: 'get',
    path: '/createstream',
    tag: 'legacy',
    layer: 'api',
    legacy: true,
    summary: 'A createstream without port or backend: always 400',
    answers: { 400: 'error' },
  },
  {
    method: 'get',
    path: '/createstream/*rest',
    tag: 'legacy',
    layer: 'api',
    legacy: true,
    summary: 'A createstream whose backend holds "/" or is empty: always 400',
    description: '`rest` stands for any path below /createstream/ that the route above does not match (express\'s `*rest`).',
    params: z.object({ rest: z.string().openapi({ description: 'The rest of the path, "/" included' }) }),
    answers: { 400: 'error' },
  },
  {
    method: 'get',
    path: '/removestream/:port',
    tag: 'legacy',
    layer: 'api',
    legacy: true,
    summary: 'Remove the stream on a port (a GET that changes state: needs a write token)',
    params: portParams,
    answers: { 200: json('Removed', legacyOkSchema), ...STREAM_WRITE_ERRORS },
  },
  {
    method: 'get',
    path: '/getfreeport',
    tag: 'legacy',
    layer: 'api',
    legacy: true,
    summary: 'A free port, reserved for PORT_RESERVATION_TTL (a GET that changes state: needs a write token)',
    answers: { 200: json('A port, or "none available"', legacyFreePortSchema) },
  },
];

export const streamRoutes: Route[] = [
  { method: 'get', path: '/v1/streams', tag: 'streams', layer: 'api', summary: 'Every stream, by port', answers: { 200: json('The streams as stored', z.array(streamSchema)) } },
  {
    method: 'get',
    path: '/v1/streams/:port',
    tag: 'streams',
    layer: 'api',
    summary: 'One stream',
    params: portParams,
    answers: { 200: json('The stream as stored', streamSchema, ['ETag']), 404: 'error' },
  },
  {
    method: 'post',
    path: '/v1/streams',
    tag: 'streams',
    layer: 'api',
    summary: 'Create a stream (on the port given, or a free one)',
    query: dryRunQuery,
    body: streamInputSchema,
    answers: {
      ...STREAM_WRITE_ERRORS,
      201: json('Created and served', z.union([streamSchema, inFleet('the stream')]), ['ETag', 'Location', 'Portico-Fleet']),
      200: json('The dry run: nginx accepts the files', streamDryRunSchema),
      422: { description: 'nginx refused the config (the error), or the dry run nginx refuses', content: streamDryRunSchema, orError: true },
    },
  },
  {
    method: 'put',
    path: '/v1/streams/:port',
    tag: 'streams',
    layer: 'api',
    summary: 'Create or replace the stream on a port',
    params: portParams,
    query: dryRunQuery,
    headers: preconditionHeaders,
    body: streamInputSchema,
    answers: {
      ...STREAM_WRITE_ERRORS,
      200: json('Replaced (or unchanged), or the dry run nginx accepts', z.union([streamSchema, streamDryRunSchema, inFleet('the stream')]), ['ETag', 'Portico-Outcome', 'Portico-Fleet']),
      201: json('Created', z.union([streamSchema, inFleet('the stream')]), ['ETag', 'Portico-Outcome', 'Portico-Fleet']),
      422: { description: 'nginx refused the config (the error), or the dry run nginx refuses', content: streamDryRunSchema, orError: true },
    },
  },
  {
    method: 'delete',
    path: '/v1/streams/:port',
    tag: 'streams',
    layer: 'api',
    summary: 'Remove a stream',
    params: portParams,
    query: dryRunQuery,
    headers: preconditionHeaders,
    answers: {
      ...STREAM_WRITE_ERRORS,
      204: { description: 'Removed', headers: ['Portico-Fleet'] },
      200: json('The dry run: nginx accepts the files', streamDryRunSchema),
      422: { description: 'nginx refused the config (the error), or the dry run nginx refuses', content: streamDryRunSchema, orError: true },
    },
  },
];

const CERT_WRITE_ERRORS = { 400: 'error', 404: 'error', 409: 'error', 412: 'error', 422: 'error', 503: 'error' } as const;

export const certificateRoutes: Route[] = [
  {
    method: 'get',
    path: '/v1/certificates',
    tag: 'certificates',
    layer: 'api',
    summary: 'Every certificate: its facts and who uses it, never its key',
    answers: { 200: json('The certificates', z.array(certificateViewSchema)) },
  },
  {
    method: 'get',
    path: '/v1/certificates/:id',
    tag: 'certificates',
    layer: 'api',
    summary: 'One certificate, with its PEM chain',
    params: certParams,
    answers: { 200: json('The certificate', certificateViewSchema, ['ETag']), 404: 'error' },
  },
  {
    method: 'post',
    path: '/v1/certificates',
    tag: 'certificates',
    layer: 'api',
    summary: 'Upload a certificate chain (and its key), or create one an ACME CA issues and Portico renews (`acme`)',
    body: z.union([certificateInputSchema, acmeCertificateInputSchema]),
    answers: { 201: json('Stored', z.union([certificateViewSchema, inFleet('the certificate')]), ['ETag', 'Location', 'Portico-Fleet']), ...CERT_WRITE_ERRORS },
  },
  {
    method: 'put',
    path: '/v1/certificates/:id',
    tag: 'certificates',
    layer: 'api',
    summary: 'Create or replace a certificate (nginx reloads when a stream or app uses it)',
    params: certParams,
    headers: preconditionHeaders,
    body: certificateInputSchema,
    answers: {
      200: json('Replaced (or unchanged)', z.union([certificateViewSchema, inFleet('the certificate')]), ['ETag', 'Portico-Outcome', 'Portico-Fleet']),
      201: json('Created', z.union([certificateViewSchema, inFleet('the certificate')]), ['ETag', 'Portico-Outcome', 'Portico-Fleet']),
      ...CERT_WRITE_ERRORS,
    },
  },
  {
    method: 'delete',
    path: '/v1/certificates/:id',
    tag: 'certificates',
    layer: 'api',
    summary: 'Remove a certificate no stream or app uses',
    params: certParams,
    headers: preconditionHeaders,
    answers: { 204: { description: 'Removed', headers: ['Portico-Fleet'] }, ...CERT_WRITE_ERRORS },
  },
  {
    method: 'post',
    path: '/v1/certificates/:id/renew',
    tag: 'certificates',
    layer: 'api',
    summary: 'Order a managed certificate from its ACME CA now (a renewal, or a retry after a failure); answers once the order ended, with its outcome in `acme`',
    params: certParams,
    answers: { 200: json('The certificate after the order: `acme.status` valid, or failed with `acme.lastError`', certificateViewSchema, ['ETag']), 404: 'error', 422: 'error', 503: 'error' },
  },
];

export const appRoutes: Route[] = [
  { method: 'get', path: '/v1/apps', tag: 'apps', layer: 'api', summary: 'Every HTTP app, by name', answers: { 200: json('The apps as stored', z.array(appSchema)) } },
  {
    method: 'get',
    path: '/v1/apps/:name',
    tag: 'apps',
    layer: 'api',
    summary: 'One app',
    params: appParams,
    answers: { 200: json('The app as stored', appSchema, ['ETag']), 404: 'error' },
  },
  {
    method: 'post',
    path: '/v1/apps',
    tag: 'apps',
    layer: 'api',
    summary: 'Create an app',
    query: dryRunQuery,
    body: appSchema,
    answers: {
      ...STREAM_WRITE_ERRORS,
      201: json('Created and served', z.union([appSchema, inFleet('the app')]), ['ETag', 'Location', 'Portico-Fleet']),
      200: json('The dry run: nginx accepts the files', appDryRunSchema),
      422: { description: 'nginx refused the config (the error), or the dry run nginx refuses', content: appDryRunSchema, orError: true },
    },
  },
  {
    method: 'put',
    path: '/v1/apps/:name',
    tag: 'apps',
    layer: 'api',
    summary: 'Create or replace an app (the body may leave out "name")',
    params: appParams,
    query: dryRunQuery,
    headers: preconditionHeaders,
    body: appSchema,
    answers: {
      ...STREAM_WRITE_ERRORS,
      200: json('Replaced (or unchanged), or the dry run nginx accepts', z.union([appSchema, appDryRunSchema, inFleet('the app')]), ['ETag', 'Portico-Outcome', 'Portico-Fleet']),
      201: json('Created', z.union([appSchema, inFleet('the app')]), ['ETag', 'Portico-Outcome', 'Portico-Fleet']),
      422: { description: 'nginx refused the config (the error), or the dry run nginx refuses', content: appDryRunSchema, orError: true },
    },
  },
  {
    method: 'delete',
    path: '/v1/apps/:name',
    tag: 'apps',
    layer: 'api',
    summary: 'Remove an app',
    params: appParams,
    query: dryRunQuery,
    headers: preconditionHeaders,
    answers: {
      ...STREAM_WRITE_ERRORS,
      204: { description: 'Removed', headers: ['Portico-Fleet'] },
      200: json('The dry run: nginx accepts the files', appDryRunSchema),
      422: { description: 'nginx refused the config (the error), or the dry run nginx refuses', content: appDryRunSchema, orError: true },
    },
  },
];

export const fleetRoutes: Route[] = [
  {
    method: 'get',
    path: '/v1/fleet',
    tag: 'fleet',
    layer: 'api',
    summary: 'Every node of the fleet: its applied revision, lag, last outcome and errors (STORE=etcd)',
    description: 'While this node cannot reach etcd, this answer and every read carry `Portico-Stale: true`: they come from its own files.',
    answers: { 200: json('The fleet as this node sees it', fleetViewSchema), 404: 'error' },
  },
  {
    method: 'post',
    path: '/v1/fleet/import',
    tag: 'fleet',
    layer: 'api',
    summary: "Copy this node's streams, apps and certificates into an empty fleet (STORE=etcd)",
    answers: { 201: json('Imported, and applied by the live nodes', fleetImportSchema), 400: 'error', 404: 'error', 409: 'error', 503: 'error' },
  },
];

export const statusRoutes: Route[] = [
  { method: 'get', path: '/v1/status', tag: 'status', layer: 'api', summary: "Portico's and nginx's state", answers: { 200: json('The status', statusSchema) } },
  {
    method: 'get',
    path: '/v1/ports/free',
    tag: 'status',
    layer: 'api',
    summary: 'A free port, reserved for PORT_RESERVATION_TTL for the create that comes next',
    answers: { 200: json('The port', freePortSchema), 409: 'error' },
  },
  {
    method: 'post',
    path: '/v1/logs/reopen',
    tag: 'status',
    layer: 'api',
    summary: 'nginx reopens its log files (USR1 to the master), for a log rotation',
    answers: { 200: json('Reopened', logsReopenedSchema), 503: 'error' },
  },
  {
    method: 'get',
    path: '/v1/events',
    tag: 'events',
    layer: 'api',
    summary: 'The event feed: the last 1,000 applies and nginx restarts, newest first; or follow them',
    description:
      `With \`follow=true\` the answer is \`text/event-stream\` (Server-Sent Events): one \`event: <type>\` message per event as it is recorded, its \`id\` the event's id and its \`data\` the event as JSON, after the kept events newer than \`Last-Event-ID\`; a comment line every ${HEARTBEAT_MS / 1000} s. ` +
      `At most ${MAX_FOLLOWERS} clients follow at once: one more is answered 503 Busy.`,
    query: eventsQuerySchema,
    headers: z.object({
      'Last-Event-ID': z.string().optional().openapi({ description: 'With follow=true: the id of the last event seen; the kept events after it come first' }),
    }),
    answers: {
      200: {
        description: 'The events (JSON), or with follow=true the stream of them',
        content: {
          'application/json': z.array(porticoEventSchema),
          'text/event-stream': z.string().openapi({ description: '`id: <id>\\nevent: apply|nginx\\ndata: <the event as JSON>\\n\\n` per event, and `: keepalive` comments' }),
        },
      },
      503: 'error',
    },
  },
];

const TRAFFIC_WINDOW =
  'Sampled from the per-resource traffic metrics every `TRAFFIC_HISTORY_INTERVAL` (10 s by default), 90 samples kept (15 minutes by default); counted when a session ends or a request is answered, as the metrics are. 404 when `TRAFFIC_METRICS=off`.';

export const trafficRoutes: Route[] = [
  {
    method: 'get',
    path: '/v1/traffic/streams',
    tag: 'traffic',
    layer: 'api',
    summary: 'Streams\' traffic over the last minutes: bytes in and out and sessions per interval',
    description: `\`ports\`: up to ${MAX_TRAFFIC_RESOURCES} ports separated by commas. ${TRAFFIC_WINDOW} A port without a stream or without traffic answers zero totals and no points.`,
    query: trafficStreamsQuerySchema,
    answers: { 200: json('Each port\'s totals and the intervals it moved in, in the order asked', streamsTrafficSchema), 400: 'error', 404: 'error' },
  },
  {
    method: 'get',
    path: '/v1/traffic/apps',
    tag: 'traffic',
    layer: 'api',
    summary: 'Apps\' requests over the last minutes, by status class per interval',
    description: `\`names\`: up to ${MAX_TRAFFIC_RESOURCES} app names separated by commas. ${TRAFFIC_WINDOW}`,
    query: trafficAppsQuerySchema,
    answers: { 200: json('Each app\'s totals and the intervals it answered requests in, in the order asked', appsTrafficSchema), 400: 'error', 404: 'error' },
  },
];

export const metricsRoutes: Route[] = [
  {
    method: 'get',
    path: '/metrics',
    tag: 'metrics',
    layer: 'api',
    scope: 'read',
    summary: "Prometheus metrics of Portico and nginx (the text format)",
    answers: { 200: { description: 'The metrics', content: { 'text/plain; version=0.0.4': z.string() } } },
  },
];

export const docsRoutes: Route[] = [
  {
    method: 'get',
    path: '/openapi.json',
    tag: 'documentation',
    layer: 'open',
    summary: 'This document (OpenAPI 3.1)',
    answers: { 200: { description: 'The OpenAPI document', content: z.object({ openapi: z.literal('3.1.0') }).passthrough() } },
  },
  {
    method: 'get',
    path: '/docs',
    tag: 'documentation',
    layer: 'open',
    summary: 'The API reference page (Swagger UI), rendered from /openapi.json',
    answers: { 200: { description: 'The page', content: { 'text/html': z.string() }, headers: ['Content-Security-Policy'] } },
  },
  ...['/docs/docs.js', '/docs/swagger-ui-bundle.js'].map(
    (path): Route => ({
      method: 'get',
      path,
      tag: 'documentation',
      layer: 'open',
      summary: `A script of the /docs page`,
      answers: { 200: { description: 'The script', content: { 'text/javascript': z.string() } } },
    }),
  ),
  {
    method: 'get',
    path: '/docs/swagger-ui.css',
    tag: 'documentation',
    layer: 'open',
    summary: 'The style sheet of the /docs page',
    answers: { 200: { description: 'The style sheet', content: { 'text/css': z.string() } } },
  },
];

export const consoleRoutes: Route[] = [
  {
    method: 'get',
    path: '/ui',
    tag: 'console',
    layer: 'open',
    summary: 'The console for people: a page over this API, which asks for the token once (no data in the page itself)',
    answers: { 200: { description: 'The page', content: { 'text/html': z.string() }, headers: ['Content-Security-Policy'] } },
  },
  {
    method: 'get',
    path: '/ui/:file',
    tag: 'console',
    layer: 'open',
    summary: "One of the console's script modules (.js) or style sheets (.css); any other name answers 404",
    params: z.object({ file: z.string().openapi({ description: 'console.js, streams.js, console.css, ...' }) }),
    answers: { 200: { description: 'The script or style sheet', content: { 'text/javascript': z.string(), 'text/css': z.string() } }, 404: 'error' },
  },
  {
    method: 'get',
    path: '/ui/vendor/:file',
    tag: 'console',
    layer: 'open',
    summary: "The chart library's module and style sheet (uPlot.esm.js, uPlot.min.css), as npm installed them",
    params: z.object({ file: z.string().openapi({ description: 'uPlot.esm.js or uPlot.min.css' }) }),
    answers: { 200: { description: 'The script or style sheet', content: { 'text/javascript': z.string(), 'text/css': z.string() } }, 404: 'error' },
  },
];

/** Every route of the API, in the document's order. */
export const ROUTES: readonly Route[] = [
  ...probeRoutes,
  ...docsRoutes,
  ...consoleRoutes,
  ...legacyRoutes,
  ...streamRoutes,
  ...certificateRoutes,
  ...appRoutes,
  ...statusRoutes,
  ...trafficRoutes,
  ...fleetRoutes,
  ...metricsRoutes,
];
