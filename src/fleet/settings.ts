/**
 * The fleet's settings (issue 16): STORE=etcd and what it needs. Parsed from the environment by one
 * zod schema, as settings.ts does the rest; a bad value names the variable and the rule, never a
 * secret's value (FLEET_SECRET, ETCD_PASSWORD).
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_FLEET_PREFIX, fleetPrefixSchema, nodeNameSchema } from './keys.js';
import { fleetSecretSchema } from './secret.js';

/** How long a change's answer waits, and for whom (FLEET_WAIT). */
export type FleetWait = 'all' | 'quorum' | 'local' | 'none';

export interface FleetSettings {
  /** ETCD_ENDPOINTS: the etcd members' client URLs, http:// or https://. */
  endpoints: string[];
  prefix: string;
  node: string;
  /** FLEET_SECRET: the key the private keys in etcd are sealed with (secret.ts). Never printed. */
  secret: string;
  wait: FleetWait;
  waitTimeoutMs: number;
  /** ETCD_USERNAME and ETCD_PASSWORD, when etcd has authentication on. */
  auth: { username: string; password: string } | undefined;
  /** ETCD_CA_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE: etcd over TLS (and its client certificate). */
  tls: { caFile: string | undefined; certFile: string | undefined; keyFile: string | undefined } | undefined;
  /** How long one etcd request may take before the API answers 503 (ETCD_TIMEOUT). */
  timeoutMs: number;
}

const msSchema = (low: number, high: number, example: string) =>
  z
    .string()
    .regex(/^\d{1,7}(ms|s)$/, `must be a time such as ${example} (ms or s)`)
    .transform((text) => (text.endsWith('ms') ? Number(text.slice(0, -2)) : Number(text.slice(0, -1)) * 1000))
    .refine((ms) => ms >= low && ms <= high, `must be from ${low}ms to ${high / 1000}s`);

const endpointsSchema = z
  .string()
  .min(1, 'is required with STORE=etcd: the etcd members, such as http://10.0.0.1:2379,http://10.0.0.2:2379')
  .transform((text) => text.split(',').map((s) => s.trim()).filter((s) => s !== ''))
  .superRefine((urls, ctx) => {
    if (urls.length === 0 || urls.length > 16) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must name 1 to 16 etcd members' });
    for (const url of urls) {
      // Checked first, and never echoed: what precedes an "@" may be a password.
      if (url.includes('@')) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not carry a user or password: set ETCD_USERNAME and ETCD_PASSWORD' });
        continue;
      }
      const parsed = URL.canParse(url) ? new URL(url) : undefined;
      if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' || parsed.port === '') {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `"${url.slice(0, 80)}" is not an etcd client URL such as http://127.0.0.1:2379 (scheme, host and port only)` });
      }
    }
  });

const fileSchema = z.string().min(1).transform((text) => path.resolve(text));

const fleetEnvSchema = z
  .object({
    STORE: z.enum(['file', 'etcd']).default('file'),
    ETCD_ENDPOINTS: z.string().optional(),
    FLEET_PREFIX: fleetPrefixSchema.default(DEFAULT_FLEET_PREFIX),
    NODE_NAME: z.string().optional(),
    FLEET_SECRET: z.string().optional(),
    FLEET_WAIT: z.enum(['all', 'quorum', 'local', 'none']).default('all'),
    FLEET_WAIT_TIMEOUT: msSchema(100, 600_000, '5s or 1500ms').default('5s'),
    ETCD_TIMEOUT: msSchema(100, 60_000, '3s or 500ms').default('3s'),
    ETCD_USERNAME: z.string().max(256).optional(),
    ETCD_PASSWORD: z.string().max(1024).optional(),
    ETCD_CA_FILE: fileSchema.optional(),
    ETCD_CERT_FILE: fileSchema.optional(),
    ETCD_KEY_FILE: fileSchema.optional(),
  })
  .passthrough();

/** A default NODE_NAME from the host's name, when it is one label as NODE_NAME must be. */
function defaultNodeName(): string | undefined {
  const label = hostname().toLowerCase().split('.')[0] ?? '';
  return nodeNameSchema.safeParse(label).success ? label : undefined;
}

