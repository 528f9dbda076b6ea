/**
 * A node of a fleet (STORE=etcd, issue 16). etcd holds the fleet's route table; every node applies it
 * to its own files and nginx with the single-node pipeline (the applier: test, swap, reload, verify,
 * roll back), and its files stay its local truth, so a node without etcd serves what it last applied.
 *
 * The path of a change, from any node's API:
 *   1. validated here first: schema, then a dry run through the local applier (render, read back,
 *      `nginx -t` of the staged tree), so a change nginx refuses never reaches etcd;
 *   2. written in one etcd transaction: a create compares the key's create revision with 0 (a port
 *      without one is the lowest whose key is absent, taken only if still absent), a replace or delete
 *      compares its mod revision with the one the preconditions were checked against;
 *   3. every node's watch delivers it; each applies it and writes {revision, outcome, errors, nginx}
 *      to its status key, held by a lease (gone when the node is);
 *   4. the answer waits for FLEET_WAIT (all live nodes, a quorum of them, this node, or none) to report
 *      that revision, at most FLEET_WAIT_TIMEOUT, and lists each node's outcome.
 *
 * A node watches from the revision it last applied (STATE_DIR/fleet/applied.json); a watch whose
 * revision was compacted, or a node new to the fleet, reads the whole prefix and applies the difference.
 * A change a node cannot apply (its port held by another process there) keeps its old config, is
 * reported with nginx's line, and is tried again at each later revision.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AppChange, AppResult } from '../apply/app-kind.js';
import type { Applier, ChangeResult } from '../apply/applier.js';
import type { Requester } from '../apply/batch.js';
import { certificateUsers, type CertificateChange, type CertificateResult } from '../apply/certificate-kind.js';
import type { Change } from '../apply/plan.js';
import { PorticoError, asPorticoError, conflict, invalidInput, notFound } from '../errors.js';
import { appSchema, type App } from '../model/app.js';
import { inspectCertificate } from '../model/certificate.js';
import { checkPreconditions, type Preconditions } from '../model/etag.js';
import { listensUdp, specFromInput, streamInputSchema, streamSchema, type Stream } from '../model/stream.js';
import type { Nginx } from '../nginx/nginx.js';
import { inRange } from '../ports/allocate.js';
import type { BoundProbe } from '../ports/allocate.js';
import type { PortRange } from '../settings.js';
import type { AppStore } from '../store/apps.js';
import type { CertStore } from '../store/certs.js';
import type { ConfigTree } from '../store/tree.js';
import { etcdUnavailable } from './etcd.js';
import { fleetKey, parseFleetKey, type FleetKind } from './keys.js';
import { FleetSealer } from './secret.js';
import type { FleetSettings } from './settings.js';

/** A node's status lease: its key goes this long after the node stops renewing it. */
const LEASE_TTL_S = 6;
/** How often a node checks that etcd answers (a linearizable read: it fails without quorum). */
const HEALTH_INTERVAL_MS = 1000;
/** Transactions lost to another node's at once before a change gives up (409). */
const MAX_TXN_ATTEMPTS = 64;
const FLEET_BY: Requester = { request: 'fleet', token: 'fleet' };

type Resource = Exclude<FleetKind, 'nodes'>;

/** What a node could not apply: the resource, the revision it failed at, and why (nginx's lines). */
export interface NodeError {
  resource: string;
  revision: number;
  message: string;
  nginx?: string[];
}

/** What each node writes to `nodes/<name>`. */
export interface NodeStatus {
  name: string;
  /** The last revision of the fleet's routes this node has applied (or failed, see `errors`). */
  revision: number;
  outcome: 'applied' | 'failed';
  errors: NodeError[];
  nginx: { running: boolean; version: string };
  listenAddress: string | null;
  version: string;
  startedAt: string;
  updatedAt: string;
}

/**
 * What a node's status must look like to count as one: anyone who can write to etcd can write under
 * nodes/, and a value of another shape would break every answer that lists the nodes.
 */
const nodeStatusSchema = z
  .object({
    name: z.string(),
    revision: z.number().int().nonnegative(),
    outcome: z.enum(['applied', 'failed']),
    errors: z.array(z.object({ resource: z.string(), revision: z.number(), message: z.string(), nginx: z.array(z.string()).optional() }).passthrough()),
  })
  .passthrough();

/** A stored value as JSON, or (not JSON: written by another hand) its text, which a PUT or DELETE may still replace. */
const parseStored = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

/** One node's part in a change's answer. */
export interface NodeOutcome {
  node: string;
  outcome: 'applied' | 'failed' | 'pending';
  revision: number;
  error?: { message: string; nginx?: string[] };
}

