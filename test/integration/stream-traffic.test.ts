/**
 * Stream features proven with real traffic through the nginx Portico manages: every stream below is
 * created through POST /v1/streams, read back through GET as exactly what was sent, and then carries
 * bytes between sockets on 127.0.0.0/8. Counts come from the answers clients get.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import request from 'supertest';
import {
  connectFrom,
  parseProxyV1,
  startProxyProtocolServer,
  startTaggedServer,
  startUdpEcho,
  timeUntilClosed,
  udpRoundTrip,
  whoAnswers,
  type TaggedServer,
} from '../helpers/backends.js';
import { eventually } from '../helpers/net.js';
import { startInProcess, type InProcess } from '../helpers/portico.js';

const FROM = 27000;

describe('stream traffic through a managed nginx', () => {
  let portico: InProcess;
  const cleanups: Array<() => Promise<void> | void> = [];
  const created: Array<Record<string, unknown>> = [];

  /** Registers `close` to run in after(), once, whatever it throws. */
  const track = <T extends { close(): Promise<void> | void }>(thing: T): T => {
    cleanups.push(() => thing.close());
    return thing;
  };
  const tagged = async (tag: string): Promise<TaggedServer> => track(await startTaggedServer(tag));
  const upstream = (server: { port: number }, extra: Record<string, unknown> = {}) => ({ address: `127.0.0.1:${server.port}`, ...extra });

  /** POSTs `body`, then checks GET /v1/streams/:port answers exactly the JSON that was sent. */
  const create = async (body: Record<string, unknown>): Promise<number> => {
    await request(portico.app).post('/v1/streams').send(body).expect(201);
    created.push(body);
    const read = await request(portico.app).get(`/v1/streams/${body.port}`).expect(200);
    assert.deepEqual(read.body, body);
    return body.port as number;
  };

  /** Who answers `count` sequential connections to `port`, in order. */
  const answers = async (port: number, count: number, localAddress?: string): Promise<string[]> => {
    const tags: string[] = [];
    for (let i = 0; i < count; i += 1) tags.push(await whoAnswers(port, localAddress === undefined ? {} : { localAddress }));
    return tags;
  };
  const tally = (tags: string[]): Record<string, number> =>
    tags.reduce<Record<string, number>>((counts, tag) => ({ ...counts, [tag]: (counts[tag] ?? 0) + 1 }), {});

  /** A connection through `port` held open after its backend's tag arrived; destroyed in after() at the latest. */
  const hold = (port: number): Promise<{ tag: string; socket: Socket }> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      cleanups.push(() => void socket.destroy());
      let text = '';
      const timer = setTimeout(() => reject(new Error(`no tag through ${port} within 2000 ms`)), 2000);
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (!text.includes('\n')) return;
        clearTimeout(timer);
        resolve({ tag: text.trim(), socket });
      });
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });

  before(async () => {
    // A UDP session lasts until nginx's proxy_timeout (10 min): the graceful stop would wait out the
    // whole worker_shutdown_timeout for the datagram test's session.
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 99}`, WORKER_SHUTDOWN_TIMEOUT: '3s' });
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve().then(cleanup).catch(() => {});
    await portico?.stop();
  });

  it('a UDP stream carries a datagram to its UDP backend and back', async () => {
    const echo = track(await startUdpEcho('udp:'));
    const port = await create({ port: FROM + 1, protocol: 'udp', upstreams: [upstream(echo)] });
    assert.equal(await udpRoundTrip(port, 'datagram'), 'udp:datagram');
    assert.equal(echo.received(), 1);
  });

  it('a tcp+udp stream carries a TCP round trip and a UDP datagram on the same port', async () => {
    const backend = await tcpAndUdpOnOnePort();
    const port = await create({ port: FROM + 2, protocol: 'tcp+udp', upstreams: [upstream(backend)] });
    assert.deepEqual(await connectFrom(port, '127.0.0.1', { expectBytes: 8 }), { connected: true, reply: 'tcp\nping' });
    assert.equal(await udpRoundTrip(port, 'datagram'), 'udp:datagram');
  });

  it('a stream with listenAddress 127.0.0.3 is served on 127.0.0.3 and refused on 127.0.0.1', async () => {
    const backend = await tagged('listen');
    const port = await create({ port: FROM + 3, listenAddress: '127.0.0.3', upstreams: [upstream(backend)] });
    assert.equal(await whoAnswers(port, { host: '127.0.0.3' }), 'listen');
    assert.deepEqual(await connectFrom(port, '127.0.0.1'), { connected: false, reply: '' });
  });

  it('round robin with weights 1:1:2 gives 400 connections 25%, 25% and 50% (within 5 points)', async () => {
    const [a, b, c] = [await tagged('a'), await tagged('b'), await tagged('c')];
    const port = await create({
      port: FROM + 4,
      protocol: 'tcp',
      balance: 'round_robin',
      upstreams: [upstream(a, { weight: 1 }), upstream(b, { weight: 1, backup: false }), upstream(c, { weight: 2 })],
    });
    const counts = tally(await answers(port, 400));
    for (const [tag, share] of [['a', 0.25], ['b', 0.25], ['c', 0.5]] as const) {
      assert.ok(Math.abs((counts[tag] ?? 0) / 400 - share) <= 0.05, `${tag} got ${counts[tag]} of 400: ${JSON.stringify(counts)}`);
    }
  });

  it('a backup upstream gets no connection while the primaries are up, and answers every client once they are closed', async () => {
    const [p1, p2, spare] = [await tagged('p1'), await tagged('p2'), await tagged('spare')];
    const primary = { maxFails: 1, failTimeout: '2s', backup: false };
    const port = await create({
      port: FROM + 5,
      upstreams: [upstream(p1, primary), upstream(p2, primary), upstream(spare, { backup: true })],
    });
    assert.deepEqual(Object.keys(tally(await answers(port, 20))).sort(), ['p1', 'p2']);
    assert.equal(spare.accepted(), 0);
    await p1.close();
    await p2.close();
    // nginx may first try a dead primary and retry on the backup: the client sees only the backup.
    assert.deepEqual(tally(await answers(port, 20)), { spare: 20 });
    assert.ok(spare.accepted() >= 20);
  });

  it('least_conn sends new connections to the backend with fewer active connections', async () => {
    const [a, b] = [await tagged('a'), await tagged('b')];
    const port = await create({ port: FROM + 6, balance: 'least_conn', upstreams: [upstream(a), upstream(b)] });
    // 20 connections opened at once are held, then those on "a" closed. Opening them at once makes
    // more than one nginx worker take part: the count that matters is the group's, not one worker's.
    const held = await Promise.all(Array.from({ length: 20 }, () => hold(port)));
    for (const h of held.filter((h) => h.tag === 'a')) h.socket.destroy();
    const onB = held.filter((h) => h.tag === 'b').length;
    assert.ok(onB > 0 && (await eventually(() => a.active() === 0 && b.active() === onB, 3000)), `held: ${held.map((h) => h.tag)}`);
    const next = await Promise.all(Array.from({ length: onB }, () => hold(port)));
    assert.deepEqual(next.map((h) => h.tag), next.map(() => 'a'), `"b" holds ${onB} connections and "a" fewer: each new one goes to "a"`);
    for (const h of [...held, ...next]) h.socket.destroy();
  });

  it('hash_remote_addr sends all connections from one source address to one backend, and 20 addresses to several', async () => {
    const [a, b, c] = [await tagged('a'), await tagged('b'), await tagged('c')];
    const port = await create({ port: FROM + 7, balance: 'hash_remote_addr', upstreams: [upstream(a), upstream(b), upstream(c)] });
    const chosen = new Set<string>();
    for (let host = 1; host <= 20; host += 1) {
      const tags = new Set(await answers(port, 10, `127.0.0.${host}`));
      assert.equal(tags.size, 1, `127.0.0.${host} reached ${[...tags].join(', ')}`);
      chosen.add([...tags][0] as string);
    }
    assert.ok(chosen.size > 1, `20 addresses all reached ${[...chosen].join(', ')}`);
  });

  it('random balancing gives every backend some of 300 connections', async () => {
    const [a, b, c] = [await tagged('a'), await tagged('b'), await tagged('c')];
    const port = await create({ port: FROM + 8, balance: 'random', upstreams: [upstream(a), upstream(b), upstream(c)] });
    const counts = tally(await answers(port, 300));
    assert.deepEqual(Object.keys(counts).sort(), ['a', 'b', 'c'], JSON.stringify(counts));
  });

  /**
   * Connects from `localAddress` and sends 'ping'; answers the reply and whether nginx closed the
   * connection well before the probe's timeout. The backend writes its tag first, so an empty reply
   * means the connection never reached it.
   */
  const probeFrom = async (port: number, localAddress: string) => {
    const start = performance.now();
    const result = await connectFrom(port, localAddress, { timeoutMs: 5000, expectBytes: 'ruled\nping'.length });
    return { ...result, closedByPeer: result.reply === '' && performance.now() - start < 4000 };
  };

  it('allow 127.0.0.1 with deny all serves 127.0.0.1 and closes 127.0.0.2 without a reply', async () => {
    const backend = await tagged('ruled');
    const port = await create({ port: FROM + 9, upstreams: [upstream(backend)], allow: ['127.0.0.1'], deny: ['all'] });
    assert.deepEqual(await probeFrom(port, '127.0.0.1'), { connected: true, reply: 'ruled\nping', closedByPeer: false });
    assert.deepEqual(await probeFrom(port, '127.0.0.2'), { connected: true, reply: '', closedByPeer: true });
  });

  it('deny 127.0.0.2 alone closes 127.0.0.2 and serves 127.0.0.1 and 127.0.0.3', async () => {
    const backend = await tagged('ruled');
    const port = await create({ port: FROM + 10, upstreams: [upstream(backend)], deny: ['127.0.0.2'] });
    assert.deepEqual(await probeFrom(port, '127.0.0.2'), { connected: true, reply: '', closedByPeer: true });
    for (const host of ['127.0.0.1', '127.0.0.3']) {
      assert.deepEqual(await probeFrom(port, host), { connected: true, reply: 'ruled\nping', closedByPeer: false }, host);
    }
  });

  it('idleTimeout 1s closes an idle connection after about a second; without it the connection outlives 2 s', async () => {
    const backend = await tagged('idle');
    const short = await create({ port: FROM + 11, upstreams: [upstream(backend)], idleTimeout: '1s' });
    const plain = await create({ port: FROM + 12, upstreams: [upstream(backend)] });
    const [closedAfter, plainClosedAfter] = await Promise.all([
      timeUntilClosed(short, { maxMs: 4000 }),
      timeUntilClosed(plain, { maxMs: 2500 }),
    ]);
    assert.ok(closedAfter !== undefined && closedAfter >= 800 && closedAfter <= 3000, `closed after ${closedAfter} ms`);
    assert.equal(plainClosedAfter, undefined, `the stream without idleTimeout closed after ${plainClosedAfter} ms`);
  });

  it('connectTimeout 500ms closes a client whose upstream never completes the handshake; by default it still waits at 2 s', async () => {
    const silent = track(await startSilentListener());
    const quick = await create({ port: FROM + 13, upstreams: [upstream(silent)], connectTimeout: '500ms' });
    const patient = await create({ port: FROM + 14, upstreams: [upstream(silent)] });
    const [quickClosedAfter, patientClosedAfter] = await Promise.all([
      timeUntilClosed(quick, { maxMs: 4000 }),
      timeUntilClosed(patient, { maxMs: 2500 }),
    ]);
    assert.ok(quickClosedAfter !== undefined && quickClosedAfter >= 300 && quickClosedAfter <= 3000, `closed after ${quickClosedAfter} ms`);
    assert.equal(patientClosedAfter, undefined, `the stream without connectTimeout closed after ${patientClosedAfter} ms`);
  });

  it('proxyProtocol sends a PROXY v1 header with the client address and port and the stream port, then the payload', async () => {
    const backend = track(await startProxyProtocolServer());
    const port = await create({ port: FROM + 15, upstreams: [upstream(backend)], proxyProtocol: true });
    const { localPort, reply } = await sendFrom(port, '127.0.0.5', 'payload');
    assert.equal(reply, 'payload');
    // Every connection gets a valid header (Portico's own check of the new listener is one of them).
    const ours = backend.headers().map(parseProxyV1).filter((header) => header.sourcePort === localPort);
    assert.deepEqual(ours, [{ family: 'TCP4', source: '127.0.0.5', sourcePort: localPort, destination: '127.0.0.1', destinationPort: port }]);
  });

  it('/getstreams lists every stream, one with several upstreams by its group portico_stream_<port>', async () => {
    const [a, b] = [await tagged('a'), await tagged('b')];
    const port = await create({ port: FROM + 16, upstreams: [upstream(a), upstream(b)] });
    const single = await create({ port: FROM + 17, upstreams: [upstream(a)] });
    const legacy = await request(portico.app).get('/getstreams').expect(200);
    const listens = legacy.body.map((s: { listen: number }) => s.listen);
    assert.deepEqual(listens, created.map((s) => s.port as number).sort((x, y) => x - y));
    const entry = (listen: number) => legacy.body.find((s: { listen: number }) => s.listen === listen);
    assert.deepEqual(entry(port), { listen: port, proxy_pass: `portico_stream_${port}` });
    assert.deepEqual(entry(single), { listen: single, proxy_pass: `127.0.0.1:${a.port}` });
  });

  /** A tagged TCP server and a UDP echo on the same port number (retried while that UDP port is taken). */
  async function tcpAndUdpOnOnePort(): Promise<{ port: number }> {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const tcp = await tagged('tcp');
      const udp = createSocket('udp4');
      const bound = await new Promise<boolean>((resolve) => {
        udp.once('error', () => resolve(false));
        udp.bind(tcp.port, '127.0.0.1', () => resolve(true));
      });
      if (!bound) {
        udp.close();
        continue;
      }
      udp.on('message', (message, from) => udp.send(Buffer.concat([Buffer.from('udp:'), message]), from.port, from.address));
      track({ close: () => new Promise<void>((resolve) => (udp as UdpSocket).close(() => resolve())) });
      return { port: tcp.port };
    }
    throw new Error('no port free for both TCP and UDP in 5 attempts');
  }
});

/**
 * A listener that never accepts: it listens (backlog 1) in a worker thread whose event loop is kept
 * blocked, and its accept queue is filled, so Linux drops further SYNs and connecting to it hangs.
 */
async function startSilentListener(): Promise<{ port: number; close(): Promise<void> }> {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const server = require('node:net').createServer();
     server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
       parentPort.postMessage(server.address().port);
       const stop = new Int32Array(workerData);
       for (let i = 0; i < 1200 && Atomics.load(stop, 0) === 0; i += 1) Atomics.wait(stop, 0, 0, 100);
       server.close();
     });`,
    { eval: true, workerData: stop.buffer },
  );
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const port = await new Promise<number>((resolve, reject) => worker.once('message', resolve).once('error', reject));
  const queued: Socket[] = [];
  const close = async (): Promise<void> => {
    for (const socket of queued) socket.destroy();
    Atomics.store(stop, 0, 1);
    Atomics.notify(stop, 0);
    await exited;
  };
  for (let i = 0; i < 8; i += 1) {
    const socket = connect({ host: '127.0.0.1', port });
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 300);
      const settle = (ok: boolean): void => {
        clearTimeout(timer);
        resolve(ok);
      };
      socket.once('connect', () => settle(true)).once('error', () => settle(false));
    });
    if (!connected) {
      socket.destroy();
      break;
    }
    queued.push(socket);
  }
  if (queued.length === 8) {
    await close();
    throw new Error(`127.0.0.1:${port} kept accepting: its accept queue never filled`);
  }
  return { port, close };
}

/** Connects to `port` from `localAddress`, sends `payload` and answers what comes back (as many bytes) and the client's port. */
function sendFrom(port: number, localAddress: string, payload: string): Promise<{ localPort: number; reply: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply through ${port} within 2000 ms`));
    }, 2000);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.length < payload.length) return;
      clearTimeout(timer);
      resolve({ localPort: socket.localPort as number, reply });
      socket.destroy();
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
