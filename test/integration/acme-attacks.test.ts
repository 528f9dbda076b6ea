/**
 * A hostile probe of ACME certificates, against Debian's pebble (as acme.test.ts) and a real nginx:
 * each attack on the API, the files and the HTTP-01 challenge location is a test asserting the
 * defence. Config injection through `acme.names` and path tricks through `id` are refused naming the
 * field, with nothing written and nginx untouched; the challenge location serves challenge files and
 * nothing else, even through a symlink planted in its folder; the account key and the state files are
 * private; no secret (EAB HMAC key, TSIG secret, private key) reaches an answer or a log line (pino at
 * debug, captured); a browser cannot create or renew; renewing needs the write scope.
 *
 * Every process (pebble, challtestsrv, nginx) is the test's own, stopped by pid; every port is on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import supertest from 'supertest';
import { sha256 } from '../../src/api/tokens-file.js';
import { startPortico, type RunningPortico } from '../../src/portico.js';
import { loadSettings, type Settings } from '../../src/settings.js';
import { fixturePem } from '../helpers/backends.js';
import { eventually } from '../helpers/net.js';
import { freePort, pebbleUnavailable, startPebble, type RunningPebble } from '../helpers/pebble.js';
import { nginxBin, nginxMasters, stopNginxUnder, tempDir } from '../helpers/portico.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startHttpBackend, type HttpBackend } from '../helpers/tls-http.js';

const skip = pebbleUnavailable();
const FROM = 30340;
const WRITER = 'acme-attacks-writer-token-0123456789';
const READER = 'acme-attacks-reader-token-0123456789';
const EAB_KID = 'kid-attacks';
const EAB_HMAC = randomBytes(48).toString('base64url');
const TSIG_SECRET = randomBytes(32).toString('base64');

/** Every file under `dir` (recursively) with a hash of its content: what "nothing changed on disk" compares. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) out[path.relative(dir, full)] = createHash('sha256').update(await readFile(full)).digest('hex');
    }
  };
  await walk(dir);
  return out;
}

/** The base64 lines of a PEM's body: any one of them in an answer or a log line is a leak. */
const pemLines = (pem: string): string[] => pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----') && l.length >= 40);

