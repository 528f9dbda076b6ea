/**
 * Traffic metrics in external mode: the operator's nginx.conf carries the two lines the README
 * gives (copied from the README itself, so the two cannot drift apart), writing into Portico's
 * STATE_DIR; Portico reads them as in managed mode. Without them the metrics stay at zero.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import request from 'supertest';
import { HTTP_LOG_FORMAT, STREAM_LOG_FORMAT } from '../../src/traffic/line.js';
import { registerTrafficMetrics } from '../../src/traffic/metrics.js';
import { eventually, startEcho, type EchoServer } from '../helpers/net.js';
import { REPO, nginxBin, processRuns, startInProcess, tempDir, type InProcess } from '../helpers/portico.js';

const run = promisify(execFile);
const FROM = 28660;

/** The README's external-mode lines for the traffic logs, with its example STATE_DIR replaced. */
async function readmeLines(stateDir: string): Promise<{ stream: string[]; http: string[] }> {
  const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('#### Traffic per resource'));
  const block = /```text\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const lines = block.split('\n').map((l) => l.trim()).filter((l) => /^(log_format|access_log) /.test(l));
  const fix = (l: string) => l.replaceAll('/var/lib/portico', stateDir);
  return { stream: lines.slice(0, 2).map(fix), http: lines.slice(2, 4).map(fix) };
}

function tcpSession(port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = 0;
    const timer = setTimeout(() => socket.destroy(new Error(`tcp ${port}: no echo within 5 s`)), 5000);
    socket.on('connect', () => socket.write(Buffer.alloc(bytes, 0x43)));
    socket.on('data', (data) => {
      got += data.length;
      if (got >= bytes) socket.end();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.on('error', reject);
  });
}

describe('traffic metrics in external mode (the README\'s lines in the operator\'s config)', () => {
  let root: string;
  let portico: InProcess;
  let echo: EchoServer;
  let pidFile: string;
  const registry = new Registry();

  before(async () => {
    root = await tempDir('traffic-external');
    const stateDir = `${root}/state`;
    const streamDir = `${root}/etc/stream.d`;
    await mkdir(streamDir, { recursive: true });
    await mkdir(`${stateDir}/logs`, { recursive: true });
    await mkdir(`${root}/logs`, { recursive: true });
    const lines = await readmeLines(stateDir);
    assert.deepEqual(lines.stream[0], `log_format portico_traffic '${STREAM_LOG_FORMAT}';`, 'the README gives the stream format Portico parses');
    assert.deepEqual(lines.http[0], `log_format portico_traffic '${HTTP_LOG_FORMAT}';`, 'the README gives the HTTP format Portico parses');
    const conf = `${root}/etc/nginx.conf`;
    pidFile = `${root}/nginx.pid`;
    await writeFile(
      conf,
      [
        `pid ${pidFile};`,
        `error_log ${root}/logs/error.log notice;`,
        'worker_processes 1;',
        'events { worker_connections 1024; }',
        'stream {',
        ...lines.stream.map((l) => `    ${l}`),
        '    include stream.d/*.conf;',
        '}',
        'http {',
        ...lines.http.map((l) => `    ${l}`),
        '}',
        '',
      ].join('\n'),
    );
    await run(nginxBin(), ['-p', `${root}/`, '-c', conf, '-e', `${root}/logs/error.log`]);
    echo = await startEcho();
    portico = await startInProcess(
      { NGINX_MODE: 'external', PORT_RANGE: `${FROM}-${FROM + 5}`, NGINX_CONF: conf, NGINX_PID_FILE: pidFile, STREAM_CONFIG_PATH: streamDir, NGINX_ERROR_LOG: `${root}/logs/error.log` },
      { stateDir },
    );
    assert.ok(portico.portico.traffic !== undefined);
    registerTrafficMetrics(registry, portico.portico.traffic);
  });
  after(async () => {
    await portico?.stop();
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '0')).trim());
    if (pid > 0 && (await processRuns(pid))) {
      process.kill(pid, 'SIGQUIT');
      if (!(await eventually(async () => !(await processRuns(pid)), 3000))) process.kill(pid, 'SIGKILL');
    }
    await echo?.close();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('counts a stream\'s sessions and bytes from the operator\'s nginx', async () => {
    const created = await request(portico.app).post('/v1/streams').send({ port: FROM, upstreams: [{ address: `127.0.0.1:${echo.port}` }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const value = async (name: string, labels: Record<string, string>): Promise<number> =>
      (await registry.getSingleMetric(name)?.get())?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
    // Portico's own check of the new listener is a session of 0 bytes.
    assert.ok(await eventually(async () => (await value('portico_stream_sessions_total', { port: String(FROM), protocol: 'tcp' })) >= 1, 8000, 100));
    let bytes = 0;
    for (let i = 0; i < 10; i += 1) bytes += await tcpSession(FROM, 700);
    assert.equal(bytes, 7000);
    assert.ok(await eventually(async () => (await value('portico_stream_sessions_total', { port: String(FROM), protocol: 'tcp' })) >= 11, 8000, 100));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.equal(await value('portico_stream_sessions_total', { port: String(FROM), protocol: 'tcp' }), 11);
    assert.equal(await value('portico_stream_bytes_total', { port: String(FROM), direction: 'in' }), 7000);
    assert.equal(await value('portico_stream_bytes_total', { port: String(FROM), direction: 'out' }), 7000);
  });
});
