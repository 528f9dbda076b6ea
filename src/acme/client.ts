/**
 * Portico's ACME client (RFC 8555): an account and orders, over acme-client 5 (its JWS, EAB and
 * CSR code; no hand-written JWS). A pure client: it knows nothing of nginx or the apply pipeline.
 * The caller's solver (src/acme/challenge.ts) puts each proof where the CA looks; the CA validates.
 * Portico never fetches its own challenge or queries DNS for it (acme-client's `auto()` and
 * `verifyChallenge()` would, through port 80 and the system resolver): neither is used.
 *
 * Transport. acme-client sends every request through one axios instance shared by the whole
 * process, and has no per-client agent or timeout option. This module adds one request interceptor
 * to that instance which acts only on requests made inside an `AcmeClient` call (an
 * AsyncLocalStorage context); other users of acme-client in the process are untouched. For those
 * requests it sets: the client's https.Agent (the CA bundle of a private ACME server, trusted by
 * this client only), a per-request timeout, the caller's abort signal, and an adapter wrapper that
 * keeps the CA's last problem document (acme-client's own errors keep only its `detail`) and the
 * last connection error (acme-client 5.4 turns those into a TypeError). It also turns off
 * acme-client's transport retries for them (5 attempts, 5-25 s apart, and an unbounded
 * Retry-After): a failed order fails within its bounds and the caller retries with its own backoff.
 * Bad nonces are still retried by acme-client (up to 5 times, at once), as RFC 8555 6.5 asks.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rm } from 'node:fs/promises';
import { Agent } from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import acme from 'acme-client';
import type { Logger } from 'pino';
import { syncDir, writeDurably } from '../store/fsync.js';
import type { Challenge, ChallengeSolver, ChallengeType } from './challenge.js';

/** The step of an order that failed. */
export type AcmeStep = 'account' | 'order' | 'challenge' | 'finalize' | 'download';

/** An RFC 7807 problem document as the CA sent it (RFC 8555 6.7). */
export interface AcmeProblem {
  type: string;
  detail?: string;
  status?: number;
  /** The identifier a subproblem is about (RFC 8555 6.7.1). */
  identifier?: string;
  subproblems?: AcmeProblem[];
}

/**
 * A failed ACME step. `message` leads with the step and carries the CA's own problem (its type and
 * detail) when it sent one, or why the server could not be reached. Never the account key or the
 * EAB HMAC key: neither is ever put in a message, and no raw transport error is attached.
 */
export class AcmeError extends Error {
  override readonly name = 'AcmeError';
  readonly step: AcmeStep;
  readonly problem: AcmeProblem | undefined;
  /** The name an authorization was about (challenge step). */
  readonly identifier: string | undefined;
  /** True when the ACME server could not be reached at all (connection refused, timeout, TLS). */
  readonly unreachable: boolean;

  constructor(step: AcmeStep, message: string, details: { problem?: AcmeProblem; identifier?: string; unreachable?: boolean } = {}) {
    super(`acme ${step}: ${message}`);
    this.step = step;
    this.problem = details.problem;
    this.identifier = details.identifier;
    this.unreachable = details.unreachable ?? false;
  }
}

export interface ExternalAccountBinding {
  /** The key identifier the CA gave. */
  kid: string;
  /** The HMAC key the CA gave, base64url (RFC 8555 7.3.4). */
  hmacKey: string;
}

export interface AcmeClientOptions {
  directoryUrl: string;
  /** Folder of the account key (`account.key`, created once, 0600; the folder is made 0700). */
  accountDir: string;
  /** Contact address for the account (`mailto:` is added). */
  email?: string;
  externalAccountBinding?: ExternalAccountBinding;
  /** PEM of the CA(s) that sign the ACME server's own HTTPS certificate, trusted by this client only. */
  caBundlePem?: string;
  logger: Logger;
  /** Bound of each HTTP request to the CA (default 30 s). */
  requestTimeoutMs?: number;
  /** Bound of the wait for an authorization to turn valid once the CA was told (default 120 s). */
  validationTimeoutMs?: number;
  /** Bound of the wait for a finalized order's certificate (default 120 s). */
  finalizeTimeoutMs?: number;
  /** Bound of a solver's `present` and of its `remove` (default 300 s; DNS-01 may wait for propagation). */
  solverTimeoutMs?: number;
}

