/**
 * A fleet (issue 16) on an etcd that a real deployment would run: client TLS with client certificates
 * (--client-cert-auth) and authentication on. The certificates are made here with openssl (a CA, the
 * server's for IP 127.0.0.1, a client's); one etcd member (test/helpers/etcd.ts, tls) and every node
 * are children stopped by pid. The nodes log in as `portico`, whose role may read and write the fleet's
 * prefix and nothing else. Each failure (a wrong password, no ETCD_CA_FILE, a prefix outside the
 * grant) keeps its node out of the fleet, stale, answering changes 503, with etcd's reason in its log.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Etcd3, Range } from 'etcd3';
import { startTaggedServer, whoAnswers, type TaggedServer } from '../helpers/backends.js';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster, type EtcdTlsFiles } from '../helpers/etcd.js';
import { FLEET_SECRET, callNode as call, startFleetNode, startFleetNodes, type FleetNode } from '../helpers/fleet.js';
import { eventually } from '../helpers/net.js';
import { tempDir } from '../helpers/portico.js';

const run = promisify(execFile);

const ADDRESSES = ['127.0.0.31', '127.0.0.32'] as const;
const RANGE = { from: 30590, to: 30595 };
const HTTP_PORT = 30597;
const HTTPS_PORT = 30598;
const PREFIX = '/portico-tls/';
const ROOT_PASSWORD = 'root-password-for-this-test-4b1d';
const PORTICO_PASSWORD = 'portico-password-for-this-test-9e27';

/** A CA, a server certificate for IP:127.0.0.1 and a client certificate (CN portico-client, no etcd user), in `dir`. */
async function makeCertificates(dir: string): Promise<EtcdTlsFiles> {
  const file = (name: string): string => path.join(dir, name);
  // clientAuth on the server's too: etcd's JSON gateway dials its own gRPC port showing that certificate (else "incompatible key usage").
  const extensions = [
    '[ca]', 'basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash',
    '[server]', 'basicConstraints = CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth, clientAuth', 'subjectAltName = IP:127.0.0.1',
    '[client]', 'basicConstraints = CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth',
  ];
  await writeFile(file('ext.cnf'), `${extensions.join('\n')}\n`);
  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir, timeout: 10_000 });
  const key = (name: string) => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file(name));
  await Promise.all([key('ca.key'), key('server.key'), key('client.key')]);
  await openssl('req', '-new', '-key', file('ca.key'), '-subj', '/CN=portico-test-etcd-ca', '-out', file('ca.csr'));
  await openssl('x509', '-req', '-in', file('ca.csr'), '-signkey', file('ca.key'), '-days', '2', '-extfile', file('ext.cnf'), '-extensions', 'ca', '-out', file('ca.pem'));
  const sign = async (name: string, cn: string): Promise<void> => {
    await openssl('req', '-new', '-key', file(`${name}.key`), '-subj', `/CN=${cn}`, '-out', file(`${name}.csr`));
    await openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-set_serial', name === 'server' ? '2' : '3', '-days', '2', '-extfile', file('ext.cnf'), '-extensions', name, '-out', file(`${name}.pem`));
  };
  await sign('server', 'etcd-127.0.0.1');
  await sign('client', 'portico-client');
  return { caFile: file('ca.pem'), certFile: file('server.pem'), keyFile: file('server.key'), clientCertFile: file('client.pem'), clientKeyFile: file('client.key') };
}

