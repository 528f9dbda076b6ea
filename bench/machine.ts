/**
 * What the figures were measured on. The numbers mean little without the machine beside them.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Machine {
  cpus: string;
  model: string;
  memory: string;
  kernel: string;
  node: string;
  nginx: string;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** stdout and stderr of a short command, joined (`nginx -v` answers on stderr). */
function output(bin: string, args: string[]): string {
  const result = spawnSync(bin, args, { encoding: 'utf8', timeout: 5000 });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
}

export function describeMachine(nginxBin: string): Machine {
  const model = /^model name\s*:\s*(.+)$/m.exec(readOr('/proc/cpuinfo'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const memKb = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readOr('/proc/meminfo'))?.[1] ?? 0);
  const memBytes = memKb > 0 ? memKb * 1024 : os.totalmem();
  return {
    cpus: output('nproc', []) || String(os.availableParallelism()),
    model: model.trim(),
    memory: `${(memBytes / 2 ** 30).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    nginx: output(nginxBin, ['-v']).replace(/^nginx version:\s*/, '') || 'unknown',
  };
}
