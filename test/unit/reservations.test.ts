/**
 * Port reservations and the allocator that hands ports out: a port getfreeport hands out is not
 * handed out again for PORT_RESERVATION_TTL, by getfreeport nor by a create without a port; the first
 * create on it uses it up; it expires by the (injected) clock. Concurrent callers get distinct ports.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PortAllocator } from '../../src/apply/port-allocator.js';
import { PortReservations } from '../../src/ports/reservations.js';
import type { StreamTree } from '../../src/store/tree.js';
import type { Stream } from '../../src/model/stream.js';

/** A clock tests move by hand. */
function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const emptyTree = (): StreamTree => ({ streams: new Map(), unreadable: [], foreign: [], files: [] });

function treeWith(ports: number[]): StreamTree {
  const tree = emptyTree();
  for (const port of ports) tree.streams.set(port, { port, upstreams: [{ address: '127.0.0.1:1' }] } as Stream);
  return tree;
}

/**
 * A host probe whose first question about `port` waits for `release()` (then answers `bound`);
 * `asked` settles once that question was asked. Every other question is answered at once.
 */
function slowProbe(port: number, bound: boolean) {
  let release = (): void => undefined;
  let asked = (): void => undefined;
  const waiting = new Promise<void>((resolve) => (asked = resolve));
  let first = true;
  return {
    asked: waiting,
    release: () => release(),
    bound: (p: number): Promise<boolean> => {
      if (p !== port) return Promise.resolve(false);
      if (!first) return Promise.resolve(bound);
      first = false;
      asked();
      return new Promise<boolean>((resolve) => (release = () => resolve(bound)));
    },
  };
}

function allocator(options: { ttlMs?: number; clock?: () => number; tree?: () => StreamTree; bound?: (port: number) => Promise<boolean>; to?: number } = {}) {
  const reservations = new PortReservations(options.ttlMs ?? 30_000, options.clock ?? Date.now);
  const ports = new PortAllocator({
    readTree: async () => (options.tree ?? emptyTree)(),
    range: { from: 9000, to: options.to ?? 9009 },
    isBound: options.bound ?? (async () => false),
    reservations,
  });
  return { ports, reservations };
}

describe('PortReservations', () => {
  it('holds a port until its TTL has passed, by the clock it is given', () => {
    const clock = manualClock();
    const reservations = new PortReservations(30_000, clock.now);
    assert.equal(reservations.reserve(9000), clock.now() + 30_000);
    assert.equal(reservations.has(9000), true);
    assert.equal(reservations.has(9001), false);
    clock.advance(29_999);
    assert.equal(reservations.has(9000), true, 'still reserved 1 ms before the TTL');
    assert.equal(reservations.count(), 1);
    clock.advance(1);
    assert.equal(reservations.has(9000), false, 'expired at the TTL');
    assert.equal(reservations.count(), 0);
  });

  it('counts only live reservations, and release ends one at once', () => {
    const clock = manualClock();
    const reservations = new PortReservations(1000, clock.now);
    reservations.reserve(9000);
    clock.advance(500);
    reservations.reserve(9001);
    reservations.reserve(9002);
    assert.equal(reservations.count(), 3);
    reservations.release(9002);
    assert.equal(reservations.count(), 2);
    clock.advance(500);
    assert.equal(reservations.count(), 1, 'the first one expired');
    assert.equal(reservations.has(9001), true);
  });

  it('with a TTL of 0 holds nothing (reservations off)', () => {
    const reservations = new PortReservations(0);
    reservations.reserve(9000);
    assert.equal(reservations.has(9000), false);
    assert.equal(reservations.count(), 0);
  });
});

