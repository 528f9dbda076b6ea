/**
 * /v1/apps: the JSON API of HTTP apps. Bodies are parsed by `appSchema` (strict: an unknown field is
 * an error); answers are always the stored form. `?dryRun=true` on a mutation runs every step up to
 * the swap and answers the rendered files with nginx's verdict: 200 when nginx accepts them, 422
 * when it refuses.
 */
import { Router, type Request, type Response } from 'express';
import type { AppChange } from '../../apply/app-kind.js';
import { invalidInput, notFound } from '../../errors.js';
import { appNameSchema, appSchema } from '../../model/app.js';
import type { Portico } from '../context.js';
import { sendDryRun } from '../errors.js';
import { requester } from '../request-id.js';
import { preconditions, isDryRun, parseWith } from '../params.js';
import { etagOf } from '../../model/etag.js';

export function appsRouter(portico: Portico): Router {
  const router = Router();
  const { apps, applier } = portico;

  const run = async (req: Request, res: Response, change: AppChange) =>
    isDryRun(req) ? { dryRun: true as const, ...(await applier.dryRunApp(change, requester(res))) } : applier.submitApp(change, requester(res));

  router.get('/', async (_req, res) => {
    const current = await apps.read();
    res.json([...current.apps.values()].sort((a, b) => (a.name < b.name ? -1 : 1)));
  });

  router.get('/:name', async (req, res) => {
    const name = parseWith(appNameSchema, req.params.name, 'name');
    const app = (await apps.read()).apps.get(name);
    if (app === undefined) throw notFound(`no app "${name}"`);
    res.set('ETag', etagOf(app)).json(app);
  });

  router.post('/', async (req, res) => {
    const app = parseWith(appSchema, req.body ?? {});
    const result = await run(req, res, { kind: 'app-put', app, create: true });
    if ('dryRun' in result) {
      sendDryRun(res, result);
      return;
    }
    res.status(201).location(`/v1/apps/${app.name}`).set('ETag', etagOf(result.app)).json(result.app);
  });

  router.put('/:name', async (req, res) => {
    const name = parseWith(appNameSchema, req.params.name, 'name');
    const body: unknown = req.body ?? {};
    const named = typeof body === 'object' && body !== null && !Array.isArray(body) && !('name' in body) ? { name, ...body } : body;
    const app = parseWith(appSchema, named);
    if (app.name !== name) throw invalidInput('name', `is "${app.name}" in the body but "${name}" in the path`);
    const result = await run(req, res, { kind: 'app-put', app, create: false, ...preconditions(req) });
    if ('dryRun' in result) {
      sendDryRun(res, result);
      return;
    }
    res
      .set({ 'Portico-Outcome': result.outcome, ETag: etagOf(result.app) })
      .status(result.outcome === 'created' ? 201 : 200)
      .json(result.app);
  });

  router.delete('/:name', async (req, res) => {
    const name = parseWith(appNameSchema, req.params.name, 'name');
    const result = await run(req, res, { kind: 'app-delete', name, ...preconditions(req) });
    if ('dryRun' in result) {
      sendDryRun(res, result);
      return;
    }
    res.status(204).end();
  });

  return router;
}
