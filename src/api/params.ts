/**
 * Parsing of route parameters and bodies with the model's schemas: the only way outside input
 * enters Portico. A failure is an InvalidInput naming the field and the rule.
 */
import type { Request } from 'express';
import type { ZodTypeAny, z } from 'zod';
import { invalidInput } from '../errors.js';
import type { Preconditions } from '../model/etag.js';
import { portTextSchema } from '../model/net.js';
import { fromZod } from './errors.js';

export function parseWith<S extends ZodTypeAny>(schema: S, value: unknown, field?: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw fromZod(parsed.error, field);
  return parsed.data;
}

/** A port from a URL path segment. */
export function portParam(value: unknown, field = 'port'): number {
  return parseWith(portTextSchema, value, field);
}

/**
 * The request's If-Match and If-None-Match headers, for a change that must find the resource as the
 * caller last saw it (If-Match) or not at all (`If-None-Match: *`: create only).
 */
export function preconditions(req: Request): Preconditions {
  const ifMatch = req.get('if-match');
  const ifNoneMatch = req.get('if-none-match');
  return { ...(ifMatch !== undefined && { ifMatch }), ...(ifNoneMatch !== undefined && { ifNoneMatch }) };
}

/** `?dryRun=true` (or a bare `?dryRun`): run every step up to the swap. */
export function isDryRun(req: Request): boolean {
  const value = req.query.dryRun;
  if (value === undefined || value === 'false') return false;
  if (value === 'true' || value === '') return true;
  throw invalidInput('dryRun', 'must be true or false');
}
