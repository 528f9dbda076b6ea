/**
 * API_TOKENS_FILE: its format (parseTokensFile), the table that finds a token's name and scope
 * (Tokens), and which scope each request needs (requiredScope).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { requiredScope } from '../../src/api/scopes.js';
import { TokensFileError, parseTokensFile, sha256 } from '../../src/api/tokens-file.js';
import { Tokens } from '../../src/api/tokens.js';

const hex = (token: string): string => sha256(token).toString('hex');
const CI = 'ci-token-0123456789abcdef';
const MONITOR = 'monitor-token-0123456789';

/** The message parseTokensFile throws for `text`. */
function refusal(text: string): string {
  try {
    parseTokensFile(text);
  } catch (error) {
    assert.ok(error instanceof TokensFileError);
    return error.message;
  }
  assert.fail('the file was accepted');
}

describe('parseTokensFile', () => {
  it('reads "name scope sha256" lines, skipping blank lines, # comments and a byte-order mark, with spaces, tabs or CRLF between', () => {
    const text = `\uFEFFci write ${hex(CI)}\r\n# Portico's tokens\n\n  monitor\tread\t${hex(MONITOR).toUpperCase()}  \n   # indented comment\n`;
    const entries = parseTokensFile(text);
    assert.deepEqual(entries.map((e) => [e.name, e.scope, e.hash.toString('hex')]), [
      ['ci', 'write', hex(CI)],
      ['monitor', 'read', hex(MONITOR)],
    ]);
  });

  it('refuses a malformed line naming its number and the rule, and never quotes the line', () => {
    const cases: Array<[string, RegExp]> = [
      [`ci write`, /^line 1: expected 3 fields "name scope sha256", found 2$/],
      [`\nci write ${hex(CI)}  -`, /^line 2: expected 3 fields .*found 4 \(drop the "-" sha256sum prints after the hash\)$/],
      [`ci admin ${hex(CI)}`, /^line 1: the scope must be "read" or "write"$/],
      [`ci write ${CI}`, /^line 1: the third field must be the token's SHA-256 as 64 hex digits/],
      [`-ci write ${hex(CI)}`, /^line 1: the name is invalid: /],
      [`c"i write ${hex(CI)}`, /^line 1: the name is invalid: /],
      [`${'n'.repeat(65)} write ${hex(CI)}`, /^line 1: the name is invalid: /],
      [`ci write ${hex('')}`, /^line 1: the hash is that of an empty token/],
      [`ci write ${hex(CI)}\n#\nci read ${hex(MONITOR)}`, /^line 3: the name is already used by line 1$/],
      [`ci write ${hex(CI)}\nmonitor read ${hex(CI)}`, /^line 2: the same token as line 1: one token has one name$/],
    ];
    for (const [text, expected] of cases) {
      const message = refusal(text);
      assert.match(message, expected, text);
      for (const field of [CI, hex(CI), hex(MONITOR), hex('')]) assert.ok(!message.includes(field), `${message} quotes the line`);
    }
  });

  it('takes API_TOKEN as a write token named "API_TOKEN" before the file\'s lines, refusing a repetition of its name or token', () => {
    const apiToken = { name: 'API_TOKEN', scope: 'write' as const, hash: sha256('legacy-token-0123456789') };
    assert.deepEqual(parseTokensFile(`ci read ${hex(CI)}`, [apiToken]).map((e) => e.name), ['API_TOKEN', 'ci']);
    assert.throws(() => parseTokensFile(`API_TOKEN read ${hex(CI)}`, [apiToken]), /line 1: the name is already used by API_TOKEN/);
    assert.throws(() => parseTokensFile(`ci read ${hex('legacy-token-0123456789')}`, [apiToken]), /line 1: the same token as API_TOKEN/);
  });

  it('refuses more than 10,000 tokens', () => {
    const lines = Array.from({ length: 10_001 }, (_, i) => `t${i} read ${hex(`token-${i}`)}`);
    assert.match(refusal(lines.join('\n')), /^line 10001: the file holds more than 10000 tokens$/);
  });
});

describe('Tokens', () => {
  let dir: string;
  const log = pino({ level: 'silent' });
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portico-tokens-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds a token\'s name and scope, and nothing for another token, an empty one or a hash presented as the token', async () => {
    const file = path.join(dir, 'find');
    await writeFile(file, `ci write ${hex(CI)}\nmonitor read ${hex(MONITOR)}\n`, { mode: 0o600 });
    const tokens = await Tokens.load({ apiToken: 'legacy-token-0123456789', file }, log);
    assert.deepEqual(tokens?.find(CI), { name: 'ci', scope: 'write' });
    assert.deepEqual(tokens?.find(MONITOR), { name: 'monitor', scope: 'read' });
    assert.deepEqual(tokens?.find('legacy-token-0123456789'), { name: 'API_TOKEN', scope: 'write' });
    for (const wrong of [`${CI}x`, CI.slice(0, -1), '', hex(CI), ` ${CI}`]) assert.equal(tokens?.find(wrong), undefined, wrong);
  });

  it('is undefined (the API is open) with neither API_TOKEN nor API_TOKENS_FILE', async () => {
    assert.equal(await Tokens.load({ apiToken: undefined, file: undefined }, log), undefined);
  });

  it('refuses a missing file, a directory, a FIFO (without waiting for a writer), a file over 1 MiB and a file every user may write, naming the file', async () => {
    await assert.rejects(Tokens.load({ apiToken: undefined, file: path.join(dir, 'absent') }, log), /API_TOKENS_FILE .*absent: cannot be read \(ENOENT\)/);
    await assert.rejects(Tokens.load({ apiToken: undefined, file: dir }, log), /is not a regular file/);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(Tokens.load({ apiToken: undefined, file: fifo }, log), /fifo: is not a regular file/);
    const large = path.join(dir, 'large');
    await writeFile(large, `# ${'x'.repeat(1024 * 1024)}\n`, { mode: 0o600 });
    await assert.rejects(Tokens.load({ apiToken: undefined, file: large }, log), /large: is larger than 1048576 bytes/);
    const open = path.join(dir, 'world-writable');
    await writeFile(open, `ci write ${hex(CI)}\n`);
    await chmod(open, 0o666);
    await assert.rejects(Tokens.load({ apiToken: undefined, file: open }, log), /world-writable: is writable by every user \(mode 0666\)/);
  });

  it('on reload takes the new file, and keeps the old table when the new one is malformed', async () => {
    const file = path.join(dir, 'reload');
    await writeFile(file, `ci write ${hex(CI)}\n`, { mode: 0o600 });
    const tokens = await Tokens.load({ apiToken: undefined, file }, log);
    assert.ok(tokens !== undefined);
    await writeFile(file, `ci read ${hex(CI)}\nmonitor read ${hex(MONITOR)}\n`);
    assert.equal(await tokens.reload(), undefined);
    assert.deepEqual(tokens.find(CI), { name: 'ci', scope: 'read' });
    await writeFile(file, `ci write ${hex(CI)}\nmonitor read ${MONITOR}\n`);
    assert.match(String(await tokens.reload()), /line 2: the third field must be/);
    assert.deepEqual(tokens.find(CI), { name: 'ci', scope: 'read' }, 'the old table stays');
    assert.deepEqual(tokens.find(MONITOR), { name: 'monitor', scope: 'read' });
    await rm(file);
    assert.match(String(await tokens.reload()), /cannot be read \(ENOENT\)/);
    assert.deepEqual(tokens.find(CI), { name: 'ci', scope: 'read' });
  });
});

