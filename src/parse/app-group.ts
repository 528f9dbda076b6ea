/**
 * Reads the `upstream` block of each route of an app file (a sticky route hashes the shared sticky
 * cookie's variable). Pure. Values are checked later, by the app schema; here the shape and every
 * name.
 */
import type { AppBalance, AppUpstream } from '../model/app.js';
import { APP_ZONE, LEGACY_ZONE_KB, UPSTREAM_KEEPALIVE, type StickyView } from '../model/app-file.js';
import { fail, single, type Directive } from './directive.js';

export interface AppGroupRead {
  /** The method's directive; undefined for round robin, which has none. */
  balance: Exclude<AppBalance, 'round_robin'> | undefined;
  upstreams: AppUpstream[];
}

const METHODS: Record<string, Exclude<AppBalance, 'round_robin' | 'sticky'>> = {
  least_conn: 'least_conn',
  random: 'random',
  ip_hash: 'ip_hash',
};

/** One `server ADDRESS [weight=N];`. */
function readServer(directive: Directive): AppUpstream {
  if (directive.block !== undefined || directive.args.length === 0 || directive.args.length > 2) {
    fail('"server" must read "server host:port [weight=N]"', directive);
  }
  const [address, param] = directive.args as [string, string | undefined];
  if (param === undefined) return { address };
  const weight = /^weight=(0|[1-9]\d{0,8})$/.exec(param);
  if (weight === null) fail(`unexpected server parameter "${param}"`, directive);
  return { address, weight: Number(weight[1]) };
}

/**
 * Reads `upstream NAME { zone portico_apps 32m; [method;] server ...; keepalive 32; }`, the group of
 * one route: `name` is the name it must have, `sticky` the cookie and variables of that route. A
 * file of format 1 (`legacy`, see model/app-file.ts) has `zone NAME 64k;` instead.
 */
export function readAppGroup(directive: Directive, name: string, sticky: StickyView, legacy = false): AppGroupRead {
  if (directive.args.length !== 1 || directive.args[0] !== name) {
    fail(`upstream block must be named ${name} (upstream blocks are numbered by route, from r0)`, directive);
  }
  const [zone, ...rest] = directive.block ?? [];
  const zoneArgs = legacy ? `${name} ${LEGACY_ZONE_KB}k` : `${APP_ZONE.name} ${APP_ZONE.sizeMb}m`;
  if (zone?.name !== 'zone' || zone.block !== undefined || zone.args.join(' ') !== zoneArgs) {
    fail(`upstream ${name} must start with "zone ${zoneArgs};"`, zone ?? directive);
  }
  const keepalive = rest.pop();
  if (keepalive?.name !== 'keepalive' || single(keepalive) !== String(UPSTREAM_KEEPALIVE)) {
    fail(`upstream ${name} must end with "keepalive ${UPSTREAM_KEEPALIVE};"`, keepalive ?? directive);
  }
  let balance: AppGroupRead['balance'];
  const upstreams: AppUpstream[] = [];
  for (const inner of rest) {
    const method = METHODS[inner.name];
    if (method !== undefined || inner.name === 'hash') {
      if (balance !== undefined || upstreams.length > 0) fail(`"${inner.name}" must come once, after the zone and before the servers`, inner);
      if (method !== undefined) {
        if (inner.block !== undefined || inner.args.length > 0) fail(`"${inner.name}" takes no arguments`, inner);
        balance = method;
      } else {
        if (inner.block !== undefined || inner.args.join(' ') !== `$${sticky.key} consistent`) {
          fail(`"hash" must read "hash $${sticky.key} consistent" (the sticky cookie of this route)`, inner);
        }
        balance = 'sticky';
      }
    } else if (inner.name === 'server') {
      upstreams.push(readServer(inner));
    } else {
      fail(`unexpected "${inner.name}" in upstream ${name}`, inner);
    }
  }
  if (upstreams.length === 0) fail(`upstream ${name} has no server`, directive);
  return { balance, upstreams };
}
