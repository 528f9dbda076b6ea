/**
 * The create ladder again, with Portico in external mode (issue 13, goal 1): an nginx the benchmark
 * started as an operator would (`operator-nginx.ts`), and a Portico started beside it with
 * NGINX_MODE=external and NGINX_ERROR_LOG set (as the README advises). Beside them its own floor: a
 * bare nginx on a copy of the operator's config (no http block: cheaper to test than managed mode's)
 * and a mirror tree of the same size; and at the levels that ask for it, stream-conductor's way of
 * adding a stream (`conductor.ts`) on the operator's nginx itself. Same rungs, same interleaving and
 * same samples as managed mode's ladder (`ladder.ts`), on the same ports: it runs after that ladder,
 * once its Portico and floor are stopped.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Cleanup } from './cleanup.js';
import { streamConductor } from './conductor.js';
import { generatedStreamText, startFloor } from './floor.js';
import { runLevel, type Level, type LevelPlan, type Rig } from './ladder.js';
import { ephemeralPort, freePortsIn } from './net.js';
import { startOperatorNginx } from './operator-nginx.js';
import { spawnPortico } from './portico.js';

export interface ExternalLadder {
  levels: Level[];
  /** Seconds for the whole ladder, set-up included. */
  seconds: number;
}

type Range = { from: number; to: number };

export interface ExternalLadderOptions {
  repoDir: string;
  nginxBin: string;
  plans: LevelPlan[];
  echoPort: number;
  nodeArgs: string[];
  ranges: { portico: Range; single: Range; mirror: Range; floorChange: Range; porticoHttp: Range };
  cleanup: Cleanup;
  progress: (message: string) => void;
}

async function tempDir(prefix: string, cleanup: Cleanup): Promise<string> {
  const dir = await mkdtemp(`/tmp/portico-bench-${prefix}-`);
  cleanup.push(`${prefix} dir`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the ladder, then stops everything it started (so the apps rung finds its ports free). */
export async function runExternalLadder(options: ExternalLadderOptions): Promise<ExternalLadder> {
  const { ranges, plans, cleanup, progress } = options;
  const started = performance.now();
  const perLevel = plans.reduce((n, l) => n + l.singles + 1, 0);
  const withConductor = plans.filter((l) => l.conductor === true).reduce((n, l) => n + l.singles + 1, 0);
  const singlePorts = await freePortsIn(ranges.single.from, ranges.single.to, perLevel);
  const changePorts = await freePortsIn(ranges.floorChange.from, ranges.floorChange.to, perLevel + 1 + withConductor);
  const floorPorts = changePorts.splice(0, perLevel + 1);
  const mirrorPorts = await freePortsIn(ranges.mirror.from, ranges.mirror.to, plans.at(-1)?.level ?? 0);
  const [httpPort, httpsPort] = await freePortsIn(ranges.porticoHttp.from, ranges.porticoHttp.to, 2);

  progress('external: starting the operator\'s nginx (daemonized) and a Portico beside it, NGINX_MODE=external');
  const operator = await startOperatorNginx({
    nginxBin: options.nginxBin,
    root: await tempDir('operator', cleanup),
    listeners: ranges.portico.to - ranges.portico.from + 1 + 16,
    onSpawn: (stop) => cleanup.push('operator nginx', stop),
  });
  const portico = spawnPortico({
    repoDir: options.repoDir,
    nginxBin: options.nginxBin,
    stateDir: await tempDir('external-state', cleanup),
    portRange: ranges.portico,
    bindPort: await ephemeralPort(),
    httpPort: httpPort as number,
    httpsPort: httpsPort as number,
    nodeArgs: options.nodeArgs,
    external: operator,
  });
  cleanup.push('external portico', () => portico.stop());
  await portico.ready();

  const streamText = await generatedStreamText(portico.apiPort, options.echoPort);
  const floor = await startFloor({
    nginxBin: options.nginxBin,
    dir: await tempDir('external-floor', cleanup),
    porticoStateDir: operator.root,
    // The floor's master stays our child (`own-nginx.ts`); otherwise the operator's config as it is.
    porticoMainConfig: `daemon off;\n${operator.confText}`,
    streamText,
    firstPort: floorPorts.shift() as number,
    onSpawn: (stop) => cleanup.push('external floor nginx', stop),
  });
  const conductor = streamConductor({ nginxBin: options.nginxBin, root: operator.root, conf: operator.conf, streamDir: operator.streamDir, streamText });
  const rig: Rig = { portico, floor, echoPort: options.echoPort, singlePorts, floorPorts, mirrorPorts, conductor, conductorPorts: changePorts };

  const levels: Level[] = [];
  try {
    for (const plan of plans) {
      progress(`external: level ${plan.level}${plan.conductor === true ? ', with stream-conductor\'s way beside it' : ''}`);
      levels.push(await runLevel(rig, plan, (m) => progress(`external: ${m}`)));
    }
  } catch (error) {
    process.stderr.write(`--- external portico output ---\n${portico.output()}\n--- external floor log ---\n${await floor.logTail()}\n`);
    throw error;
  }
  await portico.stop();
  await floor.stop();
  await operator.stop();
  return { levels, seconds: (performance.now() - started) / 1000 };
}
