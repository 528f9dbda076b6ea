/**
 * The floor: what one change costs with nothing but nginx. A separate nginx, started here with its
 * own directory and ports, runs a copy of the main config Portico wrote (same sizing, same http
 * block) over a tree that mirrors Portico's: as many stream files, each the text Portico generates
 * (taken from a dry run), on ports of its own. One change is: write one stream file with a new
 * listen port, bare `nginx -t`, SIGHUP to the master, until the port echoes a byte. Whatever
 * Portico spends beyond this, on a tree of the same size, is its own overhead.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { expectOk } from './http.js';
import { LOOPBACK, waitUntilServing } from './net.js';
import { startOwnNginx, type OwnNginx } from './own-nginx.js';
import { since } from './stats.js';

export interface FloorSample {
  /** Writing the stream file and `nginx -t -q`. */
  testMs: number;
  /** From SIGHUP until the new port echoes a byte. */
  reloadMs: number;
  totalMs: number;
}

export interface FloorGrowth {
  files: number;
  /** Writing the files, one `nginx -t`, one SIGHUP, until the last new port echoes. */
  ms: number;
}

export interface FloorNginx {
  pid: number;
  /** Stream files in the mirror (the change file not counted). */
  readonly size: number;
  /** Adds mirror files on `ports` with one test and one reload. */
  grow(ports: number[]): Promise<FloorGrowth>;
  /** One change: the change file now listens on `port` (which must be free). */
  change(port: number): Promise<FloorSample>;
  logTail(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * One floor change, timed as Portico's are: `serving` (a probe the caller started before anything
 * changed, as a Portico change is polled from its request on) resolves once the change serves;
 * `write` writes the changed file, then come a bare `nginx -t` and a SIGHUP. `serving` answers the
 * `performance.now()` of the moment it saw the change served.
 */
export async function timeChange(
  nginx: Pick<OwnNginx, 'test' | 'reload'>,
  start: number,
  serving: Promise<number>,
  write: () => Promise<void>,
): Promise<FloorSample> {
  serving.catch(() => undefined); // awaited below; a failed test must not leave it unhandled
  await write();
  await nginx.test();
  const tested = performance.now();
  await nginx.reload();
  const served = await serving;
  return { testMs: tested - start, reloadMs: served - tested, totalMs: since(start) };
}

/**
 * The text Portico generates for a stream to 127.0.0.1:`echoPort` on a given port, from a dry run
 * (nothing written): the floors' and stream-conductor's files are that very text.
 */
export async function generatedStreamText(apiPort: number, echoPort: number): Promise<(port: number) => string> {
  const dry = JSON.parse((await expectOk(apiPort, 'POST', '/v1/streams?dryRun=true', { upstreams: [{ address: `${LOOPBACK}:${echoPort}` }] })).body) as {
    port: number;
    files: Array<{ text: string }>;
  };
  const generated = dry.files[0]?.text ?? '';
  const portPattern = new RegExp(`\\b${dry.port}\\b`, 'g');
  return (port) => generated.replace(portPattern, String(port));
}

/** A reload of a 5,000-listener nginx on a busy machine can take seconds. */
const SERVE_TIMEOUT_MS = 15_000;
const WRITE_SLICE = 200;

export interface FloorOptions {
  nginxBin: string;
  dir: string;
  /** Portico's STATE_DIR and its main config's text: every path in it is moved to `dir`. */
  porticoStateDir: string;
  porticoMainConfig: string;
  /** The stream file Portico generates for `port` (same upstream as Portico's streams). */
  streamText: (port: number) => string;
  firstPort: number;
  onSpawn: (stop: () => Promise<void>) => void;
}

/** Starts the floor nginx serving `firstPort` from its change file; resolves once that port echoes. */
export async function startFloor(options: FloorOptions): Promise<FloorNginx> {
  const { dir, streamText } = options;
  for (const sub of ['stream.d', 'http.d']) await mkdir(`${dir}/${sub}`, { recursive: true });
  // Managed mode's main config includes a media types file; an operator's config for streams alone does not.
  await copyFile(`${options.porticoStateDir}/mime.types`, `${dir}/mime.types`).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  const changeFile = `${dir}/stream.d/_conductor_change.conf`;
  await writeFile(changeFile, streamText(options.firstPort));
  const nginx: OwnNginx = await startOwnNginx({
    nginxBin: options.nginxBin,
    dir,
    mainConfig: options.porticoMainConfig.split(options.porticoStateDir).join(dir),
    servingPort: options.firstPort,
    onSpawn: options.onSpawn,
  });
  let size = 0;

  return {
    pid: nginx.pid,
    get size() {
      return size;
    },
    async grow(ports) {
      const start = performance.now();
      // In slices: thousands of writes at once would hold thousands of descriptors.
      for (let i = 0; i < ports.length; i += WRITE_SLICE) {
        const slice = ports.slice(i, i + WRITE_SLICE);
        await Promise.all(slice.map((port) => writeFile(`${dir}/stream.d/_conductor_${port}.conf`, streamText(port))));
      }
      await nginx.test();
      await nginx.reload();
      const last = ports.at(-1);
      if (last !== undefined) await waitUntilServing(last, SERVE_TIMEOUT_MS);
      size += ports.length;
      return { files: ports.length, ms: since(start) };
    },
    async change(port) {
      const start = performance.now();
      // Polled from the start, as a Portico create is: the probes cost both sides alike.
      const serving = waitUntilServing(port, SERVE_TIMEOUT_MS);
      return timeChange(nginx, start, serving, () => writeFile(changeFile, streamText(port)));
    },
    logTail: () => nginx.logTail(),
    stop: () => nginx.stop(),
  };
}
