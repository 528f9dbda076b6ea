/**
 * Applying a change to the certificates: upload, replace, delete. Runs inside the applier's queue,
 * alone in its batch, so that no stream change can start to use a certificate while it is deleted.
 *
 * A certificate no stream uses is only written. One in use is written, the live tree tested with
 * `nginx -t` (which loads it) and nginx reloaded; any failure puts the old files back.
 */
import { PorticoError, asPorticoError, conflict, notFound } from '../errors.js';
import { certificateRefs, type Stream } from '../model/stream.js';
import type { InspectedCertificate } from '../model/certificate.js';
import type { Nginx } from '../nginx/nginx.js';
import type { CertStore, CertificateBackup } from '../store/certs.js';
import type { ConfigTree, StreamTree } from '../store/tree.js';
import type { TestConfigs } from './test-config.js';

export type CertificateChange =
  /** `create` fails if the id exists; `put` creates or replaces. */
  | { kind: 'certificate-put'; id: string; certificate: InspectedCertificate; create: boolean }
  | { kind: 'certificate-delete'; id: string };

export interface CertificateResult {
  id: string;
  outcome: 'created' | 'replaced' | 'unchanged' | 'deleted';
}

/** Who uses a certificate, and how. */
export interface CertificateUsers {
  streams: number[];
  apps: string[];
}

export function certificateUsers(id: string, tree: StreamTree): CertificateUsers & { needsKey: number[] } {
  const streams: number[] = [];
  const needsKey: number[] = [];
  for (const stream of [...tree.streams.values()].sort((a, b) => a.port - b.port)) {
    const refs = certificateRefs(stream).filter((ref) => ref.id === id);
    if (refs.length > 0) streams.push(stream.port);
    if (refs.some((ref) => ref.needsKey)) needsKey.push(stream.port);
  }
  return { streams, apps: [], needsKey };
}

function describeUsers(users: CertificateUsers): string {
  return users.streams.length === 1 ? `stream ${users.streams[0]}` : `streams ${users.streams.join(', ')}`;
}

export interface CertificateDeps {
  tree: ConfigTree;
  certs: CertStore;
  nginx: Nginx;
  tests: TestConfigs;
}

/** Tests the live tree, which reads the certificates as they now are on disk. */
async function testLive(deps: CertificateDeps, tree: StreamTree): Promise<void> {
  const live = await deps.tree.stage([], tree);
  try {
    const verdict = await deps.nginx.test(await deps.tests.forTree({ streams: live.includes }));
    if (!verdict.ok) {
      const message = verdict.lines.length > 0 ? verdict.lines.join('; ') : 'nginx -t failed without a message';
      throw new PorticoError('NginxRejected', `testing config: ${message}`, { nginx: verdict.lines });
    }
  } finally {
    await deps.tree.unstage(live);
  }
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
  const tree = await deps.tree.read();
  const users = certificateUsers(id, tree);
  const existing = (await deps.certs.index()).get(id);
  if (change.kind === 'certificate-delete') {
    if (existing === undefined) throw notFound(`no certificate "${id}"`);
    if (users.streams.length > 0) throw conflict(`certificate "${id}" is used by ${describeUsers(users)}`, 'id');
    await deps.certs.remove(id);
    return { id, outcome: 'deleted' };
  }

  const { certificate, create } = change;
  if (existing !== undefined && create) throw conflict(`certificate "${id}" already exists (PUT /v1/certificates/${id} replaces it)`, 'id');
  if (certificate.keyPem === undefined && users.needsKey.length > 0) {
    const ports = users.needsKey.join(', ');
    throw conflict(`certificate "${id}" is served by stream ${ports}: its replacement needs a key`, 'key');
  }
  if (existing !== undefined && (await deps.certs.holds(id, certificate.certificatePem, certificate.keyPem))) {
    return { id, outcome: 'unchanged' };
  }
  const outcome = existing === undefined ? 'created' : 'replaced';
  const inUse = users.streams.length > 0;
  if (inUse) await deps.nginx.requireMaster();
  const backup = await deps.certs.write(id, certificate.certificatePem, certificate.keyPem);
  if (!inUse) return { id, outcome };
  const context = `replacing certificate "${id}" of ${describeUsers(users)}`;
  // Until the reload, the running nginx still serves the old files: a refused test needs no reload back.
  await testLive(deps, tree).catch(async (error: unknown) => {
    throw await restore(deps, backup, asPorticoError(error, context), false);
  });
  await deps.nginx.reload({ opened: [], closed: [], drainOld: true }).catch(async (error: unknown) => {
    throw await restore(deps, backup, asPorticoError(error, context), true);
  });
  return { id, outcome };
}

/** The streams that use each certificate, for listings. */
export function usersByCertificate(streams: Iterable<Stream>): Map<string, number[]> {
  const users = new Map<string, number[]>();
  for (const stream of streams) {
    for (const ref of certificateRefs(stream)) {
      const ports = users.get(ref.id) ?? [];
      if (!ports.includes(stream.port)) ports.push(stream.port);
      users.set(ref.id, ports);
    }
  }
  return users;
}
