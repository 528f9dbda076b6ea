/**
 * The event feed against a real nginx: every batch is an event naming who asked (the token's name,
 * never the token) and what became of each change, nginx's own lines when it refused one; a killed
 * master's exit and restart are events; `?follow=true` streams them as Server-Sent Events over a real
 * socket, replays what a reconnecting client missed (Last-Event-ID), and bad query values are 400s
 * naming the field.
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { MAX_FOLLOWERS, MAX_FOLLOWERS_PER_CLIENT } from '../../src/api/v1/events.js';
import type { PorticoEvent } from '../../src/events/feed.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { nginxMasters, startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 30100;
const TOKEN = 'events-test-token-4f1c9a7e2b6d8c0a';
const auth = { Authorization: `Bearer ${TOKEN}` };

/** Reads Server-Sent Events from a real socket until `count` events came, or `maxMs` passed. */
function readEvents(url: string, headers: Record<string, string>, count: number, maxMs: number, onOpen?: () => void): Promise<{ status: number; type: string; events: Array<{ id: string; event: string; data: PorticoEvent }> }> {
  return new Promise((resolve, reject) => {
    const events: Array<{ id: string; event: string; data: PorticoEvent }> = [];
    let buffer = '';
    let response: IncomingMessage | undefined;
    const done = (): void => {
      clearTimeout(timer);
      req.destroy();
      resolve({ status: response?.statusCode ?? 0, type: String(response?.headers['content-type']), events });
    };
    const timer = setTimeout(done, maxMs);
    const req = httpRequest(url, { headers }, (res) => {
      response = res;
      res.setEncoding('utf8');
      onOpen?.();
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = new Map<string, string>();
          for (const line of message.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
          }
          if (fields.has('data')) events.push({ id: fields.get('id') ?? '', event: fields.get('event') ?? '', data: JSON.parse(fields.get('data') as string) as PorticoEvent });
          if (events.length >= count) return done();
          end = buffer.indexOf('\n\n');
        }
      });
      res.on('end', done);
    });
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end();
  });
}

