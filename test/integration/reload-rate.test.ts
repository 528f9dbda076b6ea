/**
 * RELOAD_MIN_INTERVAL bounds the reload rate for edges with many long-lived connections: a batch
 * waits until the interval since the last reload has passed, and the changes that arrive meanwhile
 * join it, so they cost one reload together.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 27800;

const reloads = async (p: InProcess): Promise<number> =>
  ((await readFile(`${p.stateDir}/logs/error.log`, 'utf8')).match(/signal 1 \(SIGHUP\) received/g) ?? []).length;

describe('RELOAD_MIN_INTERVAL (managed nginx)', () => {
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 49}`, RELOAD_MIN_INTERVAL: '1s' });
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  it('changes sent within the interval after a reload wait for it, then apply together in one reload', async () => {
    const api = request(portico.app);
    await api.post('/v1/streams').send({ port: FROM, backend: `127.0.0.1:${echo.port}` }).expect(201);
    const firstAnswered = Date.now();
    const before = await reloads(portico);
    const answers: Array<Promise<request.Response>> = [];
    for (let i = 1; i <= 10; i += 1) {
      answers.push(api.post('/v1/streams').send({ port: FROM + i, backend: `127.0.0.1:${echo.port}` }).then((r) => r));
      await sleep(30);
    }
    const done = await Promise.all(answers);
    const elapsed = Date.now() - firstAnswered;
    assert.deepEqual(done.map((r) => r.status), Array(10).fill(201));
    assert.ok(elapsed >= 900, `the batch waited ${elapsed} ms after the previous reload, not the 1 s interval`);
    const used = (await reloads(portico)) - before;
    assert.ok(used >= 1 && used <= 2, `10 changes within the interval took ${used} reloads`);
    for (let i = 1; i <= 10; i += 1) assert.equal(await roundTrip(FROM + i, `s${i}`), `s${i}`);
  });
});
