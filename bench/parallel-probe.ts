/**
 * A standalone probe of issue 13 goal 2: where the wall time of 200 parallel `POST /v1/streams`
 * goes, against the median of one create. It takes the benchmark's own samples (`timeSingleCreate`:
 * one legacy create, done when answered and echoing; `timeParallelCreates`: 200 creates without a
 * port, one connection each, done when the last port echoes, then deleted) against one or more built
 * checkouts side by side, alternating them round by round so that the noise of a shared machine
 * falls on all alike. Per round and checkout also: three back-to-back pairs (a create, then its
 * delete, each sent when the one before answered), and the CPU time every party spent on the
 * parallel round (Portico, the `nginx -t` it ran, nginx's master and workers, this client). Prints
 * per checkout the medians (p90) of these, the batches (reloads) per round, and the last batch's size
 * and phases (`/v1/status` lastApply).
 *
 *   unshare --net sh -c 'ip link set lo up && NGINX_BIN=$(cat .nginx-bin) \
 *     node --import tsx bench/parallel-probe.ts [repoDir[#flag,flag[#NAME=value,NAME=value]] ...]'
 *
 * Each repoDir must hold a build (dist/, as `make build` leaves it); none given: this checkout. After
 * `#`, node flags for that side's Portico (empty: bin/portico's, or PROBE_NODE_FLAGS), and after a
 * second `#`, variables added to its environment. PROBE_ROUNDS (15) rounds of PROBE_COUNT (200)
 * parallel creates; PROBE_LEVEL (0) streams filled in first; PROBE_CPU_PROF=dir: each Portico writes a
 * V8 CPU profile into dir/<side> when it stops; PROBE_TRACE=1: a line per round on stderr;
 * PROBE_OUTPUT=1: the last of what each Portico wrote (its collections, with --trace-gc).
 *
 * Everything runs on 127.0.0.1 (under `unshare --net`, off other users' ports); every process started
 * here is stopped by its pid and every directory removed, also on failure.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Cleanup } from './cleanup.js';
import { expectOk } from './http.js';
import { FILL_CONCURRENCY, SETTLE_MS } from './ladder.js';
import { fillTo } from './scale.js';
import { ephemeralPort, freePortsIn, startEchoServer } from './net.js';
import { launcherNodeFlags, spawnPortico, type RunningPortico } from './portico.js';
import { timeParallelCreates, timeSingleCreate, type CreateSample, type ParallelSample } from './scenarios.js';
import { CLOCK_TICKS } from './proc-stats.js';
import { percentile } from './stats.js';

const HERE = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 15);
const COUNT = Number(process.env.PROBE_COUNT ?? 200);
const TRACE = process.env.PROBE_TRACE === '1';
/** PROBE_LEVEL: streams each Portico holds (filled through the API) before the rounds; 0 by default. */
const LEVEL = Number(process.env.PROBE_LEVEL ?? 0);
/** Each checkout's PORT_RANGE: from here up, the next checkout's above it (all below 21000, where the tests' ports start). */
const FIRST_PORT = 10000;
const RANGE_SIZE = LEVEL + 1000;

interface Side {
  label: string;
  portico: RunningPortico;
  singlePorts: number[];
  single: CreateSample[];
  parallel: ParallelSample[];
  /** CPU time (user + system) per parallel round, its deletes included: Portico's own, ... */
  cpu: number[];
  /** ... its children's (the `nginx -t` it ran), nginx's (master and workers, old ones included), this client's. */
  cpuTests: number[];
  cpuNginx: number[];
  cpuClient: number[];
  /** Back-to-back changes, each sent when the one before answered: a create without a port, then its delete. */
  backToBack: { create: number[]; remove: number[] };
}

/** utime, stime, and the children's that were waited for (cutime, cstime) of `pid`, in ms. */
async function cpuOf(pid: number): Promise<{ own: number; children: number }> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const f = text.slice(text.lastIndexOf(')') + 2).trim().split(' ').map(Number);
  const ms = (ticks: number): number => (ticks * 1000) / CLOCK_TICKS;
  return { own: ms((f[11] ?? 0) + (f[12] ?? 0)), children: ms((f[13] ?? 0) + (f[14] ?? 0)) };
}

/** An nginx master's CPU with its workers': the exited ones (waited for) and the live ones. */
async function nginxCpu(master: number): Promise<number> {
  const { own, children } = await cpuOf(master);
  let live = 0;
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const text = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    if (Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]) === master) live += (await cpuOf(Number(name))).own;
  }
  return own + children + live;
}

