/**
 * Upstreams that lead back into this host's own listeners: every spelling of this host reaches it,
 * through every upstream list of a stream or app; a stream may not feed itself or close a ring of
 * streams; a stream may still lead to the apps' listeners and elsewhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appSchema, type App } from '../../src/model/app.js';
import { appLoopIssue, isThisHost, streamLoopIssue, type HostFacts, type OwnListeners } from '../../src/model/loopback.js';
import { streamSchema, type Stream } from '../../src/model/stream.js';

const own: OwnListeners = { apiPort: 5000, appPorts: [{ port: 8080, setting: 'HTTP_PORT' }, { port: 8443, setting: 'HTTPS_PORT' }] };
const names: Record<string, string[]> = { localhost: ['127.0.0.1', '::1'], 'api.internal': ['192.0.2.2'], 'db.example': ['203.0.113.7'], 'mapped.example': ['::ffff:127.0.0.9'] };
const facts: HostFacts = { hostAddresses: ['127.0.0.1', '::1', '192.0.2.2', 'fd00::2'], resolved: (name) => names[name] };
const stream = (port: number, fields: Record<string, unknown>): Stream => streamSchema.parse({ port, ...fields });
const one = (address: string) => ({ upstreams: [{ address }] });
const issue = (s: Stream, others: Stream[] = []) => streamLoopIssue(s, new Map(others.map((o) => [o.port, o])), own, facts);

describe('this host, in any spelling', () => {
  it('reaches it: 127.0.0.0/8, 0.0.0.0, ::1, ::, IPv4-mapped IPv6, and the host\'s own addresses', () => {
    for (const ip of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '0.0.0.0', '::1', '0:0:0:0:0:0:0:1', '::', '::ffff:127.0.0.1', '::ffff:7f00:1', '::FFFF:127.1.2.3', '::ffff:0.0.0.0', '192.0.2.2', '::ffff:192.0.2.2', 'fd00::2', 'FD00:0::2']) {
      assert.ok(isThisHost(ip, facts.hostAddresses), ip);
    }
  });

  it('does not reach it: other addresses, IPv4-compatible IPv6, names (which must be resolved first)', () => {
    for (const ip of ['128.0.0.1', '126.255.255.255', '10.0.0.1', '192.0.2.3', '::2', '::127.0.0.1', 'fd00::3', '::ffff:10.0.0.1', 'localhost', '']) {
      assert.ok(!isThisHost(ip, facts.hostAddresses), ip);
    }
  });
});

describe('streams that lead back into this host', () => {
  it('refuses Portico\'s API on every upstream list, in every spelling, naming the field', () => {
    const api = ['127.0.0.1:5000', '127.0.0.2:5000', '0.0.0.0:5000', '[::1]:5000', '[::]:5000', '[::ffff:127.0.0.1]:5000', 'localhost:5000', 'api.internal:5000', 'mapped.example:5000', '192.0.2.2:5000'];
    for (const address of api) {
      const found = issue(stream(9000, one(address)));
      assert.deepEqual(found?.path, ['upstreams', 0, 'address'], address);
      assert.match(found?.message ?? '', /is Portico's own API \(BIND_PORT 5000 on this host\): this stream would expose it to every client of port 9000/);
    }
    assert.match(issue(stream(9000, one('localhost:5000')))?.message ?? '', /"localhost:5000" \("localhost" resolves to 127\.0\.0\.1\)/);
    const sni = (routes: unknown, dflt?: unknown) => stream(9000, { sni: { routes, ...(dflt !== undefined && { default: dflt }) } });
    const ok = [{ address: '10.0.0.1:443' }];
    assert.deepEqual(issue(stream(9000, { upstreams: [{ address: '10.0.0.1:80' }, { address: '127.0.0.3:5000', backup: true }] }))?.path, ['upstreams', 1, 'address']);
    assert.deepEqual(issue(sni([{ serverName: 'a.example.com', upstreams: ok }, { serverName: 'b.example.com', upstreams: [{ address: '[::1]:5000' }] }]))?.path, ['sni', 'routes', 1, 'upstreams', 0, 'address']);
    assert.deepEqual(issue(sni([{ serverName: 'a.example.com', upstreams: ok }], [{ address: '127.0.0.1:5000' }]))?.path, ['sni', 'default', 0, 'address']);
  });

  it('takes the API port elsewhere, and a UDP-only stream to it (the API is TCP)', () => {
    for (const address of ['10.0.0.1:5000', 'db.example:5000', 'unknown.example:5000', '[fd00::3]:5000']) assert.equal(issue(stream(9000, one(address))), undefined, address);
    assert.equal(issue(stream(9000, { protocol: 'udp', ...one('127.0.0.1:5000') })), undefined);
    assert.notEqual(issue(stream(9000, { protocol: 'tcp+udp', ...one('127.0.0.1:5000') })), undefined);
  });

  it('refuses a stream whose upstream is its own listener, on TCP or UDP', () => {
    for (const [protocol, address] of [['tcp', '127.0.0.1:9000'], ['udp', '[::ffff:127.0.0.1]:9000'], ['tcp', 'localhost:9000'], ['tcp', '0.0.0.0:9000']] as const) {
      const found = issue(stream(9000, { protocol, ...one(address) }));
      assert.match(found?.message ?? '', /is this stream's own listener \(port 9000 on this host\): each connection would connect to it again, until nginx runs out of connections/, address);
    }
    assert.equal(issue(stream(9000, one('10.0.0.1:9000'))), undefined);
  });

  it('refuses the stream that closes a ring of streams, naming the way back; a chain that ends elsewhere is fine', () => {
    const a = stream(9001, one('127.0.0.1:9002'));
    const b = stream(9002, one('localhost:9003'));
    const c = stream(9003, one('10.0.0.1:80'));
    assert.equal(issue(a, [b, c]), undefined, 'a chain to a real backend');
    const closing = stream(9003, one('127.0.0.1:9001'));
    assert.match(issue(closing, [a, b])?.message ?? '', /"127\.0\.0\.1:9001" leads back to this stream through stream 9001, then stream 9002: connections would go round/);
    const pair = stream(9002, one('[::1]:9001'));
    assert.match(issue(pair, [a])?.message ?? '', /through stream 9001:/);
    // The previous version of the stream being replaced is not a way back.
    assert.equal(issue(stream(9002, one('10.0.0.1:80')), [a, stream(9002, one('127.0.0.1:9001'))]), undefined);
    // Only upstreams with a protocol in common with the next stream connect to it.
    assert.equal(issue(stream(9002, { protocol: 'udp', ...one('127.0.0.1:9001') }), [a]), undefined);
  });

  it('lets a stream lead to the apps\' listeners (that is no loop)', () => {
    assert.equal(issue(stream(9000, one('127.0.0.1:8080'))), undefined);
    assert.equal(issue(stream(9000, one('localhost:8443'))), undefined);
  });
});

describe('apps that lead back into this host', () => {
  const app = (address: string): App => appSchema.parse({ name: 'a', serverNames: ['a.example.com'], routes: [{ upstreams: [{ address: '10.0.0.1:80' }] }, { path: '/x', upstreams: [{ address }] }] });

  it('refuses Portico\'s API and the apps\' own listeners in any spelling, naming the field', () => {
    for (const [address, reason] of [
      ['127.0.0.1:5000', /Portico's own API \(BIND_PORT 5000 on this host\): this app would expose it/],
      ['[::ffff:127.0.0.1]:5000', /Portico's own API/],
      ['localhost:8080', /the apps' own listener \(HTTP_PORT 8080 on this host\): each request would come back to this app/],
      ['127.0.0.9:8443', /the apps' own listener \(HTTPS_PORT 8443 on this host\)/],
      ['[::]:8080', /HTTP_PORT/],
    ] as const) {
      const found = appLoopIssue(app(address), own, facts);
      assert.deepEqual(found?.path, ['routes', 1, 'upstreams', 0, 'address'], address);
      assert.match(found?.message ?? '', reason, address);
    }
  });

  it('takes other ports of this host and those ports elsewhere', () => {
    for (const address of ['127.0.0.1:3000', '10.0.0.1:8080', 'db.example:5000', '127.0.0.1:9000']) assert.equal(appLoopIssue(app(address), own, facts), undefined, address);
  });
});
