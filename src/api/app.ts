/**
 * The HTTP API: express wiring of the routers, authentication, request logging and error mapping.
 */
import express from 'express';
import type { Logger } from 'pino';
import { PorticoError } from '../errors.js';
import { requireToken } from './auth.js';
import { browserGuard } from './browser-guard.js';
import type { Portico } from './context.js';
import { errorHandler, sendError } from './errors.js';
import { jsonBody } from './json-body.js';
import { legacyRouter } from './legacy.js';
import { logRequests } from './request-log.js';
import { probesRouter, statusRouter } from './v1/status.js';
import { appsRouter } from './v1/apps.js';
import { certificatesRouter } from './v1/certificates.js';
import { logsRouter } from './v1/logs.js';
import { streamsRouter } from './v1/streams.js';

export function createApp(portico: Portico, log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const apiLog = log.child({ module: 'api' });
  app.use(logRequests(apiLog));
  // /healthz answers whether the process runs, so it needs no token (liveness probes carry none) and
  // takes any Host (a Kubernetes probe sends the pod's address); it changes and tells nothing else.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Before the token: a browser's cross-site request is refused whatever it carries.
  app.use(browserGuard(portico.settings));
  if (portico.settings.apiToken !== undefined) app.use(requireToken(portico.settings.apiToken));
  app.use(jsonBody());
  app.use(probesRouter(portico));
  app.use(legacyRouter(portico));
  app.use('/v1/streams', streamsRouter(portico));
  app.use('/v1/certificates', certificatesRouter(portico));
  app.use('/v1/apps', appsRouter(portico));
  app.use('/v1/logs', logsRouter(portico));
  app.use('/v1', statusRouter(portico));
  app.use((req, res) => {
    sendError(res, new PorticoError('NotFound', `no route ${req.method} ${req.path}`));
  });
  app.use(errorHandler(apiLog));
  return app;
}
