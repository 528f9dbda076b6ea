/**
 * The traffic logs' line parser (golden lines, and properties over any input), the metrics' labels
 * (only known resources; a deleted one's series go) and the log tail (rotation, truncation, partial
 * and oversized lines) on real files.
 */
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { HTTP_LOG_FORMAT, MAX_LINE_BYTES, STREAM_LOG_FORMAT, parseTrafficLine } from '../../src/traffic/line.js';
import { TrafficMetrics, registerTrafficMetrics } from '../../src/traffic/metrics.js';
import { syslogMessage } from '../../src/traffic/syslog.js';
import { LogTail } from '../../src/traffic/tail.js';

describe('traffic line parser', () => {
  it('reads the golden lines nginx writes', () => {
    assert.deepEqual(parseTrafficLine('ps1 9001 TCP 1234 5678 0.052'), { kind: 'stream', port: 9001, protocol: 'tcp', received: 1234, sent: 5678, seconds: 0.052 });
    assert.deepEqual(parseTrafficLine('ps1 65535 UDP 0 0 600.001'), { kind: 'stream', port: 65535, protocol: 'udp', received: 0, sent: 0, seconds: 600.001 });
    assert.deepEqual(parseTrafficLine('ph1 shop.example.com 200 0.003'), { kind: 'http', serverName: 'shop.example.com', status: 200, seconds: 0.003 });
    assert.deepEqual(parseTrafficLine('ph1 *.example.com 499 12.000'), { kind: 'http', serverName: '*.example.com', status: 499, seconds: 12 });
    // The default server (server_name ""): nginx writes the empty name as nothing.
    assert.deepEqual(parseTrafficLine('ph1  404 0.000'), { kind: 'http', serverName: '', status: 404, seconds: 0 });
    assert.deepEqual(parseTrafficLine('ph1 - 404 0.000'), { kind: 'http', serverName: '', status: 404, seconds: 0 });
  });

  it('refuses every line that is not exactly a format', () => {
    for (const line of [
      '',
      'ps1',
      'ps1 9001 TCP 1 2',
      'ps1 9001 TCP 1 2 0.1',
      'ps1 9001 SCTP 1 2 0.100',
      'ps1 0 TCP 1 2 0.100',
      'ps1 65536 TCP 1 2 0.100',
      'ps1 09001 TCP 1 2 0.100',
      'ps1 9001 TCP -1 2 0.100',
      'ps1 9001 TCP 1 2 0.100 extra',
      'ps1 9001 TCP 1e3 2 0.100',
      'ps1 9001 TCP 1234567890123456 2 0.100',
      'ps1  9001 TCP 1 2 0.100',
      'ph1 shop 200 0.003 x',
      'ph1 shop 600 0.003',
      'ph1 shop 099 0.003',
      'ph1 shop 2000 0.003',
      'ph1 shop 200 -0.003',
      'ph1 sh\\x22op 200 0.003',
      'ph1 evil/../x 200 0.003',
      'ph1 {app="x"} 200 0.003',
      'ph2 shop 200 0.003',
      '127.0.0.1 [04/Dec/2026:13:00:00 +0000] "GET / HTTP/1.1" 200 HTTP/1.1 shop',
      `ph1 ${'a'.repeat(MAX_LINE_BYTES)} 200 0.001`,
    ]) {
      assert.equal(parseTrafficLine(line), undefined, line);
    }
  });

  it('formats start with the tags the parser knows, and name only nginx variables', () => {
    assert.match(STREAM_LOG_FORMAT, /^ps1 (\$[a-z_]+ ?){5}$/);
    assert.match(HTTP_LOG_FORMAT, /^ph1 (\$[a-z_]+ ?){3}$/);
  });

  it('property: a parsed line is valid and prints back as itself; anything else is refused without throwing', () => {
    const seconds = fc.tuple(fc.integer({ min: 0, max: 999_999 }), fc.integer({ min: 0, max: 999 })).map(([s, ms]) => `${s}.${String(ms).padStart(3, '0')}`);
    const stream = fc
      .record({ port: fc.integer({ min: 1, max: 65535 }), udp: fc.boolean(), received: fc.nat(), sent: fc.nat(), seconds })
      .map((r) => ({ r, line: `ps1 ${r.port} ${r.udp ? 'UDP' : 'TCP'} ${r.received} ${r.sent} ${r.seconds}` }));
    fc.assert(
      fc.property(stream, ({ r, line }) => {
        const parsed = parseTrafficLine(line);
        assert.deepEqual(parsed, { kind: 'stream', port: r.port, protocol: r.udp ? 'udp' : 'tcp', received: r.received, sent: r.sent, seconds: Number(r.seconds) });
      }),
    );
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
    const http = fc
      .record({ name: fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.')), status: fc.integer({ min: 100, max: 599 }), seconds })
      .map((r) => ({ r, line: `ph1 ${r.name} ${r.status} ${r.seconds}` }));
    fc.assert(
      fc.property(http, ({ r, line }) => {
        assert.deepEqual(parseTrafficLine(line), { kind: 'http', serverName: r.name, status: r.status, seconds: Number(r.seconds) });
      }),
    );
    // Any text, and any text after a tag: never throws; what parses has only safe fields.
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string().map((s) => `ph1 ${s}`), fc.string().map((s) => `ps1 ${s}`)), (line) => {
        const parsed = parseTrafficLine(line);
        if (parsed === undefined) return;
        if (parsed.kind === 'http') {
          assert.match(parsed.serverName, /^(\*\.)?[A-Za-z0-9.-]*$/);
          assert.ok(parsed.status >= 100 && parsed.status <= 599);
        } else {
          assert.ok(Number.isInteger(parsed.port) && parsed.port >= 1 && parsed.port <= 65535);
          assert.ok(Number.isSafeInteger(parsed.received) && Number.isSafeInteger(parsed.sent));
        }
        assert.ok(Number.isFinite(parsed.seconds) && parsed.seconds >= 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads a syslog datagram as nginx sends it', () => {
    assert.equal(syslogMessage('<190>Dec  4 13:00:00 portico: ph1 shop 200 0.001'), 'ph1 shop 200 0.001');
    assert.equal(syslogMessage('ph1 shop 200 0.001'), undefined);
  });
});

describe('traffic metrics', () => {
  it('labels only known resources, and drops a deleted one\'s series', async () => {
    const metrics = new TrafficMetrics();
    const registry = new Registry();
    registerTrafficMetrics(registry, { metrics });
    metrics.setKnown({ streamPorts: new Set([9001]), appsByServerName: new Map([['shop.test', 'shop'], ['www.shop.test', 'shop']]) });
    metrics.stream({ kind: 'stream', port: 9001, protocol: 'tcp', received: 10, sent: 20, seconds: 0.1 });
    metrics.stream({ kind: 'stream', port: 9002, protocol: 'tcp', received: 10, sent: 20, seconds: 0.1 });
    metrics.http({ kind: 'http', serverName: 'www.shop.test', status: 204, seconds: 0.02 });
    metrics.http({ kind: 'http', serverName: '', status: 404, seconds: 0 });
    const sessions = await registry.getSingleMetric('portico_stream_sessions_total')?.get();
    assert.deepEqual(sessions?.values.map((v) => [v.labels, v.value]), [[{ port: '9001', protocol: 'tcp' }, 1]]);
    const requests = await registry.getSingleMetric('portico_app_requests_total')?.get();
    assert.deepEqual(requests?.values.map((v) => [v.labels, v.value]), [[{ app: 'shop', code: '2xx' }, 1]]);
    const skipped = await registry.getSingleMetric('portico_traffic_lines_skipped_total')?.get();
    assert.equal(skipped?.values.find((v) => v.labels.reason === 'unknown_resource')?.value, 2);

    metrics.setKnown({ streamPorts: new Set(), appsByServerName: new Map() });
    const text = await registry.metrics();
    assert.doesNotMatch(text, /port="9001"/);
    assert.doesNotMatch(text, /app="shop"/);
  });
});

describe('log tail', () => {
  const collect = (): { lines: string[]; oversized: number; sink: { lines(l: string[]): void; oversized(): void } } => {
    const out = { lines: [] as string[], oversized: 0, sink: { lines: (l: string[]) => out.lines.push(...l), oversized: () => (out.oversized += 1) } };
    return out;
  };

  it('skips the past, reads appended lines once, holds a partial line, survives a rename and a truncation', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'portico-tail-'));
    try {
      const file = path.join(dir, 'traffic.log');
      await writeFile(file, 'old 1\nold 2\n');
      const out = collect();
      const tail = new LogTail(file, out.sink, 60_000);
      await tail.poll();
      assert.deepEqual(out.lines, []);
      await appendFile(file, 'a\nb\npart');
      await tail.poll();
      await tail.poll();
      assert.deepEqual(out.lines, ['a', 'b']);
      await appendFile(file, 'ial\n');
      await tail.poll();
      assert.deepEqual(out.lines, ['a', 'b', 'partial']);
      // Renamed: the writer goes on writing to the old file until it reopens.
      await rename(file, `${file}.1`);
      await appendFile(`${file}.1`, 'late to the old file\n');
      await writeFile(file, 'new 1\n');
      await tail.poll();
      await appendFile(`${file}.1`, 'later still\n');
      await appendFile(file, 'new 2\n');
      await tail.poll();
      assert.deepEqual(out.lines.slice(3).sort(), ['late to the old file', 'later still', 'new 1', 'new 2']);
      assert.equal(tail.openFiles, 2);
      // Truncated in place (seen before it grows past the old offset): read again from the start.
      await truncate(file, 0);
      await tail.poll();
      await appendFile(file, 'after truncation\n');
      await tail.poll();
      assert.equal(out.lines.at(-1), 'after truncation');
      // A line longer than any of Portico's is dropped whole, in pieces or not.
      await appendFile(file, `${'x'.repeat(MAX_LINE_BYTES + 10)}\nok\n`);
      await appendFile(file, 'y'.repeat(MAX_LINE_BYTES));
      await tail.poll();
      await appendFile(file, 'yyyy\nok2\n');
      await tail.poll();
      assert.deepEqual(out.lines.slice(-2), ['ok', 'ok2']);
      assert.equal(out.oversized, 2);
      await tail.stop();
      assert.equal(tail.openFiles, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('closes a renamed file once it stopped growing for the drain time', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'portico-tail-'));
    try {
      const file = path.join(dir, 'traffic.log');
      await writeFile(file, '');
      const out = collect();
      const tail = new LogTail(file, out.sink, 50);
      await tail.poll();
      await rename(file, `${file}.1`);
      await writeFile(file, '');
      await tail.poll();
      assert.equal(tail.openFiles, 2);
      await new Promise((resolve) => setTimeout(resolve, 120));
      await tail.poll();
      assert.equal(tail.openFiles, 1);
      await tail.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
