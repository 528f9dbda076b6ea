/**
 * Applying a change to the certificates: upload, replace, delete. Runs inside the applier's queue,
 * alone in its batch, so that no stream or app can start to use a certificate while it is deleted.
 *
 * A certificate nothing uses is only written. One in use is written, the live tree tested with
 * `nginx -t` (which loads it) and nginx reloaded; any failure puts the old files back.
 */
import { PorticoError, asPorticoError, conflict, notFound } from '../errors.js';
import { appCertificateRefs } from '../model/app.js';
import { checkPreconditions, type Preconditions } from '../model/etag.js';
import { certificateRefs } from '../model/stream.js';
import type { InspectedCertificate } from '../model/certificate.js';
import type { Nginx } from '../nginx/nginx.js';
import type { CertStore, CertificateBackup } from '../store/certs.js';
import type { AppStore, AppTree } from '../store/apps.js';
import type { ConfigTree, StreamTree } from '../store/tree.js';
import { rejected } from './batch.js';
import type { TestConfigs } from './test-config.js';

export type CertificateChange =
  /** `create` fails if the id exists; `put` creates or replaces. */
  | ({ kind: 'certificate-put'; id: string; certificate: InspectedCertificate; create: boolean } & Preconditions)
  | ({ kind: 'certificate-delete'; id: string } & Preconditions);

export interface CertificateResult {
  id: string;
  outcome: 'created' | 'replaced' | 'unchanged' | 'deleted';
}

/** Who uses a certificate, and how. */
export interface CertificateUsers {
  streams: number[];
  apps: string[];
}

/** The streams and apps that use certificate `id`, and those that serve it (and so need its key). */
export function certificateUsers(id: string, streams: StreamTree, apps: AppTree): CertificateUsers & { needsKey: CertificateUsers } {
  const users: CertificateUsers = { streams: [], apps: [] };
  const needsKey: CertificateUsers = { streams: [], apps: [] };
  for (const stream of [...streams.streams.values()].sort((a, b) => a.port - b.port)) {
    const refs = certificateRefs(stream).filter((ref) => ref.id === id);
    if (refs.length > 0) users.streams.push(stream.port);
    if (refs.some((ref) => ref.needsKey)) needsKey.streams.push(stream.port);
  }
  for (const app of [...apps.apps.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const refs = appCertificateRefs(app).filter((ref) => ref.id === id);
    if (refs.length > 0) users.apps.push(app.name);
    if (refs.some((ref) => ref.needsKey)) needsKey.apps.push(app.name);
  }
  return { ...users, needsKey };
}

function describeUsers(users: CertificateUsers): string {
  const parts = [
    ...(users.streams.length > 0 ? [`${users.streams.length === 1 ? 'stream' : 'streams'} ${users.streams.join(', ')}`] : []),
    ...(users.apps.length > 0 ? [`${users.apps.length === 1 ? 'app' : 'apps'} ${users.apps.map((a) => `"${a}"`).join(', ')}`] : []),
  ];
  return parts.join(' and ');
}

const inUse = (users: CertificateUsers): boolean => users.streams.length + users.apps.length > 0;

export interface CertificateDeps {
  tree: ConfigTree;
  apps: AppStore;
  certs: CertStore;
  nginx: Nginx;
  tests: TestConfigs;
}

/** Tests the live tree, which reads the certificates as they now are on disk. */
async function testLive(deps: CertificateDeps): Promise<void> {
  const verdict = await deps.nginx.test(await deps.tests.forTree({}));
  if (!verdict.ok) throw rejected('testing config', verdict.lines);
}

/** Puts the old files back after a failed reload, and reloads them; the error says if that failed too. */
async function restore(deps: CertificateDeps, backup: CertificateBackup, error: PorticoError, reload: boolean): Promise<PorticoError> {
  try {
    await deps.certs.restore(backup);
    if (reload) await deps.nginx.reload({ opened: [], closed: [], drainOld: true });
    return error;
  } catch (again) {
    return new PorticoError(error.kind, `${error.message}; additionally, restoring the previous certificate: ${asPorticoError(again).message}`, {
      nginx: error.nginx,
      cause: error,
    });
  }
}

export async function applyCertificateChange(deps: CertificateDeps, change: CertificateChange): Promise<CertificateResult> {
  const { id } = change;
  const users = certificateUsers(id, await deps.tree.read(), await deps.apps.read());
  const existing = (await deps.certs.index()).get(id);
  checkPreconditions(change, await deps.certs.get(id), `certificate "${id}"`);
  if (change.kind === 'certificate-delete') {
    if (existing === undefined) throw notFound(`no certificate "${id}"`);
    if (inUse(users)) throw conflict(`certificate "${id}" is used by ${describeUsers(users)}`, 'id');
    await deps.certs.remove(id);
    return { id, outcome: 'deleted' };
  }

  const { certificate, create } = change;
  if (existing !== undefined && create) throw conflict(`certificate "${id}" already exists (PUT /v1/certificates/${id} replaces it)`, 'id');
  if (certificate.keyPem === undefined && inUse(users.needsKey)) {
    throw conflict(`certificate "${id}" is served by ${describeUsers(users.needsKey)}: its replacement needs a key`, 'key');
  }
  if (existing !== undefined && (await deps.certs.holds(id, certificate.certificatePem, certificate.keyPem))) {
    return { id, outcome: 'unchanged' };
  }
  const outcome = existing === undefined ? 'created' : 'replaced';
  const used = inUse(users);
  if (used) await deps.nginx.requireMaster();
  const backup = await deps.certs.write(id, certificate.certificatePem, certificate.keyPem);
  if (!used) return { id, outcome };
  const context = `replacing certificate "${id}" of ${describeUsers(users)}`;
  // Until the reload, the running nginx still serves the old files: a refused test needs no reload back.
  await testLive(deps).catch(async (error: unknown) => {
    throw await restore(deps, backup, asPorticoError(error, context), false);
  });
  await deps.nginx.reload({ opened: [], closed: [], drainOld: true }).catch(async (error: unknown) => {
    throw await restore(deps, backup, asPorticoError(error, context), true);
  });
  return { id, outcome };
}
