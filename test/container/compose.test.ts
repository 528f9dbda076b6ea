/**
 * The compose sidecar (external mode) through a real Docker engine, with the README's own commands
 * (its "Container" section, run as written) and the project's docker-compose.yml: a stream and an
 * app created through Portico's API are served by the nginx container; `docker kill` of Portico's
 * container leaves nginx serving (not one failed request in a loop across it); Portico started again
 * finds every stream and app; a change nginx refuses answers 422 and the nginx container keeps its
 * config; `docker-compose down` leaves no container, network or process behind.
 *
 * Fixed ports, as the compose file publishes them (on 127.0.0.1 here: PUBLISH_ADDRESS): the API on
 * 5000, streams 9000-9009, apps on 80 and 443. The app's backend listens on the default bridge's
 * gateway, the host's address as a container sees it. `make test-container` runs this.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { fixtureCert } from '../helpers/backends.js';
import { api, httpsGet, PAGE, startPageBackend } from '../helpers/container-app.js';
import { assertNothingOutlives, bridgeGateway, containerProcesses, containerUnavailable, docker, readmeBlock, requestsFromContainer, runBlock } from '../helpers/docker.js';
import { eventually, roundTrip } from '../helpers/net.js';
import { REPO } from '../helpers/portico.js';

const run = promisify(execFile);
const PROJECT = 'portico';
const CERT = fixtureCert('portico');
const unavailable = containerUnavailable();
/** API_TOKEN, which the README's commands pass on from the shell (run-tests.sh exports one). */
const TOKEN = process.env.API_TOKEN ?? '';

const ready = async (): Promise<boolean> => (await api('GET', '/readyz').catch(() => ({ status: 0, body: '' }))).status === 200;

/** docker-compose with the project's name, from the repository (Debian's 1.29). */
async function compose(args: string[], timeoutMs = 300_000): Promise<string> {
  const { stdout, stderr } = await run('docker-compose', ['-p', PROJECT, ...args], { cwd: REPO, timeout: timeoutMs, maxBuffer: 16 << 20 });
  return `${stdout}${stderr}`;
}

/** The container id of a compose service. */
async function serviceId(service: string): Promise<string> {
  const id = (await compose(['ps', '-q', service])).trim().split('\n')[0] ?? '';
  assert.match(id, /^[0-9a-f]{12,}$/, `no container for the service ${service}`);
  return id;
}

/** One request to the app and one round trip through the stream; answers what went wrong, or ''. */
async function probeOnce(n: number): Promise<string> {
  const failures: string[] = [];
  try {
    const answer = await httpsGet(`/loop/${n}`);
    if (answer.status !== 200 || !answer.body.includes(`${PAGE} /loop/${n}`)) failures.push(`app: ${answer.status} ${answer.body.slice(0, 200)}`);
  } catch (error) {
    failures.push(`app: ${(error as Error).message}`);
  }
  try {
    const payload = `ping ${n}\n`;
    const echoed = await roundTrip(9000, payload);
    if (echoed !== payload) failures.push(`stream: ${JSON.stringify(echoed)}`);
  } catch (error) {
    failures.push(`stream: ${(error as Error).message}`);
  }
  return failures.join('; ');
}

