/**
 * /v1/traffic: each stream's and app's traffic over the last minutes (traffic/history.ts), for the
 * console's charts and for scripts: `GET /v1/traffic/streams?ports=9000,9001` and
 * `GET /v1/traffic/apps?names=shop,blog`. At most MAX_TRAFFIC_RESOURCES a request: a page shows
 * about 50 rows, and an answer must stay small whatever a client asks.
 */
import { Router } from 'express';
import { z } from 'zod';
import { PorticoError } from '../../errors.js';
import { APP_NAME_PATTERN } from '../../model/app.js';
import { isPortText } from '../../model/net.js';
import type { Portico } from '../context.js';
import { parseQuery } from '../params.js';
import type { TrafficHistory } from '../../traffic/history.js';

export const MAX_TRAFFIC_RESOURCES = 100;

/** A comma-separated list, each item by `isItem`, at most MAX_TRAFFIC_RESOURCES of them, repeats dropped. */
function listSchema<T>(what: string, example: string, isItem: (text: string) => boolean, toItem: (text: string) => T) {
  const rule = `must be ${what} separated by commas, such as ${example}, at most ${MAX_TRAFFIC_RESOURCES}`;
  return (
    z
      // Express reads `?ports=1&ports=2` as a list: one parameter, given once.
      .string({ invalid_type_error: `must be given once: ${rule}`, required_error: `is required: ${rule}` })
      // Bounded before it is split: at most 100 items of at most 64 characters.
      .max(MAX_TRAFFIC_RESOURCES * 65, rule)
      .transform((text) => text.split(','))
      .superRefine((items, ctx) => {
        const bad = items.find((item) => !isItem(item));
        if (bad !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${rule} (not ${JSON.stringify(bad.length > 64 ? `${bad.slice(0, 64)}…` : bad)})` });
        else if (items.length > MAX_TRAFFIC_RESOURCES) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${rule} (got ${items.length})` });
      })
      .transform((items) => [...new Set(items.map(toItem))])
  );
}

export const trafficStreamsQuerySchema = z
  .object({ ports: listSchema('ports (1-65535)', '9000,9001', isPortText, Number) })
  .strict();

export const trafficAppsQuerySchema = z
  .object({ names: listSchema("app names", 'shop,blog', (text) => APP_NAME_PATTERN.test(text), (text) => text) })
  .strict();

function historyOf(portico: Pick<Portico, 'trafficHistory'>): TrafficHistory {
  if (portico.trafficHistory === undefined) throw new PorticoError('NotFound', 'no traffic history: the per-resource traffic metrics are off (TRAFFIC_METRICS=off)');
  return portico.trafficHistory;
}

export function trafficRouter(portico: Pick<Portico, 'trafficHistory'>): Router {
  const router = Router();
  router.get('/streams', (req, res) => {
    const { ports } = parseQuery(trafficStreamsQuerySchema, req.query);
    const history = historyOf(portico);
    res.set('Cache-Control', 'no-store').json({ ...history.window(), streams: history.streams(ports) });
  });
  router.get('/apps', (req, res) => {
    const { names } = parseQuery(trafficAppsQuerySchema, req.query);
    const history = historyOf(portico);
    res.set('Cache-Control', 'no-store').json({ ...history.window(), apps: history.apps(names) });
  });
  return router;
}
