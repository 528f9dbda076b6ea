/**
 * App files written before issue 13 (format 1: `portico_app_<app>_r<N>` groups, a 64k zone each)
 * and after it (format 2: `<app>_r<N>_portico`, one zone `portico_apps` for all) live in one tree
 * through an upgrade: Portico started on a tree of format 1 reads the app back as it was and nginx
 * serves it; a new app is written in format 2 beside it (nginx takes both zone layouts in one
 * config); a change to the old app rewrites it in format 2; both keep serving. Ports 24600-24611.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { legacyAppGroupName, appGroupName } from '../../src/model/app-file.js';
import { sendToBackend, startBackend, type Backend } from '../helpers/http.js';
import { startInProcess, stopNginxUnder, tempDir, type InProcess } from '../helpers/portico.js';

const ENV = { PORT_RANGE: '24600-24609', HTTP_PORT: '24610', HTTPS_PORT: '24611' };
const HTTP = 24610;

/** The file an older Portico wrote for the same app: format 1's group names and zones. */
function asFormat1(text: string, app: string): string {
  let old = text;
  for (let route = 0; text.includes(appGroupName(app, route)); route += 1) {
    const group = legacyAppGroupName(app, route);
    old = old
      .replace(`upstream ${appGroupName(app, route)} {\n    zone portico_apps 32m;`, `upstream ${group} {\n    zone ${group} 64k;`)
      .replaceAll(`http://${appGroupName(app, route)};`, `http://${group};`);
  }
  return old;
}

describe('app files of format 1 and format 2 in one tree (an upgrade)', () => {
  let stateDir: string;
  let portico: InProcess | undefined;
  let backend: Backend;
  const app = (name: string, path = '/') => ({ name, serverNames: [`${name}.test`], routes: [{ path, upstreams: [{ address: `127.0.0.1:${backend.port}` }] }, { path: '/api/', upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] });
  const file = (name: string) => readFile(`${stateDir}/http.d/app_${name}.conf`, 'utf8');

  before(async () => {
    backend = await startBackend('b');
    stateDir = await tempDir('format-upgrade');
    // What the older Portico left: an app whose file is rewritten here in format 1.
    const first = await startInProcess(ENV, { stateDir });
    await request(first.app).post('/v1/apps').send(app('old')).expect(201);
    await first.close();
    await stopNginxUnder(stateDir);
    await writeFile(`${stateDir}/http.d/app_old.conf`, asFormat1(await file('old'), 'old'));
    assert.match(await file('old'), /upstream portico_app_old_r1 \{\n    zone portico_app_old_r1 64k;/);
    portico = await startInProcess(ENV, { stateDir });
  });
  after(async () => {
    await portico?.stop();
    await backend?.close();
  });

  it('reads a format 1 app back as it was created, and nginx serves it', async () => {
    const read = await request(portico!.app).get('/v1/apps/old').expect(200);
    assert.deepEqual(read.body.routes.map((r: { path?: string }) => r.path), ['/', '/api/']);
    assert.equal((await sendToBackend({ port: HTTP, host: 'old.test', path: '/api/x' })).url, '/api/x');
  });

  it('writes a new app in format 2 beside it: nginx takes both zone layouts, and both serve', async () => {
    await request(portico!.app).post('/v1/apps').send(app('new')).expect(201);
    assert.match(await file('new'), /upstream new_r0_portico \{\n    zone portico_apps 32m;/);
    assert.match(await file('old'), /upstream portico_app_old_r0 /, 'an app nobody changed was rewritten');
    assert.equal((await sendToBackend({ port: HTTP, host: 'new.test', path: '/n' })).url, '/n');
    assert.equal((await sendToBackend({ port: HTTP, host: 'old.test', path: '/o' })).url, '/o');
  });

  it('a change to the format 1 app rewrites it in format 2, and it serves on', async () => {
    await request(portico!.app).put('/v1/apps/old').send({ ...app('old'), serverNames: ['old.test', 'www.old.test'] }).expect(200);
    const text = await file('old');
    assert.doesNotMatch(text, /portico_app_/);
    assert.match(text, /upstream old_r1_portico \{\n    zone portico_apps 32m;/);
    assert.equal((await sendToBackend({ port: HTTP, host: 'www.old.test', path: '/w' })).url, '/w');
  });
});
