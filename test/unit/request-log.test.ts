/**
 * What a request's log line may say about its URL: the path, and of the query only the names.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeUrl } from '../../src/api/request-log.js';

describe('describeUrl', () => {
  it('keeps the path and drops a query\'s values, naming each parameter once', () => {
    assert.deepEqual(describeUrl('/v1/streams'), { path: '/v1/streams' });
    assert.deepEqual(describeUrl('/v1/streams?dryRun=true&token=s3cret&token=again'), { path: '/v1/streams', query: ['dryRun', 'token'] });
    assert.deepEqual(describeUrl('/v1/apps/shop?'), { path: '/v1/apps/shop' });
    assert.ok(!JSON.stringify(describeUrl('/x?a=s3cret&b=%73ecret')).includes('ecret'));
  });

  it('cuts a path longer than 256 characters, so that a client cannot make a line of any length', () => {
    const { path } = describeUrl(`/${'a'.repeat(10_000)}?q=1`);
    assert.equal(path.length, 257);
    assert.ok(path.endsWith('…'));
  });
});
