/**
 * Phase timings of one batch, for the batch's log line and /v1/status.
 */

export interface BatchReport {
  at: string;
  outcome: 'applied' | 'unchanged' | 'rejected' | 'rolled-back';
  /** Changes the batch held, and how many of them were committed. */
  changes: number;
  applied: number;
  /** Milliseconds each phase took, in the order they ran. */
  phasesMs: Record<string, number>;
  totalMs: number;
}

/** Runs right after a phase ends; only PORTICO_TEST_DELAY installs one (see `Applier`). */
export type AfterPhase = (name: string) => Promise<void>;

export class PhaseTimer {
  private readonly started = performance.now();
  private last = this.started;
  private readonly phases: Record<string, number> = {};

  /** `afterPhase` is for tests only; without it (always, outside tests) `mark` settles at once. */
  constructor(private readonly afterPhase?: AfterPhase) {}

  /** Ends the phase called `name` (the time since the previous mark), then runs the test hook, if any. */
  async mark(name: string): Promise<void> {
    const now = performance.now();
    this.phases[name] = Math.round((now - this.last) * 100) / 100;
    this.last = now;
    if (this.afterPhase === undefined) return;
    await this.afterPhase(name);
    // The pause belongs to no phase: the timings stay those of the work.
    this.last = performance.now();
  }

  report(outcome: BatchReport['outcome'], changes: number, applied: number): BatchReport {
    return {
      at: new Date().toISOString(),
      outcome,
      changes,
      applied,
      phasesMs: { ...this.phases },
      totalMs: Math.round((performance.now() - this.started) * 100) / 100,
    };
  }
}
