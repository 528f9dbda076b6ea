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
import { request as httpRequest, type ClientRequest } from 'node:http';
import { MAX_FOLLOWERS, MAX_FOLLOWERS_PER_CLIENT } from '../../src/api/v1/events.js';
import type { PorticoEvent } from '../../src/events/feed.js';
import { accepts, eventually, holdPort, startEcho, type EchoServer } from '../helpers/net.js';
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
  let echo: EchoServer;
  let server: Server;
  let port: number;
  let base: string;
  /** The feed's subscribers with no client following (the metrics subscribe to it). */
  let idle = 0;

  before(async () => {
    echo = await startEcho();
    // The host probe is told every port is free, so that a held port reaches nginx's bind: a rolled-back batch.
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 19}`, API_TOKEN: TOKEN, NGINX_STATUS_PORT: String(STATUS) }, { isBound: async () => false });
    server = portico.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    idle = portico.portico.events.subscribers;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await portico?.stop();
    await echo?.close();
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

  it('a page reaches neither /v1/events (EventSource: cookies and Origin, no Authorization) nor /metrics, rebound or cross-site', async () => {
    const browser = { Accept: 'text/event-stream', Cookie: 'session=abc', 'Sec-Fetch-Mode': 'cors' };
    for (const route of ['/v1/events?follow=true', '/v1/events', '/metrics']) {
      // Cross-site: the page's Origin and Sec-Fetch-Site, even with a valid token (guarded before the token is read).
      const cross = await exchange(port, `GET ${route} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://attacker.example\r\nSec-Fetch-Site: cross-site\r\n${Object.entries({ ...browser, ...auth }).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\nConnection: close\r\n\r\n`);
      assert.match(statusLine(cross), /^HTTP\/1\.1 403 /, `${route} cross-site`);
      assert.doesNotMatch(cross, /text\/event-stream|portico_|"type":/, route);
      // Rebound: the page's own name as Host, same-origin to the browser.
      const rebound = await exchange(port, `GET ${route} HTTP/1.1\r\nHost: rebind.example:${port}\r\nOrigin: http://rebind.example:${port}\r\nSec-Fetch-Site: same-origin\r\n${Object.entries({ ...browser, ...auth }).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\nConnection: close\r\n\r\n`);
      assert.match(statusLine(rebound), /^HTTP\/1\.1 403 /, `${route} rebound`);
      assert.doesNotMatch(rebound, /text\/event-stream|portico_|"type":/, route);
    }
  });

  it('racing changes (same port, new ports, dry runs, nginx-refused, rolled back) are each answered, and each recorded once before its answer, as /metrics counts them', async () => {
    const scrape = async (): Promise<Map<string, number>> => {
      const text = await (await fetch(`${base}/metrics`, { headers: auth })).text();
      const counts = new Map<string, number>();
      for (const match of text.matchAll(/^portico_apply_changes_total\{kind="stream",outcome="(\w+)"\} (\d+)$/gm)) counts.set(match[1] as string, Number(match[2]));
      return counts;
    };
    const before = await scrape();
    const seen = Math.max(0, ...portico.portico.events.list().map((event) => event.id));
    const backend = `127.0.0.1:${echo.port}`;
    const held = await holdPort(FROM + 15);
    type Sent = { what: string; dryRun: boolean; status: number; request: string; recordedFirst: boolean };
    const send = async (what: string, method: string, route: string, body: unknown): Promise<Sent> => {
      const res = await fetch(`${base}${route}`, { method, headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
      const request = (res.headers.get('portico-request-id') ?? '').split(';')[0] as string;
      // In-process: the feed as it is when the answer arrives.
      const recordedFirst = portico.portico.events.list().some((event) => event.type === 'apply' && event.changes.some((c) => c.request === request));
      await res.arrayBuffer();
      return { what, dryRun: route.includes('dryRun'), status: res.status, request, recordedFirst };
    };
    let sent: Sent[];
    try {
      const calls: Array<Promise<Sent>> = [];
      for (let i = 0; i < 8; i += 1) calls.push(send('same port', 'PUT', `/v1/streams/${FROM + 10}`, { port: FROM + 10, upstreams: [{ address: i % 2 === 0 ? backend : `127.0.0.1:${echo.port}`, weight: 1 + (i % 3) }] }));
      for (let i = 0; i < 4; i += 1) calls.push(send('new port', 'POST', '/v1/streams', { port: FROM + 11 + i, backend }));
      for (let i = 0; i < 4; i += 1) calls.push(send('dry run', 'POST', '/v1/streams?dryRun=true', { port: FROM + 5 + i, backend }));
      for (let i = 0; i < 2; i += 1) calls.push(send('nginx refuses', 'POST', '/v1/streams', { port: FROM + 16 + i, backend: 'no-such-host.invalid:5432' }));
      calls.push(send('held port', 'POST', '/v1/streams', { port: FROM + 15, backend }));
      sent = await Promise.all(calls);
    } finally {
      await held.close();
    }
    const real = sent.filter((s) => !s.dryRun);
    assert.ok(sent.every((s) => s.request !== ''), JSON.stringify(sent));
    assert.ok(sent.filter((s) => s.dryRun).every((s) => s.status === 200), JSON.stringify(sent));
    assert.ok(sent.filter((s) => s.what === 'nginx refuses' || s.what === 'held port').every((s) => s.status === 422), JSON.stringify(sent));
    assert.ok(real.every((s) => s.recordedFirst), `answered before recorded: ${JSON.stringify(real.filter((s) => !s.recordedFirst))}`);

    const changes = portico.portico.events.list().filter((event): event is PorticoEvent & { type: 'apply' } => event.id > seen && event.type === 'apply').flatMap((event) => event.changes);
    // Each real change once, a dry run never; each with the outcome its answer said.
    for (const s of sent) {
      const mine = changes.filter((c) => c.request === s.request);
      assert.equal(mine.length, s.dryRun ? 0 : 1, `${s.what}: ${JSON.stringify(mine)}`);
      if (!s.dryRun) assert.equal(mine[0]?.outcome === 'rejected', s.status >= 400, `${s.what} ${s.status}: ${JSON.stringify(mine)}`);
    }
    assert.equal(changes.length, real.length);
    const after = await scrape();
    for (const outcome of ['applied', 'unchanged', 'rejected']) {
      assert.equal((after.get(outcome) ?? 0) - (before.get(outcome) ?? 0), changes.filter((c) => c.outcome === outcome).length, outcome);
    }
  });

  it(`one client cannot take every follower place: at most ${MAX_FOLLOWERS_PER_CLIENT} from one address, and another address still follows`, async () => {
    assert.ok(await eventually(() => portico.portico.events.subscribers === idle, 5000), 'followers of earlier tests are still there');
    const held: ClientRequest[] = [];
    const follow = (localAddress: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(`${base}/v1/events?follow=true`, { headers: auth, localAddress, agent: false }, (res) => {
          if (res.statusCode === 200) {
            resolve({ status: 200, body: '' });
            return;
          }
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
        held.push(req);
      });
    try {
      // The attacker opens as many as the API's connection cap per client would let it (256): far more than the feed's places.
      const mine = await Promise.all(Array.from({ length: MAX_FOLLOWERS }, () => follow('127.0.0.1')));
      assert.equal(mine.filter((r) => r.status === 200).length, MAX_FOLLOWERS_PER_CLIENT);
      const refused = mine.find((r) => r.status !== 200);
      assert.equal(refused?.status, 503);
      assert.match(refused?.body ?? '', /"kind":"Busy"/);
      assert.match(refused?.body ?? '', /this client \(127\.0\.0\.1\)/);
      // Everyone else still gets in.
      assert.equal((await follow('127.0.0.2')).status, 200);
      assert.equal((await follow('127.0.0.3')).status, 200);
    } finally {
      for (const req of held) req.destroy();
    }
    assert.ok(await eventually(() => portico.portico.events.subscribers === idle, 5000), 'the followers did not leave');
  });

  it('a client that reconnects to a restarted Portico with the Last-Event-ID of the process before misses none of the new one\'s events', async () => {
    // The last id a follower saw before Portico restarted (an upgrade, a crash): this process's newest.
    const lastSeen = Math.max(...portico.portico.events.list().map((event) => event.id));
    assert.ok(lastSeen >= 3, `${lastSeen}`);
    const restarted = await startInProcess({ PORT_RANGE: `${FROM + 20}-${FROM + 29}`, API_TOKEN: TOKEN });
    const listener = restarted.app.listen(0, '127.0.0.1');
    try {
      await new Promise((resolve) => listener.once('listening', resolve));
      const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
      const backend = `127.0.0.1:${echo.port}`;
      for (const offset of [20, 21]) {
        const created = await fetch(`${url}/v1/streams`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ port: FROM + offset, backend }) });
        assert.equal(created.status, 201, await created.text());
      }
      // The EventSource reconnects with the id it last saw; it reads for a second.
      const res = await fetch(`${url}/v1/events?follow=true`, { headers: { ...auth, 'Last-Event-ID': String(lastSeen) }, signal: AbortSignal.timeout(1000) });
      assert.equal(res.status, 200);
      let text = '';
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString();
        }
      } catch {
        // the timeout ended the read
      }
      const replayed = [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1] as string) as PorticoEvent);
      const kept = restarted.portico.events.list().reverse();
      assert.ok(kept.filter((event) => event.type === 'apply').length >= 2);
      assert.deepEqual(replayed.map((event) => event.id), kept.map((event) => event.id), text);
      assert.ok(kept.every((event) => event.id > lastSeen), 'an id of the new process is not above the old one\'s');
    } finally {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
      await restarted.stop();
    }
  });
});
