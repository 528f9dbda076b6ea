/**
 * HTTP apps as a kind of batch: planned by name against the apps' directory, with the decisions that
 * span apps made over the whole set (a server name belongs to one app, one app at most is the
 * default), and the shared file re-rendered from the apps the batch leaves.
 */
import { isDeepStrictEqual } from 'node:util';
import { PorticoError, asPorticoError, conflict, invalidInput, notFound } from '../errors.js';
import { appCertificateRefs, appSchema, appServedCertificate, type App } from '../model/app.js';
import { isPlaceholderIssuer } from '../acme/placeholder.js';
import { checkPreconditions, type Preconditions } from '../model/etag.js';
import type { ReloadPlan } from '../nginx/nginx.js';
import { readApp } from '../parse/app.js';
import type { AppRenderer } from '../render/app.js';
import { SHARED_HTTP_FILE, type SharedHttpRenderer } from '../render/http-shared.js';
import type { Settings } from '../settings.js';
import type { AppStore } from '../store/apps.js';
import type { CertStore, CertificateIndex } from '../store/certs.js';
import type { FileChange } from '../store/config-dir.js';
import type { BatchKind, Pending, Staging, Work } from './batch.js';
import type { PhaseTimer } from './report.js';
import { renderSharedChecked, sharedHttpNeeds, sharedHttpView } from './shared-http.js';
import type { TestConfigs } from './test-config.js';

export type AppChange =
  /** `create` fails if the app exists; otherwise the app is created or replaced. */
  /**
   * `refresh`: write the file again even if the app is unchanged (its certificate turned from an ACME
   * placeholder into the CA's, so a waiting `httpsRedirect` now applies).
   */
  | ({ kind: 'app-put'; app: App; create: boolean; refresh?: boolean } & Preconditions)
  | ({ kind: 'app-delete'; name: string } & Preconditions);

export type AppOutcome = 'created' | 'replaced' | 'unchanged' | 'deleted';

export interface PlannedApp {
  name: string;
  outcome: AppOutcome;
  app?: App;
  previous?: App;
}

export interface AppResult {
  outcome: AppOutcome;
  name: string;
  app?: App;
}

export interface AppKindDeps {
  store: AppStore;
  certs: CertStore;
  tests: TestConfigs;
  renderApp: AppRenderer;
  renderShared: SharedHttpRenderer;
  settings: Pick<Settings, 'httpPort' | 'httpsPort' | 'stateDir' | 'mode' | 'listenAddress'>;
  /** Refuses upstreams that lead back into this host's own listeners (`apply/targets.ts`). */
  loops: (app: App) => Promise<{ path: Array<string | number>; message: string } | undefined>;
}

const nameOf = (change: AppChange): string => (change.kind === 'app-delete' ? change.name : change.app.name);

export function describeAppChange(change: AppChange): string {
  return change.kind === 'app-delete' ? `removing app "${change.name}"` : `applying app "${change.app.name}"`;
}

/** Why `app` cannot join `apps` (a server name or the default taken), or undefined. */
function clash(app: App, apps: Map<string, App>, certificates: CertificateIndex): PorticoError | undefined {
  for (const other of apps.values()) {
    if (other.name === app.name) continue;
    const shared = app.serverNames.find((name) => other.serverNames.includes(name));
    if (shared !== undefined) return conflict(`server name "${shared}" is served by app "${other.name}"`, 'serverNames');
    if (app.default === true && other.default === true) return conflict(`app "${other.name}" is already the default`, 'default');
  }
  for (const ref of appCertificateRefs(app)) {
    const stored = certificates.get(ref.id);
    if (stored === undefined && ref.field === 'tls.acme') {
      return invalidInput(ref.field, `the app's managed certificate "${ref.id}" does not exist yet: Portico makes it when the app is created, so a dry run of a new app with "acme": true cannot load it`);
    }
    if (stored === undefined) return invalidInput(ref.field, `names certificate "${ref.id}", which does not exist (upload it to /v1/certificates)`);
    if (ref.needsKey && !stored.hasKey) return invalidInput(ref.field, `names certificate "${ref.id}", which has no key: it can serve only as a trusted CA`);
  }
  return undefined;
}

export class AppKind implements BatchKind<AppChange, PlannedApp> {
  readonly staging: Staging;
  /** The apps before the batch being applied: the shared file is rendered from them and the batch's work. */
  private base = new Map<string, App>();
  private baseFiles: string[] = [];
  /** The files before the batch that nginx includes but Portico cannot read: unreadable apps' (by app name) and foreign ones. */
  private baseUnreadable: string[] = [];
  private baseForeign = 0;

  constructor(private readonly deps: AppKindDeps) {
    this.staging = deps.store.files;
  }

