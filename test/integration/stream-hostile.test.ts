/**
 * Config injection is the worst bug Portico can have. Every hostile value below, for every field of
 * the stream and certificate resources, answers 4xx naming the field, writes nothing (the stream and
 * certs directories and the main config are byte-for-byte unchanged, no temporary file is left), and
 * the streams created before keep carrying traffic, plain and TLS, through the same nginx.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { fixtureCert, fixturePem, startTaggedServer, tlsWhoAnswers, type TaggedServer } from '../helpers/backends.js';
import { roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { isJournalFile, startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 27200;
const TO = 27299;
const LIVE = FROM; // a plain TCP stream that must keep serving throughout
const TLS_LIVE = FROM + 1; // a TLS-terminating stream serving certificate "portico"

/** One hostile request body: what it is, the body (a raw JSON string when JS cannot build it), the status and `error.field` expected. */
type Case = [label: string, body: unknown, status: number | number[], field: string];

const U = [{ address: '127.0.0.1:9' }];
/** A stream body: one upstream, with `over` on top (`undefined` removes a field). */
const stream = (over: Record<string, unknown>): Record<string, unknown> => ({ upstreams: U, ...over });
const upstream = (extra: Record<string, unknown>) => stream({ upstreams: [{ address: '127.0.0.1:9', ...extra }] });
const sni = (...names: string[]) => ({ upstreams: undefined, sni: { routes: names.map((serverName) => ({ serverName, upstreams: U })) } });
const many = (n: number, f: (i: number) => string): string[] => Array.from({ length: n }, (_, i) => f(i));
const labels = (entries: Record<string, unknown>) => stream({ labels: entries });

const DURATIONS: unknown[] = ['0', '-1s', '5 m', '5m\n', '1h30m', 86400001, '86401s'];
const RULES: Array<[unknown, string]> = [
  ...['10.0.0.1/8', '10.0.0.0/33', '300.1.1.1', 'all;', '10.0.0.0/8 deny', 'unix:', '2001:db8::1/32', 'fe80::1%eth0'].map(
    (rule): [unknown, string] => [[rule], '.0'],
  ),
  [[], ''],
  ['10.0.0.0/8', ''],
  [many(65, (i) => `10.0.${i}.0/24`), ''],
];
const BAD_SERVER_NAMES = ['a.*.example.com', '*example.com', 'example.*', '**.example.com', '*', 'A.example.com', 'a b.example.com',
  'a.example.com;', '{', '$host', '~^regex$', 'a.example.com.', '127.0.0.1', 'exämple.com', `${'a'.repeat(64)}.example.com`,
  // nginx's map reads these keys as its own parameters: "default" sets the fallback, "include" includes a file.
  'default', 'include'];

