/**
 * Wiring: settings → store → nginx → apply → api. `startPortico` brings a Portico up (recovering
 * what a crash left, adopting or starting nginx) and answers a handle to serve and stop it.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Express } from 'express';
import type { Logger } from 'pino';
import { AcmeClient } from './acme/client.js';
import { Rfc2136Solver } from './acme/dns01.js';
import { Http01Solver } from './acme/http01.js';
import { AcmeManager } from './acme/manager.js';
import { AcmeState } from './acme/state.js';
import { appServedCertificate } from './model/app.js';
import { createApp } from './api/app.js';
import type { Portico } from './api/context.js';
import { TokensFileError } from './api/tokens-file.js';
import { Tokens } from './api/tokens.js';
import { Applier } from './apply/applier.js';
import { Arrivals } from './apply/arrivals.js';
import { PortAllocator } from './apply/port-allocator.js';
import { AppKind } from './apply/app-kind.js';
import { CertificateKind } from './apply/certificate-kind.js';
import { chooseQuicBpf } from './apply/quic-bpf.js';
import { StreamKind } from './apply/stream-kind.js';
import { TestConfigs } from './apply/test-config.js';
import { PorticoError } from './errors.js';
import { REQUIRED_MODULES, type NginxCommand } from './nginx/exec.js';
import { descriptorShortfall, hardOpenFilesLimit } from './nginx/limits.js';
import { ExternalNginx } from './nginx/external.js';
import { EventFeed } from './events/feed.js';
import { openEtcd } from './fleet/etcd.js';
import { Fleet } from './fleet/fleet.js';
import { ManagedNginx } from './nginx/managed.js';
import { Nginx } from './nginx/nginx.js';
import type { NginxProcess } from './nginx/process.js';
import { rangeSize, type BoundProbe } from './ports/allocate.js';
import { isPortBound } from './ports/probe.js';
import { PortReservations } from './ports/reservations.js';
import { systemHostProbe, type HostProbe } from './ports/host-addresses.js';
import { TargetCheck } from './apply/targets.js';
import { createMainRenderer, trafficLogs } from './render/main.js';
import { registerAcmeMetrics } from './metrics/acme.js';
import { registerFleetMetrics } from './metrics/fleet.js';
import { createMetrics, type MetricsCollector } from './metrics/registry.js';
import { registerTrafficMetrics } from './traffic/metrics.js';
import { TrafficReader, knownResources } from './traffic/reader.js';
import { TrafficHistory } from './traffic/history.js';
import { createAppRenderer } from './render/app.js';
import { createSharedHttpRenderer } from './render/http-shared.js';
import { createStreamRenderer } from './render/stream.js';
import type { Settings } from './settings.js';
import { closedAncestor, makeTraversable } from './store/fsync.js';
import { acquireLock } from './store/lock.js';
import { AppStore } from './store/apps.js';
import { CertStore } from './store/certs.js';
import { ConfigTree } from './store/tree.js';

const root = fileURLToPath(new URL('..', import.meta.url));
export const TEMPLATES_DIR = `${root}templates`;
/** Static nginx assets shipped with Portico (nginx/): copied into the state directory in managed mode. */
export const NGINX_ASSETS_DIR = `${root}nginx`;

/** The version in package.json. */
export async function readVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8')) as { version: string };
  return pkg.version;
}

export interface StartOptions {
  log: Logger;
  /** Replaces the host port probe (tests use it to reach the verify step with a taken port). */
  isBound?: BoundProbe;
  /** Replaces what Portico learns of this host's addresses and names (tests use it for names no resolver knows). */
  hostProbe?: HostProbe;
  /** More metrics for /metrics, registered on Portico's registry (metrics/registry.ts). */
  collectors?: MetricsCollector[];
}

export interface RunningPortico {
  app: Express;
  portico: Portico;
  /** Waits for queued changes, stops a managed nginx (gracefully) and releases the state lock. */
  close(options?: { stopNginx?: boolean }): Promise<void>;
  /** Reads API_TOKENS_FILE again (on SIGHUP); a file that fails keeps the tokens as they were and is answered. */
  reloadTokens(): Promise<Error | undefined>;
}

