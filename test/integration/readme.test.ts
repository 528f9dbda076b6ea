/**
 * The README's opening sections run as written on a fresh machine right after `make start`.
 *
 * The blocks are read from README.md itself, so the README and this test cannot drift apart. Every
 * ```sh block of the opening sections (the top, Examples, Streams, HTTP apps, Certificates) runs, in
 * order, in one bash session, as a newcomer pastes them into one terminal: `cd` and background
 * backends carry over from one block to the next. The first block, `make start` and `make test`, starts Portico
 * the way `make start` runs it: bin/portico's node flags, the checkout as working directory, the
 * nginx `make` installed, default settings; but src through tsx, not dist/ (`make test` builds none).
 * A block fails on its first command that exits non-zero (errexit and pipefail), and every answer it
 * shows as `# → ...` must appear in its output, in order. A fenced block of these sections with
 * another info string (```text) is one the README itself marks as not runnable here: reported as
 * skipped. README_TEST_VERBOSE=1 prints each block's output.
 *
 * The examples use localhost:5000 and fixed ports (9000-9009, 8080, 8443, the backends' 5432 and
 * 3000), which other tests running alongside or a developer's own Portico may hold: everything runs
 * in a private network namespace (loopback only, every port free), whose pid namespace makes sure
 * that stopping one pid stops every process the blocks started. STATE_DIR and HOME are temporary.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureCommands, namespaceUnavailable, startNamespace, type Entered, type Namespace } from '../helpers/netns.js';
import { eventually } from '../helpers/net.js';
import { REPO, nginxBin } from '../helpers/portico.js';
import { commandLines, fencedBlocks, sections, shownAnswers, type FencedBlock } from '../helpers/readme-blocks.js';

/** The sections a newcomer reads and pastes first, in the README's order ('' is the top). */
const OPENING = ['', 'Examples', 'Streams', 'HTTP apps', 'Certificates'];
/** What `make start` prints once the API listens (the README promises it). */
const LISTENING = 'portico listening on http://127.0.0.1:5000';
const BLOCK_TIMEOUT_MS = 60_000;

const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
const opening = fencedBlocks(readme).filter((block) => OPENING.includes(block.section));
const unavailable = await namespaceUnavailable();

/** `make start`'s node flags: it runs bin/portico, which holds them (`node_flags='...'`). */
async function makeStartNodeFlags(): Promise<string[]> {
  const makefile = await readFile(path.join(REPO, 'Makefile'), 'utf8');
  assert.match(makefile, /^start:.*\n(\t.*\n)*\t.*\bbin\/portico\b/m, 'make start no longer runs bin/portico: update how this test starts Portico');
  const launcher = await readFile(path.join(REPO, 'bin', 'portico'), 'utf8');
  const flags = /^node_flags='([^']*)'$/m.exec(launcher)?.[1];
  assert.ok(flags !== undefined, "bin/portico holds no node_flags='...' line: update how this test starts Portico");
  return flags.trim().split(/\s+/).filter((flag) => flag !== '');
}

/** The README's first block: its two commands, of which `make start` is run (`make test` is what runs this). */
const isMakeStart = (block: FencedBlock): boolean => commandLines(block).join('\n') === 'make start\nmake test';

/** What a block is about, for its test's title: its first comment, else its first command. */
const headline = (block: FencedBlock): string =>
  /^\s*# (?!→)(.*)$/m.exec(block.text)?.[1]?.trim() ?? commandLines(block)[0] ?? '(empty)';

/** Where `block` is, for a failure message. */
const describeBlock = (block: FencedBlock): string => `README.md line ${block.line} (${block.section || 'top'})`;

