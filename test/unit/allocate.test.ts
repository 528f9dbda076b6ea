/**
 * Port allocation: the lowest port of the range that no file claims and the host has not bound.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { allocatePort, unclaimedCount } from '../../src/ports/allocate.js';

const never = async (): Promise<boolean> => false;

describe('allocatePort', () => {
  it('answers the lowest unclaimed, unbound port, both ends inclusive', async () => {
    assert.equal(await allocatePort({ from: 9000, to: 9009 }, new Set(), never), 9000);
    assert.equal(await allocatePort({ from: 9000, to: 9009 }, new Set([9000, 9001]), never), 9002);
    assert.equal(await allocatePort({ from: 9000, to: 9001 }, new Set([9000]), never), 9001);
    assert.equal(await allocatePort({ from: 9000, to: 9001 }, new Set([9000, 9001]), never), undefined);
    assert.equal(await allocatePort({ from: 9000, to: 9002 }, new Set([9000]), async (p) => p === 9001), 9002);
  });

  it('asks the host only about unclaimed ports', async () => {
    const asked: number[] = [];
    await allocatePort({ from: 1, to: 5 }, new Set([1, 2, 4]), async (p) => {
      asked.push(p);
      return p === 3;
    });
    assert.deepEqual(asked, [3, 5]);
  });

  it('is the lowest port neither claimed nor bound, for any claims and bound ports', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 65500 }),
        fc.integer({ min: 0, max: 30 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 30 })),
        fc.uniqueArray(fc.integer({ min: 0, max: 30 })),
        async (from, span, claimedOffsets, boundOffsets) => {
          const range = { from, to: from + span };
          const claimed = new Set(claimedOffsets.map((o) => from + o));
          const bound = async (p: number): Promise<boolean> => boundOffsets.includes(p - from);
          const port = await allocatePort(range, claimed, bound);
          const free: number[] = [];
          for (let p = range.from; p <= range.to; p += 1) if (!claimed.has(p) && !(await bound(p))) free.push(p);
          assert.equal(port, free[0]);
          if (port !== undefined) {
            assert.ok(port >= range.from && port <= range.to && !claimed.has(port) && !(await bound(port)));
          }
        },
      ),
    );
  });
});

describe('unclaimedCount', () => {
  it('counts the ports of the range that no file claims, ignoring claims outside it', () => {
    assert.equal(unclaimedCount({ from: 9000, to: 9009 }, new Set()), 10);
    assert.equal(unclaimedCount({ from: 9000, to: 9009 }, new Set([8999, 9000, 9009, 9010])), 8);
  });
});
