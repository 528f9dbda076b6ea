/**
 * Applier: the single writer. Every mutation passes through its queue; the changes that arrive while
 * a batch is applying are coalesced into the next batch, which costs one `nginx -t` and one reload
 * however many changes it holds.
 *
 * One batch, in order (`applyBatch`): read the tree → plan (allocate ports, find conflicts) → render
 * and read back → stage → test the staged tree → (isolate culprits, test again) → swap → reload and
 * verify → commit; any failure after the swap rolls the tree back and reloads it. A change's promise
 * settles only when its batch is committed or it is rejected, so an acknowledged change is on disk
 * and served.
 */
import type { Logger } from 'pino';
import { listensTcp, listensUdp, type Stream } from '../model/stream.js';
import { PorticoError, asPorticoError } from '../errors.js';
import type { Listener, Nginx } from '../nginx/nginx.js';
import type { BoundProbe } from '../ports/allocate.js';
import type { StreamRenderer } from '../render/stream.js';
import type { PortRange } from '../settings.js';
import type { CertStore } from '../store/certs.js';
import type { ConfigTree, FileChange, StagedTree, StreamTree } from '../store/tree.js';
import { applyCertificateChange, type CertificateChange, type CertificateResult } from './certificates.js';
import { PhaseTimer, type BatchReport } from './report.js';
import { planChange, planState, type Change, type Outcome, type PlannedChange } from './plan.js';
import { renderChecked } from './render-checked.js';
import type { TestConfigs } from './test-config.js';

export interface ChangeResult {
  outcome: Outcome;
  port: number;
  stream?: Stream;
}

export interface DryRunResult {
  outcome: Outcome;
  port: number;
  files: FileChange[];
  nginx: { ok: boolean; lines: string[] };
}

interface Pending<C = Change> {
  change: C;
  dryRun: boolean;
  /** Settles the caller's promise, typed by the method that queued the change. */
  resolve: (result: unknown) => void;
  reject: (error: PorticoError) => void;
}

function isCertificateChange(item: Pending<Change | CertificateChange>): item is Pending<CertificateChange> {
  return item.change.kind.startsWith('certificate-');
}

/** A planned change with its caller and its file. */
interface Work {
  item: Pending;
  planned: PlannedChange;
  file: FileChange;
}

export interface ApplierDeps {
  tree: ConfigTree;
  certs: CertStore;
  nginx: Nginx;
  tests: TestConfigs;
  renderStream: StreamRenderer;
  range: PortRange;
  isBound: BoundProbe;
  log: Logger;
}

export class Applier {
  private queue: Array<Pending<Change | CertificateChange>> = [];
  private draining = false;
  /** The last batch that changed something or was rejected, for /v1/status. */
  lastBatch: BatchReport | undefined;
  /** False when a roll-back failed: the files and the running nginx may disagree. */
  consistent = true;

  constructor(private readonly deps: ApplierDeps) {}

  /** Queues a change; settles when its batch is committed, or with the reason it was rejected. */
  submit(change: Change): Promise<ChangeResult> {
    return this.enqueue<ChangeResult>(change, false);
  }

  /** Runs every step up to the swap and answers the rendered files and nginx's verdict. */
  dryRun(change: Change): Promise<DryRunResult> {
    return this.enqueue<DryRunResult>(change, true);
  }

  /** Queues a change of the certificates; it is applied alone, in its turn among the others. */
  submitCertificate(change: CertificateChange): Promise<CertificateResult> {
    return this.enqueue<CertificateResult>(change, false);
  }

