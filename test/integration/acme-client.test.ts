/**
 * src/acme/client.ts against a real ACME server: Debian's pebble, resolving every name through
 * pebble-challtestsrv to 127.0.0.1, validating HTTP-01 against a real nginx that serves a webroot
 * where the test's solver writes `/.well-known/acme-challenge/<token>`. Every process is started by
 * the test and stopped by pid; every port is on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { get } from 'node:https';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import type { Challenge, ChallengeSolver } from '../../src/acme/challenge.js';
import { ACCOUNT_KEY_FILE, AcmeClient, AcmeError } from '../../src/acme/client.js';
import { accepts, eventually } from '../helpers/net.js';
import { freePort, pebbleUnavailable, startPebble, type RunningPebble } from '../helpers/pebble.js';
import { exited, nginxBin, processRuns, tempDir } from '../helpers/portico.js';

const skip = pebbleUnavailable();

/** A pino logger writing into a string, at debug: the test reads it for secrets. */
function capturingLogger(): { logger: Logger; text(): string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), text: () => text };
}

/** HTTP-01 through the webroot nginx serves; `wrongProof` writes something else; counts its calls. */
class WebrootSolver implements ChallengeSolver {
  readonly type = 'http-01' as const;
  presented: Challenge[] = [];
  removed: Challenge[] = [];
  constructor(
    private readonly webroot: string,
    private readonly wrongProof = false,
  ) {}
  private file(challenge: Challenge): string {
    return path.join(this.webroot, '.well-known', 'acme-challenge', challenge.token);
  }
  async present(challenge: Challenge): Promise<void> {
    this.presented.push(challenge);
    await mkdir(path.dirname(this.file(challenge)), { recursive: true });
    await writeFile(this.file(challenge), this.wrongProof ? `${challenge.token}.not-the-thumbprint` : challenge.proof);
  }
  async remove(challenge: Challenge): Promise<void> {
    this.removed.push(challenge);
    await rm(this.file(challenge), { force: true });
  }
}

/** nginx serving `webroot` on 127.0.0.1:port, in the foreground as the test's child. */
async function startNginx(dir: string, webroot: string, port: number): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'error.log')} info;`,
      'events { worker_connections 64; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${path.join(dir, 'body')};`,
      `  proxy_temp_path ${path.join(dir, 'proxy')};`,
      `  fastcgi_temp_path ${path.join(dir, 'fastcgi')};`,
      `  uwsgi_temp_path ${path.join(dir, 'uwsgi')};`,
      `  scgi_temp_path ${path.join(dir, 'scgi')};`,
      '  server {',
      `    listen 127.0.0.1:${port} default_server;`,
      '    server_name _;',
      `    root ${webroot};`,
      '    location /.well-known/acme-challenge/ { default_type text/plain; }',
      '    location / { return 404; }',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn(nginxBin(), ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const up = await eventually(() => child.exitCode !== null || accepts(port), 10_000, 50);
  if (!up || child.exitCode !== null) throw new Error(`nginx did not listen on 127.0.0.1:${port}: ${output}`);
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      process.kill(child.pid, 'SIGTERM');
      if (!(await exited(child, 5000))) {
        process.kill(child.pid, 'SIGKILL');
        await exited(child, 2000);
      }
    },
  };
}

function certificatesOf(chainPem: string): X509Certificate[] {
  return (chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
}

function sans(certificate: X509Certificate): string[] {
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4))
    .sort();
}

/** Asserts `promise` rejects with an AcmeError, and answers it. */
async function acmeFailure(promise: Promise<unknown>): Promise<AcmeError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AcmeError, `an AcmeError, not ${inspect(error)}`);
    return error;
  }
  assert.fail('it did not reject');
}

