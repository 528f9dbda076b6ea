/**
 * DNS-01's wire side without a server: names, UPDATE messages through dns-packet, TSIG (RFC 8945)
 * checked against MACs computed here from the RFC's layout byte by byte, and the settings schema.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import {
  Rfc2136Client,
  Rfc2136Solver,
  TSIG_ALGORITHMS,
  TsigSecret,
  acmeDnsSettingsSchema,
  challengeRecordName,
  dnsNameProblem,
  encodeQuery,
  encodeUpdate,
  fqdn,
  loadAcmeDnsSettings,
  messageLayout,
  readTsig,
  signMessage,
  verifyAnswer,
  type TsigKey,
} from '../../src/acme/dns01.js';

const SECRET_B64 = 'q83vEjRWeJASNFZ4kKvN7xI0VniQEjRWeJCrze8SNFY=';
const key: TsigKey = { name: 'test-key.', algorithm: 'hmac-sha256', secret: TsigSecret.fromBase64(SECRET_B64) };

/** A name's wire form as RFC 1035 3.1 lays it out, written out here label by label. */
function labels(...parts: string[]): Buffer {
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])), Buffer.from([0])]);
}
/** dns-packet decodes the opcode; its types leave it out. */
const opcodeOf = (decoded: dnsPacket.DecodedPacket): string => (decoded as unknown as { opcode: string }).opcode;
const be = (n: number, bytes: number): Buffer => {
  const b = Buffer.alloc(bytes);
  b.writeUIntBE(n, 0, bytes);
  return b;
};

describe('dns01 names', () => {
  it('takes LDH names and underscore service labels, with or without the trailing dot', () => {
    for (const name of ['example.com', 'example.com.', '_acme-challenge.www.example.com', 'xn--bcher-kva.example', 'a.b-c.d0', 'acme_update', '_25._tcp.mail.example', `${'a'.repeat(63)}.test`]) {
      assert.equal(dnsNameProblem(name), undefined, name);
    }
  });

  it('refuses what is no host name, saying why', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['.', /empty/],
      ['a..b', /empty label/],
      ['.a', /empty label/],
      ['*.example.com', /not letters, digits/],
      ['-a.example', /not letters, digits/],
      ['a-.example', /not letters, digits/],
      ['a b.example', /not letters, digits/],
      ['a;b.example', /not letters, digits/],
      ['a\u0000b.example', /not letters, digits/],
      [`${'a'.repeat(64)}.test`, /label of 64 characters/],
      [`${'abcdefghi.'.repeat(26)}com`, /characters long \(at most 253\)/],
    ];
    for (const [name, why] of cases) assert.match(dnsNameProblem(name) ?? 'accepted', why, JSON.stringify(name));
    assert.throws(() => fqdn('bad name'), /name "bad name" has a label/);
  });

  it('puts the challenge at _acme-challenge.<identifier>., lowercase and absolute', () => {
    assert.equal(challengeRecordName('Shop.Example.COM'), '_acme-challenge.shop.example.com.');
    assert.equal(challengeRecordName('example.com.'), '_acme-challenge.example.com.');
    assert.throws(() => challengeRecordName('*.example.com'), /identifier/);
  });
});

const labelArb = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/);
const nameArb = fc.array(labelArb, { minLength: 1, maxLength: 6 }).map((l) => `${l.join('.')}.`).filter((n) => n.length <= 200);
const txtArb = fc.stringMatching(/^[\x20-\x7e]{1,255}$/);

