/**
 * /v1/streams and the apply pipeline under concurrency, against a real managed nginx.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { accepts, eventually, holdPort, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { pendingJournal, startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 23000;
const TO = 23099;

const confFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.conf')).sort();

/** Counts SIGHUPs the managed master received: one per reload. */
const reloads = async (p: InProcess): Promise<number> =>
  ((await readFile(`${p.stateDir}/logs/error.log`, 'utf8')).match(/signal 1 \(SIGHUP\) received/g) ?? []).length;

describe('/v1/streams (managed nginx)', () => {
  let portico: InProcess;
  let echo: EchoServer;
  let echoB: EchoServer;

  before(async () => {
    echo = await startEcho();
    echoB = await startEcho('B:');
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${TO}` });
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
    await echoB?.close();
  });

  const removeAll = async (): Promise<void> => {
    const list = await request(portico.app).get('/v1/streams').expect(200);
    await Promise.all(list.body.map((s: { port: number }) => request(portico.app).delete(`/v1/streams/${s.port}`).expect(204)));
  };

  it('POST with a port creates the stream and answers the full form; GET, PUT and DELETE work on it', async () => {
    const port = FROM + 1;
    const created = await request(portico.app).post('/v1/streams').send({ port, backend: `127.0.0.1:${echo.port}` }).expect(201);
    assert.deepEqual(created.body, { port, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(created.headers.location, `/v1/streams/${port}`);
    await request(portico.app).get(`/v1/streams/${port}`).expect(200, created.body);
    assert.equal(await roundTrip(port, 'v1'), 'v1');

    const replaced = await request(portico.app)
      .put(`/v1/streams/${port}`)
      .send({ upstreams: [{ address: `127.0.0.1:${echoB.port}` }] })
      .expect(200);
    assert.equal(replaced.headers['portico-outcome'], 'replaced');
    assert.equal(await roundTrip(port, 'x', { expectBytes: 3 }), 'B:x');

    await request(portico.app).delete(`/v1/streams/${port}`).expect(204);
    await request(portico.app).get(`/v1/streams/${port}`).expect(404);
    await request(portico.app).delete(`/v1/streams/${port}`).expect(404);
    assert.equal(await accepts(port), false);
  });

  it('PUT of an identical stream answers "unchanged" without a reload', async () => {
    const port = FROM + 2;
    const body = { upstreams: [{ address: `127.0.0.1:${echo.port}` }] };
    const first = await request(portico.app).put(`/v1/streams/${port}`).send(body).expect(201);
    assert.equal(first.headers['portico-outcome'], 'created');
    const before = await reloads(portico);
    const again = await request(portico.app).put(`/v1/streams/${port}`).send(body).expect(200);
    assert.equal(again.headers['portico-outcome'], 'unchanged');
    assert.equal(await reloads(portico), before);
    await request(portico.app).delete(`/v1/streams/${port}`).expect(204);
  });

  it('several upstreams share the connections through an upstream group', async () => {
    const port = FROM + 3;
    await request(portico.app)
      .post('/v1/streams')
      .send({ port, upstreams: [{ address: `127.0.0.1:${echo.port}` }, { address: `127.0.0.1:${echoB.port}` }] })
      .expect(201);
    const answers = new Set<string>();
    for (let i = 0; i < 6; i += 1) answers.add(await roundTrip(port, 'r', { expectBytes: 1 }));
    assert.ok(answers.has('r') && [...answers].some((a) => a.startsWith('B:')), `answers: ${[...answers].join(',')}`);
    const legacy = await request(portico.app).get('/getstreams').expect(200);
    assert.deepEqual(legacy.body, [{ listen: port, proxy_pass: `portico_stream_${port}` }]);
    await request(portico.app).delete(`/v1/streams/${port}`).expect(204);
  });

  it('?dryRun=true answers the rendered file and nginx\'s verdict (422 when nginx refuses it), and changes nothing', async () => {
    const ok = await request(portico.app)
      .post('/v1/streams?dryRun=true')
      .send({ port: FROM + 4, backend: `127.0.0.1:${echo.port}` })
      .expect(200);
    assert.equal(ok.body.dryRun, true);
    assert.equal(ok.body.nginx.ok, true);
    assert.match(ok.body.files[0].text, new RegExp(`listen ${FROM + 4};`));
    const bad = await request(portico.app)
      .post('/v1/streams?dryRun=true')
      .send({ port: FROM + 4, backend: 'no-such-host.invalid:1' })
      .expect(422);
    assert.equal(bad.body.nginx.ok, false);
    assert.match(bad.body.nginx.lines.join('\n'), /host not found/);
    assert.deepEqual(await confFiles(portico.settings.streamDir), []);
    assert.equal(await accepts(FROM + 4), false);
  });

  it('50 parallel creates all succeed, on distinct ports, all carrying bytes, in few reloads', async () => {
    const before = await reloads(portico);
    const ports = Array.from({ length: 50 }, (_, i) => FROM + 10 + i);
    const answers = await Promise.all(
      ports.map((port) => request(portico.app).get(`/createstream/${port}/127.0.0.1:${echo.port}`)),
    );
    assert.deepEqual(answers.map((a) => a.status), ports.map(() => 200));
    for (const port of ports) assert.equal(await roundTrip(port, `p${port}`), `p${port}`);
    const used = (await reloads(portico)) - before;
    assert.ok(used >= 1 && used < 10, `50 creates cost ${used} reloads`);
    await removeAll();
  });

  it('20 clients racing POST without a port get 20 distinct working streams', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => request(portico.app).post('/v1/streams').send({ backend: `127.0.0.1:${echo.port}` })),
    );
    assert.deepEqual(answers.map((a) => a.status), answers.map(() => 201));
    const ports = answers.map((a) => a.body.port as number);
    assert.equal(new Set(ports).size, 20);
    assert.deepEqual([...ports].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => FROM + i));
    for (const port of ports) assert.equal(await roundTrip(port, 'race'), 'race');
    await removeAll();
  });

  it('one bad change in a concurrent batch fails alone; its neighbours commit', async () => {
    const good = [FROM + 5, FROM + 6, FROM + 7];
    const [bad, ...rest] = await Promise.all([
      request(portico.app).post('/v1/streams').send({ port: FROM + 8, backend: 'no-such-host.invalid:1' }),
      ...good.map((port) => request(portico.app).post('/v1/streams').send({ port, backend: `127.0.0.1:${echo.port}` })),
    ]);
    assert.equal(bad?.status, 422);
    assert.match(bad?.body.error.message, new RegExp(`applying stream ${FROM + 8}: testing config: .*host not found`));
    assert.deepEqual(rest.map((r) => r.status), [201, 201, 201]);
    for (const port of good) assert.equal(await roundTrip(port, 'ok'), 'ok');
    assert.equal(await accepts(FROM + 8), false);
    await removeAll();
  });

  it('changes to one port in the same instant apply in order: replace then remove, remove then re-create', async () => {
    const port = FROM + 60;
    await request(portico.app).put(`/v1/streams/${port}`).send({ backend: `127.0.0.1:${echo.port}` }).expect(201);
    const [put, del] = await Promise.all([
      request(portico.app).put(`/v1/streams/${port}`).send({ backend: `127.0.0.1:${echoB.port}` }),
      request(portico.app).delete(`/v1/streams/${port}`),
    ]);
    assert.deepEqual([put.status, del.status], [200, 204]);
    await request(portico.app).get(`/v1/streams/${port}`).expect(404);
    assert.equal(await accepts(port), false);

    await request(portico.app).put(`/v1/streams/${port}`).send({ backend: `127.0.0.1:${echo.port}` }).expect(201);
    const [removed, recreated] = await Promise.all([
      request(portico.app).delete(`/v1/streams/${port}`),
      request(portico.app).post('/v1/streams').send({ port, backend: `127.0.0.1:${echoB.port}` }),
    ]);
    assert.deepEqual([removed.status, recreated.status], [204, 201]);
    assert.equal(await roundTrip(port, 'y', { expectBytes: 3 }), 'B:y');
    assert.equal(await pendingJournal(portico.settings.streamDir), false, 'a journal was left pending');
    await removeAll();
  });

  it('a port held by another process is skipped by getfreeport and refused by create, writing nothing', async () => {
    const held = await holdPort(FROM);
    try {
      await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM + 1 });
      // FROM + 1 is reserved for the script that was handed it: the next caller gets the next port.
      const free = await request(portico.app).get('/v1/ports/free').expect(200);
      assert.equal(free.body.port, FROM + 2);
      assert.ok(Date.parse(free.body.reservedUntil) > Date.now(), `reservedUntil ${free.body.reservedUntil} lies ahead`);
      const res = await request(portico.app).get(`/createstream/${FROM}/127.0.0.1:${echo.port}`).expect(409);
      assert.match(res.body.errors, /in use by another process/);
      assert.deepEqual(await confFiles(portico.settings.streamDir), []);
    } finally {
      await held.close();
    }
  });

  it('the status reports nginx, the range and the last apply with its phase timings', async () => {
    await request(portico.app).post('/v1/streams').send({ port: FROM + 9, backend: `127.0.0.1:${echo.port}` }).expect(201);
    const res = await request(portico.app).get('/v1/status').expect(200);
    assert.equal(res.body.mode, 'managed');
    assert.deepEqual(res.body.range, { from: FROM, to: TO });
    assert.equal(res.body.nginx.running, true);
    assert.ok(res.body.nginx.modules.includes('http_v3_module'));
    assert.equal(res.body.lastApply.outcome, 'applied');
    for (const phase of ['read', 'plan', 'stage', 'test', 'swap', 'reload', 'commit']) {
      assert.equal(typeof res.body.lastApply.phasesMs[phase], 'number', phase);
    }
    await request(portico.app).get('/readyz').expect(200);
    await request(portico.app).get('/healthz').expect(200, { status: 'ok' });
    await removeAll();
  });

  it('an unknown route answers 404 in the error shape', async () => {
    const res = await request(portico.app).get('/v2/nothing').expect(404);
    assert.equal(res.body.error.kind, 'NotFound');
  });
});

describe('a port taken between the check and the reload', () => {
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    // The host probe is told every port is free, so the taken port reaches nginx's own bind: the
    // race Portico's verify step exists for.
    portico = await startInProcess({ PORT_RANGE: `${TO + 1}-${TO + 5}` }, { isBound: async () => false });
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  it('fails at verify, rolls the tree back, reloads it, and answers nginx\'s bind error', async () => {
    await request(portico.app).get(`/createstream/${TO + 1}/127.0.0.1:${echo.port}`).expect(200);
    const before = await confFiles(portico.settings.streamDir);
    const held = await holdPort(TO + 2);
    try {
      const res = await request(portico.app).get(`/createstream/${TO + 2}/127.0.0.1:${echo.port}`).expect(422);
      assert.match(res.body.errors, /bind\(\) to 0\.0\.0\.0:\d+ failed \(98: Address already in use\)/);
      assert.deepEqual(await confFiles(portico.settings.streamDir), before);
      assert.equal(await roundTrip(TO + 1, 'survivor'), 'survivor');
      assert.equal(portico.portico.applier.lastBatch?.outcome, 'rolled-back');
      assert.ok(await eventually(async () => (await request(portico.app).get('/readyz')).status === 200, 2000));
    } finally {
      await held.close();
    }
  });
});
