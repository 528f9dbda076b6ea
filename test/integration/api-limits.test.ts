/**
 * The API cannot be held by a client: a connection that sends its headers (or its body) too slowly is
 * answered 408 and closed within the timeout, one client's connections are capped so that another
 * client's request still answers, and the API's connections are capped overall. Real sockets on
 * 127.0.0.0/8: first against the listener itself with small limits, then against a running Portico.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { bindApi, type ApiListener, type Refusal } from '../../src/api/listener.js';
import { clientOf } from '../../src/api/connection-limits.js';
import { exited, spawnPortico, stopNginxUnder, tempDir, type ChildPortico } from '../helpers/portico.js';
import { eventually } from '../helpers/net.js';
import { rm } from 'node:fs/promises';

const PORT = 26600;
const PORTICO_PORT = 26601;

/** A connection from `localAddress`: what it reads, whether and when (ms after opening) it closed. */
interface Probe {
  socket: Socket;
  read(): string;
  closedAfterMs(): number | undefined;
  opened: Promise<void>;
}

function open(port: number, localAddress = '127.0.0.1', first = ''): Probe {
  const started = Date.now();
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  let text = '';
  let closedAfter: number | undefined;
  socket.on('data', (d: Buffer) => (text += d.toString()));
  socket.on('error', () => {});
  socket.on('close', () => (closedAfter = Date.now() - started));
  const opened = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  if (first !== '') void opened.then(() => socket.write(first));
  return { socket, read: () => text, closedAfterMs: () => closedAfter, opened };
}

/** One GET on a fresh connection from `localAddress`: the status line's code, or the error. */
function get(port: number, path: string, localAddress = '127.0.0.1', timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const probe = open(port, localAddress, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    const timer = setTimeout(() => {
      probe.socket.destroy();
      resolve('timeout');
    }, timeoutMs);
    probe.socket.on('close', () => {
      clearTimeout(timer);
      resolve(/^HTTP\/1\.1 (\d{3})/.exec(probe.read())?.[1] ?? `closed: ${JSON.stringify(probe.read())}`);
    });
  });
}

describe('the API listener\'s limits (real sockets, small limits)', () => {
  let listener: ApiListener;
  const refusals: Refusal[] = [];

  before(async () => {
    listener = await bindApi('127.0.0.1', PORT, { headersTimeoutMs: 600, requestTimeoutMs: 1200, maxConnections: 12, maxConnectionsPerClient: 5 }, (r) => refusals.push(r));
    // As express does, the body is read before the answer; /slow answers after the request timeout.
    listener.serve((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.end('ok'), req.url === '/slow' ? 1800 : 0));
    });
  });
  after(async () => {
    await listener?.close();
  });

  it('a silent client, a slow-header client and a slow-body client are each answered 408 and cut within their timeout', async () => {
    const silent = open(PORT);
    const slowHeaders = open(PORT, '127.0.0.1', 'GET / HTTP/1.1\r\n');
    const drip = setInterval(() => slowHeaders.socket.write('X-Drip: 1\r\n'), 100);
    const slowBody = open(PORT, '127.0.0.1', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    const bodyDrip = setInterval(() => slowBody.socket.write('a'), 100);
    try {
      assert.ok(await eventually(() => [silent, slowHeaders, slowBody].every((p) => p.closedAfterMs() !== undefined), 4000, 20), 'a slow client is still connected after 4 s');
    } finally {
      clearInterval(drip);
      clearInterval(bodyDrip);
    }
    for (const [what, probe, limit] of [['silent', silent, 600], ['slow headers', slowHeaders, 600], ['slow body', slowBody, 1200]] as const) {
      assert.match(probe.read(), /^HTTP\/1\.1 408 /, what);
      const after = probe.closedAfterMs() as number;
      assert.ok(after >= limit - 50 && after <= limit + 600, `${what} was cut after ${after} ms (timeout ${limit} ms)`);
    }
    assert.equal(await get(PORT, '/'), '200', 'the listener still answers');
    // The time taken to answer a request that has arrived is not the client's: it is not cut.
    assert.equal(await get(PORT, '/slow', '127.0.0.1', 4000), '200');
  });

  it('a client at its cap gets 429 on its next connection while another client is still answered; a freed slot is usable again', async () => {
    refusals.length = 0;
    const held = Array.from({ length: 5 }, () => open(PORT));
    await Promise.all(held.map((p) => p.opened));
    await sleep(50);
    const refused = open(PORT);
    assert.ok(await eventually(() => refused.closedAfterMs() !== undefined, 2000), 'the 6th connection was not closed');
    assert.match(refused.read(), /^HTTP\/1\.1 429 Too Many Requests\r\n/);
    const body = JSON.parse(refused.read().split('\r\n\r\n')[1] ?? '{}');
    assert.equal(body.error.kind, 'TooManyConnections');
    assert.match(body.error.message, /this client \(127\.0\.0\.1\) has 5 connections open to the API, its limit \(API_MAX_CONNECTIONS_PER_CLIENT\)/);
    assert.equal(await get(PORT, '/healthz', '127.0.0.2'), '200', 'another client is answered');
    // A refused client's request is not served: the cap holds whatever it sends.
    assert.equal(await get(PORT, '/', '127.0.0.1'), '429');
    assert.deepEqual(refusals, [{ client: '127.0.0.1', open: 5, cap: 'client' }], 'one report for the episode, not one per refusal');

    held[0]?.socket.destroy();
    assert.ok(await eventually(async () => (await get(PORT, '/', '127.0.0.1')) === '200', 2000), 'a freed slot was not given back');
    for (const p of held) p.socket.destroy();
  });

  it('the API\'s connections are capped overall: the next one gets 503 whoever opens it', async () => {
    await sleep(50);
    refusals.length = 0;
    const held = ['127.0.0.3', '127.0.0.4', '127.0.0.5'].flatMap((address) => Array.from({ length: 4 }, () => open(PORT, address)));
    await Promise.all(held.map((p) => p.opened));
    await sleep(50);
    assert.equal(await get(PORT, '/', '127.0.0.6'), '503');
    assert.deepEqual(refusals, [{ client: '127.0.0.6', open: 12, cap: 'total' }]);
    for (const p of held) p.socket.destroy();
    assert.ok(await eventually(async () => (await get(PORT, '/', '127.0.0.6')) === '200', 2000));
  });

  it('a flood of 2,000 half-sent requests from one client is refused at once; another client is answered throughout', async () => {
    // Its own listener, with a headers timeout longer than the flood: only the cap can close a connection.
    const flooded = await bindApi('127.0.0.1', PORT + 2, { headersTimeoutMs: 20_000, requestTimeoutMs: 20_000, maxConnections: 100, maxConnectionsPerClient: 5 }, () => {});
    flooded.serve((_req, res) => res.end('ok'));
    const flood: Probe[] = [];
    try {
      const answered: string[] = [];
      for (let i = 0; i < 2000; i++) {
        flood.push(open(PORT + 2, '127.0.0.7', 'GET / HTTP/1.1\r\nHost: x\r\n'));
        if (i % 250 === 0) answered.push(await get(PORT + 2, '/healthz', '127.0.0.8'));
      }
      answered.push(await get(PORT + 2, '/healthz', '127.0.0.8'));
      assert.deepEqual(answered, Array(answered.length).fill('200'));
      const stillOpen = () => flood.filter((p) => p.closedAfterMs() === undefined).length;
      assert.ok(await eventually(() => stillOpen() === 5, 5000), `${stillOpen()} flood connections still open, not the 5 admitted`);
      // The refused were answered 429, or closed without an answer once 64 refusals were already waiting to be read.
      const refused = flood.filter((p) => /^HTTP\/1\.1 429 /.test(p.read())).length;
      assert.ok(refused >= 64, `only ${refused} flood connections were answered 429`);
      assert.equal(flood.filter((p) => / 200 OK/.test(p.read())).length, 0);
    } finally {
      for (const p of flood) p.socket.destroy();
      await flooded.close();
    }
  });
});

