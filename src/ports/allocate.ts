/**
 * Port allocation inside PORT_RANGE: the lowest port that no config file claims and no other
 * process has bound on the host.
 */
import type { PortRange } from '../settings.js';

/** Answers whether a port is already bound by some process on this host (on TCP, and on UDP if asked). */
export type BoundProbe = (port: number, udp?: boolean) => Promise<boolean>;

/** True when `port` lies in `range` (both ends inclusive). */
export function inRange(range: PortRange, port: number): boolean {
  return port >= range.from && port <= range.to;
}

/** How many ports the range holds. */
export function rangeSize(range: PortRange): number {
  return range.to - range.from + 1;
}

/**
 * The lowest port of `range` not in `claimed` for which `isBound` answers false, or undefined when
 * there is none. Claimed ports are skipped without probing: only the unclaimed are asked about.
 */
export async function allocatePort(
  range: PortRange,
  claimed: { has(port: number): boolean },
  isBound: BoundProbe,
): Promise<number | undefined> {
  for (let port = range.from; port <= range.to; port += 1) {
    if (claimed.has(port)) continue;
    if (!(await isBound(port))) return port;
  }
  return undefined;
}

/**
 * How many ports of `range` no file claims. Pure: status routes report this rather than probing
 * the host for every port, which would be I/O per request and could collide with nginx's own bind.
 */
export function unclaimedCount(range: PortRange, claimed: ReadonlySet<number>): number {
  let inside = 0;
  for (const port of claimed) if (inRange(range, port)) inside += 1;
  return rangeSize(range) - inside;
}
