/**
 * Every answer carries `Portico-Request-Id: <id>`, a random id the request's log line also carries;
 * once a token authenticates it, `Portico-Request-Id: <id>; token=<name>`. An id a client sends is
 * not reused: a log line's id is always Portico's own.
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Requester } from '../apply/batch.js';

export const REQUEST_ID_HEADER = 'Portico-Request-Id';

export function assignRequestId(): RequestHandler {
  return (_req, res, next) => {
    const requester: Requester = { request: randomUUID() };
    res.locals.requester = requester;
    res.set(REQUEST_ID_HEADER, requester.request);
    next();
  };
}

/** Who asked: the request's id and, once authenticated, its token's name (for the batch log line). */
export function requester(res: Response): Requester {
  return (res.locals.requester as Requester | undefined) ?? { request: randomUUID() };
}

/** Records the name of the token the request authenticated with, in the header and for the logs. */
export function identify(res: Response, token: string): void {
  const named: Requester = { ...requester(res), token };
  res.locals.requester = named;
  res.set(REQUEST_ID_HEADER, `${named.request}; token=${token}`);
}
