/**
 * Renders a stream into the text of its file. Pure: decisions are made here, in a flat view, and
 * `templates/stream.conf.hbs` only prints it.
 *
 * The file must read back as exactly the JSON that was stored (`parse/stream.ts`). Where a field was
 * given with a value nginx has no directive for (`"protocol": "tcp"`, `"balance": "round_robin"`,
 * `"backup": false`), a `# portico-defaults:` comment records it; labels, which nginx never sees, go
 * in a `# portico-labels:` comment.
 */
import {
  certificatePath,
  keyPath,
  listensTcp,
  listensUdp,
  sniGroupName,
  sniVariableName,
  upstreamGroupName,
  type Balance,
  type Stream,
  type StreamFileOptions,
  type Upstream,
} from '../model/stream.js';
import { compileTemplate, type Template } from './engine.js';

export interface ServerView {
  address: string;
  weight: number | null;
  maxFails: number | null;
  failTimeout: string | null;
  backup: boolean;
}

/**
 * Shared memory for each upstream group's run-time state. Without a zone every worker process counts
 * connections and failures on its own, so least_conn, max_fails and backup would see one worker's
 * share of the traffic. 64 KiB holds the 64 servers a group may have; nginx's minimum is 8 pages.
 */
export const ZONE_KB = 64;

export interface GroupView {
  name: string;
  zoneKb: number;
  leastConn: boolean;
  hash: boolean;
  random: boolean;
  servers: ServerView[];
}

export interface ListenView {
  host: string | null;
  port: number;
  ssl: boolean;
  udp: boolean;
}

export interface StreamView {
  port: number;
  defaults: string[];
  /** `name=value` of each label; null when the stream has no `labels` field (`{}` has an empty line). */
  labels: { entries: string[] } | null;
  groups: GroupView[];
  sni: { variable: string; routes: Array<{ serverName: string; group: string }>; defaultGroup: string | null } | null;
  listens: ListenView[];
  tls: { certificate: string; key: string } | null;
  rules: Array<{ allow: boolean; subject: string }>;
  connectTimeout: string | null;
  idleTimeout: string | null;
  proxyProtocol: { on: boolean } | null;
  upstreamTls: { serverName: string | null; verify: { on: boolean } | null; trusted: string | null } | null;
  /** Exactly one of the three is set. */
  proxyPass: { address: string | null; group: string | null; variable: string | null };
}

/** True when `upstreams` need an upstream block: several servers, server parameters, or a method. */
export function needsGroup(stream: Pick<Stream, 'balance'>, upstreams: Upstream[]): boolean {
  if (upstreams.length !== 1 || stream.balance !== undefined) return true;
  const [only] = upstreams as [Upstream];
  return Object.keys(only).some((key) => key !== 'address');
}

function groupView(name: string, balance: Balance | undefined, upstreams: Upstream[]): GroupView {
  return {
    name,
    zoneKb: ZONE_KB,
    leastConn: balance === 'least_conn',
    hash: balance === 'hash_remote_addr',
    random: balance === 'random',
    servers: upstreams.map((u) => ({
      address: u.address,
      weight: u.weight ?? null,
      maxFails: u.maxFails ?? null,
      failTimeout: u.failTimeout ?? null,
      backup: u.backup === true,
    })),
  };
}

/** The fields given with a default value nginx cannot show, as `path=value`. */
export function defaultAnnotations(stream: Stream, nodeAddress?: string): string[] {
  const out: string[] = [];
  if (stream.listenAddress === undefined && nodeAddress !== undefined) out.push('listenAddress=node');
  if (stream.protocol === 'tcp') out.push('protocol=tcp');
  if (stream.balance === 'round_robin') out.push('balance=round_robin');
  const backups = (path: string, upstreams: Upstream[] | undefined): void =>
    upstreams?.forEach((u, i) => {
      if (u.backup === false) out.push(`${path}.${i}.backup=false`);
    });
  backups('upstreams', stream.upstreams);
  stream.sni?.routes.forEach((route, i) => backups(`sni.routes.${i}.upstreams`, route.upstreams));
  backups('sni.default', stream.sni?.default);
  return out;
}

export function streamView(stream: Stream, options: StreamFileOptions): StreamView {
  const { port } = stream;
  const groups: GroupView[] = [];
  let proxyPass: StreamView['proxyPass'] = { address: null, group: null, variable: null };
  let sni: StreamView['sni'] = null;
  if (stream.sni !== undefined) {
    const routes = stream.sni.routes.map((route, i) => {
      groups.push(groupView(sniGroupName(port, i), stream.balance, route.upstreams));
      return { serverName: route.serverName, group: sniGroupName(port, i) };
    });
    let defaultGroup: string | null = null;
    if (stream.sni.default !== undefined) {
      defaultGroup = sniGroupName(port, 'default');
      groups.push(groupView(defaultGroup, stream.balance, stream.sni.default));
    }
    sni = { variable: sniVariableName(port), routes, defaultGroup };
    proxyPass = { ...proxyPass, variable: sni.variable };
  } else {
    const upstreams = stream.upstreams ?? [];
    if (needsGroup(stream, upstreams)) {
      groups.push(groupView(upstreamGroupName(port), stream.balance, upstreams));
      proxyPass = { ...proxyPass, group: upstreamGroupName(port) };
    } else {
      proxyPass = { ...proxyPass, address: (upstreams[0] as Upstream).address };
    }
  }

  // A stream without its own address listens on the node's (LISTEN_ADDRESS), recorded as a default.
  const host = stream.listenAddress ?? options.listenAddress ?? null;
  const listens: ListenView[] = [];
  if (listensTcp(stream)) listens.push({ host, port, ssl: stream.tls !== undefined, udp: false });
  if (listensUdp(stream)) listens.push({ host, port, ssl: false, udp: true });

  const upstreamTls = stream.upstreamTls;
  return {
    port,
    defaults: defaultAnnotations(stream, options.listenAddress),
    labels: stream.labels === undefined ? null : { entries: Object.entries(stream.labels).map(([k, v]) => `${k}=${v}`) },
    groups,
    sni,
    listens,
    tls:
      stream.tls === undefined
        ? null
        : { certificate: certificatePath(options, stream.tls.certificate), key: keyPath(options, stream.tls.certificate) },
    // nginx checks access rules in order, first match wins: every allow, then every deny.
    rules: [
      ...(stream.allow ?? []).map((subject) => ({ allow: true, subject })),
      ...(stream.deny ?? []).map((subject) => ({ allow: false, subject })),
    ],
    connectTimeout: stream.connectTimeout ?? null,
    idleTimeout: stream.idleTimeout ?? null,
    proxyProtocol: stream.proxyProtocol === undefined ? null : { on: stream.proxyProtocol },
    upstreamTls:
      upstreamTls === undefined
        ? null
        : {
            serverName: upstreamTls.serverName ?? null,
            verify: upstreamTls.verify === undefined ? null : { on: upstreamTls.verify },
            trusted: upstreamTls.trustedCertificate === undefined ? null : certificatePath(options, upstreamTls.trustedCertificate),
          },
    proxyPass,
  };
}

export type StreamRenderer = (stream: Stream) => string;

/** Compiles the stream template once; the returned function renders one stream per call. */
export function createStreamRenderer(source: string, options: StreamFileOptions): StreamRenderer {
  const template: Template<StreamView> = compileTemplate(source);
  return (stream) => template(streamView(stream, options));
}
