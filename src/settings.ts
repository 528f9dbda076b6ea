/**
 * Settings: the environment, parsed once by one zod schema into typed, validated values.
 * stream-conductor's variable names are kept; a bad value stops start-up with a message naming the
 * variable and the rule.
 */
import path from 'node:path';
import { z } from 'zod';
import { acmeDnsSettingsSchema, type AcmeDnsSettings } from './acme/dns01.js';
import { loadFleetSettings, type FleetSettings } from './fleet/settings.js';
import { allowedHostsSchema, allowedOriginsSchema, type AllowedHost } from './model/api-host.js';
import { PATH_PATTERN, listenHostSchema, TIME_PATTERN, ipv6Bits, isBracketableIPv6, isIPv4, isPortText } from './model/net.js';

/** The path managed mode's status listener answers stub_status on. */
export const NGINX_STATUS_PATH = '/stub_status';

/** The phases of a batch a test may pause after (PORTICO_TEST_DELAY). */
export const TEST_DELAY_PHASES = ['read', 'plan', 'stage', 'test', 'swap', 'reload', 'commit'] as const;

/** For tests only: a pause of `ms` right after `phase` of every batch, so a test can kill Portico inside it. */
export interface TestDelay {
  phase: (typeof TEST_DELAY_PHASES)[number];
  ms: number;
}

export interface PortRange {
  /** First port, inclusive. */
  from: number;
  /** Last port, inclusive (stream-conductor excluded it; Portico does not). */
  to: number;
}

const portRangeSchema = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'must be FROM-TO, e.g. 9000-9009 (both ends inclusive)')
  .transform((text, ctx): PortRange => {
    const [from = '', to = ''] = text.split('-');
    if (!isPortText(from) || !isPortText(to)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'both ends must be ports from 1 to 65535' });
      return z.NEVER;
    }
    if (Number(from) > Number(to)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${from} is above ${to}` });
      return z.NEVER;
    }
    return { from: Number(from), to: Number(to) };
  });

const testDelaySchema = z
  .string()
  .regex(new RegExp(`^(${TEST_DELAY_PHASES.join('|')}):(\\d{1,4})$`), `for tests only: PHASE:MS, PHASE one of ${TEST_DELAY_PHASES.join(', ')}`)
  .transform((text): TestDelay => {
    const [phase, ms] = text.split(':');
    return { phase: phase as TestDelay['phase'], ms: Number(ms) };
  })
  .refine((delay) => delay.ms <= 5000, 'for tests only: MS must be from 0 to 5000');

/** A reservation outliving this is a port lost to a script that never came back. */
const MAX_RESERVATION_MS = 3_600_000;

const portSettingSchema = z.string().refine(isPortText, 'must be a port from 1 to 65535').transform(Number);

/** NGINX_STATUS_PORT: a port, or 0/off for no status listener (undefined). */
const statusPortSchema = z
  .string()
  .refine((text) => text === '0' || text === 'off' || isPortText(text), 'must be a port from 1 to 65535, or 0 or off for no status listener')
  .transform((text) => (text === '0' || text === 'off' ? undefined : Number(text)));

/**
 * NGINX_STATUS_URL: where an external nginx answers stub_status. Plain http (stub_status carries no
 * secret, and a TLS client here would be one more thing to configure), no credentials in it (they
 * would sit in the environment and in every error message that names the URL).
 */
const statusUrlSchema = z
  .string()
  .refine((text) => URL.canParse(text), 'must be a URL such as http://127.0.0.1:8081/stub_status')
  .superRefine((text, ctx) => {
    if (!URL.canParse(text)) return;
    const url = new URL(text);
    if (url.protocol !== 'http:') ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be an http:// URL (not ${url.protocol}//)` });
    if (url.username !== '' || url.password !== '') ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not carry a user or password (keep stub_status on loopback or a trusted network instead)' });
    if (url.hash !== '') ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not have a #fragment' });
  });

/** A time in nginx's syntax, as milliseconds from `low` to `high` (`range` says them as people would). */
const timeSchema = (low: number, high: number, examples: string, range: string) =>
  z
    .string()
    .regex(TIME_PATTERN, `must be a time such as ${examples}`)
    .transform((text) => nginxTimeMs(text))
    .refine((ms) => ms >= low && ms <= high, `must be from ${range}`);

/** A time of the API's own sockets: nginx's syntax, 100ms to 1h. */
const apiTimeoutSchema = timeSchema(100, 3_600_000, '500ms, 5s or 1m', '100ms to 1h');

