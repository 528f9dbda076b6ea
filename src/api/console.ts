/**
 * GET /ui: the console for people (issue 17), a page of this origin over the same JSON API scripts
 * use. The page and its script and style are static files of ui/ (no data in them: the script
 * fetches everything with the token, asked for once and kept in sessionStorage), so they need no
 * token to load; what they show does. Served under a Content-Security-Policy with no 'unsafe-inline'
 * at all, never framed, never cached across a deploy.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Router, type Response } from 'express';

export const CONSOLE_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

/** Scripts, styles and connections of this origin only; no inline script or style, no frame, no form posts. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The console's files, by the path they are served at, with their media type. */
export const CONSOLE_FILES: ReadonlyArray<{ path: string; file: string; type: string }> = [
  { path: '/ui', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/ui/console.js', file: 'console.js', type: 'text/javascript; charset=utf-8' },
  { path: '/ui/console.css', file: 'console.css', type: 'text/css; charset=utf-8' },
];

function pageHeaders(res: Response): void {
  res.set({ 'Content-Security-Policy': CONSOLE_CSP, 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' });
}

export function consoleRouter(): Router {
  const router = Router();
  for (const { path, file, type } of CONSOLE_FILES) {
    // Read once, at the first request: the files ship with Portico and do not change under it.
    let text: Promise<string> | undefined;
    router.get(path, async (_req, res) => {
      text ??= readFile(`${CONSOLE_DIR}${file}`, 'utf8');
      pageHeaders(res);
      res.type(type).send(await text);
    });
  }
  return router;
}
