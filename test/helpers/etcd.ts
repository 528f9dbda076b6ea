/**
 * Real etcd clusters for tests (issue 16, fleet mode): Debian's etcd-server (3.4), 1 or 3 members on
 * 127.0.0.1 with free client and peer ports, their data in a temp folder, each member a child process
 * stopped by pid. `make test` installs the package (scripts/install-etcd.sh). The helper speaks etcd's
 * v3 HTTP/JSON gateway (the grpc-gateway every member serves on its client URL: keys and values in
 * base64, int64 figures as strings) with node's fetch, so etcdctl is not needed. Every request and every
 * wait is bounded. With `tls`, the client URLs are https:// and every client must show a certificate of
 * the given CA (--client-cert-auth); the helper's own requests then go through node:https with the
 * client certificate.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './pebble.js';
import { exited, processRuns, stopChild } from './portico.js';
import { eventually } from './net.js';

export const ETCD = '/usr/bin/etcd';

/** Why etcd cannot run here (undefined: it can). */
export function etcdUnavailable(): string | undefined {
  if (existsSync(ETCD)) return undefined;
  return `${ETCD} is missing and installing it needs root (make test runs scripts/install-etcd.sh: apt-get install etcd-server)`;
}

export interface EtcdClusterOptions {
  members: 1 | 3;
  /** A folder to hold the members' data dirs (kept after stop()); default: a fresh temp folder, removed by stop(). */
  dir?: string;
  /** Bound on the wait for a healthy cluster at start and after restart(); default 15 s. */
  healthyTimeoutMs?: number;
  /** Client TLS: https:// client URLs, the server's certificate, and client certificates required from this CA. */
  tls?: EtcdTlsFiles;
}

/** PEM files for etcd's client TLS (the peers stay on http://127.0.0.1). */
export interface EtcdTlsFiles {
  caFile: string;
  /** The members' server certificate (valid for IP 127.0.0.1) and its key. */
  certFile: string;
  keyFile: string;
  /** A client certificate of caFile's CA, which the helper's own requests show. */
  clientCertFile: string;
  clientKeyFile: string;
}

export interface EtcdMember {
  name: string;
  /** http://127.0.0.1:<client port> (https:// with tls) */
  clientUrl: string;
  /** http://127.0.0.1:<peer port> */
  peerUrl: string;
  dataDir: string;
  /** The current process's pid (a new one after restart()). */
  pid: number;
  /** True while the current process has not exited. */
  running: boolean;
}

export interface RequestOptions {
  /** The member asked (index); default: the first running one. */
  member?: number;
  /** Bound on the request; default 3 s. */
  timeoutMs?: number;
}

export interface EtcdStatus {
  /** The store's current revision as this member sees it. */
  revision: number;
  /** The leader's member id (decimal string, as etcd writes it); '0' when there is none. */
  leader: string;
  /** The answering member's id. */
  memberId: string;
  /** The leader's index in members, when known. */
  leaderIndex: number | undefined;
  raftTerm: number;
}

export interface EtcdCluster {
  /** Every member's client URL, http://127.0.0.1:<port> (https:// with tls). */
  endpoints: string[];
  members: EtcdMember[];
  /** Writes key = value; answers the revision of the write. Rejects on an etcd error or after the bound. */
  put(key: string, value: string, options?: RequestOptions): Promise<number>;
  /** Reads key (at `revision` if given, which etcd refuses once compacted); undefined when absent. */
  get(key: string, options?: RequestOptions & { revision?: number }): Promise<string | undefined>;
  /** Compacts the history up to `revision` (default: the current revision); answers the revision compacted at. */
  compact(revision?: number, options?: RequestOptions): Promise<number>;
  status(options?: RequestOptions): Promise<EtcdStatus>;
  /** SIGKILLs member i by pid and waits (bounded) until it is gone. */
  kill(i: number): Promise<void>;
  /**
   * Starts member i again with the same data dir and flags (after kill(i) or a stop). Does not wait for
   * health: call waitHealthy(). A restarted etcd 3.4 member serves no client request before it has
   * published itself through raft, and when that first proposal is lost (no leader yet) it waits out
   * etcd's request timeout (5 s + 2 election timeouts, not configurable): healing then takes about 5.6 s
   * instead of 0.3 to 1 s (measured: its status request hangs meanwhile, the port accepting).
   */
  restart(i: number): Promise<void>;
  /** Bounded wait until every running member answers status with one agreed leader and a put/get round trip works through each. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** What the members wrote (the last 100 kB each), for failure messages. */
  output(): string;
  /** Stops every member by pid, followers before the leader (SIGTERM, then SIGKILL after 5 s), and removes the temp folder. Never rejects. */
  stop(): Promise<void>;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: string): string => Buffer.from(text, 'base64').toString('utf8');

interface MemberState {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  child: ChildProcess;
  output: string;
}

