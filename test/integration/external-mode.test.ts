/**
 * External mode: nginx is run by someone else (here, the test, as a sidecar's neighbour would run
 * it: daemonized, its own nginx.conf including a shared stream directory). Portico writes files,
 * tests with the same binary and signals the master from the pid file.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { accepts, eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';
import { startOperatorNginx, type Sidecar } from '../helpers/operator-nginx.js';

const FROM = 25000;
const TO = 25009;
const FOREIGN_PORT = 25005;

/** Portico's settings beside `sidecar`, as a sidecar container would have them. */
function externalEnv(sidecar: Sidecar, range: string, withErrorLog: boolean): Record<string, string> {
  return {
    NGINX_MODE: 'external',
    PORT_RANGE: range,
    NGINX_CONF: sidecar.conf,
    NGINX_PID_FILE: sidecar.pidFile,
    STREAM_CONFIG_PATH: sidecar.streamDir,
    ...(withErrorLog && { NGINX_ERROR_LOG: sidecar.errorLog }),
  };
}

async function tearDown(portico?: InProcess, sidecar?: Sidecar, echo?: EchoServer): Promise<void> {
  await portico?.stop();
  await sidecar?.stop();
  await echo?.close();
  if (sidecar) await rm(sidecar.root, { recursive: true, force: true });
}

describe('external mode', () => {
  let sidecar: Sidecar;
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    sidecar = await startOperatorNginx();
    await writeFile(
      `${sidecar.streamDir}/operator.conf`,
      `server { listen ${FOREIGN_PORT}; proxy_pass 127.0.0.1:${echo.port}; }\n`,
    );
    process.kill(await sidecar.master(), 'SIGHUP');
    assert.ok(await eventually(() => accepts(FOREIGN_PORT), 3000));
    portico = await startInProcess(externalEnv(sidecar, `${FROM}-${TO}`, true));
  });
  after(() => tearDown(portico, sidecar, echo));

  it('creates a stream the operator\'s nginx serves, and removes it', async () => {
    const master = await sidecar.master();
    await request(portico.app).get(`/createstream/${FROM}/127.0.0.1:${echo.port}`).expect(200, { result: 'ok' });
    assert.equal(await roundTrip(FROM, 'via the sidecar'), 'via the sidecar');
    assert.equal(await sidecar.master(), master, 'the master was replaced instead of reloaded');
    await request(portico.app).get('/getstreams').expect(200, [{ listen: FROM, proxy_pass: `127.0.0.1:${echo.port}` }]);
    await request(portico.app).get(`/hasstream/${FROM}`).expect(200, { result: 'true' });
    await request(portico.app).get(`/removestream/${FROM}`).expect(200);
    assert.ok(await eventually(async () => !(await accepts(FROM)), 2000));
    await request(portico.app).get(`/hasstream/${FROM}`).expect(200, { result: 'false' });
  });

  it('reports the operator\'s own file, skips its port, and never touches it', async () => {
    const status = await request(portico.app).get('/v1/status').expect(200);
    assert.equal(status.body.mode, 'external');
    assert.deepEqual(status.body.files.foreign, [{ name: 'operator.conf', ports: [FOREIGN_PORT] }]);
    const res = await request(portico.app).get(`/createstream/${FOREIGN_PORT}/127.0.0.1:${echo.port}`).expect(409);
    assert.match(res.body.errors, /claimed by a file/);
    const ports = await Promise.all(
      Array.from({ length: 6 }, () => request(portico.app).post('/v1/streams').send({ backend: `127.0.0.1:${echo.port}` })),
    );
    assert.ok(!ports.some((r) => r.body.port === FOREIGN_PORT));
    assert.equal(await readFile(`${sidecar.streamDir}/operator.conf`, 'utf8'), `server { listen ${FOREIGN_PORT}; proxy_pass 127.0.0.1:${echo.port}; }\n`);
    assert.equal(await roundTrip(FOREIGN_PORT, 'operator'), 'operator');
    for (const r of ports) await request(portico.app).delete(`/v1/streams/${r.body.port}`).expect(204);
  });

  it('with the operator\'s nginx gone, a change answers 503 and writes nothing', async () => {
    await sidecar.stop();
    const before = await readdir(sidecar.streamDir);
    const res = await request(portico.app).get(`/createstream/${FROM + 1}/127.0.0.1:${echo.port}`).expect(503);
    assert.equal(res.body.error.kind, 'NginxUnavailable');
    assert.deepEqual(await readdir(sidecar.streamDir), before);
    await request(portico.app).get('/readyz').expect(503);
  });
});

describe('external mode without a readable error log', () => {
  let sidecar: Sidecar;
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    sidecar = await startOperatorNginx();
    // As with the official image, whose error log goes to the container's stderr.
    portico = await startInProcess(externalEnv(sidecar, `${TO + 1}-${TO + 3}`, false));
  });
  after(() => tearDown(portico, sidecar, echo));

  it('sees the reload through the master\'s new workers and the new listener', async () => {
    await request(portico.app).get(`/createstream/${TO + 1}/127.0.0.1:${echo.port}`).expect(200);
    assert.equal(await roundTrip(TO + 1, 'no log needed'), 'no log needed');
  });
});
