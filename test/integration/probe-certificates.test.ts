/**
 * Certificates nginx's OpenSSL would refuse (Debian 12's OpenSSL 3.0, security level 2) are refused at
 * upload with the reason, and each refusal is checked against nginx itself: it fails `nginx -t`, or
 * nginx loads it and a real handshake fails. Every key type Portico accepts is served: a stream
 * terminates TLS with it and a real client completes the handshake.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startTaggedServer, tlsConnectFails, tlsWhoAnswers, type TaggedServer } from '../helpers/backends.js';
import { accepts, eventually } from '../helpers/net.js';
import { nginxBin, processRuns, startInProcess, tempDir, type InProcess } from '../helpers/portico.js';

const run = promisify(execFile);
const FROM = 26700;
/** A port outside Portico's range for the nginx the truth checks run. */
const TRUTH_PORT = 26790;
const DIR = new URL('../fixtures/certs/strength/', import.meta.url).pathname;
const pem = (name: string): Promise<string> => readFile(`${DIR}${name}`, 'utf8');

interface Refused {
  name: string;
  /** The CA appended to the chain. */
  chain?: string;
  field: 'certificate' | 'key';
  reason: RegExp;
  /** What nginx does with it: refuse it at `nginx -t` with this OpenSSL reason, or load it and fail every handshake. */
  nginx: RegExp | 'handshake fails';
}

const REFUSED: Refused[] = [
  { name: 'rsa1024', field: 'key', reason: /^key: is a 1024-bit RSA key: .*refuses RSA keys under 2048 bits/, nginx: /ee key too small/ },
  { name: 'p192', field: 'key', reason: /^key: is an EC key on prime192v1 \(192 bits\)/, nginx: /ee key too small/ },
  { name: 'leafweakca', chain: 'weakca', field: 'certificate', reason: /block 2 \(CN=weakca\.example\.com\) has a 1024-bit RSA key/, nginx: /ca key too small/ },
  { name: 'leafsha1', chain: 'ca', field: 'certificate', reason: /block 1 \(CN=leafsha1\.example\.com\) is signed with SHA-1/, nginx: /ca md too weak/ },
  { name: 'leafpsssha1', chain: 'psca', field: 'certificate', reason: /block 1 .* is signed with SHA-1/, nginx: /ca md too weak/ },
  { name: 'p224', field: 'key', reason: /secp224r1: nginx loads it, but TLS clients do not offer that curve/, nginx: 'handshake fails' },
  { name: 'k256', field: 'key', reason: /secp256k1/, nginx: 'handshake fails' },
  { name: 'bp256', field: 'key', reason: /brainpoolP256r1/, nginx: 'handshake fails' },
  { name: 'dsa2048', field: 'key', reason: /is a DSA key: nginx loads it, but TLS clients no longer negotiate it/, nginx: 'handshake fails' },
];

/** Served: key types and chains Portico takes, each proven by a handshake through nginx. */
const SERVED: Array<{ name: string; chain?: string }> = [
  { name: 'rsa2048' },
  { name: 'rsapss' },
  { name: 'p384' },
  { name: 'p521' },
  { name: 'ed25519' },
  { name: 'ed448' },
  { name: 'selfsha1' },
  { name: 'leafgood', chain: 'ca' },
];

async function chainOf(item: { name: string; chain?: string }): Promise<string> {
  return (await pem(`${item.name}.crt`)) + (item.chain === undefined ? '' : await pem(`${item.chain}.crt`));
}

/**
 * nginx's own verdict on a certificate and key, outside Portico: `nginx -t` of an HTTPS server using
 * them, and when that passes, whether a real client completes a handshake with it.
 */
