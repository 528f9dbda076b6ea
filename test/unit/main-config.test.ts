/**
 * Main configs: managed mode's nginx.conf (golden file) and external mode's retargeted copy.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { TEMPLATES_DIR } from '../../src/portico.js';
import { NGINX_STATUS_PATH } from '../../src/settings.js';
import { retargetInclude } from '../../src/render/external.js';
import { STREAM_MAP_HASH_BUCKET_SIZE, createMainRenderer, keepaliveMinTimeoutFor, quicBpfProbeMain, quicBpfProbePidFile, sizeWorkers, trafficLogs, versionAtLeast } from '../../src/render/main.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;
const render = createMainRenderer(await readFile(`${TEMPLATES_DIR}/main.conf.hbs`, 'utf8'));
const view = {
  pidFile: '/var/lib/portico/nginx.pid',
  errorLog: '/var/lib/portico/logs/error.log',
  accessLog: '/var/lib/portico/logs/access.log',
  tempDir: '/var/lib/portico/temp',
  mimeTypes: '/var/lib/portico/mime.types',
  streamIncludes: ['/var/lib/portico/stream.d/*.conf'],
  httpIncludes: ['/var/lib/portico/http.d/*.conf'],
  workerShutdownTimeout: '30s',
  keepaliveMinTimeout: keepaliveMinTimeoutFor('1.30.6'),
  streamMapHashBucketSize: STREAM_MAP_HASH_BUCKET_SIZE,
  quicBpf: false,
  statusPort: 8081 as number | undefined,
  statusPath: NGINX_STATUS_PATH,
  traffic: trafficLogs('/var/lib/portico') as ReturnType<typeof trafficLogs> | undefined,
  ...sizeWorkers(10),
};

describe('managed main config', () => {
  it('renders as its golden file', async () => {
    const text = render(view);
    if (process.env.UPDATE_GOLDEN === '1') await writeFile(`${GOLDEN}main-managed.conf`, text);
    assert.equal(text, await readFile(`${GOLDEN}main-managed.conf`, 'utf8'));
  });

  it('renders as its golden file with quic_bpf on (QUIC_BPF on, or auto on a host that allows it)', async () => {
    const text = render({ ...view, quicBpf: true });
    if (process.env.UPDATE_GOLDEN === '1') await writeFile(`${GOLDEN}main-managed-quic-bpf.conf`, text);
    assert.equal(text, await readFile(`${GOLDEN}main-managed-quic-bpf.conf`, 'utf8'));
  });

  it('says quic_bpf on in the main context only when asked, and otherwise nothing of it', () => {
    const on = render({ ...view, quicBpf: true }).split('\n');
    const off = render(view).split('\n');
    assert.ok(on.includes('quic_bpf on;'), 'a line of its own, unindented: the main context');
    assert.ok(on.indexOf('quic_bpf on;') < on.indexOf('events {'));
    assert.ok(!off.some((line) => line.includes('quic_bpf')));
    // Only the directive and its two lines of comment differ.
    const added = on.filter((line) => !off.includes(line));
    assert.equal(added.length, 3);
    assert.deepEqual(on.filter((line) => !added.includes(line)), off);
  });

  it('renders the stub_status listener on 127.0.0.1 only, for loopback only, for a Host naming it only, unlogged; and none at all when off', () => {
    const lines = render(view).split('\n');
    const start = lines.indexOf('        listen 127.0.0.1:8081;');
    assert.ok(start > 0, 'the status server listens on 127.0.0.1:8081 alone');
    const server = lines.slice(start - 1, start + 17).map((line) => line.trim());
    for (const directive of ['access_log off;', 'allow 127.0.0.1;', 'deny all;', 'if ($host !~ "^(127\\.0\\.0\\.1|localhost)$") {', 'return 421;', 'location = /stub_status {', 'stub_status;']) {
      assert.ok(server.includes(directive), `${directive} in ${server.join(' ')}`);
    }
    assert.equal(lines.filter((line) => line.includes('stub_status;')).length, 1);
    const off = render({ ...view, statusPort: undefined });
    assert.doesNotMatch(off, /stub_status|8081|allow|deny/);
    // Only the server block and its comment go.
    assert.equal(off.split('\n').length, lines.length - 19);
    assert.throws(() => render({ ...view, statusPort: 70000 }), /refusing to render 70000 as port/);
  });

  it('has the traffic logs in stream and http when TRAFFIC_METRICS is on, and nothing of them when off', () => {
    const on = render(view).split('\n');
    const off = render({ ...view, traffic: undefined }).split('\n');
    assert.ok(on.includes("    access_log /var/lib/portico/logs/traffic-stream.log portico_traffic buffer=64k flush=1s;"));
    assert.ok(on.includes("    access_log /var/lib/portico/logs/traffic-http.log portico_traffic buffer=64k flush=1s;"));
    assert.ok(!off.some((line) => line.includes('traffic')));
    // Only the two log_format, the two access_log and their three lines of comment differ.
    assert.equal(on.filter((line) => !off.includes(line)).length, 7);
  });

  it('sizes worker_connections above the listeners of the whole range', () => {
    for (const listeners of [1, 10, 5000]) {
      const { workerConnections, workerRlimitNofile } = sizeWorkers(listeners);
      assert.ok(workerConnections > listeners);
      assert.ok(workerRlimitNofile >= 2 * workerConnections);
    }
  });

  it('renders keepalive_min_timeout only for an nginx that knows it (1.27.4 and later)', () => {
    assert.equal(keepaliveMinTimeoutFor('1.26.3'), undefined);
    assert.equal(keepaliveMinTimeoutFor('1.27.3'), undefined);
    assert.equal(keepaliveMinTimeoutFor('1.27.4'), '2s');
    assert.equal(keepaliveMinTimeoutFor('1.30.6'), '2s');
    assert.equal(keepaliveMinTimeoutFor('2.0'), '2s');
    assert.match(render(view), /^ {4}keepalive_min_timeout 2s;$/m);
    const old = render({ ...view, keepaliveMinTimeout: keepaliveMinTimeoutFor('1.26.3') });
    assert.doesNotMatch(old, /keepalive_min_timeout/);
    assert.equal(old.split('\n').length, render(view).split('\n').length - 2, 'only the directive and its comment go');
  });

  it('compares nginx versions part by part', () => {
    assert.ok(versionAtLeast('1.27.10', [1, 27, 4]));
    assert.ok(!versionAtLeast('1.9.15', [1, 27, 4]));
    assert.ok(versionAtLeast('1.28', [1, 27, 4]));
    assert.ok(!versionAtLeast('1.27', [1, 27, 4]));
  });

  it('refuses a path that could break out of its directive', () => {
    assert.throws(() => render({ ...view, pidFile: '/tmp/x.pid; user root' }), /refusing to render/);
    assert.throws(() => render({ ...view, streamIncludes: ['/tmp/../etc/*.conf'] }), /refusing to render/);
  });
});

describe('the quic_bpf probe\'s config', () => {
  const conf = '/var/lib/portico/scratch/quic-bpf-probe.conf';
  const text = quicBpfProbeMain({ conf, tempDir: '/var/lib/portico/scratch/quic-bpf-temp', port: 40123 });

  it('has one QUIC listener on 127.0.0.1 with reuseport, quic_bpf on, and no certificate', () => {
    assert.match(text, /^quic_bpf on;$/m);
    assert.match(text, /^ {8}listen 127\.0\.0\.1:40123 quic reuseport;$/m);
    assert.match(text, /^ {8}ssl_reject_handshake on;$/m);
    assert.doesNotMatch(text, /ssl_certificate/);
    assert.match(text, /^daemon off;$/m, 'a daemon would fork before the pid file and leave a process behind');
  });

  it('puts its pid file below its own config file, where nginx cannot create it', () => {
    assert.equal(quicBpfProbePidFile(conf), `${conf}/nginx.pid`);
    assert.match(text, new RegExp(`^pid ${conf.replaceAll('.', '\\.')}/nginx\\.pid;$`, 'm'));
  });

  it('refuses a port or a path outside their alphabets', () => {
    assert.throws(() => quicBpfProbeMain({ conf, tempDir: '/tmp/x; user root', port: 40123 }), /refusing to render/);
    assert.throws(() => quicBpfProbeMain({ conf, tempDir: '/tmp/x', port: 0 }), /refusing to render/);
  });
});

describe('external test config', () => {
  const operator = [
    'events {}',
    '# include stream.d/*.conf; (a comment)',
    'stream {',
    '    include stream.d/*.conf;',
    '    include other/*.conf;',
    '}',
  ].join('\n');

  it('retargets the stream directory\'s include, resolving relative paths as nginx does', () => {
    const { text, replaced } = retargetInclude(operator, '/etc/nginx', '/etc/nginx/stream.d', [
      '/etc/nginx/stream.d/a.conf',
      '/etc/nginx/stream.d/.portico/stage/b.conf',
    ]);
    assert.equal(replaced, 1);
    assert.match(text, /^# include stream\.d\/\*\.conf; \(a comment\)$/m);
    assert.match(text, /^ {4}include \/etc\/nginx\/stream\.d\/a\.conf; include \/etc\/nginx\/stream\.d\/\.portico\/stage\/b\.conf;$/m);
    assert.match(text, /include other\/\*\.conf;/);
  });

  it('reports a config that never includes the stream directory', () => {
    assert.equal(retargetInclude('stream { include x/*.conf; }', '/etc/nginx', '/srv/streams', []).replaced, 0);
  });
});
