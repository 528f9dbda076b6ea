/**
 * Applier: the single writer. Every mutation passes through its queue; the changes that arrive while
 * a batch is applying are coalesced into the next batch, which costs one `nginx -t` and one reload
 * however many changes it holds. A batch holds changes of one kind (streams, apps or certificates,
 * see `batch.ts`), and every kind goes through the same steps.
 *
 * One batch, in order (`applyBatch`): read the tree → plan (allocate ports, find conflicts) → render
 * and read back → stage → test → (isolate culprits, test again) → swap → reload and verify → commit;
 * any failure after the swap rolls the tree back (and reloads it, unless nginx kept the old config).
 * A change's promise settles only when its batch is committed or it is rejected, so an acknowledged
 * change is on disk and served. Each change carries who asked for it (`by`: the request's id and its
 * token's name), and each batch's log line lists them.
 *
 * What the test reads (`testScope`):
 * - `changed` (the default): only the batch's new and changed files, with the files they need (the
 *   apps' shared file), on a throwaway config. What spans files is Portico's own, decided in
 *   TypeScript over the whole set while planning: one stream per port, and none on a port a file
 *   Portico cannot read claims (`plan.ts`); a server name belongs to one app, one app at most is the
 *   default (`app-kind.ts`); `reuseport` once per listener, the server name hash sized for every
 *   name (the shared file, `shared-http.ts`); every upstream group and zone named after its file.
 *   The master's own parse at the reload is then the whole-tree test: what only it can see (a hand
 *   edit, a file deleted behind Portico's back) makes it refuse the new config, keep serving the
 *   old one and log why, which the reload reads (`nginx/verify.ts`) and the batch rolls back on,
 *   answering nginx's line. A change then costs one parse of the tree instead of two.
 * - `tree` (FULL_TREE_TEST=true, or external mode without NGINX_ERROR_LOG, where the master's
 *   refusal cannot be read): `nginx -t` of the whole staged tree before the swap.
 * A caller's dry run tests the whole staged tree: it answers what would happen, and costs no reload.
 * The fleet's check before its transaction tests as this node's batches do (`Pending.dryRun`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { PorticoError, asPorticoError } from '../errors.js';
import type { TestResult } from '../nginx/exec.js';
import { ignoredServers } from '../nginx/ignored-servers.js';
import type { Nginx } from '../nginx/nginx.js';
import { ReloadRefused } from '../nginx/verify.js';
import type { Arrivals } from './arrivals.js';
import type { FileChange, StagedTree } from '../store/config-dir.js';
import { rejected, type BatchKind, type DryRunTest, type Pending, type Requester, type Work } from './batch.js';
import type { CertificateChange, CertificateResult, PlannedCertificate } from './certificate-kind.js';
import type { AppChange, AppResult, PlannedApp } from './app-kind.js';
import type { Change, Outcome, PlannedChange } from './plan.js';
import type { Settings, TestDelay } from '../settings.js';
import type { ApplyEventBody, ChangeOutcome, EventFeed } from '../events/feed.js';
import { PhaseTimer, type AfterPhase, type BatchReport } from './report.js';
import type { ChangeResult } from './stream-kind.js';

export type { ChangeResult };

/** A stream change's dry run: what the change would answer (the stream as it would be stored, absent for a removal), the files and nginx's verdict. */
export interface DryRunResult extends ChangeResult {
  files: FileChange[];
  nginx: { ok: boolean; lines: string[] };
}

/** Every kind of change the queue holds, by the batch kind that applies it. */
export interface Kinds {
  stream: BatchKind<Change, PlannedChange>;
  app: BatchKind<AppChange, PlannedApp>;
  certificate: BatchKind<CertificateChange, PlannedCertificate>;
}

type KindName = keyof Kinds;
/** What a batch planned and what it committed, for `BatchKind.settle`. */
type BatchOver<C, P> = { planned: Array<Work<C, P>>; committed: Array<Work<C, P>> };
type Queued = { kind: KindName; pending: Pending<unknown> };

