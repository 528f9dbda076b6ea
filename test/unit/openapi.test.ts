/**
 * The OpenAPI document (src/api/openapi/): generated the same way every time, accepted by a real
 * OpenAPI 3.1 validator, served as is by GET /openapi.json, naming every route of ROUTE_SCOPES with
 * its scope; and the contract check the integration tests run on every answer (helpers/contract.ts)
 * tells a good answer from a bad one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import express from 'express';
import request from 'supertest';
import { buildOpenApiDocument, openApiDocument, openApiPath } from '../../src/api/openapi/document.js';
import { DOCS_CSP, docsRouter } from '../../src/api/openapi/docs.js';
import { ROUTE_SCOPES } from '../../src/api/scopes.js';
import { contractViolation } from '../helpers/contract.js';

type Operation = { operationId: string; security: Array<Record<string, string[]>>; responses: Record<string, unknown> };
const operations = (doc: ReturnType<typeof buildOpenApiDocument>): Array<[string, Operation]> =>
  Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
    Object.entries(item as Record<string, Operation>).map(([method, op]): [string, Operation] => [`${method.toUpperCase()} ${path}`, op]),
  );

describe('the OpenAPI document', () => {
  it('is generated the same every time, byte for byte', () => {
    const first = JSON.stringify(buildOpenApiDocument('1.2.3'));
    const second = JSON.stringify(buildOpenApiDocument('1.2.3'));
    assert.equal(first, second);
    assert.equal(JSON.stringify(openApiDocument('1.2.3')), first);
    assert.ok(first.length > 50_000, `only ${first.length} characters`);
  });

  it('is valid OpenAPI 3.1 for @seriousme/openapi-schema-validator', async () => {
    const doc = buildOpenApiDocument('1.2.3');
    assert.equal(doc.openapi, '3.1.0');
    const result = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
    assert.deepEqual(result, { valid: true }, JSON.stringify(result.errors, null, 2));
  });

  it('names every route of ROUTE_SCOPES, with its scope as the bearer requirement (none for open routes), and a unique operationId', () => {
    const ops = new Map(operations(buildOpenApiDocument('1.2.3')));
    for (const rule of ROUTE_SCOPES) {
      const op = ops.get(`${rule.method} ${openApiPath(rule.path)}`);
      assert.ok(op !== undefined, `${rule.method} ${rule.path} is not in the document`);
      assert.deepEqual(op.security, rule.scope === 'open' ? [] : [{ bearer: [rule.scope] }], `${rule.method} ${rule.path}`);
      if (rule.scope !== 'open') assert.ok('401' in op.responses, `${rule.method} ${rule.path} lists no 401`);
      else assert.ok(!('401' in op.responses), `${rule.method} ${rule.path} is open but lists 401`);
    }
    const ids = [...ops.values()].map((op) => op.operationId);
    assert.equal(new Set(ids).size, ids.length);
    // Prometheus scrapes with a read token.
    assert.deepEqual(ops.get('GET /metrics')?.security, [{ bearer: ['read'] }]);
  });

  it('lists every error kind under its status', () => {
    const text = JSON.stringify(buildOpenApiDocument('1.2.3').components?.schemas);
    for (const kind of ['InvalidInput', 'Unauthorized', 'Forbidden', 'NotFound', 'Conflict', 'PreconditionFailed', 'UnsupportedMediaType', 'NginxRejected', 'NginxUnavailable', 'StorageUnavailable', 'FleetUnavailable', 'Busy', 'Internal', 'TooManyConnections']) {
      assert.ok(text.includes(`"${kind}"`), kind);
    }
  });

  it('is what GET /openapi.json answers; /docs is a page without inline script, under a CSP, not to be framed', async () => {
    const app = express().use(docsRouter('1.2.3'));
    const res = await request(app).get('/openapi.json').expect(200).expect('Content-Type', /^application\/json/);
    assert.deepEqual(res.body, JSON.parse(JSON.stringify(buildOpenApiDocument('1.2.3'))));
    const page = await request(app).get('/docs').expect(200).expect('Content-Type', /^text\/html/);
    assert.equal(page.headers['content-security-policy'], DOCS_CSP);
    assert.match(DOCS_CSP, /script-src 'self'(;|$)/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    const scripts = [...page.text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 2);
    for (const [, attributes, body] of scripts) {
      assert.match(attributes as string, /src="\/docs\/[a-z-]+\.js"/);
      assert.equal(body, '');
    }
    const init = await request(app).get('/docs/docs.js').expect(200).expect('Content-Type', /^text\/javascript/);
    assert.match(init.text, /url: "\/openapi.json"/);
    await request(app).get('/docs/swagger-ui-bundle.js').expect(200).expect('Content-Type', /^text\/javascript/);
    await request(app).get('/docs/swagger-ui.css').expect(200).expect('Content-Type', /^text\/css/);
  });
});

describe('the contract check', () => {
  const body = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
  const stream = { port: 9000, upstreams: [{ address: '127.0.0.1:5432' }] };

  it('passes answers the document allows', () => {
    assert.equal(contractViolation({ method: 'GET', url: '/v1/streams', status: 200, contentType: 'application/json; charset=utf-8', body: body([stream]) }), undefined);
    assert.equal(contractViolation({ method: 'GET', url: '/V1/Streams/9000/', status: 200, contentType: 'application/json', body: body(stream) }), undefined);
    assert.equal(
      contractViolation({ method: 'GET', url: '/v1/streams/9001', status: 404, contentType: 'application/json', body: body({ error: { kind: 'NotFound', message: 'no stream on port 9001' } }) }),
      undefined,
    );
    assert.equal(contractViolation({ method: 'DELETE', url: '/v1/streams/9000', status: 204, contentType: undefined, body: Buffer.alloc(0) }), undefined);
    assert.equal(contractViolation({ method: 'HEAD', url: '/v1/streams', status: 200, contentType: 'application/json', body: Buffer.alloc(0) }), undefined);
    // The legacy shape, for a failure of a legacy route itself.
    const legacy = { result: 'error', errors: 'port: must be an integer from 1 to 65535', error: { kind: 'InvalidInput', message: 'port: must be an integer from 1 to 65535', field: 'port' } };
    assert.equal(contractViolation({ method: 'GET', url: '/hasstream/x', status: 400, contentType: 'application/json', body: body(legacy) }), undefined);
    // An event stream, or an answer its client cut off: status and media type only.
    assert.equal(contractViolation({ method: 'GET', url: '/v1/events?follow=true', status: 200, contentType: 'text/event-stream; charset=utf-8', body: undefined, partial: true }), undefined);
    assert.equal(contractViolation({ method: 'GET', url: '/v1/status', status: 200, contentType: 'application/json', body: undefined, partial: true }), undefined);
    // No route: not the document's business.
    assert.equal(contractViolation({ method: 'GET', url: '/no/such/route', status: 404, contentType: 'application/json', body: body({}) }), undefined);
  });

  it('names the route, the status and the schema error of answers it does not allow', () => {
    const unlisted = contractViolation({ method: 'GET', url: '/v1/streams', status: 418, contentType: 'application/json', body: body({}) });
    assert.match(unlisted ?? '', /GET \/v1\/streams answered 418[\s\S]*lists no 418/);
    const extra = contractViolation({ method: 'GET', url: '/v1/streams/9000', status: 200, contentType: 'application/json', body: body({ ...stream, colour: 'red' }) });
    assert.match(extra ?? '', /GET \/v1\/streams\/\{port\} 200: .*additional properties/);
    const kind = contractViolation({ method: 'GET', url: '/v1/streams/9000', status: 404, contentType: 'application/json', body: body({ error: { kind: 'Conflict', message: 'x' } }) });
    assert.match(kind ?? '', /404: .*allowed values/);
    const type = contractViolation({ method: 'GET', url: '/v1/status', status: 200, contentType: 'text/plain', body: Buffer.from('ok') });
    assert.match(type ?? '', /Content-Type text\/plain is none of application\/json/);
    const streamed = contractViolation({ method: 'GET', url: '/v1/status', status: 200, contentType: 'text/event-stream', body: undefined, partial: true });
    assert.match(streamed ?? '', /Content-Type text\/event-stream is none of application\/json/);
  });
});
