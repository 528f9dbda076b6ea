/**
 * A node following its fleet (STORE=etcd): it watches the prefix from the revision it last applied
 * (STATE_DIR/fleet/applied.json), applies what changes to its own files and nginx (fleet/apply.ts),
 * and writes its status, `{revision, outcome, errors, nginx}`, to `nodes/<name>` under its lease.
 * A watch whose revision was compacted, or a node new to the fleet, reads the whole prefix and
 * applies the difference. A change the node cannot apply keeps its old config, is reported, and is
 * tried again at each later revision. A health check every second says whether etcd answers: while
 * it does not, reads are marked stale and changes answer 503, and nginx serves on.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { PorticoError } from '../errors.js';
import type { Nginx } from '../nginx/nginx.js';
import { applyDesired, type ApplyDeps, type Desired, type Resource } from './apply.js';
import { etcdError, tlsProblem } from './etcd.js';
import { fleetKey, parseFleetKey } from './keys.js';
import type { FleetSettings } from './settings.js';
import { NodeTable, errorOf, lagOf, type FleetOutcome, type FleetView, type NodeError, type NodeStatus } from './status.js';

/** A node's status lease: its key goes this long after the node stops renewing it. */
const LEASE_TTL_S = 6;
/** How often a node checks that etcd answers (a linearizable read: it fails without quorum). */
const HEALTH_INTERVAL_MS = 1000;
/** The longest a stop waits for etcd to confirm the watch's cancel and the lease's revoke. */
const STOP_BOUND_MS = 2000;

export interface FollowerDeps extends ApplyDeps {
  settings: FleetSettings;
  client: Etcd3;
  nginx: Nginx;
  stateDir: string;
  listenAddress: string | undefined;
  version: string;
  log: Logger;
}

export class FleetFollower {
  readonly prefix: string;
  private lease: Lease | undefined;
  /** The lease ids this process has had, to tell its own status key from another node's of the same NODE_NAME. */
  private readonly leaseIds = new Set<string>();
  private sameNameSaid = false;
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
  /** The live nodes, this one among them, and the answers waiting on them. */
  readonly table: NodeTable;
  private health: NodeJS.Timeout | undefined;
  private stopped = false;
  private synced = false;
  /** The next catching up reads the whole table (the watch's revision was compacted). */
  private fullRead = false;
  private syncing: Promise<void> | undefined;
  private statusDirty = true;
  /** The health check running now, if one is. */
  private inFlight: Promise<void> | undefined;
  private readonly startedAt = new Date().toISOString();
  /** True while etcd does not answer: reads are marked stale, mutations answer 503. */
  stale = true;
  /** Whether the log already says etcd does not answer (from start-up on too: a refused login would otherwise never be told). */
  private staleSaid = false;

  constructor(private readonly deps: FollowerDeps) {
    this.prefix = deps.settings.prefix;
    this.table = new NodeTable(deps.settings.node, () => this.statusNow(), deps.log);
  }

  get node(): string {
    return this.deps.settings.node;
  }

  private get appliedFile(): string {
    return `${this.deps.stateDir}/fleet/applied.json`;
  }

