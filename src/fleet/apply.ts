/**
 * What a node does with one key of the fleet's table: makes its own files say what the key says,
 * through the single-node pipeline (the applier: test, swap, reload, verify, roll back), or nothing
 * when they already do. A value is untrusted input (anyone who can write to etcd wrote it): it is
 * parsed by the very schemas the API parses bodies with, and a certificate's key must open under
 * FLEET_SECRET for that very key (secret.ts), before anything reaches a file.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Applier } from '../apply/applier.js';
import type { Requester } from '../apply/batch.js';
import { invalidInput } from '../errors.js';
import { appSchema } from '../model/app.js';
import { inspectCertificate } from '../model/certificate.js';
import { specFromInput, streamInputSchema, streamSchema } from '../model/stream.js';
import type { AppStore } from '../store/apps.js';
import type { CertStore } from '../store/certs.js';
import type { ConfigTree } from '../store/tree.js';
import type { FleetKind } from './keys.js';
import type { FleetSealer } from './secret.js';

/** Who the applier's log names for a change that came from the fleet. */
const FLEET_BY: Requester = { request: 'fleet', token: 'fleet' };

export type Resource = Exclude<FleetKind, 'nodes'>;

/** What a key wants: its value (undefined once deleted) as of a revision. */
export interface Desired {
  key: string;
  kind: Resource;
  id: string;
  value: string | undefined;
  revision: number;
}

export interface ApplyDeps {
  applier: Applier;
  tree: ConfigTree;
  apps: AppStore;
  certs: CertStore;
  sealer: FleetSealer;
}

/** A value's JSON: refused (naming the key) when it is not a JSON object. */
function objectOf(desired: Desired & { value: string }): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(desired.value);
  } catch {
    throw invalidInput('body', `the value of key ${desired.key} is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidInput('body', `the value of key ${desired.key} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/** Makes this node's files say what `desired` does; nothing when they already do. Throws why it cannot. */
export async function applyDesired(desired: Desired, deps: ApplyDeps): Promise<void> {
  const { applier } = deps;
  if (desired.kind === 'streams') {
    const port = Number(desired.id);
    const local = (await deps.tree.read()).streams.get(port);
    if (desired.value === undefined) {
      if (local !== undefined) await applier.submit({ kind: 'delete', port }, FLEET_BY);
      return;
    }
    const value = objectOf({ ...desired, value: desired.value });
    const input = streamInputSchema.parse(value);
    if (input.port !== port) throw invalidInput('port', `is ${input.port ?? 'absent'} in the value of key ${desired.key}`);
    if (local !== undefined && isDeepStrictEqual(local, streamSchema.parse(value))) return;
    await applier.submit({ kind: 'put', port, spec: specFromInput(input) }, FLEET_BY);
    return;
  }
  if (desired.kind === 'apps') {
    const local = (await deps.apps.read()).apps.get(desired.id);
    if (desired.value === undefined) {
      if (local !== undefined) await applier.submitApp({ kind: 'app-delete', name: desired.id }, FLEET_BY);
      return;
    }
    const app = appSchema.parse(objectOf({ ...desired, value: desired.value }));
    if (app.name !== desired.id) throw invalidInput('name', `is "${app.name}" in the value of key ${desired.key}`);
    if (local !== undefined && isDeepStrictEqual(local, app)) return;
    await applier.submitApp({ kind: 'app-put', app, create: false }, FLEET_BY);
    return;
  }
  const local = await deps.certs.get(desired.id);
  if (desired.value === undefined) {
    if (local !== undefined) await applier.submitCertificate({ kind: 'certificate-delete', id: desired.id }, FLEET_BY);
    return;
  }
  const stored = objectOf({ ...desired, value: desired.value });
  if (typeof stored.certificatePem !== 'string' || (stored.key !== undefined && typeof stored.key !== 'string')) {
    throw invalidInput('certificate', `the value of key ${desired.key} is not a certificate Portico wrote`);
  }
  const key = stored.key === undefined ? undefined : deps.sealer.open(stored.key as string, desired.key);
  if (local !== undefined && local.certificatePem === stored.certificatePem && local.facts.hasKey === (key !== undefined)) return;
  const certificate = inspectCertificate({ certificate: stored.certificatePem, ...(key !== undefined && { key }) }, new Date());
  await applier.submitCertificate({ kind: 'certificate-put', id: desired.id, certificate, create: false }, FLEET_BY);
}