describe('ACME client against pebble, HTTP-01 through a real nginx', { skip }, () => {
  let dir: string;
  let webroot: string;
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  let pebble: RunningPebble | undefined;
  const clients: AcmeClient[] = [];

  before(async () => {
    dir = await tempDir('acme-client');
    // nginx's worker (nobody, under a root master) reads the webroot: the folders above it must let it pass.
    await chmod(dir, 0o755);
    webroot = path.join(dir, 'webroot');
    await mkdir(webroot, { recursive: true, mode: 0o755 });
    const httpPort = await freePort();
    nginx = await startNginx(dir, webroot, httpPort);
    pebble = await startPebble({ httpPort });
  });

  after(async () => {
    for (const client of clients) client.close();
    const pids = [nginx?.child.pid, pebble?.pids.pebble, pebble?.pids.challtestsrv].filter((pid): pid is number => pid !== undefined);
    await nginx?.stop();
    await pebble?.stop();
    for (const pid of pids) assert.equal(await processRuns(pid), false, `process ${pid} still runs`);
    await rm(dir, { recursive: true, force: true });
  });

  async function open(label: string, extra: Partial<Parameters<typeof AcmeClient.open>[0]> = {}): Promise<AcmeClient> {
    const client = await AcmeClient.open({
      directoryUrl: (pebble as RunningPebble).directoryUrl,
      accountDir: path.join(dir, label),
      caBundlePem: (pebble as RunningPebble).caBundlePem,
      logger: pino({ level: 'silent' }),
      requestTimeoutMs: 10_000,
      validationTimeoutMs: 30_000,
      ...extra,
    });
    clients.push(client);
    return client;
  }

  it('issues a certificate for two names that chains to pebble\'s root, and reuses the account for a second order', async () => {
    const logs = capturingLogger();
    const client = await open('account', { email: 'ops@example.com', logger: logs.logger });
    const solver = new WebrootSolver(webroot);
    const issued = await client.order({ names: ['shop.acme.test', 'www.shop.acme.test'], challenge: solver });

    const chain = certificatesOf(issued.certificatePem);
    assert.ok(chain.length >= 2, `leaf and intermediate, got ${chain.length}`);
    const [leaf, intermediate] = chain as [X509Certificate, X509Certificate];
    assert.deepEqual(sans(leaf), ['shop.acme.test', 'www.shop.acme.test']);
    assert.match(leaf.subject, /CN=shop\.acme\.test/);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(issued.keyPem)), 'the key is the leaf\'s');
    assert.equal(createPrivateKey(issued.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const root = new X509Certificate(await (pebble as RunningPebble).rootPem());
    assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), 'the leaf is signed by the intermediate');
    assert.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey), 'the intermediate is signed by pebble\'s root');
    assert.equal(new X509Certificate(await (pebble as RunningPebble).intermediatePem()).fingerprint256, intermediate.fingerprint256);
    assert.match(issued.orderUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
    assert.equal(solver.presented.length, 2);
    assert.equal(solver.removed.length, 2, 'every proof taken away');
    assert.deepEqual(
      solver.presented.map((c) => c.identifier).sort(),
      ['shop.acme.test', 'www.shop.acme.test'],
    );

    const accountUrl = client.accountUrl;
    assert.ok(accountUrl !== undefined);
    const keyFile = path.join(dir, 'account', ACCOUNT_KEY_FILE);
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
    assert.equal((await stat(path.join(dir, 'account'))).mode & 0o777, 0o700);
    const keyBefore = await readFile(keyFile, 'utf8');

    // A second order through the same client, then a new client on the same folder: the same account.
    const again = await client.order({ names: ['api.acme.test'], challenge: new WebrootSolver(webroot) });
    assert.deepEqual(sans(certificatesOf(again.certificatePem)[0] as X509Certificate), ['api.acme.test']);
    assert.equal(client.accountUrl, accountUrl);
    const reopened = await open('account');
    const kept = await reopened.order({ names: ['kept.acme.test'], challenge: new WebrootSolver(webroot), keyPem: issued.keyPem });
    assert.equal(reopened.accountUrl, accountUrl, 'the account key was reused: the CA answered the same account');
    assert.equal(await readFile(keyFile, 'utf8'), keyBefore);
    assert.ok((certificatesOf(kept.certificatePem)[0] as X509Certificate).checkPrivateKey(createPrivateKey(issued.keyPem)), 'a given keyPem is used');
    assert.equal(kept.keyPem, issued.keyPem);

    assert.ok(!logs.text().includes(keyBefore.split('\n')[1] as string), 'no account key in the logs');
    assert.match(logs.text(), /acme certificate issued/);
  });

  it('a challenge that fails rejects with the CA\'s own problem at step challenge, and the proof is removed', async () => {
    const client = await open('failing');
    const solver = new WebrootSolver(webroot, true);
    const started = Date.now();
    const error = await acmeFailure(client.order({ names: ['wrong.acme.test'], challenge: solver }));
    assert.equal(error.step, 'challenge');
    assert.match(error.message, /^acme challenge: wrong\.acme\.test: urn:ietf:params:acme:error:(unauthorized|incorrectResponse): \S/);
    assert.match(error.problem?.type ?? '', /^urn:ietf:params:acme:error:(unauthorized|incorrectResponse)$/);
    assert.equal(error.identifier, 'wrong.acme.test');
    assert.equal(solver.presented.length, 1);
    assert.equal(solver.removed.length, 1, 'remove was called after the failure');
    assert.ok(Date.now() - started < 15_000, `failed in ${Date.now() - started} ms`);
  });

  it('an unreachable directory URL rejects at once, saying it could not be reached and why', async () => {
    const closed = await freePort();
    const client = await open('unreachable', { directoryUrl: `https://127.0.0.1:${closed}/dir` });
    const started = Date.now();
    const error = await acmeFailure(client.order({ names: ['x.acme.test'], challenge: new WebrootSolver(webroot) }));
    const ms = Date.now() - started;
    assert.equal(error.step, 'account');
    assert.equal(error.unreachable, true);
    assert.equal(error.message, `acme account: the ACME directory https://127.0.0.1:${closed}/dir could not be reached: connect ECONNREFUSED 127.0.0.1:${closed}`);
    assert.ok(ms < 3000, `rejected in ${ms} ms`);
  });

  it('a server that never answers fails after the request timeout, and an abort ends the wait at once', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const client = await open('silent', { directoryUrl: `https://127.0.0.1:${port}/dir`, requestTimeoutMs: 300 });
      let started = Date.now();
      const timedOut = await acmeFailure(client.account());
      assert.equal(timedOut.message, `acme account: the ACME directory https://127.0.0.1:${port}/dir could not be reached: no answer within 300 ms`);
      assert.ok(Date.now() - started < 2000, `failed in ${Date.now() - started} ms`);

      const patient = await open('silent', { directoryUrl: `https://127.0.0.1:${port}/dir`, requestTimeoutMs: 30_000 });
      const controller = new AbortController();
      started = Date.now();
      setTimeout(() => controller.abort(), 200);
      const aborted = await acmeFailure(patient.order({ names: ['x.acme.test'], challenge: new WebrootSolver(webroot), signal: controller.signal }));
      assert.equal(aborted.message, 'acme account: aborted');
      assert.ok(Date.now() - started < 2000, `aborted in ${Date.now() - started} ms`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('trusts the CA bundle for this client\'s requests only', async () => {
    // Without the bundle, pebble's HTTPS endpoint is not trusted...
    const untrusted = await open('untrusted', { caBundlePem: undefined });
    const error = await acmeFailure(untrusted.account());
    assert.equal(error.step, 'account');
    assert.match(error.message, /could not be reached: its TLS certificate is not trusted \(\w+\)/);
    // ...and a trusting client leaves the process's other HTTPS requests as they were.
    const trusting = await open('trusting');
    assert.match(await trusting.account(), /^https:\/\/127\.0\.0\.1:\d+\//);
    const plain = await new Promise<string>((resolve) => {
      get((pebble as RunningPebble).directoryUrl, { timeout: 5000 }, () => resolve('trusted')).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    assert.notEqual(plain, 'trusted');
  });
});

describe('ACME client against pebble requiring external account binding', { skip }, () => {
  let dir: string;
  let pebble: RunningPebble | undefined;
  const clients: AcmeClient[] = [];
  const kid = 'portico-kid';
  const hmacKey = Buffer.from('a shared secret of the tests, 32 bytes long......').toString('base64url');

  before(async () => {
    dir = await tempDir('acme-eab');
    pebble = await startPebble({ httpPort: await freePort(), externalAccountMACKeys: { [kid]: hmacKey }, alwaysValid: true });
  });

  after(async () => {
    for (const client of clients) client.close();
    const pids = [pebble?.pids.pebble, pebble?.pids.challtestsrv].filter((pid): pid is number => pid !== undefined);
    await pebble?.stop();
    for (const pid of pids) assert.equal(await processRuns(pid), false, `process ${pid} still runs`);
    await rm(dir, { recursive: true, force: true });
  });

  async function open(label: string, eab?: { kid: string; hmacKey: string }, logger = pino({ level: 'silent' })): Promise<AcmeClient> {
    const client = await AcmeClient.open({
      directoryUrl: (pebble as RunningPebble).directoryUrl,
      accountDir: path.join(dir, label),
      caBundlePem: (pebble as RunningPebble).caBundlePem,
      logger,
      ...(eab !== undefined ? { externalAccountBinding: eab } : {}),
    });
    clients.push(client);
    return client;
  }

  it('without EAB the account fails with the CA\'s message; with it, a certificate is issued; the HMAC key is never shown', async () => {
    const without = await open('without');
    const refused = await acmeFailure(without.account());
    assert.equal(refused.step, 'account');
    assert.match(refused.message, /^acme account: urn:ietf:params:acme:error:externalAccountRequired: /);

    const wrong = await open('wrong', { kid, hmacKey: Buffer.from('not the key the CA holds, 32 bytes....').toString('base64url') });
    const bad = await acmeFailure(wrong.account());
    assert.equal(bad.step, 'account');
    assert.match(bad.message, /^acme account: urn:ietf:params:acme:error:\w+: /);
    assert.ok(!inspect(bad).includes(hmacKey) && !JSON.stringify(bad).includes(hmacKey));

    const logs = capturingLogger();
    const bound = await open('bound', { kid, hmacKey }, logs.logger);
    const issued = await bound.order({
      names: ['eab.acme.test'],
      // PEBBLE_VA_ALWAYS_VALID: the CA validates nothing, so the solver need not serve anything.
      challenge: { type: 'http-01', present: async () => undefined, remove: async () => undefined },
    });
    assert.deepEqual(sans(certificatesOf(issued.certificatePem)[0] as X509Certificate), ['eab.acme.test']);
    assert.ok(!logs.text().includes(hmacKey), 'no HMAC key in the logs');
  });
});

describe('ACME client against pebble rejecting a fifth of the good nonces', { skip }, () => {
  let dir: string;
  let pebble: RunningPebble | undefined;
  let client: AcmeClient | undefined;

  before(async () => {
    dir = await tempDir('acme-nonce');
    pebble = await startPebble({ httpPort: await freePort(), nonceRejectPercent: 20, alwaysValid: true });
  });

  after(async () => {
    client?.close();
    const pids = [pebble?.pids.pebble, pebble?.pids.challtestsrv].filter((pid): pid is number => pid !== undefined);
    await pebble?.stop();
    for (const pid of pids) assert.equal(await processRuns(pid), false, `process ${pid} still runs`);
    await rm(dir, { recursive: true, force: true });
  });

  it('retries bad nonces (RFC 8555 6.5) and gets its certificate', async () => {
    client = await AcmeClient.open({
      directoryUrl: (pebble as RunningPebble).directoryUrl,
      accountDir: path.join(dir, 'account'),
      caBundlePem: (pebble as RunningPebble).caBundlePem,
      logger: pino({ level: 'silent' }),
    });
    const issued = await client.order({
      names: ['nonce.acme.test'],
      challenge: { type: 'http-01', present: async () => undefined, remove: async () => undefined },
    });
    assert.deepEqual(sans(certificatesOf(issued.certificatePem)[0] as X509Certificate), ['nonce.acme.test']);
    assert.match((pebble as RunningPebble).output(), /reject 20% of good nonces/);
  });
});
