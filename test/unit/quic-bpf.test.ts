/**
 * QUIC_BPF: reading the probe's run (nginx's own lines, as nginx 1.30.4 wrote them here) and
 * deciding what the main config says. The probe itself runs a real nginx: start-up.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideQuicBpf, needsProbe, type QuicBpfFacts } from '../../src/apply/quic-bpf.js';
import { PorticoError } from '../../src/errors.js';
import { judgeQuicBpfProbe } from '../../src/nginx/quic-bpf.js';

const PID = '/var/lib/portico/scratch/quic-bpf-probe.conf/nginx.pid';
const notices = ['nginx: [notice] using the "epoll" event method', 'nginx: [notice] nginx/1.30.4'];
const passed = [...notices, `nginx: [emerg] open() "${PID}" failed (20: Not a directory)`];
const refused = [...notices, 'nginx: [alert] failed to create BPF map (1: Operation not permitted)', 'nginx: [emerg] ngx_quic_bpf_module failed to initialize, check limits'];

describe('the quic_bpf probe\'s verdict', () => {
  it('works when nginx\'s only failure is the pid file it was made to fail on', () => {
    assert.deepEqual(judgeQuicBpfProbe({ exitCode: 1, lines: passed, timedOut: false }, PID, 10_000, 24), { works: true, ms: 24 });
  });

  it('fails with nginx\'s lines when bpf(2) is refused', () => {
    assert.deepEqual(judgeQuicBpfProbe({ exitCode: 1, lines: refused, timedOut: false }, PID, 10_000, 25), {
      works: false,
      lines: refused.slice(2),
      portTaken: false,
      ms: 25,
    });
  });

  it('fails when nginx knows no quic_bpf, or exits for another reason, or does not exit', () => {
    const unknown = judgeQuicBpfProbe({ exitCode: 1, lines: ['nginx: [emerg] unknown directive "quic_bpf" in /x.conf:7'], timedOut: false }, PID, 10_000, 5);
    assert.equal(unknown.works, false);
    assert.equal(judgeQuicBpfProbe({ exitCode: 0, lines: notices, timedOut: false }, PID, 10_000, 5).works, false, 'an exit without the pid file\'s failure proves nothing');
    assert.equal(judgeQuicBpfProbe({ exitCode: 1, lines: [...refused, passed[2] as string], timedOut: false }, PID, 10_000, 5).works, false);
    const hung = judgeQuicBpfProbe({ exitCode: undefined, lines: [], timedOut: true }, PID, 10_000, 10_000);
    assert.deepEqual(hung, { works: false, lines: ['nginx did not exit within 10000 ms'], portTaken: false, ms: 10_000 });
  });

  it('tells a port taken meanwhile, so that another one is tried', () => {
    const taken = ['nginx: [emerg] bind() to 127.0.0.1:40123 failed (98: Address already in use)', 'nginx: [emerg] still could not bind()'];
    const verdict = judgeQuicBpfProbe({ exitCode: 1, lines: taken, timedOut: false }, PID, 10_000, 2500);
    assert.equal(verdict.works, false);
    assert.equal(!verdict.works && verdict.portTaken, true);
  });
});

describe('deciding QUIC_BPF', () => {
  const base: QuicBpfFacts = { setting: 'auto', mode: 'managed', platform: 'linux', quic: true };
  const works = { works: true as const, ms: 20 };
  const fails = { works: false as const, lines: refused.slice(2), portTaken: false, ms: 20 };

  it('probes only in managed mode, on Linux, with an nginx that speaks QUIC, unless QUIC_BPF=off', () => {
    assert.equal(needsProbe(base), true);
    assert.equal(needsProbe({ ...base, setting: 'on' }), true);
    assert.equal(needsProbe({ ...base, setting: 'off' }), false);
    assert.equal(needsProbe({ ...base, mode: 'external' }), false);
    assert.equal(needsProbe({ ...base, platform: 'darwin' }), false);
    assert.equal(needsProbe({ ...base, quic: false }), false);
  });

  it('auto: on when the probe passed; off with nginx\'s reason (and a warning) when the host refused', () => {
    assert.equal(decideQuicBpf({ ...base, probe: works }).on, true);
    const off = decideQuicBpf({ ...base, probe: fails });
    assert.equal(off.on, false);
    assert.equal(off.refused, true);
    assert.match(off.reason, /failed to create BPF map \(1: Operation not permitted\)/);
  });

  it('auto: off without a warning where quic_bpf cannot apply (no QUIC in nginx, not Linux)', () => {
    for (const facts of [{ ...base, quic: false }, { ...base, platform: 'freebsd' as const }]) {
      const choice = decideQuicBpf(facts);
      assert.equal(choice.on, false);
      assert.equal(choice.refused, false);
    }
  });

  it('on: on when the probe passed; otherwise start-up stops, naming QUIC_BPF, what nginx said and what the host needs', () => {
    assert.equal(decideQuicBpf({ ...base, setting: 'on', probe: works }).on, true);
    assert.throws(
      () => decideQuicBpf({ ...base, setting: 'on', probe: fails }),
      (error: unknown) =>
        error instanceof PorticoError &&
        error.kind === 'InvalidInput' &&
        error.field === 'QUIC_BPF' &&
        /^QUIC_BPF=on, but nginx cannot route QUIC by eBPF here: .*failed to create BPF map.*CAP_BPF.*QUIC_BPF=auto/.test(error.message) &&
        error.nginx?.length === 2,
    );
    assert.throws(() => decideQuicBpf({ ...base, setting: 'on', quic: false }), /no http_v3_module/);
    assert.throws(() => decideQuicBpf({ ...base, setting: 'on', platform: 'darwin' }), /Linux only/);
  });

  it('off, and external mode, never render it', () => {
    assert.deepEqual(decideQuicBpf({ ...base, setting: 'off' }), { on: false, refused: false, reason: 'QUIC_BPF=off' });
    const external = decideQuicBpf({ ...base, mode: 'external', setting: 'on' });
    assert.equal(external.on, false);
    assert.match(external.reason, /operator's/);
  });
});