const connectionCountSchema = z
  .string()
  .regex(/^[1-9]\d{0,5}$/, 'must be a whole number from 1 to 100000')
  .transform(Number)
  .refine((n) => n <= 100_000, 'must be a whole number from 1 to 100000');

const dirSchema = z
  .string()
  .min(1, 'must not be empty')
  .transform((text) => path.resolve(text).replace(/\/+$/, '') || '/')
  .refine(
    (resolved) => PATH_PATTERN.test(resolved),
    'must be a path of letters, digits and _ . / + @ = , - only (it is written into nginx config)',
  );

/** Let's Encrypt's production directory: ACME_DIRECTORY_URL's default (the README shows the staging one). */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

/** ACME_DIRECTORY_URL: an https URL (RFC 8555 6.1: every ACME request is over HTTPS), with no credentials in it. */
const acmeDirectorySchema = z
  .string()
  .refine((text) => URL.canParse(text), 'must be a URL such as ' + LETS_ENCRYPT_DIRECTORY)
  .superRefine((text, ctx) => {
    if (!URL.canParse(text)) return;
    const url = new URL(text);
    if (url.protocol !== 'https:') ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be an https:// URL (RFC 8555 requires HTTPS; not ${url.protocol}//)` });
    if (url.username !== '' || url.password !== '') ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not carry a user or password' });
  });

/** ACME_EMAIL: one address for the CA's notices (expiry warnings), as a `mailto:` contact takes it. */
const acmeEmailSchema = z
  .string()
  .max(254, 'must be at most 254 characters')
  .regex(/^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+$/, 'must be an e-mail address such as ops@example.com');

