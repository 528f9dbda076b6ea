/**
 * The API's guard against browsers, attacked byte for byte over real sockets (what Chromium does is
 * browser-attacks.test.ts): every spelling of Host, Origin and Sec-Fetch-Site, absolute-form
 * targets, repeated headers, bodies of every type. Each refused request changes nothing: no file in
 * the stream directory, no listener. curl, wget, Python and node's fetch keep working.
 *
 * BIND_ADDRESS is 0.0.0.0 in the settings; the API is served, as main.ts serves it, on 127.0.0.1
 * and on 127.0.0.3, which is what a client reaching a 0.0.0.0 listener through either address sees.
 * An API beyond loopback needs a token (settings.ts), so every request here carries API_TOKEN: the
 * guard is what refuses them, not the token check.
 * Ports 26300-26319.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { bindApi, type ApiListener } from '../../src/api/listener.js';
import { accepts, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';
import { rawRequest, type RawAnswer } from '../helpers/raw-http.js';

const FROM = 26300;
const API = 26310;
/** The port every hostile create aims at: it must never listen. */
const TARGET = 26301;
const run = promisify(execFile);
const TOKEN = 'browser-guard-test-token';
const AUTH = `Authorization: Bearer ${TOKEN}`;

describe('the browser guard, over raw sockets', () => {
  let portico: InProcess;
  let echo: EchoServer;
  const listeners: ApiListener[] = [];

  /** One request to the API on 127.0.0.1 (or `address`), `Connection: close` added. */
  const raw = (lines: string[], body = '', address = '127.0.0.1'): Promise<RawAnswer> =>
    rawRequest(address, API, [...lines, AUTH, 'Connection: close'].join('\r\n'), body);
  const streamFiles = async () => (await readdir(portico.settings.streamDir)).filter((f) => f.endsWith('.conf'));
  const createTarget = `/createstream/${TARGET}/127.0.0.1:22`;
  const json = (port: number) => JSON.stringify({ port, backend: `127.0.0.1:${echo.port}` });

  before(async () => {
    echo = await startEcho();
    portico = await startInProcess({
      PORT_RANGE: `${FROM}-${FROM + 9}`,
      BIND_ADDRESS: '0.0.0.0',
      API_TOKEN: TOKEN,
      BIND_PORT: String(API),
      API_ALLOWED_HOSTS: 'portico, api.example.com:8443',
      API_ALLOWED_ORIGINS: 'https://ops.example.com',
    });
    for (const address of ['127.0.0.1', '127.0.0.3']) {
      const listener = await bindApi(address, API, portico.settings.apiLimits);
      listener.serve(portico.app);
      listeners.push(listener);
    }
  });
  after(async () => {
    for (const listener of listeners) await listener.close();
    await portico?.stop();
    await echo?.close();
  });

  it('refuses a Host that does not name the API with 403 naming API_ALLOWED_HOSTS, in every spelling, and creates nothing', async () => {
    for (const host of [
      `attacker.example:${API}`, 'attacker.example', `127.0.0.1:${API}@attacker.example`, `attacker.example@127.0.0.1:${API}`,
      `localhost:${API + 1}`, `127.0.0.2:${API}`, `127.0.0.1:${API}:${API}`, `local\thost:${API}`, `[::ffff:127.0.0.1]:${API}`,
      `localhost.attacker.example:${API}`, `${'a'.repeat(8000)}.example`, `portico:${API + 1}`, 'api.example.com', '',
      // Reaching 127.0.0.1 does not make 127.0.0.3 a name of the API: only the address a client reached is.
      `127.0.0.3:${API}`,
    ]) {
      const res = await raw([`GET ${createTarget} HTTP/1.1`, `Host: ${host}`]);
      assert.equal(res.status, 403, `Host: ${host.slice(0, 60)}: ${res.body.slice(0, 200)}`);
      const error = JSON.parse(res.body).error;
      assert.equal(error.kind, 'Forbidden');
      assert.equal(error.field, 'Host');
      assert.match(error.message, /does not name this API.*API_ALLOWED_HOSTS/);
      assert.ok(res.body.length < 600, 'a long Host is cut in the answer');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
    }
    assert.deepEqual(await streamFiles(), []);
    assert.equal(await accepts(TARGET), false);
  });

  it('takes every spelling of the API\'s own names: case, a trailing dot, no port, IPv6 forms, the address reached, API_ALLOWED_HOSTS', async () => {
    for (const [host, address] of [
      [`LOCALHOST:${API}`, '127.0.0.1'], [`localhost.:${API}`, '127.0.0.1'], ['localhost', '127.0.0.1'], [`127.0.0.1:${API}`, '127.0.0.1'],
      [`[::1]:${API}`, '127.0.0.1'], [`[0:0:0:0:0:0:0:1]:${API}`, '127.0.0.1'], [`0.0.0.0:${API}`, '127.0.0.1'],
      [`127.0.0.3:${API}`, '127.0.0.3'], [`Portico:${API}`, '127.0.0.1'], ['api.example.com:8443', '127.0.0.1'],
    ] as const) {
      const res = await raw([`GET /hasstream/${TARGET} HTTP/1.1`, `Host:   ${host}  `], '', address);
      assert.equal(res.status, 200, `Host: ${host} on ${address}: ${res.body}`);
    }
    // HTTP/1.0 may leave Host out, and no browser does.
    assert.equal((await rawRequest('127.0.0.1', API, `GET /v1/status HTTP/1.0\r\n${AUTH}`)).status, 200);
  });

  it('answers 400 to two Host headers (even two right ones), to HTTP/1.1 without Host, and to two Origins', async () => {
    for (const lines of [
      [`Host: localhost:${API}`, `Host: localhost:${API}`],
      [`Host: localhost:${API}`, `hOsT: attacker.example`],
      [],
      [`Host: localhost:${API}`, `Origin: http://localhost:${API}`, `Origin: http://localhost:${API}`],
      [`Host: localhost:${API}`, 'Sec-Fetch-Site: same-origin', 'Sec-Fetch-Site: same-origin'],
    ]) {
      const res = await raw([`GET ${createTarget} HTTP/1.1`, ...lines]);
      assert.equal(res.status, 400, `${lines.join(' | ')}: ${res.body}`);
    }
    assert.deepEqual(await streamFiles(), []);
  });

  it('checks the authority of an absolute-form target as well as Host', async () => {
    for (const target of [`http://attacker.example:${API}${createTarget}`, `http://127.0.0.1:${API}@attacker.example${createTarget}`, `HTTP://ATTACKER.EXAMPLE${createTarget}`]) {
      const res = await raw([`GET ${target} HTTP/1.1`, `Host: 127.0.0.1:${API}`]);
      assert.equal(res.status, 403, target);
      assert.equal(JSON.parse(res.body).error.field, 'request target');
    }
    assert.equal((await raw([`GET http://attacker.example:${API}/v1/status HTTP/1.0`])).status, 403);
    assert.equal((await raw([`GET http://localhost:${API}/hasstream/${TARGET} HTTP/1.1`, `Host: localhost:${API}`])).status, 200);
    assert.equal((await raw([`GET http://localhost:${API}/hasstream/${TARGET} HTTP/1.1`, 'Host: attacker.example'])).status, 403);
    assert.deepEqual(await streamFiles(), []);
  });

  it('refuses a foreign or null Origin and a cross-site or same-site mark with 403 on every route that changes state, GET ones included', async () => {
    const host = `Host: 127.0.0.1:${API}`;
    const marks = [
      'Origin: null', 'Origin: http://attacker.example', `Origin: http://localhost:${API + 1}`, 'Origin: http://localhost',
      `Origin: https://localhost:${API}`, `Origin: http://localhost:${API}/`, 'Origin: https://ops.example.com.attacker.example',
      'Sec-Fetch-Site: cross-site', 'Sec-Fetch-Site: same-site', 'SEC-FETCH-SITE: Cross-Site', 'Sec-Fetch-Site: something-new',
    ];
    for (const mark of marks) {
      for (const target of [createTarget, '/removestream/26302', '/getfreeport']) {
        const res = await raw([`GET ${target} HTTP/1.1`, host, mark]);
        assert.equal(res.status, 403, `${target} with ${mark}: ${res.body}`);
        assert.match(JSON.parse(res.body).error.message, /API_ALLOWED_ORIGINS/);
      }
      const post = await raw(['POST /v1/streams HTTP/1.1', host, mark, 'Content-Type: application/json', `Content-Length: ${json(TARGET).length}`], json(TARGET));
      assert.equal(post.status, 403, `POST with ${mark}`);
    }
    assert.deepEqual(await streamFiles(), []);
    assert.equal(await accepts(TARGET), false);
    // The API's own origin, and a browser's mark for a typed URL or a same-origin request, pass.
    for (const mark of [`Origin: http://127.0.0.1:${API}`, `Origin: http://localhost:${API}`, 'Sec-Fetch-Site: none', 'Sec-Fetch-Site: same-origin']) {
      assert.equal((await raw([`GET /hasstream/${TARGET} HTTP/1.1`, host, mark])).status, 200, mark);
    }
  });

  it('answers 415 to a body that is not application/json, chunked or not, and creates nothing', async () => {
    const body = json(TARGET);
    for (const type of [
      undefined, 'text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
      'application/json, text/plain', 'text/plain; x=application/json', 'application/jsonx', 'application/json-patch+json', 'json', '',
    ]) {
      const lines = ['POST /v1/streams HTTP/1.1', `Host: localhost:${API}`, ...(type === undefined ? [] : [`Content-Type: ${type}`])];
      const res = await raw([...lines, `Content-Length: ${body.length}`], body);
      assert.equal(res.status, 415, `Content-Type: ${type}: ${res.body}`);
      assert.equal(JSON.parse(res.body).error.kind, 'UnsupportedMediaType');
      assert.match(JSON.parse(res.body).error.message, /application\/json/);
      const chunked = await raw([...lines, 'Transfer-Encoding: chunked'], `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
      assert.equal(chunked.status, 415, `chunked, Content-Type: ${type}`);
    }
    const latin = await raw(['POST /v1/streams HTTP/1.1', `Host: localhost:${API}`, 'Content-Type: application/json; charset=x-unknown', `Content-Length: ${body.length}`], body);
    assert.equal(latin.status, 415, latin.body);
    assert.deepEqual(await streamFiles(), []);
  });

  it('answers 400 to a body with a duplicate key, naming the key and where it is, and creates nothing', async () => {
    // What a text/plain form can send: its "=" lands in the first "backend", which the second hid.
    const body = `{"backend":"=", "port": ${TARGET}, "backend": "127.0.0.1:${echo.port}"}\r\n`;
    const res = await raw(['POST /v1/streams HTTP/1.1', `Host: localhost:${API}`, 'Content-Type: application/json', `Content-Length: ${body.length}`], body);
    assert.equal(res.status, 400);
    assert.deepEqual(JSON.parse(res.body).error, {
      kind: 'InvalidInput',
      field: 'backend',
      message: 'backend: the key "backend" appears twice in the body (at characters 1 and 31); bodies are strict: each key once',
    });
    const nested = JSON.stringify({ port: TARGET, upstreams: [{ address: `127.0.0.1:${echo.port}` }] }).replace('"address"', '"weight": 1, "address": "10.0.0.1:1", "address"');
    const deep = await raw(['PUT /v1/streams/26301 HTTP/1.1', `Host: localhost:${API}`, 'Content-Type: application/json', `Content-Length: ${nested.length}`], nested);
    assert.equal(deep.status, 400);
    assert.equal(JSON.parse(deep.body).error.field, 'upstreams.0.address');
    assert.match(JSON.parse(deep.body).error.message, /^upstreams\.0\.address: the key "address" appears twice in the object at upstreams\.0 /);
    assert.deepEqual(await streamFiles(), []);
  });

  it('lets /healthz answer whatever the Host (a probe sends the address it was given)', async () => {
    const res = await raw(['GET /healthz HTTP/1.1', `Host: 10.9.8.7:${API}`]);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
  });

  it('answers the CORS preflight of an origin in API_ALLOWED_ORIGINS, and only its', async () => {
    const preflight = (origin: string) =>
      raw(['OPTIONS /v1/streams HTTP/1.1', `Host: localhost:${API}`, `Origin: ${origin}`, 'Sec-Fetch-Site: cross-site', 'Access-Control-Request-Method: POST',
        'Access-Control-Request-Headers: content-type', 'Access-Control-Request-Private-Network: true']);
    const allowed = await preflight('https://ops.example.com');
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://ops.example.com');
    assert.match(allowed.headers['access-control-allow-headers'] ?? '', /Content-Type/);
    assert.match(allowed.headers['access-control-allow-methods'] ?? '', /POST/);
    assert.equal(allowed.headers['access-control-allow-private-network'], 'true');
    const refused = await preflight('https://attacker.example');
    assert.equal(refused.status, 403);
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
  });

  it('serves curl, wget, Python and node\'s fetch as before: they send a Host naming the API and nothing a browser adds', async () => {
    const url = `http://127.0.0.1:${API}`;
    const { stdout: created } = await run('curl', ['-sS', '--fail-with-body', '-H', AUTH, `${url}/createstream/${FROM + 2}/127.0.0.1:${echo.port}`]);
    assert.equal(created, '{"result":"ok"}');
    const { stdout: posted } = await run('curl', ['-sS', '--fail-with-body', '-H', AUTH, '-H', 'content-type: application/json', '-d', json(FROM + 3), `http://localhost:${API}/v1/streams`]);
    assert.equal(JSON.parse(posted).port, FROM + 3);
    const { stdout: listed } = await run('wget', ['-q', '-O', '-', `--header=${AUTH}`, `${url}/getstreams`]);
    assert.equal(JSON.parse(listed).length, 2);
    const python = "import json, urllib.request; print(json.load(urllib.request.urlopen(urllib.request.Request('%s/v1/status', headers={'Authorization': 'Bearer %t'})))['streams'])";
    const { stdout: counted } = await run('python3', ['-c', python.replace('%s', url).replace('%t', TOKEN)]);
    assert.equal(counted.trim(), '2');
    const removed = await fetch(`${url}/v1/streams/${FROM + 3}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(removed.status, 204);
    const viaFetch = await fetch(`${url}/removestream/${FROM + 2}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.deepEqual(await viaFetch.json(), { result: 'ok' });
    assert.deepEqual(await streamFiles(), []);
  });
});
