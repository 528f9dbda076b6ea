/**
 * Arrivals: the changes on their way into the applier's queue. A burst of requests (200 parallel
 * creates) reaches the queue over many turns of the event loop: each request is accepted, read,
 * routed (express's routers hand it on through `setImmediate`) and validated first, and its client
 * may still be opening connections. A batch that starts with the first change to arrive holds only
 * those that made it by then; the rest wait for a second and a third batch, each with its own
 * `nginx -t`, reload and commit (at 0 streams, 200 parallel creates took 2 or 3 batches).
 *
 * So before a batch takes its changes from the queue (`gathered`), it waits while a request that
 * arrived to make a change has not queued it yet (nor been answered without one); and, once it has
 * waited for any, as long as such requests keep arriving less than `quietMs` apart; `maxWaitMs` at
 * most in all. A request that arrived more than `maxWaitMs` ago holds nobody up (a slow upload is
 * not waited for batch after batch). With nothing else on its way, as for one create alone, a batch
 * waits not at all.
 */

/** The longest a batch waits for the changes on their way (see above). */
export const GATHER_MAX_MS = 100;
/** Once it waited: the pause in arrivals after which a batch stops waiting for more. */
export const GATHER_QUIET_MS = 10;

export class Arrivals {
  /** Requests on their way, by request id, with the time they arrived (`performance.now()`). */
  private readonly onTheWay = new Map<string, number>();
  /** When the last request on its way arrived. */
  private lastArrival = Number.NEGATIVE_INFINITY;
  /** Wakes the batch waiting in `gathered` (one at a time: the applier is the single writer). */
  private wake: (() => void) | undefined;

  constructor(
    private readonly maxWaitMs = GATHER_MAX_MS,
    private readonly quietMs = GATHER_QUIET_MS,
  ) {}

  /** A request that may queue a change has arrived. */
  arrived(id: string): void {
    this.lastArrival = performance.now();
    this.onTheWay.set(id, this.lastArrival);
  }

  /** It has queued its change, or it was answered (or its client went away) without one. */
  settled(id: string): void {
    if (!this.onTheWay.delete(id) || this.wake === undefined) return;
    if (this.young(performance.now()) === 0) this.wake();
  }

  /** Resolves when the batch about to start has waited enough (see above); at once when nothing is on its way. */
  async gathered(): Promise<void> {
    const deadline = performance.now() + this.maxWaitMs;
    let waited = false;
    for (;;) {
      const now = performance.now();
      if (now >= deadline) return;
      if (this.young(now) > 0) {
        waited = true;
        await this.sleep(Math.min(deadline, this.nextAgeOut(now)) - now, true);
      } else if (waited && now - this.lastArrival < this.quietMs) {
        await this.sleep(Math.min(deadline, this.lastArrival + this.quietMs) - now, false);
      } else {
        return;
      }
    }
  }

  /** Requests on their way that arrived less than `maxWaitMs` before `now`. */
  private young(now: number): number {
    let young = 0;
    for (const at of this.onTheWay.values()) if (now - at < this.maxWaitMs) young += 1;
    return young;
  }

  /** When the next young request stops counting as young. */
  private nextAgeOut(now: number): number {
    let first = Number.POSITIVE_INFINITY;
    for (const at of this.onTheWay.values()) if (now - at < this.maxWaitMs) first = Math.min(first, at + this.maxWaitMs);
    return first;
  }

  /** Sleeps `ms`; `wakeable`: or until `settled` finds nothing young on its way. */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      if (wakeable) this.wake = done;
    });
  }
}
