/**
 * The traffic history (traffic/history.ts) over the real per-resource counters: the ring keeps at
 * most its samples, holds only the resources that moved, drops a deleted resource's history, and
 * its deltas add up to what was counted (a counter that restarts from zero included); and
 * /v1/traffic's query rules.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import fc from 'fast-check';
import pino from 'pino';
import request from 'supertest';
import { errorHandler } from '../../src/api/errors.js';
import { MAX_TRAFFIC_RESOURCES, trafficRouter } from '../../src/api/v1/traffic.js';
import { loadSettings } from '../../src/settings.js';
import type { StreamSession } from '../../src/traffic/line.js';
import { TrafficHistory, type TrafficTotals } from '../../src/traffic/history.js';
import { TrafficMetrics } from '../../src/traffic/metrics.js';

const session = (port: number, received: number, sent: number): StreamSession => ({ kind: 'stream', port, protocol: 'tcp', received, sent, seconds: 0.01 });

/** Counters that know `ports` (and the app shop), and a clock the test moves. */
function setUp(ports: Iterable<number>, samples = 90) {
  const metrics = new TrafficMetrics();
  const known = (p: Iterable<number>) => ({ streamPorts: new Set(p), appsByServerName: new Map([['shop.example.com', 'shop']]) });
  metrics.setKnown(known(ports));
  let clock = Date.parse('2026-12-04T12:00:00Z');
  const history = TrafficHistory.of(metrics, { intervalMs: 10_000, samples, now: () => clock });
  const tick = async () => {
    clock += 10_000;
    await history.sample();
  };
  return { metrics, history, tick, setKnown: (p: Iterable<number>) => metrics.setKnown(known(p)) };
}

