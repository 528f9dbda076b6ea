/**
 * Renders the main nginx.conf of managed mode, and the throwaway main configs that `nginx -t` runs
 * against (a staged tree, or one file alone). Pure.
 */
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
 * A main config for testing one file alone, so that a failure names its culprit: a stream file, or
 * an app file after the files the apps share.
 */
export function isolatedMain(context: 'stream' | 'http', files: string[], paths: { errorLog: string; pidFile: string }): string {
  const includes = files.map((file) => `include ${helpers.path(file)};`).join(' ');
  return [
    `pid ${helpers.path(paths.pidFile)};`,
    `error_log ${helpers.path(paths.errorLog)} notice;`,
    'events { worker_connections 64; }',
    `${context} { ${includes} }`,
    '',
  ].join('\n');
}
