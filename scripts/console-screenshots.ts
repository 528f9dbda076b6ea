/**
 * The README's pictures of the console (issue 17): `make screenshots` runs this. It starts a real
 * Portico as an operator would (bin/portico, built; managed nginx; a temp STATE_DIR; the API, the
 * stream ports and the apps' ports on 127.0.0.1; a token), makes a few streams through the API (one
 * terminating TLS with a certificate that expires in 20 days, labels on each, and one nginx refuses),
 * sends bytes through them, and takes PNGs of the overview and the streams page in Debian's
 * Chromium at 1280×800 into docs/. Everything it starts (Portico, its nginx, the echo server, the
 * browser) it stops by pid, also on SIGINT or SIGTERM.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Cleanup } from '../bench/cleanup.js';
import { ephemeralPort, freePortsIn, LOOPBACK, startEchoServer } from '../bench/net.js';
import { spawnPortico } from '../bench/portico.js';
import { launchChromium } from '../test/helpers/chromium.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const DOCS = path.join(REPO, 'docs');
const TOKEN = 'console-screenshots-token-0123456789';
const VIEWPORT = { width: 1280, height: 800 };
/** Below the ephemeral range (32768-60999), away from the defaults, the tests' ranges and the benches'; the first free ones of each are taken. */
const SEARCH = { range: { from: 9400, to: 9499 }, http: { from: 9500, to: 9599 } };
const run = promisify(execFile);
/** TRAFFIC_HISTORY_INTERVAL of the Portico photographed, and the bursts of traffic, one an interval. */
const INTERVAL_S = 2;
const BURSTS = 6;

const say = (line: string): void => {
  process.stdout.write(`screenshots: ${line}\n`);
};

/** A request to the API with the token; throws unless the status is `expected`. */
async function call(apiPort: number, method: string, route: string, body: unknown, expected: number): Promise<any> {
  const res = await fetch(`http://${LOOPBACK}:${apiPort}${route}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  if (res.status !== expected) throw new Error(`${method} ${route} answered ${res.status}, not ${expected}: ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

/** Sends `bytes` through a connection and reads them all back from the echo server behind it. */
function echoBack(socket: Socket, label: string, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    socket.setTimeout(5000, () => socket.destroy(new Error(`${label}: no echo within 5 s`)));
    socket.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got >= bytes) socket.end();
    });
    socket.on('close', () => (got >= bytes ? resolve() : reject(new Error(`${label}: read back ${got} of ${bytes} bytes`))));
    socket.on('error', reject);
  });
}

/** Bytes through a plain stream, back from the echo server. */
function tcpRoundTrip(port: number, bytes: number): Promise<void> {
  const socket = tcpConnect({ host: LOOPBACK, port }, () => socket.write(Buffer.alloc(bytes, 'x')));
  return echoBack(socket, `stream ${port}`, bytes);
}

/** Bytes through a TLS stream (its certificate is self-signed), back from the echo server. */
function tlsRoundTrip(port: number, serverName: string, bytes: number): Promise<void> {
  const socket = tlsConnect({ host: LOOPBACK, port, servername: serverName, rejectUnauthorized: false }, () => socket.write(Buffer.alloc(bytes, 'x')));
  return echoBack(socket, `TLS stream ${port}`, bytes);
}

