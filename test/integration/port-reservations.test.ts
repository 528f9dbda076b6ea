/**
 * stream-conductor's two-step pattern, `GET /getfreeport` then `GET /createstream/<port>/...`, is
 * race-free: a port handed out is reserved for PORT_RESERVATION_TTL, handed out to nobody else
 * meanwhile (neither by getfreeport nor to a POST without a port), and the first create on it uses
 * the reservation. Against a real Portico and a real nginx; bytes go through every stream.
 */
import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { processRuns, exited, spawnPortico, startInProcess, stopNginxUnder, tempDir, type ChildPortico, type InProcess } from '../helpers/portico.js';

const RACE_FROM = 26100;
const RACE_TO = 26129;
const RACE_API_PORT = 26190;
const FROM = 26140;
const TO = 26149;
const CLIENTS = 20;

const confFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.conf')).sort();

describe('20 scripts racing getfreeport then createstream, over HTTP to a Portico process', () => {
  let stateDir: string;
  let portico: ChildPortico | undefined;
  const echoes: EchoServer[] = [];

  before(async () => {
    stateDir = await tempDir('reservations-race');
    // One backend per client, each tagging what it echoes: a stream reaching another's backend shows.
    for (let i = 0; i < CLIENTS; i += 1) echoes.push(await startEcho(`client-${i}:`));
    portico = await spawnPortico({ STATE_DIR: stateDir, PORT_RANGE: `${RACE_FROM}-${RACE_TO}`, BIND_PORT: String(RACE_API_PORT), WORKER_SHUTDOWN_TIMEOUT: '1s' });
  });
  after(async () => {
    if (portico !== undefined && (await processRuns(portico.pid))) {
      process.kill(portico.pid, 'SIGTERM');
      if (!(await exited(portico.child, 15_000))) process.kill(-portico.pid, 'SIGKILL');
    }
    await stopNginxUnder(stateDir);
    await Promise.all(echoes.map((echo) => echo.close()));
    await rm(stateDir, { recursive: true, force: true });
  });

  it('get 20 distinct ports and 20 streams, each carrying bytes to its own backend; no reservation is left', async () => {
    assert.ok(portico !== undefined);
    const url = portico.url;
    const script = async (i: number): Promise<{ port: number; status: number; body: unknown }> => {
      const free = (await (await fetch(`${url}/getfreeport`)).json()) as { result: string; port: number };
      assert.equal(free.result, 'ok', `client ${i}: ${JSON.stringify(free)}`);
      const created = await fetch(`${url}/createstream/${free.port}/127.0.0.1:${(echoes[i] as EchoServer).port}`);
      return { port: free.port, status: created.status, body: await created.json() };
    };
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => script(i)));
    const failed = results.filter((r) => r.status !== 200);
    assert.deepEqual(failed, [], 'every create succeeded');
    const ports = results.map((r) => r.port);
    assert.equal(new Set(ports).size, CLIENTS, `distinct ports: ${ports.join(', ')}`);
    for (const [i, { port }] of results.entries()) {
      assert.equal(await roundTrip(port, 'ping', { expectBytes: `client-${i}:ping`.length }), `client-${i}:ping`, `stream ${port} of client ${i}`);
    }
    const status = (await (await fetch(`${url}/v1/status`)).json()) as { streams: number; reservedPorts: number };
    assert.equal(status.streams, CLIENTS);
    assert.equal(status.reservedPorts, 0, 'every create used its reservation up');
  });
});

