/**
 * The stream resource: a port on the nginx edge whose TCP and/or UDP traffic is proxied to upstreams,
 * balanced, filtered, routed by TLS server name, with TLS terminated or originated.
 *
 * `streamInputSchema` is the only parser of outside input for streams; what passes it is a `Stream`,
 * trusted by every layer below the API. The same rules (`checkStream`) hold for a stream read back
 * from its file, so a hand edit cannot smuggle in what the API would refuse.
 */
import { z } from 'zod';
import { certificateIdSchema } from './certificate.js';
import {
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  addressSchema,
  cidrSchema,
  durationSchema,
  hostnameSchema,
  listenHostSchema,
  portSchema,
  serverNameSchema,
} from './net.js';

/** How many upstreams one group may have (nginx has no limit; this bounds the file we write). */
export const MAX_UPSTREAMS = 64;
/** How many SNI routes, access rules or labels one stream may have. */
export const MAX_ROUTES = 64;
export const MAX_RULES = 64;
export const MAX_LABELS = 64;

const int = (min: number, max: number) => {
  const rule = `must be an integer from ${min} to ${max}`;
  return z.number({ invalid_type_error: rule }).int(rule).min(min, rule).max(max, rule);
};

export const upstreamSchema = z
  .object({
    address: addressSchema,
    weight: int(1, 1000).optional(),
    maxFails: int(0, 100).optional(),
    failTimeout: durationSchema.optional(),
    backup: z.boolean({ invalid_type_error: 'must be true or false' }).optional(),
  })
  .strict();
export type Upstream = z.infer<typeof upstreamSchema>;

const upstreamsSchema = z
  .array(upstreamSchema, { invalid_type_error: 'must be an array of {"address": "host:port", ...}' })
  .min(1, 'must hold at least one upstream')
  .max(MAX_UPSTREAMS, `must hold at most ${MAX_UPSTREAMS} upstreams`);

export const PROTOCOLS = ['tcp', 'udp', 'tcp+udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const BALANCES = ['round_robin', 'least_conn', 'hash_remote_addr', 'random'] as const;
export type Balance = (typeof BALANCES)[number];

const enumOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { errorMap: () => ({ message: `must be one of ${values.map((v) => `"${v}"`).join(', ')}` }) });

const rulesSchema = z
  .array(cidrSchema, { invalid_type_error: 'must be an array of addresses or networks' })
  .min(1, 'must hold at least one rule (leave the field out for none)')
  .max(MAX_RULES, `must hold at most ${MAX_RULES} rules`);

export const sniRouteSchema = z.object({ serverName: serverNameSchema, upstreams: upstreamsSchema }).strict();
export type SniRoute = z.infer<typeof sniRouteSchema>;

export const sniSchema = z
  .object({
    routes: z
      .array(sniRouteSchema, { invalid_type_error: 'must be an array of {"serverName", "upstreams"}' })
      .min(1, 'must hold at least one route')
      .max(MAX_ROUTES, `must hold at most ${MAX_ROUTES} routes`),
    default: upstreamsSchema.optional(),
  })
  .strict();
export type Sni = z.infer<typeof sniSchema>;

export const labelsSchema = z
  .record(
    z
      .string()
      .regex(LABEL_KEY_PATTERN, 'label names must be 1-63 characters of a-z, 0-9, "_", "." and "-"')
      // JavaScript objects cannot hold this name as a plain field: it would be dropped, not stored.
      .refine((key) => key !== '__proto__', 'label names may not be "__proto__"'),
    z
      .string({ invalid_type_error: 'must be a string' })
      .regex(LABEL_VALUE_PATTERN, 'label values must be 0-255 characters of A-Z, a-z, 0-9 and _ . : / @ -'),
  )
  .refine((labels) => Object.keys(labels).length <= MAX_LABELS, `must hold at most ${MAX_LABELS} labels`);

