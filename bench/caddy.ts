/**
 * The apps rung's peer (issue 13, goal 5): Debian's caddy (`scripts/install-caddy.sh`), run here as
 * /usr/bin/caddy with a config of its own, plain HTTP on a loopback port (automatic HTTPS off, so no
 * certificate and no ACME), its admin API on another loopback port, its files under a temporary
 * folder (HOME and XDG folders moved there; it keeps its default of saving each new config in an
 * autosave file), in a session of its own as the nginx the benchmark starts are; stopped by pid.
 * Its hosts are the rung's apps, translated route for route (`caddyRoute`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { access, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchApp } from './apps-mix.js';
import { request } from './http.js';
import { stopPid } from './processes.js';

export const CADDY_BIN = '/usr/bin/caddy';
const SERVER = 'bench';
const START_TIMEOUT_MS = 15_000;
const OUTPUT_KEEP_CHARS = 20_000;

export interface RunningCaddy {
  pid: number;
  httpPort: number;
  version: string;
  /** POSTs one route to the server's routes (appended); rejects unless the admin API answers 200. */
  addRoute(route: object): Promise<void>;
  /** DELETE /id/<id>: removes the route that carries that "@id". */
  removeRoute(id: string): Promise<void>;
  /** POST /load: the whole config again, with these routes. */
  load(routes: object[]): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

/** The caddy version, or undefined when Debian's caddy is not installed (the rung is then skipped). */
export async function caddyVersion(): Promise<string | undefined> {
  if (!(await access(CADDY_BIN).then(() => true, () => false))) return undefined;
  const result = spawnSync(CADDY_BIN, ['version'], { encoding: 'utf8', timeout: 5000 });
  return result.stdout.trim().split(/\s+/)[0] || 'unknown';
}

function config(dir: string, httpPort: number, adminPort: number, routes: object[]): object {
  return {
    admin: { listen: `127.0.0.1:${adminPort}` },
    logging: { logs: { default: { level: 'WARN' } } },
    storage: { module: 'file_system', root: `${dir}/data` },
    apps: { http: { servers: { [SERVER]: { listen: [`127.0.0.1:${httpPort}`], automatic_https: { disable: true }, routes } } } },
  };
}

const proxy = (upstreams: Array<{ address: string }>, sticky: boolean): object => ({
  handler: 'reverse_proxy',
  upstreams: upstreams.map((u) => ({ dial: u.address })),
  ...(sticky && { load_balancing: { selection_policy: { policy: 'cookie' } } }),
});

/**
 * A bench app as a Caddy route: its server names matched, then its routes in a subroute, each a path
 * prefix (`/api` and `/api/*`), the prefix stripped where the app replaces it with `/`, sticky ones
 * balanced by cookie as Portico's are; "@id" names it for removal.
 */
export function caddyRoute(app: BenchApp): object {
  const routes = app.routes.map((r) => {
    const handle = [...(r.replacePath === '/' && r.path !== undefined ? [{ handler: 'rewrite', strip_path_prefix: r.path }] : []), proxy(r.upstreams, r.balance === 'sticky')];
    return { ...(r.path !== undefined && { match: [{ path: [r.path, `${r.path}/*`] }] }), handle, terminal: true };
  });
  return { '@id': app.name, match: [{ host: app.serverNames }], handle: [{ handler: 'subroute', routes }], terminal: true };
}

async function admin(port: number, method: string, path: string, body?: unknown): Promise<void> {
  const answer = await request(port, method, path, body, 60_000);
  if (answer.status !== 200) throw new Error(`caddy admin ${method} ${path} answered ${answer.status}: ${answer.body.slice(0, 300)}`);
}

export async function startCaddy(options: {
  dir: string;
  httpPort: number;
  adminPort: number;
  version: string;
  onSpawn: (stop: () => Promise<void>) => void;
}): Promise<RunningCaddy> {
  const { dir, httpPort, adminPort } = options;
  const file = `${dir}/caddy.json`;
  await writeFile(file, JSON.stringify(config(dir, httpPort, adminPort, [])));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: `${dir}/config`, XDG_DATA_HOME: `${dir}/data` };
  const child = spawn(CADDY_BIN, ['run', '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${CADDY_BIN}`);
  // SIGTERM: caddy's graceful exit (SIGQUIT would be its immediate one).
  const stop = (): Promise<void> => stopPid(pid, 'SIGTERM', 10_000);
  options.onSpawn(stop);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const answer = await request(adminPort, 'GET', '/config/', undefined, 1000).catch(() => undefined);
    if (answer?.status === 200) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`caddy did not answer on its admin port ${adminPort}\n${output}`);
    }
    await sleep(20);
  }
  return {
    pid,
    httpPort,
    version: options.version,
    addRoute: (route) => admin(adminPort, 'POST', `/config/apps/http/servers/${SERVER}/routes`, route),
    removeRoute: (id) => admin(adminPort, 'DELETE', `/id/${encodeURIComponent(id)}`),
    load: (routes) => admin(adminPort, 'POST', '/load', config(dir, httpPort, adminPort, routes)),
    output: () => output,
    stop,
  };
}
