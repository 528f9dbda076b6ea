/**
 * A bench's own part of bench/RESULTS.md, between its markers: replaced in place when a previous
 * run put one there, else inserted before `before` (a heading of the document), else appended.
 * `make bench` rewrites RESULTS.md with bench/run.ts first, then each later bench puts its part in.
 */
import { readFile, writeFile } from 'node:fs/promises';

export async function putResultsSection(file: string, markers: { begin: string; end: string }, body: string, before: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const section = `${markers.begin}\n${body}${markers.end}\n\n`;
  const begin = text.indexOf(markers.begin);
  const end = text.indexOf(markers.end);
  let next: string;
  if (begin >= 0 && end > begin) next = text.slice(0, begin) + section + text.slice(end + markers.end.length).replace(/^\n+/, '');
  else {
    const at = text.indexOf(`\n${before}`);
    next = at < 0 ? `${text}\n${section}` : `${text.slice(0, at + 1)}${section}${text.slice(at + 1)}`;
  }
  await writeFile(file, next);
}
