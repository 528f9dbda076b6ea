/**
 * The API's side of a fleet (STORE=etcd): a change is validated on this node first (schema, then a
 * dry run through the local applier: render, read back, `nginx -t` of the staged tree), so that what
 * nginx refuses never reaches etcd; then written in one etcd transaction:
 * - a create compares the key's create revision with 0; a create without a port takes the lowest port
 *   of PORT_RANGE whose key is absent (and no process here holds), only if still absent;
 * - a replace or delete compares the key's mod revision with the one its preconditions (If-Match,
 *   the same ETags as on a single node) were checked against, so of two nodes changing one resource
 *   at once the second answers 412;
 * then answered once FLEET_WAIT's nodes report its revision (follower.ts), with each node's outcome.
 */
import type { Etcd3 } from 'etcd3';
import type { AppChange, AppResult } from '../apply/app-kind.js';
import type { ChangeResult } from '../apply/applier.js';
import type { Requester } from '../apply/batch.js';
import { certificateUsers, type CertificateChange, type CertificateResult } from '../apply/certificate-kind.js';
import type { Change } from '../apply/plan.js';
import { PorticoError, conflict, invalidInput, notFound } from '../errors.js';
import { appSchema, type App } from '../model/app.js';
import { checkPreconditions, type Preconditions } from '../model/etag.js';
import { listensUdp, streamSchema, type Stream } from '../model/stream.js';
import { rangeSize, type BoundProbe } from '../ports/allocate.js';
import type { PortRange } from '../settings.js';
import type { ApplyDeps } from './apply.js';
import type { FleetFollower } from './follower.js';
import { fleetKey, parseFleetKey } from './keys.js';
import type { FleetSettings } from './settings.js';
import { parseStored, type FleetOutcome } from './status.js';

/** Transactions lost to other nodes' in a row before a change gives up (409). */
const MAX_TXN_ATTEMPTS = 64;
/** Ports one create without a port tries at most, each lost to another node's create. */
const MAX_ALLOCATION_ATTEMPTS = 1024;
/** Keys per transaction of an import: under etcd's default --max-txn-ops, 128. */
const IMPORT_CHUNK = 100;

export interface WritesDeps extends ApplyDeps {
  settings: FleetSettings;
  client: Etcd3;
  portRange: PortRange;
  isBound: BoundProbe;
  follower: FleetFollower;
}

export class FleetWrites {
  /** Ports this node's API is taking right now: two creates of the same node never try the same one. */
  private readonly taking = new Set<number>();

  constructor(private readonly deps: WritesDeps) {}

  private async read(key: string): Promise<{ value: string; modRevision: number } | undefined> {
    try {
      const res = await this.deps.client.get(key).exec();
      const kv = res.kvs[0];
      return kv === undefined ? undefined : { value: kv.value.toString(), modRevision: Number(kv.mod_revision) };
    } catch (error) {
      throw this.deps.follower.unavailable(error);
    }
  }

  /** Writes `value` at `key` (undefined: deletes it) if it is still as read (`expected`: its mod revision, 0 for absent). */
  private async swap(key: string, expected: number, value: string | undefined): Promise<number | undefined> {
    try {
      const cmp = expected === 0 ? this.deps.client.if(key, 'Create', '==', 0) : this.deps.client.if(key, 'Mod', '==', expected);
      const op = value === undefined ? this.deps.client.delete().key(key) : this.deps.client.put(key).value(value);
      const res = await cmp.then(op).commit();
      if (!res.succeeded) return undefined;
      this.deps.follower.noteWrite(Number(res.header.revision));
      return Number(res.header.revision);
    } catch (error) {
      throw this.deps.follower.unavailable(error);
    }
  }

  /**
   * Replaces (or creates, or deletes) one resource: checks the preconditions against etcd's value and
   * makes the write conditional on it not having changed since. `make` builds the new value from the
   * current one (validating it locally), or undefined to delete.
   */
  private async conditional(key: string, what: string, preconditions: Preconditions, options: { create?: boolean; mustExist?: boolean }, make: (current: unknown) => Promise<string | undefined>): Promise<{ revision: number; outcome: 'created' | 'replaced' | 'unchanged' | 'deleted'; value: string | undefined }> {
    const conditional = preconditions.ifMatch !== undefined || preconditions.ifNoneMatch !== undefined;
    for (let attempt = 0; attempt < MAX_TXN_ATTEMPTS; attempt += 1) {
      const current = await this.read(key);
      const parsed: unknown = current === undefined ? undefined : parseStored(current.value);
      if (options.mustExist === true && current === undefined) throw notFound(`no ${what}`);
      if (options.create === true && current !== undefined) throw conflict(`${what} already exists in the fleet`);
      checkPreconditions(preconditions, parsed, what);
      const value = await make(parsed);
      if (value === current?.value) return { revision: current?.modRevision ?? 0, outcome: 'unchanged', value };
      const revision = await this.swap(key, current?.modRevision ?? 0, value);
      if (revision !== undefined) {
        return { revision, outcome: value === undefined ? 'deleted' : current === undefined ? 'created' : 'replaced', value };
      }
      // Another node wrote it between the read and the write: with preconditions, that is their failure.
      if (conditional) throw new PorticoError('PreconditionFailed', `${what} was changed by another request meanwhile`);
      if (options.create === true) throw conflict(`${what} already exists in the fleet`);
    }
    throw conflict(`${what}: ${MAX_TXN_ATTEMPTS} other writes won the race for it; try again`);
  }

