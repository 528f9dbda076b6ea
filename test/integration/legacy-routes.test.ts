/**
 * stream-conductor's routes against a real managed nginx: bytes really go through the streams.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { accepts, eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 21000;
const TO = 21009;

describe('legacy routes (managed nginx)', () => {
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${TO}` });
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  it('status answers version and the range as stream-conductor printed it', async () => {
    const res = await request(portico.app).get('/status').expect(200);
    assert.equal(res.body.version, '0.1.0');
    assert.equal(res.body.available_ports, `range(${FROM}, ${TO + 1})`);
    assert.equal(res.body.range, `${FROM}-${TO}`);
    assert.equal(res.body.mode, 'managed');
  });

  it('createstream carries bytes to the backend; getstreams/hasstream list it; removestream closes the port', async () => {
    const port = FROM + 1;
    await request(portico.app).get(`/createstream/${port}/127.0.0.1:${echo.port}`).expect(200, { result: 'ok' });
    assert.equal(await roundTrip(port, 'hello through nginx'), 'hello through nginx');

    const streams = await request(portico.app).get('/getstreams').expect(200);
    assert.deepEqual(streams.body, [{ listen: port, proxy_pass: `127.0.0.1:${echo.port}` }]);
    await request(portico.app).get(`/hasstream/${port}`).expect(200, { result: 'true' });
    await request(portico.app).get(`/hasstream/${port + 1}`).expect(200, { result: 'false' });

    await request(portico.app).get(`/removestream/${port}`).expect(200, { result: 'ok' });
    assert.ok(await eventually(async () => !(await accepts(port)), 2000), 'the removed port still accepts');
    await request(portico.app).get(`/hasstream/${port}`).expect(200, { result: 'false' });
    await request(portico.app).get('/getstreams').expect(200, []);
  });

  it('the upper end of PORT_RANGE is usable (the range is inclusive)', async () => {
    await request(portico.app).get(`/createstream/${TO}/localhost:${echo.port}`).expect(200);
    assert.equal(await roundTrip(TO, 'top'), 'top');
    await request(portico.app).get(`/removestream/${TO}`).expect(200);
  });

  it('ports outside PORT_RANGE answer 400 naming the field, and write nothing', async () => {
    for (const port of [FROM - 1, TO + 1]) {
      const res = await request(portico.app).get(`/createstream/${port}/127.0.0.1:${echo.port}`).expect(400);
      assert.equal(res.body.result, 'error');
      assert.equal(res.body.error.field, 'port');
      assert.match(res.body.errors, /outside PORT_RANGE/);
    }
    assert.deepEqual((await readdir(portico.settings.streamDir)).filter((f) => f.endsWith('.conf')), []);
  });

  it('a second createstream on a taken port answers 409 and leaves the first stream serving', async () => {
    const port = FROM + 2;
    await request(portico.app).get(`/createstream/${port}/127.0.0.1:${echo.port}`).expect(200);
    const res = await request(portico.app).get(`/createstream/${port}/127.0.0.1:1`).expect(409);
    assert.match(res.body.errors, /already has a stream/);
    assert.equal(await roundTrip(port, 'still here'), 'still here');
    await request(portico.app).get(`/removestream/${port}`).expect(200);
  });

  it('removestream of a port without a stream answers 404', async () => {
    const res = await request(portico.app).get(`/removestream/${FROM + 5}`).expect(404);
    assert.equal(res.body.result, 'error');
    assert.equal(res.body.error.kind, 'NotFound');
  });

  it('getfreeport answers the lowest free port, and "none available" when the range is full', async () => {
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    const ports = Array.from({ length: TO - FROM + 1 }, (_, i) => FROM + i);
    await Promise.all(ports.map((p) => request(portico.app).get(`/createstream/${p}/127.0.0.1:${echo.port}`).expect(200)));
    await request(portico.app).get('/getfreeport').expect(200, { result: 'none available' });
    await Promise.all(ports.map((p) => request(portico.app).get(`/removestream/${p}`).expect(200)));
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
  });

  it('a backend nginx cannot resolve answers 422 with nginx\'s message and leaves nothing behind', async () => {
    const res = await request(portico.app).get(`/createstream/${FROM + 3}/no-such-host.invalid:5432`).expect(422);
    assert.equal(res.body.error.kind, 'NginxRejected');
    assert.match(res.body.errors, /nginx: \[emerg\] host not found in upstream "no-such-host\.invalid"/);
    assert.deepEqual((await readdir(portico.settings.streamDir)).filter((f) => f.endsWith('.conf')), []);
    assert.equal(await accepts(FROM + 3), false);
  });
});
