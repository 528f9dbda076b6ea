/**
 * Every golden app file is a config nginx accepts: each is rendered again with the certificates in a
 * temporary directory, included in a main config after the shared HTTP file Portico writes for that
 * app alone (the maps and the cache zone it uses, and only those), and checked with `nginx -t`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { appCertificateRefs, appSchema, type App } from '../../src/model/app.js';
import { parseAddress } from '../../src/model/net.js';
import { createAppRenderer } from '../../src/render/app.js';
import { createSharedHttpRenderer } from '../../src/render/http-shared.js';
import { sharedHttpView } from '../../src/apply/shared-http.js';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { appArbitrary } from '../helpers/arbitraries.js';
import { REPO, nginxBin, tempDir } from '../helpers/portico.js';

const run = promisify(execFile);
const GOLDEN = new URL('../golden/', import.meta.url).pathname;
const GOLDEN_CERT_DIR = '/var/lib/portico/certs';
const GOLDEN_CHALLENGE_DIR = '/var/lib/portico/acme-challenge';
const FIXTURES = `${REPO}test/fixtures/certs`;

const cases = await Promise.all(
  (await readdir(GOLDEN))
    .filter((f) => f.startsWith('app-') && f.endsWith('.json'))
    .map(async (file) => ({
      file,
      app: appSchema.parse(JSON.parse(await readFile(`${GOLDEN}${file}`, 'utf8'))),
      golden: await readFile(`${GOLDEN}${file.replace(/\.json$/, '.conf')}`, 'utf8'),
    })),
);

const renderShared = createSharedHttpRenderer(await readFile(`${TEMPLATES_DIR}/http-shared.conf.hbs`, 'utf8'));

/** The shared HTTP file Portico writes for `apps`, its cache (if any) under `stateDir`. */
function sharedFile(apps: App[], stateDir: string): string {
  return renderShared(sharedHttpView(apps, { httpPort: 8080, httpsPort: 8443, stateDir, mode: 'managed', acmeChallengeDir: `${stateDir}/acme-challenge` }));
}

