/**
 * The allow-list patterns every value that reaches a config file must match.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isAddress, isPortText, parseAddress } from '../../src/model/net.js';

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
