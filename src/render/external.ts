/**
 * External mode's test configs. The operator's nginx.conf is not ours to render, so a test of a
 * staged tree copies it with the `include` of a directory's glob (streams or apps) replaced by the
 * staged tree's files. Pure.
 */
import path from 'node:path';
import { helpers } from './engine.js';

const INCLUDE = /(^|[\s;{}])include\s+(?:"([^"]*)"|'([^']*)'|([^\s;'"]+))\s*;/g;

/**
 * Replaces each `include` of `dir/*.conf` in `conf` by one `include` per file of `files`.
 * `confDir` resolves relative include paths as nginx does (against the main config's folder).
 * Answers the new text and how many includes were replaced (0: the config never includes the
 * directory, which start-up reports).
 */
export function retargetInclude(
  conf: string,
  confDir: string,
  dir: string,
  files: string[],
): { text: string; replaced: number } {
  const glob = path.join(dir, '*.conf');
  let replaced = 0;
  const text = conf.replace(INCLUDE, (whole, lead: string, dq: string | undefined, sq: string | undefined, bare: string | undefined, offset: number) => {
    const target = dq ?? sq ?? bare ?? '';
    const lineStart = conf.lastIndexOf('\n', offset) + 1;
    // An include after a "#" on its line is a comment (a "#" inside quotes is rare enough to ignore).
    if (conf.slice(lineStart, offset).includes('#')) return whole;
    if (path.resolve(confDir, target) !== glob) return whole;
    replaced += 1;
    const includes = files.map((file) => `include ${helpers.include(file)};`).join(' ');
    return `${lead}${includes}`;
  });
  return { text, replaced };
}
