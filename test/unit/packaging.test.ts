/**
 * The ways Portico is started agree: `make start` and the container run node with the same flags
 * (the Makefile's NODE_FLAGS, which `make bench` also measures), so the memory figures in
 * bench/RESULTS.md hold for both.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { REPO } from '../helpers/portico.js';

async function makefileFlags(): Promise<string[]> {
  const makefile = await readFile(`${REPO}/Makefile`, 'utf8');
  const line = /^NODE_FLAGS := (.*)$/m.exec(makefile);
  assert.ok(line, 'the Makefile defines NODE_FLAGS');
  return (line[1] as string).trim().split(/\s+/);
}

describe('packaging', () => {
  it("the container's ENTRYPOINT runs node with the Makefile's NODE_FLAGS", async () => {
    const dockerfile = await readFile(`${REPO}/Dockerfile`, 'utf8');
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
    assert.ok(entrypoint, 'the Dockerfile has an exec-form ENTRYPOINT');
    const argv = JSON.parse(entrypoint[1] as string) as string[];
    assert.deepEqual(argv, ['node', ...(await makefileFlags()), '/opt/portico/dist/main.js']);
  });

  it('make start and make bench pass NODE_FLAGS on', async () => {
    const makefile = await readFile(`${REPO}/Makefile`, 'utf8');
    assert.match(makefile, /exec node \$\(NODE_FLAGS\) dist\/main\.js/);
    assert.match(makefile, /PORTICO_NODE_FLAGS="\$\(NODE_FLAGS\)" node --import tsx bench\/run\.ts/);
    for (const flag of await makefileFlags()) assert.match(flag, /^--max-(semi|old)-space-size=\d+$/);
  });
});
