/**
 * Certificates as a kind of batch: upload, replace and delete go through the same pipeline as streams
 * and apps. A change is the pair of files `<id>.crt` and `<id>.key`, staged together and swapped in
 * under one journal, so the pair changes whole or not at all, even across a crash.
 *
 * The test loads each staged pair in a throwaway config as the files that name it would: a stream
 * rendered from the stream template with the staging folder as its certificate directory, serving
 * the certificate with its key (nginx checks that they belong together) and trusting it as a CA.
 * The files of the streams and apps that use it name it by its live path, which nginx reads at the
 * reload: that reload is their test, and an `[emerg]` there rolls the pair back (DESIGN invariant 5).
 * A change to a certificate nothing uses needs no reload, and no running nginx.
 */
import { asPorticoError, conflict, notFound } from '../errors.js';
import { appCertificateRefs } from '../model/app.js';
import { checkPreconditions, type Preconditions } from '../model/etag.js';
import type { InspectedCertificate } from '../model/certificate.js';
import { certificateRefs, streamSchema } from '../model/stream.js';
import type { ReloadPlan } from '../nginx/nginx.js';
import type { StreamRenderer } from '../render/stream.js';
import type { AppStore, AppTree } from '../store/apps.js';
import type { CertStore } from '../store/certs.js';
import type { FileChange } from '../store/config-dir.js';
import type { ConfigTree, StreamTree } from '../store/tree.js';
import type { BatchKind, Pending, Staging, Work } from './batch.js';
import { renderChecked } from './render-checked.js';
import type { PhaseTimer } from './report.js';
import type { TestConfigs } from './test-config.js';

export type CertificateChange =
  /** `create` fails if the id exists; `put` creates or replaces. */
  | ({ kind: 'certificate-put'; id: string; certificate: InspectedCertificate; create: boolean } & Preconditions)
  | ({ kind: 'certificate-delete'; id: string } & Preconditions);

export interface CertificateResult {
  id: string;
  outcome: 'created' | 'replaced' | 'unchanged' | 'deleted';
}

export interface PlannedCertificate {
  id: string;
  outcome: CertificateResult['outcome'];
  /** Whether the new pair has a key (a put). */
  hasKey: boolean;
  /** Whether a stream or app names it: nginx must reload to read the new files. */
  used: boolean;
}

/** Who uses a certificate, and how. */
export interface CertificateUsers {
  streams: number[];
  apps: string[];
}

