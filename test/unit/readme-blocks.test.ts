/**
 * Reading the README's fenced blocks (test/helpers/readme-blocks.ts), which the README test runs:
 * each block knows its `##` section and line, its shown answers and its commands.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandLines, fencedBlocks, sections, shownAnswers } from '../helpers/readme-blocks.js';

const markdown = [
  '# Title', // 1
  '```sh', // 2
  'make start   # runs it', // 3
  '```', // 4
  '## Examples', // 5
  '### A subsection', // 6
  '```sh', // 7
  '# a comment', // 8
  'curl --fail-with-body localhost:5000/getstreams', // 9
  '# → [{"listen":9000}]', // 10
  '```', // 11
  '## Later', // 12
  '```text', // 13
  '## not a heading inside a fence', // 14
  '```', // 15
  '',
].join('\n');

describe('README blocks', () => {
  it('every fenced block has its ## section (### belong to theirs), its opening line and its info string', () => {
    assert.deepEqual(
      fencedBlocks(markdown).map(({ section, line, info }) => ({ section, line, info })),
      [
        { section: '', line: 2, info: 'sh' },
        { section: 'Examples', line: 7, info: 'sh' },
        { section: 'Later', line: 13, info: 'text' },
      ],
    );
    assert.deepEqual(sections(markdown), ['Examples', 'Later']);
  });

  it('a block shows the answers of its `# → ` lines and has the commands of its other lines, comments removed', () => {
    const [start, example] = fencedBlocks(markdown);
    assert.ok(start !== undefined && example !== undefined);
    assert.deepEqual(commandLines(start), ['make start']);
    assert.deepEqual(commandLines(example), ['curl --fail-with-body localhost:5000/getstreams']);
    assert.deepEqual(shownAnswers(example), ['[{"listen":9000}]']);
  });

  it('an unclosed fence is an error naming its line', () => {
    assert.throws(() => fencedBlocks('text\n```sh\necho hi\n'), /line 2/);
  });
});
