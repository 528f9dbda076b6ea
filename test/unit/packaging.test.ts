/**
 * The ways Portico is started agree: `make start`, `npm start`, the container and `make bench` all run
 * bin/portico, which holds node's heap flags, so the memory figures in bench/RESULTS.md hold for each.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { REPO } from '../helpers/portico.js';

const run = promisify(execFile);

async function launcherFlags(): Promise<string[]> {
  const line = /^node_flags='(.*)'$/m.exec(await readFile(`${REPO}/bin/portico`, 'utf8'));
  assert.ok(line, "bin/portico defines node_flags='…'");
  return (line[1] as string).split(/\s+/);
}

/**
 * What bin/portico hands node, seen by running it with `node` on PATH replaced by a script that
 * prints its arguments and NGINX_BIN.
 */
async function launch(env: Record<string, string>): Promise<string[]> {
  const dir = await mkdtemp(`${os.tmpdir()}/portico-launcher-`);
  try {
    await writeFile(`${dir}/node`, '#!/bin/sh\nprintf "%s\\n" "NGINX_BIN=$NGINX_BIN" "$@"\n');
    await chmod(`${dir}/node`, 0o755);
    const { stdout } = await run(`${REPO}/bin/portico`, [], {
      env: { PATH: `${dir}:/usr/bin:/bin`, ...env },
      timeout: 5000,
    });
    return stdout.trimEnd().split('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('packaging', () => {
  it('bin/portico runs dist/main.js with its heap flags, and only heap flags', async () => {
    const flags = await launcherFlags();
    for (const flag of flags) assert.match(flag, /^--max-(semi|old)-space-size=\d+$/);
    const argv = await launch({ NGINX_BIN: '/x/nginx' });
    assert.deepEqual(argv, ['NGINX_BIN=/x/nginx', ...flags, `${resolve(REPO)}/dist/main.js`]);
  });

  it('PORTICO_NODE_FLAGS replaces the flags, and an empty one means node defaults', async () => {
    assert.deepEqual((await launch({ NGINX_BIN: 'n', PORTICO_NODE_FLAGS: '--max-old-space-size=1024' })).slice(1), [
      '--max-old-space-size=1024',
      `${resolve(REPO)}/dist/main.js`,
    ]);
    assert.deepEqual((await launch({ NGINX_BIN: 'n', PORTICO_NODE_FLAGS: '' })).slice(1), [`${resolve(REPO)}/dist/main.js`]);
  });

  it("without NGINX_BIN, bin/portico takes the nginx install-nginx.sh chose (.nginx-bin), as make start does", async (t) => {
    let chosen: string;
    try {
      chosen = (await readFile(`${REPO}/.nginx-bin`, 'utf8')).trim();
    } catch {
      t.skip('no .nginx-bin in this checkout (make nginx writes it)');
      return;
    }
    assert.equal((await launch({}))[0], `NGINX_BIN=${chosen}`);
  });

  it("make start, npm start and the container's ENTRYPOINT all run bin/portico", async () => {
    const makefile = await readFile(`${REPO}/Makefile`, 'utf8');
    assert.match(makefile, /^start: build\n\t@NGINX_BIN="\$\$\(cat \$\(NGINX_STAMP\)\)" exec bin\/portico$/m);
    const pkg = JSON.parse(await readFile(`${REPO}/package.json`, 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.start, 'bin/portico');
    const dockerfile = await readFile(`${REPO}/Dockerfile`, 'utf8');
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
    assert.ok(entrypoint, 'the Dockerfile has an exec-form ENTRYPOINT');
    assert.deepEqual(JSON.parse(entrypoint[1] as string), ['/opt/portico/bin/portico']);
    assert.match(dockerfile, /^COPY --from=build \/src\/bin \.\/bin$/m);
    assert.match(await readFile(`${REPO}/.dockerignore`, 'utf8'), /^!bin\/$/m);
  });

  it('no other node command line names heap flags of its own', async () => {
    for (const file of ['Makefile', 'Dockerfile', 'package.json', 'bench/portico.ts', 'bench/run.ts']) {
      assert.doesNotMatch(await readFile(`${REPO}/${file}`, 'utf8'), /--max-(semi|old)-space-size=\d/, file);
    }
  });

  it('the Dockerfile and docker-compose.yml name the same default base images, and the compose file no other image', async () => {
    const dockerfile = await readFile(`${REPO}/Dockerfile`, 'utf8');
    const compose = await readFile(`${REPO}/docker-compose.yml`, 'utf8');
    const args = Object.fromEntries([...dockerfile.matchAll(/^ARG (NODE_IMAGE|NGINX_IMAGE)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
    assert.deepEqual(Object.keys(args).sort(), ['NGINX_IMAGE', 'NODE_IMAGE']);
    assert.match(dockerfile, /^FROM \$\{NODE_IMAGE\} AS build$/m);
    assert.match(dockerfile, /^FROM \$\{NGINX_IMAGE\} AS runtime$/m);
    const defaults = [...compose.matchAll(/\$\{(NODE_IMAGE|NGINX_IMAGE):-([^}]+)\}/g)];
    assert.ok(defaults.length >= 4, 'the compose file reads NODE_IMAGE and NGINX_IMAGE');
    for (const [, name, value] of defaults) assert.equal(value, args[name as string], `docker-compose.yml's default for ${name}`);
    // Every image: line is one of the two variables, or the image the compose file builds itself.
    const images = [...compose.matchAll(/^\s+image: (.*)$/gm)].map((m) => m[1]);
    for (const image of images) assert.match(image as string, /^(\$\{(NODE_IMAGE|NGINX_IMAGE):-[^}]+\}|portico:local)$/);
  });

  it('the Dockerfile pulls nothing a registry-less engine cannot have: no BuildKit syntax line', async () => {
    assert.doesNotMatch(await readFile(`${REPO}/Dockerfile`, 'utf8'), /^#\s*syntax=/m);
  });
});
