/**
 * The one place nginx is executed. Every call has a timeout and answers nginx's own words.
 */
import { execa } from 'execa';
import { PorticoError } from '../errors.js';

export interface NginxCommand {
  bin: string;
  /** `-p` prefix, for managed mode; undefined lets nginx use its compiled-in prefix. */
  prefix: string | undefined;
  timeoutMs: number;
}

export interface TestResult {
  ok: boolean;
  /** nginx's stderr, line by line, without the noise of a passing test. */
  lines: string[];
  exitCode: number;
  command: string;
}

/** An nginx log line without its time stamp and pid#tid: `nginx: [emerg] host not found ...`. */
export function tidyLogLine(line: string): string {
  return line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (?:\*\d+ )?/, 'nginx: [$1] ');
}

function prefixArgs(cmd: NginxCommand): string[] {
  return cmd.prefix === undefined ? [] : ['-p', `${cmd.prefix}/`];
}

/** Runs `nginx -t` on `conf`; a failing test is an answer (ok: false), not an exception. */
export async function testConfig(cmd: NginxCommand, conf: string): Promise<TestResult> {
  const args = [...prefixArgs(cmd), '-t', '-q', '-e', 'stderr', '-c', conf];
  const result = await execa(cmd.bin, args, { reject: false, timeout: cmd.timeoutMs, stdin: 'ignore' });
  const command = `${cmd.bin} ${args.join(' ')}`;
  if (result.timedOut) {
    throw new PorticoError('NginxUnavailable', `nginx -t did not finish within ${cmd.timeoutMs} ms`, { command });
  }
  if (result.failed && result.exitCode === undefined) {
    throw new PorticoError('NginxUnavailable', `cannot run ${cmd.bin}: ${result.shortMessage}`, { command, cause: result });
  }
  const lines = String(result.stderr)
    .split('\n')
    .map((line) => tidyLogLine(line.trim()))
    .filter((line) => line !== '' && !/configuration file .* test (?:is successful|failed)$/.test(line));
  return { ok: result.exitCode === 0, lines, exitCode: result.exitCode ?? -1, command };
}

export interface NginxBuild {
  version: string;
  modules: string[];
}

/** Reads `nginx -V`: the version and the `--with-*` modules it was built with. */
export async function describeBuild(bin: string, timeoutMs: number): Promise<NginxBuild> {
  const result = await execa(bin, ['-V'], { reject: false, timeout: timeoutMs, stdin: 'ignore' });
  const text = `${result.stdout}\n${result.stderr}`;
  const version = /nginx version: nginx\/(\S+)/.exec(text)?.[1];
  if (result.exitCode !== 0 || version === undefined) {
    throw new PorticoError('NginxUnavailable', `cannot run ${bin} -V: ${result.shortMessage ?? text.trim()}`, {
      command: `${bin} -V`,
    });
  }
  const modules = [...text.matchAll(/--with-([a-z0-9_]+module|stream|threads)\b/g)].map((m) => m[1] as string);
  return { version, modules: [...new Set(modules)].sort() };
}

/** The modules Portico's configs rely on. */
export const REQUIRED_MODULES = [
  'http_ssl_module',
  'http_v2_module',
  'http_v3_module',
  'stream',
  'stream_realip_module',
  'stream_ssl_module',
  'stream_ssl_preread_module',
];

/**
 * Starts the nginx master of managed mode in its own session and process group, so that a crash of
 * Portico (even a kill of Portico's whole process group) leaves the data plane serving. The shell
 * raises the open-files limit to the hard limit first: the master opens every listening socket
 * itself, and `worker_rlimit_nofile` covers only the workers.
 */
export function spawnMaster(cmd: NginxCommand, conf: string, errorLog: string) {
  const args = [...prefixArgs(cmd), '-c', conf, '-e', errorLog];
  return execa('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', cmd.bin, ...args], {
    detached: true,
    cleanup: false,
    reject: false,
    stdio: 'ignore',
  });
}