/** Every field of a stream but its port, in the order the API answers them. */
const settingsShape = {
  protocol: enumOf(PROTOCOLS).optional(),
  listenAddress: listenHostSchema.optional(),
  upstreams: upstreamsSchema.optional(),
  balance: enumOf(BALANCES).optional(),
  connectTimeout: durationSchema.optional(),
  idleTimeout: durationSchema.optional(),
  allow: rulesSchema.optional(),
  deny: rulesSchema.optional(),
  proxyProtocol: z.boolean({ invalid_type_error: 'must be true or false' }).optional(),
  tls: z.object({ certificate: certificateIdSchema }).strict().optional(),
  upstreamTls: z
    .object({
      serverName: hostnameSchema.optional(),
      verify: z.boolean({ invalid_type_error: 'must be true or false' }).optional(),
      trustedCertificate: certificateIdSchema.optional(),
    })
    .strict()
    .optional(),
  sni: sniSchema.optional(),
  labels: labelsSchema.optional(),
};

type Issue = { path: (string | number)[]; message: string };

/** The rules that span fields; the same for input and for a stream read back from its file. */
export function streamIssues(stream: z.infer<z.ZodObject<typeof settingsShape>>): Issue[] {
  const issues: Issue[] = [];
  const tcpOnly = stream.protocol === 'udp' || stream.protocol === 'tcp+udp';
  if (tcpOnly) {
    const reason = `requires "protocol": "tcp" (nginx does this on TCP only)`;
    for (const field of ['tls', 'upstreamTls', 'sni', 'proxyProtocol'] as const) {
      if (stream[field] !== undefined && stream[field] !== false) issues.push({ path: [field], message: reason });
    }
  }
  if (stream.sni !== undefined && stream.tls !== undefined) {
    issues.push({ path: ['sni'], message: 'routes by server name without terminating TLS: it cannot be combined with "tls"' });
  }
  if (stream.sni !== undefined && stream.upstreamTls !== undefined) {
    issues.push({ path: ['upstreamTls'], message: 'cannot be combined with "sni": the client\'s TLS is passed through as it is' });
  }
  if (stream.upstreamTls?.verify === true) {
    // Without a name nginx checks the certificate against proxy_pass's host: an upstream group's name.
    if (stream.upstreamTls.serverName === undefined) {
      issues.push({ path: ['upstreamTls', 'serverName'], message: 'is required when "verify" is true (the name the certificate must carry)' });
    }
    if (stream.upstreamTls.trustedCertificate === undefined) {
      issues.push({ path: ['upstreamTls', 'trustedCertificate'], message: 'is required when "verify" is true (the CA to verify against)' });
    }
  }
  const groups: Array<[(string | number)[], Upstream[]]> = [];
  if (stream.upstreams !== undefined) groups.push([['upstreams'], stream.upstreams]);
  stream.sni?.routes.forEach((route, i) => groups.push([['sni', 'routes', i, 'upstreams'], route.upstreams]));
  if (stream.sni?.default !== undefined) groups.push([['sni', 'default'], stream.sni.default]);
  const hashing = stream.balance === 'hash_remote_addr' || stream.balance === 'random';
  for (const [path, upstreams] of groups) {
    upstreams.forEach((u, i) => {
      if (u.backup === true && hashing) {
        issues.push({ path: [...path, i, 'backup'], message: `cannot be used with "balance": "${stream.balance}" (nginx refuses backup servers there)` });
      }
    });
    if (upstreams.every((u) => u.backup === true)) issues.push({ path, message: 'must hold at least one upstream that is not a backup' });
  }
  const names = new Set<string>();
  stream.sni?.routes.forEach((route, i) => {
    if (names.has(route.serverName)) issues.push({ path: ['sni', 'routes', i, 'serverName'], message: `"${route.serverName}" is routed twice` });
    names.add(route.serverName);
  });
  return issues;
}

function refineStream(stream: Parameters<typeof streamIssues>[0], ctx: z.RefinementCtx): void {
  for (const issue of streamIssues(stream)) ctx.addIssue({ code: z.ZodIssueCode.custom, ...issue });
}

