/**
 * The container tests' view of their Docker engine (scripts/container/run-tests.sh starts it and sets
 * DOCKER_HOST, NODE_IMAGE, NGINX_IMAGE and PUBLISH_ADDRESS): Debian's client by absolute path, the
 * README's own blocks run as written, and the bridge address where a container finds the host's
 * backends. Every command has a time bound.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { commandLines, fencedBlocks, type FencedBlock } from './readme-blocks.js';
import { REPO } from './portico.js';

const run = promisify(execFile);

/** Debian's docker.io client: /usr/local/bin may hold another one. */
export const DOCKER = '/usr/bin/docker';

/** Why the container tests cannot run here, or undefined when they can. */
export function containerUnavailable(): string | undefined {
  for (const name of ['DOCKER_HOST', 'NODE_IMAGE', 'NGINX_IMAGE', 'API_TOKEN']) {
    if ((process.env[name] ?? '') === '') return `${name} is not set: run the container tests with \`make test-container\``;
  }
  return undefined;
}

/** Runs the docker client; rejects with its stderr when it fails. */
export async function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await run(DOCKER, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout.trim();
  } catch (error) {
    const failed = error as { stderr?: string; message: string };
    throw new Error(`docker ${args.join(' ')}: ${(failed.stderr ?? '').trim() || failed.message}`);
  }
}

/** `docker inspect -f FORMAT NAME`, or undefined when there is no such object. */
export async function inspect(name: string, format: string): Promise<string | undefined> {
  return docker(['inspect', '-f', format, name], 30_000).catch(() => undefined);
}

/** The README's ```sh blocks of section `section`, in order. */
export async function readmeBlocks(section: string): Promise<FencedBlock[]> {
  const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
  return fencedBlocks(readme).filter((block) => block.section === section && block.info === 'sh');
}

/** The README block of `section` whose commands include one matching `pattern`. */
export async function readmeBlock(section: string, pattern: RegExp): Promise<FencedBlock> {
  const block = (await readmeBlocks(section)).find((candidate) => commandLines(candidate).some((line) => pattern.test(line)));
  if (block === undefined) throw new Error(`README.md's "${section}" section has no sh block with a command matching ${pattern}`);
  return block;
}

/** The part of `block` from its first line matching `pattern` on: one command of a block, run again. */
export function fromLine(block: FencedBlock, pattern: RegExp): FencedBlock {
  const lines = block.text.split('\n');
  const start = lines.findIndex((line) => pattern.test(line));
  if (start < 0) throw new Error(`README.md line ${block.line}: no line matches ${pattern}`);
  return { ...block, line: block.line + 1 + start, text: lines.slice(start).join('\n') };
}

/** Runs a README block as written, in bash with errexit, from the repository; answers its output. */
export async function runBlock(block: FencedBlock, timeoutMs = 600_000): Promise<string> {
  try {
    const { stdout, stderr } = await run('bash', ['-euo', 'pipefail', '-c', block.text], { cwd: REPO, timeout: timeoutMs, maxBuffer: 64 << 20 });
    return `${stdout}${stderr}`;
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`README.md line ${block.line} failed: ${failed.message}\n${failed.stdout ?? ''}${failed.stderr ?? ''}`.slice(0, 8000));
  }
}

/** The default bridge's gateway: the host's address as containers see it (the tests' backends bind there). */
export async function bridgeGateway(): Promise<string> {
  const gateway = await docker(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', 'bridge']);
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(gateway)) throw new Error(`the bridge network names no IPv4 gateway: ${JSON.stringify(gateway)}`);
  return gateway;
}

/** Image size in bytes. */
export async function imageSize(image: string): Promise<number> {
  return Number(await docker(['image', 'inspect', '-f', '{{.Size}}', image]));
}

/** The processes of a container as the host sees them: uid, host pid, and command line. */
export async function containerProcesses(container: string): Promise<Array<{ uid: number; pid: number; args: string }>> {
  const out = await docker(['top', container, '-o', 'uid,pid,args']);
  return out
    .split('\n')
    .slice(1)
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ uid: Number(m[1]), pid: Number(m[2]), args: m[3] as string }));
}

/** What a neighbour container got for one request: the status, or 0 when it could not connect. */
export interface NeighbourAnswer {
  status: number;
  body: string;
}

/**
 * Requests sent from a throwaway container on `network` (NODE_IMAGE's node): a neighbour's view of
 * the API, with whatever Host it chooses. Sequential, each bounded; answers one result per request.
 */
export async function requestsFromContainer(
  network: string,
  requests: Array<{ url: string; method: string; host: string; headers?: Record<string, string>; body?: string }>,
): Promise<NeighbourAnswer[]> {
  const script = `
    const http = require('node:http');
    const one = (r) => new Promise((resolve) => {
      const u = new URL(r.url);
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: r.method, timeout: 10000,
        headers: { host: r.host, ...(r.headers || {}) } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body: body.slice(0, 500) }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ status: 0, body: e.message }));
      req.end(r.body);
    });
    (async () => { const out = []; for (const r of JSON.parse(process.argv[1])) out.push(await one(r)); console.log(JSON.stringify(out)); })();`;
  const image = process.env.NODE_IMAGE as string;
  const out = await docker(['run', '--rm', '--network', network, image, 'node', '-e', script, JSON.stringify(requests)], 60_000);
  return JSON.parse(out) as NeighbourAnswer[];
}

/**
 * After `docker-compose down`: none of `pids` (the project's processes, as the host sees them) still
 * runs, and no docker-proxy (a published port) is left. Asserts.
 */
export async function assertNothingOutlives(pids: number[]): Promise<void> {
  const alive = pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  assert.deepEqual(alive, [], 'processes of the project outlived docker-compose down');
  const { stdout } = await promisify(execFile)('pgrep', ['-x', 'docker-proxy']).catch(() => ({ stdout: '' }));
  assert.equal(stdout.trim(), '', 'a docker-proxy (a published port) outlived docker-compose down');
}
