/**
 * The OpenAPI document against a real Portico: it names exactly the routes express dispatches to
 * (walked from its router, as route-scopes.test.ts does), a real validator accepts what
 * /openapi.json answers, /openapi.json and /docs need no token while the rest does, the page loads
 * as a browser loads it from the API's own origin, and the event feed's stream (`follow=true`) is
 * answered as the document says. Every answer here also goes through the contract check that
 * startInProcess installs (helpers/contract.ts).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import request from 'supertest';
import { openApiDocument, openApiPath } from '../../src/api/openapi/document.js';
import { launchChromium } from '../helpers/chromium.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';
import { routesOf } from '../helpers/routes.js';

const FROM = 29700;
const TOKEN = 'openapi-test-token-0123456789abcdef';

describe('the OpenAPI document of a running Portico', () => {
  let portico: InProcess;
  let server: http.Server;
  let base: string;

  before(async () => {
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 4}`, HTTP_PORT: String(FROM + 80), HTTPS_PORT: String(FROM + 81), API_TOKEN: TOKEN });
    server = http.createServer(portico.app).listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await portico?.stop();
  });

  it('names exactly the routes express dispatches to', async () => {
    const doc = (await request(portico.app).get('/openapi.json').expect(200)).body as { paths: Record<string, Record<string, unknown>> };
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)));
    const routes = [...routesOf(portico.app)].map((route) => {
      const [method, path] = route.split(' ') as [string, string];
      return `${method} ${openApiPath(path)}`;
    });
    assert.ok(routes.length >= 30, `only ${routes.length} routes found: the walk of express's router is broken`);
    assert.deepEqual(routes.filter((r) => !documented.has(r)), [], 'routes express knows that the document leaves out (src/api/openapi/paths.ts)');
    assert.deepEqual([...documented].filter((r) => !routes.includes(r)), [], 'operations of the document that express does not know');
  });

  it('serves a document a real OpenAPI 3.1 validator accepts, the one the generator builds', async () => {
    const res = await request(portico.app).get('/openapi.json').expect(200).expect('Content-Type', /^application\/json/);
    assert.deepEqual(await new Validator().validate(res.body), { valid: true });
    assert.equal(res.body.info.version, portico.portico.version);
    assert.deepEqual(res.body, JSON.parse(JSON.stringify(openApiDocument(portico.portico.version))));
  });

  it('answers /openapi.json and /docs without a token, and nothing else', async () => {
    await request(portico.app).get('/metrics').expect(401);
    await request(portico.app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200).expect('Content-Type', /^text\/plain; version=0\.0\.4/);
    for (const path of ['/openapi.json', '/docs', '/docs/docs.js', '/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css', '/healthz']) {
      await request(portico.app).get(path).expect(200);
    }
    await request(portico.app).get('/v1/status').expect(401);
    await request(portico.app).get('/v1/status').set('Authorization', `Bearer ${TOKEN}`).expect(200);
  });

  it('loads /docs as a browser does from the API\'s own origin, and refuses a page of another site', async () => {
    // The address bar, then the page's own scripts, style sheet and its fetch of the document.
    const page = await fetch(`${base}/docs`, { headers: { 'Sec-Fetch-Site': 'none', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document' } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    for (const file of ['/docs/swagger-ui-bundle.js', '/docs/docs.js', '/docs/swagger-ui.css', '/openapi.json']) {
      const res = await fetch(`${base}${file}`, { headers: { 'Sec-Fetch-Site': 'same-origin', Referer: `${base}/docs` } });
      assert.equal(res.status, 200, file);
      await res.arrayBuffer();
    }
    const foreign = await fetch(`${base}/docs`, { headers: { 'Sec-Fetch-Site': 'cross-site', Origin: 'http://evil.example' } });
    assert.equal(foreign.status, 403);
    await foreign.arrayBuffer();
  });

  it('renders every operation in headless Chromium under its Content-Security-Policy, with no script refused', async () => {
    const chromium = await launchChromium([]);
    try {
      const page = await chromium.browser.newPage();
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      page.on('pageerror', (error) => problems.push(error.message));
      await page.goto(`${base}/docs`, { timeout: 20_000 });
      await page.waitForSelector('.opblock', { timeout: 20_000 });
      const operations = await page.locator('.opblock').count();
      const documented = Object.values(openApiDocument(portico.portico.version).paths ?? {}).flatMap((item) => Object.keys(item as object)).length;
      assert.equal(operations, documented);
      assert.deepEqual(problems, []);
    } finally {
      await chromium.close();
    }
  });

  it('answers the event feed as JSON, and with follow=true as Server-Sent Events', async () => {
    await request(portico.app).post('/v1/streams').set('Authorization', `Bearer ${TOKEN}`).send({ port: FROM, backend: '127.0.0.1:1' }).expect(201);
    const list = await request(portico.app).get('/v1/events?type=apply&limit=5').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    assert.equal(list.body[0].type, 'apply');
    await request(portico.app).get('/v1/events?limit=0').set('Authorization', `Bearer ${TOKEN}`).expect(400);
    const first = await new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
      const req = http.get(`${base}/v1/events?follow=true`, { headers: { Authorization: `Bearer ${TOKEN}`, 'Last-Event-ID': '0' } }, (res) => {
        res.once('data', (chunk: Buffer) => {
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text: chunk.toString() });
          req.destroy();
        });
      });
      req.on('error', reject);
    });
    assert.equal(first.status, 200);
    assert.match(first.type, /^text\/event-stream/);
    assert.match(first.text, /^: following/);
    await request(portico.app).delete(`/v1/streams/${FROM}`).set('Authorization', `Bearer ${TOKEN}`).expect(204);
  });

  it('found no answer that disagrees with the document', () => {
    assert.deepEqual(portico.contractViolations, []);
  });
});
