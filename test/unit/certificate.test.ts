/**
 * Certificates: only PEM blocks are accepted, the chain must be in order, the leaf valid at the given
 * time and the key its own; what passes is normalised and described by its facts.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PorticoError } from '../../src/errors.js';
import { certificateIdSchema, certificateInputSchema, inspectCertificate } from '../../src/model/certificate.js';
import { weakSignatureDigest } from '../../src/model/certificate-strength.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/certs/${name}`, import.meta.url), 'utf8');
const crt = (name: string): string => fixture(`${name}.crt`);
const key = (name: string): string => fixture(`${name}.key`);
/** Inside the 100-year validity of the fixtures, whenever they were made; after expired.crt's 2020. */
const NOW = new Date('2100-01-01T00:00:00Z');

/** Asserts that inspecting `input` is refused as InvalidInput on `field`, with a message matching `message`. */
function assertRefused(input: { certificate: string; key?: string }, field: 'certificate' | 'key', message?: RegExp, now = NOW): void {
  assert.throws(
    () => inspectCertificate(input, now),
    (error: unknown) => {
      assert.ok(error instanceof PorticoError, String(error));
      assert.equal(error.kind, 'InvalidInput');
      assert.equal(error.field, field);
      if (message) assert.match(error.message, message);
      return true;
    },
  );
}

describe('certificate input', () => {
  it('takes ids of lowercase letters, digits, "_" and "-" only, starting with a letter or digit', () => {
    for (const ok of ['a', 'portico', 'api-2_x', '0', 'a'.repeat(63)]) assert.ok(certificateIdSchema.safeParse(ok).success, ok);
    for (const bad of ['', '-a', '_a', 'A', 'a.b', 'a/b', 'a b', '../x', 'a'.repeat(64)]) {
      const result = certificateIdSchema.safeParse(bad);
      assert.ok(!result.success, bad);
      assert.match(result.error.issues[0]?.message ?? '', /1-63 characters of a-z, 0-9/);
    }
  });

  it('refuses unknown fields and PEM text longer than the limits', () => {
    assert.ok(certificateInputSchema.safeParse({ id: 'a', certificate: crt('a'), key: key('a') }).success);
    assert.ok(!certificateInputSchema.safeParse({ certificate: crt('a'), chain: '' }).success);
    assert.ok(!certificateInputSchema.safeParse({ certificate: 'x'.repeat(65537) }).success);
    assert.ok(!certificateInputSchema.safeParse({ certificate: crt('a'), key: 'x'.repeat(16385) }).success);
  });
});

