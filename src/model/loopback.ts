/**
 * Upstreams that lead back into this host's own listeners: Portico's API (a stream or app would
 * publish it, meant for BIND_ADDRESS only, to every client of the edge), a stream's own port (each
 * connection connects to itself again until nginx runs out of connections), a ring of streams that
 * lead back to the first, and the apps' shared listeners (each request comes back to the app).
 *
 * Pure: which addresses a host name reaches, and which addresses are this host's, are facts the
 * caller gathers (`apply/targets.ts`) and hands in.
 */
import type { App } from './app.js';
import { ipv4Bits, ipv6Bits, isBracketableIPv6, isIPv4, parseAddress } from './net.js';
import { listensTcp, listensUdp, type Stream, type StreamSpec, type Upstream } from './stream.js';

/** One upstream of a stream or app: the path of its `address` field and the parts of that address. */
export interface UpstreamRef {
  path: Array<string | number>;
  address: string;
  host: string;
  port: number;
}

/** The listeners of this host that an upstream must not lead to. */
export interface OwnListeners {
  /** BIND_PORT, Portico's API. */
  apiPort: number;
  /** HTTP_PORT and HTTPS_PORT, every app's listeners, with the setting that names each. */
  appPorts: ReadonlyArray<{ port: number; setting: string }>;
}

/** What the caller found out: the addresses of this host, and what each host name of an upstream resolves to. */
export interface HostFacts {
  /** This host's own addresses (its interfaces' and the API's bind address), IPv4 or IPv6 text. */
  hostAddresses: readonly string[];
  /** The addresses `name` resolved to; undefined when it was not resolved (or did not resolve). */
  resolved(name: string): readonly string[] | undefined;
}

export interface LoopIssue {
  path: Array<string | number>;
  message: string;
}

const IPV4_MAPPED = 0xffffn << 32n;

/** An address as a family and a number: IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is its IPv4 address. */
function ipKey(ip: string): string | undefined {
  if (isIPv4(ip)) return `4:${ipv4Bits(ip)}`;
  if (!isBracketableIPv6(ip)) return undefined;
  const value = ipv6Bits(ip);
  if (value >> 32n === IPV4_MAPPED >> 32n) return `4:${value & 0xffffffffn}`;
  return `6:${value}`;
}

/**
 * True when connecting to `ip` reaches this host: the loopback networks (127.0.0.0/8, ::1), the
 * unspecified addresses (Linux connects 0.0.0.0 and :: to the host itself), and `hostAddresses`.
 */
export function isThisHost(ip: string, hostAddresses: readonly string[]): boolean {
  const key = ipKey(ip);
  if (key === undefined) return false;
  if (key.startsWith('4:')) {
    const value = BigInt(key.slice(2));
    if (value >> 24n === 127n || value === 0n) return true;
  } else if (key === '6:1' || key === '6:0') return true;
  return hostAddresses.some((address) => ipKey(address) === key);
}

/** The upstreams of a stream: `upstreams`, every SNI route's and the SNI default's. */
export function streamUpstreamRefs(stream: StreamSpec): UpstreamRef[] {
  const groups: Array<[Array<string | number>, Upstream[]]> = [];
  if (stream.upstreams !== undefined) groups.push([['upstreams'], stream.upstreams]);
  stream.sni?.routes.forEach((route, i) => groups.push([['sni', 'routes', i, 'upstreams'], route.upstreams]));
  if (stream.sni?.default !== undefined) groups.push([['sni', 'default'], stream.sni.default]);
  return groups.flatMap(([path, upstreams]) => upstreams.flatMap((u, i) => refOf([...path, i, 'address'], u.address)));
}

/** The upstreams of every route of an app. */
export function appUpstreamRefs(app: App): UpstreamRef[] {
  return app.routes.flatMap((route, r) => route.upstreams.flatMap((u, i) => refOf(['routes', r, 'upstreams', i, 'address'], u.address)));
}

function refOf(path: Array<string | number>, address: string): UpstreamRef[] {
  const parsed = parseAddress(address);
  return 'error' in parsed ? [] : [{ path, address, host: parsed.host, port: parsed.port }];
}

/** The host names among `refs` whose port is one of `ports`: the only ones worth resolving. */
export function namesAt(refs: UpstreamRef[], ports: ReadonlySet<number>): string[] {
  return [...new Set(refs.filter((r) => ports.has(r.port) && ipKey(r.host) === undefined).map((r) => r.host))];
}

