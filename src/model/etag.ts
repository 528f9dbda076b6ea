/**
 * Entity tags for optimistic concurrency (as Caddy's admin API): a resource's tag is a hash of the
 * JSON it is stored as, so it changes exactly when the resource does. Pure.
 */
import { createHash } from 'node:crypto';
import { PorticoError } from '../errors.js';

/** The strong ETag of a stored resource, quoted as HTTP writes it. */
export function etagOf(resource: unknown): string {
  return `"${createHash('sha256').update(JSON.stringify(resource)).digest('base64url').slice(0, 22)}"`;
}

/**
 * Checks an `If-Match` header against the resource as it now is (undefined: it does not exist):
 * `*` needs it to exist, a list of tags needs one of them to be its tag. Throws PreconditionFailed.
 */
export function checkIfMatch(ifMatch: string | undefined, current: unknown, what: string): void {
  if (ifMatch === undefined) return;
  if (current === undefined) throw new PorticoError('PreconditionFailed', `If-Match: ${what} does not exist`);
  if (ifMatch.trim() === '*') return;
  const tag = etagOf(current);
  // If-Match compares strongly (RFC 9110): a weak tag never matches.
  const tags = ifMatch.split(',').map((t) => t.trim());
  if (!tags.includes(tag)) throw new PorticoError('PreconditionFailed', `If-Match: ${what} has changed (its ETag is now ${tag})`);
}

/** The conditional headers of a change (RFC 9110 §13.1), as the caller sent them. */
export interface Preconditions {
  ifMatch?: string;
  ifNoneMatch?: string;
}

/** A tag without its weakness marker: If-None-Match compares weakly (RFC 9110 §8.8.3.2). */
const opaque = (tag: string): string => tag.replace(/^W\//, '');

/**
 * Checks an `If-None-Match` header against the resource as it now is (undefined: it does not
 * exist): `*` needs it to be absent (create only), a list of tags needs none of them to be its tag.
 * Throws PreconditionFailed.
 */
export function checkIfNoneMatch(ifNoneMatch: string | undefined, current: unknown, what: string): void {
  if (ifNoneMatch === undefined || current === undefined) return;
  if (ifNoneMatch.trim() === '*') throw new PorticoError('PreconditionFailed', `If-None-Match: *: ${what} already exists`);
  const tag = etagOf(current);
  const tags = ifNoneMatch.split(',').map((t) => opaque(t.trim()));
  if (tags.includes(tag)) throw new PorticoError('PreconditionFailed', `If-None-Match: ${what} is still ${tag}`);
}

/** Both conditional headers, in RFC 9110's order (§13.2.2): If-Match first, then If-None-Match. */
export function checkPreconditions(headers: Preconditions, current: unknown, what: string): void {
  checkIfMatch(headers.ifMatch, current, what);
  checkIfNoneMatch(headers.ifNoneMatch, current, what);
}
