/**
 * Portico's log and answers in a run with API_TOKENS_FILE (and API_TOKEN), as `make start` runs it:
 * every mutation's batch line and answer name the token that made it; no token, hash, cookie, proxy
 * credential, query value or private key reaches the log, from a wrong token, a header, a body or an
 * error that quotes input; SIGHUP reads the file again, and a malformed file keeps the old tokens
 * with an error naming the line, never its content. (logs.test.ts covers the run with API_TOKEN.)
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/api/tokens-file.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { REPO, discardPortico, processRuns, spawnPortico, tempDir, type ChildPortico } from '../helpers/portico.js';

const FROM = 29340;
const API_PORT = 29395;
const DEPLOY = 'deploy-0f3a9c2e7b1d4a6f8e0c2b4d6f8a0c2e';
const MONITOR = 'monitor-5b7d9f1a3c5e7a9b1d3f5a7c9e1b3d5f';
const CI = 'ci-token-8e6c4a2f0d8b6a4c2e0f8d6b4a2c0e8f';
const NEWBIE = 'newbie-2a4c6e8f0b2d4f6a8c0e2b4d6f8a0c2e';
const LEGACY = 'legacy-api-token-1c3e5a7b9d1f3a5c';
const hex = (token: string): string => sha256(token).toString('hex');
const CERTS = path.join(REPO, 'test/fixtures/certs');

const lines = (output: string): Array<Record<string, unknown>> =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{') && line.endsWith('}'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** The base64 lines of a PEM key: any of them in a log or an answer is a leak. */
const keyLines = (pem: string): string[] => pem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'));