describe('dns01 messages through dns-packet', () => {
  it('an UPDATE decodes back to its zone, records, TTLs, values and classes (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        nameArb,
        fc.array(fc.record({ label: labelArb, value: txtArb, ttl: fc.integer({ min: 0, max: 86400 }), remove: fc.boolean() }), { minLength: 1, maxLength: 5 }),
        (id, zone, records) => {
          const updates = records.map((r) => ({ name: `_acme-challenge.${r.label}.${zone}`, class: r.remove ? ('NONE' as const) : ('IN' as const), ttl: r.remove ? 0 : r.ttl, value: r.value }));
          const wire = encodeUpdate(id, zone, updates);
          const decoded = dnsPacket.decode(wire);
          assert.equal(decoded.id, id);
          assert.equal(opcodeOf(decoded), 'UPDATE');
          assert.equal(decoded.flag_qr, false);
          assert.deepEqual(decoded.questions, [{ name: zone.slice(0, -1), type: 'SOA', class: 'IN' }]);
          assert.equal(decoded.answers?.length, 0);
          assert.equal(decoded.additionals?.length, 0);
          const authorities = decoded.authorities ?? [];
          assert.equal(authorities.length, updates.length);
          updates.forEach((u, i) => {
            const rr = authorities[i] as dnsPacket.TxtAnswer;
            assert.equal(rr.name, u.name.slice(0, -1));
            assert.equal(rr.type, 'TXT');
            assert.equal(rr.class, u.class === 'NONE' ? 'UNKNOWN_254' : 'IN');
            assert.equal(rr.ttl, u.ttl);
            assert.deepEqual((rr.data as Buffer[]).map((b) => b.toString()), [u.value]);
          });
          // The walker agrees with dns-packet on where each record ends.
          const layout = messageLayout(wire);
          assert.equal(layout.authorities.at(-1)?.end, wire.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a delete of a whole RRset is class ANY with no RDATA', () => {
    const wire = encodeUpdate(7, 'example.test.', [{ name: 'x.example.test.', class: 'ANY', ttl: 0 }]);
    const span = messageLayout(wire).authorities[0]!;
    assert.equal(wire.readUInt16BE(span.fixed + 2), 255);
    assert.equal(wire.readUInt16BE(span.fixed + 8), 0);
    assert.equal(span.end, wire.length);
  });

  it('a query asks no recursion and names its type', () => {
    const decoded = dnsPacket.decode(encodeQuery(9, 'a.example.test.', 'TXT'));
    assert.equal(decoded.flag_rd, false);
    assert.equal(opcodeOf(decoded), 'QUERY');
    assert.deepEqual(decoded.questions, [{ name: 'a.example.test', type: 'TXT', class: 'IN' }]);
  });

  it('walks compressed names as a server writes them', () => {
    // A response to TXT a.example.test whose answer's owner is a pointer to the question's name (offset 12).
    const question = Buffer.concat([labels('a', 'example', 'test'), be(16, 2), be(1, 2)]);
    const answer = Buffer.concat([Buffer.from([0xc0, 12]), be(16, 2), be(1, 2), be(60, 4), be(4, 2), Buffer.from([3, 0x61, 0x62, 0x63])]);
    const header = Buffer.concat([be(1, 2), be(0x8400, 2), be(1, 2), be(1, 2), be(0, 2), be(0, 2)]);
    const wire = Buffer.concat([header, question, answer]);
    const layout = messageLayout(wire);
    assert.equal(layout.answers[0]?.start, 12 + question.length);
    assert.equal(layout.answers[0]?.end, wire.length);
    const decoded = dnsPacket.decode(wire);
    assert.equal(decoded.answers?.[0]?.name, 'a.example.test');
  });
});

describe('dns01 TSIG (RFC 8945)', () => {
  const TIME = 1_700_000_000; // 0x6553f100

  it('signs a known message: the record and the MAC are the RFC layout, computed here independently', () => {
    // The message: ID 0x1234, opcode UPDATE, zone example.test SOA IN, no records, written out by hand.
    const message = Buffer.concat([be(0x1234, 2), be(5 << 11, 2), be(1, 2), be(0, 2), be(0, 2), be(0, 2), labels('example', 'test'), be(6, 2), be(1, 2)]);
    assert.deepEqual(encodeUpdate(0x1234, 'example.test.', []), message, 'encodeUpdate lays the message out as written by hand');
    const signed = signMessage(message, key, TIME, 300);

    // RFC 8945 4.3.3: the digest is the message, then the TSIG variables: key name (canonical), class
    // ANY, TTL 0, algorithm name (canonical), time signed (48 bits), fudge, error, other len, other data.
    const variables = Buffer.concat([labels('test-key'), Buffer.from([0x00, 0xff]), Buffer.from([0, 0, 0, 0]), labels('hmac-sha256'), Buffer.from([0x00, 0x00, 0x65, 0x53, 0xf1, 0x00]), Buffer.from([0x01, 0x2c]), Buffer.from([0, 0]), Buffer.from([0, 0])]);
    const expectedMac = createHmac('sha256', Buffer.from(SECRET_B64, 'base64')).update(Buffer.concat([message, variables])).digest();
    assert.equal(expectedMac.length, 32);
    assert.deepEqual(signed.mac, expectedMac);

    // RFC 8945 4.2: the record, last in the additional section (ARCOUNT 1).
    const rdata = Buffer.concat([labels('hmac-sha256'), Buffer.from([0x00, 0x00, 0x65, 0x53, 0xf1, 0x00]), Buffer.from([0x01, 0x2c]), Buffer.from([0x00, 0x20]), expectedMac, Buffer.from([0x12, 0x34]), Buffer.from([0, 0]), Buffer.from([0, 0])]);
    const record = Buffer.concat([labels('test-key'), Buffer.from([0x00, 0xfa]), Buffer.from([0x00, 0xff]), Buffer.from([0, 0, 0, 0]), be(rdata.length, 2), rdata]);
    const expectedWire = Buffer.concat([message, record]);
    expectedWire.writeUInt16BE(1, 10);
    assert.deepEqual(signed.wire, expectedWire);

    // dns-packet reads it as a TSIG record of class ANY from test-key.
    const decoded = dnsPacket.decode(signed.wire);
    assert.equal(decoded.additionals?.[0]?.type, 'TSIG');
    assert.equal(decoded.additionals?.[0]?.name, 'test-key');
  });

  it('uses each algorithm\'s hash and full MAC length; key names are canonical (lowercase) in the MAC', () => {
    const sizes = { 'hmac-sha256': 32, 'hmac-sha384': 48, 'hmac-sha512': 64, 'hmac-sha224': 28, 'hmac-sha1': 20 } as const;
    const message = encodeQuery(1, 'example.test.', 'SOA');
    for (const algorithm of TSIG_ALGORITHMS) {
      const signed = signMessage(message, { ...key, name: 'Test-Key.', algorithm }, TIME, 300);
      assert.equal(signed.mac.length, sizes[algorithm], algorithm);
      const variables = Buffer.concat([labels('test-key'), be(255, 2), be(0, 4), labels(algorithm), be(TIME, 6), be(300, 2), be(0, 2), be(0, 2)]);
      const hash = algorithm.slice('hmac-'.length);
      assert.deepEqual(signed.mac, createHmac(hash, Buffer.from(SECRET_B64, 'base64')).update(Buffer.concat([message, variables])).digest(), algorithm);
    }
  });

  /** A response signed by hand as a server would (RFC 8945 4.3.1: request MAC with its size first). */
  function serverAnswer(options: { requestMac: Buffer; time?: number; error?: number; keyName?: string; mac?: Buffer; other?: Buffer; rcode?: number; secret?: string }): Buffer {
    const time = options.time ?? TIME;
    const other = options.other ?? Buffer.alloc(0);
    const keyLabels = labels(...(options.keyName ?? 'test-key').split('.'));
    const message = Buffer.concat([be(0x4321, 2), be(0x8000 | (5 << 11) | (options.rcode ?? 0), 2), be(1, 2), be(0, 2), be(0, 2), be(0, 2), labels('example', 'test'), be(6, 2), be(1, 2)]);
    const variables = Buffer.concat([keyLabels, be(255, 2), be(0, 4), labels('hmac-sha256'), be(time, 6), be(300, 2), be(options.error ?? 0, 2), be(other.length, 2), other]);
    const mac = options.mac ?? createHmac('sha256', Buffer.from(options.secret ?? SECRET_B64, 'base64')).update(Buffer.concat([be(options.requestMac.length, 2), options.requestMac, message, variables])).digest();
    const rdata = Buffer.concat([labels('hmac-sha256'), be(time, 6), be(300, 2), be(mac.length, 2), mac, be(0x4321, 2), be(options.error ?? 0, 2), be(other.length, 2), other]);
    const wire = Buffer.concat([message, keyLabels, be(250, 2), be(255, 2), be(0, 4), be(rdata.length, 2), rdata]);
    wire.writeUInt16BE(1, 10);
    return wire;
  }

  it('verifies a server\'s signed answer and gives back the message without the record', () => {
    const requestMac = Buffer.alloc(32, 7);
    const answer = serverAnswer({ requestMac });
    const unsigned = verifyAnswer(answer, key, requestMac, TIME + 10);
    assert.equal(unsigned.readUInt16BE(10), 0);
    assert.deepEqual(unsigned, Buffer.from(answer.subarray(0, readTsig(answer)?.unsigned.length)).fill(0, 10, 12));
    assert.equal(dnsPacket.decode(unsigned).additionals?.length, 0);
  });

  it('refuses an altered answer, another request\'s answer, a wrong key, an old signature, an unsigned answer', () => {
    const requestMac = Buffer.alloc(32, 7);
    const answer = serverAnswer({ requestMac });
    const altered = Buffer.from(answer);
    altered[3] = 5; // the rcode, under the MAC
    assert.throws(() => verifyAnswer(altered, key, requestMac, TIME), (e: Error & { tsigError?: string }) => /wrong TSIG MAC/.test(e.message) && e.tsigError === 'BADSIG');
    assert.throws(() => verifyAnswer(answer, key, Buffer.alloc(32, 8), TIME), /wrong TSIG MAC/);
    assert.throws(() => verifyAnswer(serverAnswer({ requestMac, secret: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' }), key, requestMac, TIME), /wrong TSIG MAC/);
    assert.throws(() => verifyAnswer(serverAnswer({ requestMac, keyName: 'other-key' }), key, requestMac, TIME), /signed with key other-key\./);
    assert.throws(() => verifyAnswer(answer, key, requestMac, TIME + 301), (e: Error & { tsigError?: string }) => /more than 300 s/.test(e.message) && e.tsigError === 'BADTIME');
    assert.doesNotThrow(() => verifyAnswer(answer, key, requestMac, TIME - 300));
    const unsignedAnswer = dnsPacket.encode({ type: 'response', id: 1, flags: 5 << 11 | 5, questions: [{ name: 'example.test', type: 'SOA', class: 'IN' }] });
    assert.throws(() => verifyAnswer(unsignedAnswer, key, requestMac, TIME), /the answer \(REFUSED\) is not signed/);
  });

  it('names the server\'s TSIG error: BADSIG, BADKEY, BADTIME (with the server\'s clock)', () => {
    const requestMac = Buffer.alloc(32, 7);
    const empty = Buffer.alloc(0);
    assert.throws(() => verifyAnswer(serverAnswer({ requestMac, error: 16, mac: empty, rcode: 9 }), key, requestMac, TIME), (e: Error & { rcode?: string; tsigError?: string }) => /^NOTAUTH\/BADSIG: .*ACME_DNS_TSIG_SECRET/.test(e.message) && e.rcode === 'NOTAUTH' && e.tsigError === 'BADSIG');
    assert.throws(() => verifyAnswer(serverAnswer({ requestMac, error: 17, mac: empty, rcode: 9 }), key, requestMac, TIME), /NOTAUTH\/BADKEY: .*ACME_DNS_TSIG_NAME/);
    assert.throws(() => verifyAnswer(serverAnswer({ requestMac, error: 18, rcode: 9, other: be(TIME + 1000, 6) }), key, requestMac, TIME), /NOTAUTH\/BADTIME: .*server's time is 2023-11-14T22:30:00.000Z/);
  });
});

describe('dns01 settings', () => {
  const good = { ACME_DNS_SERVER: '192.0.2.53', ACME_DNS_TSIG_NAME: 'portico-acme', ACME_DNS_TSIG_SECRET: SECRET_B64 };

  it('none given: no DNS-01', () => {
    assert.equal(loadAcmeDnsSettings({}), undefined);
    assert.equal(loadAcmeDnsSettings({ ACME_DNS_SERVER: '' }), undefined);
  });

  it('parses the server (port 53 by default; IPv4, IPv6 in brackets or bare, host names), the key, hmac-sha256 by default', () => {
    const s = loadAcmeDnsSettings(good);
    assert.deepEqual(s?.server, { host: '192.0.2.53', port: 53 });
    assert.equal(s?.tsig.name, 'portico-acme.');
    assert.equal(s?.tsig.algorithm, 'hmac-sha256');
    assert.deepEqual(s?.tsig.secret.bytes(), Buffer.from(SECRET_B64, 'base64'));
    assert.deepEqual(loadAcmeDnsSettings({ ...good, ACME_DNS_SERVER: '127.0.0.1:5353' })?.server, { host: '127.0.0.1', port: 5353 });
    assert.deepEqual(loadAcmeDnsSettings({ ...good, ACME_DNS_SERVER: '[2001:db8::53]:5300' })?.server, { host: '2001:db8::53', port: 5300 });
    assert.deepEqual(loadAcmeDnsSettings({ ...good, ACME_DNS_SERVER: '2001:db8::53' })?.server, { host: '2001:db8::53', port: 53 });
    assert.deepEqual(loadAcmeDnsSettings({ ...good, ACME_DNS_SERVER: 'ns1.example.com:53' })?.server, { host: 'ns1.example.com', port: 53 });
    assert.equal(loadAcmeDnsSettings({ ...good, ACME_DNS_TSIG_ALGORITHM: 'HMAC-SHA512' })?.tsig.algorithm, 'hmac-sha512');
  });

  it('each bad value names its variable and the rule', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ ...good, ACME_DNS_SERVER: 'ns1.example.com:0' }, /ACME_DNS_SERVER: must have a port from 1 to 65535/],
      [{ ...good, ACME_DNS_SERVER: '127.0.0.1:65536' }, /ACME_DNS_SERVER: must have a port/],
      [{ ...good, ACME_DNS_SERVER: 'ns 1:53' }, /ACME_DNS_SERVER: must be HOST or HOST:PORT/],
      [{ ...good, ACME_DNS_SERVER: '[ns1]:53' }, /ACME_DNS_SERVER: must hold an IPv6 address/],
      [{ ...good, ACME_DNS_SERVER: '2001:db8::53:zz' }, /ACME_DNS_SERVER: must be HOST or HOST:PORT \(an IPv6 address with a port goes in brackets/],
      [{ ...good, ACME_DNS_TSIG_NAME: '' }, /ACME_DNS_TSIG_NAME: is required with ACME_DNS_SERVER/],
      [{ ...good, ACME_DNS_TSIG_NAME: 'bad key' }, /ACME_DNS_TSIG_NAME: must be a key name/],
      [{ ...good, ACME_DNS_TSIG_ALGORITHM: 'hmac-md5' }, /ACME_DNS_TSIG_ALGORITHM: must be one of hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1/],
      [{ ...good, ACME_DNS_TSIG_SECRET: '' }, /ACME_DNS_TSIG_SECRET: is required with ACME_DNS_SERVER/],
      [{ ...good, ACME_DNS_TSIG_SECRET: 'not base64!' }, /ACME_DNS_TSIG_SECRET: must be base64/],
      [{ ...good, ACME_DNS_TSIG_SECRET: 'c2hvcnQ=' }, /ACME_DNS_TSIG_SECRET: must hold at least 16 bytes/],
      [{ ACME_DNS_TSIG_NAME: 'k' }, /ACME_DNS_TSIG_NAME: is for DNS-01, which needs ACME_DNS_SERVER/],
    ];
    for (const [env, rule] of cases) assert.throws(() => loadAcmeDnsSettings(env), rule, JSON.stringify({ ...env, ACME_DNS_TSIG_SECRET: '…' }));
  });

  it('the secret appears in no error, JSON, toString or inspect', () => {
    const secrets = ['c2hvcnQ=', 'not base64 but secret!', `${SECRET_B64}x`];
    for (const secret of secrets) {
      const result = acmeDnsSettingsSchema.safeParse({ ...good, ACME_DNS_TSIG_SECRET: secret });
      assert.equal(result.success, false);
      const text = `${JSON.stringify(result.error)} ${String(result.error)} ${inspect(result.error, { depth: 10 })}`;
      assert.ok(!text.includes(secret), `the error quotes the secret ${secret}`);
      assert.throws(() => loadAcmeDnsSettings({ ...good, ACME_DNS_TSIG_SECRET: secret }), (e: Error) => !e.message.includes(secret) && !inspect(e).includes(secret));
    }
    const settings = loadAcmeDnsSettings(good)!;
    const hex = Buffer.from(SECRET_B64, 'base64').toString('hex');
    const client = new Rfc2136Client(settings);
    const solver = new Rfc2136Solver(client);
    for (const text of [JSON.stringify(settings), String(settings.tsig.secret), inspect(settings, { depth: 10, showHidden: true }), inspect(client, { depth: 10, showHidden: true }), String(client), String(solver), inspect(solver, { depth: 10, showHidden: true })]) {
      assert.ok(!text.includes(SECRET_B64) && !text.includes(hex), text);
    }
    assert.equal(JSON.stringify(settings.tsig.secret), '"[redacted]"');
  });
});
