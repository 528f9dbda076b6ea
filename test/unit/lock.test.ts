/**
 * The state directory's lock: held by the live process it names, taken over from a dead one or
 * from a pid that now belongs to another process (same pid, another start time).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { PorticoError } from '../../src/errors.js';
import { processInfo } from '../../src/proc.js';
import { acquireLock } from '../../src/store/lock.js';
import { REPO, tempDir } from '../helpers/portico.js';

/**
 * Runs `count` contender processes (test/helpers/lock-contender.ts) for `rounds` rounds, each round
 * starting at one instant for all and ending once every contender has answered it (a barrier over
 * IPC, so that a contender slowed by a loaded machine still meets its own round's lock); answers
 * their lines.
 */
async function contend(file: string, count: number, rounds: number, deadPid: number): Promise<string[]> {
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, ['--import', 'tsx', 'test/helpers/lock-contender.ts', file, String(deadPid)], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    }),
  );
  const outputs = children.map((child) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    return () => out;
  });
  const finished = children.map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())));
  const limit = setTimeout(() => {
    for (const child of children) child.kill('SIGKILL');
  }, 60_000 + rounds * 2000);
  /** The next IPC message of `child` that `wanted` accepts. */
  const message = <T>(child: (typeof children)[number], wanted: (m: unknown) => m is T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: unknown): void => {
        if (!wanted(m)) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(m);
      };
      const onExit = (): void => reject(new Error('a contender exited before answering'));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  type Answer = { round: number; took: boolean };
  const isAnswer = (m: unknown): m is Answer => typeof m === 'object' && m !== null && 'took' in m;
  const isCrashed = (m: unknown): m is { crashed: number } => typeof m === 'object' && m !== null && 'crashed' in m;
  try {
    // Starting node with tsx takes seconds when several start at once: the rounds begin once all are up.
    await Promise.all(children.map((child) => message(child, (m): m is 'ready' => m === 'ready')));
    for (let round = 0; round < rounds; round += 1) {
      const answers = children.map((child) => message(child, isAnswer));
      const at = Date.now() + 50;
      for (const child of children) child.send({ round, at });
      const took = (await Promise.all(answers)).map((answer, i) => (answer.took ? children[i] : undefined)).filter((c) => c !== undefined);
      // Every winner (one, unless the lock is broken) leaves the lock stale for the next round.
      const crashed = took.map((child) => message(child, isCrashed));
      for (const child of took) child.send({ crash: round });
      await Promise.all(crashed);
    }
    for (const child of children) child.send({ done: true });
    await Promise.all(finished);
  } finally {
    clearTimeout(limit);
  }
  return outputs.flatMap((out) => out().split('\n').filter((line) => line !== ''));
}

