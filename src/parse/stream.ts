/**
 * Reads a per-stream file back into the `Stream` it was rendered from. Pure.
 *
 * The reader accepts exactly the shape `render/stream.ts` writes (and stream-conductor's
 * `server { listen PORT; proxy_pass HOST:PORT; }`, which is a subset): anything else is refused with
 * the reason, so a file edited by hand into something Portico cannot represent is reported rather
 * than silently misread.
 */
import { isAddress, isPortText } from '../model/net.js';
import { streamSchema, upstreamGroupName, type Stream } from '../model/stream.js';
import { parseConfig, type Directive } from './syntax.js';

export class UnreadableFile extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreadableFile';
  }
}

function fail(message: string, directive?: Directive): never {
  throw new UnreadableFile(directive === undefined ? message : `line ${directive.line}: ${message}`);
}

function single(directive: Directive): string {
  if (directive.block !== undefined || directive.args.length !== 1) {
    fail(`"${directive.name}" must have exactly one argument`, directive);
  }
  return directive.args[0] as string;
}

function readUpstreamBlock(directive: Directive): { name: string; addresses: string[] } {
  const name = single({ ...directive, block: undefined });
  const addresses: string[] = [];
  for (const inner of directive.block ?? []) {
    if (inner.name !== 'server') fail(`unexpected "${inner.name}" in upstream "${name}"`, inner);
    const address = single(inner);
    if (!isAddress(address)) fail(`"${address}" is not a host:port address`, inner);
    addresses.push(address);
  }
  if (addresses.length === 0) fail(`upstream "${name}" has no server`, directive);
  return { name, addresses };
}

/** Parses the text of a per-stream file; throws `UnreadableFile` (with the line) if it is not one. */
export function readStream(text: string): Stream {
  let directives: Directive[];
  try {
    directives = parseConfig(text);
  } catch (error) {
    fail((error as Error).message);
  }
  let group: { name: string; addresses: string[] } | undefined;
  let server: Directive | undefined;
  for (const directive of directives) {
    if (directive.name === 'upstream' && directive.block !== undefined && group === undefined) {
      group = readUpstreamBlock(directive);
    } else if (directive.name === 'server' && directive.block !== undefined && server === undefined) {
      server = directive;
    } else {
      fail(`unexpected "${directive.name}" at the top of a stream file`, directive);
    }
  }
  if (server === undefined) fail('no server block');
  let port: number | undefined;
  let proxyPass: string | undefined;
  for (const inner of server.block ?? []) {
    if (inner.name === 'listen' && port === undefined) {
      const listen = single(inner);
      if (!isPortText(listen)) fail(`listen "${listen}" is not a port`, inner);
      port = Number(listen);
    } else if (inner.name === 'proxy_pass' && proxyPass === undefined) {
      proxyPass = single(inner);
    } else {
      fail(`unexpected "${inner.name}" in the server block`, inner);
    }
  }
  if (port === undefined) fail('the server block has no listen');
  if (proxyPass === undefined) fail('the server block has no proxy_pass');

  let addresses: string[];
  if (group !== undefined) {
    if (proxyPass !== group.name) fail(`proxy_pass "${proxyPass}" does not name upstream "${group.name}"`);
    if (group.name !== upstreamGroupName(port)) fail(`upstream "${group.name}" is not named for port ${port}`);
    addresses = group.addresses;
  } else {
    if (!isAddress(proxyPass)) fail(`proxy_pass "${proxyPass}" is not a host:port address`);
    addresses = [proxyPass];
  }
  const parsed = streamSchema.safeParse({ port, upstreams: addresses.map((address) => ({ address })) });
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