/** What a mutation's answer adds in a fleet: the revision written and each live node's outcome. */
export interface FleetOutcome {
  revision: number;
  wait: FleetSettings['wait'];
  /** Whether FLEET_WAIT was met before FLEET_WAIT_TIMEOUT. */
  complete: boolean;
  nodes: NodeOutcome[];
}

/** GET /v1/fleet: the fleet as this node sees it. */
export interface FleetView {
  node: string;
  prefix: string;
  stale: boolean;
  etcdRevision?: number;
  wait: FleetSettings['wait'];
  nodes: Array<NodeStatus & { lag: number }>;
}

/** What a key wants: its value (undefined once deleted) as of a revision. */
interface Desired {
  key: string;
  kind: Resource;
  id: string;
  value: string | undefined;
  revision: number;
}

interface Waiter {
  ready: () => boolean;
  wake: () => void;
}

export interface FleetDeps {
  settings: FleetSettings;
  client: Etcd3;
  applier: Applier;
  tree: ConfigTree;
  apps: AppStore;
  certs: CertStore;
  nginx: Nginx;
  stateDir: string;
  portRange: PortRange;
  isBound: BoundProbe;
  listenAddress: string | undefined;
  version: string;
  log: Logger;
}

const errorOf = (error: unknown): { message: string; nginx?: string[] } => {
  const wrapped = asPorticoError(error);
  return { message: wrapped.message, ...(wrapped.nginx !== undefined && wrapped.nginx.length > 0 && { nginx: wrapped.nginx }) };
};

export class Fleet {
  private readonly sealer: FleetSealer;
  private readonly prefix: string;
  private lease: Lease | undefined;
  private watcher: Watcher | undefined;
  private applied = 0;
  /** The newest change of the table this node has seen (its watch, its full reads, its own writes): what no lag is measured to. */
  private latestChange = 0;
  private clusterId: string | undefined;
  /** Whether this node has applied the fleet's whole table once (a node that has not never deletes what it holds). */
  private joined = false;
  private readonly queue = new Map<string, Desired>();
  private readonly failed = new Map<string, Desired & { error: NodeError }>();
  private draining: Promise<void> | undefined;
  private readonly nodes = new Map<string, { status: NodeStatus; modRevision: number }>();
  private readonly waiters = new Set<Waiter>();
  private health: NodeJS.Timeout | undefined;
  private stopped = false;
  private synced = false;
  /** The next catching up reads the whole table (the watch's revision was compacted). */
  private fullRead = false;
  private syncing: Promise<void> | undefined;
  private statusDirty = true;
  private checking = false;
  /** Ports this node's API is taking right now: two creates of the same node never try the same one. */
  private readonly taking = new Set<number>();
  private readonly startedAt = new Date().toISOString();
  /** True while etcd does not answer: reads are marked stale, mutations answer 503. */
  stale = true;
  /** Whether the log already says etcd does not answer (from start-up on too: a refused login would otherwise never be told). */
  private staleSaid = false;

  constructor(private readonly deps: FleetDeps) {
    this.sealer = new FleetSealer(deps.settings.secret);
    this.prefix = deps.settings.prefix;
  }

  get node(): string {
    return this.deps.settings.node;
  }

  private get appliedFile(): string {
    return `${this.deps.stateDir}/fleet/applied.json`;
  }

