/**
 * GET /metrics against a real Portico and nginx, read as a scraper reads it: parsed (test/helpers/
 * prometheus.ts) and checked by Prometheus's own `promtool check metrics`. The counters move by
 * exactly what happened (batches and changes by outcome, as the event feed records them), the
 * gauges of the tree agree with /v1/status and /v1/certificates, stub_status's numbers are nginx's
 * (they grow by the requests sent through it), and a killed master shows as down, then up again
 * with one more restart. External mode reads NGINX_STATUS_URL; a status page that never answers
 * costs a scrape at most its bound, and its numbers are left out.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import request from 'supertest';
import { sha256 } from '../../src/api/tokens-file.js';
import { fencedBlocks } from '../helpers/readme-blocks.js';
import { fixtureCert } from '../helpers/backends.js';
import { send, startBackend, type Backend } from '../helpers/http.js';
import { eventually, holdPort, roundTrip, startEcho, type EchoServer } from '../helpers/net.js';
import { REPO, nginxBin, processRuns, startInProcess, tempDir, type InProcess } from '../helpers/portico.js';
import { parseExposition, promtoolCheck, promtoolUnavailable, sampleValue, samplesOf, type Exposition } from '../helpers/prometheus.js';

const run = promisify(execFile);
const FROM = 21500;
const HTTP = FROM + 80;
const HTTPS = FROM + 81;
const STATUS = FROM + 90;
/** External mode's ports: the operator's nginx and its stub_status. */
const EXT_FROM = FROM + 20;
const EXT_STATUS = FROM + 91;

const DEPLOY = 'deploy-token-metrics-0123456789abcdef';
const MONITOR = 'monitor-token-metrics-0123456789abcdef';
const LEGACY = 'legacy-api-token-metrics-0123456789';
const hex = (token: string): string => sha256(token).toString('hex');

const KINDS = ['stream', 'app', 'certificate'];
const BATCH_OUTCOMES = ['applied', 'unchanged', 'rejected', 'rolled-back', 'failed'];
const CHANGE_OUTCOMES = ['applied', 'unchanged', 'rejected'];

const README = await readFile(path.join(REPO, 'README.md'), 'utf8');
/** The README's Metrics section's one block of `info` that includes `marker`. */
function readmeBlock(info: string, marker: string): string {
  const found = fencedBlocks(README).filter((block) => block.section === 'Observability' && block.info === info && block.text.includes(marker));
  assert.equal(found.length, 1, `README.md's Observability section holds one \`\`\`${info} block with ${marker}`);
  return (found[0] as { text: string }).text;
}

/** promtool's verdict on `text`: a parse error fails; lint remarks are allowed only on prom-client's own default metrics. */
function assertPromtoolAccepts(text: string): void {
  const { status, output } = promtoolCheck(text);
  if (status === 0) return;
  // 3: only lint remarks. prom-client names three gauges of node's (nodejs_active_*_total) with _total.
  assert.equal(status, 3, `promtool check metrics failed (exit ${status}): ${output}`);
  const remarks = output.split('\n').filter((line) => line.trim() !== '');
  assert.deepEqual(
    remarks.filter((line) => !/^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/.test(line)),
    [],
    'promtool remarks on a metric of Portico',
  );
}

