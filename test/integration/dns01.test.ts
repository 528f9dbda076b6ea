/**
 * DNS-01 against a real authoritative server: BIND's named on 127.0.0.1 (test/helpers/bind9.ts), a
 * zone and a TSIG key of the test's own. Every record is checked by asking named directly with an
 * independent query (the helper's, not the client's). Every named started here is stopped by pid.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import type { Challenge } from '../../src/acme/challenge.js';
import { Rfc2136Client, Rfc2136Error, Rfc2136Solver, loadAcmeDnsSettings, type AcmeDnsSettings } from '../../src/acme/dns01.js';
import { bind9Unavailable, queryDns, startBind9, txtValues, type Bind9 } from '../helpers/bind9.js';

const RECORD = '_acme-challenge.www.example.test.';

function settingsFor(named: Bind9, overrides: Record<string, string> = {}): AcmeDnsSettings {
  const settings = loadAcmeDnsSettings({
    ACME_DNS_SERVER: `127.0.0.1:${named.port}`,
    ACME_DNS_TSIG_NAME: named.tsig.name,
    ACME_DNS_TSIG_ALGORITHM: named.tsig.algorithm,
    ACME_DNS_TSIG_SECRET: named.tsig.secret,
    ...overrides,
  });
  assert.ok(settings !== undefined);
  return settings;
}

/** The other secret of the same length, so that only the MAC is wrong. */
const otherSecret = (secret: string): string => Buffer.from(Buffer.from(secret, 'base64').map((b) => b ^ 0x5a)).toString('base64');

const rejects = async (promise: Promise<unknown>, check: (e: Rfc2136Error) => void): Promise<void> => {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof Rfc2136Error, String(error));
    check(error);
    return true;
  });
};

