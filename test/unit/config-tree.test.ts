/**
 * The config tree on disk: reading (foreign and hand-broken files), staging, and the swap's undo
 * journal — after a failure at any point of a swap the tree is the old one or the new one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { ConfigTree } from '../../src/store/tree.js';

const conf = (port: number, backend: string): string => `server {\n    listen ${port};\n    proxy_pass ${backend};\n}\n`;

async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    if (name.endsWith('.conf')) files[name] = await readFile(path.join(dir, name), 'utf8');
  }
  return files;
}

describe('ConfigTree', () => {
  let root: string;
  let tree: ConfigTree;
  const dirs: string[] = [];

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'portico-tree-'));
    dirs.push(root);
    tree = new ConfigTree({ streamDir: `${root}/stream.d`, streamPrefix: '_conductor_', stateDir: root, certDir: `${root}/certs` });
    await tree.open();
    await writeFile(`${root}/stream.d/_conductor_9000.conf`, conf(9000, 'a:1'));
    await writeFile(`${root}/stream.d/_conductor_9001.conf`, conf(9001, 'b:1'));
  });
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('reads streams, and reports foreign and unreadable files with the ports they claim', async () => {
    await writeFile(`${root}/stream.d/operator.conf`, 'server { listen 127.0.0.1:9005; proxy_pass x:1; }\n');
    await writeFile(`${root}/stream.d/_conductor_9002.conf`, 'server { listen 9002; proxy_pass x:1; proxy_buffer_size 4k; }\n');
    await writeFile(`${root}/stream.d/_conductor_9003.conf`, conf(9004, 'x:1'));
    await writeFile(`${root}/stream.d/notes.txt`, 'not a config file');
    const read = await tree.read();
    assert.deepEqual([...read.streams.keys()].sort(), [9000, 9001]);
    assert.deepEqual(read.foreign, [{ name: 'operator.conf', ports: [9005] }]);
    assert.deepEqual(read.unreadable.map((u) => [u.name, u.port]).sort(), [
      ['_conductor_9002.conf', 9002],
      ['_conductor_9003.conf', 9003],
    ]);
    assert.match(read.unreadable.find((u) => u.port === 9003)?.reason ?? '', /listens on 9004/);
  });

  it('sees a file edited in place once the rescan interval has passed (the cache keys on inode, size and mtime)', async () => {
    const quick = new ConfigTree({ streamDir: `${root}/stream.d`, streamPrefix: '_conductor_', stateDir: root, certDir: `${root}/certs`, rescanMs: 30 });
    assert.equal((await quick.read()).streams.get(9000)?.upstreams?.[0]?.address, 'a:1');
    await writeFile(`${root}/stream.d/_conductor_9000.conf`, conf(9000, 'changed:2'));
    await sleep(40);
    assert.equal((await quick.read()).streams.get(9000)?.upstreams?.[0]?.address, 'changed:2');
  });

  it('sees a file added or renamed into the directory at once, without waiting for a rescan', async () => {
    assert.equal((await tree.read()).streams.has(9007), false);
    await writeFile(`${root}/stream.d/.tmp-9007`, conf(9007, 'new:1'));
    await rename(`${root}/stream.d/.tmp-9007`, `${root}/stream.d/_conductor_9007.conf`);
    assert.equal((await tree.read()).streams.get(9007)?.upstreams?.[0]?.address, 'new:1');
  });

  it('stages without touching the live tree, and lists what nginx would read', async () => {
    const before = await snapshot(`${root}/stream.d`);
    const staged = await tree.stage(
      [
        { name: '_conductor_9001.conf', text: null },
        { name: '_conductor_9002.conf', text: conf(9002, 'c:1') },
      ],
      await tree.read(),
    );
    assert.deepEqual(await snapshot(`${root}/stream.d`), before);
    assert.deepEqual(staged.includes, [`${root}/stream.d/_conductor_9000.conf`, staged.staged.get('_conductor_9002.conf')]);
    await tree.unstage(staged);
  });

  it('includes a foreign file whose name no include may carry through a plain-named link', async () => {
    await writeFile(`${root}/stream.d/my notes; x.conf`, 'server { listen 9009; proxy_pass x:1; }\n');
    const staged = await tree.stage([], await tree.read());
    assert.equal(staged.includes.length, 3);
    const alias = staged.includes.find((f) => f.includes('/.portico/stage/alias-')) as string;
    assert.equal(await readFile(alias, 'utf8'), 'server { listen 9009; proxy_pass x:1; }\n');
    await tree.unstage(staged);
    await assert.rejects(readFile(alias));
  });

  it('refuses at start-up a journal it did not write, touching nothing', async () => {
    const before = await snapshot(`${root}/stream.d`);
    await writeFile(
      `${root}/stream.d/.portico/journal.json`,
      JSON.stringify({ entries: [{ dir: `${root}/stream.d`, name: '../../etc/passwd', staged: null, backedUp: false }] }),
    );
    const restarted = new ConfigTree({ streamDir: `${root}/stream.d`, streamPrefix: '_conductor_', stateDir: root, certDir: `${root}/certs` });
    await assert.rejects(restarted.open(), /is not a journal Portico wrote/);
    assert.deepEqual(await snapshot(`${root}/stream.d`), before);
    await rm(`${root}/stream.d/.portico/journal.json`);
  });

  it('a committed swap is the new tree, and survives a restart', async () => {
    const staged = await tree.stage(
      [
        { name: '_conductor_9000.conf', text: conf(9000, 'new:1') },
        { name: '_conductor_9001.conf', text: null },
        { name: '_conductor_9002.conf', text: conf(9002, 'c:1') },
      ],
      await tree.read(),
    );
    await tree.swap(staged);
    await tree.commit(staged);
    // Committed: a start from here finishes nothing once the background flush has settled.
    await tree.settle();
    const after = { '_conductor_9000.conf': conf(9000, 'new:1'), '_conductor_9002.conf': conf(9002, 'c:1') };
    assert.deepEqual(await snapshot(`${root}/stream.d`), after);
    const restarted = new ConfigTree({ streamDir: `${root}/stream.d`, streamPrefix: '_conductor_', stateDir: root, certDir: `${root}/certs` });
    assert.equal(await restarted.open(), undefined);
    assert.deepEqual(await snapshot(`${root}/stream.d`), after);
  });

  it('a file written over by hand between the swap and the commit, at the same size, reads back as the hand edit', async () => {
    await tree.read();
    const staged = await tree.stage([{ name: '_conductor_9000.conf', text: conf(9000, 'new:1') }], await tree.read());
    await tree.swap(staged);
    // While nginx reloads, someone replaces the file with one of the same length (a new inode, as sed -i makes).
    const edited = conf(9000, 'hnd:1');
    assert.equal(edited.length, conf(9000, 'new:1').length);
    await writeFile(`${root}/stream.d/.edit.tmp`, edited);
    await rename(`${root}/stream.d/.edit.tmp`, `${root}/stream.d/_conductor_9000.conf`);
    await tree.commit(staged);
    const read = await tree.read();
    assert.deepEqual(read.streams.get(9000)?.upstreams, [{ address: 'hnd:1' }]);
  });

  it('a text noted as read back is not parsed again after the commit; one written over by hand is', async () => {
    await tree.read();
    const text = conf(9000, 'new:1');
    const noted = { port: 9000, upstreams: [{ address: 'new:1' }] };
    tree.noteReadBack('_conductor_9000.conf', text, noted);
    tree.noteReadBack('_conductor_9001.conf', conf(9001, 'new:2'), { port: 9001, upstreams: [{ address: 'new:2' }] });
    const staged = await tree.stage(
      [
        { name: '_conductor_9000.conf', text },
        { name: '_conductor_9001.conf', text: conf(9001, 'new:2') },
      ],
      await tree.read(),
    );
    await tree.swap(staged);
    const edited = conf(9001, 'hnd:2');
    await writeFile(`${root}/stream.d/.edit.tmp`, edited);
    await rename(`${root}/stream.d/.edit.tmp`, `${root}/stream.d/_conductor_9001.conf`);
    await tree.commit(staged);
    const read = await tree.read();
    assert.equal(read.streams.get(9000), noted, 'the noted stream itself: no second parse');
    assert.deepEqual(read.streams.get(9001)?.upstreams, [{ address: 'hnd:2' }], 'the hand edit, parsed');
  });

  it('a swap rolled back, or cut off half-way and recovered at the next start, is the old tree', async () => {
    const before = await snapshot(`${root}/stream.d`);
    const changes = [
      { name: '_conductor_9000.conf', text: conf(9000, 'new:1') },
      { name: '_conductor_9001.conf', text: null },
      { name: '_conductor_9002.conf', text: conf(9002, 'c:1') },
    ];
    const staged = await tree.stage(changes, await tree.read());
    await tree.swap(staged);
    await tree.rollBack(staged);
    assert.deepEqual(await snapshot(`${root}/stream.d`), before);

    // Cut a swap off after its journal and first rename: the third file's staged copy is missing.
    for (let cut = 1; cut <= changes.length; cut += 1) {
      const again = await tree.stage(changes, await tree.read());
      const third = again.staged.get('_conductor_9002.conf') as string;
      if (cut < 3) await rm(third);
      if (cut === 1) await rm(again.staged.get('_conductor_9000.conf') as string);
      await tree.swap(again).catch(() => undefined);
      const restarted = new ConfigTree({ streamDir: `${root}/stream.d`, streamPrefix: '_conductor_', stateDir: root, certDir: `${root}/certs` });
      const restored = await restarted.open();
      assert.equal(restored, changes.length, `cut ${cut}: the journal was not found`);
      assert.deepEqual(await snapshot(`${root}/stream.d`), before, `cut ${cut}: not the old tree`);
    }
  });
});
