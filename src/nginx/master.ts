/**
 * Finding an nginx master by its pid file. Used by both modes: external mode only ever does this;
 * managed mode does it to adopt a master a previous Portico left running.
 */
import { readFile } from 'node:fs/promises';
import { commandLine, isAlive } from '../proc.js';

/**
 * The pid in `pidFile` if it names a live nginx master — one running `conf` when given, so that a
 * reused pid or another instance's master is never adopted — else undefined.
 */
export async function masterFromPidFile(pidFile: string, conf?: string): Promise<number | undefined> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid < 1 || !(await isAlive(pid))) return undefined;
  // nginx keeps its arguments in its title: "nginx: master process /path/nginx -p ... -c CONF ...".
  const title = await commandLine(pid);
  if (!title.startsWith('nginx: master process')) return undefined;
  if (conf !== undefined && !title.split(' ').includes(conf)) return undefined;
  return pid;
}
