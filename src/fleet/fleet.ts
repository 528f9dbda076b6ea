/**
 * A node of a fleet (STORE=etcd, issue 16). etcd holds the fleet's route table; every node applies it
 * to its own files and nginx with the single-node pipeline, and its files stay its local truth: a
 * node without etcd serves what it last applied.
 *
 * The path of a change, from any node's API:
 *   1. validated there first (writes.ts): schema, then a dry run through the local applier (render,
 *      read back, `nginx -t` of the staged tree), so a change nginx refuses never reaches etcd;
 *   2. written in one etcd transaction (writes.ts): create-if-absent, the lowest absent port for a
 *      create without one, mod-revision compares for If-Match;
 *   3. every node's watch delivers it (follower.ts); each applies it (apply.ts) and writes
 *      {revision, outcome, errors, nginx} to its status key, held by a lease (gone when the node is);
 *   4. the answer waits for FLEET_WAIT (all live nodes, a quorum of them, this node, or none) to report
 *      that revision, at most FLEET_WAIT_TIMEOUT, and lists each node's outcome (status.ts).
 *
 * This class puts the two sides together for the routes and for /metrics.
 */
import type { AppChange, AppResult } from '../apply/app-kind.js';
import type { ChangeResult } from '../apply/applier.js';
import type { Requester } from '../apply/batch.js';
import type { CertificateChange, CertificateResult } from '../apply/certificate-kind.js';
import type { Change } from '../apply/plan.js';
import type { BoundProbe } from '../ports/allocate.js';
import type { PortRange } from '../settings.js';
import { FleetFollower, type FollowerDeps } from './follower.js';
import { FleetSealer } from './secret.js';
import type { FleetOutcome, FleetView } from './status.js';
import { FleetWrites } from './writes.js';

export type { FleetOutcome, FleetView, NodeError, NodeOutcome, NodeStatus } from './status.js';

/** What a follower needs (but the sealer, made here from FLEET_SECRET), and what this node's writes need more. */
export interface FleetDeps extends Omit<FollowerDeps, 'sealer'> {
  portRange: PortRange;
  isBound: BoundProbe;
}

export class Fleet {
  private readonly follower: FleetFollower;
  private readonly writes: FleetWrites;

  constructor(deps: FleetDeps) {
    const sealer = new FleetSealer(deps.settings.secret);
    this.follower = new FleetFollower({ ...deps, sealer });
    this.writes = new FleetWrites({ ...deps, sealer, follower: this.follower });
  }

  get node(): string {
    return this.follower.node;
  }

  /** True while this node cannot reach etcd: reads are marked stale, changes answer 503. */
  get stale(): boolean {
    return this.follower.stale;
  }

  /** Starts following the fleet; returns once caught up, or at once when etcd does not answer (the node serves its files meanwhile). */
  start(): Promise<void> {
    return this.follower.start();
  }

  stop(): Promise<void> {
    return this.follower.stop();
  }

  submitStream(change: Change, by: Requester): Promise<ChangeResult & { fleet: FleetOutcome }> {
    return this.writes.submitStream(change, by);
  }

  submitApp(change: AppChange, by: Requester): Promise<AppResult & { fleet: FleetOutcome }> {
    return this.writes.submitApp(change, by);
  }

  submitCertificate(change: CertificateChange): Promise<CertificateResult & { fleet: FleetOutcome }> {
    return this.writes.submitCertificate(change);
  }

  /** Copies this node's streams, apps and certificates into an empty fleet (POST /v1/fleet/import). */
  importLocal(): Promise<{ streams: number; apps: number; certificates: number; revision: number }> {
    return this.writes.importLocal();
  }

  view(): Promise<FleetView> {
    return this.follower.view();
  }

  snapshot(): ReturnType<FleetFollower['snapshot']> {
    return this.follower.snapshot();
  }
}
