/**
 * Renders the main nginx.conf of managed mode, and the throwaway main configs that `nginx -t` runs
 * against (a staged tree, or one file alone). Pure.
 */
import { HTTP_LOG_FORMAT, STREAM_LOG_FORMAT, TRAFFIC_FORMAT_NAME } from '../traffic/line.js';
import { compileTemplate, helpers, type Template } from './engine.js';

export interface MainView {
  pidFile: string;
  errorLog: string;
  accessLog: string;
  tempDir: string;
  /** The media types file (nginx/mime.types, copied into the state directory). */
  mimeTypes: string;
  /** Stream files to include: the live `DIR/*.conf` glob, or every file of a staged tree. */
  streamIncludes: string[];
  /** App files to include: the live `DIR/*.conf` glob, or every file of a staged tree. */
  httpIncludes: string[];
  workerConnections: number;
  workerRlimitNofile: number;
  workerShutdownTimeout: string;
  /** `keepalive_min_timeout`, or undefined for an nginx too old to know it (see keepaliveMinTimeoutFor). */
  keepaliveMinTimeout: string | undefined;
  /** STREAM_MAP_HASH_BUCKET_SIZE. */
  streamMapHashBucketSize: number;
  /** `quic_bpf on`: QUIC_BPF, as decided at start-up (apply/quic-bpf.ts). */
  quicBpf: boolean;
  /**
   * The stub_status listener Portico's /metrics reads, on 127.0.0.1 only (NGINX_STATUS_PORT), and
   * the path it answers on; undefined: none (turned off, or an nginx built without the module).
   */
  statusPort: number | undefined;
  statusPath: string;
  /** The per-resource traffic logs (TRAFFIC_METRICS on), or undefined for none. */
  traffic: TrafficLogs | undefined;
}

/** The logs the traffic metrics read (src/traffic/), with their formats. */
export interface TrafficLogs {
  streamLog: string;
  httpLog: string;
  formatName: string;
  streamFormat: string;
  httpFormat: string;
}

/** The traffic logs of STATE_DIR `stateDir`: where managed mode's nginx writes them, and any mode's reader reads. */
export function trafficLogs(stateDir: string): TrafficLogs {
  return {
    streamLog: `${stateDir}/logs/traffic-stream.log`,
    httpLog: `${stateDir}/logs/traffic-http.log`,
    formatName: TRAFFIC_FORMAT_NAME,
    streamFormat: STREAM_LOG_FORMAT,
    httpFormat: HTTP_LOG_FORMAT,
  };
}

/**
 * How long an idle keep-alive client connection stays open after a response before nginx may close
 * it, even in an old worker told to quit by a reload. Without it an old worker closes its idle
 * keep-alive connections at once, and a request a client sends at that instant gets a reset. It must
 * cover a client's gap between an answer and its next request: microseconds for a program, a round
 * trip plus some processing for a browser on a slow link (1 s is not rare on mobile networks), and a
 * stall of a loaded client. Each old worker lives on by up to this much after a reload, so it stays
 * short: well under worker_shutdown_timeout (30s by default, which cuts it anyway) and nginx's 75s
 * keepalive_timeout (the longest an idle connection lives in any case).
 */
export const KEEPALIVE_MIN_TIMEOUT = '2s';

/**
 * `map_hash_bucket_size` of the managed main config's stream block: an SNI route's server name is a
 * map key, and a 2048-byte bucket holds 7 names of 253 characters (DNS's longest) where nginx's
 * default (64 bytes) refuses a name over 46. nginx builds the smallest table that fits; a lookup
 * happens once per connection.
 */
export const STREAM_MAP_HASH_BUCKET_SIZE = 2048;

/** keepalive_min_timeout appeared in nginx 1.27.4; an older nginx rejects the directive. */
const KEEPALIVE_MIN_TIMEOUT_SINCE = [1, 27, 4];

/** True when dotted version `version` (such as "1.30.6") is at least `min`, part by part. */
export function versionAtLeast(version: string, min: number[]): boolean {
  const parts = version.split('.').map((part) => Number.parseInt(part, 10));
  for (let i = 0; i < min.length; i += 1) {
    const have = Number.isNaN(parts[i] ?? Number.NaN) ? 0 : (parts[i] as number);
    const want = min[i] as number;
    if (have !== want) return have > want;
  }
  return true;
}

