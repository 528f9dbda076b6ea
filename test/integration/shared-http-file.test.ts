/**
 * The file the apps share (`portico_http.conf`) is checked like every other file: against a real
 * managed nginx, a hand edit of it is reported by /v1/status (one nginx would still read, and one
 * Portico cannot read back), and the next change of an app writes it as Portico renders it again.
 */
import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { sendToBackend, startBackend, type Backend } from '../helpers/http.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const HTTP = 26200;
const HTTPS = 26201;

describe('portico_http.conf, edited by hand (managed nginx)', () => {
  let portico: InProcess;
  let backend: Backend;
  let file: string;

  before(async () => {
    backend = await startBackend('shared');
    portico = await startInProcess({ PORT_RANGE: '26210-26214', HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS), WORKER_SHUTDOWN_TIMEOUT: '1s' });
    file = `${portico.settings.httpDir}/portico_http.conf`;
  });
  after(async () => {
    await portico?.stop();
    await backend?.close();
  });

  const sharedReport = async (): Promise<{ name: string; problem: string } | null> => (await request(portico.app).get('/v1/status').expect(200)).body.files.sharedHttp;
  /** Replaces the file as an editor that saves by rename would (so the next read sees it at once). */
  const handEdit = async (edit: (text: string) => string): Promise<void> => {
    await writeFile(`${file}.tmp`, edit(await readFile(file, 'utf8')));
    await rename(`${file}.tmp`, file);
  };
  const putApp = (name: string) =>
    request(portico.app)
      .put(`/v1/apps/${name}`)
      .send({ serverNames: [`${name}.test`], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] })
      .expect((res) => assert.ok([200, 201].includes(res.status), `${res.status} ${JSON.stringify(res.body)}`));

  it('as Portico wrote it, /v1/status reports nothing', async () => {
    assert.equal(await sharedReport(), null, 'no app, no file');
    await putApp('one');
    assert.equal(await sharedReport(), null);
    assert.equal((await sendToBackend({ port: HTTP, host: 'one.test' })).backend, 'shared');
  });

  it('an edit nginx would read is reported with the field that differs; the next app change writes the file afresh', async () => {
    await handEdit((text) => text.replace('max_size=1024m', 'max_size=5m'));
    assert.deepEqual(await sharedReport(), {
      name: 'portico_http.conf',
      problem: 'it is not what Portico writes for the apps (edited by hand?): cacheMaxMb is 5 where Portico renders 1024',
    });
    await putApp('two');
    assert.equal(await sharedReport(), null);
    assert.match(await readFile(file, 'utf8'), /max_size=1024m/);
    assert.equal((await sendToBackend({ port: HTTP, host: 'two.test' })).backend, 'shared');
  });

  it('an edit Portico cannot read back is reported with the line and the reason', async () => {
    await handEdit((text) => text.replace('return 404;', 'return 404;\n    add_header X-Edited yes;'));
    const report = await sharedReport();
    assert.equal(report?.name, 'portico_http.conf');
    assert.match(report?.problem ?? '', /^it cannot be read as Portico writes it \(edited by hand\?\): line \d+: the catch-all "server" must be/);
    await request(portico.app).delete('/v1/apps/two').expect(204);
    assert.equal(await sharedReport(), null);
    assert.doesNotMatch(await readFile(file, 'utf8'), /X-Edited/);
  });
});