/** `count` distinct free TCP ports on 127.0.0.1. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < count; attempt += 1) {
    if (attempt >= count * 20) throw new Error(`no ${count} distinct free ports on 127.0.0.1`);
    ports.add(await freePort());
  }
  return [...ports];
}

/** Starts a `members`-member etcd cluster on 127.0.0.1 and waits (bounded) until it is healthy. */
export async function startEtcdCluster(options: EtcdClusterOptions): Promise<EtcdCluster> {
  const unavailable = etcdUnavailable();
  if (unavailable !== undefined) throw new Error(unavailable);
  const count = options.members;
  const healthyTimeoutMs = options.healthyTimeoutMs ?? 15_000;
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), 'portico-etcd-')));
  await mkdir(dir, { recursive: true });
  const ports = await distinctFreePorts(count * 2);
  const token = `portico-test-${process.pid}-${Date.now()}`;
  const names = Array.from({ length: count }, (_, i) => `m${i}`);
  const peerUrl = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const tls = options.tls;
  const clientUrl = (i: number): string => `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${ports[2 * i]}`;
  const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(',');

  const argsOf = (i: number): string[] => [
    '--name', names[i] as string,
    '--data-dir', path.join(dir, names[i] as string),
    '--listen-client-urls', clientUrl(i),
    '--advertise-client-urls', clientUrl(i),
    '--listen-peer-urls', peerUrl(i),
    '--initial-advertise-peer-urls', peerUrl(i),
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', token,
    // Fast elections for fast tests (etcd's defaults: 100 ms and 1 s).
    '--heartbeat-interval', '25',
    '--election-timeout', '250',
    '--logger', 'zap',
    '--log-level', 'warn',
    '--log-outputs', 'stderr',
    ...(tls === undefined ? [] : ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, '--client-cert-auth']),
  ];
  // A clean environment: etcd reads ETCD_* variables as flags.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };

  const states: MemberState[] = [];
  const spawnMember = (i: number): ChildProcess => {
    const child = spawn(ETCD, argsOf(i), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const sink = (data: Buffer): void => {
      const state = states[i];
      if (state === undefined) return;
      state.output += data.toString();
      if (state.output.length > 200_000) state.output = state.output.slice(-100_000);
    };
    child.stdout?.on('data', sink);
    child.stderr?.on('data', sink);
    child.on('error', (error) => sink(Buffer.from(`spawn error: ${error.message}\n`)));
    return child;
  };
  for (let i = 0; i < count; i += 1) {
    states.push({ name: names[i] as string, clientPort: ports[2 * i] as number, peerPort: ports[2 * i + 1] as number, dataDir: path.join(dir, names[i] as string), child: undefined as unknown as ChildProcess, output: '' });
    (states[i] as MemberState).child = spawnMember(i);
  }

  const running = (i: number): boolean => {
    const child = states[i]?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  };
  const state = (i: number): MemberState => {
    const found = states[i];
    if (found === undefined) throw new Error(`no etcd member ${i} (the cluster has ${count})`);
    return found;
  };
  const pick = (member: number | undefined): number => {
    if (member !== undefined) {
      state(member);
      return member;
    }
    const first = states.findIndex((_, i) => running(i));
    if (first < 0) throw new Error('no etcd member runs');
    return first;
  };
  const memberIds = new Map<string, number>();

  const clientTls = tls === undefined ? undefined : { ca: readFileSync(tls.caFile), cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) };
  /** One POST over https with the client certificate (node's fetch takes no CA nor client certificate). */
  const postTls = (url: string, payload: string, timeoutMs: number, files: NonNullable<typeof clientTls>): Promise<{ ok: boolean; status: number; text: () => Promise<string> }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' }, ...files }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          clearTimeout(bound);
          resolve({ ok: (res.statusCode ?? 0) < 300, status: res.statusCode ?? 0, text: async () => text });
        });
        res.on('error', reject);
      });
      const bound = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { name: 'TimeoutError' })), timeoutMs);
      req.on('error', (error) => {
        clearTimeout(bound);
        reject(error);
      });
      req.end(payload);
    });

  /** POSTs `body` to the member's gateway at `route`; answers the JSON, throws etcd's error or on the bound. */
  const call = async (route: string, body: unknown, options: RequestOptions = {}): Promise<Record<string, unknown>> => {
    const i = pick(options.member);
    const url = `${clientUrl(i)}${route}`;
    const timeoutMs = options.timeoutMs ?? 3000;
    let response: { ok: boolean; status: number; text: () => Promise<string> };
    try {
      response = clientTls === undefined
        ? await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(timeoutMs) })
        : await postTls(url, JSON.stringify(body), timeoutMs, clientTls);
    } catch (error) {
      const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `${(error as Error).message} ${String((error as { cause?: Error }).cause?.message ?? '')}`.trim();
      throw new Error(`etcd ${names[i]} POST ${route}: ${reason}`);
    }
    const text = await response.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // An answer that is no JSON is reported as text below.
    }
    if (!response.ok || json.error !== undefined) {
      throw new Error(`etcd ${names[i]} POST ${route}: HTTP ${response.status}: ${String(json.message ?? json.error ?? text.slice(0, 200))}`);
    }
    return json;
  };
  const header = (json: Record<string, unknown>): Record<string, string> => (json.header ?? {}) as Record<string, string>;

  const status = async (options: RequestOptions = {}): Promise<EtcdStatus> => {
    const json = await call('/v3/maintenance/status', {}, options);
    const memberId = String(header(json).member_id ?? '0');
    const i = pick(options.member);
    memberIds.set(memberId, i);
    const leader = String(json.leader ?? '0');
    return { revision: Number(header(json).revision ?? 0), leader, memberId, leaderIndex: memberIds.get(leader), raftTerm: Number(json.raftTerm ?? 0) };
  };
  const put = async (key: string, value: string, options: RequestOptions = {}): Promise<number> => {
    const json = await call('/v3/kv/put', { key: b64(key), value: b64(value) }, options);
    return Number(header(json).revision ?? 0);
  };
  const get = async (key: string, options: RequestOptions & { revision?: number } = {}): Promise<string | undefined> => {
    const body: Record<string, unknown> = { key: b64(key) };
    if (options.revision !== undefined) body.revision = String(options.revision);
    const json = await call('/v3/kv/range', body, options);
    const kvs = (json.kvs ?? []) as Array<{ value?: string }>;
    const first = kvs[0];
    return first === undefined ? undefined : unb64(first.value ?? '');
  };
  const compact = async (revision?: number, options: RequestOptions = {}): Promise<number> => {
    const at = revision ?? (await status(options)).revision;
    await call('/v3/kv/compaction', { revision: String(at), physical: true }, options);
    return at;
  };

  const waitHealthy = async (timeoutMs = healthyTimeoutMs): Promise<void> => {
    let last = 'not asked yet';
    const healthy = async (): Promise<boolean> => {
      const up = states.map((_, i) => i).filter(running);
      if (up.length === 0) {
        last = 'no member runs';
        return false;
      }
      try {
        const seen = await Promise.all(up.map((i) => status({ member: i, timeoutMs: 1000 })));
        const leaders = new Set(seen.map((s) => s.leader));
        if (leaders.size !== 1 || leaders.has('0')) {
          last = `leaders seen: ${[...leaders].join(', ')}`;
          return false;
        }
        const key = `/portico-test/health/${Date.now()}`;
        await put(key, 'ok', { member: up[0], timeoutMs: 1000 });
        for (const i of up) {
          const value = await get(key, { member: i, timeoutMs: 1000 });
          if (value !== 'ok') {
            last = `${names[i]} read ${String(value)} for the health key`;
            return false;
          }
        }
        return true;
      } catch (error) {
        last = (error as Error).message;
        return false;
      }
    };
    if (!(await eventually(healthy, timeoutMs, 100))) {
      throw new Error(`etcd cluster not healthy within ${timeoutMs} ms (${last})`);
    }
  };

  const output = (): string => states.map((s) => `--- etcd ${s.name} (pid ${String(s.child.pid)}) ---\n${s.output}`).join('\n');
  const stop = async (): Promise<void> => {
    // Followers first, then the leader: a leader stopped while its followers stop too tries to hand
    // leadership over to one of them, and only SIGKILL ends it (5 s); one left alone exits at once.
    const up = states.map((_, i) => i).filter(running);
    const leaderIndex = up.length > 1 ? await status({ member: up[0], timeoutMs: 500 }).then((s) => s.leaderIndex, () => undefined) : undefined;
    await Promise.all(states.filter((_, i) => i !== leaderIndex).map((s) => stopChild(s.child)));
    if (leaderIndex !== undefined) await stopChild(state(leaderIndex).child);
    if (ownDir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  const kill = async (i: number): Promise<void> => {
    const { child } = state(i);
    const pid = child.pid;
    if (pid === undefined || !running(i)) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    await exited(child, 5000);
    await eventually(async () => !(await processRuns(pid)), 2000);
  };
  const restart = async (i: number): Promise<void> => {
    const member = state(i);
    if (running(i)) await stopChild(member.child);
    member.child = spawnMember(i);
    // Spawn errors arrive asynchronously: a short bounded look so one is reported here, not later.
    await sleep(20);
    if (!running(i)) throw new Error(`etcd ${member.name} exited at once on restart\n${member.output.slice(-2000)}`);
  };

  const members: EtcdMember[] = states.map((s, i) => ({
    name: s.name,
    clientUrl: clientUrl(i),
    peerUrl: peerUrl(i),
    dataDir: s.dataDir,
    get pid() {
      return state(i).child.pid as number;
    },
    get running() {
      return running(i);
    },
  }));

  try {
    await waitHealthy();
  } catch (error) {
    const text = output();
    await stop();
    throw new Error(`${(error as Error).message}\n${text}`);
  }
  return { endpoints: members.map((m) => m.clientUrl), members, put, get, compact, status, kill, restart, waitHealthy, output, stop };
}