/** The streams and apps that use certificate `id`, and those that serve it (and so need its key). */
export function certificateUsers(id: string, streams: Pick<StreamTree, 'streams'>, apps: Pick<AppTree, 'apps'>): CertificateUsers & { needsKey: CertificateUsers } {
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

export function describeCertificateChange(change: CertificateChange): string {
  return change.kind === 'certificate-delete' ? `deleting certificate "${change.id}"` : `storing certificate "${change.id}"`;
}

/** A name the probe streams verify upstreams against: never resolved, never connected to. */
const PROBE_SERVER_NAME = 'certificate.portico.invalid';

export interface CertificateKindDeps {
  tree: ConfigTree;
  apps: AppStore;
  certs: CertStore;
  tests: TestConfigs;
  /** Renders a stream whose certificate paths lie in `certs.stageDir`. */
  renderProbe: StreamRenderer;
}

export class CertificateKind implements BatchKind<CertificateChange, PlannedCertificate> {
  readonly staging: Staging;

  constructor(private readonly deps: CertificateKindDeps) {
    this.staging = deps.certs;
  }

  async plan(
    items: Array<Pending<CertificateChange>>,
    timer: PhaseTimer,
  ): Promise<{ files: string[]; work: Array<Work<CertificateChange, PlannedCertificate>> }> {
    const { certs } = this.deps;
    const [streams, apps, index] = [await this.deps.tree.read(), await this.deps.apps.read(), await certs.index()];
    await timer.mark('read');
    const work: Array<Work<CertificateChange, PlannedCertificate>> = [];
    for (const item of items) {
      try {
        const planned = await this.planOne(item.change, certificateUsers(item.change.id, streams, apps), index.get(item.change.id));
        work.push({ item, ...planned });
      } catch (error) {
        item.reject(asPorticoError(error, describeCertificateChange(item.change)));
      }
    }
    await timer.mark('plan');
    return { files: [], work };
  }

  /** One change against the directory as it is (a batch holds one change per id). Throws why it cannot apply. */
  private async planOne(
    change: CertificateChange,
    users: ReturnType<typeof certificateUsers>,
    existing: { hasKey: boolean } | undefined,
  ): Promise<Omit<Work<CertificateChange, PlannedCertificate>, 'item'>> {
    const { certs } = this.deps;
    const { id } = change;
    const names = certs.fileNames(id);
    // Read only for a precondition: a certificate file broken by hand cannot be parsed, and must stay replaceable.
    if (change.ifMatch !== undefined || change.ifNoneMatch !== undefined) checkPreconditions(change, await certs.get(id), `certificate "${id}"`);
    const used = inUse(users);
    if (change.kind === 'certificate-delete') {
      if (existing === undefined) throw notFound(`no certificate "${id}"`);
      if (used) throw conflict(`certificate "${id}" is used by ${describeUsers(users)}`, 'id');
      const files: FileChange[] = [{ name: names.certificate, text: null }, ...(existing.hasKey ? [{ name: names.key, text: null }] : [])];
      return { planned: { id, outcome: 'deleted', hasKey: false, used }, files, unchanged: false };
    }
    const { certificate, create } = change;
    if (existing !== undefined && create) throw conflict(`certificate "${id}" already exists (PUT /v1/certificates/${id} replaces it)`, 'id');
    if (certificate.keyPem === undefined && inUse(users.needsKey)) {
      throw conflict(`certificate "${id}" is served by ${describeUsers(users.needsKey)}: its replacement needs a key`, 'key');
    }
    const hasKey = certificate.keyPem !== undefined;
    const stored = await certs.files(id);
    const unchanged = existing !== undefined && stored.certificatePem === certificate.certificatePem && stored.keyPem === certificate.keyPem;
    const files: FileChange[] = [
      { name: names.certificate, text: certificate.certificatePem, mode: 0o644 },
      ...(hasKey ? [{ name: names.key, text: certificate.keyPem as string, mode: 0o600 }] : []),
      // A replacement without a key takes the old key away with the old certificate.
      ...(!hasKey && existing?.hasKey === true ? [{ name: names.key, text: null }] : []),
    ];
    const outcome = unchanged ? 'unchanged' : existing === undefined ? 'created' : 'replaced';
    return { planned: { id, outcome, hasKey, used }, files, unchanged };
  }

  async shared(): Promise<FileChange[]> {
    return [];
  }

  testTree(_includes: string[], work: Array<Work<CertificateChange, PlannedCertificate>>): Promise<string> {
    return this.probe(work);
  }

  testFile(_files: string[], _shared: string[], work: Array<Work<CertificateChange, PlannedCertificate>>): Promise<string> {
    return this.probe(work);
  }

  /**
   * A main config of one probe stream per staged certificate: it serves the certificate with its key
   * (if it has one) and trusts it as a CA, so nginx -t loads the staged files as every user would.
   * `nginx -t` binds no port, so the probes' ports are only distinct, never opened.
   */
  private probe(work: Array<Work<CertificateChange, PlannedCertificate>>): Promise<string> {
    const puts = work.filter((w) => w.planned.outcome !== 'deleted');
    const options = { certDir: this.deps.certs.stageDir };
    const text = puts
      .map(({ planned }, i) =>
        streamSchema.parse({
          port: i + 1,
          upstreams: [{ address: '127.0.0.1:1' }],
          ...(planned.hasKey && { tls: { certificate: planned.id } }),
          upstreamTls: { serverName: PROBE_SERVER_NAME, verify: true, trustedCertificate: planned.id },
        }),
      )
      .map((stream) => renderChecked(this.deps.renderProbe, stream, options))
      .join('\n');
    return this.deps.tests.forStreamText(text);
  }

  reloadPlan(work: Array<Work<CertificateChange, PlannedCertificate>>): ReloadPlan | undefined {
    // nginx reads a certificate's files only at a (re)load: one nothing names is just written.
    if (!work.some((w) => w.planned.used)) return undefined;
    // Until the old workers stop accepting, a new connection may still get the old certificate.
    return { opened: [], closed: [], drainOld: true };
  }

  result(w: Work<CertificateChange, PlannedCertificate>): CertificateResult {
    return { id: w.planned.id, outcome: w.planned.outcome };
  }

  key(change: CertificateChange): string {
    return change.id;
  }

  describe(change: CertificateChange): string {
    return describeCertificateChange(change);
  }
}
