/**
 * The README's recipe for API_TOKENS_FILE, run as written (bash, openssl, sha256sum): the file it
 * makes is one Portico reads, only its owner may read it, and each token it printed authenticates
 * with the scope the recipe gave it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Tokens } from '../../src/api/tokens.js';
import { REPO, tempDir } from '../helpers/portico.js';
import { fencedBlocks } from '../helpers/readme-blocks.js';

describe('the README\'s tokens recipe', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('tokens-readme');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('makes a file of hashes, readable by its owner alone, whose tokens authenticate as ci (write) and monitor (read)', async () => {
    const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
    const recipe = fencedBlocks(readme).filter((b) => b.section === 'Security' && b.info === 'sh' && b.text.includes('openssl rand'));
    assert.equal(recipe.length, 1, 'the Security section holds one sh block with openssl rand');
    // The recipe's variables hold the tokens; the test reads them back to present them.
    const script = `set -euo pipefail\n${recipe[0]?.text}printf '%s\\n' "$ci" "$monitor" > secrets\n`;
    await promisify(execFile)('bash', ['-c', script], { cwd: dir, timeout: 10_000 });
    const [ci = '', monitor = ''] = (await readFile(path.join(dir, 'secrets'), 'utf8')).trim().split('\n');
    assert.match(ci, /^[0-9a-f]{64}$/);
    assert.notEqual(ci, monitor);

    const file = path.join(dir, 'tokens');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const text = await readFile(file, 'utf8');
    assert.ok(!text.includes(ci) && !text.includes(monitor), 'the file holds a token');
    const tokens = await Tokens.load({ apiToken: undefined, file }, pino({ level: 'silent' }));
    assert.deepEqual(tokens?.find(ci), { name: 'ci', scope: 'write' });
    assert.deepEqual(tokens?.find(monitor), { name: 'monitor', scope: 'read' });
    assert.equal(tokens?.find(`${ci}\n`), undefined);
  });
});
