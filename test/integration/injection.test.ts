/**
 * Config injection is the worst bug Portico can have. Every hostile backend, port and body below
 * answers 4xx, writes no file, and the streams created before keep carrying traffic.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 22000;
const TO = 22019;
const LIVE = FROM; // the stream that must keep serving throughout

/** Backends as they appear in the URL path (already percent-encoded where a raw form cannot be sent). */
const HOSTILE_BACKENDS = [
  '127.0.0.1:1;%20include%20/etc/passwd', // directive injection
  '127.0.0.1:1%3B',
  'a%3B%7D%20server%20%7B%20listen%2022019%3B%20proxy_pass%20b:1%3B', // close the block, open another
  'host%7Bx:1',
  'host%7D:1',
  'host%23comment:1', // '#' starts a comment
  '127.0.0.1:1%0Aproxy_pass%20evil:1', // newline, encoded
  '127.0.0.1:1%0D%0Alisten%2022018', // CRLF
  '%22quoted%22:1',
  "'single':1",
  '$remote_addr:1', // nginx variables
  '%24%7Bhost%7D:1',
  'two%20words:1', // spaces
  '%09tab:1',
  'unix:%2Fvar%2Frun%2Fsocket', // unix sockets
  'unix:/tmp/x.sock',
  'unix:9000', // nginx reads any "unix:" as a socket path, whatever follows
  'UNIX:9000',
  `${'a'.repeat(5000)}:1`, // 5,000-character name
  `${'a'.repeat(64)}.example:1`, // a label over 63 characters
  'host', // no port
  'host:', // empty port
  ':5432', // empty host
  'host:0',
  'host:65536',
  'host:-1',
  'host:abc',
  'host:5432:1',
  '-leading-hyphen:1',
  'trailing-hyphen-:1',
  'under_score:1',
  '[::1:5432', // unbalanced bracket
  '[not-ipv6]:1',
  '::1:5432', // an IPv6 address must be bracketed
  '256.1.1.1:1',
  '1.2.3:1', // digits-only name that is no IPv4 address
  'h%00st:1', // NUL
  'http%3A%2F%2Fhost:1', // a URL
  '%C3%A9xample.com:1', // non-ASCII
  '%E0%A4%A', // malformed percent-encoding
];

const HOSTILE_PORTS = ['0', '65536', '-1', 'abc', '09000', '9000.5', '1e4', '%20' + FROM, `${FROM}%3B`, '99999999999'];

const HOSTILE_BODIES: unknown[] = [
  { upstreams: [{ address: '127.0.0.1:1; include /etc/passwd' }] },
  { upstreams: [{ address: 'a:1\nlisten 22018' }] },
  { upstreams: [] },
  { upstreams: 'host:1' },
  { upstreams: [{ address: 'host:1', extra: true }] },
  { backend: 'host:1', upstreams: [{ address: 'host:1' }] },
  { port: '22001', backend: 'host:1' },
  { port: 22001.5, backend: 'host:1' },
  { port: -1, backend: 'host:1' },
  { port: FROM - 1, backend: 'host:1' },
  { backend: 'host:1', listen: '0.0.0.0:22001' },
  '{"backend": "host:1", "__proto__": {"polluted": true}}', // sent raw: own __proto__ key
  {},
  [],
  'host:1',
  null,
];

describe('hostile input', () => {
  let portico: InProcess;
  let echo: EchoServer;
  let filesBefore: string[];

  before(async () => {
    echo = await startEcho();
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${TO}` });
    await request(portico.app).get(`/createstream/${LIVE}/127.0.0.1:${echo.port}`).expect(200);
    filesBefore = await readdir(portico.settings.streamDir);
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  const assertUntouched = async (): Promise<void> => {
    assert.deepEqual(await readdir(portico.settings.streamDir), filesBefore);
    assert.equal(await roundTrip(LIVE, 'still serving'), 'still serving');
  };

  it(`${HOSTILE_BACKENDS.length} hostile backends on createstream each answer 4xx and write nothing`, async () => {
    for (const backend of HOSTILE_BACKENDS) {
      const res = await request(portico.app).get(`/createstream/${FROM + 1}/${backend}`);
      assert.ok(res.status >= 400 && res.status < 500, `${backend.slice(0, 60)} answered ${res.status}`);
      assert.equal(res.body.result, 'error', `${backend.slice(0, 60)}: ${JSON.stringify(res.body)}`);
      assert.ok(['backend', 'request'].includes(res.body.error.field), `${backend.slice(0, 60)}: field ${res.body.error.field}`);
    }
    await assertUntouched();
  });

  it(`${HOSTILE_PORTS.length} hostile ports on createstream, removestream and hasstream each answer 400`, async () => {
    for (const port of HOSTILE_PORTS) {
      for (const route of [`/createstream/${port}/127.0.0.1:${echo.port}`, `/removestream/${port}`, `/hasstream/${port}`]) {
        const res = await request(portico.app).get(route);
        assert.equal(res.status, 400, `${route} answered ${res.status}`);
        assert.equal(res.body.error.field, 'port', route);
        assert.match(res.body.error.message, /^port: must be an integer from 1 to 65535/);
      }
    }
    await assertUntouched();
  });

  it(`${HOSTILE_BODIES.length} hostile JSON bodies on POST and PUT /v1/streams each answer 400 naming a field`, async () => {
    for (const body of HOSTILE_BODIES) {
      for (const req of [request(portico.app).post('/v1/streams'), request(portico.app).put(`/v1/streams/${FROM + 1}`)]) {
        const raw = typeof body === 'string' && body.startsWith('{') ? body : JSON.stringify(body);
        const res = await req.set('content-type', 'application/json').send(raw);
        assert.equal(res.status, 400, `${JSON.stringify(body)} answered ${res.status}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error.kind, 'InvalidInput');
        assert.equal(typeof res.body.error.field, 'string');
      }
    }
    const res = await request(portico.app).post('/v1/streams').set('content-type', 'application/json').send('{"backend":');
    assert.equal(res.status, 400);
    assert.equal(res.body.error.field, 'body');
    await assertUntouched();
  });

  it('a PUT whose body names another port than its path answers 400', async () => {
    const res = await request(portico.app)
      .put(`/v1/streams/${FROM + 1}`)
      .send({ port: FROM + 2, backend: `127.0.0.1:${echo.port}` })
      .expect(400);
    assert.equal(res.body.error.field, 'port');
    await assertUntouched();
  });
});
