/**
 * Per-resource traffic metrics against a real managed nginx: bytes through a real TCP and a real UDP
 * stream, HTTP requests to real apps, counted from the logs nginx writes (buffered) and compared
 * with what the test itself sent and received; a rotation in the middle of traffic loses and
 * double-counts nothing; a deleted stream's and app's series go; hostile Host headers and URIs never
 * become labels. The metrics are read as the /metrics route will: registered in a prom-client
 * Registry of the test's own.
 */
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import request from 'supertest';
import { registerTrafficMetrics } from '../../src/traffic/metrics.js';
import { send } from '../helpers/http.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { startUdpEcho, type UdpEcho } from '../helpers/backends.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';
import { createSocket } from 'node:dgram';

const FROM = 28610;
const HTTP_PORT = 28630;
const HTTPS_PORT = 28631;
const LOOPBACK = '127.0.0.1';

/** A backend that answers the status its path names: GET /status/503 answers 503. */
async function statusBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const status = Number(/^\/status\/(\d{3})$/.exec(req.url ?? '')?.[1] ?? 200);
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One TCP session through `port`: writes `payload`, reads exactly as many bytes back, closes. */
function tcpSession(port: number, payload: Buffer, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: LOOPBACK, port });
    let got = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`tcp ${port}: ${got} of ${payload.length} bytes back within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (data) => {
      got += data.length;
      if (got >= payload.length) socket.end();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Sends `datagrams` datagrams of `size` bytes from one socket to `port`, answers the bytes echoed back. */
async function udpSession(port: number, datagrams: number, size: number, timeoutMs = 5000): Promise<number> {
  const socket = createSocket('udp4');
  let got = 0;
  let replies = 0;
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, () => resolve()));
  try {
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`udp ${port}: ${replies} of ${datagrams} replies within ${timeoutMs} ms`)), timeoutMs);
      socket.on('message', (message) => {
        got += message.length;
        replies += 1;
        if (replies === datagrams) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    // One at a time: nginx's UDP session forwards them in order, and none is lost on loopback.
    for (let i = 0; i < datagrams; i += 1) {
      await new Promise<void>((resolve, reject) => socket.send(Buffer.alloc(size, 0x61 + (i % 26)), port, LOOPBACK, (error) => (error ? reject(error) : resolve())));
      await eventually(() => replies > i, 2000, 2);
    }
    await done;
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
  return got;
}

describe('per-resource traffic metrics (managed nginx, buffered logs)', () => {
  let portico: InProcess;
  let echo: EchoServer;
  let udpEcho: UdpEcho;
  let backend: { port: number; close(): Promise<void> };
  const registry = new Registry();

  before(async () => {
    echo = await startEcho();
    udpEcho = await startUdpEcho();
    backend = await statusBackend();
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 9}`, HTTP_PORT: String(HTTP_PORT), HTTPS_PORT: String(HTTPS_PORT), WORKER_SHUTDOWN_TIMEOUT: '2s' });
    const traffic = portico.portico.traffic;
    assert.ok(traffic !== undefined, 'TRAFFIC_METRICS is on by default');
    registerTrafficMetrics(registry, traffic);
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
    await udpEcho?.close();
    await backend?.close();
  });

  /** The value of `name` with exactly `labels`, 0 when that series does not exist. */
  const value = async (name: string, labels: Record<string, string>): Promise<number> => {
    const metric = await registry.getSingleMetric(name)?.get();
    const found = metric?.values.find((v) => {
      const keys = Object.keys(labels);
      return Object.keys(v.labels).length === keys.length && keys.every((k) => String(v.labels[k]) === labels[k]) && !('le' in v.labels);
    });
    return found?.value ?? 0;
  };
  /** Waits until `name`{labels} reaches `want` (nginx flushes within 1 s, Portico reads every 1 s), then checks it stays there. */
  const settles = async (name: string, labels: Record<string, string>, want: number): Promise<void> => {
    await eventually(async () => (await value(name, labels)) >= want, 8000, 100);
    assert.equal(await value(name, labels), want, `${name}${JSON.stringify(labels)}`);
  };
  const stays = async (checks: Array<[string, Record<string, string>, number]>): Promise<void> => {
    // Two more flush and poll periods: nothing counted twice arrives late.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    for (const [name, labels, want] of checks) assert.equal(await value(name, labels), want, `${name}${JSON.stringify(labels)} after a wait`);
  };
  const labelsOf = async (name: string): Promise<Array<Partial<Record<string, string | number>>>> =>
    ((await registry.getSingleMetric(name)?.get())?.values ?? []).map((v) => v.labels);

  /**
   * Creates a TCP stream on `port` and waits until the session of Portico's own check (verify: each
   * new listener accepts a connection, which nginx logs as a session of 0 bytes) is counted.
   */
  const tcpStream = async (port: number): Promise<void> => {
    const created = await request(portico.app).post('/v1/streams').send({ port, upstreams: [{ address: `${LOOPBACK}:${echo.port}` }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await settles('portico_stream_sessions_total', { port: String(port), protocol: 'tcp' }, 1);
    assert.equal(await value('portico_stream_bytes_total', { port: String(port), direction: 'in' }), 0);
  };

  it('counts TCP sessions and bytes in and out of a stream exactly', async () => {
    await tcpStream(FROM);
    let received = 0;
    let sent = 0;
    for (let i = 0; i < 20; i += 1) {
      const payload = Buffer.alloc(1000 + i * 37, 0x41 + i);
      sent += payload.length;
      received += await tcpSession(FROM, payload);
    }
    assert.equal(received, sent, 'the echo sent every byte back');
    const port = String(FROM);
    // The 20 sessions and Portico's check.
    await settles('portico_stream_sessions_total', { port, protocol: 'tcp' }, 21);
    await settles('portico_stream_bytes_total', { port, direction: 'in' }, sent);
    await settles('portico_stream_bytes_total', { port, direction: 'out' }, received);
    await stays([
      ['portico_stream_sessions_total', { port, protocol: 'tcp' }, 21],
      ['portico_stream_bytes_total', { port, direction: 'in' }, sent],
    ]);
  });

  it('counts UDP sessions and their bytes ($protocol UDP), each session logged when it idles out', async () => {
    const port = FROM + 1;
    const created = await request(portico.app).post('/v1/streams').send({ port, protocol: 'udp', idleTimeout: '2s', upstreams: [{ address: `${LOOPBACK}:${udpEcho.port}` }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    let received = 0;
    // Each session from a socket of its own; nginx ends one after idleTimeout without datagrams (2 s:
    // long enough that a loaded machine's pause between two datagrams does not split a session).
    for (let i = 0; i < 3; i += 1) received += await udpSession(port, 5, 100 + i);
    const sent = 5 * (100 + 101 + 102);
    assert.equal(received, sent);
    await settles('portico_stream_sessions_total', { port: String(port), protocol: 'udp' }, 3);
    await settles('portico_stream_bytes_total', { port: String(port), direction: 'in' }, sent);
    await settles('portico_stream_bytes_total', { port: String(port), direction: 'out' }, received);
  });

  it('counts an app\'s requests by status class, with the latency histogram\'s count', async () => {
    const res = await request(portico.app)
      .post('/v1/apps')
      .send({ name: 'shop', serverNames: ['shop.test', 'www.shop.test'], routes: [{ upstreams: [{ address: `${LOOPBACK}:${backend.port}` }] }] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const want: Record<string, number> = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
    const statuses = [200, 201, 204, 301, 302, 404, 410, 429, 500, 503];
    for (let i = 0; i < 60; i += 1) {
      const status = statuses[i % statuses.length] as number;
      const answer = await send({ port: HTTP_PORT, host: i % 2 === 0 ? 'shop.test' : 'www.shop.test', path: `/status/${status}` });
      assert.equal(answer.status, status);
      want[`${Math.floor(status / 100)}xx`] = (want[`${Math.floor(status / 100)}xx`] ?? 0) + 1;
    }
    for (const [code, n] of Object.entries(want)) if (n > 0) await settles('portico_app_requests_total', { app: 'shop', code }, n);
    const histogram = await registry.getSingleMetric('portico_app_request_seconds')?.get();
    const count = (histogram?.values as Array<{ metricName?: string; labels: Record<string, string | number>; value: number }> | undefined)?.find((v) => v.metricName === 'portico_app_request_seconds_count' && v.labels.app === 'shop');
    assert.equal(count?.value, 60);
    const inf = (histogram?.values as Array<{ metricName?: string; labels: Record<string, string | number>; value: number }> | undefined)?.find((v) => v.metricName === 'portico_app_request_seconds_bucket' && v.labels.app === 'shop' && v.labels.le === '+Inf');
    assert.equal(inf?.value, 60);
    assert.equal(await value('portico_app_requests_total', { app: 'shop', code: '1xx' }), 0);
  });

  it('hostile Host headers and URIs never become labels: only app names Portico knows', async () => {
    const before = await value('portico_app_requests_total', { app: 'shop', code: '2xx' });
    const hostile = [
      'evil.test',
      'shop.test.evil.test',
      'app="x"',
      `${'a'.repeat(200)}.test`,
      'SHOP.TEST',
      'shop.test:1234',
    ];
    for (const host of hostile) {
      await rawRequest(LOOPBACK, HTTP_PORT, `GET /status/200?app="pwn"} HTTP/1.1\r\nHost: ${host}\r\nConnection: close`).catch(() => undefined);
    }
    await rawRequest(LOOPBACK, HTTP_PORT, 'GET /"}\\n{app="pwn HTTP/1.1\r\nHost: shop.test\r\nConnection: close').catch(() => undefined);
    await rawRequest(LOOPBACK, HTTP_PORT, 'GET / HTTP/1.1\r\nHost: "quoted"\r\nConnection: close').catch(() => undefined);
    await rawRequest(LOOPBACK, HTTP_PORT, 'GET / HTTP/1.0').catch(() => undefined);
    // SHOP.TEST and shop.test:1234 are shop's (nginx matches names without case and port), plus the hostile URI to shop.test.
    await eventually(async () => (await value('portico_app_requests_total', { app: 'shop', code: '2xx' })) + (await value('portico_app_requests_total', { app: 'shop', code: '4xx' })) >= before + 3, 8000, 100);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const apps = new Set((await labelsOf('portico_app_requests_total')).map((l) => l.app));
    assert.deepEqual([...apps], ['shop']);
    const text = await registry.metrics();
    assert.doesNotMatch(text, /evil|pwn|quoted|aaaa/);
    assert.ok((await value('portico_traffic_lines_skipped_total', { reason: 'unknown_resource' })) >= 4, 'requests no app took are counted as skipped');
    assert.equal(await value('portico_traffic_lines_skipped_total', { reason: 'malformed' }), 0);
  });

  it('a rotation in the middle of traffic (rename, POST /v1/logs/reopen, and a reload) loses and double-counts nothing', async () => {
    const port = FROM + 2;
    await tcpStream(port);
    const base = {
      sessions: await value('portico_stream_sessions_total', { port: String(port), protocol: 'tcp' }),
      ok: await value('portico_app_requests_total', { app: 'shop', code: '2xx' }),
    };
    const logs = `${portico.stateDir}/logs`;
    let sessions = 0;
    let requests = 0;
    let bytes = 0;
    let running = true;
    const tcpLoad = (async () => {
      for (let i = 0; running && i < 100_000; i += 1) {
        bytes += await tcpSession(port, Buffer.alloc(500, 0x42));
        sessions += 1;
      }
    })();
    const httpLoad = (async () => {
      for (let i = 0; running && i < 100_000; i += 1) {
        const answer = await send({ port: HTTP_PORT, host: 'shop.test', path: '/status/200' });
        assert.equal(answer.status, 200);
        requests += 1;
      }
    })();
    try {
      await new Promise((resolve) => setTimeout(resolve, 700));
      for (let round = 1; round <= 2; round += 1) {
        await rename(`${logs}/traffic-stream.log`, `${logs}/traffic-stream.log.${round}`);
        await rename(`${logs}/traffic-http.log`, `${logs}/traffic-http.log.${round}`);
        await new Promise((resolve) => setTimeout(resolve, 400));
        const reopened = await request(portico.app).post('/v1/logs/reopen');
        assert.equal(reopened.status, 200, JSON.stringify(reopened.body));
        await new Promise((resolve) => setTimeout(resolve, 700));
      }
      // A reload: old workers flush their buffers as they exit, new ones write to the same files.
      await rename(`${logs}/traffic-http.log`, `${logs}/traffic-http.log.3`);
      assert.equal((await request(portico.app).post('/v1/streams').send({ port: port + 1, upstreams: [{ address: `${LOOPBACK}:${echo.port}` }] })).status, 201);
      await new Promise((resolve) => setTimeout(resolve, 700));
    } finally {
      running = false;
      await Promise.all([tcpLoad, httpLoad]);
    }
    assert.ok(sessions > 20 && requests > 20, `traffic ran: ${sessions} sessions, ${requests} requests`);
    await settles('portico_stream_sessions_total', { port: String(port), protocol: 'tcp' }, base.sessions + sessions);
    await settles('portico_stream_bytes_total', { port: String(port), direction: 'out' }, bytes);
    await settles('portico_app_requests_total', { app: 'shop', code: '2xx' }, base.ok + requests);
    await stays([
      ['portico_stream_sessions_total', { port: String(port), protocol: 'tcp' }, base.sessions + sessions],
      ['portico_app_requests_total', { app: 'shop', code: '2xx' }, base.ok + requests],
    ]);
  });

  it('a deleted stream\'s and app\'s series disappear', async () => {
    assert.ok((await labelsOf('portico_stream_sessions_total')).some((l) => l.port === String(FROM)));
    assert.equal((await request(portico.app).delete(`/v1/streams/${FROM}`)).status, 204);
    assert.ok(
      await eventually(async () => !(await labelsOf('portico_stream_sessions_total')).some((l) => l.port === String(FROM)), 5000, 100),
      'the stream\'s sessions series is gone',
    );
    assert.ok(!(await labelsOf('portico_stream_bytes_total')).some((l) => l.port === String(FROM)));
    assert.ok((await labelsOf('portico_stream_sessions_total')).some((l) => l.port === String(FROM + 1)), 'the other streams keep theirs');
    const deleted = await request(portico.app).delete('/v1/apps/shop');
    assert.ok([200, 204].includes(deleted.status), JSON.stringify(deleted.body));
    assert.ok(await eventually(async () => (await labelsOf('portico_app_requests_total')).length === 0, 5000, 100));
    assert.ok(!(await registry.metrics()).includes('app="shop"'));
  });

  it('stops with Portico: no file or timer left', async () => {
    const traffic = portico.portico.traffic;
    assert.ok(traffic !== undefined);
    await traffic.stop();
    // A second stop (Portico's close) is harmless.
    await traffic.stop();
  });
});