const STREAM_CASES: Case[] = [
  ...['sctp', 'TCP', 1, null].map((v): Case => [`protocol ${JSON.stringify(v)}`, stream({ protocol: v }), 400, 'protocol']),
  ...['0.0.0.0:80', '127.0.0.1; include /etc/passwd', '::1', '[zz::1]', 'localhost', '[fe80::1%eth0]'].map(
    (v): Case => [`listenAddress ${JSON.stringify(v)}`, stream({ listenAddress: v }), 400, 'listenAddress'],
  ),
  ...[0, -1, 1001, 1e9, 1.5, '3'].map((v): Case => [`weight ${JSON.stringify(v)}`, upstream({ weight: v }), 400, 'upstreams.0.weight']),
  ...[-1, 101].map((v): Case => [`maxFails ${v}`, upstream({ maxFails: v }), 400, 'upstreams.0.maxFails']),
  ...['0s', '25h', '2d', '10 s', '10s;', '1y', ''].map(
    (v): Case => [`failTimeout ${JSON.stringify(v)}`, upstream({ failTimeout: v }), 400, 'upstreams.0.failTimeout'],
  ),
  ['backup "yes"', upstream({ backup: 'yes' }), 400, 'upstreams.0.backup'],
  ['an upstream with the unknown field "down"', upstream({ down: true }), 400, 'upstreams.0'],
  ...['hash_remote_addr', 'random'].map(
    (balance): Case => [`a backup upstream with balance ${balance}`, stream({ balance, upstreams: [...U, { address: '127.0.0.2:9', backup: true }] }), 400, 'upstreams.1.backup'],
  ),
  ['every upstream a backup', upstream({ backup: true }), 400, 'upstreams'],
  ['65 upstreams', stream({ upstreams: many(65, (i) => `127.0.0.1:${i + 1}`).map((address) => ({ address })) }), 400, 'upstreams'],
  ...['ip_hash', 'least_conn;', ''].map((v): Case => [`balance ${JSON.stringify(v)}`, stream({ balance: v }), 400, 'balance']),
  ...['connectTimeout', 'idleTimeout'].flatMap((field) =>
    DURATIONS.map((v): Case => [`${field} ${JSON.stringify(v)}`, stream({ [field]: v }), 400, field]),
  ),
  ...['allow', 'deny'].flatMap((field) =>
    RULES.map(([v, at]): Case => [`${field} ${JSON.stringify(v).slice(0, 40)}`, stream({ [field]: v }), 400, `${field}${at}`]),
  ),
  ...['true', 1].map((v): Case => [`proxyProtocol ${JSON.stringify(v)}`, stream({ proxyProtocol: v }), 400, 'proxyProtocol']),
  ['proxyProtocol on a udp stream', stream({ protocol: 'udp', proxyProtocol: true }), 400, 'proxyProtocol'],
  ...['../etc/passwd', 'a b', 'UPPER'].map(
    (v): Case => [`tls.certificate ${JSON.stringify(v)}`, stream({ tls: { certificate: v } }), 400, 'tls.certificate'],
  ),
  ['tls with an unknown field', stream({ tls: { certificate: 'x', extra: 1 } }), 400, 'tls'],
  ['tls naming a certificate that does not exist', stream({ tls: { certificate: 'nosuch' } }), 400, 'tls.certificate'],
  ['tls naming a certificate without a key', stream({ tls: { certificate: 'ca' } }), 400, 'tls.certificate'],
  ['tls on a udp stream', stream({ protocol: 'udp', tls: { certificate: 'portico' } }), 400, 'tls'],
  ['tls together with sni', { ...sni('a.example.com'), tls: { certificate: 'portico' } }, 400, 'sni'],
  ...['a b', '*.example.com', '-bad.example', 'a.example.com;'].map(
    (v): Case => [`upstreamTls.serverName ${JSON.stringify(v)}`, stream({ upstreamTls: { serverName: v } }), 400, 'upstreamTls.serverName'],
  ),
  ['upstreamTls.verify "yes"', stream({ upstreamTls: { verify: 'yes' } }), 400, 'upstreamTls.verify'],
  ['verify without trustedCertificate', stream({ upstreamTls: { verify: true, serverName: 'a.example.com' } }), 400, 'upstreamTls.trustedCertificate'],
  ['verify without serverName', stream({ upstreamTls: { verify: true, trustedCertificate: 'ca' } }), 400, 'upstreamTls.serverName'],
  ['trustedCertificate "../x"', stream({ upstreamTls: { trustedCertificate: '../x' } }), 400, 'upstreamTls.trustedCertificate'],
  ['trustedCertificate that does not exist', stream({ upstreamTls: { trustedCertificate: 'nosuch' } }), 400, 'upstreamTls.trustedCertificate'],
  ['upstreamTls with sni', { ...sni('a.example.com'), upstreamTls: { serverName: 'a.example.com' } }, 400, 'upstreamTls'],
  ['upstreamTls on a udp stream', stream({ protocol: 'udp', upstreamTls: { serverName: 'a.example.com' } }), 400, 'upstreamTls'],
  ...BAD_SERVER_NAMES.map((v): Case => [`sni serverName ${JSON.stringify(v)}`, sni(v), 400, 'sni.routes.0.serverName']),
  ['the same serverName in two sni routes', sni('a.example.com', 'a.example.com'), 400, 'sni.routes.1.serverName'],
  ['sni with no routes', sni(), 400, 'sni.routes'],
  ['upstreams together with sni', { ...sni('a.example.com'), upstreams: U }, 400, 'sni'],
  ['neither upstreams nor sni', stream({ upstreams: undefined }), 400, 'upstreams'],
  ['sni on a udp stream', { ...sni('a.example.com'), protocol: 'udp' }, 400, 'sni'],
  ['65 sni routes', sni(...many(65, (i) => `r${i}.example.com`)), 400, 'sni.routes'],
  ['a hostile address in an sni route', { sni: { routes: [{ serverName: 'a.example.com', upstreams: [{ address: 'a:1; include /x' }] }] } }, 400, 'sni.routes.0.upstreams.0.address'],
  ['an sni default of backups only', { sni: { routes: [{ serverName: 'a.example.com', upstreams: U }], default: [{ address: '127.0.0.1:9', backup: true }] } }, 400, 'sni.default'],
  ['an empty sni default', { sni: { routes: [{ serverName: 'a.example.com', upstreams: U }], default: [] } }, 400, 'sni.default'],
  ...['Key', 'a b', 'a/b', 'a\nb', 'k'.repeat(64)].map((k): Case => [`label name ${JSON.stringify(k).slice(0, 20)}`, labels({ [k]: 'v' }), 400, `labels.${k}`]),
  ['label name "__proto__"', '{"upstreams":[{"address":"127.0.0.1:9"}],"labels":{"__proto__":"v"}}', 400, 'labels.__proto__'],
  ...['a\nb', 'a b', '#', 'a;b', '{', '"', 'v'.repeat(256), 42].map(
    (v): Case => [`label value ${JSON.stringify(v).slice(0, 20)}`, labels({ k: v }), 400, 'labels.k'],
  ),
  ['65 labels', labels(Object.fromEntries(many(65, (i) => `k${i}`).map((k) => [k, 'v']))), 400, 'labels'],
  ['an empty label name', labels({ '': 'v' }), 400, 'labels'],
  ...['k=v', ['k'], null].map((v): Case => [`labels ${JSON.stringify(v)}`, stream({ labels: v }), 400, 'labels']),
];

