/**
 * `?dryRun=true` on every mutation that takes it (/v1/streams and /v1/apps: POST, PUT, DELETE): a
 * config nginx accepts answers 200, one it refuses answers 422 (so `curl -f` fails), both with the
 * rendered files and nginx's verdict, and neither changes a byte on disk nor a listener.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { accepts, startEcho, type EchoServer } from '../helpers/net.js';
import { startInProcess, type InProcess, isJournalFile } from '../helpers/portico.js';

const FROM = 29300;
const HTTP_PORT = 29310;
const HTTPS_PORT = 29311;
/** A name no resolver knows (RFC 2606): nginx -t refuses an upstream it cannot resolve. */
const UNRESOLVABLE = 'no-such-host.invalid';

/** Every config file under the stream and app directories, with its text. */
async function configFiles(p: InProcess): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const dir of [p.settings.streamDir, p.settings.httpDir]) {
    for (const name of ((await readdir(dir, { recursive: true })) as string[]).filter((n) => !isJournalFile(n)).sort()) {
      const text = await readFile(path.join(dir, name), 'utf8').catch(() => '<dir>');
      files.set(path.join(dir, name), text);
    }
  }
  return files;
}

describe('?dryRun=true', () => {
  let portico: InProcess;
  let echo: EchoServer;

  before(async () => {
    echo = await startEcho();
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 9}`, HTTP_PORT: String(HTTP_PORT), HTTPS_PORT: String(HTTPS_PORT) });
    // One stream and one app exist, so that PUT and DELETE have something to dry-run against.
    await request(portico.app).post('/v1/streams').send({ port: FROM, backend: `127.0.0.1:${echo.port}` }).expect(201);
    await request(portico.app)
      .post('/v1/apps')
      .send({ name: 'shop', serverNames: ['shop.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${echo.port}` }] }] })
      .expect(201);
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
  });

  /** Runs `call`, checks its status and body shape, and that no file changed and no new port listens. */
  const dryRun = async (call: () => request.Test, status: number): Promise<{ files: Array<{ name: string; text: string | null }>; nginx: { ok: boolean; lines: string[] } }> => {
    const before = await configFiles(portico);
    const res = await call();
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.dryRun, true);
    assert.equal(res.body.nginx.ok, status === 200);
    assert.ok(Array.isArray(res.body.nginx.lines));
    // A file the change would write carries its text; one it would delete, null.
    assert.ok(res.body.files.length > 0 && res.body.files.every((f: { name?: unknown; text?: unknown }) => typeof f.name === 'string' && (typeof f.text === 'string' || f.text === null)));
    assert.deepEqual(await configFiles(portico), before, 'a dry run changed files on disk');
    return res.body;
  };

  it('a stream nginx accepts answers 200 with the rendered file; one it refuses answers 422 with nginx\'s message (POST and PUT)', async () => {
    const ok = await dryRun(() => request(portico.app).post('/v1/streams?dryRun=true').send({ port: FROM + 1, backend: `127.0.0.1:${echo.port}` }), 200);
    assert.match(ok.files[0]?.text ?? '', new RegExp(`listen ${FROM + 1};`));

    const refused = await dryRun(() => request(portico.app).post('/v1/streams?dryRun=true').send({ port: FROM + 1, backend: `${UNRESOLVABLE}:1` }), 422);
    assert.match(refused.nginx.lines.join('\n'), /host not found/);
    assert.match(refused.files[0]?.text ?? '', new RegExp(UNRESOLVABLE.replaceAll('.', '\\.')));

    await dryRun(() => request(portico.app).put(`/v1/streams/${FROM}?dryRun=true`).send({ backend: `${UNRESOLVABLE}:1` }), 422);
    await dryRun(() => request(portico.app).put(`/v1/streams/${FROM}?dryRun`).send({ backend: "127.0.0.2:1" }), 200);
    assert.equal(await accepts(FROM + 1), false, 'a dry run opened a listener');
    await request(portico.app).get(`/v1/streams/${FROM}`).expect(200, { port: FROM, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
  });

  it('an app nginx accepts answers 200; one it refuses answers 422 with nginx\'s message (POST and PUT)', async () => {
    const app = (name: string, host: string) => ({ name, serverNames: [`${name}.test`], routes: [{ upstreams: [{ address: `${host}:80` }] }] });
    await dryRun(() => request(portico.app).post('/v1/apps?dryRun=true').send(app('cart', '127.0.0.1')), 200);
    const refused = await dryRun(() => request(portico.app).post('/v1/apps?dryRun=true').send(app('cart', UNRESOLVABLE)), 422);
    assert.match(refused.nginx.lines.join('\n'), /host not found/);
    await dryRun(() => request(portico.app).put('/v1/apps/shop?dryRun=true').send(app('shop', UNRESOLVABLE)), 422);
    await request(portico.app).get('/v1/apps/cart').expect(404);
    const shop = await request(portico.app).get('/v1/apps/shop').expect(200);
    assert.equal(shop.body.routes[0].upstreams[0].address, `127.0.0.1:${echo.port}`);
  });

  it('DELETE with ?dryRun=true answers 200 and deletes nothing', async () => {
    const stream = await dryRun(() => request(portico.app).delete(`/v1/streams/${FROM}?dryRun=true`), 200);
    assert.equal(stream.files[0]?.text, null);
    await dryRun(() => request(portico.app).delete('/v1/apps/shop?dryRun=true'), 200);
    await request(portico.app).get(`/v1/streams/${FROM}`).expect(200);
    await request(portico.app).get('/v1/apps/shop').expect(200);
    assert.equal(await accepts(FROM), true);
  });
});