describe('port reservations (in-process Portico, managed nginx)', () => {
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    // Long enough that no reservation lapses during a test, however loaded the machine: each test
    // uses up the reservations it makes (expiry has its own test below, and unit tests with a clock).
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${TO}`, PORT_RESERVATION_TTL: '1h' });
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  const status = async (): Promise<{ reservedPorts: number; portReservationTtlMs: number; streams: number }> =>
    (await request(portico.app).get('/v1/status').expect(200)).body;
  const create = (port: number) => request(portico.app).get(`/createstream/${port}/127.0.0.1:${echo.port}`).expect(200, { result: 'ok' });
  /** Removes every stream; every test leaves no reservation behind (they are used up by creates). */
  const cleanUp = async (): Promise<void> => {
    const list = await request(portico.app).get('/v1/streams').expect(200);
    await Promise.all(list.body.map((s: { port: number }) => request(portico.app).delete(`/v1/streams/${s.port}`).expect(204)));
    assert.equal((await status()).reservedPorts, 0, 'the test used up its reservations');
  };

  it('a reserved port is handed out to nobody else; /v1/status counts the reservations', async () => {
    assert.equal((await status()).portReservationTtlMs, 3_600_000);
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM + 1 });
    assert.equal((await request(portico.app).get('/v1/ports/free').expect(200)).body.port, FROM + 2);
    assert.equal((await status()).reservedPorts, 3);
    await Promise.all([FROM, FROM + 1, FROM + 2].map(create));
    await cleanUp();
  });

  it('a POST without a port is not allocated a reserved port; a createstream on the reserved port uses the reservation', async () => {
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    const allocated = await request(portico.app).post('/v1/streams').send({ backend: `127.0.0.1:${echo.port}` }).expect(201);
    assert.equal(allocated.body.port, FROM + 1);
    assert.equal((await status()).reservedPorts, 1);
    await create(FROM);
    assert.equal(await roundTrip(FROM, 'reserved'), 'reserved');
    assert.equal((await status()).reservedPorts, 0, 'the create used the reservation up');
    await cleanUp();
  });

  it('reservations name nobody: the first create on a reserved port gets it, whoever sends it, and the script that reserved it gets 409', async () => {
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    await request(portico.app).put(`/v1/streams/${FROM}`).send({ backend: `127.0.0.1:${echo.port}` }).expect(201);
    const late = await request(portico.app).get(`/createstream/${FROM}/127.0.0.1:${echo.port}`).expect(409);
    assert.match(late.body.errors, new RegExp(`port ${FROM} already has a stream`));
    await cleanUp();
  });

  it('a create nginx refuses leaves the reservation in place for a retry', async () => {
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    await request(portico.app).get(`/createstream/${FROM}/no-such-host.invalid:5432`).expect(422);
    assert.equal((await status()).reservedPorts, 1);
    assert.equal((await request(portico.app).post('/v1/streams').send({ backend: `127.0.0.1:${echo.port}` }).expect(201)).body.port, FROM + 1);
    await create(FROM);
    await cleanUp();
  });

  it('a dry run without a port neither uses nor holds a port', async () => {
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    const dry = await request(portico.app).post('/v1/streams?dryRun=true').send({ backend: `127.0.0.1:${echo.port}` }).expect(200);
    assert.equal(dry.body.port, FROM + 1, 'the dry run skips the reserved port too');
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM + 1 });
    assert.deepEqual(await confFiles(portico.settings.streamDir), []);
    await Promise.all([FROM, FROM + 1].map(create));
    await cleanUp();
  });

  it('when reservations fill the range, getfreeport answers "none available" and a POST without a port 409 saying so; named ports still work', async () => {
    for (let port = FROM; port <= TO; port += 1) await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port });
    await request(portico.app).get('/getfreeport').expect(200, { result: 'none available' });
    const full = await request(portico.app).get('/v1/ports/free').expect(409);
    assert.match(full.body.error.message, /no free port in 26140-26149 \(10 of them reserved by getfreeport for up to 3600 s/);
    const refused = await request(portico.app).post('/v1/streams').send({ backend: `127.0.0.1:${echo.port}` }).expect(409);
    assert.equal(refused.body.error.field, 'port');
    assert.match(refused.body.error.message, /10 of them reserved by getfreeport/);
    await Promise.all(Array.from({ length: TO - FROM + 1 }, (_, i) => create(FROM + i)));
    await cleanUp();
  });

  it('a restart forgets the reservations (they live in memory)', async () => {
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    const { stateDir } = portico;
    await portico.close();
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${TO}`, PORT_RESERVATION_TTL: '1h' }, { stateDir });
    assert.equal((await status()).reservedPorts, 0);
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: FROM });
    assert.equal((await status()).reservedPorts, 1);
  });
});

describe('PORT_RESERVATION_TTL=2s: a reservation lapses', () => {
  let portico: InProcess;
  before(async () => {
    portico = await startInProcess({ PORT_RANGE: `${TO + 6}-${TO + 9}`, PORT_RESERVATION_TTL: '2s' });
  });
  after(async () => {
    await portico?.stop();
  });

  it('is handed out again once its TTL has passed, and is no longer counted', async () => {
    const first = await request(portico.app).get('/v1/ports/free').expect(200);
    assert.equal(first.body.port, TO + 6);
    const until = Date.parse(first.body.reservedUntil);
    // Two seconds is far more than a request takes, even on a loaded machine.
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: TO + 7 });
    assert.ok(Date.now() < until, 'the second answer came before the first reservation lapsed');
    assert.ok(await eventually(async () => (await request(portico.app).get('/v1/status').expect(200)).body.reservedPorts === 0, 5000, 100), 'both lapse');
    assert.ok(Date.now() >= until);
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: TO + 6 });
  });
});

describe('PORT_RESERVATION_TTL=0 (reservations off)', () => {
  let portico: InProcess;
  before(async () => {
    portico = await startInProcess({ PORT_RANGE: `${TO + 1}-${TO + 5}`, PORT_RESERVATION_TTL: '0' });
  });
  after(async () => {
    await portico?.stop();
  });

  it('hands out the same port again, as stream-conductor did, and counts no reservation', async () => {
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: TO + 1 });
    await request(portico.app).get('/getfreeport').expect(200, { result: 'ok', port: TO + 1 });
    await request(portico.app).get('/v1/ports/free').expect(200, { port: TO + 1 });
    assert.equal((await request(portico.app).get('/v1/status').expect(200)).body.reservedPorts, 0);
  });
});
