/**
 * Arrivals: a batch about to start waits for the changes already on their way (requests read but not
 * queued yet), and for more while they keep coming close together; never longer than its bound, and
 * not at all when nothing is on its way (one create alone waits for nobody).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { mayChange } from '../../src/api/arrivals.js';
import { Arrivals } from '../../src/apply/arrivals.js';

/** How long `gathered()` took, in ms. */
async function timed(arrivals: Arrivals): Promise<number> {
  const start = performance.now();
  await arrivals.gathered();
  return performance.now() - start;
}

describe('Arrivals', () => {
  it('waits for nothing when nothing is on its way', async () => {
    const arrivals = new Arrivals(500, 50);
    assert.ok((await timed(arrivals)) < 20);
    // A request that came and queued its change before the batch started is not waited for either.
    arrivals.arrived('a');
    arrivals.settled('a');
    assert.ok((await timed(arrivals)) < 20);
  });

  it('waits until the request on its way queued its change, then for a pause in arrivals', async () => {
    const arrivals = new Arrivals(2000, 30);
    arrivals.arrived('a');
    let settledAt = Number.POSITIVE_INFINITY;
    setTimeout(() => {
      settledAt = performance.now();
      arrivals.settled('a');
    }, 60);
    const waited = await timed(arrivals);
    const after = performance.now() - settledAt;
    assert.ok(waited >= 55, `waited ${waited} ms`);
    // 'a' arrived 60 ms before it settled: more than the quiet time ago, so no lingering after it.
    assert.ok(after >= 0 && after < 25, `went on ${after} ms after the last request settled`);
  });

  it('keeps waiting while requests keep arriving closer together than the quiet time', async () => {
    const arrivals = new Arrivals(2000, 40);
    arrivals.arrived('r0');
    const gathering = timed(arrivals);
    for (let i = 1; i <= 4; i += 1) {
      await sleep(15);
      arrivals.settled(`r${i - 1}`);
      arrivals.arrived(`r${i}`);
    }
    arrivals.settled('r4');
    const lastAt = performance.now();
    const waited = await gathering;
    const quiet = performance.now() - lastAt;
    assert.ok(waited >= 60, `waited ${waited} ms`);
    assert.ok(quiet >= 30 && quiet < 500, `stopped ${quiet} ms after the last arrival (quiet time 40 ms)`);
  });

  it('waits at most its bound for a request that never queues a change', async () => {
    const arrivals = new Arrivals(80, 10);
    arrivals.arrived('slow upload');
    const waited = await timed(arrivals);
    assert.ok(waited >= 75 && waited < 400, `waited ${waited} ms`);
    // Older than the bound now: the next batch does not wait for it again.
    assert.ok((await timed(arrivals)) < 20);
  });
});

describe('mayChange', () => {
  it('counts every method but a read, and the legacy GETs that change streams', () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) assert.equal(mayChange({ method, path: '/v1/streams' }), true);
    for (const method of ['GET', 'HEAD', 'OPTIONS']) assert.equal(mayChange({ method, path: '/v1/streams' }), false);
    assert.equal(mayChange({ method: 'GET', path: '/createstream/9000/127.0.0.1:80' }), true);
    assert.equal(mayChange({ method: 'GET', path: '/removestream/9000' }), true);
    assert.equal(mayChange({ method: 'GET', path: '/getfreeport' }), false);
    assert.equal(mayChange({ method: 'GET', path: '/getstreams' }), false);
  });
});