/** A main config holding the shared file and one app file. */
function mainConfig(dir: string, sharedPath: string, appFile: string): string {
  return [
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/logs/error.log notice;`,
    'events { worker_connections 64; }',
    'http {',
    `    access_log ${dir}/logs/access.log;`,
    `    include ${sharedPath};`,
    `    include ${appFile};`,
    '}',
    '',
  ].join('\n');
}

describe('golden app files', () => {
  let dir = '';
  let render: (app: App) => string;

  before(async () => {
    dir = await tempDir('app-files');
    await mkdir(`${dir}/certs`);
    await mkdir(`${dir}/logs`);
    await mkdir(`${dir}/acme-challenge`);
    const ids = new Set(cases.flatMap(({ app }) => appCertificateRefs(app).map((ref) => ref.id)));
    for (const id of ids) {
      await copyFile(`${FIXTURES}/portico.crt`, `${dir}/certs/${id}.crt`);
      await copyFile(`${FIXTURES}/portico.key`, `${dir}/certs/${id}.key`);
    }
    render = createAppRenderer(await readFile(`${TEMPLATES_DIR}/app.conf.hbs`, 'utf8'), {
      certDir: `${dir}/certs`,
      httpPort: 8080,
      httpsPort: 8443,
      acmeChallengeDir: `${dir}/acme-challenge`,
    });
  });

  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('are there to check', () => {
    assert.ok(cases.length >= 20, 'golden cases are missing');
  });

  /**
   * Runs nginx -t on a main config holding `text` as the file of `app`, named `name`, after the shared
   * file Portico writes for that app alone; answers nginx's stderr.
   */
  async function nginxTest(name: string, app: App, text: string): Promise<string> {
    await writeFile(`${dir}/${name}.conf`, text);
    await writeFile(`${dir}/${name}.shared.conf`, sharedFile([app], dir));
    await writeFile(`${dir}/${name}.main.conf`, mainConfig(dir, `${dir}/${name}.shared.conf`, `${dir}/${name}.conf`));
    const result = await run(nginxBin(), ['-t', '-q', '-c', `${dir}/${name}.main.conf`, '-p', `${dir}/`], { timeout: 10_000 }).catch(
      (error: { stderr?: string; message: string }) => assert.fail(`nginx -t refuses ${name}: ${error.stderr ?? error.message}`),
    );
    return result.stderr;
  }

  for (const { file, app, golden } of cases) {
    it(`${file.replace(/\.json$/, '.conf')} passes nginx -t`, async () => {
      // nginx -t resolves upstream host names: the goldens name IP addresses only, so no DNS is needed.
      for (const upstream of app.routes.flatMap((r) => r.upstreams)) {
        const parsed = parseAddress(upstream.address);
        assert.ok(!('error' in parsed) && parsed.family !== 'name', `${file}: ${upstream.address} is not an IP address`);
      }
      const text = render(app);
      assert.equal(text, golden.replaceAll(GOLDEN_CERT_DIR, `${dir}/certs`).replaceAll(GOLDEN_CHALLENGE_DIR, `${dir}/acme-challenge`), `${file} renders differently from its golden file`);
      assert.equal(await nginxTest(file.replace(/\.json$/, ''), app, text), '', `nginx -t warns about ${file}`);
    });
  }

  it('nginx -t accepts any app the schema admits (upstreams moved to 127.0.0.1: no DNS)', async () => {
    const onLoopback = appArbitrary.map((app) => ({
      ...app,
      routes: app.routes.map((route) => ({
        ...route,
        upstreams: route.upstreams.map((u) => ({ ...u, address: `127.0.0.1:${u.address.slice(u.address.lastIndexOf(':') + 1)}` })),
      })),
    }));
    let n = 0;
    await fc.assert(
      fc.asyncProperty(onLoopback, async (app) => {
        for (const { id } of appCertificateRefs(app)) {
          await copyFile(`${FIXTURES}/portico.crt`, `${dir}/certs/${id}.crt`);
          await copyFile(`${FIXTURES}/portico.key`, `${dir}/certs/${id}.key`);
        }
        n += 1;
        assert.equal(await nginxTest(`arbitrary-${n}`, app, render(app)), '', `nginx -t warns about ${JSON.stringify(app)}`);
      }),
      { numRuns: 40 },
    );
  });

  /**
   * nginx's defaults build no server name hash for a name over 46 characters (nginx -t fails) or for
   * a few hundred names (a warning): the shared file sizes it from the apps. Checked with the real
   * shared file and the apps' own files.
   */
  it('the shared file lets nginx build its server name hash for long names and for 1,500 apps', async () => {
    const label = (rng: () => number, length: number): string =>
      Array.from({ length }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(rng() * 36)]).join('');
    let seed = 7;
    const rng = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    // 253 characters, the most a DNS name has: labels of 63, 63, 63 and 56, and "test".
    const longest = `${[63, 63, 63, 56].map((n) => label(rng, n)).join('.')}.test`;
    assert.equal(longest.length, 253);
    const sets: Array<[string, string[][]]> = [
      ['three apps with 253-character names', [0, 1, 2].map((i) => [`${i}${longest.slice(1)}`])],
      [
        '1,500 apps of one to three names of 11 to 125 characters',
        Array.from({ length: 1500 }, (_, i) =>
          Array.from({ length: 1 + (i % 3) }, (_, j) => `${j === 1 ? '*.' : ''}a${i}-${j}.${label(rng, 1 + Math.floor(rng() * 60))}.${label(rng, 1 + Math.floor(rng() * 50))}.test`),
        ),
      ],
    ];
    for (const [what, nameSets] of sets) {
      const name = `hash-${nameSets.length}`;
      await mkdir(`${dir}/${name}`, { recursive: true });
      const apps: App[] = nameSets.map((serverNames, i) =>
        appSchema.parse({ name: `app-${i}`, serverNames, routes: [{ upstreams: [{ address: '127.0.0.1:9' }] }] }),
      );
      const shared = sharedFile(apps, `${dir}/${name}`);
      await writeFile(`${dir}/${name}/portico_http.conf`, shared);
      await Promise.all(apps.map((app) => writeFile(`${dir}/${name}/app_${app.name}.conf`, render(app))));
      const main = [
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/logs/error.log notice;`,
        'events { worker_connections 64; }',
        `http { access_log ${dir}/logs/access.log; include ${dir}/${name}/*.conf; }`,
        '',
      ].join('\n');
      await writeFile(`${dir}/${name}.main.conf`, main);
      const result = await run(nginxBin(), ['-t', '-q', '-c', `${dir}/${name}.main.conf`, '-p', `${dir}/`], { timeout: 60_000 }).catch(
        (error: { stderr?: string; message: string }) => assert.fail(`nginx -t refuses ${what}: ${error.stderr ?? error.message}`),
      );
      assert.equal(result.stderr, '', `nginx -t warns about ${what}`);
    }
  });
});
