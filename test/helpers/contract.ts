/**
 * The contract hook: every answer an in-process Portico gives (to supertest or over real HTTP) is
 * checked against the OpenAPI document (src/api/openapi/) for its route, method and status, with
 * ajv's JSON Schema 2020-12 (the dialect of OpenAPI 3.1). A status the document does not list for
 * the route, a media type it does not list, or a JSON body its schema refuses is a violation,
 * named with the request, the status, the operation and ajv's error. `startInProcess` installs the
 * check, so every integration test that starts Portico in-process is a contract test too.
 *
 * A violation is printed on stderr when it happens (the spec reporter shows it beside the test that
 * ran), and again, all of them, when the test file's process exits, with exit code 1: node's test
 * runner then fails the file. Not a throw from `stop()`: the tests' `after` hooks run more cleanup
 * after it (backends, servers), which a throw would skip, leaving the file's process hanging.
 *
 * Requests that are no route (a 404 for an unknown path, an OPTIONS preflight) are not checked: no
 * operation describes them. HEAD answers are checked against GET's statuses, without a body.
 * Server-Sent Events (`text/event-stream`), answers cut off by their client and bodies over 4 MiB
 * are checked for status and media type only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Express } from 'express';
import Ajv2020 from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { openApiDocument, openApiPath } from '../../src/api/openapi/document.js';
import { ROUTES } from '../../src/api/openapi/paths.js';
import { routePattern } from '../../src/api/scopes.js';

/** The largest body kept for checking; a larger one (the /docs bundle) is checked for status and type only. */
const MAX_BODY = 4 * 1024 * 1024;
const DOC_ID = 'urn:portico:openapi';

const document = openApiDocument('contract') as unknown as {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
};

// ajv is CommonJS: its class is the module and, for TypeScript's NodeNext view of it, its `default`.
const ajv = new Ajv2020.default({ strict: false, allErrors: true, validateSchema: false });
ajv.addFormat('date-time', (text: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(text) && !Number.isNaN(Date.parse(text)));
ajv.addSchema({ ...document, $id: DOC_ID });

const OPERATIONS = ROUTES.map((route) => ({ method: route.method.toUpperCase(), path: openApiPath(route.path), pattern: routePattern(route.path) }));

const pointer = (...parts: string[]): string => parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

const validators = new Map<string, ValidateFunction>();
function validator(path: string, method: string, status: string, media: string): ValidateFunction {
  const ref = `${DOC_ID}#/${pointer('paths', path, method, 'responses', status, 'content', media, 'schema')}`;
  const known = validators.get(ref);
  if (known !== undefined) return known;
  const validate = ajv.compile({ $ref: ref });
  validators.set(ref, validate);
  return validate;
}

const essence = (type: string): string => (type.split(';')[0] ?? '').trim().toLowerCase();

export interface Exchange {
  method: string;
  url: string;
  status: number;
  contentType: string | undefined;
  body: Buffer | undefined;
  /** The body is not all there (an event stream, an answer cut off or too large to keep): status and media type are checked, not the schema. */
  partial?: boolean;
}

/** What is wrong with one answer, or undefined when the document allows it (or describes no such route). */
export function contractViolation(exchange: Exchange): string | undefined {
  const verb = exchange.method === 'HEAD' ? 'GET' : exchange.method;
  const requestPath = exchange.url.split('?')[0] ?? '';
  const candidates = OPERATIONS.filter((op) => op.method === verb && op.pattern.test(requestPath));
  if (candidates.length === 0) return undefined;
  const status = String(exchange.status);
  const what = `${exchange.method} ${exchange.url} answered ${status}`;
  const problems: string[] = [];
  for (const op of candidates) {
    const where = `${op.method} ${op.path}`;
    const response = document.paths[op.path]?.[op.method.toLowerCase()]?.responses[status];
    if (response === undefined) {
      problems.push(`${where} lists no ${status} (it lists ${Object.keys(document.paths[op.path]?.[op.method.toLowerCase()]?.responses ?? {}).join(', ')})`);
      continue;
    }
    const bodyless = exchange.method === 'HEAD' || (exchange.partial !== true && (exchange.body === undefined || exchange.body.length === 0));
    const content = response.content ?? {};
    if (bodyless) {
      if (exchange.method !== 'HEAD' && Object.keys(content).length > 0 && exchange.body !== undefined) {
        problems.push(`${where} ${status}: the answer has no body, the document gives it one`);
        continue;
      }
      return undefined;
    }
    if (Object.keys(content).length === 0) {
      if (exchange.partial === true) return undefined;
      problems.push(`${where} ${status}: the document gives this answer no body, it has ${exchange.body?.length} bytes`);
      continue;
    }
    const type = essence(exchange.contentType ?? '');
    const media = Object.keys(content).find((key) => essence(key) === type);
    if (media === undefined) {
      problems.push(`${where} ${status}: Content-Type ${exchange.contentType} is none of ${Object.keys(content).join(', ')}`);
      continue;
    }
    if (type !== 'application/json' || exchange.partial === true || exchange.body === undefined) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(exchange.body.toString('utf8'));
    } catch {
      problems.push(`${where} ${status}: the body is not JSON`);
      continue;
    }
    const validate = validator(op.path, op.method.toLowerCase(), status, media);
    if (validate(value)) return undefined;
    const shown = JSON.stringify(value);
    problems.push(
      `${where} ${status}: ${ajv.errorsText(validate.errors?.slice(0, 5), { separator: '; ' })}\n    body: ${shown.length > 600 ? `${shown.slice(0, 600)}…` : shown}`,
    );
  }
  return `${what}, which the OpenAPI document does not allow:\n  ${problems.join('\n  ')}`;
}

