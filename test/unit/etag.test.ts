/**
 * Conditional changes (RFC 9110 §13): If-Match needs the resource as the caller saw it, If-None-Match
 * needs it absent (`*`) or changed (a list of tags, compared weakly), If-Match first.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPreconditions, etagOf } from '../../src/model/etag.js';

const resource = { port: 9000, upstreams: [{ address: '10.0.0.1:80' }] };
const tag = etagOf(resource);

/** The 412's message, or "ok" when the change may go ahead. */
function verdict(headers: { ifMatch?: string; ifNoneMatch?: string }, current: unknown): string {
  try {
    checkPreconditions(headers, current, 'stream 9000');
    return 'ok';
  } catch (error) {
    assert.equal((error as { kind?: string }).kind, 'PreconditionFailed');
    return (error as Error).message;
  }
}

describe('If-None-Match', () => {
  it('"*" creates only: it passes when the resource is absent and answers 412 when it exists', () => {
    assert.equal(verdict({ ifNoneMatch: '*' }, undefined), 'ok');
    assert.equal(verdict({ ifNoneMatch: ' * ' }, resource), 'If-None-Match: *: stream 9000 already exists');
  });

  it('a list of tags fails when one names the resource as it is, weak or strong, and passes otherwise', () => {
    assert.match(verdict({ ifNoneMatch: tag }, resource), /is still/);
    assert.match(verdict({ ifNoneMatch: `"other", W/${tag}` }, resource), /is still/);
    assert.equal(verdict({ ifNoneMatch: '"other"' }, resource), 'ok');
    assert.equal(verdict({ ifNoneMatch: tag }, undefined), 'ok');
    assert.equal(verdict({ ifNoneMatch: '' }, resource), 'ok');
  });

  it('If-Match is checked first (RFC 9110 §13.2.2), and both must pass', () => {
    assert.match(verdict({ ifMatch: '"stale"', ifNoneMatch: '*' }, resource), /^If-Match: stream 9000 has changed/);
    assert.match(verdict({ ifMatch: tag, ifNoneMatch: '*' }, resource), /^If-None-Match/);
    assert.equal(verdict({ ifMatch: tag, ifNoneMatch: '"other"' }, resource), 'ok');
  });
});
