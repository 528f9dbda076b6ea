/**
 * The certificate resource: a PEM certificate chain, optionally with its private key, that nginx
 * serves for TLS.
 *
 * `certificateInputSchema` checks the shape of outside input; `inspectCertificate` then checks the
 * content (PEM blocks only, a chain in order, a leaf valid now, a key that matches, nothing nginx's
 * OpenSSL refuses: see `certificate-strength.ts`) and answers the normalised PEM text Portico writes
 * and the facts the API reports. Pure: the time is a parameter.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { invalidInput } from '../errors.js';
import { certificateStrengthReason, unservableKeyReason, weakKeyReason } from './certificate-strength.js';

/** A certificate id: it names files in the config tree, so it is a single lowercase path segment. */
export const CERT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const CERT_ID_RULE = 'must be 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit';

export const certificateIdSchema = z
  .string({ invalid_type_error: CERT_ID_RULE })
  .regex(CERT_ID_PATTERN, CERT_ID_RULE);

/** Bounds on the PEM text a caller may send: ten 4096-bit RSA certificates fit with room to spare. */
export const MAX_CERTIFICATE_CHARS = 65536;
export const MAX_KEY_CHARS = 16384;
/** How many certificate blocks a chain may hold (leaf first). */
export const MAX_CHAIN_BLOCKS = 10;

/** A certificate as a caller may write it; its content is checked by `inspectCertificate`. */
export const certificateInputSchema = z
  .object({
    id: certificateIdSchema.optional(),
    certificate: z
      .string({ required_error: 'is required (PEM text)', invalid_type_error: 'must be a string of PEM text' })
      .max(MAX_CERTIFICATE_CHARS, `must be at most ${MAX_CERTIFICATE_CHARS} characters`),
    key: z
      .string({ invalid_type_error: 'must be a string of PEM text' })
      .max(MAX_KEY_CHARS, `must be at most ${MAX_KEY_CHARS} characters`)
      .optional(),
  })
  .strict();
export type CertificateInput = z.infer<typeof certificateInputSchema>;

/** What the API reports about a certificate; dates are ISO 8601 UTC. The answer's schema in the OpenAPI document. */
export const certificateFactsSchema = z.object({
  subject: z.string(),
  issuer: z.string(),
  sans: z.array(z.string()).describe('subjectAltName entries as Node writes them: `DNS:a.example.com`, `IP Address:127.0.0.1`'),
  notBefore: z.string().datetime(),
  notAfter: z.string().datetime(),
  fingerprint: z.string().regex(/^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$/).describe("SHA-256 of the leaf's DER, as colon-separated upper-case hex pairs"),
  isCA: z.boolean(),
  chainLength: z.number().int().min(1).describe('How many certificate blocks were given, the leaf included'),
  hasKey: z.boolean(),
});
export type CertificateFacts = z.infer<typeof certificateFactsSchema>;

/** A checked certificate: the PEM text to write (LF line ends, nothing but blocks) and its facts. */
export interface InspectedCertificate {
  certificatePem: string;
  keyPem?: string;
  facts: CertificateFacts;
}

interface PemBlock {
  label: string;
  body: string[];
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----$/;
const END = /^-----END ([A-Z0-9 ]+)-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;
const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);
const PEM_ONLY = 'must hold only PEM blocks separated by white space';
// nginx reads keys at start and reload, with no one there to type a passphrase.
const ENCRYPTED = 'must not be encrypted: nginx would need a passphrase to read it';

/** Drops `chars` from the end (and start) of `text`; a loop, since /[ \t]+$/ is quadratic on long runs. */
function trim(text: string, chars: string, where: 'end' | 'both'): string {
  let start = 0;
  let end = text.length;
  while (end > 0 && chars.includes(text[end - 1] as string)) end--;
  while (where === 'both' && start < end && chars.includes(text[start] as string)) start++;
  return text.slice(start, end);
}

/** Splits PEM text into blocks; anything but spaces and tabs outside a block is refused. */
function readPemBlocks(field: string, text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let open: PemBlock | undefined;
  // Trailing white space is dropped first so that a block cut short is reported as such.
  const lines = trim(text.replace(/\r\n/g, '\n'), ' \t\n', 'end').split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = trim(raw, ' \t', 'both');
    const where = `line ${index + 1}`;
    if (open === undefined) {
      const begin = BEGIN.exec(line);
      // openssl pkcs12 writes "Bag Attributes" lines and people paste comments: nginx would skip
      // them, but we write only what we checked.
      if (!begin) {
        if (line !== '') throw invalidInput(field, `${PEM_ONLY}, but ${where} is text outside a block`);
        continue;
      }
      if (begin[1] === 'ENCRYPTED PRIVATE KEY') throw invalidInput(field, ENCRYPTED);
      blocks.push((open = { label: begin[1] ?? '', body: [] }));
    } else if (END.test(line)) {
      if (line !== `-----END ${open.label}-----`) throw invalidInput(field, `${where} does not end the ${open.label} block`);
      if (open.body.length === 0) throw invalidInput(field, `the ${open.label} block ending on ${where} is empty`);
      open = undefined;
    } else if (BEGIN.test(line)) {
      throw invalidInput(field, `the ${open.label} block has no END line before ${where}`);
    } else if (/^Proc-Type:\s*4,\s*ENCRYPTED/.test(line)) {
      throw invalidInput(field, ENCRYPTED);
    } else if (!BASE64_LINE.test(line)) {
      throw invalidInput(field, `${PEM_ONLY}, but ${where} inside the ${open.label} block is not base64`);
    } else open.body.push(line);
  }
  if (open !== undefined) throw invalidInput(field, `the ${open.label} block has no END line`);
  if (blocks.length === 0) throw invalidInput(field, 'must hold a PEM block ("-----BEGIN ...")');
  return blocks;
}

