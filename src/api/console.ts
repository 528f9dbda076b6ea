/**
 * GET /ui: the console for people (issue 17), a page of this origin over the same JSON API scripts
 * use. The page and its script and style are static files of ui/ (no data in them: the script
 * fetches everything with the token, asked for once and kept in sessionStorage), so they need no
 * token to load; what they show does. Served under a Content-Security-Policy with no 'unsafe-inline'
 * at all, never framed, never cached across a deploy.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Router, type NextFunction, type Request, type Response } from 'express';

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

const UPLOT_DIR = fileURLToPath(new URL('../../node_modules/uplot/dist/', import.meta.url));

const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/**
 * The console's files, by the path they are served at: the page, each script module and style of
 * ui/ (named in lower case, with dashes), and the chart library's module and style as npm installed
 * them. A fixed list, made once: no path of a request ever reaches the file system.
 */
export const CONSOLE_FILES: ReadonlyArray<{ path: string; file: string; type: string }> = [
  { path: '/ui', file: `${CONSOLE_DIR}index.html`, type: TYPES.html! },
  ...readdirSync(CONSOLE_DIR)
    .filter((name) => /^[a-z][a-z-]*\.(js|css)$/.test(name))
    .sort()
    .map((name) => ({ path: `/ui/${name}`, file: `${CONSOLE_DIR}${name}`, type: TYPES[name.split('.').pop()!]! })),
  { path: '/ui/vendor/uPlot.esm.js', file: `${UPLOT_DIR}uPlot.esm.js`, type: TYPES.js! },
  { path: '/ui/vendor/uPlot.min.css', file: `${UPLOT_DIR}uPlot.min.css`, type: TYPES.css! },
];

function pageHeaders(res: Response): void {
  res.set({ 'Content-Security-Policy': CONSOLE_CSP, 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' });
}

export function consoleRouter(): Router {
  const router = Router();
  // Read once, at the first request: the files ship with Portico and do not change under it.
  const texts = new Map<string, Promise<string>>();
  const byPath = new Map(CONSOLE_FILES.map((entry) => [entry.path, entry]));
  const serve = async (req: Request, res: Response, next: NextFunction) => {
    const entry = byPath.get(req.path);
    if (entry === undefined) return next(); // not a file of the console: the API's 404
    let text = texts.get(entry.path);
    if (text === undefined) {
      text = readFile(entry.file, 'utf8');
      texts.set(entry.path, text);
    }
    pageHeaders(res);
    res.type(entry.type).send(await text);
  };
  router.get('/ui', serve);
  router.get('/ui/:file', serve);
  router.get('/ui/vendor/:file', serve);
  return router;
}
