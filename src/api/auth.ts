/**
 * Bearer-token authentication and scopes. With API_TOKEN or API_TOKENS_FILE set, every route
 * mounted after this middleware (all but /healthz) needs `Authorization: Bearer <token>` (401
 * otherwise), and a `read` token gets 403 on every route `requiredScope` calls a write. The token's
 * name (never the token) joins the request's id in the `Portico-Request-Id` header and the logs.
 */
import type { RequestHandler } from 'express';
import { PorticoError } from '../errors.js';
import { sendError } from './errors.js';
import { identify } from './request-id.js';
import { requiredScope } from './scopes.js';
import type { Tokens } from './tokens.js';

/** The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 9110 §11.1). */
function bearerToken(header: string | undefined): string | undefined {
  const match = /^bearer +(\S.*)$/i.exec(header ?? '');
  return match?.[1];
}

export function authenticate(tokens: Tokens): RequestHandler {
  return (req, res, next) => {
    const token = bearerToken(req.get('authorization'));
    const caller = token === undefined ? undefined : tokens.find(token);
    if (caller === undefined) {
      res.set('WWW-Authenticate', 'Bearer');
      sendError(res, new PorticoError('Unauthorized', 'a valid "Authorization: Bearer <token>" header is required'));
      return;
    }
    identify(res, caller.name);
    if (caller.scope === 'read' && requiredScope(req.method, req.path) === 'write') {
      sendError(res, new PorticoError('Forbidden', `token "${caller.name}" has scope read: this route changes state and needs a write token`));
      return;
    }
    next();
  };
}