/** Every violation of this process, for the report at exit. */
const seen: string[] = [];
process.on('exit', () => {
  if (seen.length === 0) return;
  process.stderr.write(`\n${seen.length} answer(s) disagreed with the OpenAPI document (src/api/openapi/); failing this test file:\n${seen.join('\n')}\n`);
  process.exitCode = 1;
});

/**
 * Installs the check on `app` (the function node's server and supertest call, which calls
 * `app.handle`): every answer is checked when it finishes (or when an event stream is closed).
 * Answers the violations found so far, a list that grows.
 */
export function checkAnswers(app: Express): string[] {
  const violations: string[] = [];
  const target = app as unknown as { handle: (req: IncomingMessage, res: ServerResponse, next?: unknown) => void };
  const handle = target.handle.bind(app);
  target.handle = (req, res, next) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const chunks: Buffer[] = [];
    let size = 0;
    const keep = (chunk: unknown, encoding?: unknown): void => {
      if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
      size += buffer.length;
      if (size <= MAX_BODY) chunks.push(buffer);
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    res.write = ((...args: unknown[]) => {
      keep(args[0], args[1]);
      return write(...args);
    }) as typeof res.write;
    res.end = ((...args: unknown[]) => {
      keep(args[0], args[1]);
      return end(...args);
    }) as typeof res.end;
    let checked = false;
    const check = (): void => {
      if (checked || !res.headersSent) return;
      checked = true;
      const contentType = res.getHeader('content-type')?.toString();
      // An event stream never finishes; an answer whose client went away may not have.
      const partial = essence(contentType ?? '') === 'text/event-stream' || !res.writableFinished || size > MAX_BODY;
      const violation = contractViolation({ method, url, status: res.statusCode, contentType, body: partial ? undefined : Buffer.concat(chunks), partial });
      if (violation === undefined) return;
      violations.push(violation);
      seen.push(violation);
      process.stderr.write(`OpenAPI contract violation: ${violation}\n`);
    };
    res.on('finish', check);
    res.on('close', check);
    handle(req, res, next);
  };
  return violations;
}
