/**
 * QUIC_BPF: whether managed mode's main config says `quic_bpf on`, decided once at start-up, before
 * the main config is written. Without it every generation of workers reads the same reuseport UDP
 * sockets, and at a reload a draining old worker takes packets of connections that are not its own
 * and drops them: HTTP/3 requests are lost (test/integration/reload-traffic-h2h3.test.ts). With it
 * nginx routes each packet by its connection id to the socket of the worker that owns it.
 */
import type { Logger } from 'pino';
import { PorticoError } from '../errors.js';
import type { NginxBuild, NginxCommand } from '../nginx/exec.js';
import { probeQuicBpf, type QuicBpfProbe } from '../nginx/quic-bpf.js';
import { freeUdpPort } from '../ports/probe.js';
import { quicBpfProbeMain, quicBpfProbePidFile } from '../render/main.js';
import type { Settings } from '../settings.js';
import type { ConfigTree } from '../store/tree.js';

export type QuicBpfSetting = Settings['quicBpf'];

/** What start-up found out, for `decideQuicBpf`. */
export interface QuicBpfFacts {
  setting: QuicBpfSetting;
  mode: Settings['mode'];
  platform: NodeJS.Platform;
  /** The nginx binary speaks QUIC (built with http_v3_module). */
  quic: boolean;
  /** The probe's verdict, when one ran (`needsProbe`). */
  probe?: QuicBpfProbe | undefined;
}

export interface QuicBpfChoice {
  /** Render `quic_bpf on`. */
  on: boolean;
  /** Why, for the start-up log. */
  reason: string;
  /** A host that refused what QUIC_BPF=auto asked: worth a warning. */
  refused: boolean;
}

/** What a host needs for quic_bpf, measured with nginx 1.30.4 on Linux 6.18 (README, HTTP/3 across reloads). */
export const QUIC_BPF_NEEDS =
  'nginx\'s master needs CAP_SYS_ADMIN, or CAP_BPF with CAP_NET_ADMIN (a root nginx has them; in a container: --cap-add BPF --cap-add NET_ADMIN, with which Docker\'s default seccomp profile allows bpf(2)), on Linux 5.7 or later';

/** True when the facts so far leave the answer to a probe of this host. Pure. */
export function needsProbe(facts: Omit<QuicBpfFacts, 'probe'>): boolean {
  return facts.mode === 'managed' && facts.setting !== 'off' && facts.platform === 'linux' && facts.quic;
}

/**
 * Decides QUIC_BPF: `off` never renders it; `on` renders it or, when the host cannot, stops
 * start-up (InvalidInput on QUIC_BPF, with nginx's own lines); `auto` renders it when the probe
 * passed. External mode renders nothing (the main config is the operator's). Pure.
 */
export function decideQuicBpf(facts: QuicBpfFacts): QuicBpfChoice {
  const { setting } = facts;
  if (facts.mode === 'external') {
    return { on: false, refused: false, reason: 'external mode: the main config is the operator\'s, so is "quic_bpf on;" (README, HTTP/3 across reloads)' };
  }
  if (setting === 'off') return { on: false, refused: false, reason: 'QUIC_BPF=off' };
  const cannot = (why: string, lines: string[] = []): QuicBpfChoice => {
    if (setting === 'on') {
      throw new PorticoError('InvalidInput', `QUIC_BPF=on, but nginx cannot route QUIC by eBPF here: ${why}; ${QUIC_BPF_NEEDS}; or set QUIC_BPF=auto (on where the host allows it) or off`, {
        field: 'QUIC_BPF',
        nginx: lines,
      });
    }
    return { on: false, refused: lines.length > 0, reason: `QUIC_BPF=auto: ${why}` };
  };
  if (facts.platform !== 'linux') return cannot(`quic_bpf is Linux only (this is ${facts.platform})`);
  if (!facts.quic) return cannot('this nginx has no http_v3_module: no QUIC to route');
  const probe = facts.probe;
  if (probe === undefined) return cannot('no probe ran');
  if (!probe.works) return cannot(`a throwaway nginx with "quic_bpf on;" failed (${probe.ms} ms): ${probe.lines.join('; ')}`, probe.lines);
  return { on: true, refused: false, reason: `QUIC_BPF=${setting}: a throwaway nginx loaded its eBPF program for a QUIC listener (${probe.ms} ms)` };
}

/** Tries with another port when one the kernel had just called free was taken before nginx bound it. */
const PROBE_PORT_TRIES = 3;

export interface QuicBpfProbeOptions {
  cmd: NginxCommand;
  tree: ConfigTree;
  stateDir: string;
}

/**
 * Runs the probe: a throwaway main config with one QUIC listener on a free 127.0.0.1 UDP port and
 * `quic_bpf on`, in STATE_DIR/scratch, run by the real nginx (nginx/quic-bpf.ts). It ends on its
 * own before starting a worker: nothing is left running.
 */
export async function runQuicBpfProbe(options: QuicBpfProbeOptions): Promise<QuicBpfProbe> {
  const scratch = `${options.stateDir}/scratch`;
  let verdict: QuicBpfProbe | undefined;
  for (let tries = 0; tries < PROBE_PORT_TRIES && (verdict === undefined || (!verdict.works && verdict.portTaken)); tries += 1) {
    const port = await freeUdpPort('127.0.0.1');
    // nginx makes its temp folders at start (and gives them to the workers' user): one of the probe's own.
    const view = { conf: `${scratch}/quic-bpf-probe.conf`, tempDir: `${scratch}/quic-bpf-temp`, port };
    const conf = await options.tree.writeScratch('quic-bpf-probe.conf', quicBpfProbeMain(view));
    verdict = await probeQuicBpf(options.cmd, conf, quicBpfProbePidFile(view.conf));
  }
  return verdict as QuicBpfProbe;
}

/** Decides QUIC_BPF for this start (probing the host when that decides it) and logs which and why. */
export async function chooseQuicBpf(settings: Settings, build: NginxBuild, options: QuicBpfProbeOptions, log: Logger): Promise<QuicBpfChoice> {
  const facts: QuicBpfFacts = { setting: settings.quicBpf, mode: settings.mode, platform: process.platform, quic: build.modules.includes('http_v3_module') };
  if (needsProbe(facts)) facts.probe = await runQuicBpfProbe(options);
  const choice = decideQuicBpf(facts);
  const fields = { quicBpf: choice.on ? 'on' : 'off', setting: settings.quicBpf, ...(facts.probe !== undefined && { probeMs: facts.probe.ms }) };
  if (choice.refused) {
    log.warn(
      { ...fields, nginx: facts.probe?.works === false ? facts.probe.lines : undefined },
      `quic_bpf off: ${choice.reason}. At a reload nginx may then lose HTTP/3 requests; ${QUIC_BPF_NEEDS}. QUIC_BPF=off keeps it off without this warning`,
    );
  } else {
    log.info(fields, `quic_bpf ${choice.on ? 'on' : 'off'}: ${choice.reason}`);
  }
  return choice;
}