const envSchema = z.object({
  PORT_RANGE: portRangeSchema.default('9000-9009'),
  BIND_ADDRESS: z
    .string()
    .refine((v) => v === 'localhost' || isIPv4(v) || isBracketableIPv6(v), 'must be an IPv4 or IPv6 address')
    .default('127.0.0.1'),
  BIND_PORT: portSettingSchema.default('5000'),
  HTTP_PORT: portSettingSchema.default('8080'),
  HTTPS_PORT: portSettingSchema.default('8443'),
  NGINX_MODE: z.enum(['managed', 'external']).default('managed'),
  NGINX_BIN: z.string().min(1).default('/usr/sbin/nginx'),
  STATE_DIR: dirSchema.default('./var'),
  STREAM_CONFIG_PATH: dirSchema.optional(),
  HTTP_CONFIG_PATH: dirSchema.optional(),
  STREAM_PREFIX: z
    .string()
    .regex(/^(?![.])[A-Za-z0-9_.-]{0,64}$/, 'must be at most 64 letters, digits, "_", "." or "-", not starting with "." (nginx\'s glob skips hidden files)')
    .default('_conductor_'),
  NGINX_CONF: dirSchema.optional(),
  NGINX_PID_FILE: dirSchema.optional(),
  NGINX_ERROR_LOG: dirSchema.optional(),
  // execa reads a timeout of 0 as "none": a hung nginx -t would then hold the single writer forever.
  NGINX_TIMEOUT_MS: z
    .string()
    .regex(/^\d{1,6}$/, 'must be milliseconds from 1 to 999999')
    .transform(Number)
    .refine((ms) => ms >= 1, 'must be milliseconds from 1 to 999999 (0 would mean no timeout at all)')
    .default('10000'),
  PORT_RESERVATION_TTL: z
    .string()
    .regex(TIME_PATTERN, 'must be an nginx time such as 30s or 500ms (0 turns reservations off)')
    .refine((time) => nginxTimeMs(time) <= MAX_RESERVATION_MS, 'must be at most 1h')
    .default('30s'),
  // Test the whole staged tree with `nginx -t` before every reload, as before issue 13 (see `testScope`).
  FULL_TREE_TEST: z.enum(['true', 'false', '']).default(''),
  RELOAD_MIN_INTERVAL: z.string().regex(TIME_PATTERN, 'must be an nginx time such as 0, 500ms or 5s').default('0'),
  WORKER_SHUTDOWN_TIMEOUT: z
    .string()
    .regex(TIME_PATTERN, 'must be an nginx time such as 30s or 5m')
    .default('30s'),
  QUIC_BPF: z.enum(['auto', 'on', 'off']).default('auto'),
  // Managed mode's stub_status listener on 127.0.0.1 (the nginx numbers of /metrics); 0 or off: none.
  NGINX_STATUS_PORT: statusPortSchema.default('8081'),
  NGINX_STATUS_URL: statusUrlSchema.optional().or(z.literal('').transform(() => undefined)),
  TRAFFIC_METRICS: z.enum(['on', 'off']).default('on'),
  // How often the console's traffic history (traffic/history.ts) samples the counters; it keeps 90 samples.
  TRAFFIC_HISTORY_INTERVAL: timeSchema(1000, 600_000, '10s or 1m', '1s to 10m').default('10s'),
  API_HEADERS_TIMEOUT: apiTimeoutSchema.default('5s'),
  API_REQUEST_TIMEOUT: apiTimeoutSchema.default('10s'),
  API_MAX_CONNECTIONS: connectionCountSchema.default('1024'),
  API_MAX_CONNECTIONS_PER_CLIENT: connectionCountSchema.default('256'),
  API_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  API_ALLOWED_HOSTS: allowedHostsSchema.default(''),
  API_ALLOWED_ORIGINS: allowedOriginsSchema.default(''),
  API_TOKENS_FILE: z
    .string()
    .min(1)
    .transform((text) => path.resolve(text))
    .optional()
    .or(z.literal('').transform(() => undefined)),
  // stream-conductor's behaviour, on purpose: an API beyond loopback that anyone who reaches it may use.
  API_WITHOUT_TOKENS: z.enum(['allow', '']).default(''),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PORTICO_TEST_DELAY: testDelaySchema.optional(),
  // The one address of this node every stream without its own listenAddress, and the apps, listen on.
  LISTEN_ADDRESS: listenHostSchema.optional().or(z.literal('').transform(() => undefined)),
  ACME_DIRECTORY_URL: acmeDirectorySchema.default(LETS_ENCRYPT_DIRECTORY),
  ACME_EMAIL: acmeEmailSchema.optional(),
  ACME_RETRY_MIN: apiTimeoutSchema.default('1m'),
  ACME_CA_BUNDLE: dirSchema.optional(),
  ACME_EAB_KID: z.string().regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable characters without spaces (the key id your CA gave)').optional(),
  ACME_EAB_HMAC_KEY: z.string().regex(/^[A-Za-z0-9_-]{16,512}={0,2}$/, 'must be the base64url HMAC key your CA gave (16-512 characters)').optional(),
}).superRefine((e, ctx) => {
  // The apps' listeners are shared by every app; a stream allocated on one of them would fail to bind.
  for (const name of ['HTTP_PORT', 'HTTPS_PORT'] as const) {
    if (e[name] >= e.PORT_RANGE.from && e[name] <= e.PORT_RANGE.to) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: `must lie outside PORT_RANGE ${e.PORT_RANGE.from}-${e.PORT_RANGE.to}` });
    }
  }
  if (e.HTTP_PORT === e.HTTPS_PORT) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['HTTPS_PORT'], message: 'must differ from HTTP_PORT' });
  // The status listener is managed nginx's, on 127.0.0.1: no stream, app listener or the API may want its port.
  const status = e.NGINX_STATUS_PORT;
  if (e.NGINX_MODE === 'managed' && status !== undefined) {
    const off = 'or NGINX_STATUS_PORT=off for no status listener';
    if (status >= e.PORT_RANGE.from && status <= e.PORT_RANGE.to) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['NGINX_STATUS_PORT'], message: `${status} must lie outside PORT_RANGE ${e.PORT_RANGE.from}-${e.PORT_RANGE.to} (choose another port, ${off})` });
    }
    for (const name of ['HTTP_PORT', 'HTTPS_PORT', 'BIND_PORT'] as const) {
      if (e[name] === status) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['NGINX_STATUS_PORT'], message: `${status} must differ from ${name} (choose another port, ${off})` });
    }
  }
  if (e.NGINX_MODE === 'managed' && e.NGINX_STATUS_URL !== undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['NGINX_STATUS_URL'], message: 'is for external mode: managed mode renders its own status listener (NGINX_STATUS_PORT)' });
  }
  // node:http refuses a request timeout shorter than the time allowed for the headers alone.
  if (e.API_REQUEST_TIMEOUT < e.API_HEADERS_TIMEOUT) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['API_REQUEST_TIMEOUT'], message: 'must be at least API_HEADERS_TIMEOUT (the headers are part of the request)' });
  }
  // The README's rule, enforced: an API reachable from beyond this machine's loopback has tokens. In a
  // container, BIND_ADDRESS 0.0.0.0 makes it reachable from every container on the same Docker network
  // (any Host header passes a script's request), and through Docker before 28 from the LAN, whatever
  // address the port is published on.
  // API_WITHOUT_TOKENS=allow is the way out for a network where that is wanted (stream-conductor's
  // drop-in use on a private network): said out loud, never by default.
  if (!isLoopbackBindAddress(e.BIND_ADDRESS) && e.API_TOKEN === undefined && e.API_TOKENS_FILE === undefined && e.API_WITHOUT_TOKENS !== 'allow') {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['BIND_ADDRESS'],
      message: `${e.BIND_ADDRESS} is not a loopback address: whoever reaches the API could open any port, so set API_TOKEN (16 characters or more) or API_TOKENS_FILE, or keep BIND_ADDRESS on 127.0.0.1 (or, on a network where anyone may, API_WITHOUT_TOKENS=allow)`,
    });
  }
  if (e.API_MAX_CONNECTIONS_PER_CLIENT > e.API_MAX_CONNECTIONS) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['API_MAX_CONNECTIONS_PER_CLIENT'], message: 'must be at most API_MAX_CONNECTIONS' });
  }
});

