/**
 * A fleet in containers (issue 16), with the README's own commands (its "Fleet" section, "In
 * containers", run as written) and docker-compose.fleet.yml: etcd and two nodes, each the image in
 * managed mode with its own nginx. A stream created through edge-a's API echoes through both nodes'
 * published addresses as soon as the create answers; with etcd's container stopped a change answers
 * 503 through either node while both go on serving; etcd started again, a change works again and
 * reaches both; `docker-compose down` leaves no container, network or process, `down -v` no volume.
 *
 * Fixed ports, as the compose file publishes them: the APIs on 127.0.0.1:5001 and :5002, each node's
 * streams 9000-9009 (and 80, 443) on its own address, 127.0.0.11 and 127.0.0.12 unless EDGE_A_ADDRESS
 * and EDGE_B_ADDRESS say otherwise. The backend is the compose file's echo service. Whatever the
 * project created (containers, network, volumes) is removed at the end, however the tests end.
 * `make test-container` runs this (it exports ETCD_IMAGE and FLEET_SECRET too).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { commandLines } from '../helpers/readme-blocks.js';
import { assertNothingOutlives, containerProcesses, containerUnavailable, docker, readmeBlock, runBlock } from '../helpers/docker.js';
import { eventually, roundTrip } from '../helpers/net.js';
import { REPO } from '../helpers/portico.js';

const run = promisify(execFile);
/** The project and file the README's commands name (the first test checks that they do). */
const PROJECT = 'fleet';
const FILE = 'docker-compose.fleet.yml';
const SECTION = 'Fleet';
const LABEL = `label=com.docker.compose.project=${PROJECT}`;
/** API_TOKEN, which the README's commands pass on from the shell (run-tests.sh exports one). */
const TOKEN = process.env.API_TOKEN ?? '';

interface Edge {
  name: string;
  /** Its API on the host's loopback. */
  api: number;
  /** The host address its data plane is published on. */
  address: string;
}

const EDGES: Edge[] = [
  { name: 'edge-a', api: 5001, address: process.env.EDGE_A_ADDRESS ?? '127.0.0.11' },
  { name: 'edge-b', api: 5002, address: process.env.EDGE_B_ADDRESS ?? '127.0.0.12' },
];
const [EDGE_A, EDGE_B] = EDGES as [Edge, Edge];

function fleetUnavailable(): string | undefined {
  const container = containerUnavailable();
  if (container !== undefined) return container;
  for (const name of ['ETCD_IMAGE', 'FLEET_SECRET']) {
    if ((process.env[name] ?? '') === '') return `${name} is not set: run the container tests with \`make test-container\``;
  }
  return undefined;
}
const unavailable = fleetUnavailable();

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

/** One request to a node's API with the token; every request has a time bound. */
async function call(edge: Edge, method: string, path: string, body?: unknown): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${edge.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** docker-compose with the README's project and file, from the repository (Debian's 1.29). */
async function compose(args: string[], timeoutMs = 300_000): Promise<string> {
  const { stdout, stderr } = await run('docker-compose', ['-p', PROJECT, '-f', FILE, ...args], { cwd: REPO, timeout: timeoutMs, maxBuffer: 16 << 20 });
  return `${stdout}${stderr}`;
}

/** The container id of a compose service. */
async function serviceId(service: string): Promise<string> {
  const id = (await compose(['ps', '-q', service])).trim().split('\n')[0] ?? '';
  assert.match(id, /^[0-9a-f]{12,}$/, `no container for the service ${service}`);
  return id;
}

/** The ids of the project's containers, networks and volumes, as the engine lists them by compose's label. */
async function leftovers(): Promise<{ containers: string; networks: string; volumes: string }> {
  return {
    containers: await docker(['ps', '-a', '-q', '--filter', LABEL]),
    networks: await docker(['network', 'ls', '-q', '--filter', LABEL]),
    volumes: await docker(['volume', 'ls', '-q', '--filter', LABEL]),
  };
}

/** Removes everything of the project: `down -v`, then by label whatever that left (a failed down). */
async function removeProject(): Promise<void> {
  await compose(['down', '-v', '--remove-orphans', '--timeout', '10']).catch(() => '');
  const left = await leftovers().catch(() => ({ containers: '', networks: '', volumes: '' }));
  const ids = (text: string): string[] => text.split('\n').filter((id) => id !== '');
  if (left.containers !== '') await docker(['rm', '-f', '-v', ...ids(left.containers)]).catch(() => '');
  if (left.networks !== '') await docker(['network', 'rm', ...ids(left.networks)]).catch(() => '');
  if (left.volumes !== '') await docker(['volume', 'rm', '-f', ...ids(left.volumes)]).catch(() => '');
}

