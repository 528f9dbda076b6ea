/**
 * The file every HTTP app shares, as the apply pipeline decides it: what it must say for a set of
 * apps and the settings, rendered and read back like every other file (DESIGN invariant 3), and,
 * for /v1/status, whether the file on disk says it (a hand edit, a file missing or left over).
 */
import { isDeepStrictEqual } from 'node:util';
import { PorticoError } from '../errors.js';
import { CACHE_CREDENTIALS_VARIABLE, type App } from '../model/app.js';
import { SHARED_HTTP_FILE, type SharedHttp } from '../model/http-shared.js';
import { readSharedHttp } from '../parse/http-shared.js';
import { STICKY } from '../model/app-file.js';
import { sharedHttpOf, sharedServerNamesHash, type SharedHttpRenderer, type SharedHttpView } from '../render/http-shared.js';
import type { Settings } from '../settings.js';
import type { AppTree } from '../store/apps.js';

export type SharedHttpSettings = Pick<Settings, 'httpPort' | 'httpsPort' | 'stateDir' | 'mode'>;

/** What the shared file must say for `apps` (at least one) under `settings`. */
export function sharedHttpView(apps: App[], settings: SharedHttpSettings): SharedHttpView {
  return {
    httpPort: settings.httpPort,
    httpsPort: settings.httpsPort,
    httpDefault: !apps.some((app) => app.default === true),
    cacheDir: `${settings.stateDir}/cache`,
    cacheKeysMb: 10,
    cacheMaxMb: 1024,
    sticky: STICKY,
    cacheCredentials: CACHE_CREDENTIALS_VARIABLE,
    serverNamesHash: sharedServerNamesHash(apps.flatMap((app) => app.serverNames), settings.mode),
  };
}

/** Renders the shared file and reads it back: it must say exactly what it was rendered from, or it is never written. */
export function renderSharedChecked(render: SharedHttpRenderer, view: SharedHttpView): string {
  const text = render(view);
  let back: SharedHttp;
  try {
    back = readSharedHttp(text);
  } catch (error) {
    throw new PorticoError('Internal', `rendering ${SHARED_HTTP_FILE}: the file does not read back: ${(error as Error).message}`);
  }
  if (!isDeepStrictEqual(back, sharedHttpOf(view))) throw new PorticoError('Internal', `rendering ${SHARED_HTTP_FILE}: the file reads back differently`);
  return text;
}

/** The first field where `found` differs from `wanted`, as "field: found X, Portico renders Y". */
function firstDifference(found: SharedHttp, wanted: SharedHttp): string {
  for (const key of Object.keys(wanted) as Array<keyof SharedHttp>) {
    if (!isDeepStrictEqual(found[key], wanted[key])) {
      return `${key} is ${JSON.stringify(found[key]) ?? 'absent'} where Portico renders ${JSON.stringify(wanted[key]) ?? 'none'}`;
    }
  }
  return 'it differs';
}

/**
 * Why the shared file on disk is not the one Portico would write for the apps as they are, or
 * undefined when it is. The next change of any app rewrites it (or removes it, with no app left).
 */
export function sharedHttpProblem(tree: AppTree, settings: SharedHttpSettings): string | undefined {
  const { shared } = tree;
  if (tree.apps.size === 0) return shared === undefined ? undefined : 'it exists although there is no app (Portico removes it with the last app)';
  if (shared === undefined) return 'it is missing although there are apps';
  if ('reason' in shared) return `it cannot be read as Portico writes it (edited by hand?): ${shared.reason}`;
  const wanted = sharedHttpOf(sharedHttpView([...tree.apps.values()], settings));
  if (isDeepStrictEqual(shared.read, wanted)) return undefined;
  return `it is not what Portico writes for the apps (edited by hand?): ${firstDifference(shared.read, wanted)}`;
}
