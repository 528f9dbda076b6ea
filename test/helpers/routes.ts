/**
 * The routes express would dispatch to, walked from its own router: what route-scopes.test.ts holds
 * ROUTE_SCOPES against and openapi.test.ts the OpenAPI document.
 */
import type { Express } from 'express';

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  rawPath?: string | string[];
  handle: { stack?: Layer[] };
}

/** Every route express would dispatch to, as `METHOD /full/path` (no trailing "/"). */
export function routesOf(app: Express): Set<string> {
  const found = new Set<string>();
  const walk = (stack: Layer[], prefix: string): void => {
    for (const layer of stack) {
      if (layer.route !== undefined) {
        for (const routePath of [layer.route.path].flat()) {
          for (const method of Object.keys(layer.route.methods).filter((m) => m !== '_all')) {
            found.add(`${method.toUpperCase()} ${`${prefix}${routePath}`.replace(/(.)\/$/, '$1')}`);
          }
        }
      } else if (layer.handle.stack !== undefined) {
        const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
        walk(layer.handle.stack, `${prefix}${mount}`);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return found;
}
