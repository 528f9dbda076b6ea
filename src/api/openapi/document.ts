/**
 * The OpenAPI 3.1 document of the API, generated from the zod schemas (zod-to-openapi's
 * OpenApiGeneratorV31): the routes of paths.ts, the error answers every route shares, the bearer
 * scheme with each route's scope from ROUTE_SCOPES. Deterministic: the same version gives the same
 * document, byte for byte, and it is built once per process.
 */
import './zod.js';
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig } from '@asteasolutions/zod-to-openapi';
import { z, type ZodTypeAny } from 'zod';
import { appSchema } from '../../model/app.js';
import { certificateInputSchema } from '../../model/certificate.js';
import { porticoEventSchema } from '../../model/event.js';
import { streamInputSchema, streamSchema } from '../../model/stream.js';
import { STATUS } from '../errors.js';
import { ROUTE_SCOPES } from '../scopes.js';
import { certificateViewSchema, errorSchema, kindsOf, legacyErrorSchema, statusSchema } from './answers.js';
import { ROUTES, type Answer, type Route } from './paths.js';

/** `/v1/streams/:port` as OpenAPI writes it: `/v1/streams/{port}` (express's `*rest` too: `{rest}`). */
export function openApiPath(expressPath: string): string {
  return expressPath
    .split('/')
    .map((segment) => (segment.startsWith(':') || segment.startsWith('*') ? `{${segment.slice(1)}}` : segment))
    .join('/');
}

/** What the layers in front of a route may answer for it (app.ts's order), by the route's layer. */
const LAYER_ERRORS: Record<Route['layer'], number[]> = {
  // Before the guard: only the connection limits, a starting Portico and a bug.
  probe: [429, 500, 503],
  // Behind the guard (400 for a malformed or repeated Host, 403 for a browser's cross-site request), before the token.
  open: [400, 403, 429, 500, 503],
  // Behind the guard, the token (401; 403 for a read token on a write route) and the body's type (415).
  api: [400, 401, 403, 415, 429, 500, 503],
};
/** Statuses only the layers in front answer: a legacy route answers them in the common shape. */
const FRONT_ONLY = new Set([401, 403, 415, 429]);

const HEADERS: Record<string, { description: string; schema: { type: 'string'; enum?: string[] } }> = {
  'Portico-Request-Id': { description: "The request's id, with `; token=<name>` once a token authenticated it; the logs name the same id", schema: { type: 'string' } },
  ETag: { description: 'The version of the resource: send it back in If-Match', schema: { type: 'string' } },
  Location: { description: 'The path of the resource created', schema: { type: 'string' } },
  'Portico-Outcome': { description: 'What the change did', schema: { type: 'string', enum: ['created', 'replaced', 'unchanged'] } },
  'Portico-Fleet': { description: 'STORE=etcd: the revision written, whether FLEET_WAIT was met, and each live node\'s outcome, as `revision=41; complete=true; edge-a=applied; edge-b=failed`', schema: { type: 'string' } },
  'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'string' } },
  'Content-Security-Policy': { description: "The page's policy: scripts from this origin only, no inline script, no framing", schema: { type: 'string' } },
} as const;

function operationId(route: Route): string {
  const words = route.path.split(/[^A-Za-z0-9]+/).filter((w) => w !== '');
  return route.method + words.map((w) => w[0]?.toUpperCase() + w.slice(1)).join('');
}

function scopeOf(route: Route): 'read' | 'write' | 'open' {
  const rule = ROUTE_SCOPES.find((r) => r.method === route.method.toUpperCase() && r.path === route.path);
  if (rule !== undefined && route.scope !== undefined && rule.scope !== route.scope) {
    throw new Error(`${route.method.toUpperCase()} ${route.path}: scope ${route.scope} here, ${rule.scope} in ROUTE_SCOPES`);
  }
  const scope = rule?.scope ?? route.scope;
  if (scope === undefined) throw new Error(`${route.method.toUpperCase()} ${route.path} is not in ROUTE_SCOPES (src/api/scopes.ts)`);
  return scope;
}

const ERROR_INTRO = `Errors answer \`{"error": {"kind", "message", "field"?, "nginx"?}}\`; stream-conductor's routes answer their own failures as \`{"result": "error", "errors": "<message>", "error": {...}}\`. The kinds by status:\n\n${[
  ...new Set([...Object.values(STATUS), 429]),
]
  .sort((a, b) => a - b)
  .map((status) => `- ${status}: ${kindsOf(status).join(', ')}`)
  .join('\n')}`;

