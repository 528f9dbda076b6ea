/**
 * Certificate changes go through the same batch pipeline as streams and apps: the new pair is staged,
 * loaded by `nginx -t`, swapped in with its key under the journal, and nginx is reloaded only when a
 * stream or app uses it. Proven against a real managed nginx with real TLS handshakes. Streams use
 * ports 26100-26109 only.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { fixtureCert, fixturePem, startTaggedServer, startTlsServer, tlsWhoAnswers, whoAnswers, type TaggedServer, type TlsServer } from '../helpers/backends.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 26100;
const TO = 26109;
const PORTICO = fixtureCert('portico');
const A = fixtureCert('a');
const B = fixtureCert('b');
/** Signed with SHA-1: Portico's own checks pass it, nginx's OpenSSL refuses it ("ca md too weak"). */
const WEAK = fixtureCert('sha1');
const fingerprintOf = (pem: string): string => new X509Certificate(pem).fingerprint256;
/** The stream that serves certificate `served` for the whole file. */
const SERVING = FROM;

/** Every file under `dir`, its private folder included, with its mode and text. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of ((await readdir(dir, { recursive: true })) as string[]).sort()) {
    // The journal: empty between batches, or the last committed one until its background flush.
    if (name === path.join('.portico', 'journal.json')) continue;
    const file = path.join(dir, name);
    const info = await stat(file);
    files[name] = info.isDirectory() ? 'dir' : `${(info.mode & 0o777).toString(8)} ${await readFile(file, 'utf8')}`;
  }
  return files;
}

describe('certificate changes through the batch pipeline (managed nginx, real handshakes)', () => {
  let portico: InProcess;
  let plain: TaggedServer;
  /** A TLS backend whose certificate the test CA signed. */
  let tlsA: TlsServer;

  before(async () => {
    plain = await startTaggedServer('plain');
    tlsA = await startTlsServer({ ...A, tag: 'A' });
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${TO}` });
    await api().post('/v1/certificates').send({ id: 'served', certificate: A.cert, key: A.key }).expect(201);
    await api().post('/v1/streams').send({ port: SERVING, tls: { certificate: 'served' }, upstreams: backend() }).expect(201);
  });
  after(async () => {
    try {
      await portico?.stop();
    } finally {
      await Promise.all([plain?.close(), tlsA?.close()]);
    }
  });

  const api = () => request(portico.app);
  const backend = () => [{ address: `127.0.0.1:${plain.port}` }];
  const certDir = () => `${portico.stateDir}/certs`;
  /** SIGHUPs the managed master received so far: one per reload. */
  const reloads = async (): Promise<number> =>
    ((await readFile(`${portico.stateDir}/logs/error.log`, 'utf8')).match(/signal 1 \(SIGHUP\) received/g) ?? []).length;
  /** The fingerprint of the certificate a new TLS connection to `port` is shown. */
  const shown = async (port: number): Promise<string> => {
    const seen = await tlsWhoAnswers(port, { servername: 'a.example.com', rejectUnauthorized: false, timeoutMs: 5000 });
    assert.equal(seen.tag, 'plain');
    return seen.peerCertificate.fingerprint256;
  };
  /** The pair on disk as [certificate, key], after checking that the key belongs to the certificate. */
  const pairOnDisk = async (id: string): Promise<[string, string]> => {
    const [certificate, key] = await Promise.all([readFile(`${certDir()}/${id}.crt`, 'utf8'), readFile(`${certDir()}/${id}.key`, 'utf8')]);
    assert.ok(new X509Certificate(certificate).checkPrivateKey(createPrivateKey(key)), `${id}: the key on disk does not belong to the certificate`);
    return [certificate, key];
  };

  it('PUT and DELETE of a certificate nothing uses swap its files in and out without reloading nginx', async () => {
    await api().post('/v1/certificates').send({ id: 'idle', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    const reloadsBefore = await reloads();
    const replaced = await api().put('/v1/certificates/idle').send({ certificate: B.cert, key: B.key }).expect(200);
    assert.equal(replaced.headers['portico-outcome'], 'replaced');
    assert.deepEqual(await pairOnDisk('idle'), [B.cert, B.key]);
    assert.equal((await stat(`${certDir()}/idle.key`)).mode & 0o777, 0o600);
    await api().delete('/v1/certificates/idle').expect(204);
    assert.deepEqual((await readdir(certDir())).filter((name) => name.startsWith('idle')), []);
    assert.equal(await reloads(), reloadsBefore, 'a certificate nothing uses reloaded nginx');
    assert.deepEqual(await readdir(`${certDir()}/.portico/stage`), []);
  });

  it('a certificate file broken by hand is replaced by PUT, and removed by DELETE', async () => {
    await api().post('/v1/certificates').send({ id: 'mangled', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    await writeFile(`${certDir()}/mangled.crt`, 'not a certificate\n');
    const replaced = await api().put('/v1/certificates/mangled').send({ certificate: A.cert, key: A.key }).expect(200);
    assert.equal(replaced.headers['portico-outcome'], 'replaced');
    assert.deepEqual(await pairOnDisk('mangled'), [A.cert, A.key]);
    await writeFile(`${certDir()}/mangled.crt`, 'not a certificate\n');
    await api().delete('/v1/certificates/mangled').expect(204);
    assert.deepEqual((await readdir(certDir())).filter((name) => name.startsWith('mangled')), []);
  });

  it("a pair nginx's OpenSSL refuses (a leaf signed with SHA-1) answers 400 with OpenSSL's reason before anything is staged, on POST and on PUT over a certificate a stream serves; no file changes, no reload, the old certificate still shown", async () => {
    const before = await snapshot(certDir());
    const reloadsBefore = await reloads();
    const posted = await api().post('/v1/certificates').send({ id: 'weak', certificate: WEAK.cert, key: WEAK.key }).expect(400);
    const put = await api().put('/v1/certificates/served').send({ certificate: WEAK.cert, key: WEAK.key }).expect(400);
    for (const res of [posted, put]) {
      assert.equal(res.body.error.kind, 'InvalidInput');
      assert.match(res.body.error.message, /ca md too weak/);
    }
    assert.deepEqual(await snapshot(certDir()), before);
    assert.equal(await reloads(), reloadsBefore);
    assert.equal(await shown(SERVING), fingerprintOf(A.cert));
  });

  it('PUT with the key of another certificate over the one a stream serves answers 400 on "key" before anything is written', async () => {
    const before = await snapshot(certDir());
    const reloadsBefore = await reloads();
    const res = await api().put('/v1/certificates/served').send({ certificate: B.cert, key: A.key }).expect(400);
    assert.equal(res.body.error.field, 'key');
    assert.match(res.body.error.message, /does not match the certificate/);
    assert.deepEqual(await snapshot(certDir()), before);
    assert.equal(await reloads(), reloadsBefore);
    assert.equal(await shown(SERVING), fingerprintOf(A.cert));
  });

  it('PUT of another key-less CA over the one a stream verifies its backend against reloads nginx: the backend is refused, then reached again once the CA is put back', async () => {
    const port = FROM + 3;
    await api().post('/v1/certificates').send({ id: 'anchor', certificate: fixturePem('ca.crt') }).expect(201);
    const upstreamTls = { serverName: 'a.example.com', verify: true, trustedCertificate: 'anchor' };
    await api().post('/v1/streams').send({ port, upstreamTls, upstreams: [{ address: `127.0.0.1:${tlsA.port}` }] }).expect(201);
    assert.equal(await whoAnswers(port, { timeoutMs: 5000 }), 'A');
    const other = await api().put('/v1/certificates/anchor').send({ certificate: fixturePem('other-ca.crt') }).expect(200);
    assert.equal(other.headers['portico-outcome'], 'replaced');
    const refused = await whoAnswers(port, { timeoutMs: 5000 }).then(
      (tag) => `read ${tag}`,
      (error: Error) => error.message,
    );
    assert.match(refused, /connection closed before a line|ECONNRESET/);
    await api().put('/v1/certificates/anchor').send({ certificate: fixturePem('ca.crt') }).expect(200);
    assert.equal(await whoAnswers(port, { timeoutMs: 5000 }), 'A');
  });

  it('12 PUTs at once, alternating two pairs, on a certificate a stream serves: each answers 200, and the pair on disk is whole and is the one GET answers and new handshakes see', async () => {
    const pairs = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? B : A));
    const answers = await Promise.all(pairs.map((pair) => api().put('/v1/certificates/served').send({ certificate: pair.cert, key: pair.key })));
    assert.deepEqual(
      answers.map((res) => res.status),
      pairs.map(() => 200),
      answers.map((res) => res.text).join('\n'),
    );
    const [certificate, key] = await pairOnDisk('served');
    const pair = [A, B].find((p) => p.cert === certificate);
    assert.ok(pair !== undefined && pair.key === key, 'the files on disk are neither pair');
    assert.equal((await api().get('/v1/certificates/served').expect(200)).body.fingerprint, fingerprintOf(certificate));
    assert.equal(await shown(SERVING), fingerprintOf(certificate));
    assert.deepEqual(await readdir(`${certDir()}/.portico/backup`), []);
  });

  it("a stream naming a certificate and the certificate's DELETE, sent together, apply in queue order: never a stream on a missing certificate", async () => {
    const port = FROM + 2;
    await api().post('/v1/certificates').send({ id: 'racy', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    const [created, deleted] = await Promise.all([
      api().post('/v1/streams').send({ port, tls: { certificate: 'racy' }, upstreams: backend() }),
      api().delete('/v1/certificates/racy'),
    ]);
    const outcome = `${created.status} ${deleted.status}`;
    // The stream first: the certificate is in use and stays. The delete first: the stream names a certificate that is gone.
    assert.ok(outcome === '201 409' || outcome === '400 204', `POST stream ${created.status}, DELETE certificate ${deleted.status}: ${created.text} ${deleted.text}`);
    const streamThere = created.status === 201;
    await api().get(`/v1/streams/${port}`).expect(streamThere ? 200 : 404);
    await api().get('/v1/certificates/racy').expect(streamThere ? 200 : 404);
    if (streamThere) assert.equal(await shown(port), fingerprintOf(PORTICO.cert));
    assert.equal((await api().get('/v1/status').expect(200)).body.consistent, true);
  });
});