/** True for the addresses only this machine reaches: localhost, 127.0.0.0/8, ::1 (and ::ffff:127.x). */
export function isLoopbackBindAddress(address: string): boolean {
  if (address === 'localhost') return true;
  if (isIPv4(address)) return address.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return (mapped[1] as string).startsWith('127.');
  return isBracketableIPv6(address) && ipv6Bits(address) === 1n;
}

/** Bounds on the API's own sockets, so that no client can hold it (API_HEADERS_TIMEOUT and the rest). */
export interface ApiLimits {
  /** A connection must have sent a request's headers within this long of its start (or of its last request). */
  headersTimeoutMs: number;
  /** ... and the whole request, body included, within this long. */
  requestTimeoutMs: number;
  /** Connections open at once; the next one is answered 503 and closed. */
  maxConnections: number;
  /** Connections open at once from one client (an IPv4 address, an IPv6 /64); the next one is answered 429 and closed. */
  maxConnectionsPerClient: number;
}

export interface Settings {
  portRange: PortRange;
  bindAddress: string;
  bindPort: number;
  /** The plain HTTP listener every app shares. */
  httpPort: number;
  /** The HTTPS listener (TCP) and HTTP/3 listener (UDP) every app shares. */
  httpsPort: number;
  mode: 'managed' | 'external';
  nginxBin: string;
  stateDir: string;
  streamDir: string;
  httpDir: string;
  /** Uploaded certificates and keys (`<id>.crt`, `<id>.key`): always `STATE_DIR/certs`. */
  certDir: string;
  streamPrefix: string;
  /** The main config nginx runs: rendered by Portico in managed mode, the operator's in external. */
  nginxConf: string;
  pidFile: string;
  /** nginx's error log, read after a reload to catch what `nginx -t` cannot see; undefined = unreadable. */
  errorLog: string | undefined;
  nginxTimeoutMs: number;
  /** How long a port handed out by getfreeport or /v1/ports/free stays reserved (0: not at all). */
  portReservationTtlMs: number;
  workerShutdownTimeout: string;
  /**
   * QUIC_BPF: whether managed mode's main config says `quic_bpf on` (nginx routes each QUIC packet to
   * the worker that owns its connection, also across reloads). `on`: it does, or start-up stops where
   * this host does not let nginx load its eBPF program; `off`: never; `auto` (the default): when a
   * probe at start-up shows the host lets it (apply/quic-bpf.ts). External mode ignores it: the main
   * config is the operator's.
   */
  quicBpf: 'auto' | 'on' | 'off';
  /**
   * Where /metrics reads nginx's stub_status. Managed mode: `port` is the loopback-only listener the
   * main config renders (NGINX_STATUS_PORT; undefined: none), and `url` is on it. External mode: `url`
   * is NGINX_STATUS_URL (undefined: no stub_status numbers), and there is no `port`.
   */
  nginxStatus: { port: number | undefined; url: string | undefined };
  /**
   * TRAFFIC_METRICS: per-resource traffic metrics (src/traffic/). `on` (the default): managed mode's
   * main config has nginx write a line per stream session and per HTTP request to
   * STATE_DIR/logs/traffic-{stream,http}.log (buffered), which Portico reads; external mode reads
   * those files when the operator's config writes them. `off`: no such log, no reader.
   */
  trafficMetrics: boolean;
  /** TRAFFIC_HISTORY_INTERVAL: how often the traffic history samples the counters (its window is 90 samples). */
  trafficHistoryIntervalMs: number;
  /**
   * What `nginx -t` reads before a reload (apply/applier.ts): `changed`, the new and changed files on
   * a throwaway config, the master's own parse at the reload being the whole-tree test; or `tree`, the
   * whole staged tree first (FULL_TREE_TEST=true, and always when the master's refusal cannot be
   * read: external mode without NGINX_ERROR_LOG).
   */
  testScope: 'changed' | 'tree';
  /** At most one reload per this many milliseconds (0: no bound); changes meanwhile join the next batch. */
  reloadMinIntervalMs: number;
  /** How long a graceful stop of managed nginx may take: the shutdown timeout and 5 s more. */
  stopTimeoutMs: number;
  /** API_TOKEN: a token of scope write, named "API_TOKEN" in logs. */
  apiToken: string | undefined;
  /** Names besides the loopback ones and BIND_ADDRESS that a request's Host may give the API (api/browser-guard.ts). */
  apiAllowedHosts: AllowedHost[];
  /** Web origins whose pages may call the API (with CORS), serialized as browsers send them. */
  apiAllowedOrigins: string[];
  apiLimits: ApiLimits;
  /** API_TOKENS_FILE: named tokens with scopes, as `name scope sha256` lines (api/tokens-file.ts); re-read on SIGHUP. */
  apiTokensFile: string | undefined;
  logLevel: string;
  /** PORTICO_TEST_DELAY, for tests only (crash tests kill Portico inside a phase); undefined otherwise. */
  testDelay: TestDelay | undefined;
  /** The folder of HTTP-01 challenge answers nginx serves on HTTP_PORT: STATE_DIR/acme-challenge. */
  acmeChallengeDir: string;
  acme: AcmeSettings;
  /**
   * LISTEN_ADDRESS: the address every stream without its own `listenAddress`, and the apps' shared
   * listeners, bind on this node (several edges on one host, one address each); undefined: all.
   */
  listenAddress: string | undefined;
  /** STORE=etcd: the fleet this node belongs to (src/fleet/); undefined with the file store (the default). */
  fleet: FleetSettings | undefined;
}