/** The address of this host `ref` reaches, spelled for a message ("localhost" resolves to 127.0.0.1), or undefined. */
function reachesThisHost(ref: UpstreamRef, facts: HostFacts): string | undefined {
  if (ipKey(ref.host) !== undefined) return isThisHost(ref.host, facts.hostAddresses) ? '' : undefined;
  const local = facts.resolved(ref.host)?.find((ip) => isThisHost(ip, facts.hostAddresses));
  return local === undefined ? undefined : ` ("${ref.host}" resolves to ${local})`;
}

const EXHAUSTS = 'until nginx runs out of connections';

/** Streams by port. */
type Streams = Pick<ReadonlyMap<number, Stream>, 'get' | 'has'>;

/**
 * The upstreams of `stream` that may lead back into this host, judged by their port alone: Portico's
 * API, the stream's own port, another stream's port. Only these need their host names resolved.
 */
export function suspectRefs(stream: Stream, streams: ReadonlyMap<number, Stream>, own: OwnListeners): UpstreamRef[] {
  return streamUpstreamRefs(stream).filter((r) => r.port === own.apiPort || r.port === stream.port || streams.has(r.port));
}

/**
 * Why an upstream of `stream` leads back into this host's own listeners, or undefined. `streams` are
 * the other streams (a version of `stream` itself among them is ignored).
 */
export function streamLoopIssue(stream: Stream, others: ReadonlyMap<number, Stream>, own: OwnListeners, facts: HostFacts): LoopIssue | undefined {
  // The streams as the change leaves them, without copying them.
  const streams: Streams = {
    get: (port) => (port === stream.port ? stream : others.get(port)),
    has: (port) => port === stream.port || others.has(port),
  };
  for (const ref of suspectRefs(stream, others, own)) {
    const via = reachesThisHost(ref, facts);
    if (via === undefined) continue;
    const at = `"${ref.address}"${via}`;
    if (ref.port === own.apiPort && listensTcp(stream)) {
      return { path: ref.path, message: `${at} is Portico's own API (BIND_PORT ${own.apiPort} on this host): this stream would expose it to every client of port ${stream.port}` };
    }
    if (ref.port === stream.port) {
      return { path: ref.path, message: `${at} is this stream's own listener (port ${stream.port} on this host): each connection would connect to it again, ${EXHAUSTS}` };
    }
    const next = streams.get(ref.port);
    if (next !== undefined && sharesProtocol(stream, next)) {
      const ring = pathBack(next, stream.port, streams, facts);
      if (ring !== undefined) {
        const through = [ref.port, ...ring].map((p) => `stream ${p}`).join(', then ');
        return { path: ref.path, message: `${at} leads back to this stream through ${through}: connections would go round ${EXHAUSTS}` };
      }
    }
  }
  return undefined;
}

/** Why an upstream of `app` leads back into this host's own listeners, or undefined. */
export function appLoopIssue(app: App, own: OwnListeners, facts: HostFacts): LoopIssue | undefined {
  for (const ref of appUpstreamRefs(app)) {
    const via = reachesThisHost(ref, facts);
    if (via === undefined) continue;
    const at = `"${ref.address}"${via}`;
    if (ref.port === own.apiPort) {
      return { path: ref.path, message: `${at} is Portico's own API (BIND_PORT ${own.apiPort} on this host): this app would expose it to every client of the apps' listeners` };
    }
    const listener = own.appPorts.find((p) => p.port === ref.port);
    if (listener !== undefined) {
      return { path: ref.path, message: `${at} is the apps' own listener (${listener.setting} ${listener.port} on this host): each request would come back to this app, ${EXHAUSTS}` };
    }
  }
  return undefined;
}

function sharesProtocol(a: Stream, b: Stream): boolean {
  return (listensTcp(a) && listensTcp(b)) || (listensUdp(a) && listensUdp(b));
}

/**
 * The ports of the streams after `from` on a way from stream `from` back to port `target`, through
 * upstreams on this host that listen on a stream's port with a protocol in common; undefined when
 * there is none. Each stream is visited once, so the search ends.
 */
function pathBack(from: Stream, target: number, streams: Streams, facts: HostFacts): number[] | undefined {
  const seen = new Set<number>([from.port]);
  const queue: Array<{ stream: Stream; trail: number[] }> = [{ stream: from, trail: [] }];
  while (queue.length > 0) {
    const { stream, trail } = queue.shift() as { stream: Stream; trail: number[] };
    for (const ref of streamUpstreamRefs(stream)) {
      if (!streams.has(ref.port)) continue;
      const next = streams.get(ref.port);
      if (next === undefined || !sharesProtocol(stream, next) || reachesThisHost(ref, facts) === undefined) continue;
      if (ref.port === target) return trail;
      if (seen.has(ref.port)) continue;
      seen.add(ref.port);
      queue.push({ stream: next, trail: [...trail, ref.port] });
    }
  }
  return undefined;
}
