/**
 * What the files say, computed at scrape time from the same reads as /v1/status (cached by mtime in
 * store/, so a scrape of an unchanged tree parses nothing): resources, free ports, foreign and
 * unreadable files, each certificate's expiry. One read serves every gauge of a scrape.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Applier } from '../apply/applier.js';
import { describeCertificate } from '../model/certificate.js';
import type { PortAllocator } from '../apply/port-allocator.js';
import { unclaimedCount } from '../ports/allocate.js';
import type { Settings } from '../settings.js';
import type { AppStore } from '../store/apps.js';
import type { CertStore } from '../store/certs.js';
import { claimedPorts, type ConfigTree } from '../store/tree.js';

export interface StateSources {
  settings: Settings;
  tree: ConfigTree;
  apps: AppStore;
  certs: CertStore;
  applier: Applier;
  ports: PortAllocator;
}

interface Snapshot {
  resources: { stream: number; app: number; certificate: number };
  portsFree: number;
  foreign: { stream: number; app: number };
  unreadable: { stream: number; app: number };
  /** Seconds since the epoch each certificate expires at, by id. */
  notAfter: Map<string, number>;
}

/** Registers the gauges of the config tree on `registry`. */
export function registerStateMetrics(registry: Registry, sources: StateSources): void {
  const { settings, tree, apps, certs } = sources;
  // A certificate's expiry by its PEM text: the file is read at each scrape, parsed only when it changed.
  let expiries = new Map<string, number>();
  let inFlight: Promise<Snapshot> | undefined;

  const read = async (): Promise<Snapshot> => {
    const [streams, appTree, index] = await Promise.all([tree.read(), apps.read(), certs.index()]);
    const seen = new Map<string, number>();
    const notAfter = new Map<string, number>();
    for (const [id, { hasKey }] of [...index].sort(([a], [b]) => (a < b ? -1 : 1))) {
      // The certificate only: a scrape has no business reading private keys.
      const pem = await certs.certificatePem(id);
      if (pem === undefined) continue; // removed since the listing
      let seconds = expiries.get(pem);
      if (seconds === undefined) {
        try {
          seconds = Date.parse(describeCertificate(pem, hasKey).notAfter) / 1000;
        } catch {
          continue; // not a certificate Portico can read: /v1/certificates says so
        }
      }
      seen.set(pem, seconds);
      notAfter.set(id, seconds);
    }
    expiries = seen;
    return {
      resources: { stream: streams.streams.size, app: appTree.apps.size, certificate: index.size },
      portsFree: unclaimedCount(settings.portRange, claimedPorts(streams)),
      foreign: { stream: streams.foreign.length, app: appTree.foreign.length },
      unreadable: { stream: streams.unreadable.length, app: appTree.unreadable.length },
      notAfter,
    };
  };
  // prom-client collects every metric of a scrape at once: they share the read in flight.
  const snapshot = (): Promise<Snapshot> => {
    inFlight ??= read().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  new Gauge({
    name: 'portico_resources',
    help: 'Resources in the config tree, by kind (stream, app, certificate), as /v1/status counts them.',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      const { resources } = await snapshot();
      for (const [kind, count] of Object.entries(resources)) this.set({ kind }, count);
    },
  });
  new Gauge({
    name: 'portico_ports_free',
    help: 'Ports of PORT_RANGE that no stream file (Portico\'s, foreign or unreadable) claims, as /v1/status freePorts.',
    registers: [registry],
    async collect() {
      this.set((await snapshot()).portsFree);
    },
  });
  new Gauge({
    name: 'portico_ports_reserved',
    help: 'Ports handed out by getfreeport or /v1/ports/free and not yet taken by a create (in memory).',
    registers: [registry],
    collect() {
      this.set(sources.ports.reservedCount());
    },
  });
  new Gauge({
    name: 'portico_foreign_files',
    help: 'Files in the stream (kind="stream") or app (kind="app") directory that Portico did not write: reported, never changed.',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      const { foreign } = await snapshot();
      for (const [kind, count] of Object.entries(foreign)) this.set({ kind }, count);
    },
  });
  new Gauge({
    name: 'portico_unreadable_files',
    help: 'Files named as Portico\'s in the stream (kind="stream") or app (kind="app") directory that it cannot read back (a hand edit).',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      const { unreadable } = await snapshot();
      for (const [kind, count] of Object.entries(unreadable)) this.set({ kind }, count);
    },
  });
  new Gauge({
    name: 'portico_certificate_not_after_seconds',
    help: 'When each uploaded certificate (its leaf) expires, in seconds since the epoch: alert on portico_certificate_not_after_seconds - time() < 14 * 86400.',
    labelNames: ['id'] as const,
    registers: [registry],
    async collect() {
      const { notAfter } = await snapshot();
      // A removed certificate's series goes with it.
      this.reset();
      for (const [id, seconds] of notAfter) this.set({ id }, seconds);
    },
  });
  new Gauge({
    name: 'portico_config_consistent',
    help: '1 when nginx runs the files as they are; 0 when a failed rollback may have left it running something else (until the next successful batch).',
    registers: [registry],
    collect() {
      this.set(sources.applier.consistent ? 1 : 0);
    },
  });
}
