/**
 * The event feed's ring: it keeps the last `capacity` events, answers them newest first (or only
 * those after a client's Last-Event-ID), numbers them without gaps, and a listener that throws is
 * dropped without losing the event for the others.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EventFeed, type EventBody } from '../../src/events/feed.js';

const body = (n: number): EventBody => ({ type: 'nginx', what: 'restarted', pid: n });

describe('EventFeed', () => {
  it('keeps the last `capacity` events, newest first, ids without gaps', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 70 }), (capacity, count, after) => {
        const feed = new EventFeed(capacity, 1);
        for (let i = 1; i <= count; i += 1) assert.equal(feed.record(body(i)).id, i);
        const kept = feed.list();
        const expected = Array.from({ length: Math.min(capacity, count) }, (_, i) => count - i);
        assert.deepEqual(kept.map((e) => e.id), expected);
        assert.deepEqual(feed.list(after).map((e) => e.id), expected.filter((id) => id > after));
      }),
    );
  });

  it('hands every event to every listener until it unsubscribes; a listener that throws is dropped', () => {
    const feed = new EventFeed(10, 1);
    const seen: number[] = [];
    const stop = feed.subscribe((e) => seen.push(e.id));
    feed.subscribe(() => {
      throw new Error('a broken listener');
    });
    assert.equal(feed.subscribers, 2);
    feed.record(body(1));
    assert.equal(feed.subscribers, 1);
    feed.record(body(2));
    stop();
    feed.record(body(3));
    assert.deepEqual(seen, [1, 2]);
    assert.equal(feed.subscribers, 0);
    assert.match(feed.list()[0]?.at ?? '', /^\d{4}-\d\d-\d\dT/);
  });

  it('numbers from the time it was made, by default: a feed made after another (a restarted Portico) starts above its ids', async () => {
    const before = new EventFeed(10);
    let last = 0;
    for (let i = 0; i < 5; i += 1) last = before.record(body(i)).id;
    await new Promise((resolve) => setTimeout(resolve, 10));
    const after = new EventFeed(10);
    const first = after.record(body(0)).id;
    assert.ok(first > last, `${first} after ${last}`);
    assert.ok(Number.isSafeInteger(first) && String(first).length <= 15, 'a Last-Event-ID takes at most 15 digits');
    // A client that reconnects with the id it last saw of the feed before gets every event of this one.
    assert.deepEqual(after.list(last).map((e) => e.id), [first]);
  });
});
