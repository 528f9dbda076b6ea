/**
 * The running nginx, whoever runs it: Portico itself (managed) or someone else (external).
 */
export interface NginxProcess {
  readonly mode: 'managed' | 'external';
  /** Times the master was restarted after it died (managed only). */
  readonly restarts: number;
  /** True when the master was found running and adopted rather than started. */
  readonly adopted: boolean;
  /** The master's pid, or undefined while nginx is not running. */
  masterPid(): Promise<number | undefined>;
  /** Managed: adopt or start the master. External: nothing to start. */
  start(): Promise<void>;
  /** Managed: stop the master gracefully. External: leave it be. */
  stop(): Promise<void>;
  /** Stops watching the master without stopping it. */
  release(): void;
}