describe('state directory lock', () => {
  let dir: string;
  let other: ReturnType<typeof spawn>;
  let otherStart: number;

  before(async () => {
    dir = await tempDir('lock');
    // Another live process, standing in for a running Portico.
    other = spawn('sleep', ['60'], { stdio: 'ignore' });
    const info = await processInfo(other.pid as number);
    assert.ok(info, 'the stand-in process runs');
    otherStart = info.startTime;
  });
  after(async () => {
    other.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const lockFile = (): string => `${dir}/portico.lock`;

  it('writes its own pid and start time, and removes the file on release', async () => {
    const lock = await acquireLock(lockFile());
    const own = await processInfo(process.pid);
    assert.equal(await readFile(lockFile(), 'utf8'), `${process.pid} ${own?.startTime}\n`);
    await lock.release();
    await assert.rejects(readFile(lockFile()), { code: 'ENOENT' });
  });

  it('refuses a lock held by the live process it names', async () => {
    await writeFile(lockFile(), `${other.pid} ${otherStart}\n`);
    await assert.rejects(acquireLock(lockFile()), (error) => {
      assert.ok(error instanceof PorticoError);
      assert.equal(error.kind, 'Conflict');
      assert.match(error.message, new RegExp(`another Portico \\(pid ${other.pid}\\) owns this state directory`));
      return true;
    });
    assert.equal(await readFile(lockFile(), 'utf8'), `${other.pid} ${otherStart}\n`, 'the holder keeps its lock');
  });

  it('refuses a lock of the old form (a pid alone) while that pid lives', async () => {
    await writeFile(lockFile(), `${other.pid}\n`);
    await assert.rejects(acquireLock(lockFile()), /another Portico/);
  });

  it('takes over a lock whose pid now belongs to a process started at another time (a reused pid)', async () => {
    await writeFile(lockFile(), `${other.pid} ${otherStart + 1}\n`);
    const lock = await acquireLock(lockFile());
    assert.match(await readFile(lockFile(), 'utf8'), new RegExp(`^${process.pid} \\d+\\n$`));
    await lock.release();
  });

  it('of six processes taking over a stale lock at the same instant, exactly one takes it, round after round', async () => {
    const gone = spawn('true', { stdio: 'ignore' });
    await new Promise((resolve) => gone.once('exit', resolve));
    const ROUNDS = 15;
    await writeFile(lockFile(), `${gone.pid} 1\n`);
    const lines = await contend(lockFile(), 6, ROUNDS, gone.pid as number);
    for (let round = 0; round < ROUNDS; round += 1) {
      const mine = lines.filter((line) => line.startsWith(`${round} `));
      assert.equal(mine.length, 6, `round ${round}: every contender answered: ${mine.join(' | ')}`);
      const took = mine.filter((line) => line === `${round} took`);
      assert.equal(took.length, 1, `round ${round}: exactly one took the lock: ${mine.join(' | ')}`);
      for (const line of mine.filter((l) => !l.endsWith(' took'))) assert.match(line, /refused: another Portico \(pid \d+\) owns this state directory/);
    }
    // No private copy or takeover marker is left beside the lock.
    assert.deepEqual((await readdir(dir)).filter((name) => name.startsWith('portico.lock.')), []);
    await rm(lockFile(), { force: true });
  });

  it('sweeps what a process that died taking the lock left beside it, and nothing of a live one', async () => {
    const gone = spawn('true', { stdio: 'ignore' });
    await new Promise((resolve) => gone.once('exit', resolve));
    const left = `${lockFile()}.${gone.pid}-0123abcd`;
    const live = `${lockFile()}.${other.pid}-89abcdef`;
    const marker = `${lockFile()}.stale-12345`;
    for (const file of [left, live, marker]) await writeFile(file, '1 1\n');
    const lock = await acquireLock(lockFile());
    const names = (await readdir(dir)).sort();
    assert.ok(!names.includes(left.split('/').pop() as string), 'the dead process\'s copy is removed');
    assert.ok(names.includes(live.split('/').pop() as string), 'a live process\'s copy is kept');
    assert.ok(names.includes(marker.split('/').pop() as string), 'a marker younger than 10 s is kept: its process may be at work');
    await lock.release();
    await rm(live);
    await rm(marker);
  });

  it('release leaves a lock alone that is no longer the one it took', async () => {
    const lock = await acquireLock(lockFile());
    await rm(lockFile());
    await writeFile(lockFile(), `${other.pid} ${otherStart}\n`);
    await lock.release();
    assert.equal(await readFile(lockFile(), 'utf8'), `${other.pid} ${otherStart}\n`);
    await rm(lockFile());
  });

  it('takes over a lock left by a process that is gone, or holding something else', async () => {
    const gone = spawn('true', { stdio: 'ignore' });
    await new Promise((resolve) => gone.once('exit', resolve));
    for (const text of [`${gone.pid} 12345\n`, 'not a pid\n', '']) {
      await writeFile(lockFile(), text);
      const lock = await acquireLock(lockFile());
      assert.match(await readFile(lockFile(), 'utf8'), new RegExp(`^${process.pid} \\d+\\n$`), `over ${JSON.stringify(text)}`);
      await lock.release();
    }
  });
});
