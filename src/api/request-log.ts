/**
 * One log line per request: method, path, status, duration, the request's id and the name of the
 * token it authenticated with (Portico-Request-Id). Never headers (Authorization holds the token)
 * nor bodies (certificate keys), and of the query string only the names: a value could be a secret
 * a caller put in the URL.
 */
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { requester } from './request-id.js';

/** Longer paths are cut: a client chooses them, and a log line should stay a line. */
const MAX_PATH = 256;

/** The path of `url` (cut to MAX_PATH) and the names of its query parameters, without their values. */
export function describeUrl(url: string): { path: string; query?: string[] } {
  const mark = url.indexOf('?');
  const path = mark === -1 ? url : url.slice(0, mark);
  const shown = path.length > MAX_PATH ? `${path.slice(0, MAX_PATH)}…` : path;
  if (mark === -1) return { path: shown };
  const names = [...new URLSearchParams(url.slice(mark + 1)).keys()].map((name) => name.slice(0, 64));
  return names.length === 0 ? { path: shown } : { path: shown, query: [...new Set(names)] };
}

/** Logs each request once its answer is sent (or the client went away first): 5xx as error, 4xx as warn. */
export function logRequests(log: Logger): RequestHandler {
  return (req, res, next) => {
    const startedAt = performance.now();
    // Read now: routers mounted below rewrite req.url while they handle the request.
    const url = describeUrl(req.originalUrl);
    res.once('close', () => {
      const ms = Math.round((performance.now() - startedAt) * 10) / 10;
      const { request, token } = requester(res);
      const fields = { method: req.method, ...url, status: res.statusCode, ms, request, ...(token !== undefined && { token }) };
      const line = `${req.method} ${url.path} ${res.statusCode} in ${ms} ms`;
      if (!res.writableFinished) log.warn({ ...fields, aborted: true }, `${line}: the client went away before the answer was sent`);
      else if (res.statusCode >= 500) log.error(fields, line);
      else if (res.statusCode >= 400) log.warn(fields, line);
      else log.info(fields, line);
    });
    next();
  };
}
