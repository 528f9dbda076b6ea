/**
 * How many client connections nginx holds open: what a graceful stop waits for. Read from /proc:
 * the sockets among the processes' descriptors, matched against the kernel's TCP tables.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';

interface TcpSocket {
  localPort: number;
  /** `0A` listening, `01` established (include/net/tcp_states.h). */
  state: string;
}

const LISTEN = '0A';
const ESTABLISHED = '01';

/** The kernel's TCP sockets by inode, IPv4 and IPv6 (the network namespace is ours, as nginx's). */
async function tcpSockets(): Promise<Map<string, TcpSocket>> {
  const sockets = new Map<string, TcpSocket>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
      const fields = line.trim().split(/\s+/);
      const [local, state, inode] = [fields[1], fields[3], fields[9]];
      if (local === undefined || state === undefined || inode === undefined) continue;
      sockets.set(inode, { localPort: Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16), state });
    }
  }
  return sockets;
}

/** The socket inodes among the open descriptors of `pid`; undefined when they cannot be read (another user's). */
async function socketInodes(pid: number): Promise<string[] | undefined> {
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch (error) {
    // A process that exited meanwhile holds nothing; one we may not look into leaves the count unknown.
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? [] : undefined;
  }
  // A descriptor closed meanwhile reads as '', which is no socket.
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return targets.flatMap((target) => /^socket:\[(\d+)\]$/.exec(target)?.[1] ?? []);
}

/**
 * Established TCP connections that `pids` hold on a port one of them listens on: the clients'
 * connections, not nginx's own to its upstreams. Undefined when /proc cannot tell (no TCP table, or
 * descriptors of another user).
 * A connection on a port no process listens on any more (a stream deleted before the stop) is missed.
 */
export async function openClientConnections(pids: number[]): Promise<number | undefined> {
  const sockets = await tcpSockets();
  const perProcess = await Promise.all(pids.map(socketInodes));
  if (sockets.size === 0 || perProcess.some((inodes) => inodes === undefined)) return undefined;
  const held = new Set(perProcess.flat() as string[]);
  const mine = [...held].flatMap((inode) => sockets.get(inode) ?? []);
  const listening = new Set(mine.filter((s) => s.state === LISTEN).map((s) => s.localPort));
  return mine.filter((s) => s.state === ESTABLISHED && listening.has(s.localPort)).length;
}
