/**
 * The console's Apps and Certificates pages (issue 17), driven in Debian's Chromium by accessible
 * names against a real Portico and nginx: an app made from the form carries requests through nginx
 * to a backend the test runs, a preview shows nginx's own refusal and writes nothing, the advanced
 * editor's change reaches nginx, a certificate uploaded from the page (its key never shown back)
 * serves the app over TLS and cannot be deleted while it does, and an ACME request shows its state.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { launchChromium, type RunningChromium } from '../helpers/chromium.js';
import { accessibilityProblems, watchPageErrors } from '../helpers/console.js';
import { send, sendToBackend, startBackend, type Backend } from '../helpers/http.js';
import { eventually } from '../helpers/net.js';
import { discardPortico, spawnPortico, tempDir, type ChildPortico } from '../helpers/portico.js';
import { httpsGet } from '../helpers/tls-http.js';

const TOKEN = 'console-resources-token-0123456789';
const BIND_PORT = 30620;
const RANGE = '30621-30626';
/** Nothing listens here: every ACME order fails at once, at the CA's directory. */
const ACME_PORT = 30627;
const HTTP = 30638;
const HTTPS = 30639;
const CERT_ID = 'console-cert';

describe('the console\'s apps and certificates pages in a real browser', () => {
  let portico: ChildPortico;
  let stateDir: string;
  let backend: Backend;
  let chromium: RunningChromium;
  let page: Page;
  let pem: { cert: string; key: string };
  const problems: string[] = [];

  const api = (url: string, init: RequestInit = {}) => fetch(`${portico.url}${url}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers } });
  const json = async <T>(url: string): Promise<T> => (await (await api(url)).json()) as T;
  const appNames = async () => (await json<Array<{ name: string }>>('/v1/apps')).map((a) => a.name);
  const httpFiles = async () => (await readdir(path.join(stateDir, 'http.d'))).sort();
  const apps = () => page.locator('#apps');
  const upload = () => page.getByRole('group', { name: 'Upload a certificate' });
  const acme = () => page.getByRole('group', { name: 'Request an ACME certificate' });
  const certRow = (id: string) => page.locator('#cert-rows tr').filter({ has: page.getByRole('rowheader', { name: id, exact: true }) });
  /** Goes to a page of the console by its link (a click on the link of the page shown reloads nothing: go through another). */
  const visit = async (name: 'Apps' | 'Certificates') => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByRole('link', { name }).click();
    await page.getByRole('heading', { name, level: 2 }).waitFor();
  };

  before(async () => {
    backend = await startBackend('console-app');
    stateDir = await tempDir('console-resources');
    // A self-signed certificate for the app's names, made here (the key lives in this temp dir only).
    const certDir = await tempDir('console-resources-cert');
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '20',
      '-subj', '/CN=web.console.test', '-addext', 'subjectAltName=DNS:web.console.test,DNS:www.console.test',
      '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem'),
    ], { timeout: 10_000 });
    pem = { cert: await readFile(path.join(certDir, 'cert.pem'), 'utf8'), key: await readFile(path.join(certDir, 'key.pem'), 'utf8') };
    portico = await spawnPortico({
      STATE_DIR: stateDir, BIND_PORT: String(BIND_PORT), PORT_RANGE: RANGE, HTTP_PORT: String(HTTP), HTTPS_PORT: String(HTTPS),
      API_TOKEN: TOKEN, LOG_LEVEL: 'warn', ACME_DIRECTORY_URL: `https://127.0.0.1:${ACME_PORT}/directory`,
    });
    chromium = await launchChromium([]);
    page = await chromium.browser.newPage();
    watchPageErrors(page, problems);
  });

  after(async () => {
    await chromium?.close();
    await discardPortico(portico, stateDir);
    await backend?.close();
  });

  it('signs in and shows both pages empty, with no accessibility problem', async () => {
    await page.goto(`${portico.url}/ui`, { timeout: 20_000 });
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: 10_000 });
    await page.getByRole('link', { name: 'Apps' }).click();
    await page.getByRole('table', { name: 'Apps, by name' }).waitFor();
    assert.match((await page.locator('#app-rows').textContent()) ?? '', /No apps yet/);
    assert.deepEqual(await accessibilityProblems(page), [], 'the apps page, empty');
    await page.getByRole('link', { name: 'Certificates' }).click();
    await page.getByRole('table', { name: 'Certificates, by id' }).waitFor();
    assert.match((await page.locator('#cert-rows').textContent()) ?? '', /No certificates yet/);
    assert.deepEqual(await accessibilityProblems(page), [], 'the certificates page, empty');
  });

  it('creates an app from the form: listed, and nginx carries a request with its Host to the backend', async () => {
    await visit('Apps');
    await apps().getByLabel('Name', { exact: true }).fill('web');
    await apps().getByLabel('Server name').fill('web.console.test');
    await apps().getByLabel('Backend').fill(`127.0.0.1:${backend.port}`);
    await page.getByRole('button', { name: 'Create app' }).click();
    await page.getByRole('button', { name: 'Delete app web' }).waitFor({ timeout: 10_000 });
    assert.deepEqual(await appNames(), ['web']);
    const row = (await page.locator('#app-rows tr').first().textContent()) ?? '';
    assert.match(row, /web\.console\.test/);
    assert.match(row, new RegExp(`/ → 127\\.0\\.0\\.1:${backend.port}`));
    const seen = await sendToBackend({ port: HTTP, host: 'web.console.test', path: '/hello' });
    assert.equal(seen.backend, 'console-app');
    assert.equal(seen.url, '/hello');
    assert.deepEqual(await accessibilityProblems(page), [], 'the apps page, with an app');
  });

  it('a backend nginx cannot resolve: Preview shows nginx\'s "host not found" beside Backend, and nothing is written', async () => {
    const files = await httpFiles();
    await apps().getByLabel('Name', { exact: true }).fill('ghost');
    await apps().getByLabel('Server name').fill('ghost.console.test');
    await apps().getByLabel('Backend').fill('no-such-host.invalid:8080');
    await apps().getByRole('button', { name: 'Preview' }).click();
    await page.locator('#app-preview-verdict').getByText(/nginx refuses it/).waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#app-backend-error').textContent()) ?? '', /host not found in upstream "no-such-host\.invalid/);
    assert.match((await page.locator('#app-preview-file').textContent()) ?? '', /server_name ghost\.console\.test/);
    assert.equal(await apps().getByLabel('Backend').getAttribute('aria-invalid'), 'true');
    assert.deepEqual(await appNames(), ['web']);
    assert.deepEqual(await httpFiles(), files);
    assert.deepEqual(await accessibilityProblems(page), [], 'the apps page, with a refused preview');
    // An error the API names by field shows beside that field.
    await apps().getByLabel('Name', { exact: true }).fill('Not_A_Name');
    await page.getByRole('button', { name: 'Create app' }).click();
    await page.locator('#app-name-error').getByText(/^name: must be/).waitFor({ timeout: 5_000 });
    assert.deepEqual(await appNames(), ['web']);
    await page.locator('#app-form').evaluate((form: HTMLFormElement) => form.reset());
  });

  it('edits through the advanced editor (a second server name): saved with If-Match, seen by the API and by nginx', async () => {
    await page.getByRole('button', { name: 'Edit app web' }).click();
    const editor = page.getByLabel('App JSON');
    await eventually(async () => ((await editor.inputValue()) !== ''), 5_000, 50);
    const app = JSON.parse(await editor.inputValue()) as { serverNames: string[] };
    assert.deepEqual(app.serverNames, ['web.console.test']);
    await editor.fill(JSON.stringify({ ...app, serverNames: [...app.serverNames, 'www.console.test'] }, null, 2));
    await page.getByRole('button', { name: 'Save app' }).click();
    await page.locator('#app-rows').getByText(/www\.console\.test/).waitFor({ timeout: 10_000 });
    assert.deepEqual((await json<{ serverNames: string[] }>('/v1/apps/web')).serverNames, ['web.console.test', 'www.console.test']);
    assert.equal((await sendToBackend({ port: HTTP, host: 'www.console.test' })).backend, 'console-app');
    assert.equal(await editor.inputValue(), '', 'the editor is cleared after the save');
    assert.ok(await page.getByRole('button', { name: 'Create app' }).isVisible(), 'the form creates again');
  });

  it('an edit of an app that changed meanwhile is refused (If-Match), not saved over the change', async () => {
    await page.getByRole('button', { name: 'Edit app web' }).click();
    const editor = page.getByLabel('App JSON');
    await eventually(async () => ((await editor.inputValue()) !== ''), 5_000, 50);
    const loaded = JSON.parse(await editor.inputValue()) as { serverNames: string[] };
    // A script changes the app after the page loaded it.
    const changed = await api('/v1/apps/web', { method: 'PUT', body: JSON.stringify({ ...loaded, serverNames: ['web.console.test'] }) });
    assert.equal(changed.status, 200);
    await editor.fill(JSON.stringify({ ...loaded, serverNames: [...loaded.serverNames, 'stale.console.test'] }));
    await page.getByRole('button', { name: 'Save app' }).click();
    await page.locator('#app-json-error').getByText(/.+/).waitFor({ timeout: 5_000 });
    assert.deepEqual((await json<{ serverNames: string[] }>('/v1/apps/web')).serverNames, ['web.console.test']);
    await page.getByRole('button', { name: 'Cancel edit' }).click();
    assert.equal(await editor.inputValue(), '');
  });

  it('uploads a certificate from PEM: listed with its expiry, and its private key never reaches the page', async () => {
    await visit('Certificates');
    const keyLines = pem.key.split('\n').filter((line) => line.length > 20 && !line.startsWith('-----'));
    assert.ok(keyLines.length > 0);
    /** Neither the key's text nor any line of its body is in the DOM, an attribute, or a field's value. */
    const assertNoKey = async (when: string) => {
      const dom = await page.evaluate(() => document.documentElement.outerHTML);
      const values = await page.evaluate(() => [...document.querySelectorAll('input, textarea, select')].map((e) => (e as HTMLInputElement).value).join('\n'));
      for (const line of keyLines) {
        assert.ok(!dom.includes(line), `a line of the key is in the page ${when}`);
        assert.ok(!values.includes(line), `a line of the key is in a field ${when}`);
      }
    };
    // A refused upload: the error beside its field, and the key's field cleared all the same.
    await upload().getByLabel('Certificate ID').fill('Not An Id');
    await upload().getByLabel('Certificate PEM').fill(pem.cert);
    await upload().getByLabel('Private key PEM').fill(pem.key);
    await page.getByRole('button', { name: 'Upload certificate' }).click();
    await page.locator('#cert-id-error').getByText(/^id: must be/).waitFor({ timeout: 5_000 });
    await assertNoKey('after a refused upload');
    await upload().getByLabel('Certificate ID').fill(CERT_ID);
    await upload().getByLabel('Private key PEM').fill(pem.key);
    await page.getByRole('button', { name: 'Upload certificate' }).click();
    await page.getByRole('button', { name: `Delete certificate ${CERT_ID}` }).waitFor({ timeout: 10_000 });
    const notAfter = new Date(new X509Certificate(pem.cert).validTo).toISOString().slice(0, 10);
    const row = (await certRow(CERT_ID).textContent()) ?? '';
    assert.match(row, new RegExp(`${notAfter} \\(\\d+ days left\\)`));
    assert.match(row, /web\.console\.test, www\.console\.test/);
    assert.match(row, /expires soon/, '20 days is within the 30 the console warns of');
    assert.match(row, /unused/);
    await assertNoKey('after the upload');
    assert.equal(await upload().getByLabel('Private key PEM').inputValue(), '');
    assert.deepEqual(await accessibilityProblems(page), [], 'the certificates page, with a certificate');
  });

  it('an app serving it over TLS shows under "used by", and deleting it is refused with the API\'s message', async () => {
    await visit('Apps');
    await page.getByRole('button', { name: 'Edit app web' }).click();
    const editor = page.getByLabel('App JSON');
    await eventually(async () => ((await editor.inputValue()) !== ''), 5_000, 50);
    const app = JSON.parse(await editor.inputValue()) as Record<string, unknown>;
    await editor.fill(JSON.stringify({ ...app, tls: { certificate: CERT_ID, http2: true } }));
    await page.getByRole('button', { name: 'Save app' }).click();
    await page.locator('#app-rows').getByText('TLS', { exact: true }).waitFor({ timeout: 10_000 });
    const answer = await httpsGet(HTTPS, { servername: 'web.console.test', ca: pem.cert });
    assert.equal(answer.status, 200);
    assert.equal(answer.fingerprint256, new X509Certificate(pem.cert).fingerprint256);

    await visit('Certificates');
    assert.match((await certRow(CERT_ID).textContent()) ?? '', /app web/);
    await page.getByRole('button', { name: `Delete certificate ${CERT_ID}` }).click();
    await page.locator('#cert-list-error').getByText(/is used by/).waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#cert-list-error').textContent()) ?? '', new RegExp(`certificate "${CERT_ID}" is used by .*web`));
    assert.ok(await page.getByRole('button', { name: `Delete certificate ${CERT_ID}` }).isVisible());
    assert.deepEqual((await json<Array<{ id: string }>>('/v1/certificates')).map((c) => c.id), [CERT_ID]);
    assert.deepEqual(await accessibilityProblems(page), [], 'the certificates page, with a refused deletion');
  });

  it('requests an ACME certificate: a wildcard by DNS-01 is refused beside Challenge; a name is listed with its ACME state and last error', async () => {
    await acme().getByLabel('Names').fill('*.console.test');
    await acme().getByLabel('Challenge').selectOption('dns-01');
    await page.getByRole('button', { name: 'Request certificate' }).click();
    await page.locator('#acme-challenge-error').getByText(/ACME_DNS_SERVER/).waitFor({ timeout: 5_000 });
    await acme().getByLabel('Names').fill('acme.console.test');
    await acme().getByLabel('Challenge').selectOption('http-01');
    await page.getByRole('button', { name: 'Request certificate' }).click();
    await page.getByRole('button', { name: 'Renew acme-console-test' }).waitFor({ timeout: 10_000 });
    // The CA cannot be reached: the order fails, and Renew (which waits for its order) shows why.
    const failed = await eventually(
      async () => {
        await page.getByRole('button', { name: 'Renew acme-console-test' }).click();
        return /failed[\s\S]*last error: /.test((await certRow('acme-console-test').textContent()) ?? '');
      },
      20_000,
      500,
    );
    assert.ok(failed, `the ACME state shows the failure: ${await certRow('acme-console-test').textContent()}`);
    assert.deepEqual(await accessibilityProblems(page), [], 'the certificates page, with an ACME certificate');
    await page.getByRole('button', { name: 'Delete certificate acme-console-test' }).click();
    await page.getByRole('button', { name: 'Delete certificate acme-console-test' }).waitFor({ state: 'detached', timeout: 10_000 });
  });

  it('deletes the app through its row\'s button, then the certificate it no longer uses', async () => {
    await visit('Apps');
    await page.getByRole('button', { name: 'Delete app web' }).click();
    await page.getByRole('button', { name: 'Delete app web' }).waitFor({ state: 'detached', timeout: 10_000 });
    assert.deepEqual(await appNames(), []);
    assert.ok(await eventually(async () => (await send({ port: HTTP, host: 'web.console.test' }).then((a) => a.status !== 200, () => true)), 5_000, 100), 'nginx no longer routes web.console.test');
    await visit('Certificates');
    await page.getByRole('button', { name: `Delete certificate ${CERT_ID}` }).click();
    await page.getByRole('button', { name: `Delete certificate ${CERT_ID}` }).waitFor({ state: 'detached', timeout: 10_000 });
    assert.deepEqual(await json<unknown[]>('/v1/certificates'), []);
    // The refusals this test provoked (400, 409, 412) are the API's answers, logged by the browser as failed loads.
    assert.deepEqual(problems.filter((p) => !/status of (400|409|412)\b/.test(p)), []);
  });
});
