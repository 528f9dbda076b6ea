/**
 * What the reload-under-traffic tests share: a lean backend that answers tens of thousands of
 * requests, and what nginx itself tells about its reloads (the master's SIGHUPs in the error log,
 * its current and draining workers under /proc).
 */
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { childPids, commandLine } from '../../src/proc.js';

/** The reloads the master of `stateDir`'s managed nginx has been told to do so far. */
export const reloadsIn = async (stateDir: string): Promise<number> =>
  ((await readFile(`${stateDir}/logs/error.log`, 'utf8')).match(/signal 1 \(SIGHUP\) received/g) ?? []).length;

/** The children of `master` whose title says they are old workers draining ("worker process is shutting down"). */
export async function drainingWorkers(master: number): Promise<number> {
  let count = 0;
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== master) continue;
    const title = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    if (title.includes('worker process is shutting down')) count += 1;
  }
  return count;
}

/** The pids of `master`'s current workers: titled "worker process", not (yet) shutting down. */
export async function currentWorkers(master: number): Promise<number[]> {
  const children = [...(await childPids(master))];
  const titles = await Promise.all(children.map((pid) => commandLine(pid)));
  return children.filter((_, i) => titles[i] === 'nginx: worker process');
}

export interface LeanBackend {
  port: number;
  /** Requests answered so far. */
  requests(): number;
  /** How often each path was asked for; empty unless started with `countPaths`. */
  paths: Map<string, number>;
  close(): Promise<void>;
}

/**
 * A backend that answers every request 200 with `<name> <url>`. It keeps no record of the requests
 * (it serves tens of thousands) unless `countPaths`, when it counts each path: a test that gives
 * every request a path of its own sees any request that reached it twice.
 */
export async function startLeanBackend(name: string, options: { countPaths?: boolean } = {}): Promise<LeanBackend> {
  let requests = 0;
  const paths = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    requests += 1;
    if (options.countPaths === true) paths.set(req.url ?? '', (paths.get(req.url ?? '') ?? 0) + 1);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name} ${req.url}`));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    requests: () => requests,
    paths,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
