/**
 * DNS-01 end to end: Debian's pebble resolving through a real authoritative named (test/helpers/bind9.ts,
 * zone example.test, a TSIG key of the test's own) instead of challtestsrv, and Portico (in process)
 * updating that zone by RFC 2136. A wildcard certificate for `*.example.test` and `example.test` is
 * issued by the CA after it read `_acme-challenge.example.test` TXT from named, serves on a TLS stream
 * (verified against pebble's root, SNI a.example.test), and the TXT records are gone from named
 * afterwards. A Portico holding a wrong TSIG secret gets named's refusal: the order fails saying so,
 * and the placeholder keeps serving.
 *
 * Every process (named, pebble, challtestsrv, nginx) is the test's own, stopped by pid; every port
 * is on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { bind9Unavailable, startBind9, txtValues, type Bind9 } from '../helpers/bind9.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { servedCertificate } from '../helpers/tls-http.js';
import { freePort, pebbleUnavailable, startPebble, type RunningPebble } from '../helpers/pebble.js';
import { startInProcess, tempDir, type InProcess } from '../helpers/portico.js';

const skip = pebbleUnavailable() ?? bind9Unavailable();


/** The other secret of the same length: only the MAC is wrong. */
const otherSecret = (secret: string): string => Buffer.from(Buffer.from(secret, 'base64').map((b) => b ^ 0x5a)).toString('base64');

async function until(portico: InProcess, id: string, status: string, detail: () => string, timeoutMs = 30_000): Promise<Record<string, any>> {
  let last: Record<string, any> = {};
  const reached = await eventually(async () => {
    last = (await supertest(portico.app).get(`/v1/certificates/${id}`).expect(200)).body;
    return last.acme?.status === status;
  }, timeoutMs, 100);
  assert.ok(reached, `certificate ${id} did not become ${status}: ${JSON.stringify(last.acme)}\n${detail().slice(-3000)}`);
  return last;
}