describe('DNS-01 by RFC 2136 against named', { skip: bind9Unavailable() }, () => {
  let named: Bind9;
  let client: Rfc2136Client;

  before(async () => {
    named = await startBind9({ readOnlyZones: ['readonly.test'] });
    client = new Rfc2136Client(settingsFor(named), { timeoutMs: 1000, attempts: 2, pollMs: 100 });
  });

  after(async () => {
    await named?.stop();
  });

  it('finds the zone by walking up from the name, whatever its case', async () => {
    assert.equal(await client.findZone(RECORD), 'example.test.');
    assert.equal(await client.findZone('_ACME-challenge.Deep.Www.Example.Test'), 'example.test.');
    assert.equal(await client.findZone('example.test'), 'example.test.');
  });

  it('adds a TXT record that named answers, and waitForTxt sees it', async () => {
    await client.addTxt(RECORD, 'first-value', 60);
    assert.deepEqual(await txtValues(named.port, RECORD), ['first-value']);
    await client.waitForTxt(RECORD, 'first-value', 2000);
    assert.deepEqual(await client.queryTxt(RECORD), ['first-value']);
  });

  it('keeps two values of one name side by side; removes just the one asked; removing an absent one is fine', async () => {
    await client.addTxt(RECORD, 'second-value', 60);
    assert.deepEqual(await txtValues(named.port, RECORD), ['first-value', 'second-value']);
    await client.removeTxt(RECORD, 'first-value');
    assert.deepEqual(await txtValues(named.port, RECORD), ['second-value']);
    await client.removeTxt(RECORD, 'first-value');
    await client.removeTxt('_acme-challenge.nothing-here.example.test', 'never-added');
    assert.deepEqual(await txtValues(named.port, RECORD), ['second-value']);
    await client.removeTxt(RECORD, 'second-value');
    assert.deepEqual(await txtValues(named.port, RECORD), []);
  });

  it('a wrong secret: named answers NOTAUTH/BADSIG, the error says so and names the server, nothing changes', async () => {
    await client.addTxt(RECORD, 'kept', 60);
    const wrong = new Rfc2136Client(settingsFor(named, { ACME_DNS_TSIG_SECRET: otherSecret(named.tsig.secret) }), { timeoutMs: 1000, attempts: 1 });
    await rejects(wrong.addTxt(RECORD, 'forged'), (e) => {
      assert.equal(e.rcode, 'NOTAUTH');
      assert.equal(e.tsigError, 'BADSIG');
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${named.port} answered NOTAUTH/BADSIG`));
      assert.ok(!e.message.includes(named.tsig.secret));
    });
    await rejects(wrong.removeTxt(RECORD, 'kept'), (e) => assert.equal(e.tsigError, 'BADSIG'));
    assert.deepEqual(await txtValues(named.port, RECORD), ['kept']);
    await client.removeTxt(RECORD, 'kept');
  });

  it('an unknown key name or another algorithm: named answers NOTAUTH/BADKEY, nothing changes', async () => {
    const unknown = new Rfc2136Client(settingsFor(named, { ACME_DNS_TSIG_NAME: 'someone-else' }), { timeoutMs: 1000, attempts: 1 });
    await rejects(unknown.addTxt(RECORD, 'forged'), (e) => {
      assert.equal(e.tsigError, 'BADKEY');
      assert.match(e.message, /NOTAUTH\/BADKEY: the server does not know the key/);
    });
    const otherAlgorithm = new Rfc2136Client(settingsFor(named, { ACME_DNS_TSIG_ALGORITHM: 'hmac-sha512' }), { timeoutMs: 1000, attempts: 1 });
    await rejects(otherAlgorithm.addTxt(RECORD, 'forged'), (e) => assert.equal(e.tsigError, 'BADKEY'));
    assert.deepEqual(await txtValues(named.port, RECORD), []);
  });

  it('a name outside every zone of the server: a clear error naming the server and its answers, no update sent', async () => {
    await rejects(client.addTxt('_acme-challenge.shop.other.test', 'x'), (e) => {
      assert.match(e.message, new RegExp(`DNS server 127\\.0\\.0\\.1:${named.port} is authoritative for no zone enclosing _acme-challenge\\.shop\\.other\\.test\\.`));
      assert.match(e.message, /other\.test\. REFUSED/);
    });
    await rejects(client.removeTxt('_acme-challenge.shop.other.test', 'x'), (e) => assert.match(e.message, /authoritative for no zone/));
  });

  it('a zone the key may not update: named\'s signed REFUSED, named in the error with what it means', async () => {
    assert.equal(await client.findZone('_acme-challenge.www.readonly.test'), 'readonly.test.');
    await rejects(client.addTxt('_acme-challenge.www.readonly.test', 'x'), (e) => {
      assert.equal(e.rcode, 'REFUSED');
      assert.equal(e.tsigError, undefined);
      assert.match(e.message, new RegExp(`adding TXT _acme-challenge\\.www\\.readonly\\.test\\. in zone readonly\\.test\\.: DNS server 127\\.0\\.0\\.1:${named.port} answered REFUSED: the server refuses updates from this key`));
    });
    assert.deepEqual(await txtValues(named.port, '_acme-challenge.www.readonly.test.'), []);
  });

  it('an update naming a record outside the zone it is sent to: named\'s signed NOTZONE', async () => {
    await rejects(client.update('example.test.', [{ name: '_acme-challenge.www.readonly.test.', class: 'IN', ttl: 60, value: 'x' }], 'a misdirected update'), (e) => {
      assert.equal(e.rcode, 'NOTZONE');
      assert.match(e.message, /a misdirected update: DNS server .* answered NOTZONE: the name is outside the zone/);
    });
  });

  it('refuses a name or value that is not one before anything goes on the wire', async () => {
    await rejects(client.addTxt('_acme-challenge.*.example.test', 'x'), (e) => assert.match(e.message, /^name .* has a label "\*"/));
    await rejects(client.addTxt('a..example.test', 'x'), (e) => assert.match(e.message, /empty label/));
    await rejects(client.addTxt(RECORD, 'x'.repeat(256)), (e) => assert.match(e.message, /TXT value is 256 characters long/));
    await rejects(client.addTxt(RECORD, 'new\nline'), (e) => assert.match(e.message, /printable ASCII/));
  });

  it('reads an RRset too big for UDP over TCP (named truncates the UDP answer)', async () => {
    const values = Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}-${'v'.repeat(57)}`);
    for (const value of values) await client.addTxt('_acme-challenge.big.example.test', value, 60);
    const udp = await queryDns(named.port, '_acme-challenge.big.example.test.', 'TXT', 2000);
    assert.equal(udp?.flag_tc, true, 'the UDP answer of 12 x 60 bytes is truncated');
    assert.deepEqual((await client.queryTxt('_acme-challenge.big.example.test')).sort(), values);
    await client.waitForTxt('_acme-challenge.big.example.test', values[11]!, 2000);
    for (const value of values) await client.removeTxt('_acme-challenge.big.example.test', value);
    assert.deepEqual(await txtValues(named.port, '_acme-challenge.big.example.test.'), []);
  });

  it('waitForTxt gives up after its timeout, saying what the server answers', async () => {
    const started = Date.now();
    await rejects(client.waitForTxt(RECORD, 'never-added', 600), (e) => assert.match(e.message, /did not answer TXT _acme-challenge\.www\.example\.test\. = "never-added" within 600 ms \(it answers no TXT record\)/));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 500 && elapsed < 3000, `waited ${elapsed} ms`);
  });

  it('the solver: a wildcard and the bare name of one order coexist; each removes its own; a second remove is fine', async () => {
    const solver = new Rfc2136Solver(client, { ttl: 30, propagationTimeoutMs: 5000 });
    assert.equal(solver.type, 'dns-01');
    const bareName: Challenge = { identifier: 'shop.example.test', wildcard: false, token: 't1', proof: 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0' };
    const wildcard: Challenge = { identifier: 'shop.example.test', wildcard: true, token: 't2', proof: '9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI' };
    await solver.present(bareName);
    await solver.present(wildcard);
    const name = '_acme-challenge.shop.example.test.';
    assert.deepEqual(await txtValues(named.port, name), [bareName.proof, wildcard.proof].sort());
    await solver.remove(wildcard);
    assert.deepEqual(await txtValues(named.port, name), [bareName.proof]);
    await solver.remove(wildcard);
    await solver.remove(bareName);
    assert.deepEqual(await txtValues(named.port, name), []);
    await solver.remove(bareName);
  });

  it('the solver presents and removes the challenges of an order at once (concurrent updates)', async () => {
    const solver = Rfc2136Solver.fromSettings(settingsFor(named), { propagationTimeoutMs: 5000, timeoutMs: 1000, pollMs: 100 });
    const challenges: Challenge[] = ['a', 'b', 'c'].flatMap((host) => [false, true].map((wildcard) => ({ identifier: `${host}.example.test`, wildcard, token: `${host}${wildcard}`, proof: `proof-${host}-${wildcard ? 'wildcard' : 'bare'}` })));
    await Promise.all(challenges.map((c) => solver.present(c)));
    for (const host of ['a', 'b', 'c']) assert.deepEqual(await txtValues(named.port, `_acme-challenge.${host}.example.test.`), [`proof-${host}-bare`, `proof-${host}-wildcard`]);
    await Promise.all(challenges.map((c) => solver.remove(c)));
    for (const host of ['a', 'b', 'c']) assert.deepEqual(await txtValues(named.port, `_acme-challenge.${host}.example.test.`), []);
  });
});

describe('DNS-01 with other TSIG algorithms', { skip: bind9Unavailable() }, () => {
  const started: Bind9[] = [];
  after(async () => {
    for (const named of started) await named.stop();
  });

  for (const algorithm of ['hmac-sha512', 'hmac-sha1'] as const) {
    it(`adds and removes with ${algorithm} (a key named in mixed case)`, async () => {
      const named = await startBind9({ algorithm, keyName: 'Portico.ACME-key', zone: 'acme.test' });
      started.push(named);
      const client = new Rfc2136Client(settingsFor(named), { timeoutMs: 1000, attempts: 2, pollMs: 100 });
      await client.addTxt('_acme-challenge.acme.test', 'value', 60);
      assert.deepEqual(await txtValues(named.port, '_acme-challenge.acme.test.'), ['value']);
      await client.removeTxt('_acme-challenge.acme.test', 'value');
      assert.deepEqual(await txtValues(named.port, '_acme-challenge.acme.test.'), []);
    });
  }
});

describe('DNS-01 when the server does not answer', () => {
  let silent: Socket | undefined;
  after(() => silent?.close());

  it('gives up after its attempts, naming the server; a closed port fails at once', async () => {
    silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent!.bind(0, '127.0.0.1', resolve));
    const port = silent.address().port;
    const settings = loadAcmeDnsSettings({ ACME_DNS_SERVER: `127.0.0.1:${port}`, ACME_DNS_TSIG_NAME: 'k', ACME_DNS_TSIG_SECRET: Buffer.alloc(32, 1).toString('base64') })!;
    const client = new Rfc2136Client(settings, { timeoutMs: 200, attempts: 2 });
    let begin = Date.now();
    await rejects(client.addTxt('_acme-challenge.example.test', 'x'), (e) => assert.match(e.message, new RegExp(`DNS server 127\\.0\\.0\\.1:${port} did not answer \\(2 attempts of 200 ms over UDP\\)`)));
    let elapsed = Date.now() - begin;
    assert.ok(elapsed >= 350 && elapsed < 2000, `gave up after ${elapsed} ms`);

    silent.close();
    silent = undefined;
    const closed = new Rfc2136Client(settings, { timeoutMs: 2000, attempts: 3 });
    begin = Date.now();
    await rejects(closed.addTxt('_acme-challenge.example.test', 'x'), (e) => assert.match(e.message, new RegExp(`DNS server 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`)));
    elapsed = Date.now() - begin;
    assert.ok(elapsed < 1500, `a closed port took ${elapsed} ms`);
  });
});
