/**
 * A real ACME certificate authority for tests: Debian's `pebble` (an RFC 8555 test CA) and
 * `pebble-challtestsrv` (a mock DNS server that answers every A query with 127.0.0.1), each started as
 * a child process on 127.0.0.1 and stopped by pid. `make test` installs the package
 * (scripts/install-pebble.sh). Pebble validates HTTP-01 on the `httpPort` the caller names (where the
 * test's nginx serves `/.well-known/acme-challenge/`), resolving every name through challtestsrv, so
 * nothing leaves loopback.
 *
 * Pebble's own HTTPS endpoint is served with test/fixtures/certs/portico.crt (SAN 127.0.0.1 and
 * localhost), signed by the fixtures' test CA: `caBundlePem` is that CA. The CA that issues the
 * ACME certificates is another, made afresh by pebble on every start: `rootPem()` reads it from the
 * management API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fixturePem } from './backends.js';
import { accepts, eventually } from './net.js';
import { stopChild } from './portico.js';

export const PEBBLE = '/usr/bin/pebble';
export const CHALLTESTSRV = '/usr/bin/pebble-challtestsrv';

/** Why pebble cannot run here (undefined: it can). */
export function pebbleUnavailable(): string | undefined {
  if (existsSync(PEBBLE) && existsSync(CHALLTESTSRV)) return undefined;
  return `${PEBBLE} is missing and installing it needs root (make test runs scripts/install-pebble.sh: apt-get install pebble)`;
}

export interface PebbleOptions {
  /** The port pebble's VA connects to for HTTP-01 (on 127.0.0.1, as challtestsrv answers every name). */
  httpPort: number;
  /** The port pebble's VA connects to for TLS-ALPN-01 (unused by Portico; a free one by default). */
  tlsPort?: number;
  /** The ACME API's port (a free one by default). */
  port?: number;
  /** The management API's port (a free one by default). */
  managementPort?: number;
  /** challtestsrv's DNS port, UDP and TCP (a free one by default). */
  dnsPort?: number;
  /** challtestsrv's management port (it cannot be turned off; a free one by default). */
  dnsManagementPort?: number;
  /** Percentage of good nonces pebble rejects as bad (PEBBLE_WFE_NONCEREJECT); 0 by default. */
  nonceRejectPercent?: number;
  /** PEBBLE_VA_ALWAYS_VALID: every challenge passes without validation. Off by default. */
  alwaysValid?: boolean;
  /** Issued certificates' lifetime in seconds (config `certificateValidityPeriod`); pebble's default is 5 years. */
  certificateValiditySeconds?: number;
  /** External account binding required, with these kid → base64url HMAC keys. */
  externalAccountMACKeys?: Record<string, string>;
  /** PEBBLE_AUTHZREUSE: percentage of valid authorizations reused in new orders (pebble's default 50; 0 here). */
  authzReusePercent?: number;
  /**
   * The DNS server pebble resolves through (`-dnsserver`, host:port on loopback), e.g. a test's named
   * (test/helpers/bind9.ts) for DNS-01. challtestsrv is started all the same, unused by pebble then.
   * Default: challtestsrv.
   */
  dnsServer?: string;
}

export interface RunningPebble {
  /** https://127.0.0.1:<port>/dir */
  directoryUrl: string;
  /** The PEM that signs pebble's own HTTPS endpoint (to trust the ACME API, not the issued certificates). */
  caBundlePem: string;
  /** The root that issues the ACME certificates (management API /roots/0; new on every start). */
  rootPem(): Promise<string>;
  /** The intermediate between the root and the leaves (management API /intermediates/0). */
  intermediatePem(): Promise<string>;
  ports: { acme: number; management: number; dns: number; dnsManagement: number; http: number; tls: number };
  pids: { pebble: number; challtestsrv: number };
  /** What both processes wrote so far (for failure messages). */
  output(): string;
  /** Stops both processes by pid (SIGTERM, then SIGKILL after 5 s) and removes the config folder. Never rejects. */
  stop(): Promise<void>;
}

/** A TCP port on 127.0.0.1 nobody listens on right now, also free for UDP when `udp` is set. */
export async function freePort(udp = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!udp) return port;
    const socket = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    if (ok) return port;
  }
  throw new Error('no free port on 127.0.0.1 after 50 attempts');
}

