/**
 * What the applier's pipeline needs to know of a kind of resource (streams, apps, certificates) to
 * apply a batch of its changes: how to plan them into files, which directory to stage them in, how to
 * test a staged tree or one change alone, and what to verify after the reload. The pipeline itself is
 * the same for every kind (`applier.ts`).
 */
import { PorticoError } from '../errors.js';
import type { ReloadPlan } from '../nginx/nginx.js';
import type { FileChange, StagedTree } from '../store/config-dir.js';
import type { PhaseTimer } from './report.js';

/**
 * Who asked for a change: the API request's id and the name of the token it authenticated with
 * (none when the API has no tokens). Never the token itself: the applier logs this.
 */
export interface Requester {
  request: string;
  token?: string;
}

export type DryRunTest = 'tree' | 'as-applied';

/** A change waiting in the queue with its caller. */
export interface Pending<C> {
  change: C;
  by: Requester;
  /**
   * A dry run, and what it tests: `tree`, the whole staged tree (a caller's `?dryRun=true`: it
   * answers what would happen), or `as-applied`, what this node's batches test (`testScope`; the
   * fleet's check before its transaction, each node's master then parsing its whole tree at reload).
   */
  dryRun: false | DryRunTest;
  /** Settles the caller's promise, typed by the method that queued the change. */
  resolve: (result: unknown) => void;
  reject: (error: PorticoError) => void;
  /** What became of it, set when it settles (for the event feed). */
  settled?: { outcome: 'applied' | 'unchanged' } | { outcome: 'rejected'; error: PorticoError };
  /**
   * Answers the caller with how it settled. A change of a batch is answered when its batch has been
   * recorded (the event feed and the metrics know of it before its caller does); a dry run at once.
   */
  flush: () => void;
}

/** A planned change with its caller and the files it writes or removes (a certificate's are two: they change together). */
export interface Work<C, P> {
  item: Pending<C>;
  planned: P;
  files: FileChange[];
  /** The outcome when nothing changes: answered without a reload. */
  unchanged: boolean;
}

/** A directory whose files can be staged, swapped in, committed or rolled back. */
export interface Staging {
  readonly dir: string;
  stage(changes: FileChange[], current: { files: string[] }): Promise<StagedTree>;
  unstage(staged: StagedTree): Promise<void>;
  swap(staged: StagedTree): Promise<void>;
  commit(staged: StagedTree): Promise<void>;
  rollBack(staged: StagedTree): Promise<void>;
}

export interface BatchKind<C, P> {
  staging: Staging;
  /**
   * Reads the live tree and plans `items` in order; a change that cannot be planned is rejected
   * through its `item.reject` and left out. Answers the live files and the planned work.
   */
  plan(items: Array<Pending<C>>, timer: PhaseTimer): Promise<{ files: string[]; work: Array<Work<C, P>> }>;
  /** Files every change of the batch shares (the apps' common file), from the changes that remain. */
  shared(work: Array<Work<C, P>>): Promise<FileChange[]>;
  /** A main config reading the staged tree `includes` (of `work`) in place of the live directory. */
  testTree(includes: string[], work: Array<Work<C, P>>): Promise<string>;
  /**
   * A main config reading only the staged `files` of `work` (with the `shared` files they need) on a
   * throwaway config: what a batch tests when only what changed is tested, and what names a culprit
   * (one change alone) when a test fails.
   */
  testFile(files: string[], shared: string[], work: Array<Work<C, P>>): Promise<string>;
  /** What to check after the reload of `work`; undefined when nginx reads none of its files (no reload, no master needed). */
  reloadPlan(work: Array<Work<C, P>>): ReloadPlan | undefined;
  /**
   * Called once per batch (and per dry run) when it is over, whatever the outcome: `planned` is the
   * work planning produced (none if it threw), `committed` what is now on disk and served. Frees what
   * planning held outside the files (the ports allocated for streams).
   */
  settle?(planned: Array<Work<C, P>>, committed: Array<Work<C, P>>): void;
  /** What the caller of a committed change gets. */
  result(work: Work<C, P>): unknown;
  /**
   * The file a change touches, known before planning (a port, an app's name), or undefined (a port
   * to allocate). A batch holds one change per key, so changes to one file apply in order.
   */
  key(change: C): string | undefined;
  /** "applying stream 9000": the context of a change's errors. */
  describe(change: C): string;
}

/** nginx's verdict as an error: its own lines, joined, are the message. */
export function rejected(context: string, lines: string[]): PorticoError {
  const message = lines.length > 0 ? lines.join('; ') : 'nginx -t failed without a message';
  return new PorticoError('NginxRejected', `${context}: ${message}`, { nginx: lines });
}
