/**
 * Things to undo, run last-in first-out, once. A second `run()` (a signal arriving while a failure
 * is being cleaned up, or the reverse) waits for the first, so nobody exits halfway through.
 */
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

  private async runSteps(): Promise<void> {
    for (const step of [...this.steps].reverse()) {
      await step.run().catch((error: unknown) => process.stderr.write(`bench: cleanup "${step.name}" failed: ${String(error)}\n`));
    }
  }
}
