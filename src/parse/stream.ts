/**
 * Reads a per-stream file back into the `Stream` it was rendered from. Pure.
 *
 * The reader accepts exactly the shape `render/stream.ts` writes (and stream-conductor's
 * `server { listen PORT; proxy_pass HOST:PORT; }`, which is a subset): anything else is refused with
 * the reason, so a file edited by hand into something Portico cannot represent is reported rather
 * than silently misread. What it reads passes the stream schema, cross-field rules included.
 */
import { isPortText } from '../model/net.js';
import {
  sniGroupName,
  sniVariableName,
  streamSchema,
  upstreamGroupName,
  type Balance,
  type Sni,
  type Stream,
  type StreamFileOptions,
  type Upstream,
} from '../model/stream.js';
import { applyDefaults, readAnnotations, type DefaultsRule } from './annotations.js';
import { UnreadableFile, fail, parseFile, single, type Directive } from './directive.js';
import { parseConfig } from './syntax.js';
import { readGroup, type GroupRead } from './upstream.js';
import { readServerBlock, type ServerRead } from './stream-server.js';

export { UnreadableFile };

/** Reads `map $ssl_preread_server_name $VAR { hostnames; NAME GROUP; ... [default GROUP;] }`. */
function readSniMap(directive: Directive): { variable: string; routes: Array<[string, string]>; defaultGroup?: string } {
  const [source, variable] = directive.args;
  if (directive.args.length !== 2 || source !== '$ssl_preread_server_name' || !variable?.startsWith('$')) {
    fail('a map must read "map $ssl_preread_server_name $variable"', directive);
  }
  const inner = directive.block ?? [];
  if (inner[0]?.name !== 'hostnames' || inner[0].args.length !== 0) fail('the map must start with "hostnames;"', directive);
  const routes: Array<[string, string]> = [];
  let defaultGroup: string | undefined;
  for (const entry of inner.slice(1)) {
    const group = single(entry);
    if (entry.name === 'default') {
      if (defaultGroup !== undefined) fail('the map has two defaults', entry);
      defaultGroup = group;
    } else {
      if (defaultGroup !== undefined) fail('map entries must come before the default', entry);
      routes.push([entry.name, group]);
    }
  }
  return { variable: variable.slice(1), routes, ...(defaultGroup !== undefined && { defaultGroup }) };
}

/** What `# portico-defaults:` may record for a stream; "false" stands for false, the rest for themselves. */
const DEFAULTS: DefaultsRule = {
  allowed: /^(?:protocol=tcp|balance=round_robin|(?:upstreams|sni\.routes\.\d+\.upstreams|sni\.default)\.\d+\.backup=false)$/,
  what: 'the stream',
  recordsFor: '',
  valueOf: (value) => (value === 'false' ? false : value),
};

function resolveGroups(port: number, groups: GroupRead[], server: ServerRead, map: ReturnType<typeof readSniMap> | undefined) {
  const byName = new Map(groups.map((g) => [g.name, g]));
  if (byName.size !== groups.length) fail('two upstream blocks share a name');
  const used = new Set<string>();
  const take = (name: string): GroupRead => {
    const group = byName.get(name);
    if (group === undefined) fail(`no upstream "${name}" in the file`);
    used.add(name);
    return group;
  };
  let upstreams: Upstream[] | undefined;
  let sni: Sni | undefined;
  const target = server.proxyPass;
  if (map !== undefined) {
    if (target !== `$${sniVariableName(port)}` || map.variable !== sniVariableName(port)) {
      fail(`proxy_pass "${target}" and the map must use $${sniVariableName(port)}`);
    }
    const routes = map.routes.map(([serverName, name], i) => {
      if (name !== sniGroupName(port, i)) fail(`route ${i} must go to ${sniGroupName(port, i)}, not "${name}"`);
      return { serverName, upstreams: take(name).upstreams };
    });
    if (map.defaultGroup !== undefined && map.defaultGroup !== sniGroupName(port, 'default')) {
      fail(`the map's default must be ${sniGroupName(port, 'default')}`);
    }
    sni = { routes, ...(map.defaultGroup !== undefined && { default: take(map.defaultGroup).upstreams }) };
  } else if (target === upstreamGroupName(port)) {
    upstreams = take(target).upstreams;
  } else if (byName.has(target) || target.startsWith('$')) {
    fail(`proxy_pass "${target}" is not named for port ${port}`);
  } else {
    upstreams = [{ address: target }];
  }
  const stray = groups.find((g) => !used.has(g.name));
  if (stray !== undefined) fail(`upstream "${stray.name}" is not used`, stray);
  const methods = new Set(groups.map((g) => g.balance));
  if (methods.size > 1) fail('the upstream blocks use different balancing methods');
  const balance: Balance | undefined = groups[0]?.balance;
  return { upstreams, sni, balance };
}