export interface ApplierDeps {
  nginx: Nginx;
  kinds: Kinds;
  /** The requests on their way to queue a change: a batch waits (briefly) for them before it starts. */
  arrivals?: Arrivals;
  /** RELOAD_MIN_INTERVAL: a batch waits until this long after the last reload (0: it never waits). */
  reloadMinIntervalMs: number;
  /** What a batch's `nginx -t` reads: what changed, or the whole staged tree (see the top of this file). */
  testScope: Settings['testScope'];
  /** Where every batch is recorded as it ends (the event feed, which the metrics read too). */
  events?: EventFeed;
  /** PORTICO_TEST_DELAY, for tests only: a pause right after one phase of every batch. */
  testDelay?: TestDelay | undefined;
  log: Logger;
}

export class Applier {
  private queue: Queued[] = [];
  private draining = false;
  /** The last batch that changed something or was rejected, for /v1/status. */
  lastBatch: BatchReport | undefined;
  /** False when a roll-back failed: the files and the running nginx may disagree. */
  consistent = true;

  constructor(private readonly deps: ApplierDeps) {}

  /** Undefined unless PORTICO_TEST_DELAY is set: then every batch's timer pauses after the phase it names. */
  private afterPhase(kind: KindName): AfterPhase | undefined {
    const { testDelay: delay, log } = this.deps;
    if (delay === undefined) return undefined;
    // A crash test kills Portico while it sleeps here; the log line tells it when the pause began, and in which kind's batch.
    return async (phase) => {
      if (phase !== delay.phase) return;
      log.warn({ event: 'test-delay', phase, kind, ms: delay.ms }, `PORTICO_TEST_DELAY: pausing ${delay.ms} ms after ${phase}`);
      await sleep(delay.ms);
    };
  }

  /** Queues a stream change; settles when its batch is committed, or with the reason it was rejected. */
  submit(change: Change, by: Requester): Promise<ChangeResult> {
    return this.enqueue<ChangeResult>('stream', change, by, false);
  }

  /** Runs every step up to the swap and answers the rendered files and nginx's verdict (`test`: see `Pending.dryRun`). */
  dryRun(change: Change, by: Requester, test: DryRunTest = 'tree'): Promise<DryRunResult> {
    return this.enqueue<DryRunResult>('stream', change, by, test);
  }

  /** Queues a change of an HTTP app; settles when its batch is committed, or with the reason it was rejected. */
  submitApp(change: AppChange, by: Requester): Promise<AppResult> {
    return this.enqueue<AppResult>('app', change, by, false);
  }

  /** An app change's dry run: every step up to the swap, answering the rendered files and nginx's verdict. */
  dryRunApp(change: AppChange, by: Requester, test: DryRunTest = 'tree'): Promise<AppResult & { files: FileChange[]; nginx: { ok: boolean; lines: string[] } }> {
    return this.enqueue('app', change, by, test);
  }

  /** Queues a change of the certificates; settles when its batch is committed, or with the reason it was rejected. */
  submitCertificate(change: CertificateChange, by: Requester): Promise<CertificateResult> {
    return this.enqueue<CertificateResult>('certificate', change, by, false);
  }

