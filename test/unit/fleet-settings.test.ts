/**
 * The fleet's settings (STORE=etcd, issue 16), attacked: every bad value stops the start with a message
 * naming the variable and its rule, and never the value of a secret (FLEET_SECRET, ETCD_PASSWORD, a
 * password in ETCD_ENDPOINTS).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeFleetSettings, loadFleetSettings } from '../../src/fleet/settings.js';
import { SettingsError, loadSettings } from '../../src/settings.js';

const SECRET = 'a-fleet-secret-of-more-than-32-characters-0123';
const BASE = { STORE: 'etcd', ETCD_ENDPOINTS: 'http://127.0.0.1:2379', NODE_NAME: 'edge-1', FLEET_SECRET: SECRET };

/** The message loadSettings refuses `env` with (it must refuse). */
function refusal(env: Record<string, string>): string {
  let message: string | undefined;
  try {
    loadSettings(env);
  } catch (error) {
    assert.ok(error instanceof SettingsError, `a SettingsError, not ${String(error)}`);
    message = error.message;
  }
  assert.ok(message !== undefined, `refused: ${JSON.stringify(env)}`);
  return message;
}

describe('fleet settings under attack', () => {
  it('a complete STORE=etcd environment loads, and what may be shown of it holds no secret', () => {
    const settings = loadSettings({ ...BASE, ETCD_USERNAME: 'portico', ETCD_PASSWORD: 'etcd-password-0123' });
    assert.equal(settings.fleet?.secret, SECRET);
    assert.equal(settings.fleet?.node, 'edge-1');
    const shown = JSON.stringify(describeFleetSettings(settings.fleet!));
    assert.ok(!shown.includes(SECRET));
    assert.ok(!shown.includes('etcd-password-0123'));
  });

  it('STORE=etcd without FLEET_SECRET is refused naming FLEET_SECRET and its rule', () => {
    const { FLEET_SECRET: _, ...env } = BASE;
    assert.match(refusal(env), /FLEET_SECRET: is required with STORE=etcd.*at least 32 characters/);
  });

  it('a short FLEET_SECRET, or one with white space around it, is refused with the rule and never the value', () => {
    for (const secret of ['short-secret-but-distinct-77', '', `${SECRET} `, `\t${SECRET}`]) {
      const message = refusal({ ...BASE, FLEET_SECRET: secret });
      assert.match(message, /FLEET_SECRET: must (be at least 32 characters|not start or end with white space)/, message);
      if (secret.trim() !== '') assert.ok(!message.includes(secret.trim()), `the secret is in: ${message}`);
    }
  });

  it('ETCD_ENDPOINTS with user:password@ (with or without a path, a port, a scheme) is refused naming the rule, never the password', () => {
    const password = 'hunter2-etcd-password';
    for (const url of [
      `http://root:${password}@127.0.0.1:2379`,
      `http://root:${password}@127.0.0.1:2379/v3/kv`,
      `http://root:${password}@etcd.example`,
      `root:${password}@127.0.0.1:2379`,
      `https://${password}@127.0.0.1:2379`,
      `http://127.0.0.1:2379,http://root:${password}@127.0.0.2:2379/x?y#z`,
    ]) {
      const message = refusal({ ...BASE, ETCD_ENDPOINTS: url });
      assert.match(message, /ETCD_ENDPOINTS: must not carry a user or password: set ETCD_USERNAME and ETCD_PASSWORD/, message);
      assert.ok(!message.includes(password), `the password is in: ${message}`);
    }
  });

  it('ETCD_ENDPOINTS with a path, a query, no port or another scheme is refused naming the rule', () => {
    for (const url of ['http://127.0.0.1:2379/v3', 'http://127.0.0.1:2379?x=1', 'http://127.0.0.1', 'unix:///run/etcd.sock', 'ftp://127.0.0.1:2379', 'not a url']) {
      assert.match(refusal({ ...BASE, ETCD_ENDPOINTS: url }), /ETCD_ENDPOINTS: .*is not an etcd client URL such as http:\/\/127\.0\.0\.1:2379 \(scheme, host and port only\)/, url);
    }
  });

  it('FLEET_PREFIX with a "." or ".." segment, or outside its alphabet, is refused naming the rule', () => {
    for (const prefix of ['/portico/../', '/../', '/a/./', '/./', 'portico/', '/portico', '/por tico/', '/a//b/', '/p\n/']) {
      assert.match(refusal({ ...BASE, FLEET_PREFIX: prefix }), /FLEET_PREFIX: must start and end with "\/".*no "\." or "\.\." segment/, JSON.stringify(prefix));
    }
    for (const prefix of ['/', '/portico/', '/edges/eu-west/', '/a.b/...x/', '/v1.2/']) assert.equal(loadSettings({ ...BASE, FLEET_PREFIX: prefix }).fleet?.prefix, prefix);
  });

  it('NODE_NAME with upper case, dots, or other than one DNS label is refused naming the rule', () => {
    for (const name of ['Edge-1', 'edge.1', 'edge_1', '-edge', 'edge-', 'a'.repeat(64), 'edge/1', '']) {
      assert.match(refusal({ ...BASE, NODE_NAME: name }), /NODE_NAME: must be 1-63 characters of a-z, 0-9 and "-"/, JSON.stringify(name));
    }
  });

  it('ETCD_PASSWORD without ETCD_USERNAME, or a password too long, is refused without the password', () => {
    const password = 'lonely-etcd-password-5150';
    const lonely = refusal({ ...BASE, ETCD_PASSWORD: password });
    assert.match(lonely, /ETCD_USERNAME: is required with ETCD_PASSWORD/);
    assert.ok(!lonely.includes(password));
    const long = 'p'.repeat(1025);
    const tooLong = refusal({ ...BASE, ETCD_USERNAME: 'u', ETCD_PASSWORD: long });
    assert.match(tooLong, /ETCD_PASSWORD/);
    assert.ok(!tooLong.includes(long.slice(0, 40)));
  });

  it('every problem at once is listed, each naming its variable, with no secret', () => {
    const message = refusal({ STORE: 'etcd', ETCD_ENDPOINTS: 'http://u:pw-9f8e7d@h:1', NODE_NAME: 'Bad.Name', FLEET_SECRET: 'short-9f8e7d', ETCD_PASSWORD: 'pw-9f8e7d' });
    for (const name of ['ETCD_ENDPOINTS', 'NODE_NAME', 'FLEET_SECRET', 'ETCD_USERNAME']) assert.match(message, new RegExp(`${name}: `), message);
    assert.ok(!message.includes('9f8e7d'), message);
  });

  it('the file store refuses fleet secrets set by mistake, naming them and not their values', () => {
    assert.throws(() => loadFleetSettings({ FLEET_SECRET: SECRET }), (error: Error) => /FLEET_SECRET: is for STORE=etcd/.test(error.message) && !error.message.includes(SECRET));
  });
});