/** A line through port 9000 (or `port`) of each node's address; answers what failed, or []. */
async function echoesOnBoth(tag: string, port = 9000): Promise<string[]> {
  const failures: string[] = [];
  for (const edge of EDGES) {
    const payload = `${tag} through ${edge.name}\n`;
    const echoed = await roundTrip(port, payload, { host: edge.address }).catch((error: Error) => error.message);
    if (echoed !== payload) failures.push(`${edge.name} (${edge.address}:${port}): ${JSON.stringify(echoed)}`);
  }
  return failures;
}

interface FleetView {
  node: string;
  stale: boolean;
  nodes: Array<{ name: string; revision: number; outcome: string; errors: unknown[] }>;
}

/** GET /v1/fleet of a node, parsed, with its Portico-Stale header. */
async function fleetOf(edge: Edge): Promise<FleetView & { staleHeader: string | null }> {
  const answer = await call(edge, 'GET', '/v1/fleet');
  assert.equal(answer.status, 200, answer.body);
  return { ...(JSON.parse(answer.body) as FleetView), staleHeader: answer.headers.get('portico-stale') };
}

/** True when `edge` reaches etcd and sees both nodes, each with its last change applied. */
async function inFleet(edge: Edge): Promise<boolean> {
  const view = await fleetOf(edge).catch(() => undefined);
  if (view === undefined || view.stale || view.staleHeader !== null) return false;
  const names = view.nodes.map((n) => n.name).sort();
  return names.join(',') === 'edge-a,edge-b' && view.nodes.every((n) => n.outcome === 'applied');
}

/** The ports of the streams a node serves from its files. */
async function streamPorts(edge: Edge): Promise<{ ports: number[]; stale: string | null }> {
  const answer = await call(edge, 'GET', '/v1/streams');
  assert.equal(answer.status, 200, answer.body);
  return { ports: (JSON.parse(answer.body) as Array<{ port: number }>).map((s) => s.port), stale: answer.headers.get('portico-stale') };
}

