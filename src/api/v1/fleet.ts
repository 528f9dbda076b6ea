/**
 * /v1/fleet (STORE=etcd): every live node with its applied revision, lag, last outcome and errors;
 * `POST /v1/fleet/import` copies this node's streams, apps and certificates into an empty fleet.
 * With the file store, both answer 404 naming STORE.
 */
import { Router } from 'express';
import { notFound } from '../../errors.js';
import type { Portico } from '../context.js';

export function fleetRouter(portico: Portico): Router {
  const router = Router();
  const fleet = () => {
    if (portico.fleet === undefined) throw notFound('this Portico is not in a fleet (STORE=file): set STORE=etcd and ETCD_ENDPOINTS');
    return portico.fleet;
  };

  router.get('/', async (_req, res) => {
    res.json(await fleet().view());
  });

  router.post('/import', async (_req, res) => {
    res.status(201).json(await fleet().importLocal());
  });

  return router;
}
