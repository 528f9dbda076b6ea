/**
 * Streams as a kind of batch: planned by port (allocation included) against the stream directory,
 * tested alone in a stream-only main config, verified by their listeners accepting.
 */
import { asPorticoError } from '../errors.js';
import { listensTcp, listensUdp, type Stream } from '../model/stream.js';
import type { Listener, ReloadPlan } from '../nginx/nginx.js';
import type { BoundProbe } from '../ports/allocate.js';
import type { StreamRenderer } from '../render/stream.js';
import type { PortRange } from '../settings.js';
import type { CertStore } from '../store/certs.js';
import type { FileChange } from '../store/config-dir.js';
import type { ConfigTree } from '../store/tree.js';
import type { BatchKind, Pending, Staging, Work } from './batch.js';
import { planChange, planState, type Change, type LoopCheck, type Outcome, type PlannedChange } from './plan.js';
import { renderChecked } from './render-checked.js';
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
  range: PortRange;
  isBound: BoundProbe;
  /** Refuses upstreams that lead back into this host's own listeners. */
  loops: LoopCheck;
}

/** Where a stream's listeners can be reached from this host: the wildcard through loopback. */
function listenersOf(stream: Stream | undefined): Listener[] {
  if (stream === undefined) return [];
  const address = stream.listenAddress?.replace(/^\[(.*)\]$/, '$1');
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

  constructor(private readonly deps: StreamKindDeps) {
    this.staging = deps.tree;
  }

  async plan(items: Array<Pending<Change>>, timer: PhaseTimer): Promise<{ files: string[]; work: Array<Work<Change, PlannedChange>> }> {
    const { tree: store, range, isBound, renderStream, loops } = this.deps;
    const tree = await store.read();
    await timer.mark('read');
    const state = planState(tree, await this.deps.certs.index());
    const work: Array<Work<Change, PlannedChange>> = [];
    for (const item of items) {
      const result = await planChange(item.change, state, range, isBound, loops);
      if ('error' in result) {
        item.reject(result.error.within(describeStreamChange(item.change)));
        continue;
      }
      const { ok: planned } = result;
      try {
        const text = planned.stream === undefined ? null : renderChecked(renderStream, planned.stream, store.fileOptions);
        work.push({ item, planned, file: { name: store.fileName(planned.port), text }, unchanged: planned.outcome === 'unchanged' });
      } catch (error) {
        item.reject(asPorticoError(error, describeStreamChange(item.change)));
      }
    }
    await timer.mark('plan');
    return { files: tree.files, work };
  }

  async shared(): Promise<FileChange[]> {
    return [];
  }

  testTree(includes: string[]): Promise<string> {
    return this.deps.tests.forTree({ streams: includes });
  }

  testFile(file: string): Promise<string> {
    return this.deps.tests.forFile(file);
  }

  reloadPlan(work: Array<Work<Change, PlannedChange>>): ReloadPlan {
    return {
      opened: work.flatMap((w) => (w.planned.outcome === 'created' ? listenersOf(w.planned.stream) : [])),
      closed: work.flatMap((w) => (w.planned.outcome === 'deleted' ? listenersOf(w.planned.previous) : [])),
      drainOld: work.some((w) => w.planned.outcome !== 'created'),
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