function requireOneTarget(
  stream: { upstreams?: unknown; sni?: unknown; backend?: unknown },
  ctx: z.RefinementCtx,
  allowBackend: boolean,
): void {
  const targets = (['upstreams', 'sni', ...(allowBackend ? ['backend'] : [])] as const).filter(
    (field) => stream[field as keyof typeof stream] !== undefined,
  );
  const names = allowBackend ? '"upstreams", "backend" or "sni"' : '"upstreams" or "sni"';
  if (targets.length === 0) {
    const message = allowBackend ? 'is required (or "backend", or "sni")' : 'is required (or "sni")';
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['upstreams'], message });
  }
  if (targets.length > 1) {
    const message = `cannot be given together with "${targets[0]}": give one of ${names}`;
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: [targets[1] as string], message });
  }
}

export const streamSchema = z
  .object({ port: portSchema, ...settingsShape })
  .strict()
  .superRefine((stream, ctx) => {
    requireOneTarget(stream, ctx, false);
    refineStream(stream, ctx);
  });
/** A stream as stored: every field the caller gave, exactly as given. */
export type Stream = z.infer<typeof streamSchema>;

/**
 * A stream as a caller may write it: `port` may be left for Portico to allocate, and `backend:
 * "host:port"` is shorthand for one upstream. Exactly one of `upstreams`, `backend` and `sni`.
 */
export const streamInputSchema = z
  .object({
    port: portSchema.optional(),
    ...settingsShape,
    backend: addressSchema.optional(),
  })
  .strict()
  .superRefine((input, ctx) => {
    requireOneTarget(input, ctx, true);
    refineStream(input, ctx);
  });
export type StreamInput = z.infer<typeof streamInputSchema>;

/** A stream's content without its port: what a caller asks for before a port is allocated. */
export type StreamSpec = Omit<Stream, 'port'>;

/** Turns validated input into the stored form (`backend` becomes the one upstream). */
export function specFromInput(input: StreamInput): StreamSpec {
  const { port: _port, backend, ...spec } = input;
  return backend === undefined ? spec : { ...spec, upstreams: [{ address: backend }] };
}

/** The certificates a stream refers to, with the field that names each. */
export function certificateRefs(stream: StreamSpec): Array<{ id: string; field: string; needsKey: boolean }> {
  const refs: Array<{ id: string; field: string; needsKey: boolean }> = [];
  if (stream.tls !== undefined) refs.push({ id: stream.tls.certificate, field: 'tls.certificate', needsKey: true });
  const ca = stream.upstreamTls?.trustedCertificate;
  if (ca !== undefined) refs.push({ id: ca, field: 'upstreamTls.trustedCertificate', needsKey: false });
  return refs;
}

/** Name of the nginx upstream group of a stream's `upstreams`. */
export function upstreamGroupName(port: number): string {
  return `portico_stream_${port}`;
}

/** Name of the upstream group of SNI route `index` (or of the default route). */
export function sniGroupName(port: number, index: number | 'default'): string {
  return `portico_stream_${port}_sni_${index}`;
}

/** Name of the variable the SNI map of a stream sets. */
export function sniVariableName(port: number): string {
  return `portico_sni_${port}`;
}

/** True when the stream listens on UDP (alone or beside TCP). */
export function listensUdp(stream: Pick<Stream, 'protocol'>): boolean {
  return stream.protocol === 'udp' || stream.protocol === 'tcp+udp';
}

/** True when the stream listens on TCP. */
export function listensTcp(stream: Pick<Stream, 'protocol'>): boolean {
  return stream.protocol !== 'udp';
}

/** Where the files of a stream find their certificates. */
export interface StreamFileOptions {
  /** `<certDir>/<id>.crt` holds a certificate (chain), `<certDir>/<id>.key` its key. */
  certDir: string;
  /**
   * LISTEN_ADDRESS: what a stream without its own `listenAddress` (and an app) listens on; undefined:
   * every address. A stream file records it as `listenAddress=node` among its defaults.
   */
  listenAddress?: string | undefined;
}

export function certificatePath(options: StreamFileOptions, id: string): string {
  return `${options.certDir}/${id}.crt`;
}

export function keyPath(options: StreamFileOptions, id: string): string {
  return `${options.certDir}/${id}.key`;
}
