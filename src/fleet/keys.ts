/**
 * The fleet's key layout in etcd (issue 16), in one place: every node writes and reads exactly
 * these keys, and refuses any other under the prefix rather than guess what it means.
 *
 *   <FLEET_PREFIX>streams/<port>        a stream, the JSON the API answers
 *   <FLEET_PREFIX>apps/<name>           an app
 *   <FLEET_PREFIX>certificates/<id>     a certificate (its private key sealed: secret.ts)
 *   <FLEET_PREFIX>nodes/<NODE_NAME>     a node's status, under its lease
 *
 * Pure.
 */
import { z } from 'zod';
import { APP_NAME_PATTERN } from '../model/app.js';
import { CERT_ID_PATTERN } from '../model/certificate.js';

export const DEFAULT_FLEET_PREFIX = '/portico/';

/**
 * FLEET_PREFIX: "/", then segments of letters, digits, "_", "-" and ".", each ending in "/". No "." or
 * ".." segment: etcd keys are not paths, so /a/../b/ would be a fleet apart from /b/ that looks the same.
 */
export const fleetPrefixSchema = z
  .string()
  .max(128, 'must be at most 128 characters')
  .regex(/^\/(?:(?!\.{1,2}\/)[A-Za-z0-9_.-]+\/)*$/, 'must start and end with "/" and hold only letters, digits, "_", "-" and "." between, no "." or ".." segment, such as /portico/ or /edges/eu-west/');

/** NODE_NAME: one lower-case DNS label, as app names are (it names a key and shows in /v1/fleet). */
export const nodeNameSchema = z.string().regex(APP_NAME_PATTERN, 'must be 1-63 characters of a-z, 0-9 and "-", not starting or ending with "-"');

export type FleetKind = 'streams' | 'apps' | 'certificates' | 'nodes';
export const FLEET_KINDS: readonly FleetKind[] = ['streams', 'apps', 'certificates', 'nodes'];

const ID_RULES: Record<FleetKind, (id: string) => boolean> = {
  // A port as the files name it: 1-65535, no leading zero (two spellings would be two streams).
  streams: (id) => /^[1-9]\d{0,4}$/.test(id) && Number(id) <= 65535,
  apps: (id) => APP_NAME_PATTERN.test(id),
  certificates: (id) => CERT_ID_PATTERN.test(id),
  nodes: (id) => APP_NAME_PATTERN.test(id),
};

/** The key of resource `id` of `kind` under `prefix`; throws for an id the kind does not allow. */
export function fleetKey(prefix: string, kind: FleetKind, id: string | number): string {
  const text = String(id);
  if (!ID_RULES[kind](text)) throw new Error(`"${text}" is not a valid id for ${kind}`);
  return `${prefix}${kind}/${text}`;
}

/** The kind and id of a key under `prefix`, or undefined for any key that is not exactly one of the layout's. */
export function parseFleetKey(prefix: string, key: string): { kind: FleetKind; id: string } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return undefined;
  const kind = rest.slice(0, slash) as FleetKind;
  const id = rest.slice(slash + 1);
  if (!FLEET_KINDS.includes(kind) || !ID_RULES[kind](id)) return undefined;
  return { kind, id };
}

/**
 * The `range_end` that makes an etcd range request read every key starting with `prefix`: the
 * prefix with its last byte incremented (bytes 0xff dropped first), as etcd documents it.
 */
export function prefixRangeEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i -= 1) {
    if ((bytes[i] as number) < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = (bytes[i] as number) + 1;
      return end;
    }
  }
  // All 0xff (or empty): to the end of the key space.
  return Buffer.from([0]);
}
