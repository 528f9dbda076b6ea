/**
 * Parsing of route parameters and bodies with the model's schemas: the only way outside input
 * enters Portico. A failure is an InvalidInput naming the field and the rule.
 */
import type { Request } from 'express';
import type { AnyZodObject, ZodTypeAny, z } from 'zod';
import { PorticoError, invalidInput } from '../errors.js';
import type { Preconditions } from '../model/etag.js';
import { portTextSchema } from '../model/net.js';
import { fromZod } from './errors.js';

export function parseWith<S extends ZodTypeAny>(schema: S, value: unknown, field?: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw fromZod(parsed.error, field);
  return parsed.data;
}

/**
 * A query string by `schema` (a strict object): its first failure names the parameter, and a
 * parameter the route does not know is named as the query's (zod would name an unknown key at the
 * top as the body's), each name cut short: a client chooses them.
 */
export function parseQuery<S extends AnyZodObject>(schema: S, query: unknown): z.infer<S> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue?.code !== 'unrecognized_keys') throw fromZod(parsed.error);
  const names = issue.keys.slice(0, 8).map((key) => JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key));
  const known = Object.keys(schema.shape).join(', ');
  throw new PorticoError('InvalidInput', `query: unknown parameter(s) ${names.join(', ')}${issue.keys.length > 8 ? ' and more' : ''} (known: ${known})`, { field: 'query' });
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
