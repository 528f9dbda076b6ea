/**
 * What the API trusts from browsers, judged without a socket: Host and Origin spellings, Fetch
 * Metadata, absolute-form targets, repeated headers, and the two settings' lists.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeRequest, type GuardPolicy, type RequestFacts } from '../../src/api/browser-guard.js';
import { addressName, parseHost, parseOrigin } from '../../src/model/api-host.js';
import { loadSettings } from '../../src/settings.js';

const POLICY: GuardPolicy = { bindAddress: '127.0.0.1', allowedHosts: [], allowedOrigins: new Set() };

/** A request as curl sends it to 127.0.0.1:5000, with `changes` on top. */
function facts(changes: Partial<RequestFacts> = {}): RequestFacts {
  return { hosts: ['127.0.0.1:5000'], origins: [], fetchSites: [], target: '/v1/status', httpVersion: '1.1', localAddress: '127.0.0.1', localPort: 5000, ...changes };
}

function judged(changes: Partial<RequestFacts>, policy: GuardPolicy = POLICY): string {
  const verdict = judgeRequest(facts(changes), policy);
  return verdict.allowed ? 'allowed' : `${verdict.error.kind} ${verdict.error.field}: ${verdict.error.message}`;
}

describe('Host', () => {
  it('lets a script through: every loopback spelling with the API port or none, in any case, with a trailing dot', () => {
    for (const host of [
      '127.0.0.1:5000', 'localhost:5000', '[::1]:5000', 'LOCALHOST:5000', 'LocalHost', 'localhost.:5000', '127.0.0.1.:5000',
      '127.0.0.1', '[0:0:0:0:0:0:0:1]:5000', '[::1]', '127.1:5000', '0x7f.0.0.1:5000',
    ]) {
      assert.equal(judged({ hosts: [host] }), 'allowed', host);
    }
  });

  it('answers 403 naming API_ALLOWED_HOSTS for any other name, port or spelling', () => {
    for (const host of [
      'attacker.example:5000', 'attacker.example', 'localhost:5001', '127.0.0.1:80', '127.0.0.2:5000', '[::2]:5000',
      '127.0.0.1:5000@evil', 'evil@127.0.0.1:5000', '127.0.0.1:5000:5000', '127.0.0.1 :5000', 'local host', '127.0.0.1:5000/x',
      'localhost..', '.localhost', 'localhost:', ':5000', '', '[::1', '::1', '[::ffff:127.0.0.1]:5000', '[fe80::1%25lo]:5000',
      'localhost%2e', 'xn--localhost', 'localhost:05000x', 'localhost:0', 'localhost:65536', 'ｌｏｃａｌｈｏｓｔ:5000',
      'localhost.attacker.example:5000', '127.0.0.1.attacker.example', 'localhost\t:5000',
    ]) {
      const verdict = judged({ hosts: [host] });
      assert.match(verdict, /^Forbidden Host: Host: ".*" does not name this API: .* API_ALLOWED_HOSTS$/, `${JSON.stringify(host)}: ${verdict}`);
    }
  });

  it('answers 400 to two Host headers, even both right, and to HTTP/1.1 without one; HTTP/1.0 may leave it out', () => {
    assert.match(judged({ hosts: ['127.0.0.1:5000', '127.0.0.1:5000'] }), /^InvalidInput Host: Host: appears 2 times/);
    assert.match(judged({ hosts: ['127.0.0.1:5000', 'attacker.example'] }), /^InvalidInput Host/);
    assert.match(judged({ hosts: [] }), /^InvalidInput Host: Host: is required/);
    assert.equal(judged({ hosts: [], httpVersion: '1.0' }), 'allowed');
  });

  it('takes the address the connection reached and BIND_ADDRESS as names: with 0.0.0.0, the interface the client used', () => {
    const anyAddress: GuardPolicy = { ...POLICY, bindAddress: '0.0.0.0' };
    assert.equal(judged({ hosts: ['10.1.2.3:5000'], localAddress: '10.1.2.3' }, anyAddress), 'allowed');
    assert.equal(judged({ hosts: ['10.1.2.3:5000'], localAddress: '::ffff:10.1.2.3' }, anyAddress), 'allowed');
    assert.equal(judged({ hosts: ['0.0.0.0:5000'], localAddress: '127.0.0.1' }, anyAddress), 'allowed');
    assert.match(judged({ hosts: ['10.9.9.9:5000'], localAddress: '10.1.2.3' }, anyAddress), /^Forbidden Host/);
    assert.match(judged({ hosts: ['portico:5000'], localAddress: '10.1.2.3' }, anyAddress), /^Forbidden Host/);
    const v6: GuardPolicy = { ...POLICY, bindAddress: '::' };
    assert.equal(judged({ hosts: ['[2001:db8::5]:5000'], localAddress: '2001:db8::5' }, v6), 'allowed');
    assert.equal(judged({ hosts: ['[::]:5000'], localAddress: '::1' }, v6), 'allowed');
  });

  it('adds the names of API_ALLOWED_HOSTS, with the API port (or none) unless the entry gives its own', () => {
    const policy: GuardPolicy = { ...POLICY, allowedHosts: loadSettings({ API_ALLOWED_HOSTS: 'portico, nginx  api.example.com:8443,[2001:db8::1]' }).apiAllowedHosts };
    for (const host of ['portico:5000', 'PORTICO', 'nginx:5000', 'api.example.com:8443', '[2001:db8::1]:5000']) assert.equal(judged({ hosts: [host] }, policy), 'allowed', host);
    for (const host of ['portico:5001', 'api.example.com', 'api.example.com:5000', 'other:5000']) assert.match(judged({ hosts: [host] }, policy), /^Forbidden Host/, host);
  });

  it('checks the authority of an absolute-form target as well as Host, and refuses other target forms', () => {
    assert.equal(judged({ target: 'http://localhost:5000/v1/status' }), 'allowed');
    assert.match(judged({ target: 'http://attacker.example:5000/v1/status' }), /^Forbidden request target: .*"attacker.example:5000" does not name this API/);
    assert.match(judged({ target: 'http://127.0.0.1:5000@attacker.example/v1/status' }), /^Forbidden request target/);
    assert.match(judged({ target: 'HTTP://attacker.example/' }), /^Forbidden request target/);
    assert.match(judged({ target: '*' }), /^InvalidInput request target/);
    assert.match(judged({ target: 'localhost:5000' }), /^InvalidInput request target/);
  });
});