export interface OrderRequest {
  /** The names of the certificate, the first one its CN; `*.` names need a DNS-01 solver. */
  names: string[];
  challenge: ChallengeSolver;
  /** The certificate's private key (PEM); a new ECDSA P-256 key when absent. */
  keyPem?: string;
  signal?: AbortSignal;
}

export interface IssuedCertificate {
  /** The full chain as the CA sent it, leaf first. */
  certificatePem: string;
  keyPem: string;
  orderUrl: string;
}

export const ACCOUNT_KEY_FILE = 'account.key';

/* ------------------------------------------------------------------------------------------------ */
/* Pure helpers (unit-tested)                                                                        */
/* ------------------------------------------------------------------------------------------------ */

/** The problem document in `value` (a parsed response body), or undefined when it is none. */
export function problemOf(value: unknown): AcmeProblem | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.type !== 'string' || record.type === '') return undefined;
  const problem: AcmeProblem = { type: record.type };
  if (typeof record.detail === 'string') problem.detail = record.detail;
  if (typeof record.status === 'number') problem.status = record.status;
  const identifier = record.identifier as { value?: unknown } | undefined;
  if (identifier !== undefined && typeof identifier?.value === 'string') problem.identifier = identifier.value;
  if (Array.isArray(record.subproblems)) {
    const subs = record.subproblems.map(problemOf).filter((p): p is AcmeProblem => p !== undefined);
    if (subs.length > 0) problem.subproblems = subs;
  }
  return problem;
}

/** `type: detail` of a problem and of its subproblems, on one line. */
export function describeProblem(problem: AcmeProblem): string {
  const head = problem.detail !== undefined && problem.detail !== '' ? `${problem.type}: ${problem.detail}` : problem.type;
  const subs = (problem.subproblems ?? []).map((sub) => `${sub.identifier !== undefined ? `${sub.identifier}: ` : ''}${describeProblem(sub)}`);
  return [head.replace(/\s*\n\s*/g, ' '), ...subs].join('; ');
}

const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Why a request to `url` got no answer, from a transport error (axios or node), in one line. */
export function describeTransportError(error: { code?: string; message?: string }, timeoutMs?: number): string {
  const code = error.code ?? '';
  if (code === 'ECONNABORTED' || code === 'ETIMEDOUT' || /timeout of \d+ms exceeded/.test(error.message ?? '')) {
    return `no answer within ${timeoutMs !== undefined ? `${timeoutMs} ms` : 'the timeout'}`;
  }
  if (TLS_CODES.has(code)) {
    return `its TLS certificate is not trusted (${code}): a private ACME server needs its CA bundle`;
  }
  const message = (error.message ?? 'unknown error').replace(/\s*\n\s*/g, ' ');
  return code !== '' && !message.includes(code) ? `${message} (${code})` : message;
}

/** The challenge of `type` among an authorization's, or an AcmeError naming what the CA offers. */
export function pickChallenge<C extends { type: string }>(authz: { identifier: { value: string }; wildcard?: boolean; challenges: C[] }, type: ChallengeType): C {
  const found = authz.challenges.find((c) => c.type === type);
  if (found !== undefined) return found;
  const name = `${authz.wildcard === true ? '*.' : ''}${authz.identifier.value}`;
  const offered = authz.challenges.map((c) => c.type).join(', ') || 'none';
  const hint = authz.wildcard === true && type !== 'dns-01' ? ' (a wildcard name needs dns-01)' : '';
  throw new AcmeError('challenge', `the CA offers no ${type} challenge for ${name} (it offers: ${offered})${hint}`, { identifier: name });
}

