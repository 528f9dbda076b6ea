/**
 * Following nginx's error log across a rotation, on real files: a cursor reads what was written
 * after it opened, whether the log was renamed (nginx still writing to the renamed file, a new one
 * appearing at the path), truncated in place (copytruncate), or rotated before the cursor opened
 * (then the file the master's stderr points at is the one nginx writes).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { appendFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { ErrorLogCursor } from '../../src/nginx/error-log.js';
import { tempDir } from '../helpers/portico.js';

describe('ErrorLogCursor', () => {
  let dir: string;
  let n = 0;
  const children: ChildProcess[] = [];
  before(async () => {
    dir = await tempDir('error-log');
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  /** A fresh log file holding `text`. */
  const logWith = async (text: string): Promise<string> => {
    n += 1;
    const file = `${dir}/error-${n}.log`;
    await writeFile(file, text);
    return file;
  };

  it('answers the lines written after it opened, not those before, and a line only once it is complete', async () => {
    const file = await logWith('old line\n');
    const cursor = await ErrorLogCursor.open(file);
    assert.deepEqual(await cursor.lines(), []);
    await appendFile(file, 'first\nsecond, half');
    assert.deepEqual(await cursor.lines(), ['first']);
    await appendFile(file, ' done\n');
    assert.deepEqual(await cursor.lines(), ['first', 'second, half done']);
    await cursor.close();
  });

  it('after a rename, reads both what nginx still writes to the renamed file and the new file at the path', async () => {
    const file = await logWith('before\n');
    const cursor = await ErrorLogCursor.open(file);
    await rename(file, `${file}.1`);
    await appendFile(`${file}.1`, 'signal 1 (SIGHUP) received, reconfiguring\n'); // nginx has not reopened yet
    await writeFile(file, 'start worker process 42\n'); // the new config's log opens the path afresh
    assert.deepEqual(await cursor.lines(), ['signal 1 (SIGHUP) received, reconfiguring', 'start worker process 42']);
    await appendFile(file, 'later\n');
    assert.deepEqual((await cursor.lines()).slice(-1), ['later']);
    await cursor.close();
  });

  it('after a truncation in place (copytruncate), reads the new lines from the start of the file', async () => {
    const file = await logWith(`${'x'.repeat(5000)}\n`);
    const cursor = await ErrorLogCursor.open(file);
    await truncate(file, 0);
    await appendFile(file, 'start worker process 7\n');
    assert.deepEqual(await cursor.lines(), ['start worker process 7']);
    await cursor.close();
  });

  it('a log that does not exist yet is read from its start once it appears; no log at all reads nothing', async () => {
    const file = `${dir}/not-yet.log`;
    const cursor = await ErrorLogCursor.open(file);
    assert.deepEqual(await cursor.lines(), []);
    await writeFile(file, 'created by nginx\n');
    assert.deepEqual(await cursor.lines(), ['created by nginx']);
    await cursor.close();
    const none = await ErrorLogCursor.open(undefined);
    assert.deepEqual(await none.lines(), []);
  });

  it('rotated before it opened, without a reopen: follows the file the master\'s stderr points at', async () => {
    const file = await logWith('before\n');
    // A stand-in master whose stderr is the log, as nginx points fd 2 at its error log.
    const fd = openSync(file, 'a');
    const master = spawn('sleep', ['60'], { stdio: ['ignore', 'ignore', fd] });
    closeSync(fd);
    children.push(master);
    await rename(file, `${file}.1`);
    await writeFile(file, ''); // logrotate's "create": an empty file at the path nginx does not write to
    const cursor = await ErrorLogCursor.open(file, master.pid);
    await appendFile(`${file}.1`, '[emerg] bind() failed\n');
    assert.deepEqual(await cursor.lines(), ['[emerg] bind() failed']);
    await cursor.close();
  });

  it('reads a burst longer than one read (1 MiB) across looks, line for line', async () => {
    const file = await logWith('');
    const cursor = await ErrorLogCursor.open(file);
    const line = 'y'.repeat(999);
    await appendFile(file, `${line}\n`.repeat(1500)); // 1.5 MB
    let lines = await cursor.lines();
    for (let look = 0; look < 3 && lines.length < 1500; look += 1) lines = await cursor.lines();
    assert.equal(lines.length, 1500);
    assert.ok(lines.every((l) => l === line));
    await cursor.close();
  });
});
