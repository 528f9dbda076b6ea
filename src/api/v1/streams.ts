/**
 * /v1/streams: the JSON API of streams. Bodies are parsed by `streamInputSchema` (strict: an unknown
 * field is an error); answers are always the full stored form. `?dryRun=true` on a mutation runs
 * every step up to the swap and answers the rendered files with nginx's verdict: 200 when nginx
 * accepts them, 422 when it refuses.
 */
import { Router, type Request, type Response } from 'express';
import { notFound } from '../../errors.js';
import { etagOf } from '../../model/etag.js';
import { specFromInput, streamInputSchema } from '../../model/stream.js';
import type { Change } from '../../apply/plan.js';
import { invalidInput } from '../../errors.js';
import type { Portico } from '../context.js';
import { sendDryRun } from '../errors.js';
import { requester } from '../request-id.js';
import { fleetOf, setFleetHeader, withFleet } from '../fleet-answer.js';
import { preconditions, isDryRun, parseWith, portParam } from '../params.js';

/** Errors about the one upstream name `backend` when the caller wrote it so. */
const viaOf = (input: { backend?: string }): { via?: 'backend' } => (input.backend === undefined ? {} : { via: 'backend' });

export function streamsRouter(portico: Portico): Router {
  const router = Router();
  const { tree, applier, fleet } = portico;

  // In a fleet, a change goes through etcd to every node (fleet/fleet.ts); a dry run stays local.
  const run = async (req: Request, res: Response, change: Change) => {
    if (isDryRun(req)) return { dryRun: true, ...(await applier.dryRun(change, requester(res))) };
    const result = fleet === undefined ? await applier.submit(change, requester(res)) : await fleet.submitStream(change, requester(res));
    setFleetHeader(res, fleetOf(result));
    return result;
  };

  router.get('/', async (_req, res) => {
    const current = await tree.read();
    res.json([...current.streams.values()].sort((a, b) => a.port - b.port));
  });

  router.get('/:port', async (req, res) => {
    const port = portParam(req.params.port);
    const stream = (await tree.read()).streams.get(port);
    if (stream === undefined) throw notFound(`no stream on port ${port}`);
    res.set('ETag', etagOf(stream)).json(stream);
  });

  router.post('/', async (req, res) => {
    const input = parseWith(streamInputSchema, req.body ?? {});
    const result = await run(req, res, { kind: 'create', ...(input.port !== undefined && { port: input.port }), spec: specFromInput(input), ...viaOf(input) });
    if ('dryRun' in result) {
      sendDryRun(res, result);
      return;
    }
    res.status(201).location(`/v1/streams/${result.port}`).set('ETag', etagOf(result.stream)).json(withFleet(result.stream, fleetOf(result)));
  });

  router.put('/:port', async (req, res) => {
    const port = portParam(req.params.port);
    const input = parseWith(streamInputSchema, req.body ?? {});
    if (input.port !== undefined && input.port !== port) {
      throw invalidInput('port', `is ${input.port} in the body but ${port} in the path`);
    }
    const result = await run(req, res, { kind: 'put', port, spec: specFromInput(input), ...viaOf(input), ...preconditions(req) });
    if ('dryRun' in result) {
      sendDryRun(res, result);
      return;
    }
    res
      .set({ 'Portico-Outcome': result.outcome, ETag: etagOf(result.stream) })
      .status(result.outcome === 'created' ? 201 : 200)
      .json(withFleet(result.stream, fleetOf(result)));
  });

  router.delete('/:port', async (req, res) => {
    const result = await run(req, res, { kind: 'delete', port: portParam(req.params.port), ...preconditions(req) });
    if ('dryRun' in result) {
      sendDryRun(res, result);
      return;
    }
    res.status(204).end();
  });

  return router;
}