/** The certificate's names, checked and without duplicates; the first one is the CN. */
export function orderNames(names: string[]): string[] {
  const out: string[] = [];
  for (const raw of names) {
    const name = raw.trim().toLowerCase().replace(/\.$/, '');
    if (name === '' || !/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(name) || name.length > 253) {
      throw new AcmeError('order', `not a DNS name: ${JSON.stringify(raw)}`);
    }
    if (!out.includes(name)) out.push(name);
  }
  if (out.length === 0) throw new AcmeError('order', 'an order needs at least one name');
  return out;
}

/* ------------------------------------------------------------------------------------------------ */
/* Account key                                                                                       */
/* ------------------------------------------------------------------------------------------------ */

/**
 * The account key in `dir/account.key`, created once (ECDSA P-256, PKCS#8 PEM): written durably to
 * a temporary name (0600), then linked to its name, which fails when another writer got there
 * first (its key is then the one used), so a key is never replaced or read half-written. The
 * folder is created 0700 (and narrowed to 0700 when it was wider).
 */
export async function loadOrCreateAccountKey(dir: string): Promise<{ keyPem: string; created: boolean }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const file = path.join(dir, ACCOUNT_KEY_FILE);
  const existing = await readKey(file);
  if (existing !== undefined) return { keyPem: existing, created: false };
  const keyPem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
  const temp = path.join(dir, `.${ACCOUNT_KEY_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeDurably(temp, keyPem, 0o600);
    await link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const theirs = await readKey(file);
    if (theirs === undefined) throw error;
    return { keyPem: theirs, created: false };
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(dir);
  return { keyPem, created: true };
}

async function readKey(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    createPrivateKey(text);
  } catch {
    // Never a key's text in a message: only that the file is not one.
    throw new Error(`acme account: ${file} is not a readable private key`);
  }
  return text;
}

/* ------------------------------------------------------------------------------------------------ */
/* Transport: the shared axios instance, scoped per call                                            */
/* ------------------------------------------------------------------------------------------------ */

interface CallContext {
  agent: Agent | undefined;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  logger: Logger;
  lastProblem: AcmeProblem | undefined;
  lastTransport: { url: string; code?: string; message: string } | undefined;
}

const calls = new AsyncLocalStorage<CallContext>();

type AxiosConfig = Record<string, unknown> & { url?: string; method?: string };
type AxiosResponse = { status: number; data: unknown; headers: Record<string, unknown> };
type Adapter = (config: AxiosConfig) => Promise<AxiosResponse>;

let installed = false;

/** The one interceptor this module adds to acme-client's axios instance (idempotent). */
function installTransport(): void {
  if (installed) return;
  installed = true;
  // The axios acme-client itself loads (its own dependency, not Portico's), for its HTTP adapter.
  const axiosOfAcme = createRequire(createRequire(import.meta.url).resolve('acme-client'))('axios') as { getAdapter(name: string): Adapter };
  const httpAdapter = axiosOfAcme.getAdapter('http');
  const instance = acme.axios as unknown as {
    defaults: { acmeSettings?: { retryMaxAttempts?: number } };
    interceptors: { request: { use(fn: (config: AxiosConfig) => AxiosConfig): number } };
  };
  instance.interceptors.request.use((config) => {
    const context = calls.getStore();
    if (context === undefined) return config;
    if (context.agent !== undefined) config.httpsAgent = context.agent;
    config.timeout = context.timeoutMs;
    if (context.signal !== undefined) config.signal = context.signal;
    // acme-client counts attempts in config.retryAttempt and stops past retryMaxAttempts.
    if (!('retryAttempt' in config)) config.retryAttempt = instance.defaults.acmeSettings?.retryMaxAttempts ?? 5;
    config.adapter = async (request: AxiosConfig): Promise<AxiosResponse> => {
      const url = String(request.url ?? '');
      const method = String(request.method ?? 'get').toUpperCase();
      context.lastProblem = undefined;
      context.lastTransport = undefined;
      // acme-client makes axios reject every response (its validateStatus answers false) and sorts
      // them out in its response interceptor: a rejection with a response is an answer, not a failure.
      const answered = (response: AxiosResponse): void => {
        context.logger.debug({ method, url, status: response.status }, 'acme request');
        if (response.status >= 400) context.lastProblem = problemOf(parseBody(response.data));
      };
      try {
        const response = await httpAdapter(request);
        answered(response);
        return response;
      } catch (error) {
        const { code, message, response } = error as { code?: string; message?: string; response?: AxiosResponse };
        if (response !== undefined) {
          answered(response);
        } else {
          context.lastTransport = { url, ...(code !== undefined ? { code } : {}), message: message ?? String(error) };
          context.logger.debug({ method, url, code }, 'acme request failed');
        }
        throw error;
      }
    };
    return config;
  });
}

function parseBody(data: unknown): unknown {
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    try {
      return JSON.parse(data.toString());
    } catch {
      return undefined;
    }
  }
  return data;
}

/* ------------------------------------------------------------------------------------------------ */
/* The client                                                                                        */
/* ------------------------------------------------------------------------------------------------ */

type AcmeAuthorization = Awaited<ReturnType<acme.Client['getAuthorizations']>>[number];
type AcmeOrder = Awaited<ReturnType<acme.Client['createOrder']>>;

export class AcmeClient {
  readonly directoryUrl: string;
  private readonly client: acme.Client;
  private readonly agent: Agent | undefined;
  private readonly options: AcmeClientOptions;
  private readonly log: Logger;
  private registered: string | undefined;

  private constructor(options: AcmeClientOptions, accountKeyPem: string) {
    installTransport();
    this.options = options;
    this.directoryUrl = options.directoryUrl;
    this.log = options.logger.child({ component: 'acme', directory: options.directoryUrl });
    this.agent = options.caBundlePem !== undefined ? new Agent({ ca: options.caBundlePem, keepAlive: false }) : undefined;
    this.client = new acme.Client({
      directoryUrl: options.directoryUrl,
      accountKey: accountKeyPem,
      ...(options.externalAccountBinding !== undefined ? { externalAccountBinding: { ...options.externalAccountBinding } } : {}),
    });
  }

  /** A client for `options.directoryUrl` with the account key of `options.accountDir` (created once). */
  static async open(options: AcmeClientOptions): Promise<AcmeClient> {
    new URL(options.directoryUrl); // throws on a malformed URL before anything is written
    const { keyPem, created } = await loadOrCreateAccountKey(options.accountDir);
    if (created) options.logger.info({ dir: options.accountDir }, 'acme account key created');
    return new AcmeClient(options, keyPem);
  }

  /** The account's URL once `account()` or `order()` registered or found it. */
  get accountUrl(): string | undefined {
    return this.registered;
  }

  /** Frees the client's connections (its agent). */
  close(): void {
    this.agent?.destroy();
  }

  /** Registers the account (or finds the one of this key: the CA answers it again), and answers its URL. */
  async account(signal?: AbortSignal): Promise<string> {
    if (this.registered !== undefined) return this.registered;
    return this.within(signal, () => this.ensureAccount());
  }

  /** Orders a certificate for `request.names`, each name proven through `request.challenge`. */
  async order(request: OrderRequest): Promise<IssuedCertificate> {
    const names = orderNames(request.names);
    const wildcard = names.find((n) => n.startsWith('*.'));
    if (wildcard !== undefined && request.challenge.type !== 'dns-01') {
      throw new AcmeError('order', `${wildcard} needs a dns-01 challenge, not ${request.challenge.type}`);
    }
    return this.within(request.signal, async () => {
      await this.ensureAccount();
      const started = Date.now();
      const order = await this.step('order', () => this.client.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })) }));
      const log = this.log.child({ order: order.url, names });
      log.info('acme order created');
      const authorizations = await this.step('order', () => this.client.getAuthorizations(order));
      for (const authz of authorizations) await this.authorize(authz, request.challenge, request.signal, log);

      const keyPem = request.keyPem ?? (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      const [, csr] = await this.step('finalize', () =>
        acme.crypto.createCsr({ ...((names[0] as string).length <= 64 ? { commonName: names[0] as string } : {}), altNames: [...names] }, keyPem),
      );
      let finalized = await this.step('finalize', () => this.client.finalizeOrder(order, csr), true);
      finalized = await this.waitForOrder(finalized, request.signal);
      const chain = await this.step('download', () => this.client.getCertificate(finalized));
      const certificatePem = chain.endsWith('\n') ? chain : `${chain}\n`;
      if (!certificatePem.includes('-----BEGIN CERTIFICATE-----')) throw new AcmeError('download', 'the CA answered no PEM certificate');
      log.info({ ms: Date.now() - started }, 'acme certificate issued');
      return { certificatePem, keyPem, orderUrl: order.url };
    });
  }

  /** Runs `work` with this client's transport settings for every request it makes. */
  private within<T>(signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    const context: CallContext = {
      agent: this.agent,
      timeoutMs: this.options.requestTimeoutMs ?? 30_000,
      signal,
      logger: this.log,
      lastProblem: undefined,
      lastTransport: undefined,
    };
    return calls.run(context, work);
  }

  /**
   * Runs one step; any failure becomes an AcmeError of `step` with the CA's problem or the transport's
   * reason. A `badNonce` that outlasted acme-client's own retries (each takes the nonce of the
   * refusal, which the CA may refuse again) is tried again, up to 3 times more (RFC 8555 6.5), unless
   * the step is `once`: a finalize is not sent twice.
   */
  private async step<T>(step: AcmeStep, work: () => Promise<T>, once = false): Promise<T> {
    const context = calls.getStore();
    for (let attempt = 0; ; attempt += 1) {
      if (context?.signal?.aborted === true) throw new AcmeError(step, 'aborted');
      try {
        return await work();
      } catch (error) {
        const failure = this.failure(step, error, context);
        if (once || attempt >= 3 || failure.problem?.type !== 'urn:ietf:params:acme:error:badNonce') throw failure;
        if (context !== undefined) context.lastProblem = undefined;
      }
    }
  }

  private failure(step: AcmeStep, error: unknown, context: CallContext | undefined): AcmeError {
    if (error instanceof AcmeError) return error;
    if (context?.signal?.aborted === true) return new AcmeError(step, 'aborted');
    const transport = context?.lastTransport;
    if (transport !== undefined) {
      const reason = describeTransportError(transport, context?.timeoutMs);
      const where = transport.url === this.directoryUrl ? `the ACME directory ${this.directoryUrl} could not be reached` : `the ACME server could not be reached at ${transport.url}`;
      return new AcmeError(step, `${where}: ${reason}`, { unreachable: true });
    }
    const problem = context?.lastProblem;
    if (problem !== undefined) return new AcmeError(step, describeProblem(problem), { problem });
    // acme-client's own message (a status it did not expect, a missing URL): never holds a key.
    const message = error instanceof Error ? error.message : String(error);
    return new AcmeError(step, message.replace(/\s*\n\s*/g, ' '));
  }

  /**
   * The account of this key: first asked for as existing (`onlyReturnExisting`, RFC 8555 7.3.1, read
   * back with a POST-as-GET), created (terms agreed, contact, EAB) only when the CA knows none.
   * Asking for creation again with an existing key would make acme-client send an update holding
   * only `termsOfServiceAgreed`, which a CA may refuse as an empty update (pebble does).
   */
  private async ensureAccount(): Promise<string> {
    if (this.registered !== undefined) return this.registered;
    const email = this.options.email;
    let found = true;
    try {
      await this.step('account', () => this.client.createAccount({ onlyReturnExisting: true }));
    } catch (error) {
      if (!(error instanceof AcmeError) || error.problem?.type !== 'urn:ietf:params:acme:error:accountDoesNotExist') throw error;
      found = false;
    }
    if (!found) {
      await this.step('account', () =>
        this.client.createAccount({ termsOfServiceAgreed: true, ...(email !== undefined && email !== '' ? { contact: [`mailto:${email}`] } : {}) }),
      );
    }
    this.registered = this.client.getAccountUrl();
    this.log.info({ account: this.registered, created: !found }, found ? 'acme account found' : 'acme account created');
    return this.registered;
  }

  /** One authorization: present the proof, tell the CA, wait for its decision, take the proof away. */
  private async authorize(authz: AcmeAuthorization, solver: ChallengeSolver, signal: AbortSignal | undefined, log: Logger): Promise<void> {
    const name = `${authz.wildcard === true ? '*.' : ''}${authz.identifier.value}`;
    if (authz.status === 'valid') {
      log.info({ name }, 'acme authorization already valid');
      return;
    }
    if (authz.status !== 'pending') {
      throw new AcmeError('challenge', `the authorization for ${name} is ${authz.status}`, { identifier: name });
    }
    const offered = pickChallenge(authz, solver.type);
    const proof = await this.step('challenge', () => this.client.getChallengeKeyAuthorization(offered));
    const challenge: Challenge = { identifier: authz.identifier.value, wildcard: authz.wildcard === true, token: offered.token, proof };
    const solverBound = this.options.solverTimeoutMs ?? 300_000;
    try {
      await this.step('challenge', () => bounded(solver.present(challenge), solverBound, `the ${solver.type} solver did not present the proof for ${name}`));
      log.info({ name, type: solver.type }, 'acme challenge presented');
      await this.step('challenge', () => this.client.completeChallenge(offered));
      await this.waitForAuthorization(authz, name, signal);
      log.info({ name }, 'acme authorization valid');
    } finally {
      await bounded(solver.remove(challenge), solverBound, `the ${solver.type} solver did not remove the proof for ${name}`).catch((error: unknown) =>
        log.warn({ name, err: (error as Error).message }, 'acme challenge proof not removed'),
      );
    }
  }

  /** Polls the authorization until valid (bounded); invalid ends with the challenge's error from the CA. */
  private async waitForAuthorization(authz: AcmeAuthorization, name: string, signal: AbortSignal | undefined): Promise<void> {
    const deadline = Date.now() + (this.options.validationTimeoutMs ?? 120_000);
    for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
      const [current] = await this.step('challenge', () => this.client.getAuthorizations({ authorizations: [authz.url] } as AcmeOrder));
      if (current === undefined) throw new AcmeError('challenge', `the CA answered no authorization at ${authz.url}`, { identifier: name });
      if (current.status === 'valid') return;
      if (current.status !== 'pending') {
        const failed = current.challenges.find((c) => c.status === 'invalid' && c.error !== undefined);
        const problem = problemOf(failed?.error);
        const why = problem !== undefined ? describeProblem(problem) : `the authorization is ${current.status}`;
        throw new AcmeError('challenge', `${name}: ${why}`, { identifier: name, ...(problem !== undefined ? { problem } : {}) });
      }
      if (Date.now() + delay > deadline) {
        throw new AcmeError('challenge', `${name}: the CA did not decide within ${this.options.validationTimeoutMs ?? 120_000} ms`, { identifier: name });
      }
      await pause(delay, signal, 'challenge');
    }
  }

  /** Polls a finalized order until its certificate is ready (bounded). */
  private async waitForOrder(order: AcmeOrder, signal: AbortSignal | undefined): Promise<AcmeOrder> {
    const deadline = Date.now() + (this.options.finalizeTimeoutMs ?? 120_000);
    let current = order;
    for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
      if (current.status === 'valid') return current;
      if (current.status === 'invalid') {
        const problem = problemOf(current.error);
        throw new AcmeError('finalize', problem !== undefined ? describeProblem(problem) : 'the CA marked the order invalid', problem !== undefined ? { problem } : {});
      }
      if (Date.now() + delay > deadline) {
        throw new AcmeError('finalize', `the order is still ${current.status} after ${this.options.finalizeTimeoutMs ?? 120_000} ms`);
      }
      await pause(delay, signal, 'finalize');
      const url = current.url;
      current = await this.step('finalize', () => this.client.getOrder(current));
      current.url = url;
    }
  }
}

async function pause(ms: number, signal: AbortSignal | undefined, step: AcmeStep): Promise<void> {
  try {
    await sleep(ms, undefined, signal !== undefined ? { signal } : {});
  } catch {
    throw new AcmeError(step, 'aborted');
  }
}

/** `promise`, or a rejection naming `what` once `ms` passed. */
async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
