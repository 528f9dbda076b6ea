/**
 * Settings: the environment through one schema; bad values name their variable.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadSettings } from '../../src/settings.js';

describe('settings', () => {
  it('defaults to managed mode under ./var, stream-conductor\'s names and range 9000-9009 inclusive', () => {
    const s = loadSettings({});
    assert.equal(s.mode, 'managed');
    assert.deepEqual(s.portRange, { from: 9000, to: 9009 });
    assert.equal(s.bindAddress, '127.0.0.1');
    assert.equal(s.bindPort, 5000);
    assert.equal(s.streamPrefix, '_conductor_');
    assert.equal(s.stateDir, `${process.cwd()}/var`);
    assert.equal(s.streamDir, `${process.cwd()}/var/stream.d`);
    assert.equal(s.nginxConf, `${process.cwd()}/var/nginx.conf`);
    assert.equal(s.apiToken, undefined);
    assert.equal(s.httpPort, 8080);
    assert.equal(s.httpsPort, 8443);
  });

  it('external mode defaults to a stock nginx\'s paths', () => {
    const s = loadSettings({ NGINX_MODE: 'external' });
    assert.equal(s.streamDir, '/etc/nginx/stream.d');
    assert.equal(s.nginxConf, '/etc/nginx/nginx.conf');
    assert.equal(s.pidFile, '/run/nginx.pid');
    assert.equal(s.errorLog, undefined);
  });

  it('takes every variable it documents', () => {
    const s = loadSettings({
      PORT_RANGE: '1000-1000',
      BIND_ADDRESS: '0.0.0.0',
      BIND_PORT: '8080',
      STREAM_CONFIG_PATH: '/srv/streams/',
      STREAM_PREFIX: 'p-',
      NGINX_BIN: '/usr/local/sbin/nginx',
      STATE_DIR: '/srv/state',
      API_TOKEN: 'a-token-of-sixteen-chars',
      LOG_LEVEL: 'debug',
    });
    assert.deepEqual(s.portRange, { from: 1000, to: 1000 });
    assert.equal(s.streamDir, '/srv/streams');
    assert.equal(s.streamPrefix, 'p-');
    assert.equal(s.apiToken, 'a-token-of-sixteen-chars');
    assert.equal(s.pidFile, '/srv/state/nginx.pid');
  });

  it('API_TOKENS_FILE is absent by default, empty means absent, and a relative path is resolved', () => {
    assert.equal(loadSettings({}).apiTokensFile, undefined);
    assert.equal(loadSettings({ API_TOKENS_FILE: '' }).apiTokensFile, undefined);
    assert.equal(loadSettings({ API_TOKENS_FILE: 'secrets/tokens' }).apiTokensFile, `${process.cwd()}/secrets/tokens`);
  });

  it('PORTICO_TEST_DELAY (for tests only) is absent by default and reads PHASE:MS', () => {
    assert.equal(loadSettings({}).testDelay, undefined);
    assert.deepEqual(loadSettings({ PORTICO_TEST_DELAY: 'swap:150' }).testDelay, { phase: 'swap', ms: 150 });
    assert.deepEqual(loadSettings({ PORTICO_TEST_DELAY: 'commit:5000' }).testDelay, { phase: 'commit', ms: 5000 });
  });

  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ PORT_RANGE: '9009-9000' }, /PORT_RANGE: 9009 is above 9000/],
    [{ PORT_RANGE: '9000' }, /PORT_RANGE: must be FROM-TO/],
    [{ PORT_RANGE: '0-10' }, /PORT_RANGE: both ends must be ports/],
    [{ PORT_RANGE: '9000-70000' }, /PORT_RANGE: both ends must be ports/],
    [{ BIND_PORT: '99999' }, /BIND_PORT: must be a port/],
    [{ BIND_ADDRESS: 'example.com' }, /BIND_ADDRESS: must be an IPv4 or IPv6 address/],
    [{ NGINX_MODE: 'docker' }, /NGINX_MODE/],
    [{ STREAM_PREFIX: 'a b' }, /STREAM_PREFIX: must be/],
    [{ STREAM_PREFIX: '../x' }, /STREAM_PREFIX: must be/],
    [{ PORTICO_TEST_DELAY: 'render:100' }, /PORTICO_TEST_DELAY: for tests only: PHASE:MS/],
    [{ PORTICO_TEST_DELAY: 'swap:5001' }, /PORTICO_TEST_DELAY: for tests only: MS must be from 0 to 5000/],
    [{ PORTICO_TEST_DELAY: 'swap' }, /PORTICO_TEST_DELAY/],
    [{ STATE_DIR: '/tmp/with space' }, /STATE_DIR: must be a path/],
    [{ STREAM_CONFIG_PATH: '/etc/nginx/stream;d' }, /STREAM_CONFIG_PATH: must be a path/],
    [{ API_TOKEN: 'short' }, /API_TOKEN: must be at least 16 characters/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ WORKER_SHUTDOWN_TIMEOUT: '30 s' }, /WORKER_SHUTDOWN_TIMEOUT/],
    [{ HTTP_PORT: '9005' }, /HTTP_PORT: must lie outside PORT_RANGE 9000-9009/],
    [{ PORT_RANGE: '8000-8999' }, /HTTP_PORT: must lie outside PORT_RANGE 8000-8999/],
    [{ HTTPS_PORT: '9000' }, /HTTPS_PORT: must lie outside PORT_RANGE/],
    [{ HTTP_PORT: '443', HTTPS_PORT: '443' }, /HTTPS_PORT: must differ from HTTP_PORT/],
    [{ HTTP_PORT: '0' }, /HTTP_PORT: must be a port/],
  ];
  for (const [env, message] of refused) {
    it(`refuses ${JSON.stringify(env)} naming the variable`, () => {
      assert.throws(() => loadSettings(env), message);
    });
  }
});
