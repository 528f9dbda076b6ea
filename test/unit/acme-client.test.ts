/**
 * The pure parts of src/acme/client.ts: reading the CA's problem documents, describing transport
 * failures, picking a challenge, checking names, and the account key's file (created once, 0600 in a
 * 0700 folder, never replaced). The client against a real CA: test/integration/acme-client.test.ts.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ACCOUNT_KEY_FILE,
  AcmeError,
  describeProblem,
  describeTransportError,
  loadOrCreateAccountKey,
  orderNames,
  pickChallenge,
  problemOf,
} from '../../src/acme/client.js';

describe('acme problem documents', () => {
  it('reads type, detail, status and subproblems with their identifiers', () => {
    const problem = problemOf({
      type: 'urn:ietf:params:acme:error:rejectedIdentifier',
      detail: 'Error creating new order :: some names are refused',
      status: 400,
      subproblems: [
        { type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'blocked name', identifier: { type: 'dns', value: 'a.example' } },
        { notAProblem: true },
      ],
    });
    assert.deepEqual(problem, {
      type: 'urn:ietf:params:acme:error:rejectedIdentifier',
      detail: 'Error creating new order :: some names are refused',
      status: 400,
      subproblems: [{ type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'blocked name', identifier: 'a.example' }],
    });
    assert.equal(
      describeProblem(problem as NonNullable<typeof problem>),
      'urn:ietf:params:acme:error:rejectedIdentifier: Error creating new order :: some names are refused; a.example: urn:ietf:params:acme:error:rejectedIdentifier: blocked name',
    );
  });

  it('is none for what is not a problem', () => {
    for (const value of [undefined, null, 'text', 42, {}, { detail: 'no type' }, { type: '' }, { type: 7 }]) {
      assert.equal(problemOf(value), undefined, JSON.stringify(value));
    }
  });

  it('describes a problem on one line, with its type alone when it has no detail', () => {
    assert.equal(describeProblem({ type: 'urn:ietf:params:acme:error:serverInternal' }), 'urn:ietf:params:acme:error:serverInternal');
    assert.equal(describeProblem({ type: 't', detail: 'two\n  lines' }), 't: two lines');
  });
});

describe('acme transport errors', () => {
  it('says why a request got no answer', () => {
    assert.equal(describeTransportError({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:1' }), 'connect ECONNREFUSED 127.0.0.1:1');
    assert.equal(describeTransportError({ code: 'ECONNABORTED', message: 'timeout of 300ms exceeded' }, 300), 'no answer within 300 ms');
    assert.equal(describeTransportError({ code: 'ENOTFOUND', message: 'getaddrinfo failed' }), 'getaddrinfo failed (ENOTFOUND)');
    assert.match(describeTransportError({ code: 'SELF_SIGNED_CERT_IN_CHAIN', message: 'self-signed certificate in certificate chain' }), /^its TLS certificate is not trusted \(SELF_SIGNED_CERT_IN_CHAIN\): a private ACME server needs its CA bundle$/);
    assert.equal(describeTransportError({}), 'unknown error');
  });
});

describe('picking a challenge', () => {
  const authz = {
    identifier: { type: 'dns', value: 'shop.example.com' },
    challenges: [
      { type: 'tls-alpn-01', token: 't1' },
      { type: 'http-01', token: 't2' },
      { type: 'dns-01', token: 't3' },
    ],
  };

  it('answers the challenge of the solver\'s type', () => {
    assert.equal(pickChallenge(authz, 'http-01').token, 't2');
    assert.equal(pickChallenge(authz, 'dns-01').token, 't3');
  });

  it('fails at step challenge naming what the CA offers when it offers none of that type', () => {
    const wildcard = { identifier: { value: 'example.com' }, wildcard: true, challenges: [{ type: 'dns-01', token: 't' }] };
    assert.throws(
      () => pickChallenge(wildcard, 'http-01'),
      (error: unknown) =>
        error instanceof AcmeError &&
        error.step === 'challenge' &&
        error.identifier === '*.example.com' &&
        error.message === 'acme challenge: the CA offers no http-01 challenge for *.example.com (it offers: dns-01) (a wildcard name needs dns-01)',
    );
    assert.throws(() => pickChallenge({ identifier: { value: 'a.example' }, challenges: [] }, 'dns-01'), /offers no dns-01 challenge for a\.example \(it offers: none\)$/);
  });
});

describe('order names', () => {
  it('lowercases, drops a final dot and duplicates, keeps the order (the first is the CN)', () => {
    assert.deepEqual(orderNames(['Shop.Example.com.', '*.shop.example.com', 'shop.example.com']), ['shop.example.com', '*.shop.example.com']);
  });

  it('refuses what is not a DNS name, and an empty list', () => {
    for (const bad of ['', 'a b.example', 'http://x.example', 'a..example', '*.*.example', 'x.*.example', `${'a'.repeat(250)}.example`]) {
      assert.throws(() => orderNames([bad]), (error: unknown) => error instanceof AcmeError && error.step === 'order', bad);
    }
    assert.throws(() => orderNames([]), /at least one name/);
  });
});

describe('the account key', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function fresh(): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), 'portico-acme-key-'));
    dirs.push(dir);
    return dir;
  }

  it('is created once, an ECDSA P-256 key, 0600 in a 0700 folder, and read back after', async () => {
    const dir = path.join(await fresh(), 'acme', 'account');
    const first = await loadOrCreateAccountKey(dir);
    assert.equal(first.created, true);
    const key = createPrivateKey(first.keyPem);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal((await stat(path.join(dir, ACCOUNT_KEY_FILE))).mode & 0o777, 0o600);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    const second = await loadOrCreateAccountKey(dir);
    assert.deepEqual(second, { keyPem: first.keyPem, created: false });
    assert.deepEqual(await readdir(dir), [ACCOUNT_KEY_FILE], 'no temporary file left');
  });

  it('is one key when many callers create it at once', async () => {
    const dir = await fresh();
    const results = await Promise.all(Array.from({ length: 12 }, () => loadOrCreateAccountKey(dir)));
    assert.equal(new Set(results.map((r) => r.keyPem)).size, 1);
    assert.ok(results.filter((r) => r.created).length <= 1);
    assert.deepEqual(await readdir(dir), [ACCOUNT_KEY_FILE]);
  });

  it('narrows a wider folder to 0700', async () => {
    const dir = await fresh();
    await chmod(dir, 0o755);
    await loadOrCreateAccountKey(dir);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
  });

  it('refuses a file that is not a key without quoting it', async () => {
    const dir = await fresh();
    await writeFile(path.join(dir, ACCOUNT_KEY_FILE), 'SECRET-LOOKING-GARBAGE\n', { mode: 0o600 });
    await assert.rejects(loadOrCreateAccountKey(dir), (error: Error) => /is not a readable private key$/.test(error.message) && !error.message.includes('SECRET'));
  });
});