/** The CPU of everyone taking part in a round: Portico, its `nginx -t` children, nginx, this client. */
async function cpuNow(portico: RunningPortico): Promise<{ portico: number; tests: number; nginx: number; client: number }> {
  const { own, children } = await cpuOf(portico.pid);
  const usage = process.cpuUsage();
  return { portico: own, tests: children, nginx: await nginxCpu(portico.nginxPid()), client: (usage.user + usage.system) / 1000 };
}

/** Pairs of back-to-back changes per round and side (see `Side.backToBack`). */
const BACK_TO_BACK = 3;

/** A create (port allocated) sent the moment nothing else is under way, then its delete the moment it answered. */
async function timeBackToBack(side: Side, echoPort: number): Promise<void> {
  const started = performance.now();
  const answer = await expectOk(side.portico.apiPort, 'POST', '/v1/streams', { upstreams: [{ address: `127.0.0.1:${echoPort}` }] });
  const created = performance.now();
  const { port } = JSON.parse(answer.body) as { port: number };
  await expectOk(side.portico.apiPort, 'DELETE', `/v1/streams/${port}`);
  side.backToBack.create.push(created - started);
  side.backToBack.remove.push(performance.now() - created);
}

const med = (values: number[]): number => percentile(values, 50);
const p90 = (values: number[]): number => percentile(values, 90);
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '–');