/** GET over HTTPS trusting only `ca`, bounded; answers the body (throws on a non-2xx status). */
function httpsGet(url: string, ca: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const agent = new Agent({ ca, keepAlive: false });
    const req = request(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        agent.destroy();
        if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) resolve(body);
        else reject(new Error(`GET ${url}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => {
      agent.destroy();
      reject(error);
    });
    req.end();
  });
}

function spawnLogged(file: string, args: string[], env: Record<string, string>, sink: (text: string) => void): ChildProcess {
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const label = path.basename(file);
  child.stdout?.on('data', (d: Buffer) => sink(`[${label}] ${d.toString()}`));
  child.stderr?.on('data', (d: Buffer) => sink(`[${label}] ${d.toString()}`));
  child.on('error', (error) => sink(`[${label}] spawn error: ${error.message}\n`));
  return child;
}

/** Starts challtestsrv then pebble on 127.0.0.1, and waits (bounded) until pebble's directory answers. */
export async function startPebble(options: PebbleOptions): Promise<RunningPebble> {
  const unavailable = pebbleUnavailable();
  if (unavailable !== undefined) throw new Error(unavailable);
  const ports = {
    acme: options.port ?? (await freePort()),
    management: options.managementPort ?? (await freePort()),
    dns: options.dnsPort ?? (await freePort(true)),
    dnsManagement: options.dnsManagementPort ?? (await freePort()),
    http: options.httpPort,
    tls: options.tlsPort ?? (await freePort()),
  };
  const dir = await mkdtemp(path.join(tmpdir(), 'portico-pebble-'));
  const caBundlePem = fixturePem('ca.crt');
  await writeFile(path.join(dir, 'cert.pem'), fixturePem('portico.crt'));
  await writeFile(path.join(dir, 'key.pem'), fixturePem('portico.key'), { mode: 0o600 });
  const eab = options.externalAccountMACKeys;
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${ports.acme}`,
      managementListenAddress: `127.0.0.1:${ports.management}`,
      certificate: path.join(dir, 'cert.pem'),
      privateKey: path.join(dir, 'key.pem'),
      httpPort: ports.http,
      tlsPort: ports.tls,
      ocspResponderURL: '',
      externalAccountBindingRequired: eab !== undefined,
      ...(eab !== undefined ? { externalAccountMACKeys: eab } : {}),
      ...(options.certificateValiditySeconds !== undefined ? { certificateValidityPeriod: options.certificateValiditySeconds } : {}),
    },
  };
  await writeFile(path.join(dir, 'pebble-config.json'), JSON.stringify(config, null, 2));

  let output = '';
  const sink = (text: string): void => {
    output += text;
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  // Every listener on 127.0.0.1; the ones a test does not need are turned off (management cannot be).
  const challtestsrv = spawnLogged(
    CHALLTESTSRV,
    [
      '-defaultIPv4', '127.0.0.1',
      '-defaultIPv6', '',
      '-dns01', `127.0.0.1:${ports.dns}`,
      '-http01', '',
      '-https01', '',
      '-tlsalpn01', '',
      '-management', `127.0.0.1:${ports.dnsManagement}`,
    ],
    baseEnv,
    sink,
  );
  const pebbleEnv: Record<string, string> = {
    ...baseEnv,
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: String(options.nonceRejectPercent ?? 0),
    PEBBLE_AUTHZREUSE: String(options.authzReusePercent ?? 0),
  };
  if (options.alwaysValid === true) pebbleEnv.PEBBLE_VA_ALWAYS_VALID = '1';
  let pebble: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all([pebble !== undefined ? stopChild(pebble) : Promise.resolve(), stopChild(challtestsrv)]);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    const dnsUp = await eventually(() => challtestsrv.exitCode === null && accepts(ports.dns, '127.0.0.1', 500), 10_000, 50);
    if (!dnsUp || challtestsrv.exitCode !== null) throw new Error(`pebble-challtestsrv did not listen on 127.0.0.1:${ports.dns}`);
    pebble = spawnLogged(PEBBLE, ['-config', path.join(dir, 'pebble-config.json'), '-dnsserver', options.dnsServer ?? `127.0.0.1:${ports.dns}`], pebbleEnv, sink);
    const directoryUrl = `https://127.0.0.1:${ports.acme}/dir`;
    const running = pebble;
    const up = await eventually(
      async () => running.exitCode !== null || (await httpsGet(directoryUrl, caBundlePem, 1000).then(() => true, () => false)),
      15_000,
      50,
    );
    if (!up || pebble.exitCode !== null) throw new Error(`pebble did not answer ${directoryUrl}`);
    const management = `https://127.0.0.1:${ports.management}`;
    return {
      directoryUrl,
      caBundlePem,
      rootPem: () => httpsGet(`${management}/roots/0`, caBundlePem),
      intermediatePem: () => httpsGet(`${management}/intermediates/0`, caBundlePem),
      ports,
      pids: { pebble: pebble.pid as number, challtestsrv: challtestsrv.pid as number },
      output: () => output,
      stop,
    };
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${output}`);
  }
}
