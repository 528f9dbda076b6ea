/**
 * writeScratch, the throwaway test configs (`.portico-test.conf` beside the sidecar's nginx.conf, on
 * a volume other containers can write): a symlink or a file already at the name is replaced, never
 * written through, and no temporary file is left behind.
 */
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeScratch } from '../../src/store/fsync.js';

describe('writeScratch', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portico-scratch-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces a symlink planted at its name instead of writing through it, and leaves its target as it was', async () => {
    const victim = path.join(dir, 'victim');
    await writeFile(victim, 'precious\n');
    const scratch = path.join(dir, '.portico-test.conf');
    await symlink(victim, scratch);
    await writeScratch(scratch, 'events {}\n');
    assert.equal(await readFile(victim, 'utf8'), 'precious\n');
    assert.ok((await lstat(scratch)).isFile(), 'the scratch name is still a symlink');
    assert.equal(await readFile(scratch, 'utf8'), 'events {}\n');
    assert.deepEqual((await readdir(dir)).sort(), ['.portico-test.conf', 'victim']);
  });

  it('replaces a dangling symlink (one that would create a file elsewhere) and an older scratch file', async () => {
    const elsewhere = path.join(dir, 'created-elsewhere');
    const scratch = path.join(dir, 'test-tree.conf');
    await symlink(elsewhere, scratch);
    await writeScratch(scratch, 'first\n');
    await assert.rejects(lstat(elsewhere), { code: 'ENOENT' });
    await writeScratch(scratch, 'second\n');
    assert.equal(await readFile(scratch, 'utf8'), 'second\n');
    assert.ok(!(await readdir(dir)).some((name) => name.startsWith('.test-tree.conf.')), 'a temporary file was left behind');
  });
});
