/**
 * /v1/logs/reopen: nginx reopens its log files (SIGUSR1 to the master), the step a log rotation
 * that renames them needs. A mutation: it sits behind the same authentication as every other.
 */
import { Router } from 'express';
import type { Portico } from '../context.js';

export function logsRouter(portico: Pick<Portico, 'nginx'>): Router {
  const router = Router();
  router.post('/reopen', async (_req, res) => {
    res.json(await portico.nginx.reopenLogs());
  });
  return router;
}