const [a, portico, expired] = [fixtureCert('a'), fixtureCert('portico'), fixtureCert('expired')];
const BAG = 'Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=CN = a.example.com\nissuer=CN = Portico Test CA\n';
const aKey = createPrivateKey(a.key);
const encrypted = (type: 'pkcs8' | 'sec1'): string =>
  aKey.export({ type, format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }).toString();
/** A certificate body: a.crt with its key and `over` on top. */
const cert = (over: Record<string, unknown>): Record<string, unknown> => ({ certificate: a.cert, key: a.key, ...over });

const CERTIFICATE_CASES: Case[] = [
  ['text before the PEM block', cert({ certificate: `hello\n${a.cert}` }), 400, 'certificate'],
  ['text between two PEM blocks', cert({ certificate: `${a.cert}between\n${fixturePem('ca.crt')}` }), 400, 'certificate'],
  ['text after the PEM block', cert({ certificate: `${a.cert}trailer\n` }), 400, 'certificate'],
  ['the key pasted after the certificate', cert({ certificate: a.cert + a.key }), 400, 'certificate'],
  ['a chain out of order', cert({ certificate: fixturePem('ca.crt') + a.cert }), 400, 'certificate'],
  ['a comment line', cert({ certificate: `# our cert\n${a.cert}` }), 400, 'certificate'],
  ['a "Bag Attributes" header on the certificate', cert({ certificate: BAG + a.cert }), 400, 'certificate'],
  ['a "Bag Attributes" header on the key', cert({ key: `Bag Attributes\n    localKeyID: 01\n${a.key}` }), 400, 'key'],
  ['a key for another certificate', { certificate: portico.cert, key: a.key }, 400, 'key'],
  ['an expired certificate', { certificate: expired.cert, key: expired.key }, 400, 'certificate'],
  ['a key that is a certificate', cert({ key: a.cert }), 400, 'key'],
  ['a key followed by a certificate', cert({ key: a.key + a.cert }), 400, 'key'],
  ['an encrypted PKCS#8 key', cert({ key: encrypted('pkcs8') }), 400, 'key'],
  ['an encrypted traditional (Proc-Type) key', cert({ key: encrypted('sec1') }), 400, 'key'],
  ...['a/b', '..', '../etc/passwd', 'UPPER', 'x'.repeat(64), ''].map((id): Case => [`id ${JSON.stringify(id).slice(0, 20)}`, cert({ id }), 400, 'id']),
  ...[42, null, [a.cert], { pem: a.cert }].map((v): Case => [`certificate ${JSON.stringify(v).slice(0, 20)}`, cert({ certificate: v }), 400, 'certificate']),
  ['no certificate', { key: a.key }, 400, 'certificate'],
  ['a certificate of 70,000 characters', cert({ certificate: 'A'.repeat(70_000) }), 400, 'certificate'],
  ['an unknown field', cert({ chain: 'x' }), 400, 'body'],
  ['a body of 200 kB', cert({ certificate: 'A'.repeat(200_000) }), [400, 413], 'body'],
];