  /** Settles once every change queued so far has been applied or rejected. */
  async idle(): Promise<void> {
    while (this.draining) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  private enqueue<R>(change: Change | CertificateChange, dryRun: boolean): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ change, dryRun, resolve: resolve as (result: unknown) => void, reject });
      if (this.draining) return;
      this.draining = true;
      // Let the requests that arrive in the same turn of the event loop join this batch.
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const first = this.queue[0] as Pending<Change | CertificateChange>;
        if (isCertificateChange(first)) {
          this.queue.shift();
          await applyCertificateChange(this.deps, first.change).then(
            (result) => first.resolve(result),
            (error: unknown) => first.reject(asPorticoError(error, describeCertificateChange(first.change))),
          );
          continue;
        }
        // A batch of stream changes runs up to the next change of the certificates, which may be
        // one they name.
        const end = this.queue.findIndex(isCertificateChange);
        const batch = this.queue.splice(0, end < 0 ? this.queue.length : end) as Pending[];
        const real = onePerPort(batch.filter((item) => !item.dryRun));
        const now = new Set(real);
        // Later changes to a port already in this batch go first into the next one.
        this.queue.unshift(...batch.filter((item) => !item.dryRun && !now.has(item)));
        if (real.length > 0) await this.applyBatch(real).catch((error) => this.failAll(real, error));
        for (const item of batch.filter((i) => i.dryRun)) await this.applyDryRun(item).catch((e) => item.reject(asPorticoError(e)));
      }
    } finally {
      this.draining = false;
    }
  }

  private failAll(items: Pending[], error: unknown): void {
    const wrapped = asPorticoError(error);
    this.deps.log.error({ err: error }, 'batch failed unexpectedly');
    for (const item of items) item.reject(wrapped);
  }

  private async plan(
    items: Pending[],
    timer: PhaseTimer,
  ): Promise<{ tree: StreamTree; work: Work[]; unchanged: Work[] }> {
    const { tree: store, range, isBound, renderStream } = this.deps;
    const tree = await store.read();
    timer.mark('read');
    const state = planState(tree, await this.deps.certs.index());
    const work: Work[] = [];
    const unchanged: Work[] = [];
    for (const item of items) {
      const result = await planChange(item.change, state, range, isBound);
      if ('error' in result) {
        item.reject(result.error.within(describe(item.change)));
        continue;
      }
      const { ok: planned } = result;
      const name = store.fileName(planned.port);
      try {
        const text = planned.stream === undefined ? null : renderChecked(renderStream, planned.stream, store.fileOptions);
        (planned.outcome === 'unchanged' ? unchanged : work).push({ item, planned, file: { name, text } });
      } catch (error) {
        item.reject(asPorticoError(error, describe(item.change)));
      }
    }
    timer.mark('plan');
    return { tree, work, unchanged };
  }

  /** Applies one batch of changes: the story told at the top of this file. */
  private async applyBatch(items: Pending[]): Promise<void> {
    const timer = new PhaseTimer();
    const { tree, work: planned, unchanged } = await this.plan(items, timer);
    for (const w of unchanged) w.item.resolve(result(w.planned));
    let work = planned;
    if (work.length === 0) {
      this.report(timer, unchanged.length > 0 ? 'unchanged' : 'rejected', items.length, 0);
      return;
    }

    let staged = await this.deps.tree.stage(work.map((w) => w.file), tree);
    timer.mark('stage');
    let verdict = await this.deps.nginx.test(await this.deps.tests.forTree({ streams: staged.includes }));
    timer.mark('test');
    if (!verdict.ok) {
      // Name the culprits: each new file alone; drop those that fail, test the rest once more.
      const culprits = await this.isolate(work, staged);
      timer.mark('isolate');
      work = work.filter((w) => !culprits.has(w));
      if (culprits.size > 0 && work.length > 0) {
        await this.deps.tree.unstage(staged);
        staged = await this.deps.tree.stage(work.map((w) => w.file), tree);
        verdict = await this.deps.nginx.test(await this.deps.tests.forTree({ streams: staged.includes }));
        timer.mark('retest');
      }
      if (!verdict.ok) {
        await this.deps.tree.unstage(staged);
        const error = rejected('testing config', this.unstagePaths(verdict.lines, staged));
        for (const w of work) w.item.reject(error.within(describe(w.item.change)));
        this.report(timer, 'rejected', items.length, 0);
        return;
      }
    }

    await this.deps.nginx.requireMaster().catch(async (error: unknown) => {
      await this.deps.tree.unstage(staged);
      throw error;
    });
    try {
      await this.deps.tree.swap(staged);
      timer.mark('swap');
      await this.deps.nginx.reload({
        opened: work.flatMap((w) => (w.planned.outcome === 'created' ? listenersOf(w.planned.stream) : [])),
        closed: work.flatMap((w) => (w.planned.outcome === 'deleted' ? listenersOf(w.planned.previous) : [])),
        drainOld: work.some((w) => w.planned.outcome !== 'created'),
      });
      timer.mark('reload');
      this.consistent = true;
      await this.deps.tree.commit(staged);
      timer.mark('commit');
    } catch (error) {
      const failure = await this.rollBack(asPorticoError(error, 'swapping and reloading'), staged);
      timer.mark('rollback');
      for (const w of work) w.item.reject(failure.within(describe(w.item.change)));
      this.report(timer, 'rolled-back', items.length, 0);
      return;
    }
    for (const w of work) w.item.resolve(result(w.planned));
    this.report(timer, 'applied', items.length, work.length);
  }

  /** Tests each new file alone; answers the work items whose file nginx refuses, each rejected with its lines. */
  private async isolate(work: Work[], staged: StagedTree): Promise<Set<Work>> {
    const culprits = new Set<Work>();
    for (const w of work) {
      const file = staged.staged.get(w.file.name);
      if (file === undefined) continue;
      const verdict = await this.deps.nginx.test(await this.deps.tests.forFile(file));
      if (verdict.ok) continue;
      culprits.add(w);
      w.item.reject(rejected('testing config', this.unstagePaths(verdict.lines, staged)).within(describe(w.item.change)));
    }
    return culprits;
  }

  /** nginx's lines with staged paths shown as the live paths the caller knows. */
  private unstagePaths(lines: string[], staged: StagedTree): string[] {
    let out = lines;
    for (const [name, file] of staged.staged) {
      out = out.map((line) => line.split(file).join(`${this.deps.tree.streamDir}/${name}`));
    }
    return out;
  }

  /** Restores the previous tree and reloads it; the error says whether that worked too. */
  private async rollBack(error: PorticoError, staged: StagedTree): Promise<PorticoError> {
    try {
      await this.deps.tree.rollBack(staged);
      await this.deps.nginx.reload({ opened: [], closed: [], drainOld: true });
      this.consistent = true;
      return error;
    } catch (again) {
      this.consistent = false;
      return new PorticoError(
        error.kind,
        `${error.message}; additionally, restoring the previous tree: ${asPorticoError(again).message}`,
        { nginx: error.nginx, cause: error },
      );
    }
  }

  private async applyDryRun(item: Pending): Promise<void> {
    const timer = new PhaseTimer();
    const { tree, work, unchanged } = await this.plan([item], timer);
    const w = work[0] ?? unchanged[0];
    if (w === undefined) return; // rejected while planning
    const staged = await this.deps.tree.stage(work.map((x) => x.file), tree);
    try {
      const verdict = await this.deps.nginx.test(await this.deps.tests.forTree({ streams: staged.includes }));
      const lines = this.unstagePaths(verdict.lines, staged);
      item.resolve({ outcome: w.planned.outcome, port: w.planned.port, files: [w.file], nginx: { ok: verdict.ok, lines } });
    } finally {
      await this.deps.tree.unstage(staged);
    }
  }

  private report(timer: PhaseTimer, outcome: BatchReport['outcome'], changes: number, applied: number): void {
    const report = timer.report(outcome, changes, applied);
    this.lastBatch = report;
    this.deps.log.info({ event: 'batch', ...report }, `batch ${outcome}`);
  }
}