/** The API's tokens; a tokens file that cannot be used stops start-up, naming the line and the rule. */
async function loadTokens(settings: Settings, log: Logger): Promise<Tokens | undefined> {
  try {
    return await Tokens.load({ apiToken: settings.apiToken, file: settings.apiTokensFile }, log.child({ module: 'tokens' }));
  } catch (error) {
    if (error instanceof TokensFileError) throw new PorticoError('InvalidInput', error.message, { field: 'API_TOKENS_FILE' });
    throw error;
  }
}

/**
 * Outgoing connections (nginx's own to its upstreams among them) take local ports from the kernel's
 * ephemeral range; a port of PORT_RANGE inside it can be held by one of them when a stream wants it.
 */
async function warnOnEphemeralOverlap(settings: Settings, log: Logger): Promise<void> {
  const text = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '');
  const [low, high] = text.trim().split(/\s+/).map(Number);
  if (low === undefined || high === undefined || Number.isNaN(low) || Number.isNaN(high)) return;
  const { from, to } = settings.portRange;
  if (from <= high && to >= low) {
    log.warn(
      { portRange: `${from}-${to}`, ephemeral: `${low}-${high}` },
      'PORT_RANGE overlaps the kernel\'s ephemeral port range (net.ipv4.ip_local_port_range): outgoing connections may hold its ports; choose a range outside it or reserve it with net.ipv4.ip_local_reserved_ports',
    );
  }
}

/** NGINX_STATUS_PORT when set and this nginx was built with stub_status (else said in the log, and undefined). */
function statusListener(settings: Settings, modules: string[], log: Logger): number | undefined {
  const port = settings.nginxStatus.port;
  if (port === undefined) return undefined;
  if (!modules.includes('http_stub_status_module')) {
    log.warn({ nginxBin: settings.nginxBin }, 'this nginx was built without http_stub_status_module: no status listener, and /metrics leaves out nginx\'s connection and request numbers');
    return undefined;
  }
  return port;
}

