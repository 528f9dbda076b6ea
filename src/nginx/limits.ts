/**
 * File-descriptor limits. nginx's master opens every listening socket itself, and each worker holds
 * them all plus two descriptors per proxied connection (`worker_rlimit_nofile`, sized from the range).
 * A range the machine's limit cannot carry fails at the first big batch, as "Too many open files" in
 * nginx's log: it is refused at start-up instead, saying which limit to raise.
 */
import { readFile } from 'node:fs/promises';
import { sizeWorkers } from '../render/main.js';

/** Listening sockets of a range: TCP and UDP on every port, and the apps' three (HTTP, HTTPS, QUIC). */
export function listenersFor(rangeSize: number): number {
  return 2 * rangeSize + 3;
}

/** Descriptors the master needs beyond its listeners: logs, pipes, the config, signals. */
const MASTER_SPARE = 64;

/**
 * Why a range of `rangeSize` ports cannot run under a hard open-files limit of `hard`, or undefined
 * when it can. As root nginx raises a worker's limit itself (`worker_rlimit_nofile`); otherwise the
 * hard limit caps it. Pure.
 */
export function descriptorShortfall(rangeSize: number, hard: number, root: boolean): string | undefined {
  const listeners = listenersFor(rangeSize);
  const raise = 'raise the hard open-files limit (ulimit -Hn; LimitNOFILE= in a systemd unit; --ulimit nofile= for docker run) or shrink PORT_RANGE';
  if (hard < listeners + MASTER_SPARE) {
    return `PORT_RANGE of ${rangeSize} ports needs ${listeners + MASTER_SPARE} open files in nginx's master (${listeners} listening sockets), but the hard limit is ${hard}: ${raise}`;
  }
  const { workerRlimitNofile } = sizeWorkers(listeners);
  if (!root && hard < workerRlimitNofile) {
    return `PORT_RANGE of ${rangeSize} ports needs ${workerRlimitNofile} open files in each nginx worker, but the hard limit is ${hard} and only root may go beyond it: ${raise}`;
  }
  return undefined;
}

/** This process's hard limit on open files (nginx inherits it), or undefined when it cannot be read. */
export async function hardOpenFilesLimit(): Promise<number | undefined> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const hard = line?.trim().split(/\s+/)[4];
  if (hard === undefined) return undefined;
  return hard === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(hard);
}