describe('a fleet on etcd with client TLS and authentication', { skip: etcdUnavailable() }, () => {
  let dir: string;
  let files: EtcdTlsFiles;
  let etcd: EtcdCluster;
  /** etcd as its root user, over TLS (for what the test sets up and reads back). */
  let root: Etcd3;
  const nodes: FleetNode[] = [];
  const backends: TaggedServer[] = [];
  let a: FleetNode;
  let b: FleetNode;

  const tlsEnv = (): Record<string, string> => ({ ETCD_CA_FILE: files.caFile, ETCD_CERT_FILE: files.clientCertFile, ETCD_KEY_FILE: files.clientKeyFile });
  const nodeEnv = (): Record<string, string> => ({ ...tlsEnv(), ETCD_USERNAME: 'portico', ETCD_PASSWORD: PORTICO_PASSWORD });
  const nodeOptions = () => ({ endpoints: etcd.endpoints, prefix: PREFIX, portRange: `${RANGE.from}-${RANGE.to}`, httpPort: HTTP_PORT, httpsPort: HTTPS_PORT });
  const credentials = async () => ({ rootCertificate: await readFile(files.caFile), certChain: await readFile(files.clientCertFile), privateKey: await readFile(files.clientKeyFile) });
  const fleetNames = async (node: FleetNode): Promise<string[]> => ((await call(node, 'GET', '/v1/fleet')).body?.nodes ?? []).map((n: { name: string }) => n.name).sort();

  /** A node that must stay out of the fleet: 503 FleetUnavailable on a change, Portico-Stale on reads, `reason` in its log, no password anywhere. */
  const assertKeptOut = async (node: FleetNode, reason: RegExp, password?: string): Promise<void> => {
    const told = await eventually(() => /etcd does not answer/.test(node.portico.output()), 10_000, 100);
    assert.ok(told, `the log says etcd does not answer:\n${node.portico.output().slice(-3000)}`);
    const texts: string[] = [];
    const change = await call(node, 'POST', '/v1/streams', { port: RANGE.to, upstreams: [{ address: '127.0.0.1:1' }] });
    texts.push(`${change.status} ${JSON.stringify(Object.fromEntries(change.headers))} ${change.text}`);
    assert.equal(change.status, 503, change.text);
    assert.equal(change.body.error.kind, 'FleetUnavailable');
    for (const route of ['/v1/fleet', '/v1/streams', '/v1/status']) {
      const read = await call(node, 'GET', route);
      texts.push(`${route} ${read.status} ${JSON.stringify(Object.fromEntries(read.headers))} ${read.text}`);
      assert.equal(read.headers.get('portico-stale'), 'true', `${route} is marked stale`);
    }
    const line = node.portico.output().split('\n').find((l) => l.includes('etcd does not answer')) ?? '';
    assert.match(line, reason, `etcd's reason in the log line: ${line}`);
    assert.deepEqual(await fleetNames(a), ['edge-a', 'edge-b'], `${node.name} is not in the fleet`);
    if (password !== undefined) {
      const all = `${texts.join('\n')}\n${node.portico.output()}`;
      assert.match(all, new RegExp(node.name), 'the answers were read');
      assert.ok(!all.includes(password), `ETCD_PASSWORD leaked:\n${all.slice(0, 4000)}`);
      assert.ok(!all.includes(FLEET_SECRET), 'FLEET_SECRET leaked');
    }
  };

  before(async () => {
    dir = await tempDir('fleet-etcd-tls');
    files = await makeCertificates(dir);
    etcd = await startEtcdCluster({ members: 1, tls: files });
    // Users and roles first, authentication last (etcd refuses to enable it without a root user).
    const admin = new Etcd3({ hosts: etcd.endpoints, credentials: await credentials() });
    try {
      await admin.user('root').create(ROOT_PASSWORD);
      await admin.user('root').addRole('root');
      await admin.role('portico-fleet').create();
      await admin.role('portico-fleet').grant({ permission: 'Readwrite', range: Range.prefix(PREFIX) });
      await admin.user('portico').create(PORTICO_PASSWORD);
      await admin.user('portico').addRole('portico-fleet');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
    root = new Etcd3({ hosts: etcd.endpoints, credentials: await credentials(), auth: { username: 'root', password: ROOT_PASSWORD } });
    // Every node has written its status once this returns.
    [a, b] = (await startFleetNodes(nodes, ADDRESSES, { ...nodeOptions(), env: nodeEnv() })) as [FleetNode, FleetNode];
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    root?.close();
    await etcd?.stop();
    await Promise.all(backends.map((s) => s.close()));
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('etcd refuses a client without a password or without a client certificate (the setup is what it claims)', async () => {
    const anonymous = new Etcd3({ hosts: etcd.endpoints, credentials: await credentials(), defaultCallOptions: () => ({ deadline: Date.now() + 3000 }) });
    try {
      await assert.rejects(anonymous.get(`${PREFIX}x`).string(), /permission denied|user name is empty|user name not found|invalid auth/i);
    } finally {
      anonymous.close();
    }
    const noCertificate = new Etcd3({ hosts: etcd.endpoints, credentials: { rootCertificate: await readFile(files.caFile) }, auth: { username: 'portico', password: PORTICO_PASSWORD }, defaultCallOptions: () => ({ deadline: Date.now() + 3000 }) });
    try {
      await assert.rejects(noCertificate.get(`${PREFIX}x`).string());
    } finally {
      noCertificate.close();
    }
    assert.deepEqual((await root.user('portico').roles()).map((r) => r.name), ['portico-fleet']);
  });

  it('two nodes as `portico` over TLS: a stream created through one echoes through both right after the answer; /v1/fleet lists both', async () => {
    assert.deepEqual(await fleetNames(a), ['edge-a', 'edge-b']);
    assert.deepEqual(await fleetNames(b), ['edge-a', 'edge-b']);
    const one = await startTaggedServer('one');
    backends.push(one);
    const created = await call(a, 'POST', '/v1/streams', { port: RANGE.from, upstreams: [{ address: `127.0.0.1:${one.port}` }] });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.fleet.complete, true, JSON.stringify(created.body.fleet));
    assert.deepEqual(await Promise.all(ADDRESSES.map((host) => whoAnswers(RANGE.from, { host }))), ['one', 'one']);
    assert.equal((await call(b, 'GET', `/v1/streams/${RANGE.from}`)).headers.get('portico-stale'), null);
    assert.ok((await root.get(`${PREFIX}streams/${RANGE.from}`).string()) !== null, 'the stream is in etcd under the prefix');
  });

  it('after etcd restarts (its auth tokens gone), the nodes log in again: a change echoes through both', async () => {
    await etcd.kill(0);
    await etcd.restart(0);
    const up = await eventually(async () => root.get(`${PREFIX}probe`).then(() => true, () => false), 15_000, 200);
    assert.ok(up, `etcd answers root again\n${etcd.output().slice(-2000)}`);
    // Each node logs in again and renews (or re-grants) its status lease by itself; until both are
    // listed as live again, a change would not wait for the one still away.
    for (const node of [a, b]) {
      const back = await eventually(async () => {
        const fleet = (await call(node, 'GET', '/v1/fleet')).body;
        return fleet?.stale === false && (fleet.nodes ?? []).length === 2;
      }, 30_000, 200);
      assert.ok(back, `${node.name} is back in a fleet of two: ${JSON.stringify((await call(node, 'GET', '/v1/fleet')).body)}\n${node.portico.output().slice(-2000)}`);
    }
    const two = await startTaggedServer('two');
    backends.push(two);
    const started = Date.now();
    let answer = await call(b, 'PUT', `/v1/streams/${RANGE.from}`, { upstreams: [{ address: `127.0.0.1:${two.port}` }] });
    // The nodes find etcd back within their health loop (every second); a change before that answers 503.
    for (let i = 0; i < 20 && answer.status === 503 && Date.now() - started < 15_000; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      answer = await call(b, 'PUT', `/v1/streams/${RANGE.from}`, { upstreams: [{ address: `127.0.0.1:${two.port}` }] });
    }
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.fleet.complete, true, JSON.stringify(answer.body.fleet));
    assert.deepEqual(answer.body.fleet.nodes.map((n: { outcome: string }) => n.outcome), ['applied', 'applied'], JSON.stringify(answer.body.fleet));
    assert.deepEqual(await Promise.all(ADDRESSES.map((host) => whoAnswers(RANGE.from, { host }))), ['two', 'two']);
    const deleted = await call(a, 'DELETE', `/v1/streams/${RANGE.from}`);
    assert.equal(deleted.status, 204, deleted.text);
  });

  it('a node with a wrong ETCD_PASSWORD stays out, answers changes 503, reads stale, says etcd\'s reason, and never shows the password', async () => {
    const wrong = 'wrong-password-must-not-leak-51c8e0';
    const node = await startFleetNode({ ...nodeOptions(), name: 'edge-w', address: '127.0.0.33', env: { ...nodeEnv(), ETCD_PASSWORD: wrong, LOG_LEVEL: 'debug' } });
    try {
      await assertKeptOut(node, /authentication failed, invalid user ID or password/, wrong);
      assert.ok(!node.portico.output().includes(PORTICO_PASSWORD));
    } finally {
      await node.stop();
    }
  });

  it('a node without ETCD_CA_FILE trusts the system\'s CAs only: it cannot connect to this etcd and says why', async () => {
    const { ETCD_CA_FILE: _ca, ...env } = nodeEnv();
    const node = await startFleetNode({ ...nodeOptions(), name: 'edge-n', address: '127.0.0.34', env });
    try {
      // grpc-js's own error says no more than "No connection established"; the node's handshake of its own tells why.
      await assertKeptOut(node, /"tls":"TLS with 127\.0\.0\.1:\d+: unable to verify the first certificate"/, PORTICO_PASSWORD);
    } finally {
      await node.stop();
    }
  });

  it('a node without ETCD_CERT_FILE shows etcd no client certificate: refused, and it says so', async () => {
    const { ETCD_CERT_FILE: _cert, ETCD_KEY_FILE: _key, ...env } = nodeEnv();
    const node = await startFleetNode({ ...nodeOptions(), name: 'edge-c', address: '127.0.0.37', env });
    try {
      await assertKeptOut(node, /"tls":"TLS with 127\.0\.0\.1:\d+: (sslv3 alert bad certificate|certificate required)"/, PORTICO_PASSWORD);
    } finally {
      await node.stop();
    }
  });

  it('without ETCD_CA_FILE, the system\'s trust is used as it is (NODE_EXTRA_CA_CERTS naming the CA): the node joins', async () => {
    const { ETCD_CA_FILE: _ca, ...env } = nodeEnv();
    const node = await startFleetNode({ ...nodeOptions(), name: 'edge-s', address: '127.0.0.35', env: { ...env, NODE_EXTRA_CA_CERTS: files.caFile } });
    try {
      const joined = await eventually(async () => (await fleetNames(a)).includes('edge-s'), 20_000, 100);
      assert.ok(joined, `edge-s joins the fleet:\n${node.portico.output().slice(-3000)}`);
      assert.equal((await call(node, 'GET', '/v1/fleet')).headers.get('portico-stale'), null);
    } finally {
      await node.stop();
    }
    assert.ok(await eventually(async () => !(await fleetNames(a)).includes('edge-s'), 10_000, 100), 'edge-s left on stop');
  });

  it('a node whose FLEET_PREFIX lies outside `portico`\'s grant fails with etcd\'s permission denied, and says so', async () => {
    const node = await startFleetNode({ ...nodeOptions(), prefix: '/portico-other/', name: 'edge-p', address: '127.0.0.36', env: nodeEnv() });
    try {
      await assertKeptOut(node, /permission denied/, PORTICO_PASSWORD);
      assert.equal((await root.getAll().prefix('/portico-other/').keys()).length, 0, 'nothing was written outside the grant');
    } finally {
      await node.stop();
    }
  });
});
