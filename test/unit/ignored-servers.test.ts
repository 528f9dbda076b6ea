/**
 * nginx's "conflicting server name ... ignored" warning, read for the servers a change adds: a
 * Portico stream (no name) or an app's name on one of its ports. Lines as nginx -t prints them and
 * as the error log has them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ignoredServers } from '../../src/nginx/ignored-servers.js';

const TEST_LINE = 'nginx: [warn] conflicting server name "" on 0.0.0.0:9100, ignored';
const LOG_LINE = '2026/12/04 11:20:01 [warn] 4242#4242: conflicting server name "Shop.Example.com" on [::]:8443, ignored';

describe('ignoredServers', () => {
  it('finds a stream on its port, by nginx -t\'s line', () => {
    assert.deepEqual(ignoredServers([TEST_LINE], [{ port: 9100, name: '' }]), [TEST_LINE]);
  });

  it('finds an app\'s name on its port, in the error log, whatever the case and the address (IPv6 included)', () => {
    assert.deepEqual(ignoredServers(['other', LOG_LINE], [{ port: 8443, name: 'shop.example.com' }]), [LOG_LINE]);
  });

  it('leaves a conflict that is not the change\'s: another port, another name, a stream name on an app port', () => {
    assert.deepEqual(ignoredServers([TEST_LINE], [{ port: 9101, name: '' }]), []);
    assert.deepEqual(ignoredServers([LOG_LINE], [{ port: 8443, name: 'other.example.com' }]), []);
    assert.deepEqual(ignoredServers([LOG_LINE], [{ port: 8443, name: '' }]), []);
    assert.deepEqual(ignoredServers([LOG_LINE, TEST_LINE], []), []);
  });

  it('ignores other warnings and errors', () => {
    const lines = ['nginx: [warn] protocol options redefined for 0.0.0.0:9100 in /x.conf:2', 'nginx: [emerg] duplicate listen options for 0.0.0.0:9100 in /x.conf:2'];
    assert.deepEqual(ignoredServers(lines, [{ port: 9100, name: '' }]), []);
  });
});