describe('a fleet in containers: etcd and two Portico+nginx nodes through a real Docker engine', { skip: unavailable }, () => {
  before(async () => {
    await removeProject();
  });
  after(async () => {
    await removeProject();
    const left = await leftovers();
    assert.deepEqual(left, { containers: '', networks: '', volumes: '' }, 'the fleet project left something behind');
  });

  it("starts with the README's commands; the stream created through edge-a echoes through both nodes' addresses as soon as the create answers", async (t) => {
    const block = await readmeBlock(SECTION, /^docker-compose -p fleet -f docker-compose\.fleet\.yml up /);
    assert.ok(commandLines(block).some((line) => line.includes(`127.0.0.1:${EDGE_A.api}/v1/streams`)), 'the block creates the stream through edge-a');
    const started = performance.now();
    const output = await runBlock(block);
    const answered = performance.now();
    // Right after the answer: no retry, no wait.
    const failures = await echoesOnBoth('first');
    t.diagnostic(`the block (build, up, readiness, create) took ${Math.round((answered - started) / 1000)} s; echo checked ${Math.round(performance.now() - answered)} ms after the answer`);
    assert.deepEqual(failures, []);
    assert.match(output, /"port":9000/);
    assert.match(output, /"complete":true/);
    for (const edge of EDGES) assert.match(output, new RegExp(`"node":"${edge.name}","outcome":"applied"`), output.slice(-2000));
  });

  it('each node is a container running its own nginx and Portico; etcd runs etcd only', async () => {
    for (const edge of EDGES) {
      const processes = await containerProcesses(await serviceId(edge.name));
      assert.ok(processes.some((p) => p.args.startsWith('nginx: master process')), `${edge.name}: ${JSON.stringify(processes)}`);
      assert.ok(processes.some((p) => p.args.startsWith('nginx: worker process')), `${edge.name}: ${JSON.stringify(processes)}`);
      assert.ok(processes.some((p) => /node .*dist\/main\.js/.test(p.args)), `${edge.name}: ${JSON.stringify(processes)}`);
      assert.match(await docker(['exec', await serviceId(edge.name), 'ls', '/var/lib/portico/stream.d']), /9000/);
    }
    const etcd = await containerProcesses(await serviceId('etcd'));
    assert.ok(etcd.some((p) => /\/usr\/local\/bin\/etcd --name=etcd/.test(p.args)), JSON.stringify(etcd));
    assert.ok(!etcd.some((p) => p.args.startsWith('nginx')), JSON.stringify(etcd));
    // Published nowhere: no host port leads to etcd.
    assert.equal(await docker(['port', await serviceId('etcd')]), '');
  });

  it("edge-b has the stream and sees both nodes at the same revision (the README's commands)", async () => {
    const output = await runBlock(await readmeBlock(SECTION, /127\.0\.0\.1:5002\/v1\/fleet/));
    assert.match(output, /"port":9000/);
    assert.match(output, /"name":"edge-a"/);
    assert.match(output, /"name":"edge-b"/);
    const view = await fleetOf(EDGE_B);
    assert.equal(view.node, 'edge-b');
    assert.equal(view.stale, false);
    assert.deepEqual(view.nodes.map((n) => n.name).sort(), ['edge-a', 'edge-b']);
    assert.deepEqual(view.nodes.map((n) => n.outcome), ['applied', 'applied']);
    assert.equal(new Set(view.nodes.map((n) => n.revision)).size, 1, JSON.stringify(view.nodes));
  });

  it("docker stop of etcd's container: a change through either node answers 503, reads are marked stale, and the stream still echoes on both", async (t) => {
    const etcd = await serviceId('etcd');
    await docker(['stop', '-t', '10', etcd]);
    assert.equal(await docker(['inspect', '-f', '{{.State.Running}}', etcd]), 'false');
    assert.deepEqual(await echoesOnBoth('etcd stopped'), []);
    for (const edge of EDGES) {
      const asked = performance.now();
      const answer = await call(edge, 'POST', '/v1/streams', { port: 9001, backend: 'echo:7000' });
      t.diagnostic(`${edge.name}: ${answer.status} in ${Math.round(performance.now() - asked)} ms`);
      assert.equal(answer.status, 503, answer.body);
      const error = (JSON.parse(answer.body) as { error: { kind: string; message: string } }).error;
      assert.equal(error.kind, 'FleetUnavailable');
      assert.match(error.message, /etcd is unavailable/);
    }
    // Each node's health loop (every second) marks its reads stale; they answer from its files.
    for (const edge of EDGES) {
      assert.ok(await eventually(async () => (await streamPorts(edge)).stale === 'true', 15_000, 250), `${edge.name} never marked its reads stale`);
      assert.deepEqual((await streamPorts(edge)).ports, [9000]);
    }
    assert.deepEqual(await echoesOnBoth('still'), []);
  });

  it('etcd started again: both nodes are back in the fleet, and a change works again and reaches both', async (t) => {
    const etcd = await serviceId('etcd');
    await docker(['start', etcd]);
    const started = performance.now();
    for (const edge of EDGES) assert.ok(await eventually(() => inFleet(edge), 60_000, 500), `${edge.name} is not back in the fleet: ${JSON.stringify(await fleetOf(edge).catch((e: Error) => e.message))}`);
    t.diagnostic(`both nodes back in the fleet ${Math.round(performance.now() - started)} ms after docker start`);
    // The refused changes left nothing behind.
    for (const edge of EDGES) assert.deepEqual(await streamPorts(edge), { ports: [9000], stale: null });
    const answer = await call(EDGE_B, 'POST', '/v1/streams', { port: 9001, backend: 'echo:7000' });
    assert.equal(answer.status, 201, answer.body);
    const fleet = (JSON.parse(answer.body) as { fleet: { complete: boolean; nodes: Array<{ node: string; outcome: string }> } }).fleet;
    assert.equal(fleet.complete, true, answer.body);
    assert.deepEqual(fleet.nodes.map((n) => `${n.node} ${n.outcome}`).sort(), ['edge-a applied', 'edge-b applied']);
    assert.deepEqual(await echoesOnBoth('after etcd came back', 9001), []);
    assert.deepEqual(await echoesOnBoth('and the first stream'), []);
  });

  it("docker-compose down (the README's) leaves no container, network or process of the project; down -v no volume", async () => {
    const pids: number[] = [];
    for (const service of ['etcd', 'edge-a', 'edge-b', 'echo']) pids.push(...(await containerProcesses(await serviceId(service))).map((p) => p.pid));
    assert.ok(pids.length >= 8, JSON.stringify(pids));
    await runBlock(await readmeBlock(SECTION, /^docker-compose -p fleet -f docker-compose\.fleet\.yml down$/));
    let left = await leftovers();
    assert.equal(left.containers, '');
    assert.equal(left.networks, '');
    // `down` keeps the volumes (the fleet's table and the nodes' files), as the README says; -v deletes them.
    assert.equal(left.volumes.split('\n').filter((v) => v !== '').length, 3, left.volumes);
    await assertNothingOutlives(pids);
    await compose(['down', '-v']);
    left = await leftovers();
    assert.equal(left.volumes, '');
  });
});