describe('traffic history', () => {
  it('stores only the streams that moved: 5,000 idle streams and 3 busy ones cost 3 entries a sample', async () => {
    const ports = Array.from({ length: 5000 }, (_, i) => 10_000 + i);
    const { metrics, history, tick } = setUp(ports);
    // Every stream has had traffic once (so every one has series), before the history's baseline.
    metrics.recordBatch(ports.map((port) => session(port, 1, 1)));
    await history.baseline();
    metrics.recordBatch([session(10_000, 100, 200), session(10_001, 5, 0), session(14_999, 0, 7)]);
    await tick();
    assert.equal(history.entries(), 3);
    await tick();
    assert.equal(history.length, 2);
    assert.equal(history.entries(), 3, 'a sample in which nothing moved adds no entry');
    const [busy, idle] = history.streams([10_000, 12_345]);
    assert.deepEqual(busy?.totals, { bytesIn: 100, bytesOut: 200, sessions: 1 });
    assert.deepEqual(busy?.series, [{ at: '2026-12-04T12:00:10.000Z', bytesIn: 100, bytesOut: 200, sessions: 1 }]);
    assert.deepEqual(idle, { port: 12_345, totals: { bytesIn: 0, bytesOut: 0, sessions: 0 }, series: [] }, 'what came before the baseline is not in the window');
  });

  it('keeps at most its number of samples; the window starts where the oldest sample kept begins', async () => {
    const { metrics, history, tick } = setUp([9000], 5);
    await history.baseline();
    for (let i = 1; i <= 12; i += 1) {
      metrics.recordBatch([session(9000, i, 0)]);
      await tick();
    }
    assert.equal(history.length, 5);
    const [stream] = history.streams([9000]);
    assert.deepEqual(stream?.series.map((point) => point.bytesIn), [8, 9, 10, 11, 12]);
    assert.deepEqual(stream?.totals, { bytesIn: 8 + 9 + 10 + 11 + 12, bytesOut: 0, sessions: 5 });
    assert.deepEqual(history.window(), { intervalMs: 10_000, from: '2026-12-04T12:01:10.000Z', to: '2026-12-04T12:02:00.000Z' });
  });

  it("drops a deleted stream's history; a stream created again on its port starts from zero", async () => {
    const { metrics, history, tick, setKnown } = setUp([9000, 9001]);
    await history.baseline();
    metrics.recordBatch([session(9000, 1000, 1000), session(9001, 10, 10)]);
    await tick();
    setKnown([9001]);
    assert.deepEqual(history.streams([9000])[0]?.series, []);
    assert.equal(history.entries(), 1, "only 9001's entry is left");
    setKnown([9000, 9001]);
    metrics.recordBatch([session(9000, 3, 4)]);
    await tick();
    assert.deepEqual(history.streams([9000])[0]?.totals, { bytesIn: 3, bytesOut: 4, sessions: 1 });
    assert.deepEqual(history.streams([9001])[0]?.totals, { bytesIn: 10, bytesOut: 10, sessions: 1 });
  });

  it('counts an app\'s requests by status class', async () => {
    const { metrics, history, tick } = setUp([]);
    await history.baseline();
    metrics.recordBatch([200, 204, 301, 404, 503, 503].map((status) => ({ kind: 'http' as const, serverName: 'shop.example.com', status, seconds: 0.001 })));
    await tick();
    const [shop, none] = history.apps(['shop', 'blog']);
    assert.deepEqual(shop?.totals, { '1xx': 0, '2xx': 2, '3xx': 1, '4xx': 1, '5xx': 2 });
    assert.equal(shop?.series.length, 1);
    assert.deepEqual(none?.series, []);
  });

  it('a stream deleted while a read is under way is not taken from that read: created again, it counts from zero', async () => {
    let clock = 0;
    let forget: ((gone: { ports: number[]; apps: string[] }) => void) | undefined;
    // The counters as the metrics hold them; the read answers only when the test lets it.
    const counters = new Map([[9000, { bytesIn: 100, bytesOut: 100, sessions: 1 }]]);
    let release: (() => void) | undefined;
    let hold = false;
    const history = new TrafficHistory({
      read: async (): Promise<TrafficTotals> => {
        const copy = new Map([...counters].map(([port, totals]) => [port, { ...totals }]));
        if (hold) await new Promise<void>((resolve) => (release = resolve));
        return { streams: copy, apps: new Map() };
      },
      onForget: (listener) => {
        forget = listener;
        return () => undefined;
      },
      now: () => (clock += 1000),
    });
    await history.baseline();
    counters.set(9000, { bytesIn: 150, bytesOut: 150, sessions: 2 });
    hold = true;
    const sampling = history.sample();
    // Deleted (the metrics drop its series) while the read is held, with the old totals in hand.
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(release !== undefined, 'the read is under way');
    counters.delete(9000);
    forget?.({ ports: [9000], apps: [] });
    release();
    await sampling;
    hold = false;
    assert.deepEqual(history.streams([9000])[0]?.series, [], 'nothing of the deleted stream');
    // Created again: its first totals are all new traffic, not a delta from the stale read.
    counters.set(9000, { bytesIn: 30, bytesOut: 20, sessions: 1 });
    await history.sample();
    const [again] = history.streams([9000]);
    assert.deepEqual(again?.series.map(({ bytesIn, bytesOut, sessions }) => [bytesIn, bytesOut, sessions]), [[30, 20, 1]]);
  });

  it('reads a counter that went down as restarted from zero: its delta is its new value', async () => {
    const values = [10, 25, 5, 5, 8];
    let read = 0;
    let clock = 0;
    const history = new TrafficHistory({
      read: async (): Promise<TrafficTotals> => {
        const value = values[read++] ?? 0;
        return { streams: new Map([[9000, { bytesIn: value, bytesOut: 2 * value, sessions: 1 }]]), apps: new Map() };
      },
      now: () => (clock += 1000),
    });
    await history.baseline();
    for (let i = 1; i < values.length; i += 1) await history.sample();
    const [stream] = history.streams([9000]);
    assert.deepEqual(
      stream?.series.map(({ bytesIn, bytesOut, sessions }) => [bytesIn, bytesOut, sessions]),
      [
        [15, 30, 0],
        [5, 10, 1],
        [3, 6, 0],
      ],
    );
  });

  it('a series disappearing without a deletion (a reset) and coming back counts its new value', async () => {
    const { metrics, history, tick } = setUp([9000]);
    await history.baseline();
    metrics.recordBatch([session(9000, 50, 50)]);
    await tick();
    metrics.streamBytes.reset();
    metrics.streamSessions.reset();
    await tick();
    metrics.recordBatch([session(9000, 7, 0)]);
    await tick();
    assert.deepEqual(history.streams([9000])[0]?.series.map((point) => point.bytesIn), [50, 7]);
  });

  it('property: over any traffic and deletions, the window adds up to what was counted since each stream was last created, and holds only moved streams', async () => {
    const port = fc.integer({ min: 9000, max: 9005 });
    const step = fc.oneof(
      fc.record({ kind: fc.constant('traffic' as const), sessions: fc.array(fc.record({ port, received: fc.nat(10_000), sent: fc.nat(10_000) }), { maxLength: 6 }) }),
      fc.record({ kind: fc.constant('delete' as const), port }),
      fc.record({ kind: fc.constant('create' as const), port }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 30 }), fc.integer({ min: 1, max: 40 }), async (steps, samples) => {
        const all = [9000, 9001, 9002, 9003, 9004, 9005];
        const live = new Set(all);
        const { metrics, history, tick, setKnown } = setUp(live, samples);
        await history.baseline();
        // What each sample saw, per port, to compare the window with.
        const perSample: Array<Map<number, { bytesIn: number; bytesOut: number; sessions: number }>> = [];
        for (const s of steps) {
          const seen = new Map<number, { bytesIn: number; bytesOut: number; sessions: number }>();
          if (s.kind === 'traffic') {
            metrics.recordBatch(s.sessions.map((x) => session(x.port, x.received, x.sent)));
            for (const x of s.sessions) {
              if (!live.has(x.port)) continue;
              const entry = seen.get(x.port) ?? { bytesIn: 0, bytesOut: 0, sessions: 0 };
              entry.bytesIn += x.received;
              entry.bytesOut += x.sent;
              entry.sessions += 1;
              seen.set(x.port, entry);
            }
          } else if (s.kind === 'delete') {
            live.delete(s.port);
            setKnown(live);
            for (const earlier of perSample) earlier.delete(s.port);
          } else {
            live.add(s.port);
            setKnown(live);
          }
          await tick();
          perSample.push(seen);
        }
        const kept = perSample.slice(-samples);
        assert.ok(history.length <= samples);
        assert.equal(history.entries(), kept.reduce((n, seen) => n + seen.size, 0));
        for (const answer of history.streams(all)) {
          const want = { bytesIn: 0, bytesOut: 0, sessions: 0 };
          for (const seen of kept) {
            const entry = seen.get(answer.port);
            if (entry === undefined) continue;
            want.bytesIn += entry.bytesIn;
            want.bytesOut += entry.bytesOut;
            want.sessions += entry.sessions;
          }
          assert.deepEqual(answer.totals, want, `port ${answer.port}`);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('samples on its timer until stopped', async () => {
    const { metrics, history } = setUp([9000]);
    const fast = TrafficHistory.of(metrics, { intervalMs: 20 });
    await fast.start();
    await sleep(150);
    await fast.stop();
    const taken = fast.length;
    assert.ok(taken >= 2, `sampled ${taken} times in 150 ms at 20 ms`);
    await sleep(80);
    assert.equal(fast.length, taken, 'no sample after stop()');
    assert.equal(history.length, 0);
  });
});

describe('GET /v1/traffic', () => {
  const app = express();
  const { history } = setUp([9000]);
  app.use('/v1/traffic', trafficRouter({ trafficHistory: history }));
  app.use(errorHandler(pino({ level: 'silent' })));
  const off = express();
  off.use('/v1/traffic', trafficRouter({ trafficHistory: undefined }));
  off.use(errorHandler(pino({ level: 'silent' })));

  it('answers each port asked, once, in order, with the window', async () => {
    const res = await request(app).get('/v1/traffic/streams?ports=9001,9000,9001');
    assert.equal(res.status, 200);
    assert.deepEqual(
      res.body.streams.map((s: { port: number }) => s.port),
      [9001, 9000],
    );
    assert.equal(res.body.intervalMs, 10_000);
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  for (const [query, field, rule] of [
    ['', 'ports', /is required/],
    ['?ports=', 'ports', /not ""/],
    ['?ports=9000,abc', 'ports', /not "abc"/],
    ['?ports=0', 'ports', /not "0"/],
    ['?ports=65536', 'ports', /not "65536"/],
    ['?ports=9000&ports=9001', 'ports', /must be given once/],
    [`?ports=${Array.from({ length: MAX_TRAFFIC_RESOURCES + 1 }, (_, i) => 1000 + i).join(',')}`, 'ports', new RegExp(`at most ${MAX_TRAFFIC_RESOURCES} \\(got ${MAX_TRAFFIC_RESOURCES + 1}\\)`)],
    [`?ports=${'9'.repeat(10_000)}`, 'ports', /at most 100/],
    ['?ports=9000&port=9001', 'query', /unknown parameter\(s\) "port" \(known: ports\)/],
  ] as const) {
    it(`streams${query.slice(0, 40)}: 400 naming ${field}`, async () => {
      const res = await request(app).get(`/v1/traffic/streams${query}`);
      assert.equal(res.status, 400);
      assert.equal(res.body.error.kind, 'InvalidInput');
      assert.equal(res.body.error.field, field);
      assert.match(res.body.error.message, rule);
    });
  }

  it('apps: names by the app name rule', async () => {
    assert.equal((await request(app).get('/v1/traffic/apps?names=shop,blog')).status, 200);
    const res = await request(app).get('/v1/traffic/apps?names=shop,Bad_Name');
    assert.equal(res.status, 400);
    assert.equal(res.body.error.field, 'names');
    assert.match(res.body.error.message, /must be app names separated by commas.*not "Bad_Name"/);
  });

  it('404 naming the setting when the traffic metrics are off', async () => {
    const res = await request(off).get('/v1/traffic/streams?ports=9000');
    assert.equal(res.status, 404);
    assert.match(res.body.error.message, /TRAFFIC_METRICS=off/);
  });
});

describe('TRAFFIC_HISTORY_INTERVAL', () => {
  it('defaults to 10s, takes 1s to 10m, and refuses anything else naming the variable', () => {
    assert.equal(loadSettings({}).trafficHistoryIntervalMs, 10_000);
    assert.equal(loadSettings({ TRAFFIC_HISTORY_INTERVAL: '1s' }).trafficHistoryIntervalMs, 1000);
    assert.equal(loadSettings({ TRAFFIC_HISTORY_INTERVAL: '10m' }).trafficHistoryIntervalMs, 600_000);
    for (const value of ['500ms', '11m', 'often', '-1s']) {
      assert.throws(() => loadSettings({ TRAFFIC_HISTORY_INTERVAL: value }), /TRAFFIC_HISTORY_INTERVAL: must be (from 1s to 10m|a time such as 10s or 1m)/, value);
    }
  });
});