describe('inspectCertificate', () => {
  it('answers the facts of a valid leaf with its key, and its PEM text unchanged', () => {
    const inspected = inspectCertificate({ certificate: crt('portico'), key: key('portico') }, NOW);
    const x509 = new X509Certificate(crt('portico'));
    assert.deepEqual(inspected.facts, {
      subject: 'CN=portico.test',
      issuer: 'CN=Portico Test CA',
      sans: ['DNS:portico.test', 'DNS:localhost', 'IP Address:127.0.0.1'],
      notBefore: new Date(x509.validFrom).toISOString(),
      notAfter: new Date(x509.validTo).toISOString(),
      fingerprint: x509.fingerprint256,
      isCA: false,
      chainLength: 1,
      hasKey: true,
    });
    assert.match(inspected.facts.fingerprint, /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.match(inspected.facts.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(inspected.certificatePem, crt('portico'));
    assert.equal(inspected.keyPem, key('portico'));
  });

  it('lists a wildcard subjectAltName as written', () => {
    assert.deepEqual(inspectCertificate({ certificate: crt('b') }, NOW).facts.sans, ['DNS:*.b.example.com']);
  });

  it('accepts a leaf followed by its issuer, and counts the chain', () => {
    const inspected = inspectCertificate({ certificate: crt('portico') + crt('ca'), key: key('portico') }, NOW);
    assert.equal(inspected.facts.chainLength, 2);
    assert.equal(inspected.facts.subject, 'CN=portico.test');
    assert.equal(inspected.certificatePem, crt('portico') + crt('ca'));
  });

  it('refuses a chain out of order or holding a certificate that did not issue the one before it', () => {
    assertRefused({ certificate: crt('ca') + crt('portico') }, 'certificate', /chain is out of order: block 2 did not issue block 1/);
    assertRefused({ certificate: crt('portico') + crt('other-ca') }, 'certificate', /block 2 did not issue block 1/);
    assertRefused({ certificate: crt('portico') + crt('ca') + crt('a') }, 'certificate', /block 3 did not issue block 2/);
  });

  it('accepts a CA certificate alone, without a key', () => {
    const inspected = inspectCertificate({ certificate: crt('ca') }, NOW);
    assert.equal(inspected.facts.isCA, true);
    assert.equal(inspected.facts.hasKey, false);
    assert.equal(inspected.facts.subject, inspected.facts.issuer);
    assert.equal(inspected.keyPem, undefined);
  });

  it('refuses on field key the key of another certificate', () => {
    assertRefused({ certificate: crt('portico'), key: key('a') }, 'key', /^key: does not match the certificate$/);
  });

  it('refuses a leaf that expired before now, or that is not yet valid now', () => {
    assertRefused({ certificate: crt('expired'), key: key('expired') }, 'certificate', /expired on 2021-01-01T00:00:00\.000Z/);
    assertRefused({ certificate: crt('portico') }, 'certificate', /not valid before \d{4}-\d\d-\d\dT/, new Date('2000-01-01T00:00:00Z'));
  });

  it('refuses text before, between or after the certificate blocks', () => {
    const bag = 'Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=CN=portico.test\n';
    assertRefused({ certificate: bag + crt('portico') }, 'certificate', /only PEM blocks.*line 1 is text outside a block/);
    assertRefused({ certificate: crt('portico') + '# the CA\n' + crt('ca') }, 'certificate', /outside a block/);
    assertRefused({ certificate: crt('portico') + 'trailing' }, 'certificate', /outside a block/);
    assertRefused({ certificate: crt('portico'), key: `# key\n${key('portico')}` }, 'key', /outside a block/);
  });

  it('refuses text that is not PEM: empty, prose, a block without END, corrupted base64', () => {
    for (const text of ['', '  \n\n', 'hello', 'MIIBszCCAVmgAwIBAgIU']) assertRefused({ certificate: text }, 'certificate');
    assertRefused({ certificate: crt('portico').replace(/-----END.*\n$/, '') }, 'certificate', /no END line/);
    const lines = crt('portico').split('\n');
    const outside = [...lines.slice(0, 2), `${lines[2]?.slice(0, 10)}!?${lines[2]?.slice(12)}`, ...lines.slice(3)].join('\n');
    assertRefused({ certificate: outside }, 'certificate', /line 3 inside the CERTIFICATE block is not base64/);
    const garbled = crt('portico').replace(/\n[A-Za-z0-9+/]{8}/, '\nAAAAAAAA');
    assertRefused({ certificate: garbled }, 'certificate', /block 1 is not a valid x\.509 certificate/);
  });

  it('refuses a key block in place of the certificate, and a certificate block in place of the key', () => {
    assertRefused({ certificate: key('portico') }, 'certificate', /block 1 is a PRIVATE KEY, not a CERTIFICATE/);
    assertRefused({ certificate: crt('portico'), key: crt('portico') }, 'key', /is a CERTIFICATE/);
  });

  it('refuses an encrypted key, in PKCS#8 or with a Proc-Type header, since nginx would need a passphrase', () => {
    const plain = createPrivateKey(key('portico'));
    const pkcs8 = plain.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;
    const sec1 = plain.export({ format: 'pem', type: 'sec1', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;
    assert.match(sec1, /Proc-Type: 4,ENCRYPTED/);
    for (const encrypted of [pkcs8, sec1]) {
      assertRefused({ certificate: crt('portico'), key: encrypted }, 'key', /must not be encrypted/);
    }
  });

  it('accepts the key as PKCS#8 or SEC1 and refuses two key blocks', () => {
    const sec1 = createPrivateKey(key('portico')).export({ format: 'pem', type: 'sec1' }) as string;
    assert.equal(inspectCertificate({ certificate: crt('portico'), key: sec1 }, NOW).keyPem, sec1);
    assertRefused({ certificate: crt('portico'), key: key('portico') + key('portico') }, 'key', /exactly one private key block, not 2/);
  });

  it('accepts CRLF line ends and surrounding white space, and answers LF-only PEM', () => {
    const crlf = (text: string): string => text.replace(/\n/g, '\r\n');
    const input = { certificate: `\r\n  ${crlf(crt('portico'))}\r\n\t\r\n${crlf(crt('ca'))}  \r\n`, key: crlf(key('portico')) };
    const inspected = inspectCertificate(input, NOW);
    assert.equal(inspected.certificatePem, crt('portico') + crt('ca'));
    assert.equal(inspected.keyPem, key('portico'));
  });

  it('refuses any line holding other than white space, wherever it is put outside the blocks', () => {
    const junk = fc
      .oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('Bag Attributes', '-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----'))
      .filter((line) => /\S/.test(line) && !line.includes('\n'));
    const padding = fc.constantFrom('', '\n', '  \n', '\r\n');
    fc.assert(
      fc.property(junk, fc.integer({ min: 0, max: 2 }), padding, padding, (line, gap, before, after) => {
        const parts = [crt('portico'), crt('ca')];
        parts.splice(gap, 0, `${before}${line}\n${after}`);
        assertRefused({ certificate: parts.join('') }, 'certificate');
        const keyParts = [key('portico')];
        keyParts.splice(Math.min(gap, 1), 0, `${before}${line}\n${after}`);
        assertRefused({ certificate: crt('portico'), key: keyParts.join('') }, 'key');
      }),
    );
  });
});

describe('what nginx\'s OpenSSL refuses (security level 2)', () => {
  const strength = (name: string): string => fixture(`strength/${name}`);

  it('refuses weak keys and weak signatures with the reason, on the field to fix', () => {
    assertRefused({ certificate: strength('rsa1024.crt'), key: strength('rsa1024.key') }, 'key', /^key: is a 1024-bit RSA key/, NOW);
    assertRefused({ certificate: strength('rsa1024.crt') }, 'certificate', /^certificate: block 1 \(CN=rsa1024\.example\.com\) has a 1024-bit RSA key/, NOW);
    assertRefused({ certificate: strength('leafsha1.crt') + strength('ca.crt'), key: strength('leafsha1.key') }, 'certificate', /block 1 .* is signed with SHA-1/, NOW);
    assertRefused({ certificate: strength('leafpsssha1.crt') }, 'certificate', /is signed with SHA-1/, NOW);
    assertRefused({ certificate: strength('k256.crt'), key: strength('k256.key') }, 'key', /secp256k1: nginx loads it, but TLS clients do not offer that curve/, NOW);
  });

  it('takes what nginx serves, and a self-signed certificate whatever digest signs it', () => {
    for (const name of ['rsa2048', 'rsapss', 'p384', 'p521', 'ed25519', 'ed448', 'selfsha1']) {
      assert.doesNotThrow(() => inspectCertificate({ certificate: strength(`${name}.crt`), key: strength(`${name}.key`) }, NOW), name);
    }
    // Without a key a certificate is a trust anchor: a curve clients do not offer is not a handshake of ours.
    assert.doesNotThrow(() => inspectCertificate({ certificate: strength('bp256.crt') }, NOW));
  });

  it('reads the signature algorithm from DER, and leaves a shape it does not know to nginx', () => {
    const der = (name: string): Buffer => new X509Certificate(strength(name)).raw;
    assert.equal(weakSignatureDigest(der('leafsha1.crt')), 'SHA-1');
    assert.equal(weakSignatureDigest(der('leafpsssha1.crt')), 'SHA-1');
    assert.equal(weakSignatureDigest(der('leafgood.crt')), undefined);
    assert.equal(weakSignatureDigest(der('rsapss.crt')), undefined, 'RSASSA-PSS with SHA-256 named in its parameters');
    for (const garbage of [Buffer.alloc(0), Buffer.from([0x30]), Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]), Buffer.from([0x30, 0x7f, 0x30])]) {
      assert.equal(weakSignatureDigest(garbage), undefined);
    }
  });
});