/** How Portico talks to its ACME CA (src/acme/). */
export interface AcmeSettings {
  directoryUrl: string;
  email: string | undefined;
  /** ACME_CA_BUNDLE: a PEM file of CAs to trust for the ACME server's HTTPS (a private or test CA). */
  caBundle: string | undefined;
  /** External account binding (RFC 8555 7.3.4), when the CA wants one. The HMAC key is a secret: never logged. */
  eab: { kid: string; hmacKey: string } | undefined;
  /** The account key and the state of each managed certificate: STATE_DIR/acme (0700). */
  stateDir: string;
  /** ACME_RETRY_MIN: the first retry after a failed order (then doubling, up to 6 hours). */
  retryMinMs: number;
  /** DNS-01 by RFC 2136 (ACME_DNS_SERVER and the TSIG key), or undefined: no DNS-01. The secret never prints. */
  dns: AcmeDnsSettings | undefined;
}

const TIME_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** An nginx time (`30s`, `500ms`, a bare number is seconds) in milliseconds. */
export function nginxTimeMs(time: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(time);
  return Number(match?.[1] ?? 0) * (TIME_UNITS_MS[match?.[2] ?? 's'] ?? 1000);
}

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

/**
 * Parses the environment. Managed mode keeps everything under STATE_DIR; external mode defaults to
 * the paths of a stock nginx image (/etc/nginx, /run/nginx.pid).
 */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new SettingsError(`invalid settings: ${lines.join('; ')}`);
  }
  const e = parsed.data;
  const dns = acmeDnsSettingsSchema.safeParse(env);
  if (!dns.success) throw new SettingsError(`invalid settings: ${dns.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
  if ((e.ACME_EAB_KID === undefined) !== (e.ACME_EAB_HMAC_KEY === undefined)) {
    throw new SettingsError(`invalid settings: ${e.ACME_EAB_KID === undefined ? 'ACME_EAB_KID' : 'ACME_EAB_HMAC_KEY'}: is required with ${e.ACME_EAB_KID === undefined ? 'ACME_EAB_HMAC_KEY' : 'ACME_EAB_KID'} (external account binding takes both)`);
  }
  let fleet: FleetSettings | undefined;
  try {
    fleet = loadFleetSettings(env);
  } catch (error) {
    throw new SettingsError((error as Error).message);
  }
  if (fleet !== undefined && fleet.wait !== 'none' && fleet.waitTimeoutMs >= e.API_REQUEST_TIMEOUT) {
    throw new SettingsError(`invalid settings: FLEET_WAIT_TIMEOUT: must be shorter than API_REQUEST_TIMEOUT (${e.API_REQUEST_TIMEOUT} ms), which would cut the answer off first`);
  }
  const managed = e.NGINX_MODE === 'managed';
  const state = e.STATE_DIR;
  return {
    portRange: e.PORT_RANGE,
    bindAddress: e.BIND_ADDRESS,
    bindPort: e.BIND_PORT,
    httpPort: e.HTTP_PORT,
    httpsPort: e.HTTPS_PORT,
    mode: e.NGINX_MODE,
    nginxBin: e.NGINX_BIN,
    stateDir: state,
    streamDir: e.STREAM_CONFIG_PATH ?? (managed ? `${state}/stream.d` : '/etc/nginx/stream.d'),
    httpDir: e.HTTP_CONFIG_PATH ?? (managed ? `${state}/http.d` : '/etc/nginx/conf.d'),
    certDir: `${state}/certs`,
    streamPrefix: e.STREAM_PREFIX,
    nginxConf: e.NGINX_CONF ?? (managed ? `${state}/nginx.conf` : '/etc/nginx/nginx.conf'),
    pidFile: e.NGINX_PID_FILE ?? (managed ? `${state}/nginx.pid` : '/run/nginx.pid'),
    errorLog: e.NGINX_ERROR_LOG ?? (managed ? `${state}/logs/error.log` : undefined),
    nginxTimeoutMs: e.NGINX_TIMEOUT_MS,
    portReservationTtlMs: nginxTimeMs(e.PORT_RESERVATION_TTL),
    workerShutdownTimeout: e.WORKER_SHUTDOWN_TIMEOUT,
    quicBpf: e.QUIC_BPF,
    nginxStatus: managed
      ? { port: e.NGINX_STATUS_PORT, url: e.NGINX_STATUS_PORT === undefined ? undefined : `http://127.0.0.1:${e.NGINX_STATUS_PORT}${NGINX_STATUS_PATH}` }
      : { port: undefined, url: e.NGINX_STATUS_URL },
    trafficMetrics: e.TRAFFIC_METRICS === 'on',
    trafficHistoryIntervalMs: e.TRAFFIC_HISTORY_INTERVAL,
    reloadMinIntervalMs: nginxTimeMs(e.RELOAD_MIN_INTERVAL),
    testScope: e.FULL_TREE_TEST === 'true' || (!managed && e.NGINX_ERROR_LOG === undefined) ? 'tree' : 'changed',
    stopTimeoutMs: nginxTimeMs(e.WORKER_SHUTDOWN_TIMEOUT) + 5000,
    apiToken: e.API_TOKEN,
    apiAllowedHosts: e.API_ALLOWED_HOSTS,
    apiAllowedOrigins: e.API_ALLOWED_ORIGINS,
    apiLimits: {
      headersTimeoutMs: e.API_HEADERS_TIMEOUT,
      requestTimeoutMs: e.API_REQUEST_TIMEOUT,
      maxConnections: e.API_MAX_CONNECTIONS,
      maxConnectionsPerClient: e.API_MAX_CONNECTIONS_PER_CLIENT,
    },
    apiTokensFile: e.API_TOKENS_FILE,
    logLevel: e.LOG_LEVEL,
    testDelay: e.PORTICO_TEST_DELAY,
    acmeChallengeDir: `${state}/acme-challenge`,
    acme: {
      directoryUrl: e.ACME_DIRECTORY_URL,
      email: e.ACME_EMAIL,
      caBundle: e.ACME_CA_BUNDLE,
      eab: e.ACME_EAB_KID === undefined || e.ACME_EAB_HMAC_KEY === undefined ? undefined : { kid: e.ACME_EAB_KID, hmacKey: e.ACME_EAB_HMAC_KEY },
      stateDir: `${state}/acme`,
      retryMinMs: e.ACME_RETRY_MIN,
      dns: dns.data,
    },
    listenAddress: e.LISTEN_ADDRESS,
    fleet,
  };
}
