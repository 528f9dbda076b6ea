/**
 * Every route's scope, walked from express's own router: a route missing from ROUTE_SCOPES fails
 * here, and each scope is tried on every route, against a real Portico and nginx. A read token gets
 * 403 on every route that changes state and changes nothing; a write token (and API_TOKEN) passes
 * everywhere; no token or a wrong one gets 401; /healthz is open. Every answer names its request in
 * `Portico-Request-Id`, with the token's name once one authenticated it.
 */
import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Express } from 'express';
import request from 'supertest';
import { ROUTE_SCOPES, type RouteRule } from '../../src/api/scopes.js';
import { sha256 } from '../../src/api/tokens-file.js';
import { startInProcess, tempDir, type InProcess } from '../helpers/portico.js';
import { routesOf } from '../helpers/routes.js';

const FROM = 29500;
const DEPLOY = 'deploy-token-route-scopes-0123456789';
const MONITOR = 'monitor-token-route-scopes-0123456789';
const LEGACY = 'legacy-api-token-route-scopes';
const hex = (token: string): string => sha256(token).toString('hex');

/** A request path for a rule: each parameter replaced by a value the route parses. */
function concrete(rule: RouteRule): string {
  return rule.path
    .replace(':port', String(FROM))
    .replace(':backend', '127.0.0.1:1')
    .replace(':name', 'scope-app')
    .replace(':id', 'scope-cert')
    .replace('*rest', 'a/b')
    .replace('/ui/vendor/:file', '/ui/vendor/uPlot.esm.js')
    .replace(':file', 'console.js');
}

function send(app: Express, rule: Pick<RouteRule, 'method'> & { path: string }, token?: string) {
  const method = rule.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete' | 'head';
  let req = request(app)[method](rule.path);
  if (token !== undefined) req = req.set('Authorization', `Bearer ${token}`);
  return rule.method === 'POST' || rule.method === 'PUT' ? req.send({}) : req;
}

