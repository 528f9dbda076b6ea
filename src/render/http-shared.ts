/**
 * Renders the file every HTTP app shares (`portico_http.conf` in the apps' directory): the WebSocket
 * map, the cache zone, and the catch-all server that answers requests no app claims. Pure.
 *
 * It holds the decisions that span apps, made here over the whole set: `reuseport` on the QUIC
 * listener (allowed once per address:port), and `default_server` on the plain HTTP port unless an app
 * is the default.
 */
import type { StickyView } from './app.js';
import { compileTemplate, type Template } from './engine.js';

export const SHARED_HTTP_FILE = 'portico_http.conf';

export interface SharedHttpView {
  httpPort: number;
  httpsPort: number;
  /** The catch-all server is the default on the plain HTTP port: no app has `"default": true`. */
  httpDefault: boolean;
  cacheDir: string;
  cacheKeysMb: number;
  cacheMaxMb: number;
  /** The sticky cookie and its variables (`STICKY`). */
  sticky: StickyView;
}

export type SharedHttpRenderer = (view: SharedHttpView) => string;

export function createSharedHttpRenderer(source: string): SharedHttpRenderer {
  const template: Template<SharedHttpView> = compileTemplate(source);
  return (view) => template(view);
}
