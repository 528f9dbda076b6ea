/**
 * Port reservations: a port handed out by `GET /getfreeport` (or `/v1/ports/free`) is held for
 * PORT_RESERVATION_TTL, so that the script which asked can create its stream on it before anyone is
 * handed it again. A reservation names nobody (stream-conductor's scripts carry no identity): the
 * first create on the port uses it up, whoever sends it. They live in memory only; a restart forgets
 * them, which costs a script at most a 409 it would have had without them.
 *
 * The clock is injected so that expiry can be tested without waiting.
 */

export type Clock = () => number;

export class PortReservations {
  /** Expiry time (ms, by `now`) of each reserved port. */
  private readonly until = new Map<number, number>();

  /** `ttlMs` 0 turns reservations off: `reserve` then holds nothing. */
  constructor(
    readonly ttlMs: number,
    private readonly now: Clock = Date.now,
  ) {}

  /** Reserves `port` until TTL from now; answers that time (ms since the epoch, by the clock). */
  reserve(port: number): number {
    const expires = this.now() + this.ttlMs;
    if (this.ttlMs > 0) this.until.set(port, expires);
    return expires;
  }

  /** True while `port` is reserved and its reservation has not expired. */
  has(port: number): boolean {
    const expires = this.until.get(port);
    if (expires === undefined) return false;
    if (expires > this.now()) return true;
    this.until.delete(port);
    return false;
  }

  /** Ends the reservation of `port`, if any: a stream now exists on it. */
  release(port: number): void {
    this.until.delete(port);
  }

  /** How many reservations are live. */
  count(): number {
    const now = this.now();
    for (const [port, expires] of this.until) if (expires <= now) this.until.delete(port);
    return this.until.size;
  }
}
