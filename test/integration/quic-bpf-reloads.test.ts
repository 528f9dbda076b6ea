/**
 * `quic_bpf on` across Portico's reloads (SIGHUP, then the early SIGQUIT of the old workers) while
 * long-lived connections keep old workers draining. With quic_bpf every generation of workers gets
 * UDP sockets of its own (one per worker, and each of its processes holds them all until the last
 * exits), and nginx keeps them in one eBPF socket map per QUIC address, of 4 × worker_processes
 * sockets. A reload adds the new workers' sockets beside the current ones and those of every
 * generation still draining: with a third generation draining the map is full, nginx logs "quic
 * bpf failed to update socket map" and "ngx_quic_bpf_module failed to initialize properly,
 * ignored", and starts the new workers anyway, their QUIC packets routed by the kernel's hash
 * instead. Portico cannot prevent it (the size is nginx's); it applies the change and warns with
 * nginx's lines. Needs a host whose probe lets
 * quic_bpf on (skipped otherwise). Ports 29700-29711 only (streams from 29700, HTTP 29710, HTTPS
 * and QUIC 29711).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import request from 'supertest';
import { startPortico, type RunningPortico } from '../../src/portico.js';
import { loadSettings } from '../../src/settings.js';
import { fixtureCert } from '../helpers/backends.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { nginxBin, nginxMasters, stopNginxUnder } from '../helpers/portico.js';
import { currentWorkers, drainingWorkers, startLeanBackend, type LeanBackend } from '../helpers/reload-load.js';

const STREAM = 29700;
const HTTP = 29710;
const HTTPS = 29711;
const PORTICO = fixtureCert('portico');
const OVERFLOW = 'quic bpf failed to update socket map';

describe('quic_bpf across reloads while old workers drain (managed nginx)', () => {
  let stateDir: string;
  let running: RunningPortico | undefined;
  let backend: LeanBackend;
  let echo: EchoServer;
  const held: Socket[] = [];
  const logged: Array<{ level: number; msg: string; nginx?: string[] }> = [];

  before(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'portico-quic-bpf-'));
    backend = await startLeanBackend('h3');
    echo = await startEcho();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logged.push(JSON.parse(line) as (typeof logged)[number]);
        done();
      },
    });
    const settings = loadSettings({
      NGINX_BIN: nginxBin(),
      STATE_DIR: stateDir,
      PORT_RANGE: '29700-29709',
      HTTP_PORT: String(HTTP),
      HTTPS_PORT: String(HTTPS),
      // Old workers live on for their connections: longer than the test.
      WORKER_SHUTDOWN_TIMEOUT: '60s',
      NGINX_STATUS_PORT: 'off',
    });
    running = await startPortico(settings, { log: pino({ level: 'info' }, sink) });
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    await running?.close().catch(() => undefined);
    await stopNginxUnder(stateDir);
    await rm(stateDir, { recursive: true, force: true });
    await backend?.close();
    await echo?.close();
  });

  it('with up to 2 generations of old workers draining, each reload keeps QUIC routed by eBPF; with a third, nginx says its socket map is full, the change still applies, and Portico warns with nginx\'s lines; a reload after they left is clean again', async (t) => {
    const portico = running as RunningPortico;
    if (!/^quic_bpf on;$/m.test(await readFile(`${stateDir}/nginx.conf`, 'utf8'))) return t.skip('quic_bpf is off: this host refuses nginx\'s eBPF');
    const api = request(portico.app);
    await api.post('/v1/certificates').send({ id: 'portico', certificate: PORTICO.cert, key: PORTICO.key }).expect(201);
    const app = (generation: number) => ({
      serverNames: ['portico.test'],
      routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }], headers: { 'X-Generation': `g${generation}` } }],
      tls: { certificate: 'portico', http3: true },
    });
    await api.put('/v1/apps/h3').send(app(0)).expect(201);
    await api.post('/v1/streams').send({ port: STREAM, backend: `127.0.0.1:${echo.port}` }).expect(201);
    const [master] = await nginxMasters(stateDir);
    assert.ok(master !== undefined);
    const perGeneration = (await currentWorkers(master)).length;
    /** UDP sockets bound to HTTPS (the current workers' and those of every generation still draining). */
    const quicSockets = async (): Promise<number> => {
      const local = `:${HTTPS.toString(16).toUpperCase().padStart(4, '0')} `;
      return (await readFile('/proc/net/udp', 'utf8')).split('\n').filter((line) => line.trim().split(/\s+/)[1]?.endsWith(local.trim())).length;
    };
    const overflowLines = async (): Promise<number> => (await readFile(`${stateDir}/logs/error.log`, 'utf8')).split('\n').filter((l) => l.includes(OVERFLOW)).length;
    const rows: Array<{ reload: number; draining: number; sockets: number; overflowed: boolean; status: number; error: string }> = [];
    // Enough reloads to fill the map even if only one worker of each generation holds a connection.
    for (let reload = 1; reload <= 4 * perGeneration + 2 && !rows.some((r) => r.overflowed); reload += 1) {
      // Long-lived connections through a stream, spread over the current workers: they keep them draining.
      for (let i = 0; i < 4 * perGeneration; i += 1) held.push(connect({ host: '127.0.0.1', port: STREAM }).on('error', () => {}));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [draining, sockets, before] = await Promise.all([drainingWorkers(master), quicSockets(), overflowLines()]);
      const { status, body } = await api.put('/v1/apps/h3').send(app(reload));
      rows.push({ reload, draining, sockets, overflowed: (await overflowLines()) > before, status, error: status === 200 ? '' : JSON.stringify(body) });
    }
    t.diagnostic(`worker_processes ${perGeneration} (socket map of ${4 * perGeneration}); ${rows.map((r) => `reload ${r.reload}: ${r.draining} workers draining, ${r.sockets} QUIC sockets before, ${r.overflowed ? 'map full' : 'routed'}, ${r.status}`).join('; ')}`);
    for (const row of rows) {
      assert.equal(row.status, 200, `reload ${row.reload}: the change did not apply: ${row.error}`);
      // When the map fills is nginx's accounting (each generation's sockets stay in it until its last
      // old worker exits; a worker still starting counts too): shown in the diagnostic above, not asserted.
    }
    assert.ok(rows.some((r) => r.overflowed), 'the socket map never filled');
    const warning = logged.find((l) => l.level === 40 && l.msg.startsWith('nginx took the new config but logged errors while loading it'));
    assert.ok(warning !== undefined, 'Portico did not warn');
    assert.ok(warning.nginx?.some((line) => line.includes(OVERFLOW) && line.startsWith('nginx: [emerg]')), JSON.stringify(warning));
    assert.ok(warning.nginx?.some((line) => line.includes('ngx_quic_bpf_module failed to initialize properly, ignored')), JSON.stringify(warning));

    for (const socket of held.splice(0)) socket.destroy();
    assert.ok(await eventually(async () => (await drainingWorkers(master)) === 0, 10_000), 'old workers still draining after their connections closed');
    const before = await overflowLines();
    const warnings = logged.filter((l) => l.level === 40).length;
    await api.put('/v1/apps/h3').send(app(100)).expect(200);
    assert.equal(await overflowLines(), before, 'a reload after the old workers left still overflowed');
    assert.equal(logged.filter((l) => l.level === 40).length, warnings);
  });
});
