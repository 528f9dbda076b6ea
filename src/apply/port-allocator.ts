/**
 * PortAllocator: the one place ports are handed out, to the single writer's planning (a create
 * without a port) and to `getfreeport` (a reservation for a script's later create).
 *
 * Both take turns through one queue, so no two callers are handed the same port; and neither hands
 * out a port that is reserved, or one that the batch being applied is about to write (it is in no
 * file until the swap, so reading the tree alone would miss it). Without this, 20 scripts asking
 * `getfreeport` at once were all handed the same port, and 19 of them got 409 on their create.
 */
import { conflict, type PorticoError } from '../errors.js';
import { allocatePort, type BoundProbe } from '../ports/allocate.js';
import type { PortReservations } from '../ports/reservations.js';
import type { PortRange } from '../settings.js';
import { claimedPorts, type StreamTree } from '../store/tree.js';

/** Host probes `prefetch` runs at once (each a socket of its own for a moment). */
const PREFETCH_WIDTH = 64;

export interface PortAllocatorDeps {
  /** The live stream tree (`ConfigTree.read`). */
  readTree(): Promise<StreamTree>;
  range: PortRange;
  isBound: BoundProbe;
  reservations: PortReservations;
}

/** A port handed out by `reserveFree`, and until when (ms since the epoch) it stays reserved. */
export interface Reservation {
  port: number;
  expiresAt: number;
}

export class PortAllocator {
  /** Ports of batches not yet settled (planned, in no file yet), each with its batch's number. */
  private readonly inFlight = new Map<number, number>();
  private batch = 0;
  /**
   * The host's answers (TCP) for ports `prefetch` asked about for the batch being planned, by port;
   * emptied when the next batch opens. Only that batch's allocations use them.
   */
  private readonly probed = new Map<number, boolean>();
  /** The end of the queue: each caller waits for the one before it. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: PortAllocatorDeps) {}

  get range(): PortRange {
    return this.deps.range;
  }

  /** The probe of the host, for ports a caller names itself. */
  get isBound(): BoundProbe {
    return this.deps.isBound;
  }

  /**
   * For `getfreeport`: the lowest port no file claims, no process holds, nobody has reserved and no
   * batch is writing; reserved for PORT_RESERVATION_TTL. Undefined when there is none.
   */
  reserveFree(): Promise<Reservation | undefined> {
    return this.inTurn(async () => {
      const claimed = claimedPorts(await this.deps.readTree());
      const port = await this.lowestFree(claimed, false);
      return port === undefined ? undefined : { port, expiresAt: this.deps.reservations.reserve(port) };
    });
  }

  /**
   * For planning a create without a port: the lowest port of the range not in `claimed` (the
   * tree as the batch leaves it so far), not reserved and not bound; held until `settle`.
   */
  allocate(claimed: { has(port: number): boolean }, udp: boolean): Promise<number | undefined> {
    return this.inTurn(async () => {
      const port = await this.lowestFree(claimed, udp, !udp);
      if (port !== undefined) this.inFlight.set(port, this.batch);
      return port;
    });
  }

  /** Starts a batch (or a dry run): the ports it holds from now on are freed by `settle(<its number>)`. */
  openBatch(): number {
    this.batch += 1;
    this.probed.clear();
    return this.batch;
  }

  /**
   * For a batch that will allocate `count` ports (TCP): asks the host at once about the `count` lowest
   * ports that are not `claimed`, reserved or held, which its allocations would otherwise ask about
   * one after another, each waiting for its own bind and close (200 creates: 200 turns of the event
   * loop in the middle of planning). Each allocation of this batch then takes the answer from here;
   * a port asked about is the same port, asked during the same planning, only sooner; a port not
   * asked about (one that became claimed, or past the last answer) is probed as before.
   */
  prefetch(claimed: { has(port: number): boolean }, count: number): Promise<void> {
    return this.inTurn(async () => {
      const { range, reservations, isBound } = this.deps;
      const ports: number[] = [];
      for (let port = range.from; port <= range.to && ports.length < count; port += 1) {
        if (!claimed.has(port) && !reservations.has(port) && !this.inFlight.has(port)) ports.push(port);
      }
      for (let i = 0; i < ports.length; i += PREFETCH_WIDTH) {
        const some = ports.slice(i, i + PREFETCH_WIDTH);
        const answers = await Promise.all(some.map((port) => isBound(port, false)));
        some.forEach((port, j) => this.probed.set(port, answers[j] as boolean));
      }
    });
  }

  /** Marks `port` as written by the batch being planned (a create on a port the caller named). */
  hold(port: number): void {
    this.inFlight.set(port, this.batch);
  }

  /**
   * Batch `batch` is over: its ports are in files now, or free again. A stream created on a reserved
   * port used the reservation up (whoever created it: reservations name nobody).
   *
   * It waits its turn: a getfreeport under way may have read the tree before the batch's files were
   * swapped in, and only the hold keeps it from handing out a port that now has a stream.
   */
  settle(batch: number, created: number[]): Promise<void> {
    return this.inTurn(async () => {
      if (batch === this.batch) this.probed.clear();
      for (const [port, holder] of this.inFlight) if (holder === batch) this.inFlight.delete(port);
      for (const port of created) this.deps.reservations.release(port);
    });
  }

  /** Live reservations, for /v1/status. */
  reservedCount(): number {
    return this.deps.reservations.count();
  }

  /** The answer when the range has no port left, saying how many of them are only reserved. */
  rangeFull(): PorticoError {
    const { from, to } = this.deps.range;
    const reserved = this.reservedCount();
    const ttl = this.deps.reservations.ttlMs;
    const forUpTo = ttl % 1000 === 0 ? `${ttl / 1000} s` : `${ttl} ms`;
    const why = reserved === 0 ? '' : ` (${reserved} of them reserved by getfreeport for up to ${forUpTo}; a create on a reserved port uses it)`;
    return conflict(`no free port in ${from}-${to}${why}`, 'port');
  }

  /** `prefetched`: a TCP allocation of the batch being planned, which may use `prefetch`'s answers. */
  private async lowestFree(claimed: { has(port: number): boolean }, udp: boolean, prefetched = false): Promise<number | undefined> {
    const { reservations, isBound } = this.deps;
    const taken = (port: number): boolean => claimed.has(port) || reservations.has(port) || this.inFlight.has(port);
    const probe = async (port: number): Promise<boolean> => (prefetched ? this.probed.get(port) : undefined) ?? (await isBound(port, udp));
    // A port may be held by a plan while the host is asked about it: looked at again after the probe.
    return allocatePort(this.deps.range, { has: taken }, async (port) => (await probe(port)) || taken(port));
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turn.then(work);
    this.turn = result.catch(() => undefined);
    return result;
  }
}
