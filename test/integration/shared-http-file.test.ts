/**
 * The file the apps share (`portico_http.conf`) is checked like every other file: against a real
 * managed nginx, a hand edit of it is reported by /v1/status (one nginx would still read, and one
 * Portico cannot read back), and the next change of an app writes it as Portico renders it again.
 *
 * Each map and the cache zone is there only while an app uses it: plain apps get none; a WebSocket,
 * a sticky and a cached app each bring theirs and are served through it; the last one to go takes
 * it away. A file the previous version wrote (with all of them) is not reported, and an app file
 * Portico cannot read keeps them all, since it may use any.
 */
import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import type { App } from '../../src/model/app.js';
import { CookieJar, openWebSocket, send, sendToBackend, startBackend, type Backend } from '../helpers/http.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

/** The maps (by the variable each sets) and the cache zone a shared file holds, in order. */
function parts(text: string): string[] {
  return [...text.matchAll(/^(?:map \S+ \$(\w+) \{|proxy_cache_path \S+ \S+ keys_zone=(\w+):)/gm)].map((m) => (m[1] ?? m[2]) as string);
}

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
  type Route = App['routes'][number];
  const putApp = (name: string, route: Partial<Route> = {}) =>
    request(portico.app)
      .put(`/v1/apps/${name}`)
      .send({ serverNames: [`${name}.test`], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }], ...route }] })
      .expect((res) => assert.ok([200, 201].includes(res.status), `${res.status} ${JSON.stringify(res.body)}`));
  const deleteApp = (name: string) => request(portico.app).delete(`/v1/apps/${name}`).expect(204);
  const fileParts = async (): Promise<string[]> => parts(await readFile(file, 'utf8'));
  const ALL = ['portico_connection_upgrade', 'portico_sticky_key', 'portico_sticky_set', 'portico_cache_credentials', 'portico_cache'];

  it('as Portico wrote it, /v1/status reports nothing; a plain app gets no map and no cache zone', async () => {
    assert.equal(await sharedReport(), null, 'no app, no file');
    await putApp('one');
    assert.equal(await sharedReport(), null);
    assert.deepEqual(await fileParts(), []);
    assert.equal((await sendToBackend({ port: HTTP, host: 'one.test' })).backend, 'shared');
  });

  it('an edit nginx would read is reported with the field that differs; the next app change writes the file afresh', async () => {
    await handEdit((text) => text.replace(`listen ${HTTP} default_server;`, `listen ${HTTP};`));
    assert.deepEqual(await sharedReport(), {
      name: 'portico_http.conf',
      problem: 'it is not what Portico writes for the apps (edited by hand?): httpDefault is false where Portico renders true',
    });
    await putApp('two');
    assert.equal(await sharedReport(), null);
    assert.match(await readFile(file, 'utf8'), new RegExp(`listen ${HTTP} default_server;`));
    assert.equal((await sendToBackend({ port: HTTP, host: 'two.test' })).backend, 'shared');
  });

  it('an edit Portico cannot read back is reported with the line and the reason', async () => {
    await handEdit((text) => text.replace('return 404;', 'return 404;\n    add_header X-Edited yes;'));
    const report = await sharedReport();
    assert.equal(report?.name, 'portico_http.conf');
    assert.match(report?.problem ?? '', /^it cannot be read as Portico writes it \(edited by hand\?\): line \d+: the catch-all "server" must be/);
    await deleteApp('two');
    assert.equal(await sharedReport(), null);
    assert.doesNotMatch(await readFile(file, 'utf8'), /X-Edited/);
  });

  it('a file the previous version wrote, with every map and the cache zone, is not reported; the next app change writes it without them', async () => {
    const golden = await readFile(new URL('../golden/http-shared/before-maps-on-demand.conf', import.meta.url), 'utf8');
    await handEdit(() =>
      golden
        .replaceAll('/var/lib/portico', portico.settings.stateDir)
        .replace('listen 8080 ', `listen ${HTTP} `)
        .replaceAll('listen 8443 ', `listen ${HTTPS} `),
    );
    assert.deepEqual(await fileParts(), ALL);
    assert.equal(await sharedReport(), null, 'maps and a cache zone no app uses, as Portico writes them, are no hand edit');
    await putApp('three');
    assert.deepEqual(await fileParts(), []);
    assert.equal(await sharedReport(), null);
    for (const host of ['one.test', 'three.test']) assert.equal((await sendToBackend({ port: HTTP, host })).backend, 'shared');
  });

  it('a WebSocket, a sticky and a cached app each bring their map (and the cache zone) and are served through it; the last to go takes it away', async () => {
    await putApp('chat', { websocket: true });
    assert.deepEqual(await fileParts(), ['portico_connection_upgrade']);
    const socket = await openWebSocket({ port: HTTP, host: 'chat.test' });
    try {
      assert.equal(await socket.exchange('hello'), 'shared:hello');
    } finally {
      socket.close();
    }

    await putApp('sticky', { balance: 'sticky' });
    assert.deepEqual(await fileParts(), ['portico_connection_upgrade', 'portico_sticky_key', 'portico_sticky_set']);
    const jar = new CookieJar();
    const first = await sendToBackend({ port: HTTP, host: 'sticky.test', jar });
    assert.match(String(first.answer.headers['set-cookie']), /^portico_sticky=[0-9a-f]{32}; Path=\/; HttpOnly; SameSite=Lax$/);
    assert.equal((await sendToBackend({ port: HTTP, host: 'sticky.test', jar })).answer.headers['set-cookie'], undefined, 'a client with its cookie gets no new one');

    await putApp('cached', { cache: { ttl: '1m' } });
    assert.deepEqual(await fileParts(), ALL);
    const get = () => send({ port: HTTP, host: 'cached.test', path: '/page' });
    const seen = backend.requests();
    assert.deepEqual([(await get()).headers['x-cache-status'], (await get()).headers['x-cache-status']], ['MISS', 'HIT']);
    assert.equal(backend.requests(), seen + 1, 'the HIT never reached the backend');
    assert.equal(await sharedReport(), null);

    await putApp('cached', { cache: { ttl: '1m', shareAuthenticated: true } });
    assert.deepEqual(await fileParts(), ['portico_connection_upgrade', 'portico_sticky_key', 'portico_sticky_set', 'portico_cache'], 'no credentials map: no route keeps authenticated answers apart');
    await deleteApp('chat');
    assert.deepEqual(await fileParts(), ['portico_sticky_key', 'portico_sticky_set', 'portico_cache']);
    await putApp('sticky');
    assert.deepEqual(await fileParts(), ['portico_cache']);
    await deleteApp('cached');
    assert.deepEqual(await fileParts(), []);
    assert.equal(await sharedReport(), null);
    for (const host of ['one.test', 'three.test', 'sticky.test']) assert.equal((await sendToBackend({ port: HTTP, host })).backend, 'shared');
  });

  it('an app file Portico cannot read keeps every map and the cache zone (it may use any) until it is deleted', async () => {
    await putApp('edited', { websocket: true });
    const appFile = `${portico.settings.httpDir}/app_edited.conf`;
    const text = await readFile(appFile, 'utf8');
    const edited = text.replace('proxy_http_version 1.1;', 'proxy_http_version 1.1;\n        add_header X-Edited yes;');
    assert.notEqual(edited, text);
    await writeFile(`${appFile}.tmp`, edited);
    await rename(`${appFile}.tmp`, appFile);
    await putApp('four');
    assert.deepEqual(await fileParts(), ALL);
    assert.equal(await sharedReport(), null);
    const socket = await openWebSocket({ port: HTTP, host: 'edited.test' });
    try {
      assert.equal(await socket.exchange('still'), 'shared:still', 'the file nginx serves as it is still finds its map');
    } finally {
      socket.close();
    }
    await deleteApp('edited');
    assert.deepEqual(await fileParts(), []);
    assert.equal((await sendToBackend({ port: HTTP, host: 'four.test' })).backend, 'shared');
  });
});
