/**
 * GET /metrics: the Prometheus text format of Portico's registry (metrics/registry.ts), for a
 * `read` token like every other query.
 */
import { Router } from 'express';
import type { Registry } from 'prom-client';

export function metricsRouter(registry: Registry): Router {
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    const text = await registry.metrics();
    res.set('Content-Type', registry.contentType).set('Cache-Control', 'no-store').send(text);
  });
  return router;
}
