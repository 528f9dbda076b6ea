/**
 * The floor of one app change: a second nginx, started here with its own directory and ports, on a
 * copy of the main config Portico wrote and of the very app files it wrote (every app file and the
 * shared `portico_http.conf`, with Portico's listen ports and directory moved to the floor's). One
 * change is: rewrite one app file with another upstream address, bare `nginx -t`, SIGHUP to the
 * master, until requests with that app's Host are answered only by the new upstream. Whatever Portico
 * spends beyond this, on the same files, is its own overhead.
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { httpGet, waitUntilAnswers } from './apps-mix.js';
import { timeChange } from './floor.js';
import { startOwnNginx, type OwnNginx } from './own-nginx.js';
import { since } from './stats.js';

export interface AppsFloorSample {
  /** Writing the app file and `nginx -t -q`. */
  testMs: number;
  /** From SIGHUP until only the new upstream answers. */
  reloadMs: number;
  totalMs: number;
}

export interface AppsFloorGrowth {
  files: number;
  /** Writing the files, one `nginx -t`, one SIGHUP, until the last app answers. */
  ms: number;
}

export interface AppsFloor {
  pid: number;
  httpPort: number;
  /** Adds every other app file with one test and one reload. */
  grow(): Promise<AppsFloorGrowth>;
  /** One change: the change app's upstream is now `port`, answered by the backend `name`. */
  change(port: number, name: string): Promise<AppsFloorSample>;
  logTail(): Promise<string>;
}

export interface AppsFloorOptions {
  nginxBin: string;
  dir: string;
  /** Portico's STATE_DIR, its main config's text, and its apps' directory (read once, now). */
  porticoStateDir: string;
  porticoMainConfig: string;
  porticoHttpDir: string;
  /** Portico's HTTP_PORT and HTTPS_PORT, and the floor's own. */
  porticoPorts: { http: number; https: number };
  ports: { http: number; https: number };
  /** The app whose file each change rewrites: its file, its Host, its upstream address now, and the backend answering there. */
  change: { file: string; host: string; address: string; backend: string };
  onSpawn: (stop: () => Promise<void>) => void;
}

/** A reload of a 1,000-app nginx on a busy machine can take seconds. */
const SERVE_TIMEOUT_MS = 15_000;
const SHARED_FILE = 'portico_http.conf';

/** Starts the floor on the shared file and the change app; resolves once that app answers. */
export async function startAppsFloor(options: AppsFloorOptions): Promise<AppsFloor> {
  const { dir, porticoStateDir, porticoPorts, ports, change } = options;
  for (const sub of ['stream.d', 'http.d']) await mkdir(`${dir}/${sub}`, { recursive: true });
  await copyFile(`${porticoStateDir}/mime.types`, `${dir}/mime.types`);
  const moved = (text: string): string =>
    text
      .split(porticoStateDir)
      .join(dir)
      .replace(/(\blisten\s+)(\d+)\b/g, (all, listen: string, port: string) => {
        if (Number(port) === porticoPorts.http) return `${listen}${ports.http}`;
        if (Number(port) === porticoPorts.https) return `${listen}${ports.https}`;
        throw new Error(`an app file listens on ${port}, neither HTTP_PORT nor HTTPS_PORT`);
      });
  // Read now, all of them: Portico's files change as soon as the rung replaces its first app.
  const names = (await readdir(options.porticoHttpDir)).filter((n) => n.endsWith('.conf')).sort();
  const texts = new Map<string, string>();
  for (const name of names) texts.set(name, moved(await readFile(`${options.porticoHttpDir}/${name}`, 'utf8')));
  const changeText = texts.get(change.file);
  if (changeText === undefined || !texts.has(SHARED_FILE)) throw new Error(`Portico's apps directory holds no ${change.file} or ${SHARED_FILE}`);
  if (changeText.split(change.address).length !== 2) throw new Error(`${change.file} does not name ${change.address} exactly once`);
  const textFor = (port: number): string => changeText.replace(change.address, `127.0.0.1:${port}`);

  for (const name of [SHARED_FILE, change.file]) await writeFile(`${dir}/http.d/${name}`, texts.get(name) as string);
  const nginx: OwnNginx = await startOwnNginx({
    nginxBin: options.nginxBin,
    dir,
    mainConfig: options.porticoMainConfig.split(porticoStateDir).join(dir),
    httpPort: ports.http,
    onSpawn: options.onSpawn,
  });
  await waitUntilAnswers(ports.http, change.host, change.backend, SERVE_TIMEOUT_MS);

  return {
    pid: nginx.pid,
    httpPort: ports.http,
    async grow() {
      const start = performance.now();
      const others = names.filter((n) => n !== SHARED_FILE && n !== change.file);
      for (const name of others) await writeFile(`${dir}/http.d/${name}`, texts.get(name) as string);
      await nginx.test();
      await nginx.reload();
      // The last file's app is served once the new workers run. Before, its Host fell to the first
      // server on the port (the change app's, as the copied shared file leaves the default to an app).
      const last = others.at(-1);
      if (last !== undefined) {
        const host = /server_name (\S+?)[ ;]/.exec(texts.get(last) as string)?.[1];
        if (host === undefined) throw new Error(`no server_name in ${last}`);
        await waitUntilServedBesides(ports.http, host, change.backend);
      }
      return { files: others.length, ms: since(start) };
    },
    async change(port, name) {
      const start = performance.now();
      // Polled from the start, as a Portico replace is: the probes cost both sides alike.
      const serving = waitUntilAnswers(ports.http, change.host, name, SERVE_TIMEOUT_MS);
      return timeChange(nginx, start, serving, () => writeFile(`${dir}/http.d/${change.file}`, textFor(port)));
    },
    logTail: () => nginx.logTail(),
  };
}

/** Polls until `host` is answered 200 by a backend other than `besides`. */
async function waitUntilServedBesides(port: number, host: string, besides: string): Promise<void> {
  const deadline = performance.now() + SERVE_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const answer = await httpGet(port, host).catch(() => ({ status: 0, body: '' }));
    if (answer.status === 200 && answer.body !== besides) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${host} via ${port} was not served by its own app within ${SERVE_TIMEOUT_MS} ms`);
}