describe('requiredScope', () => {
  it('calls every method but GET and HEAD a write, and the legacy GETs that create, remove or hand out a port', () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      assert.equal(requiredScope(method, '/v1/streams'), 'write', method);
      assert.equal(requiredScope(method, '/no/such/route'), 'write', method);
    }
    for (const method of ['GET', 'HEAD']) {
      for (const p of ['/createstream/9000/127.0.0.1:1', '/createstream', '/createstream/', '/createstream/a/b/c', '/removestream/9000', '/getfreeport', '/v1/ports/free']) {
        assert.equal(requiredScope(method, p), 'write', `${method} ${p}`);
      }
      for (const p of ['/status', '/getstreams', '/hasstream/9000', '/v1/streams', '/v1/streams/9000', '/v1/status', '/readyz', '/no/such/route']) {
        assert.equal(requiredScope(method, p), 'read', `${method} ${p}`);
      }
    }
  });

  it('sees a write route through odd spellings express still routes: any case, trailing slashes, percent-escapes', () => {
    for (const p of ['/CreateStream/9000/x:1', '/REMOVESTREAM/9000/', '/getfreeport//', '/%63reatestream/9000/x:1', '/V1/Ports/Free', '/removestream/%39000']) {
      assert.equal(requiredScope('GET', p), 'write', p);
    }
  });
});
