/**
 * The allow-list patterns every value that reaches a config file must match.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  cidrError,
  durationMs,
  isAddress,
  isCidr,
  isDuration,
  isListenHost,
  isPortText,
  isServerName,
  serverNameSchema,
  parseAddress,
} from '../../src/model/net.js';
import { cidrArbitrary, durationArbitrary } from '../helpers/arbitraries.js';

describe('addresses', () => {
  it('accepts DNS names, IPv4 and bracketed IPv6 with a port', () => {
    for (const ok of ['db.internal:5432', 'localhost:1', 'a-b.c-d.example:65535', '10.0.0.1:80', '[::1]:5432', '[2001:db8::1]:443', '[::ffff:10.0.0.1]:9']) {
      assert.ok(isAddress(ok), ok);
    }
  });

  it('answers why an address is refused', () => {
    const refused = parseAddress('db.internal:70000');
    assert.ok('error' in refused && /port "70000" is out of range/.test(refused.error));
    const v6 = parseAddress('[fe80::1%eth0]:1');
    assert.ok('error' in v6);
    for (const socket of ['unix:9000', 'UNIX:9000', 'Unix:1']) {
      const refusedSocket = parseAddress(socket);
      assert.ok('error' in refusedSocket && /Unix socket/.test(refusedSocket.error), socket);
    }
  });

  it('refuses every string holding a character outside the alphabet of host:port', () => {
    const hostile = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => /[^A-Za-z0-9.:\[\]-]/.test(s));
    fc.assert(fc.property(hostile, (text) => !isAddress(text) && !isAddress(`${text}:80`) && !isAddress(`a${text}b:80`)));
  });

  it('what it accepts holds no white space, ;, {, }, #, quote, $ or /', () => {
    const chars = fc.constantFrom(...'abz09.-:[]; {}#"\'$/\\\n\t'.split(''));
    fc.assert(
      fc.property(fc.array(chars, { minLength: 1, maxLength: 30 }).map((a) => a.join('')), (text) => {
        if (isAddress(text)) assert.doesNotMatch(text, /[\s;{}#"'$\/\\]/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('ports in text', () => {
  it('are decimal 1-65535 without sign, space or leading zero', () => {
    for (const ok of ['1', '80', '65535']) assert.ok(isPortText(ok), ok);
    for (const bad of ['0', '65536', '-1', '+1', '01', ' 1', '1 ', '1e3', '1.0', '', 'abc', '0x10']) assert.ok(!isPortText(bad), bad);
  });
});

describe('durations', () => {
  it('are one number and one unit, 1ms to 24h, no unit meaning seconds', () => {
    assert.equal(durationMs('500ms'), 500);
    assert.equal(durationMs('10'), 10_000);
    assert.equal(durationMs('5m'), 300_000);
    for (const ok of ['1ms', '24h', '1d', '86400', '86400000ms', '1440m']) assert.ok(isDuration(ok), ok);
    for (const bad of ['0', '0s', '25h', '2d', '86401s', '1h30m', '10 s', ' 10s', '10s;', '1y', '-1s', '1.5s', '010s', '', 's']) {
      assert.ok(!isDuration(bad), bad);
    }
  });

  it('every generated duration is valid and within 1ms..24h', () => {
    fc.assert(fc.property(durationArbitrary, (d) => isDuration(d) && (durationMs(d) as number) <= 86_400_000));
  });
});

describe('access rule subjects', () => {
  it('are "all", an address, or a network without host bits', () => {
    for (const ok of ['all', '10.0.0.0/8', '192.168.1.7', '0.0.0.0/0', '2001:db8::/32', '::/0', '::1', '::ffff:10.0.0.0/104']) {
      assert.ok(isCidr(ok), ok);
    }
    assert.match(cidrError('10.0.0.1/8') ?? '', /bits set beyond its \/8 prefix/);
    assert.match(cidrError('2001:db8::1/32') ?? '', /bits set beyond its \/32 prefix/);
    assert.match(cidrError('10.0.0.0/33') ?? '', /prefix length must be 0-32/);
    for (const bad of ['ALL', 'all;', '10.0.0.0/8 ', '300.1.1.1', '10.0.0.0/08', 'unix:', 'fe80::1%eth0', '[::1]', '10.0.0.0/8/8', '']) {
      assert.ok(!isCidr(bad), bad);
    }
  });

  it('every generated rule is valid, and none holds a character that could end a directive', () => {
    fc.assert(fc.property(cidrArbitrary, (c) => isCidr(c) && !/[\s;{}#"'$]/.test(c)));
    const hostile = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => /[^0-9A-Fa-f:./al]/.test(s));
    fc.assert(fc.property(hostile, (text) => !isCidr(text)));
  });
});

describe('TLS server names and listen addresses', () => {
  it('server names are lower-case DNS names, with "*." only as the first label', () => {
    for (const ok of ['a.example.com', '*.b.example.com', 'localhost', 'x-1.y']) assert.ok(isServerName(ok), ok);
    for (const bad of ['A.example.com', 'a.*.example.com', '*example.com', 'example.*', '**.a', '*', '.a.com', 'a.com.', 'a b', '1.2.3.4', '~^a$', '$host', 'default', 'include', 'hostnames', 'volatile']) {
      assert.ok(!isServerName(bad), bad);
    }
  });

  it('a wildcard server name needs a label besides the top-level domain: "*.com" is refused, saying why', () => {
    for (const bad of ['*.com', '*.io', '*.localhost', '*.xn--p1ai']) {
      assert.ok(!isServerName(bad), bad);
      const parsed = serverNameSchema.safeParse(bad);
      assert.match(parsed.error?.issues[0]?.message ?? '', /every name under a top-level domain: a wildcard needs at least one label besides the TLD/, bad);
    }
    for (const ok of ['*.example.com', '*.co.uk', 'com', 'localhost']) assert.ok(isServerName(ok), ok);
    assert.doesNotMatch(serverNameSchema.safeParse('A.com').error?.issues[0]?.message ?? '', /top-level/);
  });

  it('listen addresses are IPv4 or bracketed IPv6, without a port', () => {
    for (const ok of ['127.0.0.1', '0.0.0.0', '[::1]', '[::]', '[2001:db8::1]']) assert.ok(isListenHost(ok), ok);
    for (const bad of ['::1', '[::1]:80', '127.0.0.1:80', 'localhost', '[zz::1]', '']) assert.ok(!isListenHost(bad), bad);
  });
});