describe('GET /metrics (managed mode)', () => {
  let portico: InProcess;
  let tokensDir: string;
  let echo: EchoServer;
  let backend: Backend;
  const scrape = async (): Promise<{ text: string; metrics: Exposition }> => {
    const res = await request(portico.app).get('/metrics').set('Authorization', `Bearer ${MONITOR}`);
    assert.equal(res.status, 200, res.text);
    return { text: res.text, metrics: parseExposition(res.text) };
  };
  const api = (method: 'get' | 'post' | 'put' | 'delete', url: string) => request(portico.app)[method](url).set('Authorization', `Bearer ${DEPLOY}`);

  before(async () => {
    echo = await startEcho();
    backend = await startBackend('metrics');
    tokensDir = await tempDir('metrics-tokens');
    const file = path.join(tokensDir, 'tokens');
    await writeFile(file, `deploy write ${hex(DEPLOY)}\nmonitor read ${hex(MONITOR)}\n`, { mode: 0o600 });
    portico = await startInProcess({
      PORT_RANGE: `${FROM}-${FROM + 9}`,
      HTTP_PORT: String(HTTP),
      HTTPS_PORT: String(HTTPS),
      NGINX_STATUS_PORT: String(STATUS),
      API_TOKEN: LEGACY,
      API_TOKENS_FILE: file,
      // The host probe is told every port is free, so that a held port reaches nginx's bind: a rolled-back batch.
    }, { isBound: async () => false });
  });
  after(async () => {
    await portico?.stop();
    await echo?.close();
    await backend?.close();
    if (tokensDir !== undefined) await rm(tokensDir, { recursive: true, force: true });
  });

  it('answers 401 without a token or with a wrong one, and 200 to a read token in the text format that promtool accepts, naming no credential', { skip: promtoolUnavailable() }, async () => {
    assert.equal((await request(portico.app).get('/metrics')).status, 401);
    assert.equal((await request(portico.app).get('/metrics').set('Authorization', `Bearer ${MONITOR}x`)).status, 401);
    const res = await request(portico.app).get('/metrics').set('Authorization', `Bearer ${MONITOR}`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4; charset=utf-8$/);
    assert.equal(res.headers['cache-control'], 'no-store');
    assertPromtoolAccepts(res.text);
    // The checker really parses: a broken exposition fails it.
    assert.equal(promtoolCheck('portico_broken{kind="stream" 1\n').status, 1);
    for (const secret of [DEPLOY, MONITOR, LEGACY, hex(DEPLOY), hex(MONITOR), hex(LEGACY)]) assert.ok(!res.text.includes(secret), 'a credential in /metrics');
    const metrics = parseExposition(res.text);
    // node's default process metrics, on Portico's registry.
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      assert.ok(samplesOf(metrics, name).length > 0, `${name} is missing`);
    }
    // Every series of the apply counters exists from the start, at 0.
    for (const kind of KINDS) {
      for (const outcome of BATCH_OUTCOMES) assert.equal(sampleValue(metrics, 'portico_apply_batches_total', { kind, outcome }), 0, `batches ${kind} ${outcome}`);
      for (const outcome of CHANGE_OUTCOMES) assert.equal(sampleValue(metrics, 'portico_apply_changes_total', { kind, outcome }), 0, `changes ${kind} ${outcome}`);
    }
    assert.equal(metrics.types.get('portico_apply_phase_seconds'), 'histogram');
    assert.equal(sampleValue(metrics, 'portico_nginx_info', { version: (await portico.portico.nginx.describe()).version, mode: 'managed' }), 1);
  });

  it('counts batches and changes by kind and outcome exactly as they happened (a refused change as rejected), as the event feed records them', async () => {
    const before = (await scrape()).metrics;
    const seenBefore = Math.max(0, ...((await api('get', '/v1/events').expect(200)).body as Array<{ id: number }>).map((event) => event.id));
    const startedAt = Date.now() / 1000;
    await api('post', '/v1/streams').send({ port: FROM, backend: `127.0.0.1:${echo.port}` }).expect(201);
    // The same stream again: unchanged, no reload.
    await api('put', `/v1/streams/${FROM}`).send({ port: FROM, upstreams: [{ address: `127.0.0.1:${echo.port}` }] }).expect(200);
    await api('post', '/v1/apps').send({ name: 'shop', serverNames: ['shop.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] }).expect(201);
    // Another app for the same name: the applier refuses it while planning.
    const refused = await api('post', '/v1/apps').send({ name: 'shop-copy', serverNames: ['shop.test'], routes: [{ upstreams: [{ address: `127.0.0.1:${backend.port}` }] }] });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    // A port another process holds: nginx cannot bind it at the reload, and the batch is rolled back.
    const held = await holdPort(FROM + 5);
    try {
      const failed = await api('post', '/v1/streams').send({ port: FROM + 5, backend: `127.0.0.1:${echo.port}` });
      assert.equal(failed.status, 422, JSON.stringify(failed.body));
    } finally {
      await held.close();
    }
    const afterwards = (await scrape()).metrics;

    const delta = (name: string, labels: Record<string, string> = {}): number => (sampleValue(afterwards, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    const batches: Record<string, number> = {};
    const changes: Record<string, number> = {};
    for (const kind of KINDS) {
      for (const outcome of BATCH_OUTCOMES) batches[`${kind} ${outcome}`] = delta('portico_apply_batches_total', { kind, outcome });
      for (const outcome of CHANGE_OUTCOMES) changes[`${kind} ${outcome}`] = delta('portico_apply_changes_total', { kind, outcome });
    }
    const nonZero = (counts: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(counts).filter(([, n]) => n !== 0));
    assert.deepEqual(nonZero(batches), { 'stream applied': 1, 'stream unchanged': 1, 'stream rolled-back': 1, 'app applied': 1, 'app rejected': 1 });
    assert.deepEqual(nonZero(changes), { 'stream applied': 1, 'stream unchanged': 1, 'stream rejected': 1, 'app applied': 1, 'app rejected': 1 });

    // The same story as /v1/events tells it (the events of this test: those after the ones seen before it).
    type Event = { id: number; resource: string; changes: Array<{ outcome: string }> };
    const list = ((await api('get', '/v1/events?type=apply').expect(200)).body as Event[]).filter((event) => event.id > seenBefore);
    const fromFeed: Record<string, number> = {};
    for (const event of list) for (const change of event.changes) fromFeed[`${event.resource} ${change.outcome}`] = (fromFeed[`${event.resource} ${change.outcome}`] ?? 0) + 1;
    assert.deepEqual(fromFeed, nonZero(changes));

    // Two batches reloaded nginx (the unchanged and the refused ones did not), and the rolled-back one
    // once more, which failed (and, when nginx took the new tree before its verify failed, a fourth
    // reload put the old files back). Every phase the batches ran was timed.
    const rolledBack = list.find((event) => event.resource === 'stream' && event.changes[0]?.outcome === 'rejected') as Event & { phasesMs: Record<string, number> };
    assert.ok(rolledBack.phasesMs.rollback !== undefined, 'the rolled-back batch has a rollback phase');
    assert.ok([3, 4].includes(delta('portico_reloads_total')), `${delta('portico_reloads_total')} reloads`);
    assert.equal(delta('portico_reload_failures_total'), 1);
    assert.equal(delta('portico_apply_phase_seconds_count', { phase: 'reload' }), 2, 'a reload phase ends only when the reload succeeded');
    assert.equal(delta('portico_apply_phase_seconds_count', { phase: 'test' }), 3);
    assert.equal(delta('portico_apply_phase_seconds_count', { phase: 'rollback' }), 1);
    assert.ok(delta('portico_apply_phase_seconds_sum', { phase: 'reload' }) > 0);
    assert.equal(delta('portico_apply_batch_seconds_count'), 5);
    // The last change's reload failed: 0, even though the old files were put back and reloaded.
    assert.equal(sampleValue(afterwards, 'portico_config_last_reload_successful'), 0);
    assert.equal(sampleValue(afterwards, 'portico_config_consistent'), 1);
    const reloadedAt = sampleValue(afterwards, 'portico_config_last_reload_success_timestamp_seconds') ?? 0;
    assert.ok(reloadedAt >= startedAt - 0.01 && reloadedAt <= Date.now() / 1000, `last reload at ${reloadedAt}, the changes from ${startedAt}`);
  });

  it('portico_resources and portico_ports_free agree with /v1/status, and a certificate\'s not_after is the certificate\'s', async () => {
    const cert = fixtureCert('a');
    await api('post', '/v1/certificates').send({ id: 'metrics-a', certificate: cert.cert, key: cert.key }).expect(201);
    await api('post', '/v1/streams').send({ port: FROM + 1, backend: `127.0.0.1:${echo.port}` }).expect(201);
    const { metrics } = await scrape();
    // A change reloaded successfully again.
    assert.equal(sampleValue(metrics, 'portico_config_last_reload_successful'), 1);
    const status = (await api('get', '/v1/status').expect(200)).body as { streams: number; apps: number; certificates: number; freePorts: number; reservedPorts: number };
    assert.deepEqual(
      Object.fromEntries(KINDS.map((kind) => [kind, sampleValue(metrics, 'portico_resources', { kind })])),
      { stream: status.streams, app: status.apps, certificate: status.certificates },
    );
    assert.deepEqual([status.streams, status.apps, status.certificates], [2, 1, 1]);
    assert.equal(sampleValue(metrics, 'portico_ports_free'), status.freePorts);
    assert.equal(status.freePorts, 8);
    assert.equal(sampleValue(metrics, 'portico_ports_reserved'), status.reservedPorts);
    for (const kind of ['stream', 'app']) {
      assert.equal(sampleValue(metrics, 'portico_foreign_files', { kind }), 0);
      assert.equal(sampleValue(metrics, 'portico_unreadable_files', { kind }), 0);
    }
    const described = (await api('get', '/v1/certificates/metrics-a').expect(200)).body as { notAfter: string };
    assert.deepEqual(samplesOf(metrics, 'portico_certificate_not_after_seconds').map((s) => [s.labels, s.value]), [[{ id: 'metrics-a' }, Date.parse(described.notAfter) / 1000]]);

    // A file Portico did not write, and one of its own names it cannot read, count as soon as they are there.
    await writeFile(path.join(portico.settings.streamDir, 'operator.conf'), `server { listen ${FROM + 9}; return 1; }\n`);
    await writeFile(path.join(portico.settings.streamDir, `${portico.settings.streamPrefix}${FROM + 8}.conf`), 'server { this is not a stream }\n');
    try {
      const handEdited = (await scrape()).metrics;
      const now = (await api('get', '/v1/status').expect(200)).body as { freePorts: number };
      assert.equal(sampleValue(handEdited, 'portico_foreign_files', { kind: 'stream' }), 1);
      assert.equal(sampleValue(handEdited, 'portico_unreadable_files', { kind: 'stream' }), 1);
      assert.equal(sampleValue(handEdited, 'portico_ports_free'), now.freePorts);
      assert.equal(now.freePorts, 6);
    } finally {
      await rm(path.join(portico.settings.streamDir, 'operator.conf'));
      await rm(path.join(portico.settings.streamDir, `${portico.settings.streamPrefix}${FROM + 8}.conf`));
    }
    // A removed certificate's series goes with it.
    await api('delete', '/v1/certificates/metrics-a').expect(204);
    assert.deepEqual(samplesOf((await scrape()).metrics, 'portico_certificate_not_after_seconds'), []);
  });

  it('stub_status\'s numbers are nginx\'s: accepted, handled and requests grow by exactly the connections and requests sent through it', async () => {
    const first = (await scrape()).metrics;
    assert.equal(sampleValue(first, 'portico_nginx_status_up'), 1);
    const requests = 5;
    for (let i = 0; i < requests; i += 1) {
      const answer = await send({ port: HTTP, host: 'shop.test', path: `/metrics-${i}` });
      assert.equal(answer.status, 200, answer.body);
    }
    // A stream's connection is accepted by nginx too, and makes no HTTP request.
    assert.equal(await roundTrip(FROM, 'through the stream'), 'through the stream');
    const second = (await scrape()).metrics;
    const delta = (name: string): number => (sampleValue(second, name) ?? Number.NaN) - (sampleValue(first, name) ?? Number.NaN);
    // Each request came on a connection of its own; the second scrape's own connection and request count too.
    assert.equal(delta('portico_nginx_connections_accepted_total'), requests + 1 + 1);
    assert.equal(delta('portico_nginx_connections_handled_total'), requests + 1 + 1);
    assert.equal(delta('portico_nginx_http_requests_total'), requests + 1);
    // The scrape's own request is being written while nginx counts.
    assert.ok((sampleValue(second, 'portico_nginx_connections_writing') ?? 0) >= 1);
    assert.ok((sampleValue(second, 'portico_nginx_connections_active') ?? 0) >= 1);
    for (const state of ['reading', 'waiting']) assert.ok((sampleValue(second, `portico_nginx_connections_${state}`) ?? -1) >= 0, state);
    assert.equal(backend.requests() >= requests, true);
    // The listener answers loopback only, and only its path.
    const other = await send({ port: STATUS, host: '127.0.0.1', path: '/' });
    assert.equal(other.status, 404);
  });

  it('documents every metric it answers in README.md, and answers every metric the README documents', async () => {
    const { metrics } = await scrape();
    const answered = [...metrics.types.keys()].filter((name) => name.startsWith('portico_')).sort();
    const section = README.slice(README.indexOf('\n### Metrics\n'), README.indexOf('\n## Settings\n'));
    const documented = [...new Set([...section.matchAll(/^\| `[^|]*/gm)].flatMap((row) => [...row[0].matchAll(/`(portico_[a-z_]+)(?:\{[a-z,]*\})?`/g)].map((m) => m[1] as string)))].sort();
    assert.ok(answered.length >= 26, `only ${answered.length} metrics of Portico's answered: ${answered.join(' ')}`);
    assert.deepEqual(answered, documented);
  });

  it('the README\'s scrape config and alert rules are ones Prometheus accepts', { skip: promtoolUnavailable() }, async () => {
    const dir = await tempDir('metrics-prometheus');
    try {
      await writeFile(path.join(dir, 'portico-token'), `${MONITOR}\n`, { mode: 0o600 });
      await writeFile(path.join(dir, 'portico-rules.yml'), readmeBlock('yaml', 'groups:'));
      const config = readmeBlock('yaml', 'scrape_configs:').replace('/etc/prometheus/portico-token', path.join(dir, 'portico-token'));
      await writeFile(path.join(dir, 'prometheus.yml'), `rule_files: ['${path.join(dir, 'portico-rules.yml')}']\n${config}`);
      const checked = await run('/usr/bin/promtool', ['check', 'config', path.join(dir, 'prometheus.yml')]).catch((error: { stdout: string; stderr: string }) => {
        assert.fail(`promtool check config refused the README's config: ${error.stdout}${error.stderr}`);
      });
      assert.match(checked.stdout, /SUCCESS: 5 rules found/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('portico_nginx_up is 0 once the managed master is killed, then 1 after its restart, with portico_nginx_restarts_total one more', async () => {
    const before = (await scrape()).metrics;
    assert.equal(sampleValue(before, 'portico_nginx_up'), 1);
    const restarts = sampleValue(before, 'portico_nginx_restarts_total') ?? Number.NaN;
    const pid = (await api('get', '/v1/status').expect(200)).body.nginx.pid as number;
    process.kill(pid, 'SIGKILL');
    // The first restart waits 100 ms (backoff) and a start takes some more: scrapes see it down.
    let sawDown = false;
    assert.ok(
      await eventually(async () => {
        const up = sampleValue((await scrape()).metrics, 'portico_nginx_up');
        if (up === 0) sawDown = true;
        return sawDown;
      }, 3000, 5),
      'no scrape saw nginx down',
    );
    assert.ok(await eventually(async () => sampleValue((await scrape()).metrics, 'portico_nginx_up') === 1, 10_000), 'nginx did not come back');
    const back = (await scrape()).metrics;
    assert.equal(sampleValue(back, 'portico_nginx_restarts_total'), restarts + 1);
    assert.ok(!(await processRuns(pid)));
    // The new master's stub_status answers, its counters started again.
    assert.ok(await eventually(async () => sampleValue((await scrape()).metrics, 'portico_nginx_status_up') === 1, 5000));
    assert.ok((sampleValue((await scrape()).metrics, 'portico_nginx_connections_accepted_total') ?? Infinity) < (sampleValue(before, 'portico_nginx_connections_accepted_total') ?? 0));
  });
});

describe('GET /metrics (external mode)', () => {
  let root: string;
  let pidFile: string;
  let portico: InProcess | undefined;
  let hanging: Server | undefined;
  const held = new Set<Socket>();

  /** The operator's nginx: a stream directory for Portico and a stub_status of the operator's own. */
  const startOperatorNginx = async (): Promise<{ conf: string; streamDir: string }> => {
    const streamDir = `${root}/etc/stream.d`;
    await mkdir(streamDir, { recursive: true });
    await mkdir(`${root}/logs`, { recursive: true });
    const conf = `${root}/etc/nginx.conf`;
    await writeFile(
      conf,
      [
        `pid ${pidFile};`,
        `error_log ${root}/logs/error.log notice;`,
        'worker_processes 1;',
        'events { worker_connections 1024; }',
        'stream { include stream.d/*.conf; }',
        'http {',
        // The README's server for external mode, on this test's port.
        readmeBlock('nginx', 'stub_status;').replaceAll('8081', String(EXT_STATUS)),
        '}',
        '',
      ].join('\n'),
    );
    await run(nginxBin(), ['-p', `${root}/`, '-c', conf, '-e', `${root}/logs/error.log`]);
    return { conf, streamDir };
  };
  const stopOperatorNginx = async (): Promise<void> => {
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (pid > 0 && (await processRuns(pid))) {
      process.kill(pid, 'SIGQUIT');
      if (!(await eventually(async () => !(await processRuns(pid)), 3000))) process.kill(pid, 'SIGKILL');
    }
  };

  before(async () => {
    root = await tempDir('metrics-external');
    pidFile = `${root}/nginx.pid`;
  });
  after(async () => {
    await portico?.stop();
    await stopOperatorNginx();
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => (hanging === undefined ? resolve() : hanging.close(() => resolve())));
    await rm(root, { recursive: true, force: true });
  });

  it('reads the operator\'s stub_status at NGINX_STATUS_URL', async () => {
    const { conf, streamDir } = await startOperatorNginx();
    portico = await startInProcess({
      NGINX_MODE: 'external',
      PORT_RANGE: `${EXT_FROM}-${EXT_FROM + 9}`,
      NGINX_CONF: conf,
      NGINX_PID_FILE: pidFile,
      STREAM_CONFIG_PATH: streamDir,
      NGINX_ERROR_LOG: `${root}/logs/error.log`,
      // As the README gives it.
      NGINX_STATUS_URL: /NGINX_STATUS_URL=(\S+)/.exec(readmeBlock('text', 'NGINX_STATUS_URL='))?.[1]?.replace('8081', String(EXT_STATUS)) ?? 'missing',
    });
    const text = (await request(portico.app).get('/metrics').expect(200)).text;
    if (promtoolUnavailable() === undefined) assertPromtoolAccepts(text);
    const metrics = parseExposition(text);
    assert.equal(sampleValue(metrics, 'portico_nginx_up'), 1);
    assert.equal(sampleValue(metrics, 'portico_nginx_status_up'), 1);
    assert.equal(sampleValue(metrics, 'portico_nginx_restarts_total'), 0);
    assert.equal(samplesOf(metrics, 'portico_nginx_info')[0]?.labels.mode, 'external');
    // Portico's start reloaded the master and checked nothing else; the scrape's own connection is one.
    assert.ok((sampleValue(metrics, 'portico_nginx_connections_accepted_total') ?? 0) >= 1);
    assert.ok((sampleValue(metrics, 'portico_nginx_http_requests_total') ?? 0) >= 1);
    await portico.stop();
    portico = undefined;
    await stopOperatorNginx();
  });

  it('a stub_status that never answers costs a scrape at most its bound: portico_nginx_status_up 0 and its numbers left out', async () => {
    hanging = createServer((socket) => {
      held.add(socket);
      socket.on('close', () => held.delete(socket));
    });
    await new Promise<void>((resolve) => hanging?.listen(0, '127.0.0.1', resolve));
    const port = (hanging.address() as AddressInfo).port;
    // No operator nginx runs now: Portico starts all the same (changes would answer 503).
    portico = await startInProcess({
      NGINX_MODE: 'external',
      PORT_RANGE: `${EXT_FROM}-${EXT_FROM + 9}`,
      NGINX_CONF: `${root}/etc/nginx.conf`,
      NGINX_PID_FILE: pidFile,
      STREAM_CONFIG_PATH: `${root}/etc/stream.d`,
      NGINX_STATUS_URL: `http://127.0.0.1:${port}/stub_status`,
    });
    const started = Date.now();
    const text = (await request(portico.app).get('/metrics').expect(200)).text;
    const took = Date.now() - started;
    assert.ok(took < 2500, `the scrape took ${took} ms`);
    assert.ok(took >= 900, `the scrape took ${took} ms: it did not wait for the status page at all`);
    if (promtoolUnavailable() === undefined) assertPromtoolAccepts(text);
    const metrics = parseExposition(text);
    assert.equal(sampleValue(metrics, 'portico_nginx_status_up'), 0);
    assert.equal(sampleValue(metrics, 'portico_nginx_up'), 0);
    assert.deepEqual(metrics.samples.filter((s) => /^portico_nginx_(connections|http)_/.test(s.name)), []);
    // The rest of the scrape is all there.
    assert.equal(sampleValue(metrics, 'portico_resources', { kind: 'stream' }), 0);
  });
});