describe('clients are counted by IPv4 address and by IPv6 /64', () => {
  it('maps IPv4-mapped IPv6 to IPv4 and IPv6 to its /64', () => {
    assert.equal(clientOf('127.0.0.1'), '127.0.0.1');
    assert.equal(clientOf('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(clientOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientOf('2001:db8:1:2:ffff:ffff:ffff:fffe'), '2001:db8:1:2::/64');
    assert.equal(clientOf('::1'), '0:0:0:0::/64');
    assert.equal(clientOf(undefined), 'unknown');
  });
});

describe('a running Portico bounds its API (API_HEADERS_TIMEOUT, API_MAX_CONNECTIONS_PER_CLIENT)', () => {
  let portico: ChildPortico;
  let stateDir: string;

  before(async () => {
    stateDir = await tempDir('limits');
    portico = await spawnPortico({
      STATE_DIR: stateDir,
      BIND_PORT: String(PORTICO_PORT),
      PORT_RANGE: '26610-26619',
      HTTP_PORT: '26620',
      HTTPS_PORT: '26621',
      API_HEADERS_TIMEOUT: '1s',
      API_REQUEST_TIMEOUT: '2s',
      API_MAX_CONNECTIONS_PER_CLIENT: '4',
    });
  });
  after(async () => {
    if (portico !== undefined) {
      process.kill(portico.pid, 'SIGTERM');
      if (!(await exited(portico.child, 15_000))) process.kill(-portico.pid, 'SIGKILL');
    }
    if (stateDir !== undefined) {
      await stopNginxUnder(stateDir);
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('cuts a slow-header client within API_HEADERS_TIMEOUT and refuses a 5th connection of one client while /healthz answers another', async () => {
    const slow = open(PORTICO_PORT, '127.0.0.1', 'GET /v1/status HTTP/1.1\r\n');
    const drip = setInterval(() => slow.socket.write('X-Drip: 1\r\n'), 200);
    const held = Array.from({ length: 3 }, () => open(PORTICO_PORT));
    await Promise.all([slow, ...held].map((p) => p.opened));
    await sleep(50);
    try {
      assert.equal(await get(PORTICO_PORT, '/healthz', '127.0.0.1'), '429');
      assert.equal(await get(PORTICO_PORT, '/healthz', '127.0.0.2'), '200');
      assert.ok(await eventually(() => slow.closedAfterMs() !== undefined, 3000), 'the slow-header client is still connected after 3 s');
    } finally {
      clearInterval(drip);
      for (const p of held) p.socket.destroy();
    }
    assert.match(slow.read(), /^HTTP\/1\.1 408 /);
    assert.ok((slow.closedAfterMs() as number) < 2000, `cut after ${slow.closedAfterMs()} ms`);
    const lines = portico.output().split('\n').filter((line) => line.includes('"connections-refused"'));
    assert.equal(lines.length, 1, portico.output());
    assert.match(lines[0] as string, /API_MAX_CONNECTIONS_PER_CLIENT reached: refusing 127\.0\.0\.1's new connections/);
  });
});