/** The keepalive_min_timeout to render for an nginx of `nginxVersion`: none before 1.27.4. */
export function keepaliveMinTimeoutFor(nginxVersion: string): string | undefined {
  return versionAtLeast(nginxVersion, KEEPALIVE_MIN_TIMEOUT_SINCE) ? KEEPALIVE_MIN_TIMEOUT : undefined;
}

/** Connections each worker keeps beyond its listening sockets, for the traffic itself. */
export const CONNECTIONS_PER_WORKER = 4096;

/**
 * Sizes the event loop for `listeners` listening sockets: nginx counts each one against
 * worker_connections in every worker, and each client connection through a stream holds two
 * descriptors (client and upstream).
 */
export function sizeWorkers(listeners: number): { workerConnections: number; workerRlimitNofile: number } {
  const workerConnections = listeners + CONNECTIONS_PER_WORKER;
  return { workerConnections, workerRlimitNofile: workerConnections * 2 + 64 };
}

export type MainRenderer = (view: MainView) => string;

export function createMainRenderer(source: string): MainRenderer {
  const template: Template<MainView> = compileTemplate(source);
  return (view) => template(view);
}

/**
 * A main config for testing some files on their own: the files a batch writes (only what changed is
 * tested), or one alone, so that a failure names its culprit. Stream files, or app files after the
 * files the apps share.
 */
export function isolatedMain(context: 'stream' | 'http', files: string[], paths: { errorLog: string; pidFile: string; workerConnections: number }): string {
  const includes = files.map((file) => `include ${helpers.path(file)};`).join(' ');
  // A stream file alone must pass where it passes in the tree: an SNI map of long names needs the bucket.
  const settings = context === 'stream' ? `map_hash_bucket_size ${STREAM_MAP_HASH_BUCKET_SIZE}; ` : '';
  return [
    `pid ${helpers.path(paths.pidFile)};`,
    `error_log ${helpers.path(paths.errorLog)} notice;`,
    // nginx refuses more listening sockets than this: a batch may open every port of the range.
    `events { worker_connections ${helpers.int(String(paths.workerConnections))}; }`,
    `${context} { ${settings}${includes} }`,
    '',
  ].join('\n');
}

/** Where the probe of `quic_bpf` writes, and the UDP port its QUIC listener binds on 127.0.0.1. */
export interface QuicBpfProbeView {
  /** Its own config file: the pid file is put "inside" it, where no file can be created. */
  conf: string;
  tempDir: string;
  port: number;
}

/**
 * The main config of the probe that tells whether this host lets nginx route QUIC by eBPF: one QUIC
 * listener (reuseport, one socket per worker, as the apps' shared one) and `quic_bpf on`. nginx
 * does all of quic_bpf's work (creates the socket map, loads and attaches its program, adds each
 * worker's socket) while it reads its config, before it writes its pid file; a pid file below a
 * regular file (the config itself) cannot be created, so nginx exits right there, on its own,
 * having started no worker, with `open() "..." failed (20: Not a directory)`. Nothing is left to
 * stop. `ssl_reject_handshake` spares the listener a certificate. Pure.
 */
export function quicBpfProbeMain(view: QuicBpfProbeView): string {
  const temp = helpers.path(view.tempDir);
  return [
    "# Portico's probe of quic_bpf: nginx exits once it has read this (it cannot write its pid file).",
    'daemon off;',
    'master_process on;',
    'worker_processes auto;',
    `pid ${helpers.path(quicBpfProbePidFile(view.conf))};`,
    // nginx's lines go to its stderr, which Portico reads.
    'error_log stderr notice;',
    'quic_bpf on;',
    'events { worker_connections 16; }',
    'http {',
    '    access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `    ${kind}_temp_path ${temp};`),
    '    server {',
    `        listen 127.0.0.1:${helpers.port(view.port)} quic reuseport;`,
    '        ssl_reject_handshake on;',
    '        return 404;',
    '    }',
    '}',
    '',
  ].join('\n');
}

/** The pid file the probe's nginx fails to write: "below" its own config file. */
export function quicBpfProbePidFile(conf: string): string {
  return `${conf}/nginx.pid`;
}
