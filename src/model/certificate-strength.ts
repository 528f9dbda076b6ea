/**
 * What nginx's OpenSSL refuses in a certificate chain, found before the chain is stored rather than
 * when nginx loads it. Debian 12's OpenSSL 3.0 runs at security level 2 (112 bits of security):
 * measured with nginx -t and real handshakes here, nginx refuses to load a leaf with an RSA key under
 * 2048 bits or an EC key under 224 bits ("ee key too small"), a chain certificate with such a key
 * ("ca key too small"), and a certificate that is not self-signed but signed with SHA-1 or MD5 ("ca
 * md too weak"). A leaf on P-224, secp256k1, a Brainpool curve, or with a DSA key loads, but no TLS
 * client completes a handshake with it. Pure.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';

export const MIN_RSA_BITS = 2048;
const MIN_EC_BITS = 224;

/** The curves TLS clients offer (OpenSSL's and browsers' defaults), by OpenSSL's name. */
const SERVABLE_CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** Signature algorithms whose digest gives under 112 bits of security, by OID. */
const WEAK_SIGNATURES: Record<string, string> = {
  '1.2.840.113549.1.1.2': 'MD2',
  '1.2.840.113549.1.1.3': 'MD4',
  '1.2.840.113549.1.1.4': 'MD5',
  '1.2.840.113549.1.1.5': 'SHA-1',
  '1.3.14.3.2.29': 'SHA-1',
  '1.2.840.10045.4.1': 'SHA-1',
  '1.2.840.10040.4.3': 'SHA-1',
};
/** RSASSA-PSS names its digest in its parameters, SHA-1 when they leave it out (RFC 4055). */
const RSASSA_PSS = '1.2.840.113549.1.1.10';
const WEAK_DIGESTS: Record<string, string> = { '1.3.14.3.2.26': 'SHA-1', '1.2.840.113549.2.5': 'MD5' };

const LEVEL = "nginx's OpenSSL (security level 2)";

/** Why OpenSSL at security level 2 refuses `key` in any certificate of a chain ("a 1024-bit RSA key: ..."), or undefined. */
export function weakKeyReason(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss' || type === 'dsa') {
    const bits = details.modulusLength ?? 0;
    const name = type === 'dsa' ? 'DSA' : 'RSA';
    if (bits < MIN_RSA_BITS) return `a ${bits}-bit ${name} key: ${LEVEL} refuses ${name} keys under ${MIN_RSA_BITS} bits`;
  }
  if (type === 'ec') {
    const curve = details.namedCurve ?? '';
    // OpenSSL's curve names carry their size: prime192v1, secp224r1, brainpoolP256r1, sect163k1.
    const bits = Number(/(\d{3})/.exec(curve)?.[1] ?? 0);
    if (bits > 0 && bits < MIN_EC_BITS) return `an EC key on ${curve} (${bits} bits): ${LEVEL} refuses curves under ${MIN_EC_BITS} bits`;
  }
  return undefined;
}

/** Why TLS clients cannot complete a handshake with a leaf whose key is `key`, or undefined. */
export function unservableKeyReason(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? 'an unnamed curve';
    if (SERVABLE_CURVES[curve] === undefined) {
      return `is an EC key on ${curve}: nginx loads it, but TLS clients do not offer that curve and every handshake fails; use P-256, P-384 or P-521`;
    }
    return undefined;
  }
  if (type === 'rsa' || type === 'rsa-pss' || type === 'ed25519' || type === 'ed448') return undefined;
  return `is a ${String(type).toUpperCase()} key: nginx loads it, but TLS clients no longer negotiate it and every handshake fails; use RSA (2048 bits or more), EC (P-256, P-384, P-521), Ed25519 or Ed448`;
}

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

/** One DER tag-length-value at `at`; throws on a length that runs past the end. */
function readTlv(der: Buffer, at: number): Tlv {
  const tag = der[at];
  let length = der[at + 1];
  let start = at + 2;
  if (tag === undefined || length === undefined) throw new Error('truncated');
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new Error('unsupported length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[start + i] ?? 0);
    start += count;
  }
  if (start + length > der.length) throw new Error('truncated');
  return { tag, start, end: start + length };
}

function readOid(der: Buffer, at: number): { oid: string; end: number } {
  const tlv = readTlv(der, at);
  if (tlv.tag !== 0x06 || tlv.end === tlv.start) throw new Error('not an OID');
  const first = der[tlv.start] as number;
  const arcs = [Math.min(2, Math.floor(first / 40)), first - 40 * Math.min(2, Math.floor(first / 40))];
  let value = 0;
  for (let i = tlv.start + 1; i < tlv.end; i++) {
    const byte = der[i] as number;
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  return { oid: arcs.join('.'), end: tlv.end };
}

/**
 * The weak digest a certificate is signed with ("SHA-1", "MD5"), or undefined. Reads
 * `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }` (RFC 5280) from DER.
 */
export function weakSignatureDigest(der: Buffer): string | undefined {
  try {
    const certificate = readTlv(der, 0);
    const tbs = readTlv(der, certificate.start);
    const algorithm = readTlv(der, tbs.end);
    const { oid, end } = readOid(der, algorithm.start);
    if (oid !== RSASSA_PSS) return WEAK_SIGNATURES[oid];
    // RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] AlgorithmIdentifier DEFAULT sha1, ... }
    if (end >= algorithm.end) return 'SHA-1';
    const params = readTlv(der, end);
    const hash = params.start < params.end ? readTlv(der, params.start) : undefined;
    if (hash === undefined || hash.tag !== 0xa0) return 'SHA-1';
    return WEAK_DIGESTS[readOid(der, readTlv(der, hash.start).start).oid];
  } catch {
    // Node's X509Certificate has parsed it already; a shape this reader does not know is left to nginx.
    return undefined;
  }
}

/**
 * Why nginx would refuse certificate block `index` (0 is the leaf) of a chain, or undefined: its key
 * (`about: 'key'`) or its signature. A self-signed certificate's own signature is not judged: OpenSSL
 * does not check it either.
 */
export function certificateStrengthReason(cert: X509Certificate, index: number): { about: 'key' | 'signature'; reason: string } | undefined {
  const block = `block ${index + 1} (${subjectOf(cert)})`;
  const weakKey = weakKeyReason(cert.publicKey);
  if (weakKey !== undefined) return { about: 'key', reason: `${block} has ${weakKey}` };
  const digest = cert.checkIssued(cert) ? undefined : weakSignatureDigest(cert.raw);
  if (digest === undefined) return undefined;
  return {
    about: 'signature',
    reason: `${block} is signed with ${digest}: ${LEVEL} refuses certificates signed with a digest under 112 bits of security ("ca md too weak"); have it signed with SHA-256 or better`,
  };
}

const subjectOf = (cert: X509Certificate): string => cert.subject.split('\n').filter(Boolean).join(', ');