  /**
   * Starts following the fleet: once etcd answers, reads the whole table and applies the difference
   * with the node's files (what failed before a restart is tried again, what changed while it was away
   * is applied, whatever revision it had saved), then watches from there. Returns once caught up, or
   * at once when etcd does not answer: the node serves its files meanwhile.
   */
  async start(): Promise<void> {
    await mkdir(`${this.deps.stateDir}/fleet`, { recursive: true, mode: 0o700 });
    const saved = await readFile(this.appliedFile, 'utf8').then((text) => JSON.parse(text) as { prefix?: string; revision?: number; clusterId?: string; joined?: boolean }, () => undefined);
    if (saved !== undefined && saved.prefix === this.prefix && typeof saved.revision === 'number') {
      this.applied = saved.revision;
      this.clusterId = saved.clusterId;
      this.joined = saved.joined === true;
    }
    this.fullRead = true;
    this.health = setInterval(() => void this.check(), HEALTH_INTERVAL_MS);
    this.health.unref();
    await this.check();
    await this.syncing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.health !== undefined) clearInterval(this.health);
    // Nothing in flight may start a watch or grant a lease after this (both check `stopped`).
    await Promise.all([this.inFlight, this.syncing, this.draining].map((p) => p?.catch(() => undefined)));
    // Bounded: an etcd that no longer answers must not hold a SIGTERM.
    const bounded = (p: Promise<unknown> | undefined): Promise<unknown> => Promise.race([p?.catch(() => undefined), sleep(STOP_BOUND_MS)]);
    await bounded(this.watcher?.cancel());
    // The node leaves the fleet at once rather than at its lease's end: no answer waits for it.
    await bounded(this.lease?.revoke());
    this.table.wake();
    this.deps.client.close();
  }

  /** One round of the health loop: is etcd there; if so, be in sync and have the status written. */
  private check(): Promise<void> {
    if (this.stopped || this.inFlight !== undefined) return Promise.resolve();
    this.inFlight = this.checkOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async checkOnce(): Promise<void> {
    try {
      await this.deps.client.get(fleetKey(this.prefix, 'nodes', this.node)).exec();
      if (this.stale) this.deps.log.info({ endpoints: this.deps.settings.endpoints }, 'etcd answers');
      this.stale = false;
      this.staleSaid = false;
    } catch (error) {
      const say = !this.staleSaid;
      this.stale = true;
      this.staleSaid = true;
      if (say) {
        // grpc-js often loses why a TLS connection failed: a handshake of our own tells it.
        const tls = await tlsProblem(this.deps.settings).catch(() => undefined);
        this.deps.log.warn({ err: errorOf(error).message, ...(tls !== undefined && { tls }), endpoints: this.deps.settings.endpoints }, 'etcd does not answer: nginx keeps serving; reads are marked stale, changes answer 503');
      }
      return;
    }
    // Catching up runs beside the health loop, which goes on saying whether etcd answers meanwhile.
    if (!this.synced) {
      this.syncing ??= this.sync().finally(() => {
        this.syncing = undefined;
      });
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
    if (this.stopped || (this.lease !== undefined && !this.lease.revoked())) return;
    const lease = this.deps.client.lease(LEASE_TTL_S, { autoKeepAlive: true });
    lease.on('lost', (error) => {
      this.deps.log.warn({ err: error.message }, 'fleet: this node\'s lease was lost; granting a new one');
      if (this.lease === lease) this.lease = undefined;
      this.statusDirty = true;
    });
    this.leaseIds.add(await lease.grant());
    this.lease = lease;
    this.statusDirty = true;
    if (this.stopped) await lease.revoke().catch(() => undefined);
  }

  /** Reads the whole prefix and queues every difference with the node's files; then watches from there. */
  private async readAll(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
    const all = await this.deps.client.getAll().prefix(this.prefix).exec();
    const revision = Number(all.header.revision);
    // The read is the whole truth at `revision`: what the queue or the failures still hold of keys
    // deleted meanwhile (their delete events lost to a compaction) goes; so do revisions of another
    // etcd (a cluster restored from a snapshot counts from lower).
    const held = new Set([...this.queue.keys(), ...this.failed.keys()]);
    this.queue.clear();
    this.latestChange = 0;
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
    const local = await this.localKeys();
    const empty = wanted.size === 0;
    const missing = [...new Set([...local, ...held])].filter((key) => !wanted.has(key));
    if (!this.joined && empty && local.size > 0) {
      this.deps.log.error({ resources: local.size }, 'fleet: the fleet\'s table is empty and this node holds streams, apps or certificates: they are kept; POST /v1/fleet/import to copy them into the fleet, or delete them');
    } else {
      for (const key of missing) {
        const parsed = parseFleetKey(this.prefix, key) as { kind: Resource; id: string };
        this.failed.delete(key);
        this.queue.set(key, { key, kind: parsed.kind, id: parsed.id, value: undefined, revision });
      }
      // From now on this node deletes what the fleet does: it has the fleet's table (or had nothing).
      if (!empty || local.size === 0) this.joined = true;
    }
    this.fullRead = false;
    this.deps.log.info({ revision, keys: wanted.size, toApply: this.queue.size }, 'fleet: read the whole table; applying the difference with this node\'s files');
    // Revisions above the read's are another etcd's (restored from a snapshot, or new): forgotten.
    if (this.applied > revision) this.applied = 0;
    await this.drain(revision);
    this.applied = revision;
    await this.saveApplied().catch((error: unknown) => this.deps.log.error({ err: errorOf(error).message }, 'fleet: saving the revision applied failed'));
    this.statusDirty = true;
    if (!this.stopped) this.watchFrom(revision + 1);
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
    if (this.stopped) return;
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
    if (parsed.id === this.node && value !== undefined && this.leaseIds.size > 0 && lease !== undefined && lease !== '0' && !this.leaseIds.has(lease) && !this.sameNameSaid) {
      this.sameNameSaid = true;
      this.deps.log.error({ key }, 'fleet: another process writes this node\'s status key under its own lease: NODE_NAME must be unique in the fleet');
    }
    // This node's own key removed or overwritten by another hand: written again by the health loop.
    if (this.table.note(parsed.id, key, value, modRevision, lease)) this.statusDirty = true;
  }


  /** Applies what the queue holds (and retries what failed), in order; one drain at a time. */
  private drain(revision: number): Promise<void> {
    const run = async (): Promise<void> => {
      try {
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
          this.table.wake();
        }
      } catch (error) {
        // STATE_DIR unwritable (the revision cannot be saved): the files are applied; the next change
        // tries again, and a restart reads the whole table anyway.
        this.statusDirty = true;
        this.deps.log.error({ err: errorOf(error).message }, 'fleet: saving what this node applied failed');
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
    await writeFile(temp, `${JSON.stringify({ prefix: this.prefix, revision: this.applied, clusterId: this.clusterId, joined: this.joined })}\n`, { mode: 0o600 });
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
            await applyDesired(desired, this.deps);
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

  /** Throws 503 (FleetUnavailable) while etcd does not answer. */
  refuseWhenStale(): void {
    if (this.stale) throw etcdError(this.deps.settings, 'no answer to this node\'s last request');
  }

  /** A failed etcd request of the API: stale from now (the health loop says when etcd answers again). */
  unavailable(error: unknown): PorticoError {
    const wrapped = etcdError(this.deps.settings, error);
    if (wrapped.kind === 'FleetUnavailable' && !this.stale) {
      this.stale = true;
      this.staleSaid = true;
      this.deps.log.warn({ err: errorOf(error).message }, 'etcd does not answer: nginx keeps serving; reads are marked stale, changes answer 503');
    }
    return wrapped;
  }

  /** A write of this node's API made `revision`: the newest change it knows of, for the lags. */
  noteWrite(revision: number): void {
    this.latestChange = Math.max(this.latestChange, revision);
  }

  /** The table was imported by this node (fleet/writes.ts): from now on it deletes what the fleet does. */
  markJoined(): void {
    this.joined = true;
  }

  /** Waits for FLEET_WAIT's nodes to report `revision` (at most FLEET_WAIT_TIMEOUT); each live node's outcome for `key`. */
  waitFor(revision: number, key: string): Promise<FleetOutcome> {
    const { wait, waitTimeoutMs } = this.deps.settings;
    return this.table.waitFor(revision, key.slice(this.prefix.length), wait, waitTimeoutMs, () => this.stopped);
  }

  /** The newest change this node knows of: lags are counted to it (a full read's revision, which status writes raise too, is no change). */
  private get latest(): number {
    return this.latestChange;
  }

  /** For /metrics: read from memory, no etcd request. */
  snapshot(): { stale: boolean; applied: number; errors: number; lags: Array<{ node: string; lag: number }> } {
    return { stale: this.stale, applied: this.applied, errors: this.failed.size, lags: this.table.statuses().map((s) => ({ node: s.name, lag: lagOf(s, this.latest) })) };
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
      nodes: this.table.statuses().map((s) => ({ ...s, lag: lagOf(s, this.latest) })),
    };
  }
}