describe('PortAllocator', () => {
  it('getfreeport hands out each port once while it is reserved, then the same port again once it expired', async () => {
    const clock = manualClock();
    const { ports } = allocator({ ttlMs: 30_000, clock: clock.now, to: 9002 });
    assert.deepEqual(await ports.reserveFree(), { port: 9000, expiresAt: clock.now() + 30_000 });
    assert.equal((await ports.reserveFree())?.port, 9001);
    assert.equal((await ports.reserveFree())?.port, 9002);
    assert.equal(await ports.reserveFree(), undefined, 'every port is reserved');
    assert.equal(ports.reservedCount(), 3);
    clock.advance(30_000);
    assert.equal(ports.reservedCount(), 0);
    assert.equal((await ports.reserveFree())?.port, 9000);
  });

  it('20 concurrent getfreeport calls get 20 distinct ports, even when the host probe is slow', async () => {
    const { ports } = allocator({ to: 9029, bound: async () => sleep(Math.random() * 5).then(() => false) });
    const handed = await Promise.all(Array.from({ length: 20 }, () => ports.reserveFree()));
    const numbers = handed.map((r) => r?.port);
    assert.equal(new Set(numbers).size, 20, `ports handed out: ${numbers.join(', ')}`);
    assert.deepEqual([...numbers].sort(), Array.from({ length: 20 }, (_, i) => 9000 + i));
  });

  it('a create without a port is never allocated a reserved port, and holds its own against getfreeport until settled', async () => {
    const { ports } = allocator();
    assert.equal((await ports.reserveFree())?.port, 9000);
    const batch = ports.openBatch();
    const allocated = await ports.allocate(new Set(), false);
    assert.equal(allocated, 9001, 'the reserved 9000 is skipped');
    // The batch has not written 9001 yet: getfreeport must not hand it out meanwhile.
    assert.equal((await ports.reserveFree())?.port, 9002);
    await ports.settle(batch, []);
    assert.equal((await ports.reserveFree())?.port, 9001, 'the batch failed: 9001 is free again');
  });

  it('a port the batch writes for a create naming it is held against getfreeport until the batch settles', async () => {
    let tree = emptyTree();
    const { ports } = allocator({ tree: () => tree });
    const batch = ports.openBatch();
    ports.hold(9000);
    assert.equal((await ports.reserveFree())?.port, 9001);
    tree = treeWith([9000]);
    await ports.settle(batch, [9000]);
    assert.equal((await ports.reserveFree())?.port, 9002, 'the file claims 9000 now');
  });

  it('a stream created on a reserved port uses the reservation up: it is not counted, and is free after the stream goes', async () => {
    let tree = emptyTree();
    const { ports } = allocator({ tree: () => tree });
    assert.equal((await ports.reserveFree())?.port, 9000);
    const batch = ports.openBatch();
    ports.hold(9000);
    tree = treeWith([9000]);
    await ports.settle(batch, [9000]);
    assert.equal(ports.reservedCount(), 0);
    tree = emptyTree(); // the stream was removed
    assert.equal((await ports.reserveFree())?.port, 9000);
  });

  it('a create that failed on a reserved port leaves the reservation in place for a retry', async () => {
    const { ports } = allocator();
    assert.equal((await ports.reserveFree())?.port, 9000);
    const batch = ports.openBatch();
    ports.hold(9000);
    await ports.settle(batch, []); // nginx refused it
    assert.equal(ports.reservedCount(), 1);
    assert.equal((await ports.reserveFree())?.port, 9001);
  });

  it('skips ports files claim and ports the host has bound, and says how many are only reserved when the range is full', async () => {
    const { ports } = allocator({ to: 9003, tree: () => treeWith([9000]), bound: async (port) => port === 9001 });
    assert.equal((await ports.reserveFree())?.port, 9002);
    assert.equal((await ports.reserveFree())?.port, 9003);
    assert.equal(await ports.allocate(new Set([9000]), false), undefined);
    const full = ports.rangeFull();
    assert.equal(full.kind, 'Conflict');
    assert.equal(full.field, 'port');
    assert.equal(full.message, 'no free port in 9000-9003 (2 of them reserved by getfreeport for up to 30 s; a create on a reserved port uses it)');
  });

  it('a port a plan holds while the host is being asked about it is not handed out', async () => {
    const probe = slowProbe(9000, false);
    const { ports } = allocator({ bound: probe.bound });
    const reserving = ports.reserveFree();
    await probe.asked;
    ports.hold(9000); // a create naming 9000 is planned while the probe of 9000 is under way
    probe.release();
    assert.equal((await reserving)?.port, 9001);
  });

  it('a getfreeport that read the tree before a batch swapped its file in does not hand out the batch\'s port', async () => {
    let tree = emptyTree();
    // The first probe of 9000 is slow (and finds it bound): the batch commits 9001 meanwhile.
    const probe = slowProbe(9000, true);
    const { ports } = allocator({ tree: () => tree, bound: probe.bound });
    const batch = ports.openBatch();
    ports.hold(9001);
    const reserving = ports.reserveFree(); // reads the tree now: no 9001 in it yet
    await probe.asked;
    tree = treeWith([9001]);
    const settled = ports.settle(batch, [9001]);
    probe.release();
    assert.equal((await reserving)?.port, 9002);
    await settled;
    assert.equal((await ports.reserveFree())?.port, 9003, 'the file claims 9001 now');
  });

  it('settling one batch keeps the ports of the next one held', async () => {
    const { ports } = allocator();
    const first = ports.openBatch();
    ports.hold(9000);
    const second = ports.openBatch();
    ports.hold(9001);
    await ports.settle(first, []);
    assert.equal((await ports.reserveFree())?.port, 9000);
    await ports.settle(second, []);
    assert.equal((await ports.reserveFree())?.port, 9001);
  });

  it('a failing tree read fails that call only; the next caller gets its turn', async () => {
    let fail = true;
    const reservations = new PortReservations(30_000);
    const ports = new PortAllocator({
      readTree: async () => {
        if (fail) throw new Error('disk gone');
        return emptyTree();
      },
      range: { from: 9000, to: 9009 },
      isBound: async () => false,
      reservations,
    });
    await assert.rejects(ports.reserveFree(), /disk gone/);
    fail = false;
    assert.equal((await ports.reserveFree())?.port, 9000);
  });

  it('prefetch asks the host about a batch\'s ports at once; its allocations use the answers, and probe the rest', async () => {
    const asked: number[] = [];
    let inFlight = 0;
    let widest = 0;
    const bound = async (port: number): Promise<boolean> => {
      asked.push(port);
      inFlight += 1;
      widest = Math.max(widest, inFlight);
      await sleep(5);
      inFlight -= 1;
      return port === 9002;
    };
    const { ports } = allocator({ bound });
    assert.equal((await ports.reserveFree())?.port, 9000, 'reserved before the batch: not asked about again');
    asked.length = 0;
    ports.openBatch();
    const claimed = new Set<number>([9001]);
    await ports.prefetch(claimed, 3);
    assert.deepEqual(asked, [9002, 9003, 9004], 'the 3 lowest ports neither claimed, reserved nor held');
    assert.equal(widest, 3, 'asked at once');
    asked.length = 0;
    // A create naming 9003 was planned meanwhile: the allocations skip it, and ask about 9005 themselves.
    claimed.add(9003);
    const allocated = [];
    for (let i = 0; i < 3; i += 1) {
      const port = await ports.allocate(claimed, false);
      allocated.push(port);
      claimed.add(port as number);
    }
    assert.deepEqual(allocated, [9004, 9005, 9006], '9002 is bound (the prefetched answer), 9003 claimed');
    assert.deepEqual(asked, [9005, 9006], 'the prefetched ports were not asked about again');
    asked.length = 0;
    // A UDP allocation asks the host itself (the prefetch asked about TCP only).
    assert.equal(await ports.allocate(new Set([9001, 9003, 9004, 9005, 9006]), true), 9007);
    assert.deepEqual(asked, [9002, 9007]);
    // The next batch asks afresh.
    ports.openBatch();
    asked.length = 0;
    assert.equal(await ports.allocate(new Set(), false), 9001);
    assert.deepEqual(asked, [9001]);
  });
});
