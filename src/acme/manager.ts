/**
 * Managed certificates: obtains each from the CA, keeps it renewed, and never lets a failure reach
 * what serves.
 *
 * - A new managed certificate first serves a self-signed placeholder (placeholder.ts), through the
 *   apply queue like any upload: whatever names it can start at once. The order then runs in the
 *   background; the issued pair replaces the placeholder through the same queue (tested, swapped,
 *   reloaded, verified, rolled back on failure, as any certificate replace).
 * - Renewal when a third of the lifetime is left, a little earlier at random (so a fleet of
 *   certificates issued together does not renew together); a failed order is retried with
 *   exponential backoff. The certificate served meanwhile is untouched: a failure is an event, a
 *   metric and `lastError`, never a broken nginx.
 * - Orders are serialised per certificate and never hold the apply queue while the CA works: only
 *   the final replace goes through it.
 * - Everything that must outlive a restart is in STATE_DIR/acme (state.ts): on start every
 *   certificate gets its timer back, and one whose order a stop or a crash interrupted (status
 *   pending, renewing or failed) orders again at once. A crash never leaves anything half-written
 *   served: the issued pair reaches nginx only through the apply queue's journal.
 */
import type { Logger } from 'pino';
import { asPorticoError, conflict, notFound, PorticoError } from '../errors.js';
import type { Requester } from '../apply/batch.js';
import type { CertificateResult } from '../apply/certificate-kind.js';
import type { EventFeed } from '../events/feed.js';
import { inspectCertificate, type InspectedCertificate } from '../model/certificate.js';
import type { CertStore } from '../store/certs.js';
import type { ChallengeSolver, ChallengeType } from './challenge.js';
import { createPlaceholder, isPlaceholderIssuer } from './placeholder.js';
import type { AcmeRecord, AcmeRequest, AcmeState } from './state.js';

/** What the manager needs of an ACME client (client.ts's AcmeClient does it). */
export interface AcmeOrderer {
  /** The account's URL at the CA, once known. */
  readonly accountUrl: string | undefined;
  order(request: { names: string[]; challenge: ChallengeSolver; signal?: AbortSignal }): Promise<{ certificatePem: string; keyPem: string }>;
}

export interface AcmeManagerDeps {
  state: AcmeState;
  certs: CertStore;
  /** Opens the ACME client (account included) on first use, so a Portico with no managed certificate never calls the CA. */
  client: () => Promise<AcmeOrderer>;
  solvers: Partial<Record<ChallengeType, ChallengeSolver>>;
  /** Puts a certificate through the apply queue (Applier.submitCertificate). */
  put(id: string, certificate: InspectedCertificate, create: boolean, by: Requester): Promise<CertificateResult>;
  events: EventFeed;
  log: Logger;
  /**
   * Whether nginx listens on HTTP_PORT (it does while an app exists: the catch-all server answers
   * challenges for names no app serves). HTTP-01 without it would only earn the CA's "connection refused".
   */
  httpListening(): Promise<boolean>;
  /**
   * After a certificate's first issue: rewrites the apps that serve it with an `httpsRedirect` that
   * waited for it (apply/app-kind.ts). Its failure is logged; the redirect then applies at the app's
   * next change.
   */
  onFirstIssue?(id: string): Promise<void>;
  /** The first retry's delay; each next one doubles, up to `retryMaxMs`. */
  retryMinMs: number;
  retryMaxMs: number;
  /** One order's bound, from the first request to the issued chain. */
  orderTimeoutMs: number;
  now?: () => Date;
  random?: () => number;
}

/** Who the apply queue and the event feed see replacing a certificate the CA issued. */
const ACME_REQUESTER: Requester = { request: 'acme', token: 'acme' };

/** setTimeout's limit (about 24.8 days): a later renewal wakes up there and looks again. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** When a certificate valid from `notBefore` to `notAfter` renews: a third of its lifetime before the end, up to a tenth of that earlier. */
export function renewalTime(notBefore: Date, notAfter: Date, random: number): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const third = lifetime / 3;
  return new Date(notAfter.getTime() - third - random * (third / 10));
}

/** The delay before retry number `failures` (1 = the first): doubling from `minMs`, at most `maxMs`, ±20% at random. */
export function retryDelay(failures: number, minMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(base * (0.8 + 0.4 * random));
}

export class AcmeManager {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Map<string, Promise<void>>();
  /** Ids whose create is between its check and its placeholder: a second create of one is a conflict. */
  private readonly creating = new Set<string>();
  private readonly aborts = new Set<AbortController>();
  private stopped = false;
  private client: AcmeOrderer | undefined;
  private readonly now: () => Date;
  private readonly random: () => number;

  constructor(private readonly deps: AcmeManagerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
  }

