/**
 * The backends and probes of test/helpers/backends.ts, run against each other without nginx.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import {
  connectFrom,
  fixtureCert,
  fixturePem,
  parseProxyV1,
  ProbeTimeout,
  startProxyProtocolServer,
  startTaggedServer,
  startTlsServer,
  startUdpEcho,
  timeUntilClosed,
  tlsConnectFails,
  tlsWhoAnswers,
  udpRoundTrip,
  whoAnswers,
} from '../helpers/backends.js';
import { roundTrip, startEcho } from '../helpers/net.js';

/** A port nothing listens on (just released). */
async function closedPort(): Promise<number> {
  const server = await startTaggedServer('gone');
  await server.close();
  return server.port;
}

/** A raw server on 127.0.0.1 for behaviours the helpers do not offer; closed after the suite. */
const raw: Server[] = [];
after(() => Promise.all(raw.map((server) => new Promise((resolve) => server.close(resolve)))));
async function startRaw(onSocket: Parameters<typeof createServer>[1]): Promise<number> {
  const server = createServer(onSocket);
  raw.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('tagged TCP backends', () => {
  it('tell who answers, from any loopback address, and echo after the tag', async () => {
    const server = await startTaggedServer('alpha');
    try {
      assert.equal(await whoAnswers(server.port), 'alpha');
      assert.equal(await whoAnswers(server.port, { localAddress: '127.0.0.2' }), 'alpha');
      assert.equal(await roundTrip(server.port, 'hi', { expectBytes: 'alpha\nhi'.length }), 'alpha\nhi');
      assert.equal(server.accepted(), 3);
    } finally {
      await server.close();
    }
  });

  it('whoAnswers rejects when refused, closed without a line, or silent', async () => {
    await assert.rejects(whoAnswers(await closedPort()), /ECONNREFUSED/);
    const closer = await startRaw((socket) => socket.end());
    await assert.rejects(whoAnswers(closer), /closed before a line/);
    const echo = await startEcho();
    try {
      await assert.rejects(whoAnswers(echo.port, { timeoutMs: 100 }), ProbeTimeout);
    } finally {
      await echo.close();
    }
  });

  it('close() resolves while clients are still connected', async () => {
    const server = await startTaggedServer('held');
    const pending = connectFrom(server.port, '127.0.0.1');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await server.close();
    assert.deepEqual(await pending, { connected: true, reply: 'held\nping' });
  });
});

describe('UDP echo', () => {
  it('sends every datagram back, prefixed with its tag', async () => {
    const echo = await startUdpEcho('u:');
    try {
      assert.equal(await udpRoundTrip(echo.port, 'one'), 'u:one');
      assert.equal(await udpRoundTrip(echo.port, 'two'), 'u:two');
      assert.equal(echo.received(), 2);
    } finally {
      await echo.close();
    }
  });

  it('udpRoundTrip rejects when no reply comes', async () => {
    const echo = await startUdpEcho();
    await echo.close();
    await assert.rejects(udpRoundTrip(echo.port, 'lost', { timeoutMs: 100 }), ProbeTimeout);
  });
});

describe('TLS backends', () => {
  const ca = fixturePem('ca.crt');

  it('tell who answers and with which certificate', async () => {
    const portico = fixtureCert('portico');
    const server = await startTlsServer({ ...portico, tag: 'secure' });
    try {
      const answer = await tlsWhoAnswers(server.port, { ca });
      assert.deepEqual(answer, {
        tag: 'secure',
        peerCertificate: { subjectCN: 'portico.test', fingerprint256: new X509Certificate(portico.cert).fingerprint256 },
      });
      assert.equal((await tlsWhoAnswers(server.port, { ca, servername: 'localhost' })).tag, 'secure');
      assert.equal(server.handshakes(), 2);
    } finally {
      await server.close();
    }
  });

  it('tlsConnectFails names the failure, and rejects when TLS worked', async () => {
    const server = await startTlsServer({ ...fixtureCert('a'), tag: 'a' });
    const plain = await startTaggedServer('plain');
    try {
      assert.match(await tlsConnectFails(server.port, { ca: fixturePem('other-ca.crt'), servername: 'a.example.com' }), /certificate/);
      assert.match(await tlsConnectFails(server.port, { ca, servername: 'b.example.com' }), /altnames|b\.example\.com/);
      assert.match(await tlsConnectFails(plain.port, { ca }), /.+/);
      await assert.rejects(tlsConnectFails(server.port, { ca, servername: 'a.example.com' }), /did not fail, read "a"/);
      assert.equal((await tlsWhoAnswers(server.port, { rejectUnauthorized: false })).peerCertificate.subjectCN, 'a.example.com');
    } finally {
      await Promise.all([server.close(), plain.close()]);
    }
  });
});

describe('PROXY protocol v1', () => {
  it('parses what nginx sends and refuses anything else', () => {
    assert.deepEqual(parseProxyV1('PROXY TCP4 127.0.0.2 127.0.0.1 51234 8080'), {
      family: 'TCP4', source: '127.0.0.2', destination: '127.0.0.1', sourcePort: 51234, destinationPort: 8080,
    });
    assert.deepEqual(parseProxyV1('PROXY TCP6 ::1 ::ffff:10.0.0.1 0 65535\r\n'), {
      family: 'TCP6', source: '::1', destination: '::ffff:10.0.0.1', sourcePort: 0, destinationPort: 65535,
    });
    for (const bad of [
      'PROXY UNKNOWN', 'PROXY TCP4 127.0.0.1 127.0.0.1 1 2 ', 'PROXY  TCP4 127.0.0.1 127.0.0.1 1 2', 'proxy TCP4 127.0.0.1 127.0.0.1 1 2',
      'PROXY TCP4 127.0.0.256 127.0.0.1 1 2', 'PROXY TCP4 127.0.0.01 127.0.0.1 1 2', 'PROXY TCP4 127.0.0 127.0.0.1 1 2',
      'PROXY TCP4 ::1 127.0.0.1 1 2', 'PROXY TCP6 127.0.0.1 ::1 1 2', 'PROXY TCP6 fe80::1%lo ::1 1 2',
      'PROXY TCP4 127.0.0.1 127.0.0.1 65536 2', 'PROXY TCP4 127.0.0.1 127.0.0.1 080 2', 'PROXY TCP4 127.0.0.1 127.0.0.1 -1 2',
      'PROXY TCP4 127.0.0.1 127.0.0.1 1 2\n', 'PROXY TCP5 127.0.0.1 127.0.0.1 1 2', `PROXY TCP6 ${'1:'.repeat(60)}1 ::1 1 2`, '',
    ]) {
      assert.throws(() => parseProxyV1(bad), /invalid PROXY v1 header/, JSON.stringify(bad));
    }
  });

  it('the server records the header and echoes the rest; a bad header closes the connection', async () => {
    const server = await startProxyProtocolServer();
    try {
      const header = 'PROXY TCP4 127.0.0.2 127.0.0.1 40000 9000';
      assert.equal(await roundTrip(server.port, `${header}\r\nhello`, { expectBytes: 5 }), 'hello');
      assert.equal(await roundTrip(server.port, 'PROXY TCP4 1.2.3 4.5.6.7 1 2\r\nhello', { expectBytes: 5 }), '');
      assert.equal(await roundTrip(server.port, 'x'.repeat(200), { expectBytes: 1 }), '');
      assert.deepEqual(server.headers(), [header, 'PROXY TCP4 1.2.3 4.5.6.7 1 2']);
    } finally {
      await server.close();
    }
  });
});

describe('connect probes', () => {
  it('connectFrom tells served, accepted-then-closed and refused apart', async () => {
    const server = await startTaggedServer('t');
    try {
      assert.deepEqual(await connectFrom(server.port, '127.0.0.2', { expectBytes: 't\nping'.length }), { connected: true, reply: 't\nping' });
      assert.deepEqual(await connectFrom(server.port, '127.0.0.3', { timeoutMs: 100 }), { connected: true, reply: 't\nping' });
    } finally {
      await server.close();
    }
    const denier = await startRaw((socket) => socket.destroy());
    assert.deepEqual(await connectFrom(denier, '127.0.0.2'), { connected: true, reply: '' });
    assert.deepEqual(await connectFrom(await closedPort(), '127.0.0.2'), { connected: false, reply: '' });
  });

  it('timeUntilClosed measures an idle timeout, or answers undefined while the connection stays open', async () => {
    const idler = await startRaw((socket) => {
      socket.once('data', () => {
        socket.write('pong\n');
        setTimeout(() => socket.end(), 150);
      });
    });
    const ms = await timeUntilClosed(idler, { maxMs: 1000 });
    assert.ok(ms !== undefined && ms >= 140 && ms < 400, String(ms));
    const echo = await startEcho();
    try {
      assert.equal(await timeUntilClosed(echo.port, { maxMs: 150 }), undefined);
    } finally {
      await echo.close();
    }
    await assert.rejects(timeUntilClosed(await closedPort(), { maxMs: 500 }), /ECONNREFUSED/);
  });
});