/**
 * Every file under the state directory (dot files included) with its bytes, and every directory.
 * Left out: nginx's own logs and temp files, scratch/, which holds only the main configs `nginx -t`
 * reads (never served; `strayTempFiles` covers it), and the journals, emptied in the background after
 * the last batch's answer (`isJournalFile`).
 */
async function snapshot(dir: string, depth = 0): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  if (depth > 8) throw new Error(`${dir}: deeper than 8 levels`);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (depth === 0 && ['logs', 'temp', 'scratch'].includes(entry.name)) continue;
    if (entry.isDirectory()) {
      files.set(`${full}/`, '');
      for (const [name, bytes] of await snapshot(full, depth + 1)) files.set(name, bytes);
    } else if (!isJournalFile(full)) files.set(full, (await readFile(full)).toString('base64'));
  }
  return files;
}

/** Files named like a temporary write (`.name.pid.tmp`) anywhere in the state directory but nginx's temp/. */
async function strayTempFiles(stateDir: string): Promise<string[]> {
  const names = (await readdir(stateDir, { recursive: true })) as string[];
  return names.filter((name) => !name.startsWith('temp/') && /\.tmp$|\.tmp\//.test(name));
}

describe('hostile stream and certificate input', () => {
  let p: InProcess;
  let echo: EchoServer;
  let tagged: TaggedServer;
  let streamsBefore: unknown[];
  let filesBefore: Map<string, string>;

  before(async () => {
    echo = await startEcho();
    tagged = await startTaggedServer('behind-tls');
    p = await startInProcess({ PORT_RANGE: `${FROM}-${TO}` });
    await request(p.app).post('/v1/certificates').send({ id: 'portico', certificate: portico.cert, key: portico.key }).expect(201);
    await request(p.app).post('/v1/certificates').send({ id: 'ca', certificate: fixturePem('ca.crt') }).expect(201);
    await request(p.app).post('/v1/streams').send({ port: LIVE, upstreams: [{ address: `127.0.0.1:${echo.port}` }] }).expect(201);
    await request(p.app)
      .post('/v1/streams')
      .send({ port: TLS_LIVE, upstreams: [{ address: `127.0.0.1:${tagged.port}` }], tls: { certificate: 'portico' } })
      .expect(201);
    streamsBefore = (await request(p.app).get('/v1/streams').expect(200)).body;
    filesBefore = await snapshot(p.stateDir);
  });
  after(async () => {
    await p?.stop();
    await echo?.close();
    await tagged?.close();
  });

  /** The files are unchanged, both streams are as created, and each carries bytes end to end. */
  const assertUntouched = async (): Promise<void> => {
    assert.deepEqual(await snapshot(p.stateDir), filesBefore);
    assert.deepEqual(await strayTempFiles(p.stateDir), []);
    assert.deepEqual((await request(p.app).get('/v1/streams').expect(200)).body, streamsBefore);
    assert.equal(await roundTrip(LIVE, 'still serving'), 'still serving');
    const tls = await tlsWhoAnswers(TLS_LIVE, { ca: fixturePem('ca.crt'), servername: 'portico.test' });
    assert.deepEqual([tls.tag, tls.peerCertificate.subjectCN], ['behind-tls', 'portico.test']);
  };

  /** Sends every case and answers one line per case whose status or field is not the expected one. */
  const barrage = async (cases: Case[], send: () => request.Test): Promise<string[]> => {
    const wrong: string[] = [];
    for (const [label, body, status, field] of cases) {
      const res = await send().set('content-type', 'application/json').send(typeof body === 'string' ? body : JSON.stringify(body));
      const statuses = Array.isArray(status) ? status : [status];
      if (!statuses.includes(res.status) || res.body?.error?.field !== field || res.body?.error?.kind !== 'InvalidInput') {
        wrong.push(`${label}: answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}, expected ${status} on "${field}"`);
      }
    }
    return wrong;
  };

  it(`${STREAM_CASES.length} hostile stream bodies on POST /v1/streams each answer 400 naming the field and write nothing`, async () => {
    const wrong = await barrage(STREAM_CASES, () => request(p.app).post('/v1/streams'));
    await assertUntouched();
    assert.deepEqual(wrong, []);
  });

  it(`the same ${STREAM_CASES.length} bodies on PUT /v1/streams/:port of a live stream answer 400 and leave it unchanged and serving`, async () => {
    const wrong = [
      ...(await barrage(STREAM_CASES, () => request(p.app).put(`/v1/streams/${LIVE}`))),
      ...(await barrage(STREAM_CASES, () => request(p.app).put(`/v1/streams/${TLS_LIVE}`))),
    ];
    await assertUntouched();
    assert.deepEqual(wrong, []);
  });

  it(`${CERTIFICATE_CASES.length} hostile certificate bodies on POST /v1/certificates, and PUT over the one a stream serves, answer 4xx naming the field and change no file`, async () => {
    const put = CERTIFICATE_CASES.filter(([label]) => !label.startsWith('id '));
    const wrong = [
      ...(await barrage(CERTIFICATE_CASES, () => request(p.app).post('/v1/certificates'))),
      ...(await barrage(put, () => request(p.app).put('/v1/certificates/portico'))),
    ];
    await assertUntouched();
    assert.deepEqual(wrong, []);
  });

  it('hostile certificate ids in the path of GET, PUT and DELETE answer 400 on "id" and change no file', async () => {
    const wrong: string[] = [];
    for (const id of ['..', '..%2F..%2Fetc%2Fpasswd', 'UPPER', 'a%20b', 'a%3Bb', 'x'.repeat(64), '%2e%2e']) {
      for (const req of [
        request(p.app).get(`/v1/certificates/${id}`),
        request(p.app).put(`/v1/certificates/${id}`).send({ certificate: a.cert, key: a.key }),
        request(p.app).delete(`/v1/certificates/${id}`),
      ]) {
        const res = await req;
        if (res.status !== 400 || res.body?.error?.field !== 'id') wrong.push(`${id}: answered ${res.status} ${JSON.stringify(res.body)}`);
      }
    }
    assert.deepEqual(wrong, []);
    await assertUntouched();
  });

  it('after the barrage only the streams and certificates created on purpose exist, and nginx logged no [emerg]', async () => {
    const listed = (await request(p.app).get('/v1/streams').expect(200)).body as Array<{ port: number }>;
    assert.deepEqual(listed.map((s) => s.port), [LIVE, TLS_LIVE]);
    const certificates = (await request(p.app).get('/v1/certificates').expect(200)).body as Array<{ id: string }>;
    assert.deepEqual(certificates.map((c) => c.id), ['ca', 'portico']);
    const logs = await readdir(path.join(p.stateDir, 'logs'));
    assert.ok(logs.includes('error.log'), `logs: ${logs.join(', ')}`);
    for (const log of logs.filter((name) => name.includes('error'))) {
      const emerg = (await readFile(path.join(p.stateDir, 'logs', log), 'utf8')).split('\n').filter((line) => line.includes('[emerg]'));
      assert.deepEqual(emerg, [], log);
    }
    await assertUntouched();
  });
});
