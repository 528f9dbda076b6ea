/**
 * Does this host let nginx route QUIC packets by eBPF (`quic_bpf on`)? nginx needs CAP_BPF or
 * CAP_SYS_ADMIN and a bpf(2) that no seccomp filter refuses (Docker's default profile refuses it to
 * a container without those capabilities), on Linux 5.7 or later. `nginx -t` cannot tell: it skips
 * quic_bpf's work. What nginx does when bpf(2) is refused, measured with nginx 1.30.4 (capabilities
 * dropped with setpriv or capsh, or bpf(2) refused by a seccomp filter; the same lines either way):
 * - at start, with a QUIC listener: `[alert] failed to create BPF map (1: Operation not permitted)`,
 *   `[emerg] ngx_quic_bpf_module failed to initialize, check limits`, and the master exits 1;
 * - at a reload that brings the first QUIC listener (a managed nginx starts with none until the first
 *   app), the same alert, then `[emerg] ngx_quic_bpf_module failed to initialize properly, ignored`,
 *   and the new workers start anyway: a reload looks successful with QUIC unrouted.
 * Hence a probe at start-up, before the real nginx: a throwaway run of the real binary on a config
 * with one QUIC listener and `quic_bpf on`, made to exit on its own (render/main.ts quicBpfProbeMain).
 */
import { runToExit, type NginxCommand, type RunResult } from './exec.js';

/** What the probe found: quic_bpf works, or nginx's own lines on why not. */
export type QuicBpfProbe = { works: true; ms: number } | { works: false; lines: string[]; portTaken: boolean; ms: number };

const FAILURE = /\[(emerg|alert|crit)\]/;

/**
 * Reads one probe run: it worked when nginx's only failure is the pid file it was made to fail on
 * (`pidFile`), which it writes only after quic_bpf's work is done. Anything else (a refused bpf(2),
 * an nginx without QUIC, a port taken meanwhile, a run that did not end) is a failure, with nginx's
 * lines. Pure.
 */
export function judgeQuicBpfProbe(run: Pick<RunResult, 'exitCode' | 'lines' | 'timedOut'>, pidFile: string, timeoutMs: number, ms: number): QuicBpfProbe {
  if (run.timedOut) return { works: false, lines: [`nginx did not exit within ${timeoutMs} ms`], portTaken: false, ms };
  const failures = run.lines.filter((line) => FAILURE.test(line));
  const pidFailure = `open() "${pidFile}" failed`;
  if (run.exitCode !== 0 && failures.length > 0 && failures.every((line) => line.includes(pidFailure))) return { works: true, ms };
  const lines = failures.filter((line) => !line.includes(pidFailure));
  return {
    works: false,
    lines: lines.length > 0 ? lines : [...run.lines.slice(-5), `exit code ${run.exitCode ?? 'none'}`],
    // nginx tries a taken port five times, 500 ms apart, then gives up: another process took it.
    portTaken: lines.some((line) => /bind\(\) to \S+ failed \(98: /.test(line)),
    ms,
  };
}

/** Runs the probe config `conf` (its pid file `pidFile`) and judges it. */
export async function probeQuicBpf(cmd: NginxCommand, conf: string, pidFile: string): Promise<QuicBpfProbe> {
  const started = performance.now();
  const run = await runToExit(cmd, conf);
  return judgeQuicBpfProbe(run, pidFile, cmd.timeoutMs, Math.round(performance.now() - started));
}