describe('the compose sidecar: external mode through a real Docker engine', { skip: unavailable }, () => {
  let page: Awaited<ReturnType<typeof startPageBackend>>;
  let gateway: string;

  before(async () => {
    gateway = await bridgeGateway();
    page = await startPageBackend(gateway);
    await compose(['down', '-v', '--remove-orphans']).catch(() => '');
  });
  after(async () => {
    await compose(['down', '-v', '--remove-orphans']).catch(() => '');
    await page?.close();
  });

  it("starts with the README's commands, and the stream it creates echoes through the nginx container", async () => {
    const output = await runBlock(await readmeBlock('Container', /^docker-compose -p portico up /));
    assert.match(output, /"result":"ok"/);
    assert.equal(await roundTrip(9000, 'through the sidecar\n'), 'through the sidecar\n');
  });

  it('an app with a certificate answers over HTTPS, served by the nginx container (Portico runs no nginx)', async () => {
    let answer = await api('POST', '/v1/certificates', { id: 'portico', certificate: CERT.cert, key: CERT.key });
    assert.equal(answer.status, 201, answer.body);
    answer = await api('POST', '/v1/apps', {
      name: 'shop',
      serverNames: ['portico.test'],
      routes: [{ upstreams: [{ address: `${gateway}:${page.port}` }] }],
      tls: { certificate: 'portico', http2: true, http3: true },
    });
    assert.equal(answer.status, 201, answer.body);
    const https = await httpsGet('/first');
    assert.equal(https.status, 200);
    assert.match(https.body, new RegExp(`${PAGE} /first`));

    const nginx = await containerProcesses(await serviceId('nginx'));
    assert.ok(nginx.some((p) => p.args.startsWith('nginx: master process')), JSON.stringify(nginx));
    assert.ok(nginx.some((p) => p.args.startsWith('nginx: worker process')), JSON.stringify(nginx));
    const portico = await containerProcesses(await serviceId('portico'));
    assert.ok(portico.some((p) => /node .*dist\/main\.js/.test(p.args)), JSON.stringify(portico));
    assert.ok(!portico.some((p) => p.args.startsWith('nginx:')), `Portico's container runs an nginx: ${JSON.stringify(portico)}`);
    const files = await docker(['exec', await serviceId('nginx'), 'ls', '/etc/nginx/stream.d', '/etc/nginx/portico.d']);
    assert.match(files, /_conductor_9000\.conf/);
    assert.match(files, /app_shop\.conf/);
  });

  it("docker kill of Portico's container leaves nginx serving: no request fails in a loop across it", async (t) => {
    const portico = await serviceId('portico');
    const failures: string[] = [];
    let probes = 0;
    let killedAt = 0;
    const loop = (async () => {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && (killedAt === 0 || Date.now() < killedAt + 3000)) {
        const failure = await probeOnce(probes);
        probes += 1;
        if (failure !== '') failures.push(`#${probes}: ${failure}`);
      }
    })();
    await sleep(1000);
    await docker(['kill', portico]);
    killedAt = Date.now();
    await loop;
    t.diagnostic(`${probes} probes (an HTTPS request and a stream round trip each), ${failures.length} failed`);
    assert.deepEqual(failures, []);
    assert.ok(probes >= 10, `only ${probes} probes ran`);
    // docker kill counts as stopped by hand: the restart policy (unless-stopped) leaves it down.
    assert.equal(await docker(['inspect', '-f', '{{.State.Running}} {{.State.ExitCode}}', portico]), 'false 137');
  });

  it('Portico started again finds every stream and app', async () => {
    await docker(['start', await serviceId('portico')]);
    assert.ok(await eventually(ready, 30_000, 250), 'Portico did not become ready again');
    const streams = JSON.parse((await api('GET', '/getstreams')).body) as Array<{ listen: number; proxy_pass: string }>;
    assert.deepEqual(streams, [{ listen: 9000, proxy_pass: 'echo:7000' }]);
    const apps = await api('GET', '/v1/apps');
    assert.equal(apps.status, 200);
    assert.match(apps.body, /"name":"shop"/);
    assert.equal((await httpsGet('/after')).status, 200);
  });

  it('another container on the project network reaches http://nginx:5000 with any Host, and without the token changes nothing (401)', async () => {
    const nginx = await serviceId('nginx');
    const network = (await docker(['inspect', '-f', '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}', nginx])).trim();
    assert.equal(network, `${PROJECT}_default`);
    const files = async () => docker(['exec', nginx, 'sh', '-c', 'ls /etc/nginx/stream.d /etc/nginx/portico.d; cat /etc/nginx/stream.d/*.conf | sha256sum']);
    const before = await files();
    const body = JSON.stringify({ backend: 'echo:7000' });
    const answers = await requestsFromContainer(network, [
      { url: 'http://nginx:5000/createstream/9005/echo:7000', method: 'GET', host: 'nginx:5000' },
      { url: 'http://nginx:5000/v1/streams', method: 'POST', host: 'portico', headers: { 'content-type': 'application/json' }, body },
      { url: 'http://nginx:5000/v1/streams', method: 'POST', host: 'nginx', body },
      { url: 'http://nginx:5000/v1/streams/9000', method: 'DELETE', host: 'nginx' },
      { url: 'http://nginx:5000/v1/apps/shop', method: 'DELETE', host: 'portico:5000' },
      { url: 'http://nginx:5000/removestream/9000', method: 'GET', host: 'nginx:5000', headers: { authorization: 'Bearer wrong-token-wrong-token' } },
      { url: 'http://nginx:5000/v1/streams/9000', method: 'DELETE', host: 'nginx.attacker.example:5000', headers: { authorization: `Bearer ${TOKEN}` } },
      // With the token, the same neighbour is served: the 401s are the token's doing.
      { url: 'http://nginx:5000/getstreams', method: 'GET', host: 'nginx:5000', headers: { authorization: `Bearer ${TOKEN}` } },
    ]);
    assert.deepEqual(answers.map((a) => a.status), [401, 401, 401, 401, 401, 401, 403, 200], JSON.stringify(answers));
    assert.equal(await files(), before);
    const logs = await docker(['logs', await serviceId('portico')]);
    assert.ok(!logs.includes(TOKEN) && !logs.includes('wrong-token-wrong-token'), 'a token reached the container log');
    assert.ok(!logs.includes('PRIVATE KEY'), 'a private key reached the container log');
  });

  it('docker-compose refuses to start the project without API_TOKEN, saying why', async () => {
    const env = { ...process.env };
    delete env.API_TOKEN;
    const refused = await run('docker-compose', ['-p', PROJECT, 'config'], { cwd: REPO, timeout: 60_000, env }).then(
      (out) => ({ code: 0, output: `${out.stdout}${out.stderr}` }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }),
    );
    assert.notEqual(refused.code, 0, refused.output);
    assert.match(refused.output, /set API_TOKEN \(16 characters or more\)/);
  });

  it('a change nginx refuses answers 422 with its message, and the nginx container keeps its config', async () => {
    const nginx = await serviceId('nginx');
    const before = await docker(['exec', nginx, 'sh', '-c', 'cat /etc/nginx/stream.d/*.conf /etc/nginx/portico.d/*.conf | sha256sum']);
    const master = await docker(['exec', nginx, 'cat', '/run/nginx/nginx.pid']);
    const refused = await api('GET', '/createstream/9001/no-such-host.invalid:80');
    assert.equal(refused.status, 422, refused.body);
    assert.match(refused.body, /host not found/);
    assert.equal(await docker(['exec', nginx, 'sh', '-c', 'cat /etc/nginx/stream.d/*.conf /etc/nginx/portico.d/*.conf | sha256sum']), before);
    assert.equal(await docker(['exec', nginx, 'cat', '/run/nginx/nginx.pid']), master);
    assert.equal(await probeOnce(1_000_000), '');
  });

  it("docker-compose down (the README's) leaves no container, network or process of the project", async () => {
    const pids: number[] = [];
    for (const service of ['nginx', 'portico', 'echo']) pids.push(...(await containerProcesses(await serviceId(service))).map((p) => p.pid));
    assert.ok(pids.length >= 4, JSON.stringify(pids));
    await runBlock(await readmeBlock('Container', /^docker-compose -p portico down$/));
    const label = `label=com.docker.compose.project=${PROJECT}`;
    assert.equal(await docker(['ps', '-a', '-q', '--filter', label]), '');
    assert.equal(await docker(['network', 'ls', '-q', '--filter', label]), '');
    await assertNothingOutlives(pids);
  });
});
