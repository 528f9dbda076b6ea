/**
 * Reads the `upstream` blocks of a stream file: the balancing method and each `server` line with its
 * parameters. Pure. Values are checked later, by the stream schema; here only the shape.
 */
import type { Balance, Upstream } from '../model/stream.js';
import { fail, single, type Directive } from './directive.js';

export interface GroupRead {
  name: string;
  /** The method's directive, undefined for round robin (which has none). */
  balance: Balance | undefined;
  upstreams: Upstream[];
  line: number;
}

const METHODS: Record<string, { args: string[]; balance: Balance }> = {
  least_conn: { args: [], balance: 'least_conn' },
  hash: { args: ['$remote_addr', 'consistent'], balance: 'hash_remote_addr' },
  random: { args: [], balance: 'random' },
};

function readNumber(text: string, directive: Directive): number {
  if (!/^(?:0|[1-9]\d{0,8})$/.test(text)) fail(`"${text}" is not a number`, directive);
  return Number(text);
}

/** One `server ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [backup];`. */
function readServer(directive: Directive): Upstream {
  if (directive.block !== undefined || directive.args.length === 0) fail('"server" must be a host:port and parameters', directive);
  const [address, ...params] = directive.args as [string, ...string[]];
  const upstream: Upstream = { address };
  const seen = new Set<string>();
  for (const param of params) {
    const [key = '', value] = param.split(/=(.*)/s);
    if (seen.has(key)) fail(`"${key}" is given twice`, directive);
    seen.add(key);
    if (key === 'weight' && value !== undefined) upstream.weight = readNumber(value, directive);
    else if (key === 'max_fails' && value !== undefined) upstream.maxFails = readNumber(value, directive);
    else if (key === 'fail_timeout' && value !== undefined) upstream.failTimeout = value;
    else if (key === 'backup' && value === undefined) upstream.backup = true;
    else fail(`unexpected server parameter "${param}"`, directive);
  }
  // Fields in the order of the schema, so that the JSON reads as it was written.
  return {
    address: upstream.address,
    ...(upstream.weight !== undefined && { weight: upstream.weight }),
    ...(upstream.maxFails !== undefined && { maxFails: upstream.maxFails }),
    ...(upstream.failTimeout !== undefined && { failTimeout: upstream.failTimeout }),
    ...(upstream.backup !== undefined && { backup: upstream.backup }),
  };
}

/** Reads `upstream NAME { [method;] server ...; ... }`. */
export function readGroup(directive: Directive): GroupRead {
  const name = single({ ...directive, block: undefined });
  let balance: Balance | undefined;
  let zoned = false;
  const upstreams: Upstream[] = [];
  for (const inner of directive.block ?? []) {
    const method = METHODS[inner.name];
    if (inner.name === 'zone') {
      // Run-time state only: files written before zones were rendered have none.
      const [zoneName, size = ''] = inner.args;
      const first = !zoned && balance === undefined && upstreams.length === 0;
      if (!first || inner.block !== undefined || inner.args.length !== 2 || zoneName !== name || !/^[1-9]\d{0,5}k$/.test(size)) {
        fail(`"zone" must come first and read "zone ${name} <size>k"`, inner);
      }
      zoned = true;
    } else if (method !== undefined) {
      if (balance !== undefined || upstreams.length > 0) fail(`"${inner.name}" must come once, before the servers`, inner);
      if (inner.block !== undefined || inner.args.join(' ') !== method.args.join(' ')) {
        fail(`"${inner.name}" must read "${[inner.name, ...method.args].join(' ')}"`, inner);
      }
      balance = method.balance;
    } else if (inner.name === 'server') {
      upstreams.push(readServer(inner));
    } else {
      fail(`unexpected "${inner.name}" in upstream "${name}"`, inner);
    }
  }
  if (upstreams.length === 0) fail(`upstream "${name}" has no server`, directive);
  return { name, balance, upstreams, line: directive.line };
}
