/**
 * scripts/install-nginx.sh decides what to build from and refuses what it cannot trust, before it
 * compiles anything: these cases end before the build (a real build is `make check-install`'s, which
 * CI runs on every run). Each runs the script with an empty prefix, no NGINX_BIN and no nginx on PATH.
 *
 * The "earlier build" below is a shell script answering `nginx -V` as an nginx 1.26.3 would: the
 * script reads nothing else from a binary, and building a real 1.26.3 would cost a minute.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { after, before, describe, it } from 'node:test';
import { REPO } from '../helpers/portico.js';

const SCRIPT = `${REPO}/scripts/install-nginx.sh`;
const PINNED = ['nginx_1.30.4.orig.tar.xz', 'nginx_1.28.2.orig.tar.xz', 'nginx_1.26.3.orig.tar.gz'];
const MODULES = ['http_v3_module', 'http_v2_module', 'http_ssl_module', 'stream', 'stream_ssl_module', 'stream_ssl_preread_module', 'stream_realip_module'];

/** PATH without any folder that holds an nginx, so the script finds none to reuse. */
const CLEAN_PATH = (process.env.PATH ?? '/usr/bin:/bin')
  .split(':')
  .filter((dir) => dir !== '' && !existsSync(`${dir}/nginx`))
  .join(':');

interface Outcome {
  code: number;
  stderr: string;
}

function install(dir: string, env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      SCRIPT,
      [],
      { env: { PATH: CLEAN_PATH, HOME: dir, NGINX_PREFIX: `${dir}/nginx`, NGINX_BIN_FILE: `${dir}/nginx-bin`, ...env }, timeout: 60_000 },
      (error, _stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr }),
    );
  });
}

/**
 * A tar.gz of nginx-VERSION/ whose `configure` leaves a mark: were the archive ever unpacked and
 * built, the mark would exist.
 */
async function tamperedTarball(dir: string, name: string, version: string): Promise<string> {
  const src = `${dir}/src/nginx-${version}`;
  await mkdir(src, { recursive: true });
  await writeFile(`${src}/configure`, `#!/bin/sh\ntouch ${dir}/configure-ran\nexit 1\n`);
  await chmod(`${src}/configure`, 0o755);
  const file = `${dir}/${name}`;
  await new Promise<void>((resolve, reject) =>
    execFile('tar', ['-czf', file, '-C', `${dir}/src`, `nginx-${version}`], (error) => (error ? reject(error) : resolve())),
  );
  return file;
}

/** An nginx 1.26.3 "built earlier" in PREFIX, as far as `nginx -V` tells. */
async function earlierBuild(prefix: string): Promise<string> {
  await mkdir(`${prefix}/sbin`, { recursive: true });
  const bin = `${prefix}/sbin/nginx`;
  const options = MODULES.map((m) => `--with-${m}`).join(' ');
  await writeFile(bin, `#!/bin/sh\necho 'nginx version: nginx/1.26.3' >&2\n[ "$1" = -V ] && echo 'configure arguments: ${options}' >&2\nexit 0\n`);
  await chmod(bin, 0o755);
  return bin;
}