describe("the README's opening examples, as a newcomer runs them after `make start`", { skip: unavailable }, () => {
  let work: string;
  let ns: Namespace;
  let portico: Entered | undefined;
  let porticoOutput = '';
  let session: Entered | undefined;
  let sessionOutput = '';
  let failed = false;

  before(async () => {
    await ensureCommands({ ip: 'iproute2', curl: 'curl', openssl: 'openssl', jq: 'jq', timeout: 'coreutils' });
    work = await mkdtemp(path.join(tmpdir(), 'portico-readme-'));
    await mkdir(path.join(work, 'home'));
    await mkdir(path.join(work, 'blocks'));
    // In a terminal curl shows no progress meter for an answer it prints; through a pipe it would.
    await writeFile(path.join(work, 'home', '.curlrc'), 'no-progress-meter\n');
    ns = await startNamespace(900);
  });

  after(async () => {
    session?.child.stdin?.end();
    if (session !== undefined && !(await session.exited(2000))) process.kill(session.pid, 'SIGKILL');
    if (portico !== undefined) {
      try {
        process.kill(portico.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await portico.exited(15_000);
    }
    await ns?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('the opening sections are all there, in order, and hold shell examples', () => {
    const all = sections(readme);
    const found = OPENING.slice(1).map((name) => all.indexOf(name));
    assert.ok(found.every((index) => index >= 0), `README.md lacks a section of ${JSON.stringify(OPENING.slice(1))}: it has ${JSON.stringify(all)}`);
    assert.deepEqual(found, [...found].sort((a, b) => a - b), 'the opening sections are out of order');
    assert.ok(opening.filter((block) => block.info === 'sh').length >= 8, 'fewer shell blocks than expected in the opening sections');
    assert.ok(opening[0] !== undefined && isMakeStart(opening[0]), 'the first block of README.md is no longer `make start` and `make test`');
  });

  /** Starts Portico as `make start` does, in the namespace, and waits for its "listening" line. */
  const startPortico = async (): Promise<void> => {
    const flags = await makeStartNodeFlags();
    portico = await ns.spawn(process.execPath, [...flags, '--import', 'tsx', 'src/main.ts'], {
      cwd: REPO,
      env: { PATH: process.env.PATH, HOME: path.join(work, 'home'), NGINX_BIN: nginxBin(), STATE_DIR: path.join(work, 'state') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    portico.child.stdout?.on('data', (d: Buffer) => (porticoOutput += d.toString()));
    portico.child.stderr?.on('data', (d: Buffer) => (porticoOutput += d.toString()));
    const up = await eventually(() => porticoOutput.includes(LISTENING) || portico?.child.exitCode !== null, 30_000, 50);
    assert.ok(up && portico.child.exitCode === null, `Portico did not print "${LISTENING}" within 30 s:\n${porticoOutput}`);
  };

  /** The newcomer's second terminal: one bash, reading block after block, stopping at the first failure. */
  const openSession = async (): Promise<Entered> => {
    const shell = await ns.spawn('bash', ['--norc', '--noprofile'], {
      cwd: REPO,
      env: { PATH: process.env.PATH, HOME: path.join(work, 'home'), LANG: 'C.UTF-8', TERM: 'dumb' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    shell.child.stdout?.on('data', (d: Buffer) => (sessionOutput += d.toString()));
    shell.child.stderr?.on('data', (d: Buffer) => (sessionOutput += d.toString()));
    // Once bash has exited (a block failed), ending its stdin must not throw EPIPE at the runner.
    shell.child.stdin?.on('error', () => {});
    shell.child.stdin?.write('exec 2>&1\nset -e -o pipefail\n');
    return shell;
  };

  /** Runs one block in the session; answers its output, or fails with the block and its output. */
  const runBlock = async (block: FencedBlock, index: number): Promise<{ output: string; ms: number }> => {
    session ??= await openSession();
    const file = path.join(work, 'blocks', `${String(index).padStart(2, '0')}.sh`);
    await writeFile(file, block.text);
    const marker = `@@readme block ${index} done@@`;
    const start = sessionOutput.length;
    const started = Date.now();
    session.child.stdin?.write(`source '${file}' </dev/null\nprintf '\\n%s\\n' '${marker}'\n`);
    const ended = await eventually(() => sessionOutput.includes(marker, start) || session?.child.exitCode !== null, BLOCK_TIMEOUT_MS, 20);
    const output = sessionOutput.slice(start).replaceAll('\r', '');
    const done = output.indexOf(marker);
    if (done < 0) {
      const why = !ended
        ? `did not finish within ${BLOCK_TIMEOUT_MS / 1000} s`
        : `exited with status ${session.child.exitCode ?? session.child.signalCode} (a command failed; errexit and pipefail are on)`;
      throw new Error(`${describeBlock(block)} ${why}.\n--- the block ---\n${block.text}--- its output ---\n${output}\n--- Portico's log (last 3,000 characters) ---\n${porticoOutput.slice(-3000)}`);
    }
    return { output: output.slice(0, done), ms: Date.now() - started };
  };

  for (const [index, block] of opening.entries()) {
    if (block.info !== 'sh') {
      it(`${describeBlock(block)}: a \`\`\`${block.info || '(no info)'} block`, { skip: 'the README marks it as not runnable here (see the prose before it)' }, () => {});
      continue;
    }
    const title = isMakeStart(block) ? `${describeBlock(block)}: make start (Portico as make start runs it)` : `${describeBlock(block)}: ${headline(block)}`;
    it(title, async (t) => {
      if (failed) {
        t.skip('an earlier block failed; this one depends on what it left');
        return;
      }
      try {
        if (isMakeStart(block)) {
          assert.equal(index, 0, 'a `make start` block after the first');
          await startPortico();
          return;
        }
        assert.ok(portico !== undefined, 'the README runs an example before its `make start` block');
        assert.ok(!commandLines(block).some((line) => /^make\b/.test(line)), `${describeBlock(block)} runs make: mark it \`\`\`text in the README, or leave it out of the opening sections`);
        const { output, ms } = await runBlock(block, index);
        t.diagnostic(`ran in ${ms} ms`);
        if (process.env.README_TEST_VERBOSE === '1') t.diagnostic(`output:\n${output}`);
        let from = 0;
        for (const answer of shownAnswers(block)) {
          const at = output.indexOf(answer, from);
          assert.ok(at >= 0, `${describeBlock(block)} shows the answer\n  ${answer}\nwhich its output does not hold (after what the answers before it matched).\n--- the block ---\n${block.text}--- its output ---\n${output}`);
          from = at + answer.length;
        }
      } catch (error) {
        failed = true;
        throw error;
      }
    });
  }
});