  /** Gives every managed certificate its timer back; an interrupted order runs again at once. */
  async start(): Promise<void> {
    await this.deps.state.open();
    const { records, unreadable } = await this.deps.state.list();
    for (const file of unreadable) this.deps.log.warn(file, 'an ACME state file does not read: its certificate is not renewed until it is fixed or deleted');
    for (const record of records) {
      const stored = await this.deps.certs.get(record.id).catch(() => undefined);
      if (stored === undefined) {
        // Created, then a crash before its placeholder was applied: serve the placeholder now.
        await this.servePlaceholder(record, false).catch((error: unknown) => this.deps.log.error({ err: error, certificate: record.id }, 'could not serve the placeholder of a managed certificate'));
      }
      const interrupted = record.status !== 'valid' || stored === undefined || isPlaceholderIssuer(stored.facts.issuer);
      this.schedule(record.id, interrupted ? this.now() : new Date(record.nextRenewal ?? this.now().toISOString()));
    }
  }

  /** Stops every timer and aborts the orders in flight (they record nothing more), then waits for them. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const abort of this.aborts) abort.abort(new Error('Portico is stopping'));
    await Promise.allSettled([...this.running.values()]);
  }

  /** The ACME account's URL, once an order has talked to the CA since start-up. */
  get accountUrl(): string | undefined {
    return this.client?.accountUrl;
  }

  async list(): Promise<AcmeRecord[]> {
    return (await this.deps.state.list()).records;
  }

  get(id: string): Promise<AcmeRecord | undefined> {
    return this.deps.state.get(id);
  }

  /**
   * A new managed certificate: records it, serves its placeholder (through the apply queue: a 4xx
   * from there undoes the record), and orders in the background. `create` fails on an existing id.
   */
  async create(id: string, request: AcmeRequest, by: Requester, app?: string): Promise<AcmeRecord> {
    this.checkSolver(request.challenge, app === undefined ? 'acme.challenge' : 'tls.acme');
    // Claimed before the first await: two creates of one id at once would both pass the check below,
    // the second's record would replace the first's, and its failed placeholder would remove it.
    if (this.creating.has(id)) throw conflict(`certificate "${id}" exists`);
    this.creating.add(id);
    try {
      return await this.createClaimed(id, request, by, app);
    } finally {
      this.creating.delete(id);
    }
  }

  private async createClaimed(id: string, request: AcmeRequest, by: Requester, app: string | undefined): Promise<AcmeRecord> {
    if ((await this.deps.state.get(id)) !== undefined || (await this.deps.certs.get(id)) !== undefined) throw conflict(`certificate "${id}" exists`);
    const record: AcmeRecord = {
      id,
      names: request.names,
      challenge: request.challenge,
      status: 'pending',
      lastAttempt: null,
      lastError: null,
      nextRenewal: this.now().toISOString(),
      issuer: null,
      failures: 0,
      ...(app !== undefined && { app }),
    };
    await this.deps.state.put(record);
    try {
      await this.servePlaceholder(record, true, by);
    } catch (error) {
      await this.deps.state.remove(id);
      throw error;
    }
    this.schedule(id, this.now());
    return record;
  }

  /** Forgets a managed certificate (its files go through the apply queue, by the caller). */
  async forget(id: string): Promise<void> {
    const timer = this.timers.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(id);
    await this.running.get(id)?.catch(() => undefined);
    await this.deps.state.remove(id);
  }

  /** Orders now (a renewal or a retry on request); answers once the order ended, with the record. */
  async renewNow(id: string): Promise<AcmeRecord> {
    if ((await this.deps.state.get(id)) === undefined) throw notFound(`no ACME certificate "${id}"`);
    await this.run(id);
    return (await this.deps.state.get(id)) as AcmeRecord;
  }

  private checkSolver(challenge: ChallengeType, field: string): void {
    if (this.deps.solvers[challenge] === undefined) {
      throw new PorticoError('InvalidInput', `"${challenge}" (needed for wildcard names) needs ACME_DNS_SERVER and the TSIG settings (RFC 2136 dynamic update): none are set`, { field });
    }
  }

  /**
   * New names for a managed certificate (an app's server names changed): recorded, and ordered at
   * once; the certificate served until then is the old one.
   */
  async rename(id: string, request: AcmeRequest, field: string): Promise<void> {
    this.checkSolver(request.challenge, field);
    const record = await this.deps.state.get(id);
    if (record === undefined) throw notFound(`no ACME certificate "${id}"`);
    if (record.names.join(' ') === request.names.join(' ') && record.challenge === request.challenge) return;
    await this.running.get(id)?.catch(() => undefined);
    await this.deps.state.put({ ...record, names: request.names, challenge: request.challenge, failures: 0, nextRenewal: this.now().toISOString() });
    this.schedule(id, this.now());
  }

  private async servePlaceholder(record: AcmeRecord, create: boolean, by: Requester = ACME_REQUESTER): Promise<void> {
    const placeholder = await createPlaceholder(record.names, this.now());
    await this.deps.put(record.id, inspectCertificate({ certificate: placeholder.certificatePem, key: placeholder.keyPem }, this.now()), create, by);
  }