describe('install-nginx.sh', { timeout: 120_000 }, () => {
  let dir: string;
  let mirror: Server;
  let mirrorUrl: string;
  const requested: string[] = [];
  let tampered: Buffer;

  before(async () => {
    dir = await mkdtemp(`${os.tmpdir()}/portico-install-test-`);
    tampered = await readFile(await tamperedTarball(`${dir}/t`, 'nginx_1.30.4.orig.tar.gz', '1.30.4'));
    // A mirror on loopback serving a tampered 1.30.4 and nothing else.
    mirror = createServer((request, response) => {
      requested.push(request.url ?? '');
      if (request.url === `/debian/pool/main/n/nginx/${PINNED[0]}`) response.end(tampered);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
    mirrorUrl = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}/debian`;
  });

  after(async () => {
    await new Promise<void>((resolve) => mirror.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('a local tarball of a pinned version whose checksum differs is never unpacked, and nothing is installed', async () => {
    const case1 = `${dir}/local`;
    const file = await tamperedTarball(case1, 'nginx-1.30.4.tar.gz', '1.30.4');
    const { code, stderr } = await install(case1, { NGINX_SOURCE_TARBALL: file });
    assert.equal(code, 1, stderr);
    assert.match(stderr, /NGINX_SOURCE_TARBALL=.*nginx-1\.30\.4\.tar\.gz: its sha256 differs from the pin of nginx 1\.30\.4 \(not unpacked\)/);
    assert.equal(existsSync(`${case1}/configure-ran`), false, 'configure ran');
    assert.equal(existsSync(`${case1}/nginx/sbin/nginx`), false);
    assert.equal(existsSync(`${case1}/nginx-bin`), false);
  });

  it("tries every pin newest first; a download whose checksum differs is never unpacked; the message lists each source and what to do", async () => {
    const case2 = `${dir}/mirror`;
    await mkdir(case2);
    requested.length = 0;
    const { code, stderr } = await install(case2, { NGINX_MIRROR: mirrorUrl });
    assert.equal(code, 1, stderr);
    assert.deepEqual(requested, PINNED.map((name) => `/debian/pool/main/n/nginx/${name}`));
    assert.match(stderr, new RegExp(`${PINNED[0]}: sha256 [0-9a-f]{64} differs from its pin \\(not unpacked\\)`));
    for (const name of PINNED.slice(1)) assert.match(stderr, new RegExp(`- ${mirrorUrl}/pool/main/n/nginx/${name.replaceAll('.', '\\.')}: .*404`));
    assert.match(stderr, /NGINX_BIN=\/path\/to\/nginx: an nginx >= 1\.25/);
    assert.match(stderr, /NGINX_SOURCE_TARBALL=\/path\/to\/nginx-1\.30\.4\.tar\.gz/);
    assert.equal(existsSync(`${dir}/t/configure-ran`), false, 'configure ran');
    assert.equal(existsSync(`${case2}/nginx/sbin/nginx`), false);
  });

  it('an nginx it built earlier, older than the first pin, is rebuilt once: kept when no source can be had, not retried after', async () => {
    const case3 = `${dir}/earlier`;
    const bin = await earlierBuild(`${case3}/nginx`);
    const closed = 'http://127.0.0.1:9/debian';
    const first = await install(case3, { NGINX_MIRROR: closed });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /is nginx 1\.26\.3, older than 1\.30\.4: rebuilding it once/);
    assert.match(first.stderr, /fetching http:\/\/127\.0\.0\.1:9\/debian\/pool\/main\/n\/nginx\/nginx_1\.30\.4\.orig\.tar\.xz/);
    assert.match(first.stderr, new RegExp(`keeping ${bin}`));
    assert.equal((await readFile(`${case3}/nginx-bin`, 'utf8')).trim(), bin);
    assert.match(await readFile(`${case3}/nginx/portico-build.txt`, 'utf8'), /^attempted=1\.30\.4$/m);

    const second = await install(case3, { NGINX_MIRROR: closed });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /building 1\.30\.4 was tried once already/);
    assert.doesNotMatch(second.stderr, /fetching/);
    assert.equal((await readFile(`${case3}/nginx-bin`, 'utf8')).trim(), bin);
  });

  it("a failed NGINX_SOURCE_TARBALL is the user's try, not the one attempt at the pins: the next run without it still tries them", async () => {
    const case5 = `${dir}/local-then-pins`;
    const bin = await earlierBuild(`${case5}/nginx`);
    const file = await tamperedTarball(case5, 'nginx-1.30.4.tar.gz', '1.30.4');
    const local = await install(case5, { NGINX_SOURCE_TARBALL: file });
    assert.equal(local.code, 0, local.stderr);
    assert.match(local.stderr, new RegExp(`keeping ${bin}`));
    assert.equal(existsSync(`${case5}/configure-ran`), false, 'configure ran');
    assert.equal(existsSync(`${case5}/nginx/portico-build.txt`), false);
    const pins = await install(case5, { NGINX_MIRROR: 'http://127.0.0.1:9/debian' });
    assert.match(pins.stderr, /fetching http:\/\/127\.0\.0\.1:9\/debian\/pool\/main\/n\/nginx\/nginx_1\.30\.4\.orig\.tar\.xz/);
    assert.match(await readFile(`${case5}/nginx/portico-build.txt`, 'utf8'), /^attempted=1\.30\.4$/m);
  });

  it('an nginx the user passes as NGINX_BIN is used as it is when it qualifies, even older than the pins', async () => {
    const case4 = `${dir}/user`;
    const bin = await earlierBuild(`${case4}/elsewhere`);
    const { code, stderr } = await install(case4, { NGINX_BIN: bin, NGINX_MIRROR: 'http://127.0.0.1:9/debian' });
    assert.equal(code, 0, stderr);
    assert.match(stderr, new RegExp(`using ${bin}`));
    assert.doesNotMatch(stderr, /fetching|rebuilding/);
    assert.equal((await readFile(`${case4}/nginx-bin`, 'utf8')).trim(), bin);
  });
});
