/**
 * ExternalNginx: an nginx run by someone else (the neighbour of a sidecar sharing its config volume
 * and pid namespace). Portico never starts or stops it; it finds the master through its pid file.
 */
import { masterFromPidFile } from './master.js';
import type { NginxProcess } from './process.js';

export class ExternalNginx implements NginxProcess {
  readonly mode = 'external' as const;
  readonly restarts = 0;
  readonly adopted = true;

  constructor(private readonly pidFile: string) {}

  masterPid(): Promise<number | undefined> {
    return masterFromPidFile(this.pidFile);
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  release(): void {}
}
