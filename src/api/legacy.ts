/**
 * stream-conductor's routes, same paths and JSON fields, for the scripts that already call them.
 * Unlike the original, failures carry a real status code (so `curl -f` works) and answer
 * `{"result": "error", "errors": "<message>", "error": {...}}`.
 */
import { Router, type ErrorRequestHandler, type Response } from 'express';
import { PorticoError } from '../errors.js';
import { addressSchema } from '../model/net.js';
import { sniVariableName, upstreamGroupName, type Stream, type Upstream } from '../model/stream.js';
import { needsGroup } from '../render/stream.js';
import { unclaimedCount } from '../ports/allocate.js';
import { claimedPorts } from '../store/tree.js';
import type { Portico } from './context.js';
import { STATUS, errorBody, toPorticoError } from './errors.js';
import { parseWith, portParam } from './params.js';
import { requester } from './request-id.js';
import { fleetOf, setFleetHeader } from './fleet-answer.js';
import type { Change } from '../apply/plan.js';
import type { Requester } from '../apply/batch.js';
import type { LegacyFreePort, LegacyStatus, LegacyStreams } from './openapi/answers.js';

function legacyError(res: Response, error: unknown): void {
  const wrapped = toPorticoError(error);
  res.status(STATUS[wrapped.kind]).json({ result: 'error', errors: wrapped.message, ...errorBody(wrapped) });
}

/** The `proxy_pass` stream-conductor showed: the upstream, or the group's name for several. */
export function legacyProxyPass(stream: Stream): string {
  if (stream.upstreams === undefined) return `$${sniVariableName(stream.port)}`;
  return needsGroup(stream, stream.upstreams) ? upstreamGroupName(stream.port) : (stream.upstreams[0] as Upstream).address;
}

export function legacyRouter(portico: Portico): Router {
  const router = Router();
  const { settings, tree, applier, ports, fleet } = portico;
  // In a fleet, through etcd to every node (fleet/fleet.ts); the answer's shape stays stream-conductor's.
  const submit = async (res: Response, change: Change, by: Requester): Promise<void> => {
    if (fleet === undefined) await applier.submit(change, by);
    else setFleetHeader(res, fleetOf(await fleet.submitStream(change, by)));
  };
  const { from, to } = settings.portRange;

  router.get('/status', async (_req, res) => {
    const current = await tree.read();
    const answer: LegacyStatus = {
      version: portico.version,
      // Python's range() repr, as stream-conductor printed it: the upper bound is exclusive there.
      available_ports: `range(${from}, ${to + 1})`,
      range: `${from}-${to}`,
      mode: settings.mode,
      streams: current.streams.size,
      free_ports: unclaimedCount(settings.portRange, claimedPorts(current)),
    };
    res.json(answer);
  });

  router.get('/getstreams', async (_req, res) => {
    const current = await tree.read();
    const streams = [...current.streams.values()].sort((a, b) => a.port - b.port);
    const answer: LegacyStreams = streams.map((s) => ({ listen: s.port, proxy_pass: legacyProxyPass(s) }));
    res.json(answer);
  });

  router.get('/createstream/:port/:backend', async (req, res) => {
    const port = portParam(req.params.port);
    const backend = parseWith(addressSchema, req.params.backend, 'backend');
    await submit(res, { kind: 'create', port, spec: { upstreams: [{ address: backend }] }, via: 'backend' }, requester(res));
    res.json({ result: 'ok' });
  });

  // A backend holding "/" (raw or encoded) or an empty one never matches the route above.
  router.get(['/createstream', '/createstream/*rest'], () => {
    throw new PorticoError('InvalidInput', 'backend: must be /createstream/<port>/<host:port>', { field: 'backend' });
  });

  router.get('/removestream/:port', async (req, res) => {
    await submit(res, { kind: 'delete', port: portParam(req.params.port) }, requester(res));
    res.json({ result: 'ok' });
  });

  router.get('/hasstream/:port', async (req, res) => {
    const port = portParam(req.params.port);
    const current = await tree.read();
    res.json({ result: current.streams.has(port) ? 'true' : 'false' });
  });

  // The port is reserved for PORT_RESERVATION_TTL: the script's createstream on it comes next.
  router.get('/getfreeport', async (_req, res) => {
    const reserved = await ports.reserveFree();
    const answer: LegacyFreePort = reserved === undefined ? { result: 'none available' } : { result: 'ok', port: reserved.port };
    res.json(answer);
  });

  // Errors of these routes (a bad percent-encoding in a parameter included) answer in legacy shape.
  router.use(((error, _req, res, _next) => legacyError(res, error)) as ErrorRequestHandler);
  return router;
}