async function main(): Promise<void> {
  const nginxBin = process.env.NGINX_BIN || (await readFile(path.join(REPO, '.nginx-bin'), 'utf8')).trim();
  const cleanup = new Cleanup();
  cleanup.stopOnSignals(say);
  try {
    const work = await mkdtemp(path.join(tmpdir(), 'portico-screenshots-'));
    cleanup.push('remove the temp folder', () => rm(work, { recursive: true, force: true }));
    const echo = await startEchoServer();
    cleanup.push('stop the echo server', () => echo.close());
    const [from] = await freePortsIn(SEARCH.range.from, SEARCH.range.to - 9, 1);
    const range = { from: from as number, to: (from as number) + 9 };
    const [httpPort, httpsPort] = (await freePortsIn(SEARCH.http.from, SEARCH.http.to, 2)) as [number, number];
    const apiPort = await ephemeralPort();

    // A certificate that expires in 20 days, for the TLS stream: the overview lists it.
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(work, 'edge.key'), '-out', path.join(work, 'edge.crt'), '-days', '20', '-subj', '/CN=db.example.com', '-addext', 'subjectAltName=DNS:db.example.com'], { timeout: 10_000 });

    const portico = spawnPortico({ repoDir: REPO, nginxBin, stateDir: path.join(work, 'state'), portRange: range, bindPort: apiPort, httpPort, httpsPort, env: { API_TOKEN: TOKEN, TRAFFIC_HISTORY_INTERVAL: `${INTERVAL_S}s` } });
    cleanup.push('stop Portico and its nginx', () => portico.stop());
    await portico.ready();
    say(`Portico on 127.0.0.1:${apiPort} (nginx ${portico.nginxPid()}), streams in ${range.from}-${range.to}`);

    const upstream = [{ address: `${LOOPBACK}:${echo.port}` }];
    await call(apiPort, 'POST', '/v1/certificates', { id: 'db-edge', certificate: await readFile(path.join(work, 'edge.crt'), 'utf8'), key: await readFile(path.join(work, 'edge.key'), 'utf8') }, 201);
    const streams = [
      { upstreams: upstream, labels: { team: 'payments', env: 'prod' } },
      { upstreams: upstream, labels: { team: 'search' } },
      { upstreams: upstream, tls: { certificate: 'db-edge' }, labels: { team: 'data', tier: 'db' } },
      { upstreams: upstream, labels: { team: 'cache' } },
    ];
    const ports: number[] = [];
    for (const stream of streams) ports.push((await call(apiPort, 'POST', '/v1/streams', stream, 201)).port as number);
    // One nginx refuses (a host it cannot resolve): the overview shows nginx's lines under it.
    await call(apiPort, 'POST', '/v1/streams', { upstreams: [{ address: 'billing.internal.invalid:5432' }], labels: { team: 'billing' } }, 422);

    // Traffic in a few bursts, an interval apart, so that the charts have a shape.
    for (let burst = 0; burst < BURSTS; burst += 1) {
      for (const [i, port] of ports.slice(0, 2).entries()) {
        for (let n = 0; n < 1 + ((burst + i) % 3); n += 1) await tcpRoundTrip(port, 128 * 1024 * (i + 1));
      }
      if (burst % 2 === 0) await tlsRoundTrip(ports[2] as number, 'db.example.com', 96 * 1024);
      await new Promise((resolve) => setTimeout(resolve, INTERVAL_S * 1000 + 200));
    }
    say(`streams ${ports.join(', ')}; bytes sent through ${ports.slice(0, 3).join(', ')}`);

    const chromium = await launchChromium([], 20_000, false); // its Cleanup stops Chromium on a signal, with Portico
    cleanup.push('stop Chromium', () => chromium.close());
    const page = await chromium.browser.newPage({ viewport: VIEWPORT, colorScheme: 'light', deviceScaleFactor: 1 });
    await page.goto(`http://${LOOPBACK}:${apiPort}/ui#/overview`, { timeout: 20_000 });
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('table', { name: /expire within 30 days/ }).waitFor({ timeout: 10_000 });
    await mkdir(DOCS, { recursive: true });
    await page.screenshot({ path: path.join(DOCS, 'console-overview.png') });
    await page.getByRole('link', { name: 'Streams' }).click();
    await page.getByRole('button', { name: `Delete stream ${ports[0]}` }).waitFor({ timeout: 10_000 });
    // Each chart is drawn once the page's first read of /v1/traffic answered (bounded).
    for (const port of ports.slice(0, 3)) {
      await page.getByRole('img', { name: new RegExp(`^stream ${port}: [\\d.]+ [kM]B in`) }).waitFor({ timeout: 15_000 });
    }
    await page.screenshot({ path: path.join(DOCS, 'console-streams.png') });
    say('wrote docs/console-overview.png and docs/console-streams.png');
  } finally {
    await cleanup.run();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`screenshots: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
