/**
 * What the console's browser tests share: axe-core's verdict on the page as it is, and a watch on
 * the page's own errors.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

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