  /** Settles once every change queued so far has been applied or rejected. */
  async idle(): Promise<void> {
    while (this.draining) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  protected enqueue<R>(kind: Queued['kind'], change: unknown, by: Requester, dryRun: false | DryRunTest): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      // Settling records the outcome; the caller is answered at `flush` (see `Pending.flush`).
      let answer: (() => void) | undefined;
      const pending: Pending<unknown> = {
        change,
        by,
        dryRun,
        resolve: (result) => {
          if (pending.settled !== undefined) return;
          const outcome = (result as { outcome?: unknown } | undefined)?.outcome;
          pending.settled = { outcome: outcome === 'unchanged' ? 'unchanged' : 'applied' };
          answer = () => resolve(result as R);
          if (dryRun) pending.flush();
        },
        reject: (error) => {
          if (pending.settled !== undefined) return;
          pending.settled = { outcome: 'rejected', error };
          answer = () => reject(error);
          if (dryRun) pending.flush();
        },
        flush: () => {
          const settle = answer;
          answer = undefined;
          settle?.();
        },
      };
      this.queue.push({ kind, pending });
      this.deps.arrivals?.settled(by.request);
      if (this.draining) return;
      this.draining = true;
      // Let the requests that arrive in the same turn of the event loop join this batch.
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // Bounding the reload rate: the changes that arrive while the batch waits join it.
        const wait = this.deps.nginx.lastReloadAt + this.deps.reloadMinIntervalMs - Date.now();
        if (wait > 0) await sleep(wait);
        // The rest of a burst already read (see arrivals.ts) joins this batch rather than the next.
        await this.deps.arrivals?.gathered();
        const first = this.queue[0] as Queued;
        // A batch runs up to the next change of another kind: a certificate may be one it names.
        const end = this.queue.findIndex((q) => q.kind !== first.kind);
        const batch = this.queue.splice(0, end < 0 ? this.queue.length : end).map((q) => q.pending);
        // The queue is typed by kind name; each kind's batch sees only its own changes.
        const kind = this.deps.kinds[first.kind] as BatchKind<unknown, unknown>;
        const real = onePerKey(kind, batch.filter((item) => !item.dryRun));
        const now = new Set(real);
        // Later changes to a file already in this batch go first into the next one.
        const later = batch.filter((item) => !item.dryRun && !now.has(item));
        this.queue.unshift(...later.map((pending) => ({ kind: first.kind, pending })));
        if (real.length > 0) await this.applyBatch(first.kind, kind, real).catch((error) => this.failAll(first.kind, kind, real, error));
        for (const item of batch.filter((i) => i.dryRun)) await this.applyDryRun(first.kind, kind, item).catch((e) => item.reject(asPorticoError(e)));
      }
    } finally {
      this.draining = false;
    }
  }

  /** A batch that threw (a disk that refuses a write, a bug): every change of it fails with the reason. */
  private failAll(name: KindName, kind: BatchKind<unknown, unknown>, items: Array<Pending<unknown>>, error: unknown): void {
    const wrapped = asPorticoError(error);
    if (wrapped.kind === 'StorageUnavailable') this.deps.log.error({ err: error }, 'batch failed: a file could not be written');
    else this.deps.log.error({ err: error }, 'batch failed unexpectedly');
    for (const item of items) item.reject(wrapped.within(kind.describe(item.change)));
    this.record(name, 'failed', kind, items, { phasesMs: {}, totalMs: 0 });
    for (const item of items) item.flush();
  }

  /** Stages `work` and the files it shares, and tests them: the whole staged tree, or only what changed (`scope`). */
  private async stageAndTest<C, P>(kind: BatchKind<C, P>, work: Array<Work<C, P>>, files: string[], timer: PhaseTimer, scope: Settings['testScope']) {
    const shared = await kind.shared(work);
    const staged = await kind.staging.stage([...work.flatMap((w) => w.files), ...shared], { files });
    await timer.mark('stage');
    const tested = scope === 'tree' ? await this.deps.nginx.test(await kind.testTree(staged.includes, work)) : await this.testChanged(kind, work, staged);
    // nginx only warns when it ignores a server: one of the batch's is a failure all the same.
    const ignored = ignoredServers(tested.lines, kind.reloadPlan(work)?.servers ?? []);
    const verdict = ignored.length > 0 ? { ...tested, ok: false, lines: ignored } : tested;
    return { staged, shared, verdict };
  }

  /** `nginx -t` of the files `work` writes (with the staged files they share) on a throwaway config; nothing to test for removals alone. */
  private async testChanged<C, P>(kind: BatchKind<C, P>, work: Array<Work<C, P>>, staged: StagedTree): Promise<TestResult> {
    if (staged.staged.size === 0) return { ok: true, lines: [], exitCode: 0, command: '' };
    const workNames = new Set(work.flatMap((w) => w.files.map((f) => f.name)));
    // In the order nginx's glob reads them in the live tree.
    const byName = [...staged.staged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const files = byName.filter(([name]) => workNames.has(name)).map(([, file]) => file);
    const shared = byName.filter(([name]) => !workNames.has(name)).map(([, file]) => file);
    return this.deps.nginx.test(await kind.testFile(files, shared, work));
  }

  /**
   * Applies one batch of changes, then lets the kind free what its planning held (`BatchKind.settle`).
   * Its callers are answered when the batch is recorded (`report`); whatever a path that records
   * nothing settled is answered here all the same, so that no caller waits for ever.
   */
  private applyBatch<C, P>(name: KindName, kind: BatchKind<C, P>, items: Array<Pending<C>>): Promise<void> {
    return this.settling(kind, (over) => this.runBatch(name, kind, items, over)).finally(() => {
      for (const item of items) item.flush();
    });
  }

  /** Runs a batch (or a dry run), then tells the kind what it planned and committed, whatever the outcome. */
  private async settling<C, P>(kind: BatchKind<C, P>, run: (over: BatchOver<C, P>) => Promise<void>): Promise<void> {
    const over: BatchOver<C, P> = { planned: [], committed: [] };
    try {
      await run(over);
    } finally {
      kind.settle?.(over.planned, over.committed);
    }
  }

  /** One batch: the story told at the top of this file. `over` learns what was planned and committed. */
  private async runBatch<C, P>(name: KindName, kind: BatchKind<C, P>, items: Array<Pending<C>>, over: BatchOver<C, P>): Promise<void> {
    const timer = new PhaseTimer(this.afterPhase(name));
    const { files, work: planned } = await kind.plan(items, timer);
    over.planned = planned;
    for (const w of planned.filter((p) => p.unchanged)) w.item.resolve(kind.result(w));
    let work = planned.filter((w) => !w.unchanged);
    if (work.length === 0) {
      this.report(name, timer, planned.length > 0 ? 'unchanged' : 'rejected', items, 0);
      return;
    }

    const scope = this.deps.testScope;
    let { staged, verdict } = await this.stageAndTest(kind, work, files, timer, scope);
    await timer.mark('test');
    if (!verdict.ok) {
      // Name the culprits: each new file alone; drop those that fail, test the rest once more.
      const culprits = await this.isolate(kind, work, staged);
      await timer.mark('isolate');
      work = work.filter((w) => !culprits.has(w));
      if (culprits.size > 0 && work.length > 0) {
        await kind.staging.unstage(staged);
        ({ staged, verdict } = await this.stageAndTest(kind, work, files, timer, scope));
        await timer.mark('retest');
      }
      if (!verdict.ok) {
        await kind.staging.unstage(staged);
        const error = rejected('testing config', unstagePaths(kind, verdict.lines, staged));
        for (const w of work) w.item.reject(error.within(kind.describe(w.item.change)));
        this.report(name, timer, 'rejected', items, 0);
        return;
      }
    }

    const reloadPlan = kind.reloadPlan(work);
    if (reloadPlan !== undefined) {
      await this.deps.nginx.requireMaster().catch(async (error: unknown) => {
        await kind.staging.unstage(staged);
        throw error;
      });
    }
    try {
      await kind.staging.swap(staged);
      await timer.mark('swap');
      if (reloadPlan !== undefined) {
        await this.deps.nginx.reload(reloadPlan);
        this.consistent = true;
      }
      await timer.mark('reload');
      await kind.staging.commit(staged);
      await timer.mark('commit');
    } catch (error) {
      // A master that refused the new tree kept serving the old one: restoring the files is enough.
      const reloadBack = reloadPlan !== undefined && !(error instanceof ReloadRefused);
      if (error instanceof ReloadRefused) this.deps.log.warn({ nginx: error.nginx }, 'nginx refused the new tree at the reload and kept the old one: rolling the files back');
      const failure = await this.rollBack(kind, asPorticoError(error, 'swapping and reloading'), staged, reloadBack);
      await timer.mark('rollback');
      for (const w of work) w.item.reject(failure.within(kind.describe(w.item.change)));
      this.report(name, timer, 'rolled-back', items, 0);
      return;
    }
    over.committed = work;
    for (const w of work) w.item.resolve(kind.result(w));
    this.report(name, timer, 'applied', items, work.length);
  }

  /** Tests each new file alone; answers the work items whose file nginx refuses, each rejected with its lines. */
  private async isolate<C, P>(kind: BatchKind<C, P>, work: Array<Work<C, P>>, staged: StagedTree): Promise<Set<Work<C, P>>> {
    const culprits = new Set<Work<C, P>>();
    const workNames = new Set(work.flatMap((w) => w.files.map((f) => f.name)));
    const shared = [...staged.staged].filter(([name]) => !workNames.has(name)).map(([, file]) => file);
    for (const w of work) {
      const files = w.files.flatMap((f) => staged.staged.get(f.name) ?? []);
      if (files.length === 0) continue; // a removal: nothing new to test
      const verdict = await this.deps.nginx.test(await kind.testFile(files, shared, [w]));
      if (verdict.ok) continue;
      culprits.add(w);
      w.item.reject(rejected('testing config', unstagePaths(kind, verdict.lines, staged)).within(kind.describe(w.item.change)));
    }
    return culprits;
  }

  /** Restores the previous tree and reloads it (if the batch did); the error says whether that worked too. */
  private async rollBack<C, P>(kind: BatchKind<C, P>, error: PorticoError, staged: StagedTree, reload: boolean): Promise<PorticoError> {
    try {
      await kind.staging.rollBack(staged);
      if (reload) await this.deps.nginx.reload({ opened: [], closed: [], drainOld: true, restore: true });
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

  private applyDryRun<C, P>(name: KindName, kind: BatchKind<C, P>, item: Pending<C>): Promise<void> {
    return this.settling(kind, (over) => this.runDryRun(name, kind, item, over));
  }

  private async runDryRun<C, P>(name: KindName, kind: BatchKind<C, P>, item: Pending<C>, over: BatchOver<C, P>): Promise<void> {
    const timer = new PhaseTimer(this.afterPhase(name));
    const { files, work } = await kind.plan([item], timer);
    over.planned = work;
    const w = work[0];
    if (w === undefined) return; // rejected while planning
    const scope = item.dryRun === 'as-applied' ? this.deps.testScope : 'tree';
    const { staged, shared, verdict } = await this.stageAndTest(kind, w.unchanged ? [] : [w], files, timer, scope);
    let answer: unknown;
    try {
      const lines = unstagePaths(kind, verdict.lines, staged);
      const result = kind.result(w) as { outcome: Outcome };
      answer = { ...result, files: [...w.files, ...shared], nginx: { ok: verdict.ok, lines } };
    } finally {
      await kind.staging.unstage(staged);
    }
    // Answered last, once nothing of the dry run is left: `settle` frees its port before the caller
    // can ask for the next one (seen: a getfreeport right after a dry run was handed the port after).
    item.resolve(answer);
  }

  /** The batch's log line names who asked for each of its changes (`by`), in the order they came. */
  private report(kind: KindName, timer: PhaseTimer, outcome: BatchReport['outcome'], items: Array<Pending<unknown>>, applied: number): void {
    const report = timer.report(outcome, items.length, applied);
    this.lastBatch = report;
    this.deps.log.info({ event: 'batch', kind, ...report, by: items.map((item) => item.by) }, `batch ${outcome}`);
    this.record(kind, outcome, this.deps.kinds[kind] as BatchKind<unknown, unknown>, items, report);
    for (const item of items) item.flush();
  }

  /** The batch as an event of the feed: what became of each change, and the phase timings. */
  private record(
    resource: KindName,
    outcome: ApplyEventBody['outcome'],
    kind: BatchKind<unknown, unknown>,
    items: Array<Pending<unknown>>,
    timings: { phasesMs: Record<string, number>; totalMs: number },
  ): void {
    const events = this.deps.events;
    if (events === undefined) return;
    const changes = items.map((item): ChangeOutcome => {
      const base = { request: item.by.request, ...(item.by.token !== undefined && { token: item.by.token }), change: kind.describe(item.change) };
      const settled = item.settled;
      if (settled === undefined || settled.outcome !== 'rejected') return { ...base, outcome: settled?.outcome ?? 'applied' };
      const { error } = settled;
      return {
        ...base,
        outcome: 'rejected',
        error: { kind: error.kind, message: error.message, ...(error.field !== undefined && { field: error.field }), ...(error.nginx !== undefined && { nginx: error.nginx }) },
      };
    });
    events.record({ type: 'apply', resource, outcome, changes, phasesMs: timings.phasesMs, totalMs: timings.totalMs });
  }
}

/** nginx's lines with staged paths shown as the live paths the caller knows. */
function unstagePaths<C, P>(kind: BatchKind<C, P>, lines: string[], staged: StagedTree): string[] {
  let out = lines;
  for (const [name, file] of staged.staged) {
    out = out.map((line) => line.split(file).join(`${kind.staging.dir}/${name}`));
  }
  return out;
}

/**
 * The first change to each file, and every change whose file is not known yet (an allocation), in
 * order: so that changes to one file apply in the order they came and a removed port is closed
 * before it is reused.
 */
function onePerKey<C, P>(kind: BatchKind<C, P>, items: Array<Pending<C>>): Array<Pending<C>> {
  const seen = new Set<string>();
  return items.filter((item) => {
    const key = kind.key(item.change);
    if (key === undefined) return true;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
