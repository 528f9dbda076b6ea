/**
 * `nginx -t` as Portico runs it, against configs laid out as in nginx.org's container image, whose
 * /var/log/nginx/access.log and error.log are links to /dev/stdout and /dev/stderr. Found by the
 * compose sidecar test: with node's pipes (socket pairs) as nginx's output, opening such a link fails
 * (ENXIO) and Portico refused a config the nginx container ran.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { testConfig } from '../../src/nginx/exec.js';
import { nginxBin, tempDir } from '../helpers/portico.js';

async function imageLikeTree(extra: string): Promise<string> {
  const root = await tempDir('nginx-t-links');
  await mkdir(`${root}/logs`);
  await symlink('/dev/stdout', `${root}/logs/access.log`);
  await symlink('/dev/stderr', `${root}/logs/error.log`);
  const conf = `${root}/nginx.conf`;
  await writeFile(
    conf,
    [
      `error_log ${root}/logs/error.log notice;`,
      `pid ${root}/nginx.pid;`,
      'events { worker_connections 64; }',
      `http { access_log ${root}/logs/access.log; ${extra} }`,
      '',
    ].join('\n'),
  );
  return conf;
}

const scratchFiles = async (): Promise<string[]> => (await readdir(tmpdir())).filter((name) => name.startsWith(`portico-nginx-t-${process.pid}-`));

describe('nginx -t of a tree whose logs link to /dev/stdout and /dev/stderr (the official image)', () => {
  const cmd = () => ({ bin: nginxBin(), prefix: undefined, timeoutMs: 10_000 });

  it('passes, as the nginx master running that tree does', async () => {
    const result = await testConfig(cmd(), await imageLikeTree(''));
    assert.deepEqual(result.lines, []);
    assert.equal(result.ok, true);
  });

  it('still answers nginx\'s own line for an error, and leaves no scratch file behind', async () => {
    const result = await testConfig(cmd(), await imageLikeTree('server { listen 127.0.0.1:1 bogus_flag; }'));
    assert.equal(result.ok, false);
    assert.match(result.lines.join('\n'), /\[emerg\] invalid parameter "bogus_flag"/);
    assert.deepEqual(await scratchFiles(), []);
  });
});
