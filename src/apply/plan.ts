/**
 * Planning a batch: each change, in arrival order, is resolved against the tree as the changes
 * before it leave it — ports allocated, conflicts found — into the files to write or remove.
 * Allocation happens here, inside the single writer, which is what makes it race-free.
 */
import { isDeepStrictEqual } from 'node:util';
import { PorticoError, conflict, invalidInput, notFound } from '../errors.js';
import { checkPreconditions, type Preconditions } from '../model/etag.js';
import { certificateRefs, listensUdp, streamSchema, type Stream, type StreamSpec } from '../model/stream.js';
import { inRange, type BoundProbe } from '../ports/allocate.js';
import type { PortRange } from '../settings.js';
import type { CertificateIndex } from '../store/certs.js';
import { claimedPorts, type StreamTree } from '../store/tree.js';

/** A mutation a caller asked for. */
export type Change =
  /** A new stream; `port` undefined lets Portico allocate one. Fails if the port is taken. */
  | ({ kind: 'create'; port?: number; spec: StreamSpec } & Spelling)
  /** Creates or replaces the stream on `port`, if it is as the conditional headers want it. */
  | ({ kind: 'put'; port: number; spec: StreamSpec } & Preconditions & Spelling)
  | ({ kind: 'delete'; port: number } & Preconditions);

/** How the caller wrote the spec: `via: 'backend'` when its one upstream was `"backend"`, which errors then name. */
export interface Spelling {
  via?: 'backend';
}

/** Why an upstream of a stream leads back into this host's own listeners (`apply/targets.ts`), or undefined; `streams` may hold the stream's previous version. */
export type LoopCheck = (stream: Stream, others: ReadonlyMap<number, Stream>) => Promise<{ path: Array<string | number>; message: string } | undefined>;

export type Outcome = 'created' | 'replaced' | 'unchanged' | 'deleted';

/** A change resolved against the tree: what to do with which file. */
export interface PlannedChange {
  change: Change;
  port: number;
  outcome: Outcome;
  /** The stream after the change (undefined for a delete). */
  stream?: Stream;
  /** The stream before the change, if there was one. */
  previous?: Stream;
}

export type PlanResult = { ok: PlannedChange } | { error: PorticoError };

/** The state planning works on: the tree's streams and every port something else claims. */
export interface PlanState {
  streams: Map<number, Stream>;
  /** Ports claimed by files that are not readable streams (hand-edited or foreign). */
  otherClaims: Set<number>;
  /** Files named as Portico's but not readable as a stream, by port: deletable, not replaceable. */
  unreadable: Set<number>;
  /** The certificates a stream may name. */
  certificates: CertificateIndex;
}

export function planState(tree: StreamTree, certificates: CertificateIndex): PlanState {
  const otherClaims = claimedPorts({ ...tree, streams: new Map() });
  return { streams: new Map(tree.streams), otherClaims, unreadable: new Set(tree.unreadable.map((f) => f.port)), certificates };
}

/** Why a stream cannot name the certificates it names, or undefined when it can. */
function certificateError(spec: StreamSpec, certificates: CertificateIndex): PorticoError | undefined {
  for (const ref of certificateRefs(spec)) {
    const stored = certificates.get(ref.id);
    if (stored === undefined) return invalidInput(ref.field, `names certificate "${ref.id}", which does not exist (upload it to /v1/certificates)`);
    if (ref.needsKey && !stored.hasKey) {
      return invalidInput(ref.field, `names certificate "${ref.id}", which has no key: it can serve only as a trusted CA`);
    }
  }
  return undefined;
}

/** Every port taken in `state`, looked up in place: a batch of allocations copies nothing. */
export function claimed(state: PlanState): { has(port: number): boolean } {
  return { has: (port) => state.streams.has(port) || state.otherClaims.has(port) };
}

/** How planning gets ports: `PortAllocator`, which also keeps out the ports reserved by getfreeport. */
export interface PlanPorts {
  range: PortRange;
  /** Asks the host about a port the caller named. */
  isBound: BoundProbe;
  /** The lowest free port not in `claimed`, for a create without one; undefined when the range is full. */
  allocate(claimed: { has(port: number): boolean }, udp: boolean): Promise<number | undefined>;
  /** Asks the host at once about the ports the batch's `count` TCP allocations would ask about one by one. */
  prefetch(claimed: { has(port: number): boolean }, count: number): Promise<void>;
  /** The answer when `allocate` found no port. */
  rangeFull(): PorticoError;
}

/**
 * Resolves one change against `state` and, on success, applies it to `state` so that the next
 * change of the batch sees it. A port the caller names may be reserved: the first create on it uses
 * the reservation, whoever sends it.
 */
export async function planChange(change: Change, state: PlanState, ports: PlanPorts, loops: LoopCheck): Promise<PlanResult> {
  const { range, isBound } = ports;
  if (change.kind !== 'create') {
    try {
      checkPreconditions(change, state.streams.get(change.port), `stream ${change.port}`);
    } catch (error) {
      return { error: error as PorticoError };
    }
  }
  if (change.kind === 'delete') {
    const previous = state.streams.get(change.port);
    if (previous === undefined && !state.unreadable.has(change.port)) {
      return { error: notFound(`no stream on port ${change.port}`) };
    }
    state.streams.delete(change.port);
    state.unreadable.delete(change.port);
    state.otherClaims.delete(change.port);
    return { ok: { change, port: change.port, outcome: 'deleted', ...(previous && { previous }) } };
  }

  const refused = certificateError(change.spec, state.certificates);
  if (refused !== undefined) return { error: refused };
  const udp = listensUdp(change.spec);
  let port = change.port;
  if (port === undefined) {
    port = await ports.allocate(claimed(state), udp);
    if (port === undefined) return { error: ports.rangeFull() };
  } else {
    if (!inRange(range, port)) {
      return {
        error: new PorticoError('InvalidInput', `port: ${port} is outside PORT_RANGE ${range.from}-${range.to}`, {
          field: 'port',
        }),
      };
    }
    const existing = state.streams.get(port);
    if (change.kind === 'create' && existing !== undefined) {
      return { error: conflict(`port ${port} already has a stream`, 'port') };
    }
    if (state.otherClaims.has(port)) {
      return { error: conflict(`port ${port} is claimed by a file Portico cannot read (see /v1/status)`, 'port') };
    }
    if (existing === undefined && (await isBound(port, udp))) {
      return { error: conflict(`port ${port} is in use by another process`, 'port') };
    }
  }

  // Parsed again only to put the fields in the schema's order, as a read of the file will answer them.
  const stream: Stream = streamSchema.parse({ port, ...change.spec });
  const loop = await loops(stream, state.streams);
  if (loop !== undefined) {
    const field = change.via === 'backend' && loop.path.join('.') === 'upstreams.0.address' ? 'backend' : loop.path.join('.');
    return { error: invalidInput(field, loop.message) };
  }
  const previous = state.streams.get(port);
  state.streams.set(port, stream);
  if (previous === undefined) return { ok: { change, port, outcome: 'created', stream } };
  return { ok: { change, port, outcome: isDeepStrictEqual(previous, stream) ? 'unchanged' : 'replaced', stream, previous } };
}
