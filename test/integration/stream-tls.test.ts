/**
 * /v1/certificates and the TLS features of streams — termination, origination, SNI routing — proven
 * with real TLS handshakes through a real managed nginx. Streams use ports 27100-27199 only.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import {
  ProbeTimeout,
  fixtureCert,
  fixturePem,
  startTaggedServer,
  startTlsServer,
  tlsConnectFails,
  tlsWhoAnswers,
  whoAnswers,
  type TaggedServer,
  type TlsServer,
} from '../helpers/backends.js';
import { accepts } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 27100;
const TO = 27199;
const CA = fixturePem('ca.crt');
const OTHER_CA = fixturePem('other-ca.crt');
const PORTICO = fixtureCert('portico');
const A = fixtureCert('a');
const B = fixtureCert('b');
// Generous: a probe's timeout only matters when it fails, and the cores are shared.
const PATIENCE = { timeoutMs: 5000 };

const fingerprintOf = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** Every base64 line of every private key this file uploads: none may ever come back in an answer. */
const KEY_LINES = [PORTICO.key, A.key].flatMap((pem) => pem.split('\n').filter((line) => line.length >= 16 && !line.startsWith('-----')));

/** Asserts that a raw answer holds no private key material, and passes it on. */
function keyless<T extends { text: string }>(res: T): T {
  assert.doesNotMatch(res.text, /PRIVATE KEY/);
  for (const line of KEY_LINES) assert.ok(!res.text.includes(line), `an answer holds a line of a private key: ${res.text}`);
  return res;
}

