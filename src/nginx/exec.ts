/**
 * The one place nginx is executed. Every call has a timeout and answers nginx's own words.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

interface Finished {
  exitCode: number | undefined;
  timedOut: boolean;
  /** Why it could not run (spawn failed), or undefined. */
  error: string | undefined;
  stderr: string;
}

/**
 * Runs `bin` with stdout to /dev/null and stderr to an unlinked scratch file, never a pipe: node's
 * pipes are socket pairs, and a log path that links to /dev/stdout or /dev/stderr (nginx's official
 * image links /var/log/nginx/access.log and error.log so) cannot be opened through /proc/self/fd when
 * that is a socket (ENXIO). Through pipes, `nginx -t` would refuse a config its master runs.
 */
async function runToFile(bin: string, args: string[], timeoutMs: number): Promise<Finished> {
  const path = join(tmpdir(), `portico-nginx-t-${process.pid}-${randomBytes(6).toString('hex')}`);
  const output = await open(path, 'wx+', 0o600);
  try {
    await unlink(path);
    const finished = await new Promise<Omit<Finished, 'stderr'>>((resolve) => {
      const child = spawn(bin, args, { stdio: ['ignore', 'ignore', output.fd], timeout: timeoutMs, killSignal: 'SIGKILL' });
      let spawnError: string | undefined;
      child.on('error', (error) => {
        spawnError = error.message;
      });
      child.on('close', (code, signal) => {
        const ended = signal === null ? undefined : `it was ended by ${signal}`;
        resolve({ exitCode: code ?? undefined, timedOut: child.killed && spawnError === undefined, error: spawnError ?? ended });
      });
    });
    const { size } = await output.stat();
    const buffer = Buffer.alloc(Math.min(size, 1 << 20));
    const { bytesRead } = await output.read(buffer, 0, buffer.length, 0);
    return { ...finished, stderr: buffer.subarray(0, bytesRead).toString('utf8') };
  } finally {
    await output.close();
  }
}

/** Runs `nginx -t` on `conf`; a failing test is an answer (ok: false), not an exception. */
export async function testConfig(cmd: NginxCommand, conf: string): Promise<TestResult> {
  const args = [...prefixArgs(cmd), '-t', '-q', '-e', 'stderr', '-c', conf];
  const command = `${cmd.bin} ${args.join(' ')}`;
  const result = await runToFile(cmd.bin, args, cmd.timeoutMs);
  if (result.timedOut) {
    throw new PorticoError('NginxUnavailable', `nginx -t did not finish within ${cmd.timeoutMs} ms`, { command });
  }
  if (result.exitCode === undefined) {
    throw new PorticoError('NginxUnavailable', `cannot run ${cmd.bin}: ${result.error ?? 'no exit code'}`, { command });
  }
  const stderr = result.stderr;
  const lines = stderr
    .split('\n')
    .map((line) => tidyLogLine(line.trim()))
    .filter((line) => line !== '' && !/configuration file .* test (?:is successful|failed)$/.test(line));
  return { ok: result.exitCode === 0, lines, exitCode: result.exitCode, command };
}

/** What one foreground run of nginx that ends on its own did (see `runToExit`). */
export interface RunResult {
  /** Undefined when it did not exit within the timeout (it was killed) or could not be spawned. */
  exitCode: number | undefined;
  /** nginx's stderr, line by line, tidied as `nginx: [level] ...`. */
  lines: string[];
  timedOut: boolean;
  command: string;
}

/**
 * Runs nginx (not `-t`) on `conf`, a config made to end the run on its own before a worker starts
 * (the quic_bpf probe: apply/quic-bpf.ts), and answers its exit code and stderr. A run past the
 * timeout is killed (SIGKILL): before its pid file nginx is one process.
 */
export async function runToExit(cmd: NginxCommand, conf: string): Promise<RunResult> {
  const args = [...prefixArgs(cmd), '-c', conf, '-e', 'stderr'];
  const result = await runToFile(cmd.bin, args, cmd.timeoutMs);
  const lines = result.stderr
    .split('\n')
    .map((line) => tidyLogLine(line.trim()))
    .filter((line) => line !== '');
  if (result.error !== undefined && result.exitCode === undefined && !result.timedOut) lines.push(`cannot run ${cmd.bin}: ${result.error}`);
  return { exitCode: result.exitCode, lines, timedOut: result.timedOut, command: `${cmd.bin} ${args.join(' ')}` };
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