describe('ACME DNS-01 against pebble and named', { skip }, () => {
  let named: Bind9 | undefined;
  let pebble: RunningPebble | undefined;
  let echo: EchoServer | undefined;
  let bundle = '';
  const porticos: InProcess[] = [];

  const startPorticoWith = async (range: string, secret: string, retryMin: string): Promise<InProcess> => {
    const n = named as Bind9;
    const portico = await startInProcess({
      PORT_RANGE: range,
      HTTP_PORT: String(await freePort()),
      HTTPS_PORT: String(await freePort(true)),
      ACME_DIRECTORY_URL: (pebble as RunningPebble).directoryUrl,
      ACME_CA_BUNDLE: bundle,
      ACME_EMAIL: 'ops@portico.test',
      ACME_RETRY_MIN: retryMin,
      ACME_DNS_SERVER: `127.0.0.1:${n.port}`,
      ACME_DNS_TSIG_NAME: n.tsig.name,
      ACME_DNS_TSIG_ALGORITHM: n.tsig.algorithm,
      ACME_DNS_TSIG_SECRET: secret,
    });
    porticos.push(portico);
    return portico;
  };

  before(async () => {
    named = await startBind9({ zone: 'example.test' });
    // pebble's VA asks named for `_acme-challenge.<name>` TXT; HTTP-01 is never used here.
    pebble = await startPebble({ httpPort: await freePort(), dnsServer: `127.0.0.1:${named.port}` });
    bundle = `${await tempDir('acme-dns-ca')}/pebble-api.pem`;
    await writeFile(bundle, pebble.caBundlePem);
    echo = await startEcho('acme-dns-stream');
  });

  after(async () => {
    for (const portico of porticos) await portico.stop();
    await pebble?.stop();
    await named?.stop();
    await echo?.close();
  });

  const output = (): string => `${pebble?.output() ?? ''}\n--- named ---\n${named?.output() ?? ''}`;

  it('a wildcard certificate is issued by DNS-01 through named, serves on a TLS stream, and its TXT records are removed', async () => {
    const n = named as Bind9;
    const portico = await startPorticoWith('30320-30324', n.tsig.secret, '1s');
    const api = supertest(portico.app);
    const status = (await api.get('/v1/status').expect(200)).body;
    assert.deepEqual(status.acme.challenges, ['http-01', 'dns-01']);

    const created = await api.post('/v1/certificates').send({ id: 'wild', acme: { names: ['*.example.test', 'example.test'], challenge: 'dns-01' } }).expect(201);
    assert.equal(created.body.acme.challenge, 'dns-01');
    assert.deepEqual(created.body.acme.names, ['*.example.test', 'example.test']);
    await api.post('/v1/streams').send({ port: 30321, tls: { certificate: 'wild' }, upstreams: [{ address: `127.0.0.1:${(echo as EchoServer).port}` }] }).expect(201);

    const valid = await until(portico, 'wild', 'valid', output);
    assert.equal(valid.acme.lastError, null);
    assert.match(valid.acme.issuer, /Pebble Intermediate/);
    assert.deepEqual([...valid.sans].sort(), ['DNS:*.example.test', 'DNS:example.test']);

    const trust = await (pebble as RunningPebble).rootPem();
    const served = await servedCertificate(30321, 'a.example.test', trust);
    assert.match(served.issuer, /Pebble Intermediate/);
    assert.match(served.subjectAltName, /DNS:\*\.example\.test/);
    const apex = await servedCertificate(30321, 'example.test', trust);
    assert.match(apex.subjectAltName, /DNS:example\.test/);

    // Both proofs lived at one name (the wildcard's and the apex's); both are gone now, asked of named directly.
    const gone = await eventually(async () => (await txtValues(n.port, '_acme-challenge.example.test.')).length === 0, 5000, 100);
    assert.ok(gone, `TXT left in named: ${JSON.stringify(await txtValues(n.port, '_acme-challenge.example.test.'))}`);
    // named did take Portico's signed updates (its log says so).
    assert.match(n.output(), /updating zone 'example\.test\/IN': adding an RR at '_acme-challenge\.example\.test' TXT/);

    const after = (await api.get('/v1/status').expect(200)).body;
    assert.deepEqual(after.acme.challenges, ['http-01', 'dns-01']);
    assert.equal(after.acme.certificates.find((c: { id: string }) => c.id === 'wild')?.status, 'valid');
  });

  it('a wrong TSIG secret: named refuses the update, the order fails naming NOTAUTH/BADSIG, the placeholder keeps serving', async () => {
    const n = named as Bind9;
    // Retries a minute apart: the status stays `failed` while the test looks.
    const portico = await startPorticoWith('30325-30329', otherSecret(n.tsig.secret), '1m');
    const api = supertest(portico.app);
    await api.post('/v1/certificates').send({ id: 'forged', acme: { names: ['*.example.test'], challenge: 'dns-01' } }).expect(201);
    await api.post('/v1/streams').send({ port: 30326, tls: { certificate: 'forged' }, upstreams: [{ address: `127.0.0.1:${(echo as EchoServer).port}` }] }).expect(201);
    const failed = await until(portico, 'forged', 'failed', output);
    assert.match(failed.acme.lastError, /NOTAUTH/);
    assert.match(failed.acme.lastError, /BADSIG/);
    assert.match(failed.acme.lastError, new RegExp(`127\\.0\\.0\\.1:${n.port}`), 'the error names the DNS server');
    assert.ok(!failed.acme.lastError.includes(otherSecret(n.tsig.secret)), 'the secret is not quoted');
    assert.match(failed.issuer, /Portico placeholder/);
    const served = await servedCertificate(30326, 'x.example.test', undefined);
    assert.match(served.issuer, /Portico placeholder/);
    assert.deepEqual(await txtValues(n.port, '_acme-challenge.example.test.'), [], 'nothing was written to the zone');
    const events = (await api.get('/v1/events?type=acme').expect(200)).body as Array<{ what: string; certificate: string; detail?: string }>;
    assert.match(events.find((e) => e.certificate === 'forged' && e.what === 'failed')?.detail ?? '', /BADSIG/);
  });
});
