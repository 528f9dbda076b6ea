/**
 * Bearer-token authentication. With API_TOKEN set every route but /healthz needs
 * `Authorization: Bearer <token>`; the comparison takes the same time whatever the guess.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { PorticoError } from '../errors.js';
import { sendError } from './errors.js';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

export function requireToken(token: string): RequestHandler {
  const expected = digest(token);
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    // Hashing first makes both sides the same length, as timingSafeEqual requires.
    if (match && timingSafeEqual(digest(match[1] as string), expected)) {
      next();
      return;
    }
    res.set('WWW-Authenticate', 'Bearer');
    sendError(res, new PorticoError('Unauthorized', 'a valid "Authorization: Bearer <API_TOKEN>" header is required'));
  };
}
