/**
 * src/fleet/keys.ts: the fleet's key layout in etcd, written and read back, and everything else
 * under the prefix refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_FLEET_PREFIX, FLEET_KINDS, fleetKey, fleetPrefixSchema, nodeNameSchema, parseFleetKey, prefixRangeEnd } from '../../src/fleet/keys.js';

const P = DEFAULT_FLEET_PREFIX;

describe('fleet keys', () => {
  it('writes each kind under the prefix and reads it back', () => {
    assert.equal(fleetKey(P, 'streams', 9000), '/portico/streams/9000');
    assert.equal(fleetKey(P, 'apps', 'shop'), '/portico/apps/shop');
    assert.equal(fleetKey(P, 'certificates', 'shop_acme'), '/portico/certificates/shop_acme');
    assert.equal(fleetKey('/edges/eu-west/', 'nodes', 'edge-1'), '/edges/eu-west/nodes/edge-1');
    for (const [kind, id] of [['streams', '65535'], ['apps', 'a'], ['certificates', 'cert-0f_a'], ['nodes', 'n0']] as const) {
      assert.deepEqual(parseFleetKey(P, fleetKey(P, kind, id)), { kind, id });
    }
  });

  it('reads back every key it writes (property)', () => {
    const id = fc.oneof(fc.integer({ min: 1, max: 65535 }).map(String), fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/));
    fc.assert(
      fc.property(fc.constantFrom(...FLEET_KINDS), id, (kind, text) => {
        let key: string;
        try {
          key = fleetKey(P, kind, text);
        } catch {
          return; // an id this kind does not allow (a name for streams, a port for none): refused on write
        }
        assert.deepEqual(parseFleetKey(P, key), { kind, id: text });
      }),
      { numRuns: 500 },
    );
  });

  it('refuses ids a kind does not allow, and every key that is not exactly the layout', () => {
    for (const [kind, id] of [['streams', '0'], ['streams', '09000'], ['streams', '65536'], ['apps', 'Shop'], ['apps', '-a'], ['certificates', '../x'], ['nodes', 'a/b']] as const) {
      assert.throws(() => fleetKey(P, kind, id), /is not a valid id/);
    }
    for (const key of ['/portico/streams/09000', '/portico/streams/', '/portico/streams', '/portico/apps/shop/extra', '/portico/secrets/x', '/other/apps/shop', '/portico/apps/Shop', 'portico/apps/shop']) {
      assert.equal(parseFleetKey(P, key), undefined, key);
    }
  });

  it('checks FLEET_PREFIX and NODE_NAME, naming the rule', () => {
    for (const good of ['/', '/portico/', '/edges/eu-west/']) assert.ok(fleetPrefixSchema.safeParse(good).success, good);
    for (const bad of ['portico/', '/portico', '/a//b/', '/a b/', '/a/\n/']) {
      const parsed = fleetPrefixSchema.safeParse(bad);
      assert.ok(!parsed.success && /must start and end with "\/"/.test(parsed.error.issues[0]?.message ?? ''), bad);
    }
    assert.ok(nodeNameSchema.safeParse('edge-1').success);
    assert.ok(!nodeNameSchema.safeParse('Edge_1').success);
  });

  it('answers the range end that covers exactly the keys under a prefix', () => {
    assert.deepEqual(prefixRangeEnd('/portico/'), Buffer.from('/portico0'));
    assert.deepEqual(prefixRangeEnd('a\u00ff'), Buffer.from([0x61, 0xc3, 0xc0]));
    fc.assert(
      fc.property(fc.stringMatching(/^\/[a-z]{1,8}\/$/), fc.string({ maxLength: 20 }), (prefix, rest) => {
        const key = Buffer.from(prefix + rest);
        const end = prefixRangeEnd(prefix);
        assert.ok(Buffer.compare(key, Buffer.from(prefix)) >= 0 && Buffer.compare(key, end) < 0, 'a key under the prefix falls in the range');
      }),
    );
  });
});