function pemText(block: PemBlock): string {
  return [`-----BEGIN ${block.label}-----`, ...block.body, `-----END ${block.label}-----`, ''].join('\n');
}

/** The certificate blocks, leaf first, each parsed and as the normalised PEM text of its block. */
function parseCertificates(text: string): { pem: string; cert: X509Certificate }[] {
  const blocks = readPemBlocks('certificate', text);
  if (blocks.length > MAX_CHAIN_BLOCKS) throw invalidInput('certificate', `must hold at most ${MAX_CHAIN_BLOCKS} certificates`);
  return blocks.map((block, i) => {
    const name = `block ${i + 1}`;
    if (block.label !== 'CERTIFICATE') throw invalidInput('certificate', `${name} is a ${block.label}, not a CERTIFICATE`);
    const pem = pemText(block);
    try {
      return { pem, cert: new X509Certificate(pem) };
    } catch (error) {
      throw invalidInput('certificate', `${name} is not a valid x.509 certificate: ${(error as Error).message}`);
    }
  });
}

function parseKey(text: string): { pem: string; key: KeyObject } {
  const blocks = readPemBlocks('key', text);
  const [block] = blocks;
  if (block === undefined || blocks.length > 1) throw invalidInput('key', `must hold exactly one private key block, not ${blocks.length}`);
  if (!KEY_LABELS.has(block.label)) throw invalidInput('key', `is a ${block.label}, not a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY`);
  const pem = pemText(block);
  try {
    return { pem, key: createPrivateKey(pem) };
  } catch (error) {
    throw invalidInput('key', `is not a valid private key: ${(error as Error).message}`);
  }
}

/** Node writes a distinguished name one attribute per line; the API shows it on one. */
const oneLine = (name: string): string => name.split('\n').filter(Boolean).join(', ');

/** Splits Node's subjectAltName on ", "; Node quotes (JSON-style) any value that holds a comma. */
const splitSans = (text: string | undefined): string[] =>
  (text ?? '').match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g)?.map((s) => s.trim()).filter(Boolean) ?? [];

function factsOf(chain: X509Certificate[], hasKey: boolean): CertificateFacts {
  const leaf = chain[0] as X509Certificate;
  return {
    subject: oneLine(leaf.subject),
    issuer: oneLine(leaf.issuer),
    sans: splitSans(leaf.subjectAltName),
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    fingerprint: leaf.fingerprint256,
    isCA: leaf.ca,
    chainLength: chain.length,
    hasKey,
  };
}

/**
 * The facts of a certificate Portico stored earlier (checked when it was written). Unlike
 * `inspectCertificate` it does not judge the dates: a stored certificate that has since expired is
 * still listed, with its `notAfter`, so that it can be replaced.
 */
export function describeCertificate(pem: string, hasKey: boolean): CertificateFacts {
  return factsOf(parseCertificates(pem).map((block) => block.cert), hasKey);
}

/**
 * Checks a certificate chain (leaf first) and optional key, and answers the normalised PEM and facts.
 * Throws `InvalidInput` on field `certificate` or `key` naming the first rule broken. Only the leaf's
 * validity period is checked against `now`; the chain's order is checked by name and signature, not
 * against any trust store.
 */
export function inspectCertificate(input: { certificate: string; key?: string }, now: Date): InspectedCertificate {
  const blocks = parseCertificates(input.certificate);
  const chain = blocks.map((block) => block.cert);
  const leaf = chain[0] as X509Certificate;
  for (let i = 1; i < chain.length; i++) {
    const [issued, issuer] = [chain[i - 1] as X509Certificate, chain[i] as X509Certificate];
    // nginx sends the chain exactly as written, and many clients reject one out of order.
    if (!issued.checkIssued(issuer) || !issued.verify(issuer.publicKey)) {
      throw invalidInput('certificate', `the chain is out of order: block ${i + 1} did not issue block ${i}`);
    }
  }
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (notAfter < now) throw invalidInput('certificate', `expired on ${notAfter.toISOString()}`);
  if (notBefore > now) throw invalidInput('certificate', `not valid before ${notBefore.toISOString()}`);
  const key = input.key === undefined ? undefined : parseKey(input.key);
  if (key !== undefined && !leaf.checkPrivateKey(key.key)) throw invalidInput('key', 'does not match the certificate');
  // What nginx's OpenSSL would refuse only when nginx loads the file, or what no client can use.
  chain.forEach((cert, i) => {
    const weak = certificateStrengthReason(cert, i);
    if (weak === undefined) return;
    // The leaf's own key is the one to replace: say so on the field that holds it.
    if (i === 0 && key !== undefined && weak.about === 'key') throw invalidInput('key', `is ${weakKeyReason(leaf.publicKey) ?? weak.reason}`);
    throw invalidInput('certificate', weak.reason);
  });
  const unservable = key === undefined ? undefined : unservableKeyReason(leaf.publicKey);
  if (unservable !== undefined) throw invalidInput('key', unservable);
  const facts = factsOf(chain, key !== undefined);
  const certificatePem = blocks.map((block) => block.pem).join('');
  return key === undefined ? { certificatePem, facts } : { certificatePem, keyPem: key.pem, facts };
}
