/**
 * The journal's group commit: one flushed journal holds a batch's old and new texts, the commit mark
 * is the commit point, and the live files are flushed after the answer. What a power cut can leave is
 * simulated by changing the files on disk the way a lost write would (a file missing, cut short, or
 * a backup link that never reached the disk), and `recover` must bring back exactly the old tree
 * (no commit mark) or exactly the new one (commit mark).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { Journal, workDir, writeStaged, type FileChange } from '../../src/store/journal.js';

const OLD = { 'a.conf': 'old a\n', 'b.conf': 'old b\n' };
const CHANGES: FileChange[] = [
  { name: 'a.conf', text: 'new a, longer than the old one\n' },
  { name: 'b.conf', text: null },
  { name: 'c.conf', text: 'new c\n', mode: 0o600 },
];
const NEW = { 'a.conf': 'new a, longer than the old one\n', 'c.conf': 'new c\n' };

async function tree(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.conf')).sort()) files[name] = await readFile(path.join(dir, name), 'utf8');
  return files;
}

describe('Journal (group commit)', () => {
  let dir: string;
  let stageDir: string;
  const roots: string[] = [];

  beforeEach(async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'portico-journal-'));
    roots.push(root);
    dir = path.join(root, 'stream.d');
    stageDir = path.join(workDir(dir), 'stage');
    await mkdir(stageDir, { recursive: true });
    for (const [name, text] of Object.entries(OLD)) await writeFile(path.join(dir, name), text);
  });
  after(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  /** Stages and swaps CHANGES with a fresh journal; answers it. */
  async function swapped(): Promise<Journal> {
    const journal = new Journal(dir, stageDir);
    const staged = await writeStaged(stageDir, CHANGES);
    await journal.swap(CHANGES.map((c) => ({ dir, name: c.name, staged: staged.get(c.name) ?? null, text: c.text, ...(c.mode !== undefined && { mode: c.mode }) })));
    return journal;
  }

  it('a committed batch is the new tree; once settled, the journal is empty and nothing is backed up', async () => {
    const journal = await swapped();
    await journal.commit();
    assert.deepEqual(await tree(dir), NEW);
    await journal.settle();
    assert.equal(await readFile(path.join(workDir(dir), 'journal.json'), 'utf8'), '');
    assert.deepEqual(await readdir(path.join(workDir(dir), 'backup')), []);
    assert.equal((await stat(path.join(dir, 'c.conf'))).mode & 0o777, 0o600);
    assert.equal(await new Journal(dir, stageDir).recover(), undefined);
  });

  it('a committed batch whose files never reached the disk is rolled forward from the journal at the next start', async () => {
    await swapped();
    // The power cut after the commit mark reached the disk, before the background flush (which a
    // real commit() starts at once, so the mark is appended here as commit() writes it): one new
    // file lost, another cut short, a removed one back.
    await writeFile(path.join(workDir(dir), 'journal.json'), 'committed\n', { flag: 'a' });
    await rm(path.join(dir, 'c.conf'));
    await truncate(path.join(dir, 'a.conf'), 3);
    await writeFile(path.join(dir, 'b.conf'), OLD['b.conf']);
    assert.equal(await new Journal(dir, stageDir).recover(), 3);
    assert.deepEqual(await tree(dir), NEW);
    assert.equal((await stat(path.join(dir, 'c.conf'))).mode & 0o777, 0o600);
    assert.equal(await readFile(path.join(workDir(dir), 'journal.json'), 'utf8'), '');
  });

  it('a batch cut off before its commit mark is rolled back from the journal, even with its backups lost', async () => {
    await swapped();
    // The crash: the renames reached the disk, the backup links did not.
    for (const name of await readdir(path.join(workDir(dir), 'backup'))) await rm(path.join(workDir(dir), 'backup', name));
    assert.equal(await new Journal(dir, stageDir).recover(), 3);
    assert.deepEqual(await tree(dir), OLD);
  });

  it('a commit mark cut short counts as no commit: the batch is rolled back', async () => {
    await swapped();
    await writeFile(path.join(workDir(dir), 'journal.json'), 'commi', { flag: 'a' });
    assert.equal(await new Journal(dir, stageDir).recover(), 3);
    assert.deepEqual(await tree(dir), OLD);
  });

  it('a journal whose own write was cut off (its checksum fails) came before any rename: nothing is touched', async () => {
    const journal = new Journal(dir, stageDir);
    const staged = await writeStaged(stageDir, CHANGES);
    await journal.swap(CHANGES.map((c) => ({ dir, name: c.name, staged: staged.get(c.name) ?? null, text: c.text })));
    await journal.commit();
    await journal.settle();
    const file = path.join(workDir(dir), 'journal.json');
    // The next batch's journal, written half: the tree is the last committed one.
    const next = new Journal(dir, stageDir);
    const again = await writeStaged(stageDir, [{ name: 'a.conf', text: 'next\n' }]);
    await next.swap([{ dir, name: 'a.conf', staged: again.get('a.conf') ?? null, text: 'next\n' }]);
    const whole = await readFile(file, 'utf8');
    await writeFile(file, whole.slice(0, Math.floor(whole.length / 2)));
    await writeFile(path.join(dir, 'a.conf'), NEW['a.conf']); // as if the rename had not happened
    assert.equal(await new Journal(dir, stageDir).recover(), undefined);
    assert.deepEqual(await tree(dir), NEW);
  });

  it('a roll-back at run time (a failed reload) brings back the old files and empties the journal', async () => {
    const journal = await swapped();
    assert.equal(await journal.rollBack(), 3);
    assert.deepEqual(await tree(dir), OLD);
    assert.equal(await readFile(path.join(workDir(dir), 'journal.json'), 'utf8'), '');
    assert.deepEqual(await readdir(path.join(workDir(dir), 'backup')), []);
  });

  it('a version 1 journal (an undo list of backup links, before group commit) is still rolled back at start', async () => {
    await mkdir(path.join(workDir(dir), 'backup'), { recursive: true });
    await writeFile(path.join(workDir(dir), 'backup', 'a.conf'), OLD['a.conf']);
    await writeFile(path.join(dir, 'a.conf'), 'half-swapped\n');
    await writeFile(path.join(dir, 'z.conf'), 'created by the cut batch\n');
    await writeFile(
      path.join(workDir(dir), 'journal.json'),
      JSON.stringify({ entries: [{ dir, name: 'a.conf', staged: null, backedUp: true }, { dir, name: 'z.conf', staged: null, backedUp: false }] }),
    );
    assert.equal(await new Journal(dir, stageDir).recover(), 2);
    assert.deepEqual(await tree(dir), OLD);
  });
});
