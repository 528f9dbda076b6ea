/**
 * The HTTP API: express wiring of the routers, authentication, request logging and error mapping.
 * Which token scope each route needs is in scopes.ts.
 */
import express from 'express';
import type { Logger } from 'pino';
import { PorticoError } from '../errors.js';
import { trackArrivals } from './arrivals.js';
import { authenticate } from './auth.js';
import { browserGuard } from './browser-guard.js';
import type { Portico } from './context.js';
import { errorHandler, sendError } from './errors.js';
import { jsonBody } from './json-body.js';
import { legacyRouter } from './legacy.js';
import { docsRouter } from './openapi/docs.js';
import { consoleRouter } from './console.js';
import { assignRequestId } from './request-id.js';
import { metricsRouter } from './metrics.js';
import { logRequests } from './request-log.js';
import type { Tokens } from './tokens.js';
import { probesRouter, statusRouter } from './v1/status.js';
import { appsRouter } from './v1/apps.js';
import { certificatesRouter } from './v1/certificates.js';
import { eventsRouter } from './v1/events.js';
import { logsRouter } from './v1/logs.js';
import { streamsRouter } from './v1/streams.js';
import { trafficRouter } from './v1/traffic.js';
import { fleetRouter } from './v1/fleet.js';
import { staleMarker } from './fleet-answer.js';

/** `tokens` undefined: neither API_TOKEN nor API_TOKENS_FILE is set, and the API is open. */
export function createApp(portico: Portico, log: Logger, tokens: Tokens | undefined): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const apiLog = log.child({ module: 'api' });
  app.use(assignRequestId());
  app.use(logRequests(apiLog));
  // /healthz answers whether the process runs, so it needs no token (liveness probes carry none) and
  // takes any Host (a Kubernetes probe sends the pod's address); it changes and tells nothing else.
  // It is the one route mounted before the guard and authentication.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Before the token: a browser's cross-site request is refused whatever it carries.
  app.use(browserGuard(portico.settings));
  // The API's description (/openapi.json, /docs) needs no token: it tells nothing of the edge.
  app.use(docsRouter(portico.version));
  app.use(consoleRouter());
  if (tokens !== undefined) app.use(authenticate(tokens));
  // Synchronously on arrival, before the body is read: a batch about to start waits for it (apply/arrivals.ts).
  app.use(trackArrivals(portico.arrivals));
  app.use(jsonBody());
  app.use(staleMarker(portico.fleet));
  app.use(probesRouter(portico));
  app.use(metricsRouter(portico.metrics));
  app.use(legacyRouter(portico));
  app.use('/v1/streams', streamsRouter(portico));
  app.use('/v1/certificates', certificatesRouter(portico));
  app.use('/v1/apps', appsRouter(portico));
  app.use('/v1/logs', logsRouter(portico));
  app.use('/v1/events', eventsRouter(portico.events));
  app.use('/v1/traffic', trafficRouter(portico));
  app.use('/v1/fleet', fleetRouter(portico));
  app.use('/v1', statusRouter(portico));
  app.use((req, res) => {
    sendError(res, new PorticoError('NotFound', `no route ${req.method} ${req.path}`));
  });
  app.use(errorHandler(apiLog));
  return app;
}