describe('route scopes', () => {
  let portico: InProcess;
  let tokensDir: string;

  /** Every file Portico keeps, to show that refused requests change none. */
  const files = async (): Promise<string[]> => {
    const dirs = [portico.settings.streamDir, portico.settings.httpDir, portico.settings.certDir];
    const lists = await Promise.all(dirs.map(async (d) => (await readdir(d).catch(() => [])).map((f) => path.join(d, f))));
    return lists.flat().sort();
  };

  before(async () => {
    tokensDir = await tempDir('tokens');
    const file = path.join(tokensDir, 'tokens');
    await writeFile(file, `deploy write ${hex(DEPLOY)}\nmonitor read ${hex(MONITOR)}\n`, { mode: 0o600 });
    portico = await startInProcess({
      PORT_RANGE: `${FROM}-${FROM + 4}`,
      HTTP_PORT: String(FROM + 80),
      HTTPS_PORT: String(FROM + 81),
      API_TOKEN: LEGACY,
      API_TOKENS_FILE: file,
    });
  });
  after(async () => {
    await portico?.stop();
    await rm(tokensDir, { recursive: true, force: true });
  });

  it('ROUTE_SCOPES names exactly the routes express dispatches to, each once', () => {
    const table = ROUTE_SCOPES.map((r) => `${r.method} ${r.path}`);
    assert.equal(new Set(table).size, table.length, 'a route is named twice');
    const routes = routesOf(portico.app);
    assert.ok(routes.size >= 20, `only ${routes.size} routes found: the walk of express's router is broken`);
    assert.deepEqual([...routes].filter((r) => !table.includes(r)), [], 'routes missing from ROUTE_SCOPES (src/api/scopes.ts)');
    assert.deepEqual(table.filter((r) => !routes.has(r)), [], 'ROUTE_SCOPES names routes that do not exist');
  });

  it('every route but /healthz answers 401 without a token or with a wrong one', async () => {
    for (const rule of ROUTE_SCOPES) {
      const target = { method: rule.method, path: concrete(rule) };
      if (rule.scope === 'open') {
        assert.equal((await send(portico.app, target)).status, 200, `${rule.method} ${rule.path}`);
        continue;
      }
      for (const wrong of [undefined, `${DEPLOY}x`, hex(DEPLOY), MONITOR.slice(1)]) {
        const res = await send(portico.app, target, wrong);
        assert.equal(res.status, 401, `${rule.method} ${rule.path} with ${wrong}`);
        assert.match(String(res.headers['portico-request-id']), /^[0-9a-f-]{36}$/, 'a refused request has an id but no token name');
      }
    }
  });

  it('a read token gets 403 naming its scope on every write route (HEAD for GET too) and changes nothing, and passes every read route', async () => {
    const before = await files();
    for (const rule of ROUTE_SCOPES.filter((r) => r.scope !== 'open')) {
      const target = { method: rule.method, path: concrete(rule) };
      const res = await send(portico.app, target, MONITOR);
      const what = `${rule.method} ${rule.path}: ${res.status} ${JSON.stringify(res.body)}`;
      assert.match(String(res.headers['portico-request-id']), /^[0-9a-f-]{36}; token=monitor$/, what);
      if (rule.scope === 'write') {
        assert.equal(res.status, 403, what);
        assert.equal(res.body.error.kind, 'Forbidden', what);
        assert.match(res.body.error.message, /^token "monitor" has scope read: this route changes state and needs a write token$/);
        if (rule.method === 'GET') assert.equal((await send(portico.app, { method: 'HEAD' as RouteRule['method'], path: target.path }, MONITOR)).status, 403, `HEAD ${rule.path}`);
      } else {
        assert.ok(![401, 403].includes(res.status), what);
      }
    }
    assert.deepEqual(await files(), before);
  });

  it('a read token cannot slip a mutation through another spelling of its path', async () => {
    const before = await files();
    for (const p of [`/CreateStream/${FROM}/127.0.0.1:1`, `/createstream/${FROM}/127.0.0.1:1/`, `/%63reatestream/${FROM}/127.0.0.1:1`, `/REMOVESTREAM/${FROM}`, '/GetFreePort', '/v1/Ports/Free']) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await send(portico.app, { method: method as RouteRule['method'], path: p }, MONITOR);
        assert.equal(res.status, 403, `${method} ${p}: ${res.status}`);
      }
    }
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      assert.equal((await send(portico.app, { method, path: `/V1/Streams/${FROM}` }, MONITOR)).status, 403, method);
    }
    assert.deepEqual(await files(), before);
  });

  it('a write token and API_TOKEN pass every route, and the answer names the token', async () => {
    for (const [token, name] of [[DEPLOY, 'deploy'], [LEGACY, 'API_TOKEN']] as const) {
      for (const rule of ROUTE_SCOPES.filter((r) => r.scope !== 'open')) {
        const res = await send(portico.app, { method: rule.method, path: concrete(rule) }, token);
        assert.ok(![401, 403].includes(res.status), `${rule.method} ${rule.path} with ${name}: ${res.status} ${JSON.stringify(res.body)}`);
        assert.match(String(res.headers['portico-request-id']), new RegExp(`^[0-9a-f-]{36}; token=${name}$`));
      }
    }
    // The legacy createstream above made a real stream with the write token; removestream took it away.
    assert.equal((await request(portico.app).get(`/hasstream/${FROM}`).set('Authorization', `Bearer ${DEPLOY}`)).body.result, 'false');
  });

  it('gives every answer its own id, /healthz and a 404 included', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add(String((await request(portico.app).get('/healthz')).headers['portico-request-id']));
    const missing = await request(portico.app).get('/no/such/route').set('Authorization', `Bearer ${MONITOR}`);
    assert.equal(missing.status, 404);
    ids.add(String(missing.headers['portico-request-id']).split(';')[0] as string);
    assert.equal(ids.size, 6);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });
});
