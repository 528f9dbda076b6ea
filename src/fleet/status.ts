/**
 * What the nodes of a fleet tell each other (STORE=etcd): each node's status at `nodes/<name>`, held
 * by its lease, and the table of the live nodes every node keeps from its watch, which a change's
 * answer waits on (FLEET_WAIT) and which /v1/fleet lists.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { asPorticoError } from '../errors.js';
import type { FleetSettings, FleetWait } from './settings.js';

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
export const nodeStatusSchema = z
  .object({
    name: z.string(),
    revision: z.number().int().nonnegative(),
    outcome: z.enum(['applied', 'failed']),
    errors: z.array(z.object({ resource: z.string(), revision: z.number(), message: z.string(), nginx: z.array(z.string()).optional() }).passthrough()),
  })
  .passthrough();

/** A stored value as JSON, or (not JSON: written by another hand) its text, which a PUT or DELETE may still replace. */
export const parseStored = (text: string): unknown => {
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

/** A PorticoError's message and nginx's lines, as a node reports a failure. */
export const errorOf = (error: unknown): { message: string; nginx?: string[] } => {
  const wrapped = asPorticoError(error);
  return { message: wrapped.message, ...(wrapped.nginx !== undefined && wrapped.nginx.length > 0 && { nginx: wrapped.nginx }) };
};

interface Waiter {
  ready: () => boolean;
  wake: () => void;
}

/** Revisions `status` is behind `latest`, the newest change a node knows of (0: up to date; a full read may leave a node past it). */
export const lagOf = (status: NodeStatus, latest: number): number => Math.max(0, latest - status.revision);

/**
 * The live nodes as this node knows them: the other nodes' statuses from the watch (the newest of
 * each, by mod revision), this node's own as it is now (`own`), and the answers waiting on them.
 */
export class NodeTable {
  private readonly nodes = new Map<string, { status: NodeStatus; modRevision: number }>();
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly self: string,
    private readonly own: () => NodeStatus,
    private readonly log: Logger,
  ) {}

  /**
   * Notes the value of `nodes/<id>` (undefined: deleted) at `modRevision`, written under `lease`.
   * Answers true when it was this node's own key, removed or overwritten by another hand: the node
   * then writes it again.
   */
  note(id: string, key: string, value: string | undefined, modRevision: number, lease: string | undefined): boolean {
    const known = this.nodes.get(id);
    if (known !== undefined && known.modRevision > modRevision) return false;
    const status = value === undefined ? undefined : nodeStatusSchema.safeParse(parseStored(value));
    // Every node writes its status under a lease (it goes with the node): one without is nobody's.
    const leased = lease !== undefined && lease !== '0' && lease !== '';
    let ownLost = false;
    if (status === undefined || !status.success || status.data.name !== id || !leased) {
      if (status !== undefined) this.log.warn({ key }, 'fleet: a node\'s status key that no node wrote (not a status, another node\'s name, or no lease): ignored');
      this.nodes.delete(id);
      ownLost = id === this.self;
    } else {
      this.nodes.set(id, { status: status.data as unknown as NodeStatus, modRevision });
    }
    this.wake();
    return ownLost;
  }

  /** Every live node's status, sorted by name, this node's own as it is now. */
  statuses(): NodeStatus[] {
    const statuses = new Map([...this.nodes].map(([name, n]) => [name, n.status]));
    statuses.set(this.self, this.own());
    return [...statuses.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Each live node's outcome for `resource` (`streams/9000`) written at `revision`. */
  outcomes(revision: number, resource: string): NodeOutcome[] {
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

  /**
   * Waits until `wait`'s nodes report `revision` (or `timeoutMs` passes, or `stopped()`), and answers
   * each live node's outcome for `resource`.
   */
  async waitFor(revision: number, resource: string, wait: FleetWait, timeoutMs: number, stopped: () => boolean): Promise<FleetOutcome> {
    const met = (): boolean => {
      const all = this.outcomes(revision, resource);
      const done = all.filter((n) => n.outcome !== 'pending').length;
      if (wait === 'none') return true;
      if (wait === 'local') return all.find((n) => n.node === this.self)?.outcome !== 'pending';
      if (wait === 'quorum') return done >= Math.floor(all.length / 2) + 1;
      return done === all.length;
    };
    if (!met()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => finish(), timeoutMs);
        const waiter: Waiter = { ready: () => stopped() || met(), wake: () => finish() };
        const finish = (): void => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        };
        this.waiters.add(waiter);
      });
    }
    return { revision, wait, complete: met(), nodes: this.outcomes(revision, resource) };
  }

  /** Wakes the answers whose wait is over (a node reported, or this node applied). */
  wake(): void {
    for (const waiter of this.waiters) if (waiter.ready()) waiter.wake();
  }
}
