/**
 * Disk faults (issue 5): a full disk, a read-only config directory, and a file broken by hand. Each
 * answers a clear error naming the path, leaves the files as they were, and the running nginx keeps
 * serving; a broken file is reported by /v1/status and never deleted. The stream directory is a
 * tmpfs of 256 KiB mounted for the test (root only), on ports 28500-28509.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { eventually, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { pendingJournal, startInProcess, tempDir, type InProcess } from '../helpers/portico.js';

const FROM = 28500;
const root = process.getuid?.() === 0;

/** The .conf files of `dir` with their text, and whatever is left in its work folders. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.conf'))) out[name] = await readFile(`${dir}/${name}`, 'utf8');
  for (const sub of ['stage', 'backup']) {
    for (const name of await readdir(`${dir}/.portico/${sub}`).catch(() => [])) out[`.portico/${sub}/${name}`] = 'left behind';
  }
  for (const name of (await readdir(`${dir}/.portico`)).filter((n) => n.endsWith('.json') || n.endsWith('.tmp'))) {
    // The journal stays between batches (empty, or the last committed batch until its background
    // flush): only a batch never committed is left behind.
    if (name === 'journal.json' && !(await pendingJournal(dir))) continue;
    out[`.portico/${name}`] = 'left behind';
  }
  return out;
}

describe('disk faults (managed nginx, stream directory on a small tmpfs)', { skip: !root && 'mounting a tmpfs needs root' }, () => {
  let portico: InProcess;
  let echo: EchoServer;
  let dir: string;
  let streams: string;
  let mounted = false;

  before(async () => {
    echo = await startEcho('E:');
    dir = await tempDir('faults');
    streams = `${dir}/streams`;
    await mkdir(streams);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', streams]);
    mounted = true;
    portico = await startInProcess({ PORT_RANGE: `${FROM}-${FROM + 9}`, STREAM_CONFIG_PATH: streams });
    await request(portico.app).post('/v1/streams').send({ port: FROM, backend: `127.0.0.1:${echo.port}` }).expect(201);
  });
  after(async () => {
    await portico?.stop();
    if (mounted) execFileSync('umount', [streams]);
    await echo?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const serves = async (port: number): Promise<void> => {
    assert.equal(await roundTrip(port, 'ping', { expectBytes: 6 }), 'E:ping');
  };

  it('a full disk: changes answer 503 naming the file and ENOSPC, nothing changes, the running streams keep serving; space back, changes apply', async () => {
    const before = await snapshot(streams);
    // A hidden file: neither nginx's *.conf glob nor Portico reads it.
    await writeFile(`${streams}/.filler`, Buffer.alloc(512 * 1024)).catch(() => undefined);
    const create = await request(portico.app).post('/v1/streams').send({ port: FROM + 1, backend: `127.0.0.1:${echo.port}` }).expect(503);
    assert.equal(create.body.error.kind, 'StorageUnavailable');
    assert.match(create.body.error.message, new RegExp(`^applying stream ${FROM + 1}: writing ${streams}/\\S+: no space left on the device \\(ENOSPC\\)$`));
    const remove = await request(portico.app).delete(`/v1/streams/${FROM}`).expect(503);
    assert.match(remove.body.error.message, /no space left on the device \(ENOSPC\)/);
    assert.deepEqual(await snapshot(streams), before, 'the stream directory changed');
    assert.deepEqual((await request(portico.app).get('/v1/streams').expect(200)).body.map((s: { port: number }) => s.port), [FROM]);
    await serves(FROM);

    await rm(`${streams}/.filler`);
    await request(portico.app).post('/v1/streams').send({ port: FROM + 1, backend: `127.0.0.1:${echo.port}` }).expect(201);
    await serves(FROM + 1);
  });

  it('a read-only config directory: changes answer 503 naming the file and EROFS, the running streams keep serving; writable again, changes apply', async () => {
    const before = await snapshot(streams);
    execFileSync('mount', ['-o', 'remount,ro', streams]);
    try {
      const create = await request(portico.app).post('/v1/streams').send({ port: FROM + 2, backend: `127.0.0.1:${echo.port}` }).expect(503);
      assert.match(create.body.error.message, new RegExp(`writing ${streams}/\\S+: the file system is read-only \\(EROFS\\)`));
      const remove = await request(portico.app).delete(`/v1/streams/${FROM + 1}`);
      assert.equal(remove.status, 503, JSON.stringify(remove.body));
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', streams]);
    }
    assert.deepEqual(await snapshot(streams), before);
    await serves(FROM);
    await serves(FROM + 1);
    await request(portico.app).post('/v1/streams').send({ port: FROM + 2, backend: `127.0.0.1:${echo.port}` }).expect(201);
    await serves(FROM + 2);
  });

  it('a file broken by hand is reported by /v1/status and kept; nginx keeps serving it; changes name it until it is removed', async () => {
    const file = `${streams}/_conductor_${FROM + 1}.conf`;
    const broken = `server {\n    listen ${FROM + 1};\n    proxy_pass 127.0.0.1:${echo.port}\n}\n`; // no ";"
    await writeFile(file, broken);
    let status: { files: { unreadable: Array<{ name: string; reason: string }> } } | undefined;
    const reported = await eventually(async () => {
      status = (await request(portico.app).get('/v1/status').expect(200)).body;
      return (status?.files.unreadable.length ?? 0) > 0;
    }, 3000);
    assert.ok(reported && status !== undefined, 'the broken file was never reported');
    assert.equal(status.files.unreadable[0]?.name, `_conductor_${FROM + 1}.conf`);
    assert.match(status.files.unreadable[0]?.reason ?? '', /line 4: directive "proxy_pass" is not terminated by ";"/);
    await serves(FROM + 1);

    const create = await request(portico.app).post('/v1/streams').send({ port: FROM + 3, backend: `127.0.0.1:${echo.port}` }).expect(422);
    assert.match(create.body.error.message, new RegExp(`_conductor_${FROM + 1}\\.conf`));
    assert.equal(await readFile(file, 'utf8'), broken, 'the broken file was touched');
    await request(portico.app).put(`/v1/streams/${FROM + 1}`).send({ backend: `127.0.0.1:${echo.port}` }).expect(409);

    await request(portico.app).delete(`/v1/streams/${FROM + 1}`).expect(204);
    await request(portico.app).post('/v1/streams').send({ port: FROM + 3, backend: `127.0.0.1:${echo.port}` }).expect(201);
    await serves(FROM + 3);
  });
});