/** Parses the text of a per-stream file; throws `UnreadableFile` (with the line) if it is not one. */
export function readStream(text: string, options: StreamFileOptions): Stream {
  const { directives, comments } = parseFile(text);
  const annotations = readAnnotations(comments);
  const groups: GroupRead[] = [];
  let map: ReturnType<typeof readSniMap> | undefined;
  let serverBlock: Directive | undefined;
  for (const directive of directives) {
    if (directive.name === 'upstream' && directive.block !== undefined) groups.push(readGroup(directive));
    else if (directive.name === 'map' && directive.block !== undefined && map === undefined) map = readSniMap(directive);
    else if (directive.name === 'server' && directive.block !== undefined && serverBlock === undefined) serverBlock = directive;
    else fail(`unexpected "${directive.name}" at the top of a stream file`, directive);
  }
  if (serverBlock === undefined) fail('no server block');
  const server = readServerBlock(serverBlock, options);
  const { upstreams, sni, balance } = resolveGroups(server.port, groups, server, map);

  const stream: Record<string, unknown> = {
    port: server.port,
    ...(server.protocol !== undefined && { protocol: server.protocol }),
    ...(server.listenAddress !== undefined && { listenAddress: server.listenAddress }),
    ...(upstreams !== undefined && { upstreams }),
    ...(balance !== undefined && { balance }),
    ...server.settings,
    ...(sni !== undefined && { sni }),
    ...(annotations.labels !== undefined && { labels: annotations.labels }),
  };
  if (annotations.defaults.has('balance') && groups.length === 0) fail('"balance=round_robin" is recorded but there is no upstream block');
  // `listenAddress=node`: the listen address is the node's LISTEN_ADDRESS, not the stream's own.
  const defaults = new Map(annotations.defaults);
  if (defaults.get('listenAddress') === 'node') {
    if (stream.listenAddress === undefined) fail('"listenAddress=node" is recorded but the listen has no address');
    delete stream.listenAddress;
    defaults.delete('listenAddress');
  }
  applyDefaults(stream, defaults, DEFAULTS);
  if (server.protocol === undefined && annotations.defaults.has('protocol')) stream.protocol = 'tcp';
  const parsed = streamSchema.safeParse(stream);
  if (!parsed.success) fail(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return parsed.data;
}

/** The ports a config file listens on, whatever wrote it; for port allocation around foreign files. */
export function listenPorts(text: string): number[] {
  let directives: Directive[];
  try {
    directives = parseConfig(text);
  } catch {
    return [];
  }
  const ports: number[] = [];
  const walk = (list: Directive[]): void => {
    for (const directive of list) {
      if (directive.name === 'listen' && directive.args[0] !== undefined) {
        const match = /(?:^|:)(\d{1,5})$/.exec(directive.args[0]);
        if (match && isPortText(match[1] as string)) ports.push(Number(match[1]));
      }
      if (directive.block !== undefined) walk(directive.block);
    }
  };
  walk(directives);
  return ports;
}
