/**
 * Fleet nodes for tests (issue 16): each a Portico child process with its own STATE_DIR and managed
 * nginx, bound by LISTEN_ADDRESS to its own loopback address (127.0.0.11, .12, ...), all following one
 * etcd cluster. Started and stopped by pid.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { eventually } from './net.js';
import { freePort } from './pebble.js';
import { nginxMasters, spawnPortico, stopChild, stopNginxUnder, tempDir, type ChildPortico } from './portico.js';

export const FLEET_SECRET = 'fleet-test-secret-0123456789abcdefghijklmnop';

export interface FleetNodeOptions {
  name: string;
  address: string;
  endpoints: string[];
  prefix: string;
  portRange: string;
  httpPort: number;
  httpsPort: number;
  env?: Record<string, string>;
}

export interface FleetNode {
  name: string;
  address: string;
  stateDir: string;
  portico: ChildPortico;
  url: string;
  /** Starts this node's Portico again on the same state (after kill or stop), with `env` changed if given. */
  restart(env?: Record<string, string>): Promise<void>;
  /** SIGKILL of Portico alone (its nginx keeps serving), by pid. */
  kill(): Promise<void>;
  /** A clean stop of Portico alone (SIGTERM; its nginx keeps serving). */
  stopPortico(): Promise<void>;
  /** Portico and its nginx, by pid; removes the state directory. */
  stop(): Promise<void>;
  nginxMasters(): Promise<number[]>;
  /** The stream files' names and texts, the node's own address replaced by "NODE" (to compare nodes). */
  streamFiles(): Promise<Map<string, string>>;
}

export async function startFleetNode(options: FleetNodeOptions): Promise<FleetNode> {
  const stateDir = await tempDir(`fleet-${options.name}`);
  const bindPort = await freePort();
  const env: Record<string, string> = {
    STORE: 'etcd',
    ETCD_ENDPOINTS: options.endpoints.join(','),
    FLEET_PREFIX: options.prefix,
    FLEET_SECRET,
    NODE_NAME: options.name,
    LISTEN_ADDRESS: options.address,
    STATE_DIR: stateDir,
    BIND_PORT: String(bindPort),
    PORT_RANGE: options.portRange,
    HTTP_PORT: String(options.httpPort),
    HTTPS_PORT: String(options.httpsPort),
    TRAFFIC_METRICS: 'off',
    LOG_LEVEL: 'warn',
    ...options.env,
  };
  const node: FleetNode = {
    name: options.name,
    address: options.address,
    stateDir,
    portico: await spawnPortico(env),
    url: `http://127.0.0.1:${bindPort}`,
    async restart(changed = {}) {
      Object.assign(env, changed);
      node.portico = await spawnPortico(env);
    },
    async kill() {
      const { child } = node.portico;
      process.kill(node.portico.pid, 'SIGKILL');
      await stopChild(child, 2000);
    },
    async stopPortico() {
      await stopChild(node.portico.child);
    },
    async stop() {
      await stopChild(node.portico.child);
      await stopNginxUnder(stateDir);
      await rm(stateDir, { recursive: true, force: true });
    },
    nginxMasters: () => nginxMasters(stateDir),
    async streamFiles() {
      const dir = env.STREAM_CONFIG_PATH ?? `${stateDir}/stream.d`;
      const names = (await readdir(dir)).filter((n) => n.endsWith('.conf')).sort();
      const files = new Map<string, string>();
      for (const name of names) files.set(name, (await readFile(`${dir}/${name}`, 'utf8')).replaceAll(options.address, 'NODE'));
      return files;
    },
  };
  return node;
}

/** An API answer: status, headers, the body's text and its JSON (undefined when it is none). */
export interface FleetAnswer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

/** One request to a node's API (JSON body if given), bounded at 20 s. */
export async function callNode(node: FleetNode, method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<FleetAnswer> {
  const res = await fetch(`${node.url}${route}`, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

/**
 * Starts one node per address, named edge-a, edge-b, ... in that order (pushed onto `into` as each
 * starts, so that a failure later still stops them), and waits (bounded) until the first lists them all
 * in /v1/fleet. Throws naming what it saw.
 */
export async function startFleetNodes(into: FleetNode[], addresses: readonly string[], options: Omit<FleetNodeOptions, 'name' | 'address'>): Promise<FleetNode[]> {
  const started: FleetNode[] = [];
  for (const [i, address] of addresses.entries()) {
    const node = await startFleetNode({ ...options, name: `edge-${String.fromCharCode(97 + i)}`, address });
    into.push(node);
    started.push(node);
  }
  const first = started[0] as FleetNode;
  const all = await eventually(async () => (await callNode(first, 'GET', '/v1/fleet')).body?.nodes?.length === started.length, 15_000, 100);
  if (!all) throw new Error(`${started.length} nodes are not all in /v1/fleet: ${JSON.stringify((await callNode(first, 'GET', '/v1/fleet')).body)}`);
  return started;
}
