/**
 * What Portico knows of each managed certificate between restarts: the names and challenge it was
 * asked for, where its orders stand, and when it renews. One JSON file per certificate,
 * `STATE_DIR/acme/certificates/<id>.json`, replaced atomically; the folder is 0700 like the
 * certificates' (the account key lives beside it). The certificate and key themselves are in the
 * CertStore like any uploaded pair: this is only the ACME side.
 *
 * A file that does not read as one of these is reported and left alone, never half used.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { z } from 'zod';
import { CERT_ID_PATTERN } from '../model/certificate.js';
import { serverNameSchema } from '../model/net.js';
import { replaceAtomically, syncDir } from '../store/fsync.js';

/** Let's Encrypt's limit of names on one certificate. */
export const MAX_ACME_NAMES = 100;

export const ACME_STATUSES = ['pending', 'valid', 'renewing', 'failed'] as const;
export type AcmeStatus = (typeof ACME_STATUSES)[number];

/** What a caller asks for: the names and how to prove them. Also the API's `acme` object. */
export const acmeRequestSchema = z
  .object({
    names: z
      .array(serverNameSchema, { required_error: 'is required (the DNS names to certify)', invalid_type_error: 'must be an array of DNS names' })
      .min(1, 'must hold at least one name')
      .max(MAX_ACME_NAMES, `must hold at most ${MAX_ACME_NAMES} names (the CA's limit)`),
    challenge: z.enum(['http-01', 'dns-01'], { errorMap: () => ({ message: 'must be "http-01" or "dns-01"' }) }).default('http-01'),
  })
  .strict()
  .superRefine((request, ctx) => {
    const seen = new Set<string>();
    request.names.forEach((name, i) => {
      if (seen.has(name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['names', i], message: `"${name}" is given twice` });
      seen.add(name);
      if (name.startsWith('*.') && request.challenge !== 'dns-01') {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['names', i], message: `"${name}" is a wildcard: a CA proves those by DNS only, set "challenge": "dns-01"` });
      }
    });
  });
export type AcmeRequest = z.infer<typeof acmeRequestSchema>;

const isoOrNull = z.string().datetime().nullable();

/** One certificate's ACME state, as stored and (its public part) as answered. */
export const acmeRecordSchema = z
  .object({
    id: z.string().regex(CERT_ID_PATTERN),
    names: z.array(serverNameSchema).min(1).max(MAX_ACME_NAMES),
    challenge: z.enum(['http-01', 'dns-01']),
    status: z.enum(ACME_STATUSES),
    /** When the last order started. */
    lastAttempt: isoOrNull,
    /** The last failure: the step and the CA's own words; null after a success. */
    lastError: z.string().nullable(),
    /** When Portico orders next: the renewal, or the retry after a failure. */
    nextRenewal: isoOrNull,
    /** The issuer of the certificate served, once the CA issued one. */
    issuer: z.string().nullable(),
    /** Failures in a row (the retry's backoff); 0 after a success. */
    failures: z.number().int().min(0),
    /** The app whose `tls.acme` made it, if one did (the app's deletion deletes it). */
    app: z.string().optional(),
  })
  .strict();
export type AcmeRecord = z.infer<typeof acmeRecordSchema>;

/** What the API answers of a record (`acme` of a certificate): the backoff count and the owning app aside. */
export const acmeViewSchema = acmeRecordSchema
  .pick({ status: true, names: true, challenge: true, lastAttempt: true, lastError: true, nextRenewal: true, issuer: true })
  .describe('Where the certificate stands with its ACME CA: pending (the placeholder serves until the first issue), valid, renewing, or failed (lastError holds the step and the CA\'s words; the certificate served is unchanged, and Portico retries at nextRenewal)');
export type AcmeView = z.infer<typeof acmeViewSchema>;

export function acmeView(record: AcmeRecord): AcmeView {
  const { status, names, challenge, lastAttempt, lastError, nextRenewal, issuer } = record;
  return { status, names, challenge, lastAttempt, lastError, nextRenewal, issuer };
}

/** A managed certificate as a caller creates it: an id (or one is made from the first name) and what to ask the CA for. */
export const acmeCertificateInputSchema = z
  .object({
    id: z.string().regex(CERT_ID_PATTERN, 'must be 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit').optional(),
    acme: acmeRequestSchema,
  })
  .strict();

/** The id of a managed certificate created without one: its first name, "*" as "wildcard" and "." as "-", cut to 63 characters. */
export function acmeIdFor(names: string[]): string {
  const first = (names[0] ?? 'acme').replace(/^\*\./, 'wildcard.').replace(/\./g, '-');
  return first.slice(0, 63).replace(/[-_]+$/, '');
}

export class AcmeState {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = `${stateDir}/certificates`;
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(id: string): string {
    if (!CERT_ID_PATTERN.test(id)) throw new Error(`"${id}" is not a certificate id`);
    return `${this.dir}/${id}.json`;
  }

  /** Every record that reads, and the files that do not (name and why). */
  async list(): Promise<{ records: AcmeRecord[]; unreadable: Array<{ file: string; reason: string }> }> {
    const records: AcmeRecord[] = [];
    const unreadable: Array<{ file: string; reason: string }> = [];
    const names = await readdir(this.dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    for (const name of names.sort()) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const read = await this.read(name.slice(0, -'.json'.length)).catch((error: unknown) => ({ reason: (error as Error).message }));
      if (read === undefined) continue;
      if ('reason' in read) unreadable.push({ file: `${this.dir}/${name}`, reason: read.reason });
      else records.push(read);
    }
    return { records, unreadable };
  }

  async get(id: string): Promise<AcmeRecord | undefined> {
    return this.read(id);
  }

  private async read(id: string): Promise<AcmeRecord | undefined> {
    const text = await readFile(this.file(id), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (text === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error('not JSON');
    }
    const parsed = acmeRecordSchema.safeParse(json);
    if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    if (parsed.data.id !== id) throw new Error(`holds certificate "${parsed.data.id}"`);
    return parsed.data;
  }

  async put(record: AcmeRecord): Promise<void> {
    await replaceAtomically(this.file(record.id), `${JSON.stringify(acmeRecordSchema.parse(record), null, 2)}\n`, 0o600);
  }

  async remove(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
    await syncDir(this.dir);
  }
}
