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

  it('bounds the API by default: 5 s for the headers, 10 s for a request, 1024 connections, 256 per client', () => {
    assert.deepEqual(loadSettings({}).apiLimits, { headersTimeoutMs: 5000, requestTimeoutMs: 10_000, maxConnections: 1024, maxConnectionsPerClient: 256 });
    const s = loadSettings({ API_HEADERS_TIMEOUT: '500ms', API_REQUEST_TIMEOUT: '1m', API_MAX_CONNECTIONS: '10', API_MAX_CONNECTIONS_PER_CLIENT: '10' });
    assert.deepEqual(s.apiLimits, { headersTimeoutMs: 500, requestTimeoutMs: 60_000, maxConnections: 10, maxConnectionsPerClient: 10 });
  });

  it('external mode defaults to a stock nginx\'s paths', () => {
    const s = loadSettings({ NGINX_MODE: 'external' });
    assert.equal(s.streamDir, '/etc/nginx/stream.d');
    assert.equal(s.nginxConf, '/etc/nginx/nginx.conf');
    assert.equal(s.pidFile, '/run/nginx.pid');
    assert.equal(s.errorLog, undefined);
  });

  it('tests only what a change writes unless FULL_TREE_TEST=true, or unless a refused reload cannot be read (external mode without NGINX_ERROR_LOG)', () => {
    assert.equal(loadSettings({}).testScope, 'changed');
    assert.equal(loadSettings({ FULL_TREE_TEST: 'false' }).testScope, 'changed');
    assert.equal(loadSettings({ FULL_TREE_TEST: 'true' }).testScope, 'tree');
    assert.equal(loadSettings({ NGINX_MODE: 'external' }).testScope, 'tree');
    assert.equal(loadSettings({ NGINX_MODE: 'external', NGINX_ERROR_LOG: '/var/log/nginx/error.log' }).testScope, 'changed');
    assert.equal(loadSettings({ NGINX_MODE: 'external', NGINX_ERROR_LOG: '/var/log/nginx/error.log', FULL_TREE_TEST: 'true' }).testScope, 'tree');
    assert.throws(() => loadSettings({ FULL_TREE_TEST: 'yes' }), /FULL_TREE_TEST/);
  });

  it('NGINX_STATUS_PORT renders a status listener on 127.0.0.1:8081 by default, elsewhere when set, none when 0 or off; external mode reads NGINX_STATUS_URL', () => {
    assert.deepEqual(loadSettings({}).nginxStatus, { port: 8081, url: 'http://127.0.0.1:8081/stub_status' });
    assert.deepEqual(loadSettings({ NGINX_STATUS_PORT: '19113' }).nginxStatus, { port: 19113, url: 'http://127.0.0.1:19113/stub_status' });
    for (const off of ['0', 'off']) assert.deepEqual(loadSettings({ NGINX_STATUS_PORT: off }).nginxStatus, { port: undefined, url: undefined });
    assert.deepEqual(loadSettings({ NGINX_MODE: 'external' }).nginxStatus, { port: undefined, url: undefined });
    // External mode renders no main config: the port is not Portico's to check.
    assert.deepEqual(loadSettings({ NGINX_MODE: 'external', NGINX_STATUS_PORT: '9000', NGINX_STATUS_URL: 'http://nginx:8081/basic_status' }).nginxStatus, {
      port: undefined,
      url: 'http://nginx:8081/basic_status',
    });
    assert.equal(loadSettings({ NGINX_MODE: 'external', NGINX_STATUS_URL: '' }).nginxStatus.url, undefined);
  });

  it('QUIC_BPF is auto unless set to on or off', () => {
    assert.equal(loadSettings({}).quicBpf, 'auto');
    assert.equal(loadSettings({ QUIC_BPF: 'on' }).quicBpf, 'on');
    assert.equal(loadSettings({ QUIC_BPF: 'off' }).quicBpf, 'off');
    assert.throws(() => loadSettings({ QUIC_BPF: 'yes' }), /QUIC_BPF/);
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

  it('PORT_RESERVATION_TTL defaults to 30 s, reads an nginx time, and 0 turns reservations off', () => {
    assert.equal(loadSettings({}).portReservationTtlMs, 30_000);
    assert.equal(loadSettings({ PORT_RESERVATION_TTL: '250ms' }).portReservationTtlMs, 250);
    assert.equal(loadSettings({ PORT_RESERVATION_TTL: '1h' }).portReservationTtlMs, 3_600_000);
    assert.equal(loadSettings({ PORT_RESERVATION_TTL: '0' }).portReservationTtlMs, 0);
  });

  it('BIND_ADDRESS beyond loopback needs API_TOKEN or API_TOKENS_FILE; loopback addresses need neither', () => {
    for (const address of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      assert.equal(loadSettings({ BIND_ADDRESS: address }).bindAddress, address);
    }
    assert.equal(loadSettings({ BIND_ADDRESS: '0.0.0.0', API_TOKEN: 'a-token-of-sixteen-chars' }).bindAddress, '0.0.0.0');
    assert.equal(loadSettings({ BIND_ADDRESS: '::', API_TOKENS_FILE: '/run/portico/tokens' }).bindAddress, '::');
    // stream-conductor's drop-in use on a private network, said out loud.
    assert.equal(loadSettings({ BIND_ADDRESS: '0.0.0.0', API_WITHOUT_TOKENS: 'allow' }).bindAddress, '0.0.0.0');
  });

  it('NGINX_TIMEOUT_MS takes milliseconds from 1 up', () => {
    assert.equal(loadSettings({}).nginxTimeoutMs, 10_000);
    assert.equal(loadSettings({ NGINX_TIMEOUT_MS: '1' }).nginxTimeoutMs, 1);
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
    // execa reads 0 as "no timeout": a hung nginx would hold every change forever.
    [{ NGINX_TIMEOUT_MS: '0' }, /NGINX_TIMEOUT_MS: must be milliseconds from 1 to 999999 \(0 would mean no timeout at all\)/],
    [{ NGINX_TIMEOUT_MS: '000' }, /NGINX_TIMEOUT_MS: must be milliseconds from 1/],
    [{ NGINX_TIMEOUT_MS: '-5' }, /NGINX_TIMEOUT_MS: must be milliseconds/],
    [{ NGINX_TIMEOUT_MS: '1e4' }, /NGINX_TIMEOUT_MS: must be milliseconds/],
    [{ PORT_RESERVATION_TTL: '30 s' }, /PORT_RESERVATION_TTL: must be an nginx time/],
    [{ PORT_RESERVATION_TTL: '-1s' }, /PORT_RESERVATION_TTL: must be an nginx time/],
    [{ PORT_RESERVATION_TTL: '2h' }, /PORT_RESERVATION_TTL: must be at most 1h/],
    [{ API_HEADERS_TIMEOUT: '0' }, /API_HEADERS_TIMEOUT: must be from 100ms to 1h/],
    [{ API_HEADERS_TIMEOUT: '5 s' }, /API_HEADERS_TIMEOUT: must be a time/],
    [{ API_REQUEST_TIMEOUT: '2h' }, /API_REQUEST_TIMEOUT: must be from 100ms to 1h/],
    [{ API_HEADERS_TIMEOUT: '10s', API_REQUEST_TIMEOUT: '5s' }, /API_REQUEST_TIMEOUT: must be at least API_HEADERS_TIMEOUT/],
    [{ API_MAX_CONNECTIONS: '0' }, /API_MAX_CONNECTIONS: must be a whole number from 1 to 100000/],
    [{ API_MAX_CONNECTIONS_PER_CLIENT: '-1' }, /API_MAX_CONNECTIONS_PER_CLIENT: must be a whole number/],
    [{ API_MAX_CONNECTIONS: '10', API_MAX_CONNECTIONS_PER_CLIENT: '20' }, /API_MAX_CONNECTIONS_PER_CLIENT: must be at most API_MAX_CONNECTIONS/],
    // Without a token, an API beyond loopback (a container's 0.0.0.0: every container on its network) is anyone's.
    [{ BIND_ADDRESS: '0.0.0.0' }, /BIND_ADDRESS: 0\.0\.0\.0 is not a loopback address: .*set API_TOKEN \(16 characters or more\) or API_TOKENS_FILE/],
    [{ BIND_ADDRESS: '::' }, /BIND_ADDRESS: :: is not a loopback address/],
    [{ BIND_ADDRESS: '10.213.0.2', API_TOKEN: '' }, /BIND_ADDRESS: 10\.213\.0\.2 is not a loopback address/],
    [{ BIND_ADDRESS: '::ffff:10.0.0.1' }, /BIND_ADDRESS: ::ffff:10\.0\.0\.1 is not a loopback address/],
    [{ BIND_ADDRESS: '0.0.0.0', API_WITHOUT_TOKENS: 'yes' }, /API_WITHOUT_TOKENS: /],
    // The status listener's port is managed nginx's on 127.0.0.1: a stream, an app listener or the API must not want it.
    [{ NGINX_STATUS_PORT: '9003' }, /NGINX_STATUS_PORT: 9003 must lie outside PORT_RANGE 9000-9009 \(choose another port, or NGINX_STATUS_PORT=off for no status listener\)/],
    [{ PORT_RANGE: '8000-8999', HTTP_PORT: '80', HTTPS_PORT: '443' }, /NGINX_STATUS_PORT: 8081 must lie outside PORT_RANGE 8000-8999/],
    [{ NGINX_STATUS_PORT: '8080' }, /NGINX_STATUS_PORT: 8080 must differ from HTTP_PORT/],
    [{ NGINX_STATUS_PORT: '8443' }, /NGINX_STATUS_PORT: 8443 must differ from HTTPS_PORT/],
    [{ NGINX_STATUS_PORT: '5000' }, /NGINX_STATUS_PORT: 5000 must differ from BIND_PORT/],
    [{ NGINX_STATUS_PORT: '70000' }, /NGINX_STATUS_PORT: must be a port from 1 to 65535, or 0 or off for no status listener/],
    [{ NGINX_STATUS_PORT: 'no' }, /NGINX_STATUS_PORT: must be a port/],
    [{ NGINX_STATUS_URL: 'http://127.0.0.1:8081/stub_status' }, /NGINX_STATUS_URL: is for external mode: managed mode renders its own status listener \(NGINX_STATUS_PORT\)/],
    [{ NGINX_MODE: 'external', NGINX_STATUS_URL: '127.0.0.1:8081' }, /NGINX_STATUS_URL: must be an http:\/\/ URL \(not 127\.0\.0\.1:\/\/\)|NGINX_STATUS_URL: must be a URL/],
    [{ NGINX_MODE: 'external', NGINX_STATUS_URL: 'nginx_status' }, /NGINX_STATUS_URL: must be a URL such as http:\/\/127\.0\.0\.1:8081\/stub_status/],
    [{ NGINX_MODE: 'external', NGINX_STATUS_URL: 'https://127.0.0.1/stub_status' }, /NGINX_STATUS_URL: must be an http:\/\/ URL \(not https:\/\/\)/],
    [{ NGINX_MODE: 'external', NGINX_STATUS_URL: 'http://user:secret@127.0.0.1/stub_status' }, /NGINX_STATUS_URL: must not carry a user or password/],
  ];
  for (const [env, message] of refused) {
    it(`refuses ${JSON.stringify(env)} naming the variable`, () => {
      assert.throws(() => loadSettings(env), message);
    });
  }
});