async function main(): Promise<void> {
  const nginxBin = process.env.NGINX_BIN;
  if (nginxBin === undefined || nginxBin === '') throw new Error('NGINX_BIN is not set');
  const repos = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [HERE];
  const cleanup = new Cleanup();
  const stop = (): void => void cleanup.run().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const echo = await startEchoServer();
    cleanup.push('echo server', () => echo.close());
    const profDir = process.env.PROBE_CPU_PROF;
    const sides: Side[] = [];
    for (const [i, spec] of repos.entries()) {
      // repoDir#flag,flag#NAME=value,NAME=value: this side runs with these node flags, and this environment.
      const [repo = HERE, own, env] = spec.split('#');
      const from = FIRST_PORT + i * RANGE_SIZE;
      const range = { from, to: from + RANGE_SIZE - 1 };
      // Singles use the top of the range; the parallel rounds allocate from its bottom.
      const singlePorts = await freePortsIn(range.to - 2 * ROUNDS - 10, range.to, 2 * ROUNDS + 5);
      const [httpPort, httpsPort] = await freePortsIn(29900 + i * 10, 29909 + i * 10, 2);
      const stateDir = await mkdtemp('/tmp/portico-probe-');
      cleanup.push('state dir', () => rm(stateDir, { recursive: true, force: true }));
      const flags =
        own !== undefined && own !== '' ? own.split(',').filter((f) => f !== '') : (process.env.PROBE_NODE_FLAGS?.split(/\s+/).filter((f) => f !== '') ?? (await launcherNodeFlags(repo)));
      const prof = profDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profDir, String(i))}`];
      const saved = { ...process.env };
      for (const pair of env?.split(',') ?? []) {
        const [name = '', value = ''] = pair.split('=');
        if (name !== '') process.env[name] = value;
      }
      const portico = spawnPortico({
        repoDir: repo,
        nginxBin,
        stateDir,
        portRange: range,
        bindPort: await ephemeralPort(),
        httpPort: httpPort as number,
        httpsPort: httpsPort as number,
        nodeArgs: [...flags, ...prof],
      });
      process.env = saved;
      cleanup.push('portico', () => portico.stop());
      await portico.ready();
      if (LEVEL > 0) await fillTo(portico, LEVEL, FILL_CONCURRENCY, echo.port);
      sides.push({ label: `${String.fromCharCode(65 + i)} ${repo} (node ${flags.join(' ')})${env === undefined ? '' : ` ${env}`}`, portico, singlePorts, single: [], parallel: [], cpu: [], cpuTests: [], cpuNginx: [], cpuClient: [], backToBack: { create: [], remove: [] } });
    }
    const take = (side: Side): number => {
      const port = side.singlePorts.shift();
      if (port === undefined) throw new Error('out of single ports');
      return port;
    };
    // Warm-up, not recorded: code paths compiled, caches filled.
    for (const side of sides) {
      await timeSingleCreate(side.portico, take(side), echo.port);
      await sleep(SETTLE_MS);
      await timeParallelCreates(side.portico, COUNT, echo.port);
    }
    for (let round = 0; round < ROUNDS; round += 1) {
      // Alternate who goes first, so neither always follows the other's reload.
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        await sleep(SETTLE_MS);
        side.single.push(await timeSingleCreate(side.portico, take(side), echo.port));
        await sleep(SETTLE_MS);
        const before = await cpuNow(side.portico);
        const sample = await timeParallelCreates(side.portico, COUNT, echo.port);
        const after = await cpuNow(side.portico);
        side.cpu.push(after.portico - before.portico);
        side.cpuTests.push(after.tests - before.tests);
        side.cpuNginx.push(after.nginx - before.nginx);
        side.cpuClient.push(after.client - before.client);
        side.parallel.push(sample);
        await sleep(SETTLE_MS);
        for (let pair = 0; pair < BACK_TO_BACK; pair += 1) await timeBackToBack(side, echo.port);
        if (TRACE) {
          process.stderr.write(
            `${side.label.slice(0, 1)} round ${round + 1}: cpu ${f1(side.cpu.at(-1) ?? Number.NaN)} wall ${f1(sample.wallMs)} answered ${f1(sample.answeredMs)} reloads ${sample.reloads} last ${sample.lastBatch.changes} ${JSON.stringify(sample.lastBatch.phasesMs)}\n`,
          );
        }
      }
      process.stderr.write(`probe: round ${round + 1}/${ROUNDS}\n`);
    }
    report(sides);
    // PROBE_OUTPUT=1: the last of what each Portico wrote (with --trace-gc among the flags: its collections).
    if (process.env.PROBE_OUTPUT === '1') for (const side of sides) process.stderr.write(`--- ${side.label}\n${side.portico.output()}\n`);
  } finally {
    await cleanup.run();
  }
}

function report(sides: Side[]): void {
  const lines: string[] = [];
  lines.push(`${COUNT} parallel POST /v1/streams at ${LEVEL} streams vs one create (GET /createstream), ${ROUNDS} rounds each, medians (p90)`);
  for (const side of sides) {
    const wall = side.parallel.map((p) => p.wallMs);
    const answered = side.parallel.map((p) => p.answeredMs);
    const one = side.single.map((s) => s.totalMs);
    const oneAnswered = side.single.map((s) => s.answeredMs);
    const last = side.parallel.map((p) => p.lastBatch.changes);
    const before = side.parallel.map((p) => COUNT - p.lastBatch.changes);
    const reloads = side.parallel.map((p) => p.reloads);
    lines.push(`\n${side.label}`);
    lines.push(`  parallel wall (all echo)   ${f1(med(wall))} (${f1(p90(wall))}) ms`);
    lines.push(`  parallel all answered      ${f1(med(answered))} (${f1(p90(answered))}) ms`);
    lines.push(`  one create (echo+answer)   ${f1(med(one))} (${f1(p90(one))}) ms; answered ${f1(med(oneAnswered))} ms`);
    lines.push(`  back to back: create, then its delete, answered in ${f1(med(side.backToBack.create))} (${f1(p90(side.backToBack.create))}) and ${f1(med(side.backToBack.remove))} (${f1(p90(side.backToBack.remove))}) ms`);
    lines.push(`  wall / one create          ${(med(wall) / med(one)).toFixed(2)}x`);
    lines.push(`  CPU / round (ms)           Portico ${f1(med(side.cpu))}, its nginx -t ${f1(med(side.cpuTests))}, nginx ${f1(med(side.cpuNginx))}, this client ${f1(med(side.cpuClient))} (creates and deletes)`);
    const mean = reloads.reduce((a, b) => a + b, 0) / reloads.length;
    lines.push(`  batches (reloads) / round  median ${med(reloads)}, mean ${mean.toFixed(2)}; each round: ${reloads.join(',')}`);
    lines.push(`  changes in last batch      ${med(last)}; before it ${med(before)}`);
    const phases = [...new Set(side.parallel.flatMap((p) => Object.keys(p.lastBatch.phasesMs)))];
    const onePhases = [...new Set(side.single.flatMap((s) => Object.keys(s.phasesMs)))];
    const first = sides[0] as Side;
    if (side !== first) {
      // Each round ran every side back to back: the ratio per round cancels what the machine did meanwhile.
      const paired = (mine: number[], theirs: number[]): string => {
        const ratios = mine.map((v, i) => v / (theirs[i] as number));
        return `${med(ratios).toFixed(2)}x (middle half ${percentile(ratios, 25).toFixed(2)}-${percentile(ratios, 75).toFixed(2)})`;
      };
      lines.push(`  over ${first.label.slice(0, 1)}, paired by round: wall ${paired(wall, first.parallel.map((p) => p.wallMs))}, Portico CPU ${paired(side.cpu, first.cpu)}, one create ${paired(one, first.single.map((s) => s.totalMs))}`);
    }
    lines.push(`  last batch phases (ms)     ${phases.map((k) => `${k} ${f1(med(side.parallel.map((p) => p.lastBatch.phasesMs[k] ?? 0)))}`).join(', ')}`);
    lines.push(`  one create phases (ms)     ${onePhases.map((k) => `${k} ${f1(med(side.single.map((s) => s.phasesMs[k] ?? 0)))}`).join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