/** The fleet's settings, or undefined with STORE=file (the default); throws naming each bad variable. */
export function loadFleetSettings(env: NodeJS.ProcessEnv): FleetSettings | undefined {
  const parsed = fleetEnvSchema.safeParse(env);
  const problems: string[] = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  if (!parsed.success) throw new Error(`invalid settings: ${problems.join('; ')}`);
  const e = parsed.data;
  if (e.STORE === 'file') {
    const stray = (['ETCD_ENDPOINTS', 'FLEET_SECRET'] as const).filter((name) => (e[name] ?? '') !== '');
    if (stray.length > 0) throw new Error(`invalid settings: ${stray.join(', ')}: ${stray.length > 1 ? 'are' : 'is'} for STORE=etcd (the fleet); set STORE=etcd or unset ${stray.length > 1 ? 'them' : 'it'}`);
    return undefined;
  }
  const check = <T>(name: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown): T | undefined => {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    problems.push(`${name}: ${result.error.issues[0]?.message ?? 'is invalid'}`);
    return undefined;
  };
  const endpoints = check('ETCD_ENDPOINTS', endpointsSchema, e.ETCD_ENDPOINTS ?? '');
  const nodeText = e.NODE_NAME ?? defaultNodeName();
  if (nodeText === undefined) problems.push('NODE_NAME: is required with STORE=etcd (this host\'s name is not one DNS label): a name unique in the fleet, such as edge-1');
  const node = nodeText === undefined ? undefined : check('NODE_NAME', nodeNameSchema, nodeText);
  if (e.FLEET_SECRET === undefined) problems.push('FLEET_SECRET: is required with STORE=etcd: the same secret on every node, at least 32 characters (openssl rand -base64 32)');
  const secret = e.FLEET_SECRET === undefined ? undefined : check('FLEET_SECRET', fleetSecretSchema, e.FLEET_SECRET);
  if ((e.ETCD_USERNAME === undefined) !== (e.ETCD_PASSWORD === undefined)) problems.push(`${e.ETCD_USERNAME === undefined ? 'ETCD_USERNAME' : 'ETCD_PASSWORD'}: is required with ${e.ETCD_USERNAME === undefined ? 'ETCD_PASSWORD' : 'ETCD_USERNAME'}`);
  if ((e.ETCD_CERT_FILE === undefined) !== (e.ETCD_KEY_FILE === undefined)) problems.push(`${e.ETCD_CERT_FILE === undefined ? 'ETCD_CERT_FILE' : 'ETCD_KEY_FILE'}: is required with ${e.ETCD_CERT_FILE === undefined ? 'ETCD_KEY_FILE' : 'ETCD_CERT_FILE'}`);
  const tlsWanted = e.ETCD_CA_FILE !== undefined || e.ETCD_CERT_FILE !== undefined;
  if (endpoints !== undefined && tlsWanted && endpoints.some((url) => url.startsWith('http:'))) problems.push('ETCD_ENDPOINTS: must be https:// URLs when ETCD_CA_FILE or ETCD_CERT_FILE is set');
  if (problems.length > 0 || endpoints === undefined || node === undefined || secret === undefined) throw new Error(`invalid settings: ${problems.join('; ')}`);
  return {
    endpoints,
    prefix: e.FLEET_PREFIX,
    node,
    secret,
    wait: e.FLEET_WAIT,
    waitTimeoutMs: e.FLEET_WAIT_TIMEOUT,
    timeoutMs: e.ETCD_TIMEOUT,
    auth: e.ETCD_USERNAME === undefined || e.ETCD_PASSWORD === undefined ? undefined : { username: e.ETCD_USERNAME, password: e.ETCD_PASSWORD },
    tls: tlsWanted || endpoints.some((url) => url.startsWith('https:')) ? { caFile: e.ETCD_CA_FILE, certFile: e.ETCD_CERT_FILE, keyFile: e.ETCD_KEY_FILE } : undefined,
  };
}

/** The settings as logs and /v1/fleet may show them: no secret, no password. */
export function describeFleetSettings(fleet: FleetSettings): Record<string, unknown> {
  return { endpoints: fleet.endpoints, prefix: fleet.prefix, node: fleet.node, wait: fleet.wait, waitTimeoutMs: fleet.waitTimeoutMs, auth: fleet.auth !== undefined, tls: fleet.tls !== undefined };
}