  /** The local dry run of a change: every step up to the swap; nginx's refusal is the caller's 422. */
  private static refused(result: { nginx: { ok: boolean; lines: string[] } }, what: string): void {
    if (!result.nginx.ok) throw new PorticoError('NginxRejected', `${what}: nginx -t refuses it: ${result.nginx.lines.join('; ')}`, { nginx: result.nginx.lines });
  }

  /** A stream change through the fleet: validated here, written to etcd, answered once applied (FLEET_WAIT). */
  async submitStream(change: Change, by: Requester): Promise<ChangeResult & { fleet: FleetOutcome }> {
    this.deps.follower.refuseWhenStale();
    if (change.kind === 'create' && change.port === undefined) return this.createAnywhere(change, by);
    const port = change.port as number;
    const key = fleetKey(this.deps.settings.prefix, 'streams', port);
    const what = `stream ${port}`;
    const preconditions: Preconditions = change.kind === 'create' ? {} : { ...(change.ifMatch !== undefined && { ifMatch: change.ifMatch }), ...(change.ifNoneMatch !== undefined && { ifNoneMatch: change.ifNoneMatch }) };
    let stream: Stream | undefined;
    const written = await this.conditional(key, what, preconditions, { create: change.kind === 'create', mustExist: change.kind === 'delete' }, async () => {
      if (change.kind === 'delete') return undefined;
      const dry = await this.deps.applier.dryRun({ kind: 'put', port, spec: change.spec, ...(change.via !== undefined && { via: change.via }) }, by, 'as-applied');
      FleetWrites.refused(dry, what);
      stream = dry.stream;
      return JSON.stringify(stream);
    });
    const fleet = await this.deps.follower.waitFor(written.revision, key);
    return { outcome: written.outcome, port, ...(stream !== undefined && { stream }), fleet };
  }

