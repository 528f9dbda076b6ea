/**
 * Private keys at rest in a fleet's etcd (issue 16): never in clear, in etcd or in its snapshots.
 * Each is sealed with AES-256-GCM under a key derived from FLEET_SECRET, with the etcd key it is
 * stored under as additional data, so that a sealed value copied under another key does not open.
 *
 * - Key: HKDF-SHA256 of FLEET_SECRET (salt "portico-fleet", info "private keys v1"), 32 bytes. Every
 *   node of a fleet derives the same key from the same secret; nothing derived is ever stored.
 * - Each seal: a fresh random 96-bit IV (NIST SP 800-38D's size for GCM), a 128-bit tag.
 * - Envelope (ASCII, safe in JSON): `pfk1.<key id>.<iv>.<ciphertext>.<tag>`, base64url parts. The key
 *   id is 8 hex digits of SHA-256 over the derived key: it tells "sealed under another FLEET_SECRET"
 *   apart from "altered", and reveals nothing usable about the key.
 *
 * The secret and the key are never in an error, a log line or `inspect` output. Pure, but for the
 * random IV.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { z } from 'zod';

const VERSION = 'pfk1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** At least this many characters of FLEET_SECRET: as random as a 32-byte key when drawn from base64's alphabet or wider. */
export const MIN_SECRET_CHARS = 32;

/** FLEET_SECRET as the environment has it: the rule, never the value, in the error. */
export const fleetSecretSchema = z
  .string()
  .min(MIN_SECRET_CHARS, `must be at least ${MIN_SECRET_CHARS} characters (for instance \`openssl rand -base64 32\`), the same on every node of the fleet`)
  .max(4096, 'must be at most 4096 characters')
  .refine((text) => text.trim() === text, 'must not start or end with white space');

export class FleetSecretError extends Error {
  override readonly name = 'FleetSecretError';
}

const b64 = (bytes: Buffer): string => bytes.toString('base64url');
const unb64 = (text: string): Buffer | undefined => (/^[A-Za-z0-9_-]*$/.test(text) ? Buffer.from(text, 'base64url') : undefined);

/** Seals and opens private keys with one fleet's key. Holds the derived key only; prints as nothing. */
export class FleetSealer {
  readonly #key: Buffer;
  /** The key id sealed values carry. */
  readonly keyId: string;

  constructor(secret: string) {
    const parsed = fleetSecretSchema.safeParse(secret);
    if (!parsed.success) throw new FleetSecretError(`FLEET_SECRET ${parsed.error.issues[0]?.message ?? 'is not usable'}`);
    this.#key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('portico-fleet'), Buffer.from('private keys v1'), 32));
    this.keyId = createHash('sha256').update(this.#key).digest('hex').slice(0, 8);
  }

  /** `plaintext` sealed for storage under the etcd key `where`. */
  seal(plaintext: string, where: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(where, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, this.keyId, b64(iv), b64(body), b64(cipher.getAuthTag())].join('.');
  }

  /** Opens a value `seal` made for `where`; throws FleetSecretError saying why it cannot. */
  open(sealed: string, where: string): string {
    const parts = sealed.split('.');
    const [version, keyId, ivText, bodyText, tagText] = parts;
    if (parts.length !== 5 || version !== VERSION) throw new FleetSecretError(`the private key at ${where} is not sealed as Portico seals keys (${VERSION})`);
    if (keyId !== this.keyId) throw new FleetSecretError(`the private key at ${where} was sealed under another FLEET_SECRET (key id ${keyId}, this node's ${this.keyId})`);
    const iv = unb64(ivText ?? '');
    const body = unb64(bodyText ?? '');
    const tag = unb64(tagText ?? '');
    if (iv?.length !== IV_BYTES || body === undefined || tag?.length !== TAG_BYTES) throw new FleetSecretError(`the private key at ${where} is not a well-formed sealed value`);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(where, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      throw new FleetSecretError(`the private key at ${where} does not open: altered, or sealed for another key`);
    }
  }

  toJSON(): string {
    return `FleetSealer(${this.keyId})`;
  }

  toString(): string {
    return this.toJSON();
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}
