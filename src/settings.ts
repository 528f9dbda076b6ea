/**
 * Settings: the environment, parsed once by one zod schema into typed, validated values.
 * stream-conductor's variable names are kept; a bad value stops start-up with a message naming the
 * variable and the rule.
 */
import path from 'node:path';
import { z } from 'zod';
import { PATH_PATTERN, TIME_PATTERN, isBracketableIPv6, isIPv4, isPortText } from './model/net.js';

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

const portSettingSchema = z.string().refine(isPortText, 'must be a port from 1 to 65535').transform(Number);

const dirSchema = z
  .string()
  .min(1, 'must not be empty')
  .transform((text) => path.resolve(text).replace(/\/+$/, '') || '/')
  .refine(
    (resolved) => PATH_PATTERN.test(resolved),
    'must be a path of letters, digits and _ . / + @ = , - only (it is written into nginx config)',
  );

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
  NGINX_TIMEOUT_MS: z.string().regex(/^\d{1,6}$/, 'must be milliseconds').default('10000').transform(Number),
  RELOAD_MIN_INTERVAL: z.string().regex(TIME_PATTERN, 'must be an nginx time such as 0, 500ms or 5s').default('0'),
  WORKER_SHUTDOWN_TIMEOUT: z
    .string()
    .regex(TIME_PATTERN, 'must be an nginx time such as 30s or 5m')
    .default('30s'),
  API_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  API_TOKENS_FILE: z
    .string()
    .min(1)
    .transform((text) => path.resolve(text))
    .optional()
    .or(z.literal('').transform(() => undefined)),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PORTICO_TEST_DELAY: testDelaySchema.optional(),
}).superRefine((e, ctx) => {
  // The apps' listeners are shared by every app; a stream allocated on one of them would fail to bind.
  for (const name of ['HTTP_PORT', 'HTTPS_PORT'] as const) {
    if (e[name] >= e.PORT_RANGE.from && e[name] <= e.PORT_RANGE.to) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: `must lie outside PORT_RANGE ${e.PORT_RANGE.from}-${e.PORT_RANGE.to}` });
    }
  }
  if (e.HTTP_PORT === e.HTTPS_PORT) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['HTTPS_PORT'], message: 'must differ from HTTP_PORT' });
});

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
  workerShutdownTimeout: string;
  /** At most one reload per this many milliseconds (0: no bound); changes meanwhile join the next batch. */
  reloadMinIntervalMs: number;
  /** How long a graceful stop of managed nginx may take: the shutdown timeout and 5 s more. */
  stopTimeoutMs: number;
  /** API_TOKEN: a token of scope write, named "API_TOKEN" in logs. */
  apiToken: string | undefined;
  /** API_TOKENS_FILE: named tokens with scopes, as `name scope sha256` lines (api/tokens-file.ts); re-read on SIGHUP. */
  apiTokensFile: string | undefined;
  logLevel: string;
  /** PORTICO_TEST_DELAY, for tests only (crash tests kill Portico inside a phase); undefined otherwise. */
  testDelay: TestDelay | undefined;
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
    workerShutdownTimeout: e.WORKER_SHUTDOWN_TIMEOUT,
    reloadMinIntervalMs: nginxTimeMs(e.RELOAD_MIN_INTERVAL),
    stopTimeoutMs: nginxTimeMs(e.WORKER_SHUTDOWN_TIMEOUT) + 5000,
    apiToken: e.API_TOKEN,
    apiTokensFile: e.API_TOKENS_FILE,
    logLevel: e.LOG_LEVEL,
    testDelay: e.PORTICO_TEST_DELAY,
  };
}
