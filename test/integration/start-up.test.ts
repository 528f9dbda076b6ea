/**
 * Start-up as `make start` runs it (`node src/main.ts` through tsx): the API socket is bound before
 * anything else starts, so a taken BIND_PORT fails at once and leaves no nginx and no lock; a failed
 * start closes what it opened, and a malformed API_TOKENS_FILE stops it before anything starts; until
 * Portico is up the API answers 503; a SIGTERM during start-up stops Portico once it is up, and a
 * SIGHUP then re-reads the tokens once it is up. QUIC_BPF: the main config says `quic_bpf on` where a
 * throwaway nginx shows the host allows it; `on` on a host that refuses it stops start-up.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, chmod, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import { sha256 } from '../../src/api/tokens-file.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { accepts, eventually, holdPort } from '../helpers/net.js';
import { REPO, exited, nginxBin, nginxMasters, processRuns, spawnPortico, stopNginxUnder, tempDir, type ChildPortico } from '../helpers/portico.js';

const RANGE = '29330-29339';
const API_PORT = 29392;
const OTHER_API_PORT = 29393;

interface Started {
  child: ChildProcess;
  output(): string;
}

/** Runs `src/main.ts` in a process group of its own, collecting stdout and stderr. */
function run(env: Record<string, string>): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO,
    // No status listener: its default port would be shared with every Portico the tests run at once.
    env: { PATH: process.env.PATH, NGINX_BIN: nginxBin(), PORT_RANGE: RANGE, LOG_LEVEL: 'info', NGINX_STATUS_PORT: 'off', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

/** The first answer of GET /healthz on `port`, polled every 20 ms for up to 15 s. */
/** SIGTERM, and Portico exits 0 within 15 s. */
async function stopsCleanly(started: Started): Promise<void> {
  process.kill(started.child.pid as number, 'SIGTERM');
  assert.ok(await exited(started.child, 15_000), started.output());
  assert.equal(started.child.exitCode, 0, started.output());
}

async function firstAnswer(port: number): Promise<Response | undefined> {
  let answer: Response | undefined;
  await eventually(async () => {
    answer = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
    return answer !== undefined;
  }, 15_000);
  return answer;
}

describe('start-up', () => {
  let stateDir: string;
  let binDir: string;
  const children: ChildProcess[] = [];

  before(async () => {
    stateDir = await tempDir('start-up');
    binDir = await tempDir('slow-nginx');
  });
  after(async () => {
    for (const child of children) if (child.pid !== undefined && (await processRuns(child.pid))) process.kill(-child.pid, 'SIGKILL');
    await stopNginxUnder(stateDir);
    await rm(stateDir, { recursive: true, force: true });
    await rm(binDir, { recursive: true, force: true });
  });

  it('with BIND_PORT taken it exits 1 naming the address and EADDRINUSE, starts no nginx and leaves no lock; a start on a free port then works', async () => {
    const held = await holdPort(API_PORT);
    try {
      const busy = run({ STATE_DIR: stateDir, BIND_PORT: String(API_PORT) });
      children.push(busy.child);
      assert.ok(await exited(busy.child, 20_000), 'portico kept running with its port taken');
      assert.equal(busy.child.exitCode, 1, busy.output());
      assert.match(busy.output(), /cannot listen on 127\.0\.0\.1:29392: address already in use \(EADDRINUSE\)/);
      assert.doesNotMatch(busy.output(), /portico listening/);
      assert.deepEqual(await nginxMasters(stateDir), [], 'an nginx master runs for the state directory');
      await assert.rejects(readFile(`${stateDir}/portico.lock`), { code: 'ENOENT' });
    } finally {
      await held.close();
    }
    let portico: ChildPortico | undefined = await spawnPortico({ STATE_DIR: stateDir, PORT_RANGE: RANGE, BIND_PORT: String(OTHER_API_PORT) });
    children.push(portico.child);
    try {
      // The line follows the first answers by a moment (it is logged once Portico serves).
      assert.ok(await eventually(() => /portico listening on http:\/\/127\.0\.0\.1:29393/.test(portico?.output() ?? ''), 2000), portico.output());
      assert.equal((await nginxMasters(stateDir)).length, 1);
      process.kill(portico.pid, 'SIGTERM');
      assert.ok(await exited(portico.child));
      assert.equal(portico.child.exitCode, 0, portico.output());
      portico = undefined;
    } finally {
      if (portico !== undefined) process.kill(-portico.pid, 'SIGKILL');
    }
  });

  it('a start that fails after binding (another Portico owns the state directory) exits 1 and frees its API port; the owner is untouched', async () => {
    const owner = await spawnPortico({ STATE_DIR: stateDir, PORT_RANGE: RANGE, BIND_PORT: String(OTHER_API_PORT) });
    children.push(owner.child);
    try {
      const [master] = await nginxMasters(stateDir);
      const second = run({ STATE_DIR: stateDir, BIND_PORT: String(API_PORT) });
      children.push(second.child);
      assert.ok(await exited(second.child, 20_000));
      assert.equal(second.child.exitCode, 1, second.output());
      assert.match(second.output(), new RegExp(`another Portico \\(pid ${owner.pid}\\) owns this state directory`));
      assert.equal(await accepts(API_PORT), false, 'the failed start still listens');
      assert.deepEqual(await nginxMasters(stateDir), [master]);
      assert.equal((await fetch(`${owner.url}/readyz`)).status, 200);
      process.kill(owner.pid, 'SIGTERM');
      assert.ok(await exited(owner.child));
    } finally {
      if (await processRuns(owner.pid)) process.kill(-owner.pid, 'SIGKILL');
    }
  });

  it('a malformed API_TOKENS_FILE stops start-up with exit 1 naming the line and the rule, never the line, before any nginx or lock', async () => {
    const file = path.join(binDir, 'bad-tokens');
    const pasted = 'pasted-token-instead-of-its-hash-0123456789';
    await writeFile(file, `ok write ${sha256('x'.repeat(32)).toString('hex')}\n\noops write ${pasted}\n`, { mode: 0o600 });
    const refused = run({ STATE_DIR: stateDir, BIND_PORT: String(API_PORT), API_TOKENS_FILE: file });
    children.push(refused.child);
    assert.ok(await exited(refused.child, 20_000));
    assert.equal(refused.child.exitCode, 1, refused.output());
    assert.match(refused.output(), /portico could not start: API_TOKENS_FILE .*bad-tokens: line 3: the third field must be the token's SHA-256 as 64 hex digits/);
    assert.ok(!refused.output().includes(pasted), refused.output());
    assert.deepEqual(await nginxMasters(stateDir), []);
    await assert.rejects(readFile(`${stateDir}/portico.lock`), { code: 'ENOENT' });
  });

  describe('with an nginx whose `nginx -t` takes 1.5 s (a slow start)', () => {
    let slowNginx: string;
    before(async () => {
      slowNginx = `${binDir}/nginx`;
      await writeFile(slowNginx, `#!/bin/sh\nfor a in "$@"; do [ "$a" = -t ] && sleep 1.5; done\nexec '${nginxBin()}' "$@"\n`);
      await chmod(slowNginx, 0o755);
    });

    it('the API answers 503 with Retry-After while Portico starts, then 200, and logs "listening" only once it serves', async () => {
      const started = run({ STATE_DIR: stateDir, BIND_PORT: String(API_PORT), NGINX_BIN: slowNginx });
      children.push(started.child);
      try {
        const first = await firstAnswer(API_PORT);
        assert.equal(first?.status, 503, started.output());
        assert.equal(first?.headers.get('retry-after'), '1');
        assert.match(String(first?.headers.get('portico-request-id')), /^[0-9a-f-]{36}$/);
        assert.equal(((await first?.json()) as { error: { kind: string } }).error.kind, 'NginxUnavailable');
        assert.doesNotMatch(started.output(), /portico listening/);
        assert.ok(await eventually(async () => (await fetch(`http://127.0.0.1:${API_PORT}/healthz`)).status === 200, 15_000));
        assert.ok(await eventually(() => /portico listening on http:\/\/127\.0\.0\.1:29392/.test(started.output()), 2000), started.output());
        await stopsCleanly(started);
      } finally {
        if (await processRuns(started.child.pid as number)) process.kill(-(started.child.pid as number), 'SIGKILL');
      }
    });

    it('SIGHUP during start-up does not stop Portico: once it is up it reads API_TOKENS_FILE again', async () => {
      const file = path.join(binDir, 'tokens');
      await writeFile(file, `ci write ${sha256('ci-token-0123456789abcdef').toString('hex')}\n`, { mode: 0o600 });
      const started = run({ STATE_DIR: stateDir, BIND_PORT: String(API_PORT), NGINX_BIN: slowNginx, API_TOKENS_FILE: file });
      children.push(started.child);
      try {
        assert.equal((await firstAnswer(API_PORT))?.status, 503, started.output());
        await writeFile(file, `ci read ${sha256('ci-token-0123456789abcdef').toString('hex')}\n`);
        process.kill(started.child.pid as number, 'SIGHUP');
        assert.ok(await eventually(() => /API tokens: 1 read again/.test(started.output()), 15_000), started.output());
        const answer = await fetch(`http://127.0.0.1:${API_PORT}/getfreeport`, { headers: { authorization: 'Bearer ci-token-0123456789abcdef' } });
        assert.equal(answer.status, 403, 'the scope read after the SIGHUP holds');
        assert.equal(await processRuns(started.child.pid as number), true);
        await stopsCleanly(started);
      } finally {
        if (await processRuns(started.child.pid as number)) process.kill(-(started.child.pid as number), 'SIGKILL');
      }
    });

    it('SIGTERM during start-up stops Portico once it is up: exit 0, no nginx, no lock', async () => {
      const started = run({ STATE_DIR: stateDir, BIND_PORT: String(API_PORT), NGINX_BIN: slowNginx });
      children.push(started.child);
      try {
        assert.equal((await firstAnswer(API_PORT))?.status, 503, started.output());
        await stopsCleanly(started);
        assert.match(started.output(), /stopping once start-up has finished/);
        assert.match(started.output(), /"msg":"stopped"/);
        await sleep(100);
        assert.deepEqual(await nginxMasters(stateDir), []);
        await assert.rejects(readFile(`${stateDir}/portico.lock`), { code: 'ENOENT' });
      } finally {
        if (await processRuns(started.child.pid as number)) process.kill(-(started.child.pid as number), 'SIGKILL');
      }
    });
  });

  describe('QUIC_BPF', () => {
    /** The real nginx, run without the capabilities bpf(2) needs here: a host that refuses nginx's eBPF, as a container without them. */
    let refusingNginx: string;
    const setpriv = access('/usr/bin/setpriv').then(() => true, () => false);
    /** Root with CAP_SYS_ADMIN and no seccomp filter: nginx's eBPF is allowed here. */
    const hostAllows = readFile('/proc/self/status', 'utf8').then((status) => {
      const caps = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`);
      return process.getuid?.() === 0 && (caps & (1n << 21n)) !== 0n && /^Seccomp:\s*0$/m.test(status);
    });
    before(async () => {
      refusingNginx = `${binDir}/nginx-without-bpf`;
      await writeFile(refusingNginx, `#!/bin/sh\nexec setpriv --bounding-set=-bpf,-sys_admin,-net_admin -- '${nginxBin()}' "$@"\n`);
      await chmod(refusingNginx, 0o755);
    });
    /** Processes other than the managed master and its workers whose command line names `dir`: a probe left behind. */
    const leftovers = async (dir: string): Promise<string[]> => {
      const masters = await nginxMasters(dir);
      const found: string[] = [];
      for (const name of await readdir('/proc')) {
        if (!/^\d+$/.test(name) || masters.includes(Number(name))) continue;
        const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
        if (cmdline.includes('quic-bpf-probe')) found.push(`${name}: ${cmdline}`);
      }
      return found;
    };

    it('auto, on a host that allows nginx\'s eBPF: the main config says quic_bpf on, the log says why, and the probe leaves nothing running', async (t) => {
      if (!(await hostAllows)) return t.skip('needs root with CAP_SYS_ADMIN and no seccomp filter');
      const portico = await spawnPortico({ STATE_DIR: stateDir, PORT_RANGE: RANGE, BIND_PORT: String(OTHER_API_PORT) });
      children.push(portico.child);
      try {
        assert.match(portico.output(), /"quicBpf":"on","setting":"auto","probeMs":\d+,"msg":"quic_bpf on: QUIC_BPF=auto: a throwaway nginx loaded its eBPF program for a QUIC listener \(\d+ ms\)"/);
        assert.match(await readFile(`${stateDir}/nginx.conf`, 'utf8'), /^quic_bpf on;$/m);
        assert.equal((await nginxMasters(stateDir)).length, 1);
        assert.deepEqual(await leftovers(stateDir), []);
        await stopsCleanly({ child: portico.child, output: portico.output });
      } finally {
        if (await processRuns(portico.pid)) process.kill(-portico.pid, 'SIGKILL');
      }
    });

    it('on, on a host that refuses nginx\'s eBPF: start-up stops with exit 1, naming QUIC_BPF, nginx\'s own lines and what the host needs; no nginx, no lock', async (t) => {
      if (!(await setpriv)) return t.skip('needs setpriv (util-linux) to run nginx without CAP_BPF');
      const refused = run({ STATE_DIR: stateDir, BIND_PORT: String(API_PORT), NGINX_BIN: refusingNginx, QUIC_BPF: 'on' });
      children.push(refused.child);
      assert.ok(await exited(refused.child, 20_000));
      assert.equal(refused.child.exitCode, 1, refused.output());
      assert.match(
        refused.output(),
        /portico could not start: QUIC_BPF=on, but nginx cannot route QUIC by eBPF here: a throwaway nginx with \\"quic_bpf on;\\" failed \(\d+ ms\): nginx: \[alert\] failed to create BPF map \(1: Operation not permitted\); nginx: \[emerg\] ngx_quic_bpf_module failed to initialize, check limits; nginx's master needs CAP_SYS_ADMIN, or CAP_BPF with CAP_NET_ADMIN/,
      );
      assert.deepEqual(await nginxMasters(stateDir), []);
      assert.deepEqual(await leftovers(stateDir), []);
      await assert.rejects(readFile(`${stateDir}/portico.lock`), { code: 'ENOENT' });
    });

    it('auto, on a host that refuses it: Portico starts without quic_bpf and warns why; off: no probe at all', async (t) => {
      if (!(await setpriv)) return t.skip('needs setpriv (util-linux) to run nginx without CAP_BPF');
      const probeConf = `${stateDir}/scratch/quic-bpf-probe.conf`;
      await rm(probeConf, { force: true });
      for (const setting of ['auto', 'off']) {
        const portico = await spawnPortico({ STATE_DIR: stateDir, PORT_RANGE: RANGE, BIND_PORT: String(OTHER_API_PORT), NGINX_BIN: refusingNginx, QUIC_BPF: setting });
        children.push(portico.child);
        try {
          if (setting === 'auto') {
            assert.match(portico.output(), /"level":40,.*"quicBpf":"off","setting":"auto".*"msg":"quic_bpf off: QUIC_BPF=auto: a throwaway nginx with .*failed to create BPF map \(1: Operation not permitted\).*At a reload nginx may then lose HTTP\/3 requests/);
            await rm(probeConf);
          } else {
            assert.match(portico.output(), /"quicBpf":"off","setting":"off","msg":"quic_bpf off: QUIC_BPF=off"/);
            await assert.rejects(access(probeConf), { code: 'ENOENT' }, 'QUIC_BPF=off ran the probe');
          }
          assert.doesNotMatch(await readFile(`${stateDir}/nginx.conf`, 'utf8'), /quic_bpf/);
          assert.equal((await nginxMasters(stateDir)).length, 1);
          assert.deepEqual(await leftovers(stateDir), []);
          await stopsCleanly({ child: portico.child, output: portico.output });
        } finally {
          if (await processRuns(portico.pid)) process.kill(-portico.pid, 'SIGKILL');
        }
      }
    });
  });
});
