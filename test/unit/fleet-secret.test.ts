/**
 * src/fleet/secret.ts: private keys sealed for a fleet's etcd. The known answer is computed here
 * from the documented construction with node:crypto directly (HKDF-SHA256, AES-256-GCM with the etcd
 * key as additional data), not by calling the module to check itself.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHash, hkdfSync } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FleetSealer, FleetSecretError, MIN_SECRET_CHARS } from '../../src/fleet/secret.js';

const SECRET = 'q3Zq8v1xY2m0Jd7Kp4Ls9Wt6Rb5Nc0Hf';
const WHERE = '/portico/certificates/shop';
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n';

/** The envelope for a fixed IV, built from the documented construction alone. */
function expectedEnvelope(secret: string, plaintext: string, where: string, iv: Buffer): string {
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(secret), Buffer.from('portico-fleet'), Buffer.from('private keys v1'), 32));
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(where));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const id = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return ['pfk1', id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

describe('fleet secret: private keys sealed for etcd', () => {
  const sealer = new FleetSealer(SECRET);

  it('opens what the documented construction seals (a known answer), and seals in the same format', () => {
    const iv = Buffer.from('00112233445566778899aabb', 'hex');
    const envelope = expectedEnvelope(SECRET, KEY_PEM, WHERE, iv);
    assert.equal(sealer.open(envelope, WHERE), KEY_PEM);
    const sealed = sealer.seal(KEY_PEM, WHERE);
    assert.match(sealed, /^pfk1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    assert.equal(sealed.split('.')[1], envelope.split('.')[1], 'the same key id');
    assert.ok(!sealed.includes('PRIVATE KEY') && !sealed.includes('MIGHAgEA'), 'nothing of the key in clear');
  });

  it('round-trips any text under any etcd key, with a fresh IV every time', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 4000 }), fc.string({ minLength: 1, maxLength: 200 }), (text, where) => {
        const a = sealer.seal(text, where);
        const b = sealer.seal(text, where);
        assert.notEqual(a.split('.')[2], b.split('.')[2], 'IVs repeat');
        assert.equal(sealer.open(a, where), text);
        assert.equal(new FleetSealer(SECRET).open(b, where), text, 'another node with the same secret opens it');
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a value moved under another key, altered, truncated, or sealed under another FLEET_SECRET, saying which', () => {
    const sealed = sealer.seal(KEY_PEM, WHERE);
    assert.throws(() => sealer.open(sealed, '/portico/certificates/other'), (e: unknown) => e instanceof FleetSecretError && /does not open: altered, or sealed for another key/.test(e.message));
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3] as string, 'base64url');
    body[0] = (body[0] as number) ^ 1;
    const altered = [...parts.slice(0, 3), body.toString('base64url'), parts[4]].join('.');
    assert.throws(() => sealer.open(altered, WHERE), /does not open: altered/);
    assert.throws(() => sealer.open(parts.slice(0, 4).join('.'), WHERE), /is not sealed as Portico seals keys/);
    assert.throws(() => sealer.open([...parts.slice(0, 4), 'AAAA'].join('.'), WHERE), /is not a well-formed sealed value/);
    assert.throws(() => sealer.open(`pfk2${sealed.slice(4)}`, WHERE), /is not sealed as Portico seals keys \(pfk1\)/);
    const other = new FleetSealer(`${SECRET}x`);
    assert.throws(() => other.open(sealed, WHERE), new RegExp(`sealed under another FLEET_SECRET \\(key id ${sealer.keyId}, this node's ${other.keyId}\\)`));
  });

  it('refuses a short or padded FLEET_SECRET naming the rule, and never shows the secret or the key', () => {
    assert.throws(() => new FleetSealer('x'.repeat(MIN_SECRET_CHARS - 1)), /FLEET_SECRET must be at least 32 characters/);
    assert.throws(() => new FleetSealer(` ${SECRET}`), /FLEET_SECRET must not start or end with white space/);
    const shown = [inspect(sealer, { showHidden: true, depth: 5 }), JSON.stringify({ sealer }), String(sealer), JSON.stringify(sealer)].join('\n');
    assert.ok(!shown.includes(SECRET), 'the secret is shown');
    assert.match(shown, /FleetSealer\([0-9a-f]{8}\)/);
    try {
      new FleetSealer(`${SECRET}y`).open(sealer.seal(KEY_PEM, WHERE), WHERE);
      assert.fail('opened under another secret');
    } catch (error) {
      assert.ok(!(error as Error).message.includes(SECRET) && !(error as Error).message.includes(KEY_PEM));
    }
  });
});
