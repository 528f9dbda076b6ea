/**
 * /v1/apps: the JSON API of HTTP apps. Bodies are parsed by `appSchema` (strict: an unknown field is
 * an error); answers are always the stored form. `?dryRun=true` on a mutation runs every step up to
 * the swap and answers the rendered files with nginx's verdict: 200 when nginx accepts them, 422
 * when it refuses.
 */
import { Router, type Request, type Response } from 'express';
import type { AppChange } from '../../apply/app-kind.js';
import { invalidInput, notFound } from '../../errors.js';
import { appAcmeCertificateId, appNameSchema, appSchema, type App } from '../../model/app.js';
import type { Portico } from '../context.js';
import { sendDryRun } from '../errors.js';
import { requester } from '../request-id.js';
import { preconditions, isDryRun, parseWith } from '../params.js';
import { etagOf } from '../../model/etag.js';
import { fleetOf, setFleetHeader, withFleet } from '../fleet-answer.js';

export function appsRouter(portico: Portico): Router {
  const router = Router();
  const { apps, applier, acme, fleet } = portico;

  // In a fleet, a change goes through etcd to every node (fleet/fleet.ts); a dry run stays local.
  const submit = async (req: Request, res: Response, change: AppChange) => {
    if (isDryRun(req)) return { dryRun: true as const, ...(await applier.dryRunApp(change, requester(res))) };
    const result = fleet === undefined ? await applier.submitApp(change, requester(res)) : await fleet.submitApp(change, requester(res));
    setFleetHeader(res, fleetOf(result));
    return result;
  };

  /** The app's managed certificate (`tls.acme`) before the app names it: created, or given the app's names. */
  const prepareAcme = async (app: App, res: Response): Promise<string | undefined> => {
    if (app.tls?.acme !== true) return undefined;
    const id = appAcmeCertificateId(app.name);
    const request = { names: app.serverNames, challenge: app.serverNames.some((n) => n.startsWith('*.')) ? ('dns-01' as const) : ('http-01' as const) };
    if ((await acme.get(id)) === undefined) {
      await acme.create(id, request, requester(res), app.name);
      return id;
    }
    await acme.rename(id, request, 'tls.acme');
    return undefined;
  };

  /** Removes an app's managed certificate (after the app stopped naming it). */
  const dropAcme = async (id: string, res: Response): Promise<void> => {
    await applier.submitCertificate({ kind: 'certificate-delete', id }, requester(res));
    await acme.forget(id);
  };

  /**
   * Applies an app change, with the managed certificate `tls.acme` asks for: made before (and removed
   * again if the app is refused), removed after the app stops using it.
   */
  const run = async (req: Request, res: Response, change: AppChange) => {
    // A fleet refuses tls.acme (fleet/fleet.ts) before anything is made.
    if (isDryRun(req) || fleet !== undefined) return submit(req, res, change);
    const name = change.kind === 'app-put' ? change.app.name : change.name;
    const before = (await apps.read()).apps.get(name);
    const created = change.kind === 'app-put' ? await prepareAcme(change.app, res) : undefined;
    let result: Awaited<ReturnType<typeof submit>>;
    try {
      result = await submit(req, res, change);
    } catch (error) {
      if (created !== undefined) await dropAcme(created, res).catch(() => undefined);
      throw error;
    }
    const after = change.kind === 'app-put' ? change.app : undefined;
    if (before?.tls?.acme === true && after?.tls?.acme !== true) await dropAcme(appAcmeCertificateId(name), res);
    return result;
  };

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
    res.status(201).location(`/v1/apps/${app.name}`).set('ETag', etagOf(result.app)).json(withFleet(result.app, fleetOf(result)));
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
      .json(withFleet(result.app, fleetOf(result)));
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