describe('Portico\'s log with API_TOKENS_FILE', () => {
  let echo: EchoServer;
  let stateDir: string;
  let tokensFile: string;
  let portico: ChildPortico | undefined;
  /** Every answer body, to search them for credentials too. */
  const answers: string[] = [];

  const call = async (method: string, route: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}) => {
    assert.ok(portico !== undefined);
    const res = await fetch(`${portico.url}${route}`, {
      method,
      headers: { ...headers, ...(token !== undefined && { authorization: `Bearer ${token}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    answers.push(text);
    return { status: res.status, id: String(res.headers.get('portico-request-id')), text };
  };

  /** The batch line that names request `id`, once it is written. */
  const batchOf = async (id: string) => {
    const find = () => lines(portico!.output()).find((l) => l.event === 'batch' && (l.by as Array<{ request: string }>).some((b) => b.request === id));
    await eventually(() => find() !== undefined, 3000);
    return find();
  };

  before(async () => {
    echo = await startEcho();
    stateDir = await tempDir('logs-tokens');
    tokensFile = path.join(stateDir, 'tokens');
    await writeFile(tokensFile, `# name scope sha256\ndeploy write ${hex(DEPLOY)}\nmonitor read ${hex(MONITOR)}\nci write ${hex(CI)}\n`, { mode: 0o600 });
    portico = await spawnPortico({
      STATE_DIR: stateDir,
      PORT_RANGE: `${FROM}-${FROM + 9}`,
      BIND_PORT: String(API_PORT),
      HTTP_PORT: String(API_PORT + 10),
      HTTPS_PORT: String(API_PORT + 11),
      API_TOKEN: LEGACY,
      API_TOKENS_FILE: tokensFile,
      WORKER_SHUTDOWN_TIMEOUT: '1s',
    });
  });
  after(async () => {
    await discardPortico(portico, stateDir);
    await echo?.close();
  });

  it('names the token of each mutation in its batch line and its answer\'s Portico-Request-Id, and never a credential', async () => {
    const backend = `127.0.0.1:${echo.port}`;
    const created = await call('POST', '/v1/streams', DEPLOY, { port: FROM, backend });
    assert.equal(created.status, 201, created.text);
    assert.match(created.id, /^[0-9a-f-]{36}; token=deploy$/);
    const request = created.id.split(';')[0];
    const batch = await batchOf(request as string);
    assert.equal(batch?.outcome, 'applied');
    assert.deepEqual(batch?.by, [{ request, token: 'deploy' }]);
    // A request's line is written once its answer is sent: the client may see the answer first.
    const requestLine = () => lines(portico!.output()).find((l) => l.module === 'api' && l.request === request);
    assert.ok(await eventually(() => requestLine() !== undefined, 2000), portico!.output());
    assert.equal(requestLine()?.token, 'deploy');

    const legacy = await call('GET', `/createstream/${FROM + 1}/${backend}`, LEGACY);
    assert.equal(legacy.status, 200, legacy.text);
    assert.deepEqual((await batchOf(legacy.id.split(';')[0] as string))?.by, [{ request: legacy.id.split(';')[0], token: 'API_TOKEN' }]);

    const forbidden = await call('DELETE', `/v1/streams/${FROM}`, MONITOR);
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.id, /; token=monitor$/);

    // Wrong tokens, other credentials in headers, and a token in the query string.
    const credentials = {
      cookie: 'session=cookie-secret-4d2c8e',
      'proxy-authorization': 'Basic cHJveHktc2VjcmV0LTdhMWY=',
      'x-api-key': 'x-api-key-secret-9e3b',
    };
    for (const wrong of [DEPLOY.slice(0, -1), `${DEPLOY} `.repeat(2), hex(DEPLOY), `Basic ${Buffer.from(`u:${DEPLOY}`).toString('base64')}`]) {
      assert.equal((await call('GET', '/v1/streams?access_token=query-secret-6b1a', wrong, undefined, credentials)).status, 401);
    }
    assert.equal((await call('GET', '/v1/streams', MONITOR, undefined, credentials)).status, 200);

    // Errors on bodies that hold credentials: none of the answers quotes them either.
    const bodySecret = 'body-secret-Bearer-3f9a7c';
    assert.equal((await call('POST', '/v1/streams', DEPLOY, { backend: `Bearer ${bodySecret}:80` })).status, 400);
    assert.equal((await call('POST', '/v1/streams', DEPLOY, { backend, authorization: `Bearer ${bodySecret}` })).status, 400);
    assert.equal((await call('POST', '/v1/apps', DEPLOY, { name: 'a', serverNames: ['a.example'], routes: [{ upstreams: [{ address: backend }], headers: { Authorization: `Bearer "${bodySecret}` } }] })).status, 400);
    const pems = await Promise.all(['a.key', 'b.key', 'b.crt', 'expired.crt', 'expired.key'].map((f) => readFile(path.join(CERTS, f), 'utf8')));
    const [aKey, bKey, bCrt, expiredCrt, expiredKey] = pems as [string, string, string, string, string];
    assert.ok(keyLines(aKey).length >= 3);
    assert.equal((await call('POST', '/v1/certificates', DEPLOY, { certificate: bCrt, key: aKey })).status, 400, 'a key that does not match');
    assert.equal((await call('POST', '/v1/certificates', DEPLOY, { certificate: aKey })).status, 400, 'a key where the certificate goes');
    assert.equal((await call('POST', '/v1/certificates', DEPLOY, { certificate: `${bCrt}\n${aKey}`, key: aKey })).status, 400, 'a key inside the chain');
    assert.equal((await call('POST', '/v1/certificates', DEPLOY, { certificate: expiredCrt, key: expiredKey })).status, 400, 'expired');
    const stored = await call('POST', '/v1/certificates', DEPLOY, { id: 'b', certificate: bCrt, key: bKey });
    assert.equal(stored.status, 201, stored.text);
    const certificateBatch = await batchOf(stored.id.split(';')[0] as string);
    assert.equal(certificateBatch?.kind, 'certificate');
    assert.deepEqual(certificateBatch?.by, [{ request: stored.id.split(';')[0], token: 'deploy' }]);
    // The event feed and the metrics record every batch and who asked: by the token's name only.
    const feed = await call('GET', '/v1/events', MONITOR);
    assert.equal(feed.status, 200, feed.text);
    assert.match(feed.text, /"token":"deploy"/);
    assert.equal((await call('GET', '/metrics', MONITOR)).status, 200);
    await eventually(() => lines(portico!.output()).filter((l) => l.module === 'api').length >= 18, 2000);

    const output = portico!.output();
    const secrets = [DEPLOY, MONITOR, CI, LEGACY, hex(DEPLOY), hex(MONITOR), hex(CI), hex(LEGACY), bodySecret, 'query-secret-6b1a', ...Object.values(credentials), 'cHJveHktc2VjcmV0', ...[aKey, bKey, expiredKey].flatMap(keyLines)];
    for (const secret of secrets) assert.ok(!output.includes(secret), `the log holds "${secret}"`);
    for (const word of ['authorization', 'cookie', 'x-api-key', 'private key']) assert.ok(!output.toLowerCase().includes(word), `the log holds "${word}"`);
    const answered = answers.join('\n');
    for (const secret of [DEPLOY, MONITOR, CI, LEGACY, hex(DEPLOY), hex(MONITOR), hex(CI), hex(LEGACY), bodySecret, 'query-secret-6b1a', ...Object.values(credentials), ...[aKey, bKey, expiredKey].flatMap(keyLines)]) {
      assert.ok(!answered.includes(secret), `an answer holds "${secret}"`);
    }
  });

  it('on SIGHUP reads the file again; a malformed file keeps the tokens read before, and the log names the line, not its content', async () => {
    assert.ok(portico !== undefined);
    const reads = () => lines(portico!.output()).filter((l) => l.module === 'tokens' && String(l.msg).includes('read again')).length;
    await writeFile(tokensFile, `deploy write ${hex(DEPLOY)}\nmonitor read ${hex(MONITOR)}\nnewbie read ${hex(NEWBIE)}\n`);
    process.kill(portico.pid, 'SIGHUP');
    assert.ok(await eventually(() => reads() === 1, 3000), portico.output());
    assert.equal((await call('GET', '/v1/streams', CI)).status, 401, 'ci was revoked');
    assert.equal((await call('GET', '/v1/streams', NEWBIE)).status, 200, 'newbie was added');
    assert.equal((await call('POST', '/v1/streams', NEWBIE, { backend: '127.0.0.1:1' })).status, 403, 'newbie reads only');

    // An operator pastes the token itself where its hash belongs, on line 3.
    await writeFile(tokensFile, `deploy write ${hex(DEPLOY)}\nmonitor read ${hex(MONITOR)}\nci write ${CI}\n`);
    process.kill(portico.pid, 'SIGHUP');
    const refusal = async () => lines(portico!.output()).find((l) => l.module === 'tokens' && l.level === 50);
    assert.ok(await eventually(async () => (await refusal()) !== undefined, 3000), portico.output());
    assert.match(String((await refusal())?.msg), /^API_TOKENS_FILE .*: line 3: the third field must be the token's SHA-256 .*; keeping the 4 tokens read before$/);
    assert.equal((await call('GET', '/v1/streams', NEWBIE)).status, 200, 'the old table stays');
    assert.equal((await call('GET', '/v1/streams', CI)).status, 401);
    assert.equal(await processRuns(portico.pid), true, 'SIGHUP does not stop Portico');
    const output = portico.output();
    for (const secret of [CI, NEWBIE, hex(NEWBIE), hex(CI), DEPLOY]) assert.ok(!output.includes(secret), `the log holds "${secret}"`);
  });
});
