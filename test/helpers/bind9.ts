/**
 * A real authoritative DNS server for the DNS-01 tests: BIND's named (Debian's bind9 package, which
 * `make test` installs: scripts/install-bind9.sh), run in the foreground as a child of the test with a
 * config, a zone and a TSIG key written to a temp folder. It listens on 127.0.0.1 only (UDP and TCP),
 * recurses for nobody, and takes RFC 2136 updates to its zone signed with that key. `stop()` stops it
 * by pid and removes the folder. Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import * as dnsPacket from 'dns-packet';
import { eventually } from './net.js';
import { exited, tempDir } from './portico.js';

export const NAMED = '/usr/sbin/named';

export interface Bind9Tsig {
  /** The key's name as named.conf has it (no trailing dot). */
  name: string;
  algorithm: 'hmac-sha256' | 'hmac-sha384' | 'hmac-sha512' | 'hmac-sha224' | 'hmac-sha1';
  /** Base64, as tsig-keygen prints it. */
  secret: string;
}

export interface Bind9 {
  port: number;
  /** The zone it serves, absolute (`example.test.`). */
  zone: string;
  tsig: Bind9Tsig;
  pid: number;
  /** The folder holding named.conf, the zone file and its journal. */
  dir: string;
  /** What named printed so far (it runs with -g: its log goes to stderr). */
  output(): string;
  stop(): Promise<void>;
}

export interface Bind9Options {
  /** A port on 127.0.0.1 (default: one free for both UDP and TCP). */
  port?: number;
  /** The zone (default `example.test`). */
  zone?: string;
  /** More zones it serves with no updates allowed at all (each with the same records). */
  readOnlyZones?: string[];
  keyName?: string;
  algorithm?: Bind9Tsig['algorithm'];
  /** How long to wait for the SOA answer (default 15 s). */
  startTimeoutMs?: number;
}

/** Why named cannot run here (undefined: it can). */
export function bind9Unavailable(): string | undefined {
  if (existsSync(NAMED)) return undefined;
  return `${NAMED} is missing and installing it needs root (make test runs scripts/install-bind9.sh: apt-get install bind9)`;
}

/** A port on 127.0.0.1 free for both TCP and UDP right now (bounded tries). */
export async function freeDnsPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (port !== 0 && udpFree) return port;
  }
  throw new Error('no port free for both TCP and UDP on 127.0.0.1 after 50 tries');
}

/** Asks 127.0.0.1:port for `name`'s `type` over UDP (no recursion); answers the decoded reply, or undefined after timeoutMs. */
export function queryDns(port: number, name: string, type: 'SOA' | 'TXT' | 'A', timeoutMs = 1000): Promise<dnsPacket.DecodedPacket | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const id = Math.floor(Math.random() * 0x10000);
    const done = (answer: dnsPacket.DecodedPacket | undefined): void => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.on('message', (message) => {
      const decoded = dnsPacket.decode(message);
      if (decoded.id === id) done(decoded);
    });
    socket.send(dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type, name, class: 'IN' }] }), port, '127.0.0.1');
  });
}

/** The TXT values 127.0.0.1:port answers for `name` (each record's strings joined). */
export async function txtValues(port: number, name: string): Promise<string[]> {
  const answer = await queryDns(port, name, 'TXT', 2000);
  if (answer === undefined) throw new Error(`no answer from 127.0.0.1:${port} to TXT ${name}`);
  return (answer.answers ?? [])
    .filter((a) => a.type === 'TXT')
    .map((a) => {
      const data = (a as dnsPacket.TxtAnswer).data;
      return (Array.isArray(data) ? data : [data]).map((d) => d.toString()).join('');
    })
    .sort();
}

/** Starts named (foreground) serving `zone` on 127.0.0.1:port, updatable with a fresh TSIG key. */
export async function startBind9(options: Bind9Options = {}): Promise<Bind9> {
  const port = options.port ?? (await freeDnsPort());
  const zone = (options.zone ?? 'example.test').replace(/\.$/, '');
  const tsig: Bind9Tsig = {
    name: options.keyName ?? 'portico-test-key',
    algorithm: options.algorithm ?? 'hmac-sha256',
    secret: randomBytes(32).toString('base64'),
  };
  const dir = await tempDir('bind9');
  const readOnly = (options.readOnlyZones ?? []).map((z) => z.replace(/\.$/, ''));
  for (const name of [zone, ...readOnly]) {
    await writeFile(
      path.join(dir, `${name}.zone`),
      [
        '$TTL 60',
        `@ IN SOA ns1.${name}. hostmaster.${name}. 1 3600 600 86400 60`,
        `@ IN NS ns1.${name}.`,
        'ns1 IN A 127.0.0.1',
        '@ IN A 127.0.0.1',
        'www IN A 127.0.0.1',
        '',
      ].join('\n'),
    );
  }
  const zoneFile = path.join(dir, `${zone}.zone`);
  const conf = path.join(dir, 'named.conf');
  await writeFile(
    conf,
    `options {
  directory "${dir}";
  pid-file "${path.join(dir, 'named.pid')}";
  session-keyfile "${path.join(dir, 'session.key')}";
  managed-keys-directory "${dir}";
  dump-file "${path.join(dir, 'named_dump.db')}";
  statistics-file "${path.join(dir, 'named.stats')}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  allow-recursion { none; };
  allow-query { any; };
  allow-transfer { none; };
  notify no;
  dnssec-validation no;
};
controls { };
key "${tsig.name}" {
  algorithm ${tsig.algorithm};
  secret "${tsig.secret}";
};
zone "${zone}" {
  type primary;
  file "${zoneFile}";
  allow-update { key "${tsig.name}"; };
};
${readOnly.map((name) => `zone "${name}" {\n  type primary;\n  file "${path.join(dir, `${name}.zone`)}";\n  allow-update { none; };\n};\n`).join('')}`,
    { mode: 0o600 },
  );
  // -g: foreground, log to stderr; -4: IPv4 only; -n 1: one worker thread is plenty for a test.
  const child: ChildProcess = spawn(NAMED, ['-g', '-4', '-n', '1', '-c', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (data: Buffer) => (output += data.toString()));
  child.stderr?.on('data', (data: Buffer) => (output += data.toString()));
  const pid = child.pid as number;
  const stop = async (): Promise<void> => {
    const signal = (name: NodeJS.Signals): void => {
      try {
        process.kill(pid, name);
      } catch {
        // Exited between the check and the signal.
      }
    };
    if (child.exitCode === null && child.signalCode === null) {
      signal('SIGTERM');
      if (!(await exited(child, 10_000))) {
        signal('SIGKILL');
        await exited(child, 5000);
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  const up = await eventually(async () => {
    if (child.exitCode !== null) return true;
    const answer = await queryDns(port, zone, 'SOA', 500);
    return answer !== undefined && answer.flag_aa && (answer.answers ?? []).some((a) => a.type === 'SOA');
  }, options.startTimeoutMs ?? 15_000, 100);
  if (!up || child.exitCode !== null) {
    await stop();
    throw new Error(`named did not answer SOA ${zone} on 127.0.0.1:${port} (exit ${child.exitCode}):\n${output}`);
  }
  return { port, zone: `${zone}.`, tsig, pid, dir, output: () => output, stop };
}