  async plan(items: Array<Pending<AppChange>>, timer: PhaseTimer): Promise<{ files: string[]; work: Array<Work<AppChange, PlannedApp>> }> {
    const tree = await this.deps.store.read();
    await timer.mark('read');
    this.base = new Map(tree.apps);
    this.baseFiles = tree.files;
    this.baseUnreadable = tree.unreadable.map((f) => f.app);
    this.baseForeign = tree.foreign.length;
    const apps = new Map(tree.apps);
    const unreadable = new Set(tree.unreadable.map((f) => f.app));
    const certificates = await this.deps.certs.index();
    const work: Array<Work<AppChange, PlannedApp>> = [];
    for (const item of items) {
      const { change } = item;
      const name = nameOf(change);
      const previous = apps.get(name);
      try {
        checkPreconditions(change, previous, `app "${name}"`);
      } catch (error) {
        item.reject((error as PorticoError).within(describeAppChange(change)));
        continue;
      }
      let planned: PlannedApp;
      if (change.kind === 'app-delete') {
        if (previous === undefined && !unreadable.has(name)) {
          item.reject(notFound(`no app "${name}"`).within(describeAppChange(change)));
          continue;
        }
        apps.delete(name);
        unreadable.delete(name);
        planned = { name, outcome: 'deleted', ...(previous && { previous }) };
      } else {
        const refused =
          (change.create && previous !== undefined ? conflict(`app "${name}" already exists (PUT /v1/apps/${name} replaces it)`, 'name') : undefined) ??
          (unreadable.has(name) ? conflict(`the file of app "${name}" cannot be read (see /v1/status): delete it first`, 'name') : undefined) ??
          clash(change.app, apps, certificates) ??
          (await this.loopError(change.app));
        if (refused !== undefined) {
          item.reject(refused.within(describeAppChange(change)));
          continue;
        }
        // Parsed again only to put the fields in the schema's order, as a read of the file answers them.
        const app = appSchema.parse(change.app);
        apps.set(name, app);
        const outcome = previous === undefined ? 'created' : isDeepStrictEqual(previous, app) && change.refresh !== true ? 'unchanged' : 'replaced';
        planned = { name, outcome, app, ...(previous && { previous }) };
      }
      try {
        const text = planned.app === undefined ? null : this.renderChecked(planned.app, await this.redirectWaits(planned.app));
        work.push({ item, planned, files: [{ name: this.deps.store.fileName(name), text }], unchanged: planned.outcome === 'unchanged' });
      } catch (error) {
        item.reject(asPorticoError(error, describeAppChange(change)));
      }
    }
    await timer.mark('plan');
    return { files: tree.files, work };
  }

  private async loopError(app: App): Promise<PorticoError | undefined> {
    const loop = await this.deps.loops(app);
    return loop === undefined ? undefined : invalidInput(loop.path.join('.'), loop.message);
  }

  /** Whether the app's `httpsRedirect` waits: the certificate it serves is still an ACME placeholder. */
  private async redirectWaits(app: App): Promise<boolean> {
    const served = appServedCertificate(app);
    if (app.tls?.httpsRedirect !== true || served === undefined) return false;
    const stored = await this.deps.certs.get(served).catch(() => undefined);
    return stored !== undefined && isPlaceholderIssuer(stored.facts.issuer);
  }

  /** Renders an app and reads it back: it must come back as the very app (DESIGN invariant 3). */
  private renderChecked(app: App, redirectWaits: boolean): string {
    const text = this.deps.renderApp(app, { redirectWaits });
    let back: App;
    try {
      back = readApp(text, this.deps.store.fileOptions, app.name);
    } catch (error) {
      throw new PorticoError('Internal', `rendering app "${app.name}": the file does not read back: ${(error as Error).message}`);
    }
    if (!isDeepStrictEqual(back, app)) throw new PorticoError('Internal', `rendering app "${app.name}": the file reads back as a different app`);
    return text;
  }

  /** The apps the batch leaves, in order of the work. */
  private after(work: Array<Work<AppChange, PlannedApp>>): Map<string, App> {
    const apps = new Map(this.base);
    for (const { planned } of work) {
      if (planned.app === undefined) apps.delete(planned.name);
      else apps.set(planned.name, planned.app);
    }
    return apps;
  }

  async shared(work: Array<Work<AppChange, PlannedApp>>): Promise<FileChange[]> {
    const apps = this.after(work);
    const exists = this.baseFiles.includes(SHARED_HTTP_FILE);
    if (apps.size === 0) return exists ? [{ name: SHARED_HTTP_FILE, text: null }] : [];
    // Deleting an app whose file cannot be read removes that file; nothing else adds or removes one.
    const deleted = new Set(work.filter(({ planned }) => planned.outcome === 'deleted').map(({ planned }) => planned.name));
    const unknownFiles = this.baseForeign > 0 || this.baseUnreadable.some((name) => !deleted.has(name));
    const uses = sharedHttpNeeds(apps.values(), unknownFiles);
    const text = renderSharedChecked(this.deps.renderShared, sharedHttpView([...apps.values()], this.deps.settings, uses));
    return [{ name: SHARED_HTTP_FILE, text }];
  }

  testTree(includes: string[]): Promise<string> {
    return this.deps.tests.forTree({ http: includes });
  }

  testFile(files: string[], shared: string[]): Promise<string> {
    return this.deps.tests.forFiles(files, 'http', shared);
  }

  reloadPlan(work: Array<Work<AppChange, PlannedApp>>): ReloadPlan {
    const before = this.base.size > 0;
    const after = this.after(work).size > 0;
    const { httpPort, httpsPort, listenAddress } = this.deps.settings;
    const address = listenAddress?.replace(/^\[(.*)\]$/, '$1');
    const host = address === undefined || address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
    const listeners = [
      { host, port: httpPort },
      { host, port: httpsPort },
      { host, port: httpsPort, udp: true },
    ];
    return {
      opened: !before && after ? listeners : [],
      closed: before && !after ? listeners : [],
      // Apps share their listeners: until the old workers stop accepting, a connection may still
      // reach the old config, where a new app's name falls to the catch-all server.
      drainOld: before,
      servers: work.flatMap(({ planned }) => (planned.app?.serverNames ?? []).flatMap((name) => [httpPort, httpsPort].map((port) => ({ port, name })))),
    };
  }

  result(w: Work<AppChange, PlannedApp>): AppResult {
    const { planned } = w;
    return { outcome: planned.outcome, name: planned.name, ...(planned.app && { app: planned.app }) };
  }

  key(change: AppChange): string {
    return nameOf(change);
  }

  describe(change: AppChange): string {
    return describeAppChange(change);
  }
}