describe('Origin and Sec-Fetch-Site', () => {
  it('lets the API\'s own origins through: http, one of its names, the port the request went to', () => {
    for (const origin of ['http://127.0.0.1:5000', 'http://localhost:5000', 'http://[::1]:5000', 'HTTP://LOCALHOST:5000']) {
      assert.equal(judged({ origins: [origin], fetchSites: ['same-origin'] }), 'allowed', origin);
    }
    assert.equal(judged({ hosts: ['localhost'], origins: ['http://localhost'] }), 'allowed');
  });

  it('answers 403 naming API_ALLOWED_ORIGINS to any other origin, null and malformed ones included', () => {
    for (const origin of [
      'http://attacker.example', 'http://attacker.example:5000', 'http://localhost', 'http://localhost:3000', 'https://localhost:5000',
      'null', 'NULL', '', '*', 'http://localhost:5000/', 'http://localhost:5000 http://attacker.example', 'http://localhost:5000, http://x',
      'file://', 'chrome-extension://abcdef', 'http://user@localhost:5000', 'http://localhost:5000@attacker.example', 'localhost:5000',
    ]) {
      assert.match(judged({ origins: [origin] }), /^Forbidden Origin: Origin: ".*" is neither this API's origin nor listed in API_ALLOWED_ORIGINS/, JSON.stringify(origin));
    }
    assert.match(judged({ origins: ['http://localhost:5000', 'http://localhost:5000'] }), /^InvalidInput Origin: Origin: appears 2 times/);
  });

  it('answers 403 to a request a browser marks cross-site or same-site, and to unknown marks; same-origin and none pass', () => {
    for (const site of ['cross-site', 'same-site', 'CROSS-SITE', ' same-site ', 'other', '']) {
      assert.match(judged({ fetchSites: [site] }), /^Forbidden Sec-Fetch-Site: .*API_ALLOWED_ORIGINS/, JSON.stringify(site));
    }
    assert.equal(judged({ fetchSites: ['same-origin'] }), 'allowed');
    assert.equal(judged({ fetchSites: ['none'] }), 'allowed');
    assert.match(judged({ fetchSites: ['none', 'none'] }), /^InvalidInput Sec-Fetch-Site/);
  });

  it('lets a cross-site request from an origin of API_ALLOWED_ORIGINS through, and names it for CORS', () => {
    const policy: GuardPolicy = { ...POLICY, allowedOrigins: new Set(loadSettings({ API_ALLOWED_ORIGINS: 'https://ops.example.com/ http://LOCALHOST:3000' }).apiAllowedOrigins) };
    assert.deepEqual(judgeRequest(facts({ origins: ['https://ops.example.com'], fetchSites: ['cross-site'] }), policy), { allowed: true, corsOrigin: 'https://ops.example.com' });
    assert.deepEqual(judgeRequest(facts({ origins: ['http://localhost:3000'], fetchSites: ['same-site'] }), policy), { allowed: true, corsOrigin: 'http://localhost:3000' });
    // An <img> carries no Origin: being listed cannot help it.
    assert.match(judged({ fetchSites: ['cross-site'] }, policy), /^Forbidden Sec-Fetch-Site/);
    assert.match(judged({ origins: ['https://ops.example.com:444'], fetchSites: ['cross-site'] }, policy), /^Forbidden Origin/);
    // The Host check comes first: a listed origin does not make a rebound name the API's.
    assert.match(judged({ hosts: ['attacker.example:5000'], origins: ['https://ops.example.com'] }, policy), /^Forbidden Host/);
  });
});

describe('the grammar and the settings', () => {
  it('canonicalizes host names and addresses as a browser does', () => {
    assert.deepEqual(parseHost('LocalHost.:05000'), { name: 'localhost', port: 5000 });
    assert.deepEqual(parseHost('[0:0::1]'), { name: '[::1]', port: undefined });
    assert.equal(parseHost('1.2.3.999'), undefined);
    assert.equal(addressName('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(addressName('::1'), '[::1]');
    assert.equal(parseOrigin('HTTPS://Ops.Example.com:443')?.text, 'https://ops.example.com');
  });

  it('refuses at start-up a list entry that is not a host, or not an origin, naming the variable', () => {
    for (const [name, value] of [
      ['API_ALLOWED_HOSTS', 'http://portico'], ['API_ALLOWED_HOSTS', '*.example.com'], ['API_ALLOWED_HOSTS', 'a/b'], ['API_ALLOWED_HOSTS', 'x:99999'],
      ['API_ALLOWED_ORIGINS', 'null'], ['API_ALLOWED_ORIGINS', '*'], ['API_ALLOWED_ORIGINS', 'ops.example.com'], ['API_ALLOWED_ORIGINS', 'https://ops.example.com/app'],
      ['API_ALLOWED_ORIGINS', 'ftp://ops.example.com'],
    ] as const) {
      assert.throws(() => loadSettings({ [name]: value }), new RegExp(`${name}: "`), `${name}=${value}`);
    }
    const s = loadSettings({});
    assert.deepEqual([s.apiAllowedHosts, s.apiAllowedOrigins], [[], []]);
  });
});