  /** A create without a port: the lowest port of the range no stream of the fleet has, nor a process here holds. */
  private async createAnywhere(change: Extract<Change, { kind: 'create' }>, by: Requester): Promise<ChangeResult & { fleet: FleetOutcome }> {
    const dry = await this.deps.applier.dryRun(change, by, 'as-applied');
    FleetWrites.refused(dry, 'the stream');
    const stream = dry.stream as Stream;
    const { portRange, isBound } = this.deps;
    // Ports this request found taken by another node's create, or held by a process here: not tried
    // again, so that each lost race moves on (however many nodes create at once, the range bounds it).
    const passed = new Set<number>();
    const attempts = Math.min(rangeSize(portRange), MAX_ALLOCATION_ATTEMPTS);
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      let taken: Set<number>;
      try {
        const keys = await this.deps.client.getAll().prefix(`${this.deps.settings.prefix}streams/`).keys();
        taken = new Set(keys.map((k) => Number(k.slice(`${this.deps.settings.prefix}streams/`.length))));
      } catch (error) {
        throw this.deps.follower.unavailable(error);
      }
      let port: number | undefined;
      for (let p = portRange.from; p <= portRange.to; p += 1) {
        if (taken.has(p) || this.taking.has(p) || passed.has(p)) continue;
        // Claimed before any await: another request of this node never tries the same port meanwhile.
        this.taking.add(p);
        if (await isBound(p, listensUdp(stream))) {
          this.taking.delete(p);
          passed.add(p);
          continue;
        }
        port = p;
        break;
      }
      if (port === undefined) throw conflict(`no free port in PORT_RANGE ${portRange.from}-${portRange.to} across the fleet`);
      try {
        const placed = streamSchema.parse({ ...stream, port });
        const revision = await this.swap(fleetKey(this.deps.settings.prefix, 'streams', port), 0, JSON.stringify(placed));
        if (revision === undefined) {
          passed.add(port); // another node took it first: the next one
          continue;
        }
        const fleet = await this.deps.follower.waitFor(revision, fleetKey(this.deps.settings.prefix, 'streams', port));
        return { outcome: 'created', port, stream: placed, fleet };
      } finally {
        this.taking.delete(port);
      }
    }
    throw conflict(`${attempts} ports were taken by other nodes while this one tried them; try again`);
  }

  async submitApp(change: AppChange, by: Requester): Promise<AppResult & { fleet: FleetOutcome }> {
    this.deps.follower.refuseWhenStale();
    const name = change.kind === 'app-put' ? change.app.name : change.name;
    if (change.kind === 'app-put' && change.app.tls?.acme === true) {
      throw invalidInput('tls.acme', 'is not available with STORE=etcd yet: upload the certificate to /v1/certificates (every node serves it)');
    }
    const key = fleetKey(this.deps.settings.prefix, 'apps', name);
    const what = `app "${name}"`;
    const preconditions: Preconditions = { ...(change.ifMatch !== undefined && { ifMatch: change.ifMatch }), ...(change.ifNoneMatch !== undefined && { ifNoneMatch: change.ifNoneMatch }) };
    let app: App | undefined;
    const written = await this.conditional(key, what, preconditions, { create: change.kind === 'app-put' && change.create, mustExist: change.kind === 'app-delete' }, async () => {
      if (change.kind === 'app-delete') return undefined;
      const dry = await this.deps.applier.dryRunApp({ kind: 'app-put', app: change.app, create: false }, by, 'as-applied');
      FleetWrites.refused(dry, what);
      app = dry.app ?? change.app;
      return JSON.stringify(app);
    });
    const fleet = await this.deps.follower.waitFor(written.revision, key);
    return { outcome: written.outcome, name, ...(app !== undefined && { app }), fleet };
  }

  async submitCertificate(change: CertificateChange): Promise<CertificateResult & { fleet: FleetOutcome }> {
    this.deps.follower.refuseWhenStale();
    const key = fleetKey(this.deps.settings.prefix, 'certificates', change.id);
    const what = `certificate "${change.id}"`;
    const preconditions: Preconditions = { ...(change.ifMatch !== undefined && { ifMatch: change.ifMatch }), ...(change.ifNoneMatch !== undefined && { ifNoneMatch: change.ifNoneMatch }) };
    // Who uses it, as the fleet's table says (a node's files may lag it): as a single node would, a
    // certificate in use is not deleted, and one a stream or app serves keeps a key.
    const users = await this.usersInFleet(change.id);
    if (change.kind === 'certificate-delete' && (users.streams.length > 0 || users.apps.length > 0)) {
      throw conflict(`${what} is in use (streams ${JSON.stringify(users.streams)}, apps ${JSON.stringify(users.apps)}): change them first`);
    }
    if (change.kind === 'certificate-put' && change.certificate.keyPem === undefined && (users.needsKey.streams.length > 0 || users.needsKey.apps.length > 0)) {
      throw conflict(`${what} is served by streams ${JSON.stringify(users.needsKey.streams)} and apps ${JSON.stringify(users.needsKey.apps)}, which need its key: send the key too`, 'key');
    }
    // The ETag of a certificate is that of its stored form (id, PEM, facts), as on a single node.
    const storedForm = (value: unknown): unknown => {
      if (typeof value !== 'object' || value === null) return value;
      const { key: _key, ...rest } = value as Record<string, unknown>;
      return rest;
    };
    const written = await this.conditional(key, what, {}, { create: change.kind === 'certificate-put' && change.create, mustExist: change.kind === 'certificate-delete' }, async (current) => {
      checkPreconditions(preconditions, current === undefined ? undefined : storedForm(current), what);
      if (change.kind === 'certificate-delete') return undefined;
      const { certificate } = change;
      const value = {
        id: change.id,
        certificatePem: certificate.certificatePem,
        facts: certificate.facts,
        ...(certificate.keyPem !== undefined && { key: this.deps.sealer.seal(certificate.keyPem, key) }),
      };
      // The same certificate and key again: nothing to write (the sealed key differs at each sealing).
      // A key that does not open (altered, or sealed elsewhere) is replaced.
      const before = current as { certificatePem?: unknown; key?: unknown } | null | undefined;
      const opened = (sealed: unknown): string | undefined => {
        if (typeof sealed !== 'string') return undefined;
        try {
          return this.deps.sealer.open(sealed, key);
        } catch {
          return undefined;
        }
      };
      if (before?.certificatePem === value.certificatePem && certificate.keyPem !== undefined && opened(before.key) === certificate.keyPem) {
        return JSON.stringify(current);
      }
      return JSON.stringify(value);
    });
    const fleet = await this.deps.follower.waitFor(written.revision, key);
    return { id: change.id, outcome: written.outcome, fleet };
  }

  /** The streams and apps of the fleet's table that name certificate `id` (values that do not parse are no one's). */
  private async usersInFleet(id: string): Promise<ReturnType<typeof certificateUsers>> {
    const prefix = this.deps.settings.prefix;
    let kvs: Record<string, string>;
    try {
      const [streams, apps] = await Promise.all([this.deps.client.getAll().prefix(`${prefix}streams/`).strings(), this.deps.client.getAll().prefix(`${prefix}apps/`).strings()]);
      kvs = { ...streams, ...apps };
    } catch (error) {
      throw this.deps.follower.unavailable(error);
    }
    const streams = new Map<number, Stream>();
    const apps = new Map<string, App>();
    for (const [key, text] of Object.entries(kvs)) {
      const parsed = parseFleetKey(prefix, key);
      const value = parseStored(text);
      if (parsed?.kind === 'streams') {
        const stream = streamSchema.safeParse(value);
        if (stream.success) streams.set(stream.data.port, stream.data);
      } else if (parsed?.kind === 'apps') {
        const app = appSchema.safeParse(value);
        if (app.success) apps.set(app.data.name, app.data);
      }
    }
    return certificateUsers(id, { streams }, { apps });
  }

  /**
   * Copies this node's streams, apps and certificates into an empty fleet prefix (a single node
   * joining a fleet): one transaction, only if none of the fleet's keys exists yet.
   */
  async importLocal(): Promise<{ streams: number; apps: number; certificates: number; revision: number }> {
    this.deps.follower.refuseWhenStale();
    let existing: number;
    try {
      const kinds = (await this.deps.client.getAll().prefix(this.deps.settings.prefix).keys()).map((k) => parseFleetKey(this.deps.settings.prefix, k)?.kind);
      existing = kinds.filter((kind) => kind === 'streams' || kind === 'apps' || kind === 'certificates').length;
    } catch (error) {
      throw this.deps.follower.unavailable(error);
    }
    if (existing > 0) throw conflict(`the fleet prefix ${this.deps.settings.prefix} already holds ${existing} streams, apps or certificates: import is for an empty fleet`);
    const [streams, apps, certs] = await Promise.all([this.deps.tree.read(), this.deps.apps.read(), this.deps.certs.list()]);
    const puts: Array<[string, string]> = [];
    for (const cert of certs) {
      const key = fleetKey(this.deps.settings.prefix, 'certificates', cert.id);
      const { keyPem } = await this.deps.certs.files(cert.id);
      puts.push([key, JSON.stringify({ id: cert.id, certificatePem: cert.certificatePem, facts: cert.facts, ...(keyPem !== undefined && { key: this.deps.sealer.seal(keyPem, key) }) })]);
    }
    for (const stream of streams.streams.values()) puts.push([fleetKey(this.deps.settings.prefix, 'streams', stream.port), JSON.stringify(stream)]);
    for (const app of apps.apps.values()) puts.push([fleetKey(this.deps.settings.prefix, 'apps', app.name), JSON.stringify(app)]);
    if (puts.length === 0) throw invalidInput('body', 'this node holds no stream, app or certificate to import');
    // Certificates first (the routes name them), in transactions of at most IMPORT_CHUNK keys: etcd
    // refuses more than --max-txn-ops (128 by default) compares or operations in one. Each writes its
    // keys only if none exists: a write meanwhile stops the import there, and says how far it got.
    let revision = 0;
    for (let done = 0; done < puts.length; done += IMPORT_CHUNK) {
      const chunk = puts.slice(done, done + IMPORT_CHUNK) as [[string, string], ...Array<[string, string]>];
      let succeeded: boolean;
      try {
        let cmp = this.deps.client.if(chunk[0][0], 'Create', '==', 0);
        for (const [key] of chunk.slice(1)) cmp = cmp.and(key, 'Create', '==', 0);
        const res = await cmp.then(...chunk.map(([key, value]) => this.deps.client.put(key).value(value))).commit();
        succeeded = res.succeeded;
        if (succeeded) revision = Number(res.header.revision);
      } catch (error) {
        throw this.deps.follower.unavailable(error);
      }
      if (!succeeded) {
        throw conflict(done === 0 ? 'another node wrote to the fleet meanwhile: import is for an empty fleet' : `another node wrote to the fleet meanwhile: ${done} of ${puts.length} resources were imported, the rest not`);
      }
      this.deps.follower.markJoined();
    }
    this.deps.follower.noteWrite(revision);
    await this.deps.follower.waitFor(revision, '');
    return { streams: streams.streams.size, apps: apps.apps.size, certificates: certs.length, revision };
  }
}
