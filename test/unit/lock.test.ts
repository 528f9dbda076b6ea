/**
 * The state directory's lock: held by the live process it names, taken over from a dead one or
 * from a pid that now belongs to another process (same pid, another start time).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { PorticoError } from '../../src/errors.js';
import { processInfo } from '../../src/proc.js';
import { acquireLock } from '../../src/store/lock.js';
import { tempDir } from '../helpers/portico.js';

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
