/**
 * The one place error kinds become HTTP statuses, and the shape every error answer has:
 * `{"error": {"kind", "message", "field"?, "nginx"?}}` (legacy routes add their own shape on top).
 */
import type { ErrorRequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { ZodError } from 'zod';
import { PorticoError, asPorticoError, type ErrorKind } from '../errors.js';

export const STATUS: Record<ErrorKind, number> = {
  InvalidInput: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  PreconditionFailed: 412,
  UnsupportedMediaType: 415,
  NginxRejected: 422,
  NginxUnavailable: 503,
  StorageUnavailable: 503,
  FleetUnavailable: 503,
  Busy: 503,
  Internal: 500,
};

/** The first issue of a failed schema as an InvalidInput naming the field and the rule. */
export function fromZod(error: ZodError, root?: string): PorticoError {
  const issue = error.issues[0];
  const path = [root, ...(issue?.path ?? [])].filter((p) => p !== undefined && p !== '').join('.');
  const field = path === '' ? 'body' : path;
  let message = issue?.message ?? 'is invalid';
  if (issue?.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue?.code === 'invalid_type' && issue.received === 'undefined') message = 'is required';
  return new PorticoError('InvalidInput', `${field}: ${message}`, { field });
}

export function errorBody(error: PorticoError): { error: Record<string, unknown> } {
  return {
    error: {
      kind: error.kind,
      message: error.message,
      ...(error.field !== undefined && { field: error.field }),
      ...(error.nginx !== undefined && { nginx: error.nginx }),
    },
  };
}

/** The largest JSON body accepted: a certificate chain may be 64 KiB and its key 16 KiB, as JSON strings. */
export const BODY_LIMIT_KB = 160;

/** Express errors that carry a 4xx status (malformed JSON, a bad percent-encoding) are the caller's. */
export function toPorticoError(error: unknown): PorticoError {
  if (error instanceof PorticoError) return error;
  const status = (error as { status?: number }).status;
  // body-parser's: a charset or Content-Encoding it cannot decode.
  if (status === 415) return new PorticoError('UnsupportedMediaType', `body: ${(error as Error).message}`, { field: 'body' });
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const type = (error as { type?: string }).type;
    const message =
      type === 'entity.parse.failed'
        ? 'body: is not valid JSON'
        : type === 'entity.too.large'
          ? `body: is larger than the ${BODY_LIMIT_KB} kB limit`
          : `request: ${(error as Error).message}`;
    return new PorticoError('InvalidInput', message, { field: type?.startsWith('entity') ? 'body' : 'request' });
  }
  return asPorticoError(error);
}

/**
 * A dry run answers the rendered files and nginx's verdict either way; one nginx refuses gets the
 * status the real change would get (422), so that `curl -f` and scripts see the refusal.
 */
export function sendDryRun(res: Response, result: { nginx: { ok: boolean } }): void {
  res.status(result.nginx.ok ? 200 : STATUS.NginxRejected).json(result);
}

export function sendError(res: Response, error: PorticoError): void {
  res.status(STATUS[error.kind]).json(errorBody(error));
}

/** The last handler: answers any error in the one shape; an Internal one (a bug) is logged with its stack. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const wrapped = toPorticoError(error);
    if (wrapped.kind === 'Internal') log.error({ err: error, method: req.method, path: req.path }, `internal error: ${wrapped.message}`);
    sendError(res, wrapped);
  };
}
