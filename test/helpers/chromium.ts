/**
 * A real HTTP/3 client for tests: headless Chromium from Debian's `chromium` package, driven by
 * playwright-core (which never downloads a browser; `make test` installs the package through
 * scripts/install-chromium.sh). Every wait is bounded; `close()` stops the browser's whole process
 * group by pid when Playwright's own close does not finish in time.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser } from 'playwright-core';
import { eventually } from './net.js';
import { processRuns } from './portico.js';

export const CHROMIUM = '/usr/lib/chromium/chromium';

/** Flags that keep a test browser quiet and able to run as root in a VM without a GPU. */
const HYGIENE = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** The base64 SHA-256 of a certificate's SubjectPublicKeyInfo, as `--ignore-certificate-errors-spki-list` reads it. */
export function spkiSha256(certificatePem: string): string {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/**
 * Flags that make Chromium speak HTTP/3 to `host:port` on 127.0.0.1 at once: Alt-Svc alone does not
 * switch a fresh browser to QUIC, and plain `--ignore-certificate-errors` does not cover QUIC, so the
 * certificate is trusted by its public key.
 */
export function http3Flags(host: string, port: number, certificatePem: string): string[] {
  return [
    '--enable-quic',
    `--origin-to-force-quic-on=${host}:${port}`,
    `--host-resolver-rules=MAP ${host} 127.0.0.1`,
    `--ignore-certificate-errors-spki-list=${spkiSha256(certificatePem)}`,
  ];
}

export interface RunningChromium {
  browser: Browser;
  /** The browser process, leader of its own process group (Playwright spawns it detached). */
  pid: number;
  /** Closes the browser; after `timeoutMs` (default 5000) it kills the process group by pid instead. Never rejects. */
  close(timeoutMs?: number): Promise<void>;
}

/** Settles with `promise`, or with undefined once `ms` passed; never rejects. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  const timer = new AbortController();
  await Promise.race([promise.catch(() => undefined), sleep(ms, undefined, { signal: timer.signal }).catch(() => undefined)]);
  timer.abort();
}

/** True while a process of group `pgid` exists. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Launches headless Chromium with the hygiene flags and `args`, through a Playwright browser server
 * on 127.0.0.1 (so that the test knows the browser's pid), and connects to it. `playwrightSignals`
 * false leaves SIGINT and SIGTERM to the caller: Playwright's own handlers kill the browser and exit
 * the process, before a caller's cleanup (a bench's Portico and its nginx) has run.
 */
export async function launchChromium(args: string[], timeoutMs = 20_000, playwrightSignals = true): Promise<RunningChromium> {
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    host: '127.0.0.1',
    args: [...HYGIENE, ...args],
    timeout: timeoutMs,
    handleSIGINT: playwrightSignals,
    handleSIGTERM: playwrightSignals,
    handleSIGHUP: playwrightSignals,
  });
  const pid = server.process().pid as number;
  const close = async (closeTimeoutMs = 5000): Promise<void> => {
    await within(server.close(), closeTimeoutMs);
    if (groupExists(pid)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // the group emptied meanwhile
      }
    }
    await eventually(async () => !(await processRuns(pid)) && !groupExists(pid), 3000);
  };
  try {
    const browser = await chromium.connect(server.wsEndpoint(), { timeout: timeoutMs });
    return {
      browser,
      pid,
      async close(closeTimeoutMs = 5000) {
        await within(browser.close(), closeTimeoutMs);
        await close(closeTimeoutMs);
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}
