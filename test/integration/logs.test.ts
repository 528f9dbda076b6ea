/**
 * What Portico's own log says, read from a Portico run as `make start` runs it: one line per request
 * without headers, bodies or query values (the API token must never reach a log), and a SIGTERM
 * that says what it waits for before its final "stopped".
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { exited, discardPortico, spawnPortico, tempDir, type ChildPortico } from '../helpers/portico.js';

const FROM = 29320;
const API_PORT = 29390;
const TOKEN = 'log-test-token-0123456789-do-not-log';

/** The JSON lines of the output (a partial last line is left out). */
const lines = (output: string): Array<Record<string, unknown>> =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{') && line.endsWith('}'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('Portico\'s log', () => {
  let echo: EchoServer;
  let stateDir: string;
  let portico: ChildPortico | undefined;

  before(async () => {
    echo = await startEcho();
    stateDir = await tempDir('logs');
    portico = await spawnPortico({
      STATE_DIR: stateDir,
      PORT_RANGE: `${FROM}-${FROM + 9}`,
      BIND_PORT: String(API_PORT),
      API_TOKEN: TOKEN,
      WORKER_SHUTDOWN_TIMEOUT: '1s',
    });
  });
  after(async () => {
    await discardPortico(portico, stateDir);
    await echo?.close();
  });

  it('logs one line per request with method, path, status and duration, and never the token, a header, a body or a query value', async () => {
    assert.ok(portico !== undefined);
    const headers = { authorization: `Bearer ${TOKEN}`, 'user-agent': 'log-test-agent', 'content-type': 'application/json', 'x-trace-me': 'trace-value' };
    const created = await fetch(`${portico.url}/v1/streams?dryRun=false&note=query-secret`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ port: FROM, backend: `127.0.0.1:${echo.port}` }),
    });
    assert.equal(created.status, 201);
    const id = String(created.headers.get('portico-request-id'));
    assert.match(id, /^[0-9a-f-]{36}; token=API_TOKEN$/);
    assert.equal((await fetch(`${portico.url}/v1/streams/${FROM}`, { headers: { authorization: 'Bearer wrong-guess-of-a-token' } })).status, 401);
    // Each line is written once its answer is sent: the client may see the answer first.
    const seen = await eventually(() => lines(portico!.output()).some((l) => l.module === 'api' && l.status === 401), 2000);
    assert.ok(seen, portico.output());

    const requests = lines(portico.output()).filter((l) => l.module === 'api');
    const post = requests.find((l) => l.method === 'POST');
    assert.deepEqual({ ...post, time: 0, pid: 0, ms: 0, level: 0, msg: '' }, {
      level: 0, time: 0, pid: 0, msg: '', module: 'api', method: 'POST', path: '/v1/streams', query: ['dryRun', 'note'], status: 201, ms: 0,
      request: id.split(';')[0], token: 'API_TOKEN',
    });
    assert.ok(typeof post?.ms === 'number' && post.ms >= 0 && post.ms < 10_000, `duration: ${post?.ms}`);
    assert.match(String(post?.msg), /^POST \/v1\/streams 201 in [\d.]+ ms$/);
    const refused = requests.find((l) => l.status === 401);
    assert.equal(refused?.path, `/v1/streams/${FROM}`);
    assert.equal(refused?.level, 40, 'a 4xx is logged as a warning');

    const output = portico.output();
    for (const secret of [TOKEN, 'wrong-guess-of-a-token', 'query-secret', 'log-test-agent', 'trace-value', `127.0.0.1:${echo.port}`]) {
      assert.ok(!output.includes(secret), `the log holds "${secret}"`);
    }
    for (const header of ['authorization', 'user-agent', 'x-trace-me', 'content-type', 'headers']) {
      assert.ok(!output.toLowerCase().includes(header), `the log holds "${header}"`);
    }
  });

  it('on SIGTERM it says it waits for nginx\'s workers to finish the open connections, for how long, then "stopped"', async () => {
    assert.ok(portico !== undefined);
    assert.equal(await roundTrip(FROM, 'up'), 'up');
    // One client connection stays open through the stream: nginx's workers wait for it on a quit.
    const client = connect({ host: '127.0.0.1', port: FROM });
    client.on('error', () => {});
    await new Promise((resolve) => client.once('connect', resolve));
    client.write('hold');
    await new Promise((resolve) => client.once('data', resolve));
    try {
      process.kill(portico.pid, 'SIGTERM');
      assert.ok(await exited(portico.child, 15_000), 'portico did not exit');
      assert.equal(portico.child.exitCode, 0, portico.output());
    } finally {
      client.destroy();
    }
    const messages = lines(portico.output()).map((l) => String(l.msg));
    const waiting = messages.findIndex((m) => m === 'stopping nginx: waiting for its workers to finish 1 open client connection (up to 1s, WORKER_SHUTDOWN_TIMEOUT)');
    const stopped = messages.lastIndexOf('stopped');
    assert.ok(waiting !== -1, `no waiting line in:\n${messages.join('\n')}`);
    assert.ok(stopped > waiting, `"stopped" is not the last word:\n${messages.join('\n')}`);
    assert.equal(stopped, messages.length - 1);
    portico = undefined;
  });
});