/**
 * The first change to each port, and every change without one (an allocation), in order: one file
 * per port per batch, so that changes to one port apply in the order they came and a removed port
 * is closed before it is reused.
 */
function onePerPort(items: Pending[]): Pending[] {
  const seen = new Set<number>();
  return items.filter((item) => {
    const port = item.change.port;
    if (port === undefined) return true;
    if (seen.has(port)) return false;
    seen.add(port);
    return true;
  });
}

function result(planned: PlannedChange): ChangeResult {
  return { outcome: planned.outcome, port: planned.port, ...(planned.stream && { stream: planned.stream }) };
}

/** Where a stream's listeners can be reached from this host: the wildcard through loopback. */
function listenersOf(stream: Stream | undefined): Listener[] {
  if (stream === undefined) return [];
  const address = stream.listenAddress?.replace(/^\[(.*)\]$/, '$1');
  const host = address === undefined || address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  const { port } = stream;
  return [...(listensTcp(stream) ? [{ host, port }] : []), ...(listensUdp(stream) ? [{ host, port, udp: true }] : [])];
}

function describeCertificateChange(change: CertificateChange): string {
  return change.kind === 'certificate-delete' ? `deleting certificate "${change.id}"` : `storing certificate "${change.id}"`;
}

function describe(change: Change): string {
  if (change.kind === 'delete') return `removing stream ${change.port}`;
  return change.port === undefined ? 'creating a stream' : `applying stream ${change.port}`;
}

/** nginx's verdict as an error: its own lines, joined, are the message. */
function rejected(context: string, lines: string[]): PorticoError {
  const message = lines.length > 0 ? lines.join('; ') : 'nginx -t failed without a message';
  return new PorticoError('NginxRejected', `${context}: ${message}`, { nginx: lines });
}
