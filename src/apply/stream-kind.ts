/**
 * Streams as a kind of batch: planned by port (allocation included) against the stream directory,
 * tested alone in a stream-only main config, verified by their listeners accepting.
 */
import { asPorticoError } from '../errors.js';
import { listensTcp, listensUdp, type Stream } from '../model/stream.js';
import type { Listener, ReloadPlan } from '../nginx/nginx.js';
import type { StreamRenderer } from '../render/stream.js';
import type { CertStore } from '../store/certs.js';
import type { FileChange } from '../store/config-dir.js';
import type { ConfigTree } from '../store/tree.js';
import type { BatchKind, Pending, Staging, Work } from './batch.js';
import { claimed, planChange, planState, type Change, type LoopCheck, type Outcome, type PlannedChange } from './plan.js';
import type { PortAllocator } from './port-allocator.js';
import { renderReadBack } from './render-checked.js';
import type { PhaseTimer } from './report.js';
import type { TestConfigs } from './test-config.js';

export interface ChangeResult {
  outcome: Outcome;
  port: number;
  stream?: Stream;
}

export interface StreamKindDeps {
  tree: ConfigTree;
  certs: CertStore;
  tests: TestConfigs;
  renderStream: StreamRenderer;
  /** Allocates ports and keeps the reservations of getfreeport. */
  ports: PortAllocator;
  /** Refuses upstreams that lead back into this host's own listeners. */
  loops: LoopCheck;
  /** LISTEN_ADDRESS: where a stream without its own address listens. */
  listenAddress?: string | undefined;
}

/** Where a stream's listeners can be reached from this host: the wildcard through loopback; without its own address, the node's (LISTEN_ADDRESS). */
function listenersOf(stream: Stream | undefined, nodeAddress: string | undefined): Listener[] {
  if (stream === undefined) return [];
  const address = (stream.listenAddress ?? nodeAddress)?.replace(/^\[(.*)\]$/, '$1');
  const host = address === undefined || address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  const { port } = stream;
  return [...(listensTcp(stream) ? [{ host, port }] : []), ...(listensUdp(stream) ? [{ host, port, udp: true }] : [])];
}

export function describeStreamChange(change: Change): string {
  if (change.kind === 'delete') return `removing stream ${change.port}`;
  return change.port === undefined ? 'creating a stream' : `applying stream ${change.port}`;
}

export class StreamKind implements BatchKind<Change, PlannedChange> {
  readonly staging: Staging;
  /** The batch being planned or applied, as `PortAllocator` numbers it (one at a time: the single writer). */
  private batch = 0;

  constructor(private readonly deps: StreamKindDeps) {
    this.staging = deps.tree;
  }

  async plan(items: Array<Pending<Change>>, timer: PhaseTimer): Promise<{ files: string[]; work: Array<Work<Change, PlannedChange>> }> {
    const { tree: store, ports, renderStream, loops } = this.deps;
    this.batch = ports.openBatch();
    const tree = await store.read();
    await timer.mark('read');
    const state = planState(tree, await this.deps.certs.index());
    // Many creates without a port (a burst): the host is asked about their ports at once.
    const allocations = items.filter((i) => i.change.kind === 'create' && i.change.port === undefined && !listensUdp(i.change.spec)).length;
    if (allocations > 1) await ports.prefetch(claimed(state), allocations);
    const work: Array<Work<Change, PlannedChange>> = [];
    for (const item of items) {
      const result = await planChange(item.change, state, ports, loops);
      if ('error' in result) {
        item.reject(result.error.within(describeStreamChange(item.change)));
        continue;
      }
      const { ok: planned } = result;
      // Until the batch is over, getfreeport must not hand out a port it is about to write.
      if (planned.outcome === 'created') ports.hold(planned.port);
      try {
        const name = store.fileName(planned.port);
        let text: string | null = null;
        if (planned.stream !== undefined) {
          const rendered = renderReadBack(renderStream, planned.stream, store.fileOptions);
          text = rendered.text;
          // The read after the swap need not parse this text again (`ConfigTree.noteReadBack`).
          store.noteReadBack(name, text, rendered.back);
        }
        work.push({ item, planned, files: [{ name, text }], unchanged: planned.outcome === 'unchanged' });
      } catch (error) {
        item.reject(asPorticoError(error, describeStreamChange(item.change)));
      }
    }
    await timer.mark('plan');
    return { files: tree.files, work };
  }

  /** Frees the batch's ports; a stream committed on a reserved port used its reservation up. */
  settle(_planned: Array<Work<Change, PlannedChange>>, committed: Array<Work<Change, PlannedChange>>): void {
    void this.deps.ports.settle(this.batch, committed.filter((w) => w.planned.outcome === 'created').map((w) => w.planned.port));
  }

  async shared(): Promise<FileChange[]> {
    return [];
  }

  testTree(includes: string[]): Promise<string> {
    return this.deps.tests.forTree({ streams: includes });
  }

  testFile(files: string[]): Promise<string> {
    return this.deps.tests.forFiles(files);
  }

  reloadPlan(work: Array<Work<Change, PlannedChange>>): ReloadPlan {
    return {
      opened: work.flatMap((w) => (w.planned.outcome === 'created' ? listenersOf(w.planned.stream, this.deps.listenAddress) : [])),
      closed: work.flatMap((w) => (w.planned.outcome === 'deleted' ? listenersOf(w.planned.previous, this.deps.listenAddress) : [])),
      drainOld: work.some((w) => w.planned.outcome !== 'created'),
      // A stream server has no name: nginx keeps one server per listener and ignores the others.
      servers: work.flatMap((w) => (w.planned.stream === undefined ? [] : [{ port: w.planned.port, name: '' }])),
    };
  }

  result(w: Work<Change, PlannedChange>): ChangeResult {
    const { planned } = w;
    return { outcome: planned.outcome, port: planned.port, ...(planned.stream && { stream: planned.stream }) };
  }

  key(change: Change): string | undefined {
    return change.port === undefined ? undefined : String(change.port);
  }

  describe(change: Change): string {
    return describeStreamChange(change);
  }
}
