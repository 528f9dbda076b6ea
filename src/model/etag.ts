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
