/**
 * One Portico per state directory, as `node src/main.ts` runs: two Porticos started at the same
 * moment on a directory whose lock a crashed Portico left behind: exactly one runs (and serves a
 * stream through its nginx), the other exits naming the one that owns the directory. And a setting
 * that would disable nginx's timeouts stops start-up.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { REPO, exited, nginxBin, nginxMasters, processRuns, stopNginxUnder, tempDir } from '../helpers/portico.js';

const FROM = 26160;
const API_PORTS = [26191, 26192];

interface Started {
  child: ChildProcess;
  apiPort: number;
  output(): string;
}

function run(env: Record<string, string>, apiPort: number): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO,
    // No status listener: its default port would be shared with every Portico the tests run at once.
    env: { PATH: process.env.PATH, NGINX_BIN: nginxBin(), LOG_LEVEL: 'info', BIND_PORT: String(apiPort), NGINX_STATUS_PORT: 'off', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, apiPort, output: () => output };
}

const ready = (port: number): Promise<boolean> =>
  fetch(`http://127.0.0.1:${port}/readyz`).then(
    (r) => r.status === 200,
    () => false,
  );

describe('two Porticos starting at once on one state directory with a stale lock', () => {
  let stateDir: string;
  let echo: EchoServer;
  const started: Started[] = [];

  before(async () => {
    stateDir = await tempDir('state-lock');
    echo = await startEcho();
  });
  after(async () => {
    for (const { child } of started) if (child.pid !== undefined && (await processRuns(child.pid))) process.kill(-child.pid, 'SIGKILL');
    await stopNginxUnder(stateDir);
    await echo?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  for (let round = 1; round <= 3; round += 1) {
    it(`exactly one runs and serves; the other exits naming it (round ${round})`, async () => {
      const gone = spawn('true', { stdio: 'ignore' });
      await new Promise((resolve) => gone.once('exit', resolve));
      await writeFile(`${stateDir}/portico.lock`, `${gone.pid} 1\n`);
      const env = { STATE_DIR: stateDir, PORT_RANGE: `${FROM}-${FROM + 9}`, WORKER_SHUTDOWN_TIMEOUT: '1s' };
      const pair = API_PORTS.map((port) => run(env, port));
      started.push(...pair);

      // Settled: one process has exited and the other answers ready, or both exited, or time is up.
      const settled = await eventually(async () => {
        const alive = pair.filter(({ child }) => child.exitCode === null);
        if (alive.length === 0) return true;
        return alive.length === 1 && (await ready((alive[0] as Started).apiPort));
      }, 30_000, 50);
      const outputs = pair.map((p, i) => `--- portico ${i} (exit ${p.child.exitCode}):\n${p.output()}`).join('\n');
      assert.ok(settled, `one exits and one runs:\n${outputs}`);
      const winner = pair.find(({ child }) => child.exitCode === null);
      const loser = pair.find(({ child }) => child.exitCode !== null);
      assert.ok(winner !== undefined && loser !== undefined, `exactly one runs:\n${outputs}`);
      assert.equal(loser.child.exitCode, 1);
      assert.match(loser.output(), new RegExp(`another Portico \\(pid ${winner.child.pid}\\) owns this state directory`));
      assert.equal(await readFile(`${stateDir}/portico.lock`, 'utf8').then((t) => t.split(' ')[0]), String(winner.child.pid));
      assert.equal((await nginxMasters(stateDir)).length, 1, 'one nginx master');

      const created = await fetch(`http://127.0.0.1:${winner.apiPort}/createstream/${FROM}/127.0.0.1:${echo.port}`);
      assert.equal(created.status, 200);
      assert.equal(await roundTrip(FROM, `round ${round}`), `round ${round}`);

      process.kill(winner.child.pid as number, 'SIGTERM');
      assert.ok(await exited(winner.child, 15_000), 'the winner stops on SIGTERM');
      await stopNginxUnder(stateDir);
      await rm(`${stateDir}/stream.d`, { recursive: true, force: true });
    });
  }
});

describe('settings that stop start-up', () => {
  it('NGINX_TIMEOUT_MS=0 (which execa would read as no timeout at all) stops start-up with exit code 2, naming the variable', async () => {
    const stateDir = await tempDir('timeout-zero');
    try {
      const started = run({ STATE_DIR: stateDir, PORT_RANGE: `${FROM}-${FROM + 9}`, NGINX_TIMEOUT_MS: '0' }, API_PORTS[0] as number);
      assert.ok(await exited(started.child, 15_000), 'portico exits');
      assert.equal(started.child.exitCode, 2);
      assert.match(started.output(), /NGINX_TIMEOUT_MS: must be milliseconds from 1 to 999999 \(0 would mean no timeout at all\)/);
      assert.deepEqual(await nginxMasters(stateDir), []);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