describe('/v1/certificates and TLS streams (managed nginx, real handshakes)', () => {
  let portico: InProcess;
  let plain: TaggedServer;
  let tlsA: TlsServer;
  let tlsB: TlsServer;
  let tlsD: TlsServer;

  before(async () => {
    plain = await startTaggedServer('plain');
    tlsA = await startTlsServer({ ...A, tag: 'A' });
    tlsB = await startTlsServer({ ...B, tag: 'B' });
    tlsD = await startTlsServer({ ...PORTICO, tag: 'D' });
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${TO}` });
    // The two trust anchors of the origination tests: CAs, uploaded without their keys.
    await request(portico.app).post('/v1/certificates').send({ id: 'test-ca', certificate: CA }).expect(201);
    await request(portico.app).post('/v1/certificates').send({ id: 'other-ca', certificate: OTHER_CA }).expect(201);
  });
  after(async () => {
    try {
      await portico?.stop();
    } finally {
      await Promise.all([plain?.close(), tlsA?.close(), tlsB?.close(), tlsD?.close()]);
    }
  });

  const api = () => request(portico.app);
  const upload = async (body: Record<string, string>): Promise<request.Response> =>
    keyless(await api().post('/v1/certificates').send(body).expect(201));
  const backend = (server: TaggedServer) => [{ address: `127.0.0.1:${server.port}` }];
  const exists = (file: string): Promise<boolean> => stat(file).then(() => true, () => false);
  /** SIGHUPs the managed master received so far: one per reload. */
  const reloads = async (): Promise<number> =>
    ((await readFile(`${portico.stateDir}/logs/error.log`, 'utf8')).match(/signal 1 \(SIGHUP\) received/g) ?? []).length;
  const certFiles = (id: string) => [`${portico.stateDir}/certs/${id}.crt`, `${portico.stateDir}/certs/${id}.key`];

  /** POSTs a stream, then checks that GET answers exactly the JSON that was posted. */
  async function createStream(stream: { port: number } & Record<string, unknown>): Promise<void> {
    keyless(await api().post('/v1/streams').send(stream).expect(201));
    assert.deepEqual(keyless(await api().get(`/v1/streams/${stream.port}`).expect(200)).body, stream);
  }

  it('POST /v1/certificates with id, certificate and key answers 201 with the facts of the certificate and never its key', async () => {
    const res = await upload({ id: 'facts', certificate: PORTICO.cert, key: PORTICO.key });
    const x509 = new X509Certificate(PORTICO.cert);
    assert.equal(res.headers.location, '/v1/certificates/facts');
    assert.deepEqual(res.body, {
      id: 'facts',
      subject: 'CN=portico.test',
      issuer: 'CN=Portico Test CA',
      sans: ['DNS:portico.test', 'DNS:localhost', 'IP Address:127.0.0.1'],
      notBefore: new Date(x509.validFrom).toISOString(),
      notAfter: new Date(x509.validTo).toISOString(),
      fingerprint: x509.fingerprint256,
      isCA: false,
      chainLength: 1,
      hasKey: true,
      usedBy: { streams: [], apps: [] },
    });
    const one = keyless(await api().get('/v1/certificates/facts').expect(200));
    assert.equal(one.body.fingerprint, x509.fingerprint256);
    assert.equal(one.body.key, undefined);
  });

  it('the key is stored as <stateDir>/certs/<id>.key with mode 0600, in a directory of mode 0700', async () => {
    await upload({ id: 'on-disk', certificate: PORTICO.cert, key: PORTICO.key });
    const [, keyFile] = certFiles('on-disk') as [string, string];
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
    assert.equal((await stat(`${portico.stateDir}/certs`)).mode & 0o777, 0o700);
    assert.equal(await readFile(keyFile, 'utf8'), PORTICO.key);
  });

  it('POST without an id names a key-less CA from its content: the same id after a delete and a re-upload', async () => {
    const first = await upload({ certificate: CA });
    const id = first.body.id as string;
    assert.match(id, /^[a-z0-9][a-z0-9_-]{0,62}$/);
    assert.notEqual(id, 'test-ca');
    assert.equal(first.body.hasKey, false);
    assert.equal(first.body.isCA, true);
    assert.equal(first.body.fingerprint, fingerprintOf(CA));
    const again = keyless(await api().post('/v1/certificates').send({ certificate: CA }).expect(409));
    assert.match(again.body.error.message, new RegExp(`"${id}" already exists`));
    await api().delete(`/v1/certificates/${id}`).expect(204);
    assert.equal((await upload({ certificate: CA })).body.id, id);
    assert.equal(await exists(`${portico.stateDir}/certs/${id}.key`), false);
  });

  it('GET /v1/certificates lists every certificate with its facts, and no key', async () => {
    await upload({ id: 'listed', certificate: PORTICO.cert, key: PORTICO.key });
    const list = keyless(await api().get('/v1/certificates').expect(200));
    const byId = new Map<string, Record<string, unknown>>(list.body.map((c: { id: string }) => [c.id, c]));
    assert.equal(byId.get('listed')?.hasKey, true);
    assert.equal(byId.get('listed')?.fingerprint, fingerprintOf(PORTICO.cert));
    assert.equal(byId.get('test-ca')?.hasKey, false);
    assert.equal(byId.get('other-ca')?.fingerprint, fingerprintOf(OTHER_CA));
    for (const certificate of byId.values()) assert.equal('key' in certificate, false);
  });

  it('a second POST of an existing id answers 409 and keeps the stored certificate', async () => {
    await upload({ id: 'taken', certificate: PORTICO.cert, key: PORTICO.key });
    const res = keyless(await api().post('/v1/certificates').send({ id: 'taken', certificate: A.cert, key: A.key }).expect(409));
    assert.equal(res.body.error.kind, 'Conflict');
    const kept = keyless(await api().get('/v1/certificates/taken').expect(200));
    assert.equal(kept.body.fingerprint, fingerprintOf(PORTICO.cert));
  });

  it('a stream naming an unknown certificate answers 400 naming tls.certificate, and opens nothing', async () => {
    const port = FROM + 1;
    const res = await api().post('/v1/streams').send({ port, tls: { certificate: 'no-such-cert' }, upstreams: backend(plain) }).expect(400);
    assert.equal(res.body.error.field, 'tls.certificate');
    assert.match(res.body.error.message, /no-such-cert/);
    await api().get(`/v1/streams/${port}`).expect(404);
    assert.equal(await accepts(port), false);
  });

  it('a stream serving a certificate that has no key answers 400 naming tls.certificate', async () => {
    const port = FROM + 2;
    const res = await api().post('/v1/streams').send({ port, tls: { certificate: 'test-ca' }, upstreams: backend(plain) }).expect(400);
    assert.equal(res.body.error.field, 'tls.certificate');
    assert.match(res.body.error.message, /no key/);
    await api().get(`/v1/streams/${port}`).expect(404);
  });

  it('a TLS stream completes the handshake with the uploaded certificate and forwards the bytes to its plain backend', async () => {
    const port = FROM + 10;
    const uploaded = await upload({ id: 'edge', certificate: PORTICO.cert, key: PORTICO.key });
    await createStream({ port, tls: { certificate: 'edge' }, upstreams: backend(plain) });
    const seen = await tlsWhoAnswers(port, { ca: CA, servername: 'portico.test', ...PATIENCE });
    assert.equal(seen.tag, 'plain');
    assert.equal(seen.peerCertificate.fingerprint256, uploaded.body.fingerprint);
    assert.equal(seen.peerCertificate.fingerprint256, fingerprintOf(PORTICO.cert));
  });

  it('DELETE of a certificate a stream serves answers 409 naming the port, and deletes nothing', async () => {
    const port = FROM + 11;
    await upload({ id: 'busy', certificate: PORTICO.cert, key: PORTICO.key });
    await createStream({ port, tls: { certificate: 'busy' }, upstreams: backend(plain) });
    const res = keyless(await api().delete('/v1/certificates/busy').expect(409));
    assert.match(res.body.error.message, new RegExp(`\\b${port}\\b`));
    for (const file of certFiles('busy')) assert.equal(await exists(file), true, file);
    keyless(await api().get('/v1/certificates/busy').expect(200));
    assert.equal((await tlsWhoAnswers(port, { ca: CA, servername: 'portico.test', ...PATIENCE })).tag, 'plain');
  });

  it('usedBy.streams lists the ports naming a certificate in either field; once none does, DELETE answers 204 and removes its files', async () => {
    const [serving, trusting] = [FROM + 50, FROM + 51];
    await upload({ id: 'shared', certificate: PORTICO.cert, key: PORTICO.key });
    await createStream({ port: serving, tls: { certificate: 'shared' }, upstreams: backend(plain) });
    await createStream({ port: trusting, upstreamTls: { trustedCertificate: 'shared' }, upstreams: backend(tlsA) });
    const usedBy = async (id: string): Promise<unknown> => {
      const list = keyless(await api().get('/v1/certificates').expect(200));
      return list.body.find((c: { id: string }) => c.id === id)?.usedBy;
    };
    assert.deepEqual(await usedBy('shared'), { streams: [serving, trusting], apps: [] });
    assert.deepEqual(keyless(await api().get('/v1/certificates/shared').expect(200)).body.usedBy, { streams: [serving, trusting], apps: [] });
    const refused = await api().delete('/v1/certificates/shared').expect(409);
    assert.match(refused.body.error.message, new RegExp(`${serving}.*${trusting}`));

    await api().delete(`/v1/streams/${serving}`).expect(204);
    assert.deepEqual(await usedBy('shared'), { streams: [trusting], apps: [] });
    await api().delete(`/v1/streams/${trusting}`).expect(204);
    assert.deepEqual(await usedBy('shared'), { streams: [], apps: [] });
    await api().delete('/v1/certificates/shared').expect(204);
    for (const file of certFiles('shared')) assert.equal(await exists(file), false, file);
    await api().get('/v1/certificates/shared').expect(404);
  });

  it('PUT of another certificate and key on a certificate in use answers "replaced" and new handshakes see it; identical content answers "unchanged" without a reload; a key-less one 409', async () => {
    const port = FROM + 20;
    await upload({ id: 'rotating', certificate: PORTICO.cert, key: PORTICO.key });
    await createStream({ port, tls: { certificate: 'rotating' }, upstreams: backend(plain) });
    const served = await tlsWhoAnswers(port, { ca: CA, servername: 'portico.test', ...PATIENCE });
    assert.equal(served.peerCertificate.fingerprint256, fingerprintOf(PORTICO.cert));

    const replaced = keyless(await api().put('/v1/certificates/rotating').send({ certificate: A.cert, key: A.key }).expect(200));
    assert.equal(replaced.headers['portico-outcome'], 'replaced');
    assert.equal(replaced.body.fingerprint, fingerprintOf(A.cert));
    const rotated = await tlsWhoAnswers(port, { ca: CA, servername: 'a.example.com', ...PATIENCE });
    assert.deepEqual([rotated.tag, rotated.peerCertificate.fingerprint256], ['plain', fingerprintOf(A.cert)]);

    const reloadsBefore = await reloads();
    const same = keyless(await api().put('/v1/certificates/rotating').send({ certificate: A.cert, key: A.key }).expect(200));
    assert.equal(same.headers['portico-outcome'], 'unchanged');
    assert.equal(await reloads(), reloadsBefore, 'an unchanged certificate reloaded nginx');

    const keyNeeded = keyless(await api().put('/v1/certificates/rotating').send({ certificate: B.cert }).expect(409));
    assert.equal(keyNeeded.body.error.field, 'key');
    assert.match(keyNeeded.body.error.message, new RegExp(`\\b${port}\\b`));
    const still = await tlsWhoAnswers(port, { ca: CA, servername: 'a.example.com', ...PATIENCE });
    assert.equal(still.peerCertificate.fingerprint256, fingerprintOf(A.cert));
  });

  it('upstreamTls with verify against the CA that issued the backend\'s certificate lets a plain TCP client reach the TLS backend', async () => {
    const port = FROM + 30;
    const upstreamTls = { serverName: 'a.example.com', verify: true, trustedCertificate: 'test-ca' };
    await createStream({ port, upstreamTls, upstreams: backend(tlsA) });
    assert.equal(await whoAnswers(port, PATIENCE), 'A');
    assert.deepEqual(keyless(await api().get('/v1/certificates/test-ca').expect(200)).body.usedBy, { streams: [port], apps: [] });
  });

  it('upstreamTls with verify against another CA fails the upstream handshake: nginx closes the client\'s connection without the tag', async () => {
    const port = FROM + 31;
    const upstreamTls = { serverName: 'a.example.com', verify: true, trustedCertificate: 'other-ca' };
    await createStream({ port, upstreamTls, upstreams: backend(tlsA) });
    const log = `${portico.stateDir}/logs/error.log`;
    const [offset, reached] = [(await readFile(log, 'utf8')).length, tlsA.accepted()];
    const failure = await whoAnswers(port, PATIENCE).then(
      (tag) => assert.fail(`the client read the tag ${JSON.stringify(tag)}`),
      (error: Error) => error,
    );
    assert.ok(!(failure instanceof ProbeTimeout), failure.message);
    assert.match(failure.message, /connection closed before a line \(read ""\)|ECONNRESET/);
    // nginx did reach the backend: what failed is the verification of its certificate.
    assert.ok(tlsA.accepted() > reached);
    assert.match((await readFile(log, 'utf8')).slice(offset), /upstream SSL certificate verify error/);
  });

  it('upstreamTls {} originates TLS without verification, so a plain TCP client reaches the TLS backend', async () => {
    const port = FROM + 32;
    await createStream({ port, upstreamTls: {}, upstreams: backend(tlsA) });
    assert.equal(await whoAnswers(port, PATIENCE), 'A');
  });

  it('an SNI stream routes by server name without terminating TLS: the exact name to A, the wildcard to B, any other name to the default', async () => {
    const port = FROM + 40;
    const routes = [
      { serverName: 'a.example.com', upstreams: backend(tlsA) },
      { serverName: '*.b.example.com', upstreams: backend(tlsB) },
    ];
    await createStream({ port, sni: { routes, default: backend(tlsD) } });
    const a = await tlsWhoAnswers(port, { ca: CA, servername: 'a.example.com', ...PATIENCE });
    assert.deepEqual([a.tag, a.peerCertificate.fingerprint256], ['A', fingerprintOf(A.cert)]);
    const b = await tlsWhoAnswers(port, { ca: CA, servername: 'x.b.example.com', ...PATIENCE });
    assert.deepEqual([b.tag, b.peerCertificate.fingerprint256], ['B', fingerprintOf(B.cert)]);
    // D's certificate does not name unknown.example.com: the client looks at it instead of checking it.
    const d = await tlsWhoAnswers(port, { servername: 'unknown.example.com', rejectUnauthorized: false, ...PATIENCE });
    assert.deepEqual([d.tag, d.peerCertificate.fingerprint256], ['D', fingerprintOf(PORTICO.cert)]);
  });

  it('an SNI stream without default closes the connection of an unknown server name, and still routes the known ones', async () => {
    const port = FROM + 41;
    const routes = [
      { serverName: 'a.example.com', upstreams: backend(tlsA) },
      { serverName: '*.b.example.com', upstreams: backend(tlsB) },
    ];
    await createStream({ port, sni: { routes } });
    const reached = tlsD.accepted() + tlsA.accepted() + tlsB.accepted();
    const why = await tlsConnectFails(port, { servername: 'unknown.example.com', rejectUnauthorized: false, ...PATIENCE });
    assert.match(why, /ECONNRESET|socket disconnected/);
    assert.equal(tlsD.accepted() + tlsA.accepted() + tlsB.accepted(), reached);
    assert.equal((await tlsWhoAnswers(port, { ca: CA, servername: 'x.b.example.com', ...PATIENCE })).tag, 'B');
  });

  it('an SNI stream routes 64 server names of 253 characters, the longest DNS allows (nginx\'s default map bucket holds 46)', async () => {
    const port = FROM + 42;
    const name = (i: number): string => `${String(i).padStart(2, '0')}${'a'.repeat(61)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(56)}.test`;
    assert.equal(name(0).length, 253);
    const routes = Array.from({ length: 64 }, (_, i) => ({ serverName: name(i), upstreams: backend(i === 63 ? tlsB : tlsA) }));
    await createStream({ port, sni: { routes } });
    // The backends' certificates do not name these: the client looks at the tag, not at the certificate.
    assert.equal((await tlsWhoAnswers(port, { servername: name(0), rejectUnauthorized: false, ...PATIENCE })).tag, 'A');
    assert.equal((await tlsWhoAnswers(port, { servername: name(63), rejectUnauthorized: false, ...PATIENCE })).tag, 'B');
  });
});
