/**
 * GET /openapi.json (the document) and GET /docs (Swagger UI's reference page, rendered in the
 * browser from that document). Swagger UI is served from the installed swagger-ui-dist package,
 * never a CDN: the machine may be offline. The page holds no inline script (its initializer is
 * /docs/docs.js), so it runs under a Content-Security-Policy that allows scripts of this origin
 * only, and no page may frame it. Both need no token (scopes.ts); the browser guard applies, and a
 * browser that opens /docs from the address bar, then loads its files, is the API's own origin.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Router, type Response } from 'express';
import { openApiDocument } from './document.js';

const SWAGGER_UI_DIR = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/swagger-ui-bundle.js'));

/**
 * Scripts and styles of this origin only; Swagger UI sets style attributes (hence 'unsafe-inline'
 * for styles, never for scripts) and draws its icons as data: images; it fetches /openapi.json and,
 * with "Try it out", the API itself.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Portico API reference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<noscript>This page renders <a href="/openapi.json">/openapi.json</a> with JavaScript.</noscript>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
`;

/** The page's initializer, a file of its own so that no inline script is needed. */
const INITIALIZER = `"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
`;

function pageHeaders(res: Response): void {
  res.set({ 'Content-Security-Policy': DOCS_CSP, 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-cache' });
}

export function docsRouter(version: string): Router {
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.set('Cache-Control', 'no-cache').json(openApiDocument(version));
  });
  router.get('/docs', (_req, res) => {
    pageHeaders(res);
    res.type('text/html; charset=utf-8').send(PAGE);
  });
  router.get('/docs/docs.js', (_req, res) => {
    pageHeaders(res);
    res.type('text/javascript; charset=utf-8').send(INITIALIZER);
  });
  for (const [file, type] of [
    ['swagger-ui-bundle.js', 'text/javascript; charset=utf-8'],
    ['swagger-ui.css', 'text/css; charset=utf-8'],
  ] as const) {
    router.get(`/docs/${file}`, (_req, res, next) => {
      pageHeaders(res);
      res.type(type).sendFile(path.join(SWAGGER_UI_DIR, file), (error) => {
        if (error) next(error);
      });
    });
  }
  return router;
}