async function nginxVerdict(dir: string, certificate: string, key: string): Promise<string> {
  await writeFile(`${dir}/t.crt`, certificate);
  await writeFile(`${dir}/t.key`, key);
  await mkdir(`${dir}/logs`, { recursive: true });
  await writeFile(
    `${dir}/t.conf`,
    `daemon off; master_process off; error_log ${dir}/logs/error.log; pid ${dir}/nginx.pid;\nevents {}\n` +
      `stream { server { listen 127.0.0.1:${TRUTH_PORT} ssl; ssl_certificate ${dir}/t.crt; ssl_certificate_key ${dir}/t.key; return ok; } }\n`,
  );
  const tested = await run(nginxBin(), ['-t', '-p', dir, '-c', `${dir}/t.conf`], { timeout: 10_000 }).then(
    () => 'ok',
    (error: { stderr?: string }) => String(error.stderr),
  );
  if (tested !== 'ok') return tested;
  const nginx = spawn(nginxBin(), ['-p', dir, '-c', `${dir}/t.conf`], { stdio: 'ignore' });
  try {
    assert.ok(await eventually(() => accepts(TRUTH_PORT), 3000), 'nginx started no listener');
    return await tlsConnectFails(TRUTH_PORT, { rejectUnauthorized: false, timeoutMs: 2000 }).then((message) => `handshake fails: ${message}`);
  } finally {
    nginx.kill('SIGKILL');
    await eventually(async () => !(await processRuns(nginx.pid as number)), 3000);
    await sleep(20);
  }
}

describe('hostile probe: certificates nginx would refuse (managed nginx)', () => {
  let portico: InProcess;
  let backend: TaggedServer;
  let scratch: string;

  before(async () => {
    backend = await startTaggedServer('backend');
    scratch = await tempDir('strength');
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 9}`, HTTP_PORT: String(FROM + 10), HTTPS_PORT: String(FROM + 11), WORKER_SHUTDOWN_TIMEOUT: '3s' });
  });
  after(async () => {
    await portico?.stop();
    await backend?.close();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  for (const item of REFUSED) {
    it(`${item.name}${item.chain ? ` (chain to ${item.chain})` : ''}: answers 400 on "${item.field}" with the reason, stores nothing, and nginx indeed ${typeof item.nginx === 'string' ? 'fails every handshake' : `refuses it (${item.nginx.source})`}`, async () => {
      const certificate = await chainOf(item);
      const key = await pem(`${item.name}.key`);
      const before = (await readdir(portico.settings.certDir).catch(() => [])).sort();
      const res = await request(portico.app).post('/v1/certificates').send({ id: item.name, certificate, key });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.field, item.field);
      assert.match(res.body.error.message, item.reason);
      assert.deepEqual((await readdir(portico.settings.certDir).catch(() => [])).sort(), before, 'a refused upload wrote a file');
      await request(portico.app).get(`/v1/certificates/${item.name}`).expect(404);

      const verdict = await nginxVerdict(scratch, certificate, key);
      if (item.nginx === 'handshake fails') assert.match(verdict, /^handshake fails: .*(handshake failure|alert)/i);
      else assert.match(verdict, item.nginx);
    });
  }

  it('a weak key is refused as a trust anchor too (uploaded without a key), where OpenSSL would fail every verification', async () => {
    const res = await request(portico.app).post('/v1/certificates').send({ id: 'weak-anchor', certificate: await pem('weakca.crt') });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.field, 'certificate');
    assert.match(res.body.error.message, /block 1 \(CN=weakca\.example\.com\) has a 1024-bit RSA key/);
  });

  it('every accepted key type is served: a TLS stream with it completes a real handshake and carries bytes', async () => {
    for (const [i, item] of SERVED.entries()) {
      const port = FROM + i;
      await request(portico.app).post('/v1/certificates').send({ id: item.name, certificate: await chainOf(item), key: await pem(`${item.name}.key`) }).expect(201);
      await request(portico.app).post('/v1/streams').send({ port, tls: { certificate: item.name }, backend: `127.0.0.1:${backend.port}` }).expect(201);
      const answer = await tlsWhoAnswers(port, { servername: `${item.name}.example.com`, rejectUnauthorized: false, timeoutMs: 3000 });
      assert.equal(answer.tag, 'backend', item.name);
      assert.equal(answer.peerCertificate.subjectCN, `${item.name}.example.com`);
    }
  });
});