export async function startPortico(settings: Settings, options: StartOptions): Promise<RunningPortico> {
  const log = options.log;
  const tokens = await loadTokens(settings, log);
  await mkdir(`${settings.stateDir}/logs`, { recursive: true });
  await mkdir(`${settings.stateDir}/temp`, { recursive: true });
  // HTTP-01 answers, read by nginx's workers (src/acme/http01.ts): open to them, as the answers are public.
  await mkdir(settings.acmeChallengeDir, { recursive: true, mode: 0o755 });
  if (settings.mode === 'managed') {
    await mkdir(settings.httpDir, { recursive: true });
    // Run by root, nginx's workers run as nobody, and write the apps' cache and request bodies under
    // STATE_DIR/cache and STATE_DIR/temp: they must be able to pass through STATE_DIR.
    if (process.getuid?.() === 0) {
      if (await makeTraversable(settings.stateDir)) log.info({ stateDir: settings.stateDir }, 'made STATE_DIR traversable (o+x) for nginx\'s workers');
      const closed = await closedAncestor(settings.stateDir);
      if (closed !== undefined) {
        log.warn({ folder: closed }, `nginx's workers (user nobody) cannot pass through ${closed}: apps with a cache or large request bodies will answer 500; choose a STATE_DIR outside it`);
      }
    }
  }
  const lock = await acquireLock(`${settings.stateDir}/portico.lock`);
  let started: NginxProcess | undefined;
  let traffic: TrafficReader | undefined;
  let trafficHistory: TrafficHistory | undefined;
  let acme: AcmeManager | undefined;
  let fleet: Fleet | undefined;
  try {
    const [streamTemplate, mainTemplate, appTemplate, sharedTemplate, version] = await Promise.all([
      readFile(`${TEMPLATES_DIR}/stream.conf.hbs`, 'utf8'),
      readFile(`${TEMPLATES_DIR}/main.conf.hbs`, 'utf8'),
      readFile(`${TEMPLATES_DIR}/app.conf.hbs`, 'utf8'),
      readFile(`${TEMPLATES_DIR}/http-shared.conf.hbs`, 'utf8'),
      readVersion(),
    ]);
    if (settings.testDelay !== undefined) {
      log.warn({ testDelay: settings.testDelay }, 'PORTICO_TEST_DELAY is set: every batch pauses after one phase (for crash tests only)');
    }
    if (settings.testScope === 'tree' && settings.errorLog === undefined) {
      log.info('each change tests the whole tree with nginx -t before its reload: without NGINX_ERROR_LOG, nginx\'s refusal of a reload cannot be read');
    }
    const tree = new ConfigTree(settings);
    const restored = await tree.open();
    const certs = new CertStore(settings.certDir);
    const restoredCerts = await certs.open();
    if (restoredCerts !== undefined) log.warn({ files: restoredCerts }, 'rolled back a certificates batch a crash interrupted');
    const appFiles = { certDir: settings.certDir, httpPort: settings.httpPort, httpsPort: settings.httpsPort, acmeChallengeDir: settings.acmeChallengeDir, listenAddress: settings.listenAddress };
    const apps = new AppStore(settings.httpDir, appFiles);
    const restoredApps = await apps.open();
    if (restoredApps !== undefined) log.warn({ files: restoredApps }, 'rolled back an apps batch a crash interrupted');
    if (restored !== undefined) log.warn({ files: restored }, 'rolled back a batch a crash interrupted');

    const events = new EventFeed();
    const cmd: NginxCommand = {
      bin: settings.nginxBin,
      prefix: settings.mode === 'managed' ? settings.stateDir : undefined,
      timeoutMs: settings.nginxTimeoutMs,
    };
    const process =
      settings.mode === 'managed'
        ? new ManagedNginx({
            cmd,
            conf: settings.nginxConf,
            pidFile: settings.pidFile,
            errorLog: settings.errorLog ?? `${settings.stateDir}/logs/error.log`, // always set in managed mode
            stopTimeoutMs: settings.stopTimeoutMs,
            workerShutdownTimeout: settings.workerShutdownTimeout,
            log: log.child({ module: 'nginx' }),
            onEvent: (event) => events.record(event),
          })
        : new ExternalNginx(settings.pidFile);
    const nginx = new Nginx(cmd, process, settings.errorLog, log.child({ module: 'nginx' }));
    const build = await nginx.describe();
    const missing = REQUIRED_MODULES.filter((m) => !build.modules.includes(m));
    if (missing.length > 0) log.warn({ missing }, `nginx ${build.version} lacks modules some features need`);
    // Before the main config is written: it says quic_bpf on when QUIC_BPF and this host allow it.
    const quicBpf = await chooseQuicBpf(settings, build, { cmd, tree, stateDir: settings.stateDir }, log.child({ module: 'nginx' }));
    // The main config uses what this nginx's version knows (keepalive_min_timeout from 1.27.4).
    // The stub_status listener of /metrics, where this nginx has the module (an nginx without it would refuse the config).
    const statusPort = settings.mode === 'managed' ? statusListener(settings, build.modules, log) : undefined;
    const statusUrl = settings.mode === 'managed' ? (statusPort === undefined ? undefined : settings.nginxStatus.url) : settings.nginxStatus.url;
    const tests = new TestConfigs(settings, tree, createMainRenderer(mainTemplate), build.version, quicBpf.on, statusPort);

    await warnOnEphemeralOverlap(settings, log);
    if (settings.mode === 'managed') {
      const hard = await hardOpenFilesLimit();
      const shortfall = hard === undefined ? undefined : descriptorShortfall(rangeSize(settings.portRange), hard, globalThis.process.getuid?.() === 0);
      if (shortfall !== undefined) throw new PorticoError('InvalidInput', shortfall, { field: 'PORT_RANGE' });
    }
    if (settings.mode === 'managed') {
      await tree.writeMain(`${settings.stateDir}/mime.types`, await readFile(`${NGINX_ASSETS_DIR}/mime.types`, 'utf8'));
      await tree.writeMain(settings.nginxConf, tests.liveMain());
    }
    // Fails early, naming the file, when the live tree does not pass nginx -t (say, a hand edit).
    const live = await tree.stage([], await tree.read());
    const verdict = await nginx.test(await tests.forTree({ streams: live.includes })).finally(() => tree.unstage(live));
    if (!verdict.ok) {
      throw new PorticoError('NginxRejected', `the config tree does not pass nginx -t: ${verdict.lines.join('; ')}`, {
        nginx: verdict.lines,
      });
    }
    started = process;
    await process.start();
    if (process.adopted && (await nginx.running())) {
      // The files may have changed while no Portico watched (a rolled-back batch, a hand edit). Until
      // the old workers stop accepting, a stream of the rolled-back batch still takes connections:
      // wait for them, so that once the API answers, nginx serves exactly the files.
      await nginx.reload({ opened: [], closed: [], drainOld: true });
    } else if (settings.mode === 'external') {
      log.warn({ pidFile: settings.pidFile }, 'no nginx master is running yet; changes will answer 503 until one is');
    }

    // Reservations live in memory: a restart forgets them (the README says so).
    const ports = new PortAllocator({
      readTree: () => tree.read(),
      range: settings.portRange,
      isBound: options.isBound ?? ((port, udp) => isPortBound(port, udp, settings.listenAddress)),
      reservations: new PortReservations(settings.portReservationTtlMs),
    });
    const targets = new TargetCheck(
      options.hostProbe ?? systemHostProbe,
      {
        apiPort: settings.bindPort,
        appPorts: [
          { port: settings.httpPort, setting: 'HTTP_PORT' },
          { port: settings.httpsPort, setting: 'HTTPS_PORT' },
        ],
      },
      settings.bindAddress,
    );
    const streams = new StreamKind({
      tree,
      certs,
      tests,
      renderStream: createStreamRenderer(streamTemplate, { certDir: settings.certDir, listenAddress: settings.listenAddress }),
      listenAddress: settings.listenAddress,
      ports,
      loops: (stream, others) => targets.stream(stream, others),
    });
    const appKind = new AppKind({
      store: apps,
      certs,
      tests,
      renderApp: createAppRenderer(appTemplate, appFiles),
      renderShared: createSharedHttpRenderer(sharedTemplate),
      settings,
      loops: (app) => targets.app(app),
    });
    const certificateKind = new CertificateKind({
      tree,
      apps,
      certs,
      tests,
      // The test of a staged certificate loads it from the staging folder, as a stream would.
      renderProbe: createStreamRenderer(streamTemplate, { certDir: certs.stageDir }),
    });
    const arrivals = new Arrivals();
    const applier = new Applier({
      nginx,
      arrivals,
      kinds: { stream: streams, app: appKind, certificate: certificateKind },
      reloadMinIntervalMs: settings.reloadMinIntervalMs,
      testScope: settings.testScope,
      testDelay: settings.testDelay,
      events,
      log: log.child({ module: 'apply' }),
    });
    const startedAt = new Date();
    const metrics = createMetrics({ settings, tree, apps, certs, applier, ports, events, nginx, statusUrl, startedAt }, options.collectors ?? []);
    // Per-resource traffic metrics: read from the logs nginx writes for them (TRAFFIC_METRICS).
    if (settings.trafficMetrics) {
      const logs = trafficLogs(settings.stateDir);
      traffic = new TrafficReader({
        streamLog: logs.streamLog,
        httpLog: logs.httpLog,
        resources: () => knownResources({ tree, apps }),
        events,
        onLogsReopened: (listener) => nginx.onLogsReopened(listener),
        log: log.child({ module: 'traffic' }),
      });
      await traffic.start();
      registerTrafficMetrics(metrics.registry, traffic);
      // The console's charts: the counters sampled into a bounded ring (TRAFFIC_HISTORY_INTERVAL).
      trafficHistory = TrafficHistory.of(traffic.metrics, { intervalMs: settings.trafficHistoryIntervalMs, log: log.child({ module: 'traffic' }) });
      await trafficHistory.start();
    }
    // Managed certificates: the ACME client opens (and registers its account) on the first order.
    let client: Promise<AcmeClient> | undefined;
    const openClient = async (): Promise<AcmeClient> => {
      const caBundlePem = settings.acme.caBundle === undefined ? undefined : await readFile(settings.acme.caBundle, 'utf8');
      return AcmeClient.open({
        directoryUrl: settings.acme.directoryUrl,
        accountDir: settings.acme.stateDir,
        ...(settings.acme.email !== undefined && { email: settings.acme.email }),
        ...(settings.acme.eab !== undefined && { externalAccountBinding: settings.acme.eab }),
        ...(caBundlePem !== undefined && { caBundlePem }),
        logger: log.child({ module: 'acme' }),
      });
    };
    acme = new AcmeManager({
      state: new AcmeState(settings.acme.stateDir),
      certs,
      client: () => {
        // A failed opening (the CA unreachable) is tried again by the next order.
        client ??= openClient().catch((error: unknown) => {
          client = undefined;
          throw error;
        });
        return client;
      },
      solvers: {
        'http-01': new Http01Solver(settings.acmeChallengeDir),
        ...(settings.acme.dns !== undefined && { 'dns-01': Rfc2136Solver.fromSettings(settings.acme.dns) }),
      },
      put: (id, certificate, create, by) => applier.submitCertificate({ kind: 'certificate-put', id, certificate, create }, by),
      events,
      log: log.child({ module: 'acme' }),
      httpListening: async () => (await apps.read()).apps.size > 0,
      onFirstIssue: async (id) => {
        const waiting = [...(await apps.read()).apps.values()].filter((app) => app.tls?.httpsRedirect === true && appServedCertificate(app) === id);
        await Promise.all(waiting.map((app) => applier.submitApp({ kind: 'app-put', app, create: false, refresh: true }, { request: 'acme', token: 'acme' })));
      },
      retryMinMs: settings.acme.retryMinMs,
      retryMaxMs: 6 * 3600 * 1000,
      orderTimeoutMs: 10 * 60 * 1000,
    });
    const stopAcmeMetrics = registerAcmeMetrics(metrics.registry, events, acme);
    await acme.start();
    // STORE=etcd: this node follows the fleet's table (and its API's changes go through etcd). It
    // starts serving its own files at once; etcd may be down, and is caught up with when it answers.
    if (settings.fleet !== undefined) {
      fleet = new Fleet({
        settings: settings.fleet,
        client: await openEtcd(settings.fleet),
        applier,
        tree,
        apps,
        certs,
        nginx,
        stateDir: settings.stateDir,
        portRange: settings.portRange,
        isBound: ports.isBound,
        listenAddress: settings.listenAddress,
        version,
        log: log.child({ module: 'fleet' }),
      });
      await fleet.start();
    }
    registerFleetMetrics(metrics.registry, fleet);
    const portico: Portico = {
      settings,
      tree,
      apps,
      certs,
      applier,
      arrivals,
      nginx,
      ports,
      events,
      metrics: metrics.registry,
      traffic,
      trafficHistory,
      acme,
      fleet,
      version,
      startedAt,
    };
    const app = createApp(portico, log, tokens);
    return {
      app,
      portico,
      async close({ stopNginx = true } = {}) {
        await fleet?.stop();
        await acme?.stop();
        await applier.idle();
        metrics.close();
        stopAcmeMetrics();
        // The last batch's files on disk and the journals empty: a clean stop leaves nothing to recover.
        await Promise.all([tree.settle(), apps.files.settle(), certs.settle()]).catch((error: unknown) => {
          log.warn({ err: error }, 'flushing the last committed batch failed: the next start completes it from the journal');
        });
        if (stopNginx) await process.stop();
        // After nginx: its workers flush their buffered lines as they exit, and are counted.
        await traffic?.stop();
        await trafficHistory?.stop();
        await lock.release();
      },
      async reloadTokens() {
        if (tokens === undefined) {
          log.info('SIGHUP: neither API_TOKEN nor API_TOKENS_FILE is set: no tokens to read again');
          return undefined;
        }
        return tokens.reload();
      },
    };
  } catch (error) {
    // A failed start leaves nginx as it found it: an adopted master (the data plane outlives a control
    // plane that could not start) is only no longer watched; one this start spawned is stopped.
    await fleet?.stop().catch(() => undefined);
    await acme?.stop();
    await traffic?.stop();
    await trafficHistory?.stop();
    if (started !== undefined && !started.adopted) await started.stop().catch(() => started?.release());
    else started?.release();
    await lock.release();
    throw error;
  }
}
