/**
 * wrk (Debian's package) as the HTTP load generator: one run, its requests and errors parsed from
 * its summary.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The path of wrk, or undefined when it is not installed. */
export async function wrkAvailable(): Promise<string | undefined> {
  for (const candidate of ['/usr/bin/wrk', '/usr/local/bin/wrk']) {
    const ok = await run(candidate, ['--version']).then(
      () => true,
      // wrk --version prints its banner and exits 1.
      (error: { stdout?: string }) => String(error.stdout ?? '').includes('wrk'),
    );
    if (ok) return candidate;
  }
  return undefined;
}

export interface WrkResult {
  requests: number;
  ms: number;
  /** Socket errors and non-2xx/3xx answers. */
  errors: number;
}

/** Runs wrk with one thread against 127.0.0.1:`port`, Host `host`, and parses its summary. */
export async function runWrk(wrk: string, o: { port: number; host: string; connections: number; seconds: number }): Promise<WrkResult> {
  const args = ['-t1', `-c${o.connections}`, `-d${o.seconds}s`, '-H', `Host: ${o.host}`, `http://127.0.0.1:${o.port}/`];
  const { stdout } = await run(wrk, args, { timeout: (o.seconds + 30) * 1000 });
  const summary = /(\d+) requests in ([\d.]+)(us|ms|s|m)\b/.exec(stdout);
  if (summary === null) throw new Error(`wrk ${args.join(' ')}: no summary in its output:\n${stdout}`);
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[summary[3] as 'us' | 'ms' | 's' | 'm'];
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errors = non2xx + (socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0));
  return { requests: Number(summary[1]), ms: Number(summary[2]) * unit, errors };
}