describe('the event feed (/v1/events)', () => {
  let portico: InProcess;
  let echo: EchoServer;
  let server: Server;
  let base: string;
  /** The feed's subscribers with no client following (the metrics subscribe to it). */
  let idle = 0;

  before(async () => {
    echo = await startEcho();
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 19}`, API_TOKEN: TOKEN });
    server = portico.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    idle = portico.portico.events.subscribers;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await portico?.stop();
    await echo?.close();
  });

  it('records an applied batch with the token\'s name, never the token, and the phase timings', async () => {
    const created = await request(portico.app).post('/v1/streams').set(auth).send({ port: FROM, backend: `127.0.0.1:${echo.port}` }).expect(201);
    const requestId = (created.get('Portico-Request-Id') ?? '').split(';')[0];
    const res = await request(portico.app).get('/v1/events').set(auth).expect(200);
    const events = res.body as PorticoEvent[];
    const event = events.find((e) => e.type === 'apply' && e.changes.some((c) => c.request === requestId));
    assert.ok(event !== undefined && event.type === 'apply', `no event for request ${requestId}: ${JSON.stringify(events)}`);
    assert.equal(event.resource, 'stream');
    assert.equal(event.outcome, 'applied');
    assert.deepEqual(
      event.changes.map((c) => ({ ...c, request: undefined })),
      [{ request: undefined, token: 'API_TOKEN', change: `applying stream ${FROM}`, outcome: 'applied' }],
    );
    assert.ok(event.totalMs > 0 && Object.keys(event.phasesMs).includes('reload'), JSON.stringify(event));
    assert.ok(!JSON.stringify(events).includes(TOKEN), 'the token is in the feed');
  });

  it('records a change nginx refused with nginx\'s own line, and answers newest first, narrowed by outcome', async () => {
    // nginx resolves an upstream's name when it reads the config: a name that does not resolve is refused.
    const refused = await request(portico.app).post('/v1/streams').set(auth).send({ port: FROM + 1, backend: 'no-such-host.invalid:5432' });
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    const res = await request(portico.app).get('/v1/events?outcome=rejected&limit=1').set(auth).expect(200);
    const [event] = res.body as PorticoEvent[];
    assert.ok(event !== undefined && event.type === 'apply', JSON.stringify(res.body));
    assert.equal(event.outcome, 'rejected');
    const [change] = event.changes;
    assert.equal(change?.outcome, 'rejected');
    assert.equal(change?.error?.kind, 'NginxRejected');
    assert.ok(change?.error?.nginx?.some((line) => line.includes('no-such-host.invalid')), JSON.stringify(change));
    const all = (await request(portico.app).get('/v1/events').set(auth).expect(200)).body as PorticoEvent[];
    assert.deepEqual(all.map((e) => e.id), [...all.map((e) => e.id)].sort((a, b) => b - a), 'not newest first');
    assert.ok(all.length >= 2);
  });

  it('refuses a bad query value or Last-Event-ID with a 400 naming it, and needs the token', async () => {
    const bad = await request(portico.app).get('/v1/events?outcome=exploded').set(auth).expect(400);
    assert.equal((bad.body as { error: { field: string } }).error.field, 'outcome');
    const limit = await request(portico.app).get('/v1/events?limit=5000').set(auth).expect(400);
    assert.equal((limit.body as { error: { field: string } }).error.field, 'limit');
    const unknown = await request(portico.app).get('/v1/events?since=1').set(auth).expect(400);
    assert.match((unknown.body as { error: { message: string } }).error.message, /since/);
    const lastId = await request(portico.app).get('/v1/events?follow=true').set(auth).set('Last-Event-ID', 'x; drop').expect(400);
    assert.equal((lastId.body as { error: { field: string } }).error.field, 'Last-Event-ID');
    await request(portico.app).get('/v1/events').expect(401);
  });

  it('follows the events as Server-Sent Events over a socket, and replays what a client missed after Last-Event-ID', async () => {
    const before = (await request(portico.app).get('/v1/events?limit=1').set(auth).expect(200)).body as PorticoEvent[];
    const lastSeen = before[0]?.id ?? 0;
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const following = readEvents(`${base}/v1/events?follow=true&type=apply`, { ...auth, Host: `127.0.0.1` }, 2, 20_000, opened);
    await open;
    await request(portico.app).post('/v1/streams').set(auth).send({ port: FROM + 2, backend: `127.0.0.1:${echo.port}` }).expect(201);
    await request(portico.app).delete(`/v1/streams/${FROM + 2}`).set(auth).expect(204);
    const followed = await following;
    assert.equal(followed.status, 200);
    assert.match(followed.type, /^text\/event-stream/);
    assert.deepEqual(
      followed.events.map((e) => [e.event, e.data.type === 'apply' ? e.data.changes[0]?.change : '', e.data.type === 'apply' ? e.data.outcome : '']),
      [
        ['apply', `applying stream ${FROM + 2}`, 'applied'],
        ['apply', `removing stream ${FROM + 2}`, 'applied'],
      ],
    );
    for (const e of followed.events) assert.equal(e.id, String(e.data.id));
    // A client that saw `lastSeen` reconnects: it gets the two events after it, oldest first.
    const replay = await readEvents(`${base}/v1/events?follow=true`, { ...auth, 'Last-Event-ID': String(lastSeen) }, 2, 10_000);
    assert.deepEqual(replay.events.map((e) => e.data.id), followed.events.map((e) => e.data.id));
    // Last-Event-ID 0 (a client whose list was empty): every kept event of the type, oldest first.
    const kept = ((await request(portico.app).get('/v1/events?type=apply').set(auth).expect(200)).body as PorticoEvent[]).map((e) => e.id).reverse();
    const all = await readEvents(`${base}/v1/events?follow=true&type=apply`, { ...auth, 'Last-Event-ID': '0' }, kept.length, 10_000);
    assert.deepEqual(all.events.map((e) => e.data.id), kept);
  });

  it(`holds at most ${MAX_FOLLOWERS} followers: one more is 503 Busy, and a follower that leaves frees its place`, async () => {
    const sockets: Array<ReturnType<typeof httpRequest>> = [];
    try {
      // From as many loopback addresses as the places need (MAX_FOLLOWERS_PER_CLIENT each), 127.0.0.1 last.
      const addresses = Math.ceil(MAX_FOLLOWERS / MAX_FOLLOWERS_PER_CLIENT);
      const opened = Array.from({ length: MAX_FOLLOWERS }, (_, i) =>
        new Promise<number>((resolve, reject) => {
          const localAddress = `127.0.0.${addresses - (i % addresses)}`;
          const req = httpRequest(`${base}/v1/events?follow=true`, { headers: auth, localAddress }, (res) => resolve(res.statusCode ?? 0));
          req.on('error', reject);
          req.end();
          sockets.push(req);
        }),
      );
      assert.deepEqual(new Set(await Promise.all(opened)), new Set([200]));
      // One more, from an address that follows nothing yet: the places in all are full.
      const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(`${base}/v1/events?follow=true`, { headers: auth, localAddress: `127.0.0.${addresses + 1}` }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
        sockets.push(req);
      });
      assert.equal(refused.status, 503, refused.body);
      const refusal = JSON.parse(refused.body) as { error: { kind: string; message: string } };
      assert.equal(refusal.error.kind, 'Busy');
      assert.match(refusal.error.message, new RegExp(`^${MAX_FOLLOWERS} clients already follow`));
      sockets.pop()?.destroy(); // the refused one
      sockets.pop()?.destroy(); // a follower from 127.0.0.1
      let status = 0;
      assert.ok(await eventually(async () => {
        const one = await readEvents(`${base}/v1/events?follow=true`, auth, 1, 200);
        status = one.status;
        return status === 200;
      }, 5000, 50), `a place was not freed: ${status}`);
    } finally {
      for (const req of sockets) req.destroy();
    }
  });

  it('cuts off a follower that stops reading once a MiB waits for it, so memory stays bounded', async () => {
    // The followers of the tests before have gone.
    assert.ok(await eventually(() => portico.portico.events.subscribers === idle, 5000), `${portico.portico.events.subscribers - idle} followers left`);
    const before = idle;
    let response: IncomingMessage | undefined;
    const req = httpRequest(`${base}/v1/events?follow=true&type=nginx`, { headers: auth }, (res) => {
      response = res;
      res.pause(); // never reads again
    });
    req.on('error', () => {});
    req.end();
    try {
      assert.ok(await eventually(() => response !== undefined && portico.portico.events.subscribers === before + 1, 5000), 'the follower did not start');
      // 40 MiB of events (more than the kernel's socket buffers hold) recorded straight into the feed.
      const detail = 'x'.repeat(4096);
      for (let i = 0; i < 10_000 && portico.portico.events.subscribers > before; i += 1) {
        portico.portico.events.record({ type: 'nginx', what: 'restart-failed', detail });
        if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      // Its socket is destroyed (what the kernel still holds for it is the kernel's to drop).
      assert.equal(portico.portico.events.subscribers, before, 'the follower that does not read is still subscribed');
    } finally {
      req.destroy();
    }
  });

  it('records a managed master\'s death and restart', async () => {
    const [master] = await nginxMasters(portico.stateDir);
    assert.ok(master !== undefined, 'no nginx master');
    process.kill(master, 'SIGKILL');
    let restarted: PorticoEvent[] = [];
    const came = await eventually(async () => {
      restarted = (await request(portico.app).get('/v1/events?type=nginx').set(auth).expect(200)).body as PorticoEvent[];
      return restarted.some((e) => e.type === 'nginx' && e.what === 'restarted');
    }, 20_000, 100);
    assert.ok(came, `no restart event: ${JSON.stringify(restarted)}`);
    const exited = restarted.find((e) => e.type === 'nginx' && e.what === 'exited');
    assert.ok(exited !== undefined && exited.type === 'nginx' && exited.pid === master, JSON.stringify(restarted));
    const back = restarted.find((e) => e.type === 'nginx' && e.what === 'restarted');
    assert.ok(back !== undefined && back.type === 'nginx' && back.pid !== master && typeof back.pid === 'number', JSON.stringify(restarted));
  });
});