describe('ACME under attack', { skip }, () => {
  let pebble: RunningPebble;
  let portico: RunningPortico;
  let settings: Settings;
  let stateDir: string;
  let scratch: string;
  let backend: HttpBackend;
  let httpPort: number;
  const logLines: string[] = [];

  const api = () => supertest(portico.app);
  const auth = { Authorization: `Bearer ${WRITER}` };
  const post = (body: unknown) => api().post('/v1/certificates').set(auth).send(body as object);
  const view = async (id: string) => (await api().get(`/v1/certificates/${id}`).set(auth).expect(200)).body;
  /** What nginx and Portico hold on disk: certificates, state, app and stream files. */
  const disk = async () => snapshot(stateDir).then((all) => Object.fromEntries(Object.entries(all).filter(([f]) => !f.startsWith('logs/') && !f.startsWith('temp/') && !f.includes('journal.json'))));

  before(async () => {
    httpPort = await freePort();
    pebble = await startPebble({ httpPort, externalAccountMACKeys: { [EAB_KID]: EAB_HMAC } });
    scratch = await tempDir('acme-attacks');
    stateDir = await tempDir('acme-attacks-state');
    await writeFile(path.join(scratch, 'pebble-api.pem'), pebble.caBundlePem);
    await writeFile(path.join(scratch, 'tokens'), `writer write ${sha256(WRITER).toString('hex')}\nreader read ${sha256(READER).toString('hex')}\n`, { mode: 0o600 });
    settings = loadSettings({
      NGINX_BIN: nginxBin(),
      STATE_DIR: stateDir,
      LOG_LEVEL: 'debug',
      NGINX_STATUS_PORT: 'off',
      PORT_RANGE: `${FROM}-${FROM + 4}`,
      HTTP_PORT: String(httpPort),
      HTTPS_PORT: String(await freePort(true)),
      API_TOKENS_FILE: path.join(scratch, 'tokens'),
      ACME_DIRECTORY_URL: pebble.directoryUrl,
      ACME_CA_BUNDLE: path.join(scratch, 'pebble-api.pem'),
      ACME_EMAIL: 'ops@portico.test',
      ACME_RETRY_MIN: '1s',
      ACME_EAB_KID: EAB_KID,
      ACME_EAB_HMAC_KEY: EAB_HMAC,
      // DNS-01 configured (its secret is one to keep) but never used: no order here asks for it.
      ACME_DNS_SERVER: `127.0.0.1:${await freePort(true)}`,
      ACME_DNS_TSIG_NAME: 'attacks-key',
      ACME_DNS_TSIG_SECRET: TSIG_SECRET,
    });
    // Every pino line Portico writes, at debug.
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
        done();
      },
    });
    portico = await startPortico(settings, { log: pino({ level: 'debug' }, sink) });
    backend = await startHttpBackend('attacks');
    // nginx listens on HTTP_PORT (where HTTP-01 is answered) while an app exists.
    await api().post('/v1/apps').set(auth).send({ name: 'site', serverNames: ['site.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] }).expect(201);
    await post({ id: 'first', acme: { names: ['first.test', 'www.first.test'] } }).expect(201);
    let last: Record<string, any> = {};
    const valid = await eventually(async () => (last = await view('first')).acme?.status === 'valid', 30_000, 100);
    assert.ok(valid, `the first certificate was not issued: ${JSON.stringify(last.acme)}\n${pebble.output().slice(-2000)}`);
  });

  after(async () => {
    await portico?.close();
    if (stateDir !== undefined) {
      await stopNginxUnder(stateDir);
      await rm(stateDir, { recursive: true, force: true });
    }
    await pebble?.stop();
    await backend?.close();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  it('config injection through acme.names: 400 naming acme.names.N, nothing on disk, nginx untouched', async () => {
    const before = await disk();
    const masters = await nginxMasters(stateDir);
    const hostile = [
      'a.test\nserver_name evil.test', 'a.test\r\n', 'a.test;', 'a.test; include /etc/passwd', 'a.test{', '}', '"a.test"', "'a.test'", 'a.test"',
      'ехample.test' /* Cyrillic е */, 'exa\u200bmple.test' /* zero-width space */, 'a\uff0etest' /* full-width dot */, 'ａ.test',
      `${'a'.repeat(64)}.test`, `${'a'.repeat(254)}.test`, `${`${'a'.repeat(63)}.`.repeat(3)}${'a'.repeat(62)}`, // 254 characters
      'a.*.test', '*.*.test', 'a*.test', '*', '*.test', '127.0.0.1', '*.127.0.0.1', '::1', '[::1]', '10.0.0.1',
      'a.test.', '.a.test', 'a..test', '-a.test', 'a-.test', 'A.TEST', 'Shop.test', '', ' a.test', 'a.test ', 'a b.test',
      'a.test\u0000', 'a.test/x', 'a.test:443', '$host', 'a.test$1', 'default', 'include', 'a_b.test', 'a.test#', 'a.test\\',
    ];
    for (const name of hostile) {
      // The bad name second: the field must name its index.
      const res = await post({ id: 'inject', acme: { names: ['ok.test', name], challenge: 'dns-01' } });
      assert.equal(res.status, 400, `${JSON.stringify(name)}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.field, 'acme.names.1', `${JSON.stringify(name)}: ${JSON.stringify(res.body.error)}`);
      // Without an id, the id would be made from the name: refused all the same.
      const first = await post({ acme: { names: [name], challenge: 'dns-01' } });
      assert.equal(first.status, 400, `${JSON.stringify(name)} first: ${first.status}`);
      assert.equal(first.body.error.field, 'acme.names.0');
    }
    // Non-strings.
    for (const names of [[1], [null], [{ name: 'a.test' }], [['a.test']], 'a.test', {}]) {
      const res = await post({ acme: { names } });
      assert.equal(res.status, 400, JSON.stringify(names));
      assert.match(res.body.error.field, /^acme\.names/);
    }
    assert.deepEqual(await disk(), before, 'a refused create wrote a file');
    assert.deepEqual(await readdir(path.join(settings.acme.stateDir, 'certificates')), ['first.json']);
    assert.deepEqual(await nginxMasters(stateDir), masters, 'nginx was restarted');
    assert.equal((await api().get('/v1/certificates/inject').set(auth)).status, 404);
  });

  it('id path tricks are refused with 400 on create, read, renew and delete; nothing is written', async () => {
    const before = await disk();
    for (const id of ['../x', '../../etc/passwd', 'a/b', '.hidden', '..', '.', 'a\\b', 'A', 'a b', 'a\nb', '', 'x'.repeat(64), '-a', 'a%2fb', 'ａ']) {
      const res = await post({ id, acme: { names: ['id.test'] } });
      assert.equal(res.status, 400, `id ${JSON.stringify(id)}: ${res.status}`);
      assert.equal(res.body.error.field, 'id');
    }
    for (const raw of ['..%2fx', '.hidden', '..%2f..%2fcerts%2ffirst', 'a%2fb', '%2e%2e', 'first%00', 'FIRST']) {
      for (const [method, suffix] of [['get', ''], ['post', '/renew'], ['delete', '']] as const) {
        const res = await api()[method](`/v1/certificates/${raw}${suffix}`).set(auth);
        assert.ok(res.status === 400 || res.status === 404, `${method} ${raw}${suffix}: ${res.status}`);
        if (res.status === 400) assert.equal(res.body.error.field, 'id');
      }
    }
    assert.deepEqual(await disk(), before);
    assert.equal((await view('first')).acme.status, 'valid', 'the real one is untouched');
  });

  it('101 names and an oversized body are refused; nothing is written', async () => {
    const before = await disk();
    const many = Array.from({ length: 101 }, (_, i) => `n${i}.test`);
    const res = await post({ id: 'many', acme: { names: many } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.field, 'acme.names');
    assert.match(res.body.error.message, /at most 100/);
    const huge = await api().post('/v1/certificates').set(auth).set('content-type', 'application/json').send(JSON.stringify({ id: 'huge', acme: { names: ['huge.test'] }, pad: 'x'.repeat(200_000) }));
    assert.ok(huge.status === 413 || huge.status === 400, `oversized body: ${huge.status}`);
    const extra = await post({ id: 'extra', acme: { names: ['extra.test'], key: '-----BEGIN PRIVATE KEY-----' } });
    assert.equal(extra.status, 400, 'an unknown field in acme is refused');
    assert.deepEqual(await disk(), before);
  });

  it('a duplicated create is 409 and the first is intact', async () => {
    const first = await view('first');
    const before = await disk();
    const again = await post({ id: 'first', acme: { names: ['evil.test'] } });
    assert.equal(again.status, 409, JSON.stringify(again.body));
    const pem = await post({ id: 'first', certificate: first.certificate });
    assert.equal(pem.status, 409, `a PEM create over it: ${JSON.stringify(pem.body)}`);
    assert.deepEqual(await view('first'), first);
    assert.deepEqual(await disk(), before);
  });

  it('two creates of one id at once: one 201, one 409, and the winner stays managed with its own names', async () => {
    for (let round = 0; round < 5; round += 1) {
      const id = `race${round}`;
      const [a, b] = await Promise.all([post({ id, acme: { names: [`${id}-a.test`] } }), post({ id, acme: { names: [`${id}-b.test`] } })]);
      assert.deepEqual([a.status, b.status].sort(), [201, 409], `round ${round}: ${a.status} ${JSON.stringify(a.body)} / ${b.status} ${JSON.stringify(b.body)}`);
      const winner = a.status === 201 ? a : b;
      const now = await view(id);
      assert.ok(now.acme !== undefined, `round ${round}: ${id} is served but no longer managed by ACME (its state was removed by the loser)`);
      assert.deepEqual(now.acme.names, winner.body.acme.names, `round ${round}: the loser's names replaced the winner's`);
      assert.deepEqual(now.sans, winner.body.sans, `round ${round}: the placeholder served is the winner's`);
    }
    // Their orders settle before the next tests compare the disk.
    for (let round = 0; round < 5; round += 1) {
      const settled = await eventually(async () => (await view(`race${round}`)).acme.status === 'valid', 30_000, 100);
      assert.ok(settled, `race${round} was not issued`);
    }
  });

  it('the HTTP-01 location serves challenge files only: no traversal, and a planted symlink leaks nothing', async () => {
    const keyPem = await readFile(path.join(settings.certDir, 'first.key'), 'utf8');
    // A private key readable by anyone (as nginx's workers are, when they run as Portico's own user
    // and read its 0600 files): a symlink in the challenge folder must still not serve it.
    // The scratch folder open to nginx's workers (mkdtemp made it 0700), as a key's folder might be.
    await chmod(scratch, 0o755);
    const exposed = path.join(scratch, 'exposed.key');
    await writeFile(exposed, keyPem, { mode: 0o644 });
    await mkdir(path.join(scratch, 'dir'), { mode: 0o755 });
    await writeFile(path.join(scratch, 'dir', 'inside.key'), keyPem, { mode: 0o644 });
    const challengeDir = settings.acmeChallengeDir;
    const planted = {
      abcdefghijklmnopqrstuvwxyz012345: exposed,
      'account-key-link-aaaaaaaaaaaaaaaa': path.join(settings.acme.stateDir, 'account.key'),
      'cert-key-link-aaaaaaaaaaaaaaaaaaa': path.join(settings.certDir, 'first.key'),
      'dir-link-aaaaaaaaaaaaaaaaaaaaaaaa': path.join(scratch, 'dir'),
    };
    for (const [name, target] of Object.entries(planted)) await symlink(target, path.join(challengeDir, name));
    // A real challenge file next to them is still served.
    const token = 'realTokenOfTwentyTwoPlusChars_-0123';
    await writeFile(path.join(challengeDir, token), `${token}.proof`, { mode: 0o644 });
    try {
      const paths = [
        '/.well-known/acme-challenge/../../certs/first.key',
        '/.well-known/acme-challenge/../acme/account.key',
        '/.well-known/acme-challenge/%2e%2e/%2e%2e/certs/first.key',
        '/.well-known/acme-challenge/%2e%2e%2f%2e%2e%2fcerts%2ffirst.key',
        '/.well-known/acme-challenge/..%2f..%2fcerts%2ffirst.key',
        '/.well-known/acme-challenge/..%5c..%5ccerts%5cfirst.key',
        '/.well-known/acme-challenge//../../certs/first.key',
        '/.well-known/acme-challenge../certs/first.key',
        '/.well-known/acme-challenge/abcdefghijklmnopqrstuvwxyz012345',
        '/.well-known/acme-challenge/account-key-link-aaaaaaaaaaaaaaaa',
        '/.well-known/acme-challenge/cert-key-link-aaaaaaaaaaaaaaaaaaa',
        '/.well-known/acme-challenge/dir-link-aaaaaaaaaaaaaaaaaaaaaaaa/inside.key',
        '/.well-known/acme-challenge/dir-link-aaaaaaaaaaaaaaaaaaaaaaaa/',
        '/.well-known/acme-challenge/',
        '/.well-known/acme-challenge/.',
      ];
      // The catch-all server (a name no app serves) and an app's server, which alias the same folder.
      for (const host of ['nobody.test', 'site.test']) {
        for (const target of paths) {
          const res = await rawRequest('127.0.0.1', httpPort, [`GET ${target} HTTP/1.1`, `Host: ${host}`, 'Connection: close'].join('\r\n'));
          // What leaves the challenge location after nginx normalised the path is the app's: its backend answers.
          if (res.status === 200) assert.match(res.body, /"who":"attacks"/, `${host} ${target}: 200 not from the backend: ${res.body.slice(0, 80)}`);
          assert.ok(!res.body.includes('PRIVATE KEY') && !pemLines(keyPem).some((l) => res.body.includes(l)), `${host} ${target} leaked a key`);
        }
        const good = await rawRequest('127.0.0.1', httpPort, [`GET /.well-known/acme-challenge/${token} HTTP/1.1`, `Host: ${host}`, 'Connection: close'].join('\r\n'));
        assert.equal(good.status, 200, `${host}: the real challenge file`);
        assert.equal(good.body, `${token}.proof`);
      }
    } finally {
      for (const name of [...Object.keys(planted), token]) await rm(path.join(challengeDir, name), { force: true });
    }
  });

  it('the account key and the per-certificate state are 0600 in 0700 folders; issued keys too', async () => {
    const mode = async (p: string) => (await lstat(p)).mode & 0o777;
    const acmeDir = settings.acme.stateDir;
    assert.equal(await mode(acmeDir), 0o700, acmeDir);
    assert.equal(await mode(path.join(acmeDir, 'account.key')), 0o600);
    assert.equal(await mode(path.join(acmeDir, 'certificates')), 0o700);
    for (const file of await readdir(path.join(acmeDir, 'certificates'))) assert.equal(await mode(path.join(acmeDir, 'certificates', file)), 0o600, file);
    assert.equal(await mode(settings.certDir), 0o700);
    for (const file of (await readdir(settings.certDir)).filter((f) => f.endsWith('.key'))) assert.equal(await mode(path.join(settings.certDir, file)), 0o600, file);
    // Every other file under the ACME folder too (no temp file left readable).
    for (const file of await readdir(acmeDir)) {
      const s = await stat(path.join(acmeDir, file));
      if (s.isFile()) assert.equal(s.mode & 0o077, 0, `${file} is readable by others`);
    }
  });

  it('no EAB HMAC key, TSIG secret or private key in any answer or any log line (pino at debug)', async () => {
    // Give every path a chance to speak: a renewal, a failed create, the event feed, metrics.
    await api().post('/v1/certificates/first/renew').set(auth).expect(200);
    await post({ id: 'bad', acme: { names: ['Bad.test'] } }).expect(400);
    const secrets: Array<[string, string]> = [
      ['EAB HMAC key', EAB_HMAC],
      ['EAB HMAC key (base64)', Buffer.from(EAB_HMAC, 'base64url').toString('base64').replace(/=+$/, '')],
      ['TSIG secret', TSIG_SECRET],
      ['TSIG secret (hex)', Buffer.from(TSIG_SECRET, 'base64').toString('hex')],
      ['TSIG secret (base64url)', Buffer.from(TSIG_SECRET, 'base64').toString('base64url')],
    ];
    for (const file of [path.join(settings.certDir, 'first.key'), path.join(settings.acme.stateDir, 'account.key')]) {
      const pem = await readFile(file, 'utf8');
      for (const line of pemLines(pem)) secrets.push([file, line]);
      secrets.push([`${file} header`, 'PRIVATE KEY-----']);
    }
    const answers: Array<[string, string]> = [];
    for (const url of ['/v1/status', '/v1/certificates', '/v1/certificates/first', '/v1/events', '/v1/events?type=acme', '/metrics', '/v1/apps', '/openapi.json']) {
      const res = await api().get(url).set(auth);
      answers.push([url, res.text]);
    }
    assert.ok(logLines.length > 10, `only ${logLines.length} log lines captured`);
    assert.ok(logLines.some((l) => l.includes('"level":20')), 'debug lines were captured');
    for (const [where, text] of [...answers, ...logLines.map((l, i): [string, string] => [`log line ${i}`, l])]) {
      for (const [what, secret] of secrets) assert.ok(!text.includes(secret), `${what} appears in ${where}: ${text.slice(0, 300)}`);
    }
  });

  it('a browser (a foreign Origin, a foreign Host, a cross-site fetch) can neither create nor renew', async () => {
    const before = await disk();
    const lastAttempt = (await view('first')).acme.lastAttempt;
    const tricks: Array<Record<string, string>> = [
      { Origin: 'https://evil.example' },
      { Origin: 'null' },
      { Host: 'evil.example' },
      { Host: 'localhost.evil.example' },
      { 'Sec-Fetch-Site': 'cross-site' },
      { 'Sec-Fetch-Site': 'same-site' },
    ];
    for (const headers of tricks) {
      const create = await api().post('/v1/certificates').set(auth).set(headers).send({ id: 'browser', acme: { names: ['browser.test'] } });
      assert.equal(create.status, 403, `create with ${JSON.stringify(headers)}: ${create.status}`);
      const renew = await api().post('/v1/certificates/first/renew').set(auth).set(headers).send({});
      assert.equal(renew.status, 403, `renew with ${JSON.stringify(headers)}: ${renew.status}`);
      // A form post (no preflight) is refused too.
      const form = await api().post('/v1/certificates/first/renew').set(auth).set(headers).set('content-type', 'text/plain').send('{}');
      assert.ok(form.status === 403 || form.status === 415, `form renew with ${JSON.stringify(headers)}: ${form.status}`);
    }
    assert.equal((await api().get('/v1/certificates/browser').set(auth)).status, 404);
    assert.equal((await view('first')).acme.lastAttempt, lastAttempt, 'no renewal was ordered');
    assert.deepEqual(await disk(), before);
  });

  it('renew needs the write scope: no token 401, a read token 403, a write token 200', async () => {
    const lastAttempt = (await view('first')).acme.lastAttempt;
    assert.equal((await api().post('/v1/certificates/first/renew')).status, 401);
    assert.equal((await api().post('/v1/certificates/first/renew').set('Authorization', 'Bearer not-a-token-of-ours-0123456789')).status, 401);
    const reader = await api().post('/v1/certificates/first/renew').set('Authorization', `Bearer ${READER}`);
    assert.equal(reader.status, 403);
    assert.equal((await api().post('/v1/certificates').set('Authorization', `Bearer ${READER}`).send({ id: 'reader', acme: { names: ['reader.test'] } })).status, 403);
    assert.equal((await view('first')).acme.lastAttempt, lastAttempt, 'the read token renewed');
    assert.equal((await api().get('/v1/certificates/reader').set(auth)).status, 404);
    // Renew orders for managed certificates only: an unknown id or an uploaded pair is 404, nothing ordered.
    assert.equal((await api().post('/v1/certificates/nosuch/renew').set(auth)).status, 404);
    await post({ id: 'uploaded', certificate: fixturePem('a.crt'), key: fixturePem('a.key') }).expect(201);
    const uploaded = await api().post('/v1/certificates/uploaded/renew').set(auth);
    assert.equal(uploaded.status, 404, JSON.stringify(uploaded.body));
    assert.equal((await view('uploaded')).acme, undefined);
    const writer = await api().post('/v1/certificates/first/renew').set(auth);
    assert.equal(writer.status, 200);
    assert.equal(writer.body.acme.status, 'valid');
    assert.notEqual(writer.body.acme.lastAttempt, lastAttempt);
  });
});
