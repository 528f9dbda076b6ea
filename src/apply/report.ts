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

export class PhaseTimer {
  private readonly started = performance.now();
  private last = this.started;
  private readonly phases: Record<string, number> = {};

  /** Ends the phase called `name` (the time since the previous mark). */
  mark(name: string): void {
    const now = performance.now();
    this.phases[name] = Math.round((now - this.last) * 100) / 100;
    this.last = now;
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
