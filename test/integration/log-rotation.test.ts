/**
 * nginx's logs across a rotation, against a real managed nginx: a renamed or truncated error log
 * does not blind the verify step, `POST /v1/logs/reopen` (behind the token like every mutation) and
 * SIGUSR1 to Portico make nginx write its logs at their paths again.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, readlink, rename, rm, stat, truncate } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { send, startBackend, type Backend } from '../helpers/http.js';
import { eventually, holdPort, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { exited, nginxMasters, processRuns, spawnPortico, startInProcess, stopNginxUnder, tempDir, type ChildPortico, type InProcess } from '../helpers/portico.js';

const FROM = 26170;
const HTTP_PORT = 26180;
const HTTPS_PORT = 26181;
const TOKEN = 'log-rotation-token-0123456789';
const NGINX_TIMEOUT_MS = 8000;

describe('log rotation (in-process Portico, managed nginx)', () => {
  let portico: InProcess;
  let echo: EchoServer;
  let backend: Backend;
  let errorLog: string;
  let accessLog: string;

  before(async () => {
    echo = await startEcho();
    backend = await startBackend('rotated');
    portico = await startInProcess(
      { PORT_RANGE: `${FROM}-${FROM + 7}`, HTTP_PORT: String(HTTP_PORT), HTTPS_PORT: String(HTTPS_PORT), API_TOKEN: TOKEN, NGINX_TIMEOUT_MS: String(NGINX_TIMEOUT_MS), WORKER_SHUTDOWN_TIMEOUT: '1s' },
      // Portico's own check of the host would refuse a held port before nginx could: leave it to nginx.
      { isBound: async () => false },
    );
    errorLog = `${portico.stateDir}/logs/error.log`;
    accessLog = `${portico.stateDir}/logs/access.log`;
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
    await backend?.close();
  });

  const api = {
    get: (path: string) => request(portico.app).get(path).set('authorization', `Bearer ${TOKEN}`),
    post: (path: string) => request(portico.app).post(path).set('authorization', `Bearer ${TOKEN}`),
    delete: (path: string) => request(portico.app).delete(path).set('authorization', `Bearer ${TOKEN}`),
  };
  const master = async (): Promise<number> => {
    const [pid] = await nginxMasters(portico.stateDir);
    assert.ok(pid !== undefined, 'a master runs');
    return pid;
  };

  it('a log renamed without a reopen: creates still verify, and a reload nginx refuses answers its own line at once, not a timeout', async () => {
    await rename(errorLog, `${errorLog}.1`);
    await api.get(`/createstream/${FROM}/127.0.0.1:${echo.port}`).expect(200);
    assert.equal(await roundTrip(FROM, 'after rename'), 'after rename');
    await api.get(`/createstream/${FROM + 1}/127.0.0.1:${echo.port}`).expect(200);

    await rename(errorLog, `${errorLog}.2`);
    const held = await holdPort(FROM + 2);
    try {
      const started = Date.now();
      const refused = await api.get(`/createstream/${FROM + 2}/127.0.0.1:${echo.port}`).expect(422);
      assert.match(refused.body.errors, /nginx: \[emerg\] bind\(\) to 0\.0\.0\.0:26172 failed \(98: Address already in use\)/);
      assert.ok(Date.now() - started < NGINX_TIMEOUT_MS, `answered after ${Date.now() - started} ms`);
    } finally {
      await held.close();
    }
    assert.equal(await roundTrip(FROM, 'still served'), 'still served');
    await api.get(`/removestream/${FROM}`).expect(200);
    await api.get(`/removestream/${FROM + 1}`).expect(200);
  });

  it('a log truncated in place (copytruncate): the next change verifies', async () => {
    await truncate(errorLog, 0);
    await api.get(`/createstream/${FROM + 3}/127.0.0.1:${echo.port}`).expect(200);
    assert.match(await readFile(errorLog, 'utf8'), /start worker process/);
    await api.get(`/removestream/${FROM + 3}`).expect(200);
  });

  it('POST /v1/logs/reopen after a rename: nginx writes its error and access logs at their paths again', async () => {
    await api.post('/v1/apps').send({ name: 'rotated', serverNames: ['rotated.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] }).expect(201);
    assert.equal((await send({ port: HTTP_PORT, host: 'rotated.test', path: '/before' })).status, 200);
    await rename(errorLog, `${errorLog}.3`);
    await rename(accessLog, `${accessLog}.3`);

    const pid = await master();
    const reopened = await api.post('/v1/logs/reopen').expect(200);
    assert.deepEqual(reopened.body, { nginxPid: pid, errorLog, confirmed: true });
    assert.match(await readFile(`${errorLog}.3`, 'utf8'), new RegExp(` ${pid}#${pid}: reopening logs`));
    assert.equal(await readlink(`/proc/${pid}/fd/2`), errorLog, 'the master writes its error log at the path again');

    await api.get(`/createstream/${FROM + 4}/127.0.0.1:${echo.port}`).expect(200);
    assert.match(await readFile(errorLog, 'utf8'), /start worker process/);
    const rotated = await readFile(`${errorLog}.3`, 'utf8');
    assert.doesNotMatch(rotated.slice(rotated.lastIndexOf('reopening logs')), /start worker process/, 'the reload after the reopen logged at the path');
    // The access log is written by the workers, which reopen theirs on the master's word; lines are buffered (flush=1s).
    assert.equal((await send({ port: HTTP_PORT, host: 'rotated.test', path: '/after-reopen' })).status, 200);
    assert.ok(
      await eventually(async () => (await readFile(accessLog, 'utf8').catch(() => '')).includes('GET /after-reopen'), 5000, 100),
      'the request after the reopen is in the new access log',
    );
    assert.doesNotMatch(await readFile(`${accessLog}.3`, 'utf8'), /after-reopen/);
    await api.get(`/removestream/${FROM + 4}`).expect(200);
    await api.delete('/v1/apps/rotated').expect(204);
  });

  it('30 reopen requests at once all answer confirmed (how many signals they share: unit/reopen-logs.test.ts)', async () => {
    const answers = await Promise.all(Array.from({ length: 30 }, () => api.post('/v1/logs/reopen')));
    assert.deepEqual(new Set(answers.map((a) => `${a.status} ${a.body.confirmed}`)), new Set(['200 true']));
    assert.equal((await readlink(`/proc/${await master()}/fd/2`)), errorLog);
  });

  it('POST /v1/logs/reopen without the token answers 401 and signals nothing', async () => {
    const before = await readFile(errorLog, 'utf8');
    const res = await request(portico.app).post('/v1/logs/reopen').expect(401);
    assert.equal(res.body.error.kind, 'Unauthorized');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const written = (await readFile(errorLog, 'utf8')).slice(before.length);
    assert.doesNotMatch(written, /SIGUSR1|reopening logs/);
  });

  it('a rotation that leaves nginx unable to open its log at the path: each refused reload answers nginx\'s own line at once, not "started no new workers" after NGINX_TIMEOUT_MS', async () => {
    // In practice a new file nginx may not write (logrotate's "create" with the wrong owner); here a
    // directory in its place, which root cannot write either. nginx keeps writing to the renamed file.
    await rename(errorLog, `${errorLog}.4`);
    await mkdir(errorLog);
    try {
      for (const port of [FROM + 5, FROM + 6]) {
        const started = Date.now();
        const refused = await api.get(`/createstream/${port}/127.0.0.1:${echo.port}`).expect(422);
        assert.match(refused.body.errors, /nginx refused the new config: nginx: \[emerg\] open\(\) ".*\/logs\/error\.log" failed \(21: Is a directory\)/);
        assert.doesNotMatch(refused.body.errors, /started no new workers/);
        assert.ok(Date.now() - started < NGINX_TIMEOUT_MS / 2, `answered after ${Date.now() - started} ms`);
      }
    } finally {
      await rm(errorLog, { recursive: true });
    }
    await api.get(`/createstream/${FROM + 5}/127.0.0.1:${echo.port}`).expect(200);
    assert.equal(await roundTrip(FROM + 5, 'writable again'), 'writable again');
    await api.get('/readyz').expect(200);
    await api.get(`/removestream/${FROM + 5}`).expect(200);
  });
});

describe('SIGUSR1 to a Portico process', () => {
  let stateDir: string;
  let portico: ChildPortico | undefined;

  before(async () => {
    stateDir = await tempDir('sigusr1');
    portico = await spawnPortico({ STATE_DIR: stateDir, PORT_RANGE: `${FROM + 8}-${FROM + 9}`, BIND_PORT: '26193', WORKER_SHUTDOWN_TIMEOUT: '1s' });
  });
  after(async () => {
    if (portico !== undefined && (await processRuns(portico.pid))) {
      process.kill(portico.pid, 'SIGTERM');
      if (!(await exited(portico.child, 15_000))) process.kill(-portico.pid, 'SIGKILL');
    }
    await stopNginxUnder(stateDir);
    await rm(stateDir, { recursive: true, force: true });
  });

  it('makes nginx reopen its logs after a rotation renamed them; Portico keeps running (no inspector opens)', async () => {
    assert.ok(portico !== undefined);
    const errorLog = `${stateDir}/logs/error.log`;
    const [pid] = await nginxMasters(stateDir);
    assert.ok(pid !== undefined);
    await rename(errorLog, `${errorLog}.1`);
    process.kill(portico.pid, 'SIGUSR1');
    assert.ok(await eventually(async () => (await readlink(`/proc/${pid}/fd/2`).catch(() => '')) === errorLog, 5000), 'nginx writes at the path again');
    assert.ok((await stat(errorLog)).isFile());
    assert.ok(await eventually(() => portico?.output().includes('nginx reopened its logs') ?? false, 5000), portico.output());
    assert.equal(await processRuns(portico.pid), true);
    assert.doesNotMatch(portico.output(), /Debugger listening/);
    assert.equal((await fetch(`${portico.url}/readyz`)).status, 200);
  });
});
