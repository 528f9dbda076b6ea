/**
 * /v1/status, /v1/ports/free, and the probes /healthz (the process answers) and /readyz (nginx runs
 * and serves the files as they are).
 */
import { Router } from 'express';
import { sharedHttpProblem } from '../../apply/shared-http.js';
import { SHARED_HTTP_FILE } from '../../model/http-shared.js';
import { unclaimedCount } from '../../ports/allocate.js';
import { claimedPorts } from '../../store/tree.js';
import type { Portico } from '../context.js';
import type { FreePort, Readiness, StatusAnswer } from '../openapi/answers.js';

const sharedFile = (problem: string | undefined): { name: string; problem: string } | null =>
  problem === undefined ? null : { name: SHARED_HTTP_FILE, problem };

export function statusRouter(portico: Portico): Router {
  const router = Router();
  const { settings, tree, apps, certs, applier, nginx, ports } = portico;

  router.get('/status', async (_req, res) => {
    const current = await tree.read();
    const currentApps = await apps.read();
    const [build, pid] = await Promise.all([nginx.describe(), nginx.process.masterPid()]);
    const answer: StatusAnswer = {
      version: portico.version,
      mode: settings.mode,
      range: { from: settings.portRange.from, to: settings.portRange.to },
      streams: current.streams.size,
      apps: currentApps.apps.size,
      certificates: (await certs.index()).size,
      http: { port: settings.httpPort, httpsPort: settings.httpsPort },
      freePorts: unclaimedCount(settings.portRange, claimedPorts(current)),
      // Handed out by getfreeport or /v1/ports/free and not yet used by a create; in memory only.
      reservedPorts: ports.reservedCount(),
      portReservationTtlMs: settings.portReservationTtlMs,
      nginx: {
        version: build.version,
        modules: build.modules,
        running: pid !== undefined,
        pid: pid ?? null,
        adopted: nginx.process.adopted,
        restarts: nginx.process.restarts,
        conf: settings.nginxConf,
      },
      lastApply: applier.lastBatch ?? null,
      consistent: applier.consistent,
      files: {
        streamDir: settings.streamDir,
        unreadable: current.unreadable,
        foreign: current.foreign,
        httpDir: settings.httpDir,
        unreadableApps: currentApps.unreadable,
        foreignHttp: currentApps.foreign,
        // The file the apps share is Portico's: one that is not as Portico writes it was edited by hand.
        sharedHttp: sharedFile(sharedHttpProblem(currentApps, settings)),
      },
      startedAt: portico.startedAt.toISOString(),
      acme: {
        directoryUrl: settings.acme.directoryUrl,
        email: settings.acme.email ?? null,
        account: portico.acme.accountUrl ?? null,
        challenges: settings.acme.dns === undefined ? ['http-01'] : ['http-01', 'dns-01'],
        certificates: (await portico.acme.list())
          .map((r) => ({ id: r.id, status: r.status, nextRenewal: r.nextRenewal, lastError: r.lastError }))
          .sort((a, b) => (a.nextRenewal ?? '9').localeCompare(b.nextRenewal ?? '9')),
      },
    };
    res.json(answer);
  });

  router.get('/ports/free', async (_req, res) => {
    const reserved = await ports.reserveFree();
    if (reserved === undefined) throw ports.rangeFull();
    const answer: FreePort = { port: reserved.port, ...(settings.portReservationTtlMs > 0 && { reservedUntil: new Date(reserved.expiresAt).toISOString() }) };
    res.json(answer);
  });

  return router;
}

export function probesRouter(portico: Portico): Router {
  const router = Router();
  router.get('/readyz', async (_req, res) => {
    const running = await portico.nginx.running();
    const ready = running && portico.applier.consistent;
    const answer: Readiness = {
      status: ready ? 'ready' : 'not ready',
      nginx: running ? 'running' : 'not running',
      config: portico.applier.consistent ? 'current' : 'the running config may differ from the files',
    };
    res.status(ready ? 200 : 503).json(answer);
  });
  return router;
}
