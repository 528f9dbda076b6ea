/**
 * API_TOKEN: every route but /healthz needs the bearer token.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const TOKEN = 'correct-horse-battery-staple';

describe('API_TOKEN', () => {
  let portico: InProcess;

  before(async () => {
    portico = await startInProcess({ PORT_RANGE: '25100-25102', API_TOKEN: TOKEN });
  });
  after(async () => {
    await portico?.stop();
  });

  it('answers 401 without the token, or with a wrong one, on every route but /healthz, and changes nothing', async () => {
    for (const path of ['/status', '/getstreams', '/createstream/25100/127.0.0.1:1', '/v1/streams', '/v1/status', '/readyz']) {
      for (const header of [undefined, 'Bearer wrong-token', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, TOKEN]) {
        const req = request(portico.app).get(path);
        const res = await (header === undefined ? req : req.set('Authorization', header));
        assert.equal(res.status, 401, `${path} with ${header}`);
        assert.equal(res.body.error.kind, 'Unauthorized');
        assert.equal(res.headers['www-authenticate'], 'Bearer');
      }
    }
    await request(portico.app).post('/v1/streams').send({ backend: '127.0.0.1:1' }).expect(401);
    assert.deepEqual((await readdir(portico.settings.streamDir)).filter((f) => f.endsWith('.conf')), []);
    await request(portico.app).get('/healthz').expect(200);
  });

  it('serves every route with the token', async () => {
    await request(portico.app).get('/getstreams').set('Authorization', `Bearer ${TOKEN}`).expect(200, []);
    await request(portico.app).get('/v1/status').set('Authorization', `Bearer ${TOKEN}`).expect(200);
  });
});
