/**
 * The fenced code blocks of a Markdown file (the README), with the `##` section each one is in, so a
 * test can run the README's own examples and the two cannot drift apart. Pure: text in, blocks out.
 */

export interface FencedBlock {
  /** The `##` heading the block is under (`###` belong to their `##`); '' before the first one. */
  section: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string: `sh`, `text`, ... ('' when none). */
  info: string;
  /** The lines between the fences, joined with '\n' (a final '\n' added). */
  text: string;
}

/** Every fenced block of `markdown`, in order. An unclosed fence is an error (the file is broken). */
export function fencedBlocks(markdown: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  let section = '';
  let open: { line: number; info: string; lines: string[] } | undefined;
  markdown.split('\n').forEach((line, index) => {
    if (open !== undefined) {
      if (line.trimEnd() === '```') {
        blocks.push({ section, line: open.line, info: open.info, text: `${open.lines.join('\n')}\n` });
        open = undefined;
      } else {
        open.lines.push(line);
      }
      return;
    }
    if (line.startsWith('```')) open = { line: index + 1, info: line.slice(3).trim(), lines: [] };
    else if (/^## /.test(line)) section = line.slice(3).trim();
  });
  if (open !== undefined) throw new Error(`the fence opened on line ${open.line} is never closed`);
  return blocks;
}

/** The `##` headings of `markdown`, in order. */
export function sections(markdown: string): string[] {
  const headings: string[] = [];
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    else if (!inFence && /^## /.test(line)) headings.push(line.slice(3).trim());
  }
  return headings;
}

/** The answers a block shows, one per `# → ...` line, in order (the text after the arrow). */
export function shownAnswers(block: FencedBlock): string[] {
  return block.text
    .split('\n')
    .map((line) => /^\s*# → (.*)$/.exec(line)?.[1])
    .filter((answer): answer is string => answer !== undefined);
}

/** The block's commands: its lines without comments (a `#` starting a word) and blank lines. */
export function commandLines(block: FencedBlock): string[] {
  return block.text
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, '').trim())
    .filter((line) => line !== '');
}