/** Builds the document; `version` is Portico's (package.json). */
function build(version: string): OpenAPIObject {
  const registry = new OpenAPIRegistry();
  // Named schemas: the document refers to them instead of repeating them.
  const named = new Map<ZodTypeAny, ZodTypeAny>([
    [streamSchema, registry.register('Stream', streamSchema)],
    [streamInputSchema, registry.register('StreamInput', streamInputSchema)],
    [appSchema, registry.register('App', appSchema)],
    [certificateViewSchema, registry.register('Certificate', certificateViewSchema)],
    [certificateInputSchema, registry.register('CertificateInput', certificateInputSchema)],
    [porticoEventSchema, registry.register('Event', porticoEventSchema)],
    [statusSchema, registry.register('Status', statusSchema)],
  ]);
  const ref = (schema: ZodTypeAny): ZodTypeAny => {
    if (named.has(schema)) return named.get(schema) as ZodTypeAny;
    if (schema instanceof z.ZodArray && named.has(schema.element)) return z.array(named.get(schema.element) as ZodTypeAny);
    if (schema instanceof z.ZodUnion) return z.union((schema.options as ZodTypeAny[]).map(ref) as [ZodTypeAny, ZodTypeAny]);
    return named.get(schema) ?? schema;
  };
  const errors = new Map<string, ZodTypeAny>();
  const errorOf = (status: number, legacy: boolean): ZodTypeAny => {
    const key = `${legacy ? 'LegacyError' : 'Error'}${status}`;
    if (!errors.has(key)) errors.set(key, registry.register(key, legacy ? legacyErrorSchema(status) : errorSchema(status)));
    return errors.get(key) as ZodTypeAny;
  };
  /** A route's own failure: a legacy route answers it in its shape (or the common one, from the layers in front). */
  const failure = (status: number, route: Route): ZodTypeAny =>
    route.legacy === true && !FRONT_ONLY.has(status) ? z.union([errorOf(status, true), errorOf(status, false)]) : errorOf(status, false);

  registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description:
      'A token of API_TOKEN (every scope) or API_TOKENS_FILE (`read` or `write`), as `Authorization: Bearer <token>`. The scope each operation needs is listed in its security requirement. With neither set, the API takes no token.',
  });
  for (const [name, header] of Object.entries(HEADERS)) registry.registerComponent('headers', name, header);
  const headerRefs = (names: Answer['headers'] = []) =>
    Object.fromEntries(['Portico-Request-Id', ...names].map((name) => [name, { $ref: `#/components/headers/${name}` }]));

  const response = (status: number, answer: Answer | 'error', route: Route): ResponseConfig => {
    if (answer === 'error') {
      return {
        description: `${kindsOf(status).join(' or ')}`,
        headers: headerRefs(status === 503 || status === 429 ? ['Retry-After'] : []),
        content: { 'application/json': { schema: failure(status, route) } },
      };
    }
    const media: Record<string, ZodTypeAny> =
      answer.content === undefined ? {} : answer.content instanceof z.ZodType ? { 'application/json': answer.content } : answer.content;
    const content = Object.fromEntries(
      Object.entries(media).map(([type, schema]) => [
        type,
        { schema: answer.orError === true && type === 'application/json' ? z.union([ref(schema), failure(status, route)]) : ref(schema) },
      ]),
    );
    return { description: answer.description, headers: headerRefs(answer.headers), ...(Object.keys(content).length > 0 && { content }) };
  };

  for (const route of ROUTES) {
    const scope = scopeOf(route);
    const answers: Record<number, Answer | 'error'> = {};
    for (const status of LAYER_ERRORS[route.layer]) {
      if (status === 401 && scope === 'open') continue;
      answers[status] = 'error';
    }
    Object.assign(answers, route.answers);
    const responses = Object.fromEntries(
      Object.keys(answers)
        .map(Number)
        .sort((a, b) => a - b)
        .map((status) => [String(status), response(status, answers[status] as Answer | 'error', route)]),
    );
    const scopeText = scope === 'open' ? 'No token needed.' : `Token scope: \`${scope}\`.`;
    registry.registerPath({
      method: route.method,
      path: openApiPath(route.path),
      operationId: operationId(route),
      tags: [route.tag],
      summary: route.summary,
      description: [route.description, scopeText].filter((t) => t !== undefined).join('\n\n'),
      security: scope === 'open' ? [] : [{ bearer: [scope] }],
      request: {
        ...(route.params && { params: route.params }),
        ...(route.query && { query: route.query }),
        ...(route.headers && { headers: route.headers }),
        ...(route.body && { body: { required: true, content: { 'application/json': { schema: ref(route.body) } } } }),
      },
      responses,
    });
  }

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Portico',
      version,
      description: `The HTTP API of Portico, the control plane of an nginx edge: streams (TCP/UDP ports), HTTP apps and certificates.\n\n${ERROR_INTRO}`,
      license: { name: 'See the repository' },
    },
    tags: [
      { name: 'streams', description: 'TCP and UDP ports proxied to upstreams' },
      { name: 'apps', description: 'HTTP apps on the shared HTTP/HTTPS listeners' },
      { name: 'certificates', description: 'Certificates streams and apps name by id' },
      { name: 'status', description: "Portico's state, ports, logs" },
      { name: 'events', description: 'The event feed' },
      { name: 'traffic', description: "Streams' and apps' traffic over the last minutes, from the per-resource metrics" },
      { name: 'fleet', description: 'Nodes sharing one route table in etcd (STORE=etcd)' },
      { name: 'metrics', description: 'Prometheus metrics' },
      { name: 'legacy', description: "stream-conductor's routes, same paths and JSON fields" },
      { name: 'probes', description: 'Liveness and readiness' },
      { name: 'documentation', description: 'This document and its reference page' },
      { name: 'console', description: 'The console for people, at /ui' },
    ],
  });
}

export type OpenAPIObject = ReturnType<OpenApiGeneratorV31['generateDocument']>;

const built = new Map<string, OpenAPIObject>();

/** The document for Portico `version`, built once. */
export function openApiDocument(version: string): OpenAPIObject {
  let document = built.get(version);
  if (document === undefined) {
    document = build(version);
    built.set(version, document);
  }
  return document;
}

/** A fresh build, for the test that holds the generator deterministic. */
export const buildOpenApiDocument = build;
