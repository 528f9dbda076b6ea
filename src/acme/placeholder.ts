/**
 * The certificate a managed certificate serves until the CA issues its first: self-signed, for the
 * same names, short-lived, its issuer saying what it is. A listener that names the certificate can
 * be created at once (nginx needs a certificate file to start a TLS listener), and nothing waits on
 * the CA; a client sees a certificate it does not trust rather than a refused connection.
 *
 * Made with @peculiar/x509 on Node's WebCrypto: no openssl binary needed in a sidecar image.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/** The placeholder's subject and issuer common name: how the API and an operator tell it apart. */
export const PLACEHOLDER_NAME = 'Portico placeholder - waiting for its ACME certificate';

/** Valid for a week: long enough for a slow CA, short enough that one left behind is noticed. */
const LIFETIME_MS = 7 * 24 * 3600 * 1000;

/** Whether a certificate's issuer (as Node's X509Certificate writes it) is a placeholder's. */
export function isPlaceholderIssuer(issuer: string): boolean {
  return issuer.includes(PLACEHOLDER_NAME);
}

/** A self-signed ECDSA P-256 certificate and its key (PKCS #8), both PEM, for `names` (DNS names, maybe `*.` wildcards). */
export async function createPlaceholder(names: string[], now = new Date()): Promise<{ certificatePem: string; keyPem: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      // A positive serial of 16 random bytes (the first bit cleared: DER integers are signed).
      serialNumber: ((randomBytes(1)[0] as number) & 0x7f).toString(16).padStart(2, '0') + randomBytes(15).toString('hex'),
      name: `CN=${PLACEHOLDER_NAME}`,
      // A minute back: a client whose clock is a little behind still sees it as valid.
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + LIFETIME_MS),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
      ],
    },
    webcrypto as unknown as Crypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const body = pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return { certificatePem: `${certificate.toString('pem')}\n`, keyPem: `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n` };
}
