/**
 * Managed mode as a process: the data plane outlives a crash of the control plane, a restarted
 * Portico adopts the running nginx, a killed nginx comes back, SIGTERM stops both.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { accepts, eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { REPO, exited, nginxBin, nginxMasters, discardPortico, processRuns, spawnPortico, stopNginxUnder, tempDir, type ChildPortico } from '../helpers/portico.js';

const FROM = 24000;
const TO = 24009;
const API_PORT = 26001;

async function api(url: string, path: string, options: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, {
    method: options.method ?? 'GET',
    ...(options.body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(options.body) }),
  });
  return { status: res.status, body: await res.json() };
}

/** Round trips through `port` every 20 ms until stopped; counts the failures. */
function keepTalking(port: number): { stop(): Promise<{ ok: number; failed: number }> } {
  let running = true;
  let ok = 0;
  let failed = 0;
  const loop = (async () => {
    const deadline = Date.now() + 30_000;
    while (running && Date.now() < deadline) {
      try {
        if ((await roundTrip(port, 'tick', { timeoutMs: 1000 })) === 'tick') ok += 1;
        else failed += 1;
      } catch {
        failed += 1;
      }
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, failed };
    },
  };
}

describe('managed nginx lifecycle', () => {
  let echo: EchoServer;
  let stateDir: string;
  let env: Record<string, string>;
  let portico: ChildPortico | undefined;

  before(async () => {
    echo = await startEcho();
    stateDir = await tempDir('lifecycle');
    env = { PORT_RANGE: `${FROM}-${TO}`, BIND_PORT: String(API_PORT), STATE_DIR: stateDir };
  });
  after(async () => {
    await discardPortico(portico, stateDir);
    await echo?.close();
  });

  it('kill -9 of Portico\'s process group leaves nginx serving; a restart adopts it, lists everything, and traffic never stops', async () => {
    portico = await spawnPortico(env);
    for (const port of [FROM, FROM + 1]) {
      assert.equal((await api(portico.url, `/createstream/${port}/127.0.0.1:${echo.port}`)).status, 200);
    }
    const [master] = await nginxMasters(stateDir);
    assert.ok(master !== undefined, 'no nginx master runs');
    const long = connect({ host: '127.0.0.1', port: FROM + 1 });
    await new Promise((resolve) => long.once('connect', resolve));
    const talk = keepTalking(FROM);

    process.kill(-portico.pid, 'SIGKILL');
    assert.ok(await exited(portico.child), 'portico survived kill -9');
    await sleep(300);
    assert.ok(await processRuns(master), 'nginx died with portico');
    assert.equal(await roundTrip(FROM, 'orphaned but serving'), 'orphaned but serving');

    portico = await spawnPortico(env);
    const streams = await api(portico.url, '/getstreams');
    assert.deepEqual(
      streams.body,
      [FROM, FROM + 1].map((port) => ({ listen: port, proxy_pass: `127.0.0.1:${echo.port}` })),
    );
    assert.deepEqual(await nginxMasters(stateDir), [master], 'a second nginx master was started');
    const status = await api(portico.url, '/v1/status');
    assert.equal(status.body.nginx.adopted, true);
    assert.equal(status.body.nginx.pid, master);

    const counts = await talk.stop();
    assert.equal(counts.failed, 0, `${counts.failed} round trips failed across the crash`);
    assert.ok(counts.ok > 5, `only ${counts.ok} round trips ran`);
    long.write('still connected');
    const echoed = await new Promise<string>((resolve) => long.once('data', (d) => resolve(d.toString())));
    assert.equal(echoed, 'still connected');
    long.destroy();
  });

  it('a killed nginx master is restarted and serving again within 2 s', async () => {
    assert.ok(portico !== undefined);
    const [master] = await nginxMasters(stateDir);
    assert.ok(master !== undefined);
    const killedAt = Date.now();
    process.kill(master, 'SIGKILL');
    // The dead master's workers keep serving on their own; what counts is a new master serving.
    const back = await eventually(
      async () => {
        const masters = await nginxMasters(stateDir);
        if (masters.length !== 1 || masters[0] === master) return false;
        return (await roundTrip(FROM, 'back').catch(() => '')) === 'back';
      },
      2000,
      25,
    );
    assert.ok(back, `no new master serving ${Date.now() - killedAt} ms after the kill:\n${portico.output()}`);
    assert.ok(await eventually(async () => (await api(portico!.url, '/readyz')).status === 200, 2000));
    assert.equal((await api(portico.url, '/v1/status')).body.nginx.restarts, 1);
  });

  it('while a killed master is being restarted, /readyz answers 503 and a change waits for it, then applies', async () => {
    assert.ok(portico !== undefined);
    // Each master that dies young doubles the restart's backoff: one more kill makes it 400 ms, a gap
    // wide enough to look into on a loaded machine.
    const [first] = await nginxMasters(stateDir);
    assert.ok(first !== undefined);
    process.kill(first, 'SIGKILL');
    const replaced = await eventually(async () => {
      const masters = await nginxMasters(stateDir);
      return masters.length === 1 && masters[0] !== first;
    }, 3000);
    assert.ok(replaced, 'the first killed master was not replaced within 3 s');
    const [master] = await nginxMasters(stateDir);
    assert.ok(master !== undefined);
    process.kill(master, 'SIGKILL');
    let sawNotReady = false;
    const until = Date.now() + 2000;
    while (!sawNotReady && Date.now() < until) sawNotReady = (await api(portico.url, '/readyz')).status === 503;
    assert.ok(sawNotReady, '/readyz never answered 503 while nginx was down');
    const created = await api(portico.url, '/v1/streams', { method: 'POST', body: { port: FROM + 5, backend: `127.0.0.1:${echo.port}` } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(await roundTrip(FROM + 5, 'queued'), 'queued');
    const [restarted] = await nginxMasters(stateDir);
    assert.ok(restarted !== undefined && restarted !== master);
    assert.equal((await api(portico.url, '/readyz')).status, 200);
  });

  it('SIGTERM stops nginx gracefully, releases the lock and exits 0', async () => {
    assert.ok(portico !== undefined);
    const [master] = await nginxMasters(stateDir);
    process.kill(portico.pid, 'SIGTERM');
    assert.ok(await exited(portico.child));
    assert.equal(portico.child.exitCode, 0, portico.output());
    assert.ok(master !== undefined && (await eventually(async () => !(await processRuns(master)), 3000)));
    assert.equal(await accepts(FROM), false);
    await assert.rejects(readFile(`${stateDir}/portico.lock`));
    portico = undefined;
  });

  it('a bad setting stops start-up with a message naming the variable', async () => {
    await assert.rejects(spawnPortico({ ...env, PORT_RANGE: '9010-9000' }), /PORT_RANGE: 9010 is above 9000/);
    await assert.rejects(spawnPortico({ ...env, NGINX_MODE: 'sidecar' }), /NGINX_MODE/);
  });

  it('a PORT_RANGE the open-files limit cannot carry stops start-up naming the limit, before any nginx starts', async () => {
    const dir = await tempDir('limits');
    try {
      // 1,000 ports are 2,003 listening sockets: more than a hard limit of 512 lets the master open.
      const child = spawn('/bin/sh', ['-c', 'ulimit -Sn 512 && ulimit -Hn 512 && exec "$0" --import tsx src/main.ts', process.execPath], {
        cwd: REPO,
        env: { PATH: process.env.PATH, NGINX_BIN: nginxBin(), STATE_DIR: dir, PORT_RANGE: '28000-28999', BIND_PORT: String(API_PORT), NGINX_STATUS_PORT: 'off' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const code = await Promise.race([
        new Promise<number | null>((resolve) => child.once('exit', resolve)),
        sleep(20_000).then(() => 'timeout' as const),
      ]);
      if (code === 'timeout') child.kill('SIGKILL');
      assert.equal(code, 1, output);
      assert.match(output, /PORT_RANGE of 1000 ports needs 2067 open files in nginx's master \(2003 listening sockets\), but the hard limit is 512/);
      assert.deepEqual(await nginxMasters(dir), []);
    } finally {
      await stopNginxUnder(dir);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
