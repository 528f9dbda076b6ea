/**
 * Things to undo, run last-in first-out, once. A second `run()` (a signal arriving while a failure
 * is being cleaned up, or the reverse) waits for the first, so nobody exits halfway through.
 */
import os from 'node:os';

export class Cleanup {
  private readonly steps: Array<{ name: string; run: () => Promise<unknown> }> = [];
  private running: Promise<void> | undefined;

  push(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run });
  }

  run(): Promise<void> {
    this.running ??= this.runSteps();
    return this.running;
  }

  /** The signal that interrupted the bench, once one has (SIGINT, SIGTERM). */
  stoppedBy: NodeJS.Signals | undefined;

  /** On SIGINT or SIGTERM: runs the steps, then exits as the signal would have. */
  stopOnSignals(progress: (line: string) => void): void {
    const interrupted = (signal: NodeJS.Signals): void => {
      this.stoppedBy = signal;
      progress(`${signal}: stopping what was started`);
      void this.run().finally(() => process.exit(128 + (os.constants.signals[signal] ?? 0)));
    };
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  }

  /**
   * Runs a bench's `measure` with this cleanup stopping it on SIGINT or SIGTERM, then runs the
   * steps, on failure too (after `onFailure`, which prints what helps to diagnose it) and rethrows.
   * Interrupted by a signal, answers undefined: the handler stops things and exits.
   */
  async around<T>(progress: (line: string) => void, measure: () => Promise<T>, onFailure?: () => Promise<void> | void): Promise<T | undefined> {
    this.stopOnSignals(progress);
    let measured: T;
    try {
      measured = await measure();
    } catch (error) {
      // Interrupted: the failure is only the signal handler stopping things under us; it exits.
      if (this.stoppedBy !== undefined) {
        await this.run();
        return undefined;
      }
      await onFailure?.();
      await this.run();
      throw error;
    }
    await this.run();
    return measured;
  }

  private async runSteps(): Promise<void> {
    for (const step of [...this.steps].reverse()) {
      await step.run().catch((error: unknown) => process.stderr.write(`bench: cleanup "${step.name}" failed: ${String(error)}\n`));
    }
  }
}
