/**
 * Issue 14's event feed, metrics and nginx status listener, attacked as a hostile client would, over
 * real sockets against a real Portico and nginx: a web page reaching the status listener through DNS
 * rebinding (its own name as Host), query strings that smuggle unknown or repeated parameters, and
 * followers of /v1/events that leave before they are answered.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { MAX_FOLLOWERS } from '../../src/api/v1/events.js';
import { accepts, eventually } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 30200;
const STATUS = 30250;
const TOKEN = 'observability-attacks-token-7c2e9b41d0a6';
const auth = { Authorization: `Bearer ${TOKEN}` };

/** Sends `text` on a fresh connection to 127.0.0.1:`port` and answers what came back before the close (or `maxMs`). */
function exchange(port: number, text: string, maxMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    const timer = setTimeout(() => socket.destroy(), maxMs);
    socket.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

const statusLine = (answer: string): string => answer.split('\r\n')[0] ?? '';

describe('attacks on the event feed, the metrics and the status listener', () => {
  let portico: InProcess;
  let server: Server;
  let port: number;
  let base: string;

  before(async () => {
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 19}`, API_TOKEN: TOKEN, NGINX_STATUS_PORT: String(STATUS) });
    server = portico.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await portico?.stop();
  });

  it('the status listener refuses a Host that does not name it (DNS rebinding) and answers one that does', async () => {
    const ask = (host: string): Promise<string> =>
      exchange(STATUS, `GET /stub_status HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    // A page at rebind.example whose name re-resolves to 127.0.0.1 sends its own name, with or without the port.
    for (const host of [`rebind.example:${STATUS}`, 'rebind.example', `127.0.0.1.rebind.example:${STATUS}`, `localhost.rebind.example`]) {
      const answer = await ask(host);
      assert.match(statusLine(answer), /^HTTP\/1\.1 421 /, `Host: ${host}`);
      assert.doesNotMatch(answer, /Active connections/, `Host: ${host}`);
    }
    for (const host of [`127.0.0.1:${STATUS}`, '127.0.0.1', `localhost:${STATUS}`]) {
      const answer = await ask(host);
      assert.match(statusLine(answer), /^HTTP\/1\.1 200 /, `Host: ${host}`);
      assert.match(answer, /Active connections: \d+/, `Host: ${host}`);
    }
    // And /metrics still reads it.
    const metrics = await (await fetch(`${base}/metrics`, { headers: auth })).text();
    assert.match(metrics, /^portico_nginx_status_up 1$/m);
  });

  it('the status listener is on 127.0.0.1 only: not on ::1 nor on another loopback address', async () => {
    assert.equal(await accepts(STATUS, '127.0.0.1'), true);
    assert.equal(await accepts(STATUS, '127.0.0.2'), false);
    assert.equal(await accepts(STATUS, '::1'), false);
  });

  it('a query parameter /v1/events does not know is a 400 naming the query (not "body"), and a repeated one names itself', async () => {
    const unknown = await fetch(`${base}/v1/events?token=${TOKEN}`, { headers: auth });
    assert.equal(unknown.status, 400);
    const body = (await unknown.json()) as { error: { kind: string; message: string; field: string } };
    assert.equal(body.error.kind, 'InvalidInput');
    assert.equal(body.error.field, 'query');
    assert.match(body.error.message, /^query: unknown parameter\(s\) "token"/);
    assert.doesNotMatch(body.error.message, new RegExp(TOKEN));
    for (const name of ['type', 'resource', 'outcome', 'limit', 'follow']) {
      const repeated = await fetch(`${base}/v1/events?${name}=a&${name}=b`, { headers: auth });
      assert.equal(repeated.status, 400, name);
      assert.equal(((await repeated.json()) as { error: { field: string } }).error.field, name);
    }
  });

  it('followers that leave before their answer is sent (a body still arriving) never keep a place among the followers', async () => {
    const idle = portico.portico.events.subscribers;
    const leaver = (): Promise<void> =>
      new Promise((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(`GET /v1/events?follow=true HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{`);
          setTimeout(() => socket.end('}'), 10);
        });
        socket.resume();
        socket.on('error', () => socket.destroy());
        socket.on('close', () => resolve());
        setTimeout(() => socket.destroy(), 300);
      });
    for (let i = 0; i < MAX_FOLLOWERS + 4; i += 1) await leaver();
    assert.ok(await eventually(() => portico.portico.events.subscribers === idle, 3000), `subscribers ${portico.portico.events.subscribers}, idle ${idle}`);
    const follower = await fetch(`${base}/v1/events?follow=true`, { headers: auth });
    assert.equal(follower.status, 200);
    await follower.body?.cancel();
  });
});