  private schedule(id: string, at: Date): void {
    if (this.stopped) return;
    const previous = this.timers.get(id);
    if (previous !== undefined) clearTimeout(previous);
    const delay = Math.max(0, Math.min(MAX_TIMER_MS, at.getTime() - this.now().getTime()));
    const timer = setTimeout(() => {
      this.timers.delete(id);
      // A timer that woke early (the 24.8-day limit) looks at the record again.
      if (delay === MAX_TIMER_MS) void this.deps.state.get(id).then((r) => r?.nextRenewal && this.schedule(id, new Date(r.nextRenewal)));
      else void this.run(id);
    }, delay);
    timer.unref();
    this.timers.set(id, timer);
  }

  /** One order at a time per certificate: a second call joins the first. */
  private run(id: string): Promise<void> {
    const current = this.running.get(id);
    if (current !== undefined) return current;
    const job = this.order(id).finally(() => this.running.delete(id));
    this.running.set(id, job);
    return job;
  }

  private async order(id: string): Promise<void> {
    const record = await this.deps.state.get(id);
    if (record === undefined || this.stopped) return;
    const solver = this.deps.solvers[record.challenge];
    const stored = await this.deps.certs.get(id);
    const renewing = stored !== undefined && !isPlaceholderIssuer(stored.facts.issuer);
    const started = this.now();
    await this.deps.state.put({ ...record, status: renewing ? 'renewing' : 'pending', lastAttempt: started.toISOString() });
    const event = { certificate: id, names: record.names, challenge: record.challenge };
    this.deps.events.record({ type: 'acme', what: 'ordered', ...event });
    const abort = new AbortController();
    this.aborts.add(abort);
    const timeout = setTimeout(() => abort.abort(new Error(`the order took longer than ${this.deps.orderTimeoutMs / 1000} s`)), this.deps.orderTimeoutMs);
    try {
      if (solver === undefined) throw new Error(`no ${record.challenge} solver is configured (ACME_DNS_SERVER and the TSIG settings)`);
      if (record.challenge === 'http-01' && !(await this.deps.httpListening())) {
        throw new Error('HTTP-01 needs nginx listening on HTTP_PORT, which it does while an app exists: create an app (any), or use "dns-01"; Portico tries again later');
      }
      const client = await this.deps.client();
      this.client = client;
      const issued = await client.order({ names: record.names, challenge: solver, signal: abort.signal });
      const certificate = inspectCertificate({ certificate: issued.certificatePem, key: issued.keyPem }, this.now());
      await this.deps.put(id, certificate, false, ACME_REQUESTER);
      const notBefore = new Date(certificate.facts.notBefore);
      const notAfter = new Date(certificate.facts.notAfter);
      const next = renewalTime(notBefore, notAfter, this.random());
      await this.deps.state.put({ ...record, status: 'valid', lastAttempt: started.toISOString(), lastError: null, nextRenewal: next.toISOString(), issuer: certificate.facts.issuer, failures: 0 });
      this.deps.events.record({ type: 'acme', what: renewing ? 'renewed' : 'issued', ...event, notAfter: notAfter.toISOString() });
      if (!renewing) {
        await this.deps.onFirstIssue?.(id).catch((error: unknown) => this.deps.log.warn({ err: error, certificate: id }, 'could not write the HTTPS redirect that waited for this certificate: it applies at the app\'s next change'));
      }
      this.deps.log.info({ certificate: id, names: record.names, notAfter: notAfter.toISOString(), nextRenewal: next.toISOString() }, renewing ? 'ACME certificate renewed' : 'ACME certificate issued');
      this.schedule(id, next);
    } catch (error) {
      if (this.stopped) return; // Interrupted by a stop: the next start orders again.
      const failures = record.failures + 1;
      const retryAt = new Date(this.now().getTime() + retryDelay(failures, this.deps.retryMinMs, this.deps.retryMaxMs, this.random()));
      const message = describeFailure(error);
      // Still there? A certificate deleted while its order ran is not brought back.
      if ((await this.deps.state.get(id)) === undefined) return;
      await this.deps.state.put({ ...record, status: 'failed', lastAttempt: started.toISOString(), lastError: message, nextRenewal: retryAt.toISOString(), failures });
      this.deps.events.record({ type: 'acme', what: 'failed', ...event, detail: message, retryAt: retryAt.toISOString() });
      this.deps.log.warn({ certificate: id, names: record.names, error: message, retryAt: retryAt.toISOString() }, 'ACME order failed: the certificate served is unchanged');
      this.schedule(id, retryAt);
    } finally {
      clearTimeout(timeout);
      this.aborts.delete(abort);
    }
  }
}

/** A failure as `lastError` says it: the ACME step and the CA's words, nginx's lines when the replace was refused. */
function describeFailure(error: unknown): string {
  if (error instanceof PorticoError) {
    const nginx = error.nginx;
    return `${error.message}${nginx !== undefined && nginx.length > 0 ? ` (nginx: ${nginx.join('; ')})` : ''}`;
  }
  if (error instanceof Error) return error.message;
  return asPorticoError(error).message;
}
