/**
 * Parsing of route parameters and bodies with the model's schemas: the only way outside input
 * enters Portico. A failure is an InvalidInput naming the field and the rule.
 */
import type { ZodTypeAny, z } from 'zod';
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
