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
      const port = await this.lowestFree(claimed, udp);
      if (port !== undefined) this.inFlight.set(port, this.batch);
      return port;
    });
  }

  /** Starts a batch (or a dry run): the ports it holds from now on are freed by `settle(<its number>)`. */
  openBatch(): number {
    this.batch += 1;
    return this.batch;
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

  private async lowestFree(claimed: { has(port: number): boolean }, udp: boolean): Promise<number | undefined> {
    const { reservations, isBound } = this.deps;
    const taken = (port: number): boolean => claimed.has(port) || reservations.has(port) || this.inFlight.has(port);
    // A port may be held by a plan while the host is asked about it: looked at again after the probe.
    return allocatePort(this.deps.range, { has: taken }, async (port) => (await isBound(port, udp)) || taken(port));
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turn.then(work);
    this.turn = result.catch(() => undefined);
    return result;
  }
}
