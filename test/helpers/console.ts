/**
 * What the console's browser tests share: a Portico and a Chromium page to drive it (startConsole),
 * axe-core's verdict on the page as it is, and a watch on the page's own errors.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { launchChromium, type RunningChromium } from './chromium.js';
import { freePort } from './pebble.js';
import { discardPortico, spawnPortico, stopChild, tempDir, type ChildPortico } from './portico.js';

const AXE = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's violations of impact serious or critical on the page as it is now, as lines. The
 * script is evaluated through the DevTools protocol, which the page's CSP does not govern (the page
 * itself could not load it: it allows scripts of its own origin only).
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(context: Document): Promise<{ violations: Array<{ id: string; impact?: string; help: string; nodes: Array<{ target: unknown }> }> }> } }).axe;
    return (await axe.run(document)).violations;
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`);
}

/**
 * Collects the page's script errors and console errors into `problems`. A 401 (the token asked
 * for), a 412 (an edit made on a stale read), a 422 (nginx refusing a preview) and the 404 of
 * /v1/fleet on a single node (the overview asks whether there is a fleet) are the API's answers,
 * which the browser logs as failed loads: not faults of the page.
 */
export function watchPageErrors(page: Page, problems: string[]): void {
  page.on('console', (message) => {
    if (message.type() !== 'error' || /status of (401|412|422)\b/.test(message.text())) return;
    if (/status of 404\b/.test(message.text()) && new URL(message.location().url || 'about:blank').pathname === '/v1/fleet') return;
    problems.push(`${message.text()}${message.location().url ? ` (${message.location().url})` : ''}`);
  });
  page.on('pageerror', (error) => problems.push(error.message));
}

/** A real Portico (managed nginx, a token) and a Chromium page, for one suite of the console's tests. */
export interface ConsoleRig {
  portico: ChildPortico;
  chromium: RunningChromium;
  page: Page;
  /** The page's script and console errors, as watchPageErrors collects them. */
  problems: string[];
  /** A call of the API with the token, as JSON. */
  api(route: string, init?: RequestInit): Promise<Response>;
  /** Opens /ui at `hash`, signs in with the token, and waits for the page's `heading`. */
  signIn(hash: string, heading: string): Promise<void>;
  /** Stops Portico (SIGTERM: it stops its nginx) and starts it again on the same port and state directory; the page stays. */
  restart(): Promise<void>;
  /** Stops Chromium, then Portico and its nginx (by pid), and removes the state directory. */
  close(): Promise<void>;
}

/** Starts a console rig: Portico with `env` (PORT_RANGE, HTTP_PORT, HTTPS_PORT...) over a fresh state directory named for `name`. */
export async function startConsole(name: string, token: string, env: Record<string, string>): Promise<ConsoleRig> {
  const stateDir = await tempDir(name);
  const settings = { STATE_DIR: stateDir, BIND_PORT: String(await freePort()), API_TOKEN: token, LOG_LEVEL: 'warn', ...env };
  const portico = await spawnPortico(settings);
  let chromium: RunningChromium;
  try {
    chromium = await launchChromium([]);
  } catch (error) {
    await discardPortico(portico, stateDir);
    throw error;
  }
  const page = await chromium.browser.newPage();
  const problems: string[] = [];
  watchPageErrors(page, problems);
  const rig: ConsoleRig = {
    portico,
    chromium,
    page,
    problems,
    api: (route, init = {}) =>
      fetch(`${rig.portico.url}${route}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers }, signal: init.signal ?? AbortSignal.timeout(20_000) }),
    async restart() {
      await stopChild(rig.portico.child);
      rig.portico = await spawnPortico(settings);
    },
    async signIn(hash, heading) {
      await page.goto(`${rig.portico.url}/ui${hash}`, { timeout: 20_000 });
      await page.getByLabel('API token').fill(token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: heading }).waitFor({ timeout: 10_000 });
    },
    async close() {
      await chromium.close();
      await discardPortico(rig.portico, stateDir);
    },
  };
  return rig;
}