  /** Starts following the fleet; returns at once (etcd may be down: the node serves its files meanwhile). */
  async start(): Promise<void> {
    await mkdir(`${this.deps.stateDir}/fleet`, { recursive: true, mode: 0o700 });
    const saved = await readFile(this.appliedFile, 'utf8').then((text) => JSON.parse(text) as { prefix?: string; revision?: number; clusterId?: string }, () => undefined);
    if (saved !== undefined && saved.prefix === this.prefix && typeof saved.revision === 'number') {
      this.applied = saved.revision;
      this.clusterId = saved.clusterId;
      this.joined = true;
    }
    this.health = setInterval(() => void this.check(), HEALTH_INTERVAL_MS);
    this.health.unref();
    await this.check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.health !== undefined) clearInterval(this.health);
    await this.watcher?.cancel().catch(() => undefined);
    await this.draining;
    // The node leaves the fleet at once rather than at its lease's end: no answer waits for it.
    await this.lease?.revoke().catch(() => undefined);
    for (const waiter of this.waiters) waiter.wake();
    this.deps.client.close();
  }

  /** One round of the health loop: is etcd there; if so, be in sync and have the status written. */
  private async check(): Promise<void> {
    if (this.stopped || this.checking) return;
    this.checking = true;
    try {
      await this.checkOnce();
    } finally {
      this.checking = false;
    }
  }

  private async checkOnce(): Promise<void> {
    try {
      await this.deps.client.get(fleetKey(this.prefix, 'nodes', this.node)).exec();
      if (this.stale) this.deps.log.info({ endpoints: this.deps.settings.endpoints }, 'etcd answers');
      this.stale = false;
      this.staleSaid = false;
    } catch (error) {
      if (!this.staleSaid) this.deps.log.warn({ err: errorOf(error).message, endpoints: this.deps.settings.endpoints }, 'etcd does not answer: nginx keeps serving; reads are marked stale, changes answer 503');
      this.stale = true;
      this.staleSaid = true;
      return;
    }
    if (!this.synced) {
      this.syncing ??= this.sync().finally(() => {
        this.syncing = undefined;
      });
      await this.syncing;
    }
    if (this.statusDirty) await this.writeStatus();
  }

  /** Catches up: from the revision applied, by the watch; from the whole table when that is not possible. */
  private async sync(): Promise<void> {
    try {
      await this.ensureLease();
      const nodes = await this.deps.client.getAll().prefix(`${this.prefix}nodes/`).exec();
      for (const kv of nodes.kvs) this.noteNode(kv.key.toString(), kv.value.toString(), Number(kv.mod_revision), kv.lease);
      const clusterId = String(nodes.header.cluster_id);
      if (!this.fullRead && this.joined && this.clusterId === clusterId && this.applied > 0) {
        this.watchFrom(this.applied + 1);
      } else {
        await this.readAll();
      }
      this.clusterId = clusterId;
      this.synced = true;
    } catch (error) {
      this.deps.log.warn({ err: errorOf(error).message }, 'fleet: catching up with etcd failed; trying again');
    }
  }

  private async ensureLease(): Promise<void> {
    if (this.lease !== undefined && !this.lease.revoked()) return;
    const lease = this.deps.client.lease(LEASE_TTL_S, { autoKeepAlive: true });
    lease.on('lost', (error) => {
      this.deps.log.warn({ err: error.message }, 'fleet: this node\'s lease was lost; granting a new one');
      if (this.lease === lease) this.lease = undefined;
      this.statusDirty = true;
    });
    await lease.grant();
    this.lease = lease;
    this.statusDirty = true;
  }

  /** Reads the whole prefix and queues every difference with the node's files; then watches from there. */
  private async readAll(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
    const all = await this.deps.client.getAll().prefix(this.prefix).exec();
    const revision = Number(all.header.revision);
    const wanted = new Set<string>();
    for (const kv of all.kvs) {
      const key = kv.key.toString();
      const parsed = parseFleetKey(this.prefix, key);
      if (parsed === undefined) {
        this.deps.log.warn({ key }, 'fleet: a key under FLEET_PREFIX that is not Portico\'s: ignored');
        continue;
      }
      if (parsed.kind === 'nodes') {
        this.noteNode(key, kv.value.toString(), Number(kv.mod_revision), kv.lease);
        continue;
      }
      wanted.add(key);
      this.latestChange = Math.max(this.latestChange, Number(kv.mod_revision));
      this.queue.set(key, { key, kind: parsed.kind, id: parsed.id, value: kv.value.toString(), revision: Number(kv.mod_revision) });
    }
    // What the node holds and the fleet does not: removed, once the node belongs to this fleet. A node
    // new to a fleet whose table is empty keeps its own (import them: POST /v1/fleet/import).
    const extras = await this.localKeys();
    const empty = wanted.size === 0;
    const missing = [...extras].filter((key) => !wanted.has(key));
    if (!this.joined && empty && missing.length > 0) {
      this.deps.log.error({ resources: missing.length }, 'fleet: the fleet\'s table is empty and this node holds streams, apps or certificates: they are kept; POST /v1/fleet/import to copy them into the fleet, or delete them');
    } else {
      for (const key of missing) {
        const parsed = parseFleetKey(this.prefix, key) as { kind: Resource; id: string };
        this.queue.set(key, { key, kind: parsed.kind, id: parsed.id, value: undefined, revision });
      }
    }
    this.joined = true;
    this.fullRead = false;
    await this.drain(revision);
    if (this.applied < revision) {
      this.applied = revision;
      await this.saveApplied();
      this.statusDirty = true;
    }
    this.watchFrom(revision + 1);
  }

  private async localKeys(): Promise<Set<string>> {
    const [streams, apps, certs] = await Promise.all([this.deps.tree.read(), this.deps.apps.read(), this.deps.certs.list()]);
    return new Set([
      ...[...streams.streams.keys()].map((port) => fleetKey(this.prefix, 'streams', port)),
      ...[...apps.apps.keys()].map((name) => fleetKey(this.prefix, 'apps', name)),
      ...certs.map((c) => fleetKey(this.prefix, 'certificates', c.id)),
    ]);
  }

  private watchFrom(revision: number): void {
    const watcher = this.deps.client.watch().prefix(this.prefix).startRevision(String(revision)).watcher();
    this.watcher = watcher;
    const note = (kv: { key: Buffer; value: Buffer; mod_revision: string; lease: string }, deleted: boolean): void => {
      const key = kv.key.toString();
      const parsed = parseFleetKey(this.prefix, key);
      if (parsed === undefined) {
        this.deps.log.warn({ key }, 'fleet: a key under FLEET_PREFIX that is not Portico\'s: ignored');
        return;
      }
      if (parsed.kind === 'nodes') {
        this.noteNode(key, deleted ? undefined : kv.value.toString(), Number(kv.mod_revision), kv.lease);
        return;
      }
      const revision = Number(kv.mod_revision);
      this.latestChange = Math.max(this.latestChange, revision);
      this.queue.set(key, { key, kind: parsed.kind, id: parsed.id, value: deleted ? undefined : kv.value.toString(), revision });
    };
    watcher.on('data', (res) => {
      for (const event of res.events) note(event.kv as { key: Buffer; value: Buffer; mod_revision: string; lease: string }, String(event.type) === 'Delete');
      if (this.queue.size > 0) void this.drain(0);
    });
    watcher.on('error', (error) => {
      // A compacted start revision (or any cancel): the history is gone; read the whole table again.
      if (this.stopped || this.watcher !== watcher) return;
      this.deps.log.warn({ err: error.message, applied: this.applied }, 'fleet: the watch was cancelled (its revision compacted?): reading the whole table');
      this.watcher = undefined;
      this.synced = false;
      this.fullRead = true;
      void watcher.cancel().catch(() => undefined);
    });
    // A lost stream: the library resumes from the revision it last saw created, which may skip what was
    // still being replayed; the node resumes from what it applied instead (applying twice changes nothing).
    watcher.on('disconnected', () => {
      if (this.stopped || this.watcher !== watcher) return;
      this.watcher = undefined;
      this.synced = false;
      void watcher.cancel().catch(() => undefined);
    });
  }

  private noteNode(key: string, value: string | undefined, modRevision: number, lease?: string): void {
    const parsed = parseFleetKey(this.prefix, key);
    if (parsed === undefined || parsed.kind !== 'nodes') return;
    const known = this.nodes.get(parsed.id);
    if (known !== undefined && known.modRevision > modRevision) return;
    const status = value === undefined ? undefined : nodeStatusSchema.safeParse(parseStored(value));
    // Every node writes its status under a lease (it goes with the node): one without is nobody's.
    const leased = lease !== undefined && lease !== '0' && lease !== '';
    if (status === undefined || !status.success || status.data.name !== parsed.id || !leased) {
      if (status !== undefined) this.deps.log.warn({ key }, 'fleet: a node\'s status key that no node wrote (not a status, or another node\'s name): ignored');
      this.nodes.delete(parsed.id);
      // This node's own key removed or overwritten by another hand: written again by the health loop.
      if (parsed.id === this.node) this.statusDirty = true;
    } else {
      this.nodes.set(parsed.id, { status: status.data as unknown as NodeStatus, modRevision });
    }
    this.wakeWaiters();
  }

  /** Applies what the queue holds (and retries what failed), in order; one drain at a time. */
  private drain(revision: number): Promise<void> {
    const run = async (): Promise<void> => {
      while (this.queue.size > 0 && !this.stopped) {
        const batch = [...this.queue.values()];
        this.queue.clear();
        for (const [key, f] of this.failed) if (!batch.some((d) => d.key === key)) batch.push(f);
        const upTo = Math.max(revision, ...batch.map((d) => d.revision));
        await this.applyBatch(batch);
        this.applied = Math.max(this.applied, upTo);
        await this.saveApplied();
        this.statusDirty = true;
        await this.writeStatus();
        this.wakeWaiters();
      }
    };
    const previous = this.draining ?? Promise.resolve();
    const next = previous.then(run, run).finally(() => {
      if (this.draining === next) this.draining = undefined;
    });
    this.draining = next;
    return next;
  }

  private async saveApplied(): Promise<void> {
    const temp = `${this.appliedFile}.tmp`;
    await writeFile(temp, `${JSON.stringify({ prefix: this.prefix, revision: this.applied, clusterId: this.clusterId })}\n`, { mode: 0o600 });
    await rename(temp, this.appliedFile);
  }

  /** Certificates first (the routes that name them need them), then streams and apps, then certificates removed. */
  private async applyBatch(batch: Desired[]): Promise<void> {
    const certPuts = batch.filter((d) => d.kind === 'certificates' && d.value !== undefined);
    const routes = batch.filter((d) => d.kind !== 'certificates');
    const certDeletes = batch.filter((d) => d.kind === 'certificates' && d.value === undefined);
    for (const phase of [certPuts, routes, certDeletes]) {
      await Promise.all(
        phase.map(async (desired) => {
          try {
            await this.applyOne(desired);
            this.failed.delete(desired.key);
          } catch (error) {
            const { message, nginx } = errorOf(error);
            const resource = `${desired.kind}/${desired.id}`;
            this.deps.log.warn({ resource, revision: desired.revision, err: message }, 'fleet: this node could not apply a change: it keeps its old config and tries again at the next revision');
            this.failed.set(desired.key, { ...desired, error: { resource, revision: desired.revision, message, ...(nginx !== undefined && { nginx }) } });
          }
        }),
      );
    }
  }

  /** Makes this node's files say what `desired` does; nothing when they already do. */
  private async applyOne(desired: Desired): Promise<void> {
    const { applier } = this.deps;
    if (desired.kind === 'streams') {
      const port = Number(desired.id);
      const local = (await this.deps.tree.read()).streams.get(port);
      if (desired.value === undefined) {
        if (local !== undefined) await applier.submit({ kind: 'delete', port }, FLEET_BY);
        return;
      }
      const input = streamInputSchema.parse(JSON.parse(desired.value));
      if (input.port !== port) throw invalidInput('port', `is ${input.port ?? 'absent'} in the value of key ${desired.key}`);
      if (local !== undefined && isDeepStrictEqual(local, streamSchema.parse(JSON.parse(desired.value)))) return;
      await applier.submit({ kind: 'put', port, spec: specFromInput(input) }, FLEET_BY);
      return;
    }
    if (desired.kind === 'apps') {
      const local = (await this.deps.apps.read()).apps.get(desired.id);
      if (desired.value === undefined) {
        if (local !== undefined) await applier.submitApp({ kind: 'app-delete', name: desired.id }, FLEET_BY);
        return;
      }
      const app = appSchema.parse(JSON.parse(desired.value));
      if (app.name !== desired.id) throw invalidInput('name', `is "${app.name}" in the value of key ${desired.key}`);
      if (local !== undefined && isDeepStrictEqual(local, app)) return;
      await applier.submitApp({ kind: 'app-put', app, create: false }, FLEET_BY);
      return;
    }
    const local = await this.deps.certs.get(desired.id);
    if (desired.value === undefined) {
      if (local !== undefined) await applier.submitCertificate({ kind: 'certificate-delete', id: desired.id }, FLEET_BY);
      return;
    }
    const stored = JSON.parse(desired.value) as { certificatePem?: unknown; key?: unknown };
    if (typeof stored.certificatePem !== 'string' || (stored.key !== undefined && typeof stored.key !== 'string')) {
      throw invalidInput('certificate', `the value of key ${desired.key} is not a certificate Portico wrote`);
    }
    const key = stored.key === undefined ? undefined : this.sealer.open(stored.key, desired.key);
    if (local !== undefined && local.certificatePem === stored.certificatePem && local.facts.hasKey === (key !== undefined)) return;
    const certificate = inspectCertificate({ certificate: stored.certificatePem, ...(key !== undefined && { key }) }, new Date());
    await applier.submitCertificate({ kind: 'certificate-put', id: desired.id, certificate, create: false }, FLEET_BY);
  }

  private statusNow(): NodeStatus {
    return {
      name: this.node,
      revision: this.applied,
      outcome: this.failed.size > 0 ? 'failed' : 'applied',
      errors: [...this.failed.values()].map((f) => f.error).sort((a, b) => (a.resource < b.resource ? -1 : 1)),
      nginx: { running: this.nginxRunning, version: this.nginxVersion },
      listenAddress: this.deps.listenAddress ?? null,
      version: this.deps.version,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
    };
  }

  private nginxRunning = false;
  private nginxVersion = '';

  private async writeStatus(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.ensureLease();
      const lease = this.lease as Lease;
      this.nginxRunning = await this.deps.nginx.running().catch(() => false);
      this.nginxVersion ||= (await this.deps.nginx.describe().catch(() => ({ version: '' }))).version;
      this.statusDirty = false;
      await lease.put(fleetKey(this.prefix, 'nodes', this.node)).value(JSON.stringify(this.statusNow())).exec();
    } catch (error) {
      this.statusDirty = true;
      this.deps.log.debug({ err: errorOf(error).message }, 'fleet: writing this node\'s status failed; trying again');
    }
  }

  private wakeWaiters(): void {
    for (const waiter of this.waiters) if (waiter.ready()) waiter.wake();
  }

  // ---------------------------------------------------------------------------------------------
  // The API's side: mutations through etcd, and what /v1/fleet answers.
  // ---------------------------------------------------------------------------------------------

  private refuseWhenStale(): void {
    if (this.stale) throw etcdUnavailable(this.deps.settings, new Error('no answer within ETCD_TIMEOUT'));
  }

  /** A failed etcd request of the API: stale from now (the health loop says when etcd answers again). */
  private unavailable(error: unknown): PorticoError {
    const wrapped = etcdUnavailable(this.deps.settings, error);
    if (wrapped.kind === 'FleetUnavailable' && !this.stale) {
      this.stale = true;
      this.staleSaid = true;
      this.deps.log.warn({ err: errorOf(error).message }, 'etcd does not answer: nginx keeps serving; reads are marked stale, changes answer 503');
    }
    return wrapped;
  }

  private async read(key: string): Promise<{ value: string; modRevision: number } | undefined> {
    try {
      const res = await this.deps.client.get(key).exec();
      const kv = res.kvs[0];
      return kv === undefined ? undefined : { value: kv.value.toString(), modRevision: Number(kv.mod_revision) };
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  /** Writes `value` at `key` (undefined: deletes it) if it is still as read (`expected`: its mod revision, 0 for absent). */
  private async swap(key: string, expected: number, value: string | undefined): Promise<number | undefined> {
    try {
      const cmp = expected === 0 ? this.deps.client.if(key, 'Create', '==', 0) : this.deps.client.if(key, 'Mod', '==', expected);
      const op = value === undefined ? this.deps.client.delete().key(key) : this.deps.client.put(key).value(value);
      const res = await cmp.then(op).commit();
      if (!res.succeeded) return undefined;
      this.latestChange = Math.max(this.latestChange, Number(res.header.revision));
      return Number(res.header.revision);
    } catch (error) {
      throw this.unavailable(error);
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
    this.refuseWhenStale();
    if (change.kind === 'create' && change.port === undefined) return this.createAnywhere(change, by);
    const port = change.port as number;
    const key = fleetKey(this.prefix, 'streams', port);
    const what = `stream ${port}`;
    const preconditions: Preconditions = change.kind === 'create' ? {} : { ...(change.ifMatch !== undefined && { ifMatch: change.ifMatch }), ...(change.ifNoneMatch !== undefined && { ifNoneMatch: change.ifNoneMatch }) };
    let stream: Stream | undefined;
    const written = await this.conditional(key, what, preconditions, { create: change.kind === 'create', mustExist: change.kind === 'delete' }, async () => {
      if (change.kind === 'delete') return undefined;
      const dry = await this.deps.applier.dryRun({ kind: 'put', port, spec: change.spec, ...(change.via !== undefined && { via: change.via }) }, by);
      Fleet.refused(dry, what);
      stream = dry.stream;
      return JSON.stringify(stream);
    });
    const fleet = await this.waitFor(written.revision, key);
    return { outcome: written.outcome, port, ...(stream !== undefined && { stream }), fleet };
  }

  /** A create without a port: the lowest port of the range no stream of the fleet has, nor a process here holds. */
  private async createAnywhere(change: Extract<Change, { kind: 'create' }>, by: Requester): Promise<ChangeResult & { fleet: FleetOutcome }> {
    const dry = await this.deps.applier.dryRun(change, by);
    Fleet.refused(dry, 'the stream');
    const stream = dry.stream as Stream;
    const { portRange, isBound } = this.deps;
    for (let attempt = 0; attempt < MAX_TXN_ATTEMPTS; attempt += 1) {
      let taken: Set<number>;
      try {
        const keys = await this.deps.client.getAll().prefix(`${this.prefix}streams/`).keys();
        taken = new Set(keys.map((k) => Number(k.slice(`${this.prefix}streams/`.length))));
      } catch (error) {
        throw this.unavailable(error);
      }
      let port: number | undefined;
      for (let p = portRange.from; p <= portRange.to; p += 1) {
        if (taken.has(p) || this.taking.has(p) || !inRange(portRange, p)) continue;
        if (await isBound(p, listensUdp(stream))) continue;
        port = p;
        break;
      }
      if (port === undefined) throw conflict(`no free port in PORT_RANGE ${portRange.from}-${portRange.to} across the fleet`);
      this.taking.add(port);
      try {
        const placed = streamSchema.parse({ ...stream, port });
        const revision = await this.swap(fleetKey(this.prefix, 'streams', port), 0, JSON.stringify(placed));
        if (revision === undefined) continue; // another node took it first: the next lowest
        const fleet = await this.waitFor(revision, fleetKey(this.prefix, 'streams', port));
        return { outcome: 'created', port, stream: placed, fleet };
      } finally {
        this.taking.delete(port);
      }
    }
    throw conflict(`${MAX_TXN_ATTEMPTS} ports were taken by other nodes while this one tried them; try again`);
  }

  async submitApp(change: AppChange, by: Requester): Promise<AppResult & { fleet: FleetOutcome }> {
    this.refuseWhenStale();
    const name = change.kind === 'app-put' ? change.app.name : change.name;
    if (change.kind === 'app-put' && change.app.tls?.acme === true) {
      throw invalidInput('tls.acme', 'is not available with STORE=etcd yet: upload the certificate to /v1/certificates (every node serves it)');
    }
    const key = fleetKey(this.prefix, 'apps', name);
    const what = `app "${name}"`;
    const preconditions: Preconditions = { ...(change.ifMatch !== undefined && { ifMatch: change.ifMatch }), ...(change.ifNoneMatch !== undefined && { ifNoneMatch: change.ifNoneMatch }) };
    let app: App | undefined;
    const written = await this.conditional(key, what, preconditions, { create: change.kind === 'app-put' && change.create, mustExist: change.kind === 'app-delete' }, async () => {
      if (change.kind === 'app-delete') return undefined;
      const dry = await this.deps.applier.dryRunApp({ kind: 'app-put', app: change.app, create: false }, by);
      Fleet.refused(dry, what);
      app = dry.app ?? change.app;
      return JSON.stringify(app);
    });
    const fleet = await this.waitFor(written.revision, key);
    return { outcome: written.outcome, name, ...(app !== undefined && { app }), fleet };
  }

  async submitCertificate(change: CertificateChange): Promise<CertificateResult & { fleet: FleetOutcome }> {
    this.refuseWhenStale();
    const key = fleetKey(this.prefix, 'certificates', change.id);
    const what = `certificate "${change.id}"`;
    const preconditions: Preconditions = { ...(change.ifMatch !== undefined && { ifMatch: change.ifMatch }), ...(change.ifNoneMatch !== undefined && { ifNoneMatch: change.ifNoneMatch }) };
    if (change.kind === 'certificate-delete') {
      const [streams, apps] = await Promise.all([this.deps.tree.read(), this.deps.apps.read()]);
      const users = certificateUsers(change.id, streams, apps);
      if (users.streams.length > 0 || users.apps.length > 0) {
        throw conflict(`${what} is in use (streams ${JSON.stringify(users.streams)}, apps ${JSON.stringify(users.apps)}): change them first`);
      }
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
        ...(certificate.keyPem !== undefined && { key: this.sealer.seal(certificate.keyPem, key) }),
      };
      // The same certificate and key again: nothing to write (the sealed key differs at each sealing).
      // A key that does not open (altered, or sealed elsewhere) is replaced.
      const before = current as { certificatePem?: unknown; key?: unknown } | null | undefined;
      const opened = (sealed: unknown): string | undefined => {
        if (typeof sealed !== 'string') return undefined;
        try {
          return this.sealer.open(sealed, key);
        } catch {
          return undefined;
        }
      };
      if (before?.certificatePem === value.certificatePem && certificate.keyPem !== undefined && opened(before.key) === certificate.keyPem) {
        return JSON.stringify(current);
      }
      return JSON.stringify(value);
    });
    const fleet = await this.waitFor(written.revision, key);
    return { id: change.id, outcome: written.outcome, fleet };
  }

  /**
   * Waits until FLEET_WAIT's nodes report `revision` (or FLEET_WAIT_TIMEOUT passes), and answers each
   * live node's outcome for `key`.
   */
  async waitFor(revision: number, key: string): Promise<FleetOutcome> {
    const { wait, waitTimeoutMs } = this.deps.settings;
    const outcomes = (): NodeOutcome[] => this.outcomes(revision, key);
    const met = (): boolean => {
      const all = outcomes();
      const done = all.filter((n) => n.outcome !== 'pending').length;
      if (wait === 'none') return true;
      if (wait === 'local') return all.find((n) => n.node === this.node)?.outcome !== 'pending';
      if (wait === 'quorum') return done >= Math.floor(all.length / 2) + 1;
      return done === all.length;
    };
    if (!met()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => finish(), waitTimeoutMs);
        const waiter: Waiter = { ready: () => this.stopped || met(), wake: () => finish() };
        const finish = (): void => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        };
        this.waiters.add(waiter);
      });
    }
    const nodes = outcomes();
    return { revision, wait, complete: met(), nodes };
  }

  private outcomes(revision: number, key: string): NodeOutcome[] {
    const resource = key.slice(this.prefix.length);
    return this.statuses().map((status) => {
      const error = status.errors.find((e) => e.resource === resource);
      const reached = status.revision >= revision;
      return {
        node: status.name,
        outcome: !reached ? 'pending' : error !== undefined ? 'failed' : 'applied',
        revision: status.revision,
        ...(reached && error !== undefined && { error: { message: error.message, ...(error.nginx !== undefined && { nginx: error.nginx }) } }),
      };
    });
  }

  /** Every live node's status, this node's own as it is now. */
  private statuses(): NodeStatus[] {
    const statuses = new Map([...this.nodes].map(([name, n]) => [name, n.status]));
    statuses.set(this.node, this.statusNow());
    return [...statuses.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Revisions `status` is behind the newest change this node knows of (0: up to date; a full read may leave a node past it). */
  private lagOf(status: NodeStatus): number {
    return Math.max(0, Math.max(this.latestChange, this.applied) - status.revision);
  }

  /** For /metrics: read from memory, no etcd request. */
  snapshot(): { stale: boolean; applied: number; errors: number; lags: Array<{ node: string; lag: number }> } {
    return { stale: this.stale, applied: this.applied, errors: this.failed.size, lags: this.statuses().map((s) => ({ node: s.name, lag: this.lagOf(s) })) };
  }

  /** GET /v1/fleet: every live node, its revision and lag, its last outcome and errors. */
  async view(): Promise<FleetView> {
    let revision: number | undefined;
    if (!this.stale) {
      try {
        const res = await this.deps.client.getAll().prefix(this.prefix).limit(1).exec();
        revision = Number(res.header.revision);
      } catch {
        revision = undefined;
      }
    }
    return {
      node: this.node,
      prefix: this.prefix,
      stale: this.stale,
      ...(revision !== undefined && { etcdRevision: revision }),
      wait: this.deps.settings.wait,
      nodes: this.statuses().map((s) => ({ ...s, lag: this.lagOf(s) })),
    };
  }

  /**
   * Copies this node's streams, apps and certificates into an empty fleet prefix (a single node
   * joining a fleet): one transaction, only if none of the fleet's keys exists yet.
   */
  async importLocal(): Promise<{ streams: number; apps: number; certificates: number; revision: number }> {
    this.refuseWhenStale();
    let existing: number;
    try {
      existing = (await this.deps.client.getAll().prefix(this.prefix).keys()).filter((k) => parseFleetKey(this.prefix, k)?.kind !== 'nodes').length;
    } catch (error) {
      throw this.unavailable(error);
    }
    if (existing > 0) throw conflict(`the fleet prefix ${this.prefix} already holds ${existing} streams, apps or certificates: import is for an empty fleet`);
    const [streams, apps, certs] = await Promise.all([this.deps.tree.read(), this.deps.apps.read(), this.deps.certs.list()]);
    const puts: Array<[string, string]> = [];
    for (const cert of certs) {
      const key = fleetKey(this.prefix, 'certificates', cert.id);
      const { keyPem } = await this.deps.certs.files(cert.id);
      puts.push([key, JSON.stringify({ id: cert.id, certificatePem: cert.certificatePem, facts: cert.facts, ...(keyPem !== undefined && { key: this.sealer.seal(keyPem, key) }) })]);
    }
    for (const stream of streams.streams.values()) puts.push([fleetKey(this.prefix, 'streams', stream.port), JSON.stringify(stream)]);
    for (const app of apps.apps.values()) puts.push([fleetKey(this.prefix, 'apps', app.name), JSON.stringify(app)]);
    if (puts.length === 0) throw invalidInput('body', 'this node holds no stream, app or certificate to import');
    try {
      const [first, ...rest] = puts as [[string, string], ...Array<[string, string]>];
      let cmp = this.deps.client.if(first[0], 'Create', '==', 0);
      for (const [key] of rest) cmp = cmp.and(key, 'Create', '==', 0);
      const res = await cmp.then(...puts.map(([key, value]) => this.deps.client.put(key).value(value))).commit();
      if (!res.succeeded) throw conflict('another node wrote to the fleet meanwhile: import is for an empty fleet');
      this.joined = true;
      const revision = Number(res.header.revision);
      await this.waitFor(revision, '');
      return { streams: streams.streams.size, apps: apps.apps.size, certificates: certs.length, revision };
    } catch (error) {
      throw error instanceof PorticoError ? error : this.unavailable(error);
    }
  }
}
