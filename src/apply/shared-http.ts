/**
 * The file every HTTP app shares, as the apply pipeline decides it: what it must say for a set of
 * apps and the settings, rendered and read back like every other file (DESIGN invariant 3), and,
 * for /v1/status, whether the file on disk says it (a hand edit, a file missing or left over).
 */
import { isDeepStrictEqual } from 'node:util';
import { PorticoError } from '../errors.js';
import { CACHE_CREDENTIALS_VARIABLE, type App } from '../model/app.js';
import { ALL_SHARED_HTTP_USES, SHARED_HTTP_FILE, sharedHttpUses, type SharedHttp, type SharedHttpUses } from '../model/http-shared.js';
import { readSharedHttp } from '../parse/http-shared.js';
import { STICKY } from '../model/app-file.js';
import { sharedHttpOf, sharedServerNamesHash, type SharedHttpRenderer, type SharedHttpView } from '../render/http-shared.js';
import type { Settings } from '../settings.js';
import type { AppTree } from '../store/apps.js';

export type SharedHttpSettings = Pick<Settings, 'httpPort' | 'httpsPort' | 'stateDir' | 'mode'> & Partial<Pick<Settings, 'acmeChallengeDir' | 'listenAddress'>>;

/**
 * The parts of the shared file that must be written for `apps`: what their files refer to, or every
 * part while the directory holds a `*.conf` file Portico cannot read (an app file edited by hand, a
 * foreign file). nginx includes those too, and they may use any part, as every file could while the
 * shared file always held them all; what Portico cannot read it cannot know unused.
 */
export function sharedHttpNeeds(apps: Iterable<App>, unknownFiles: boolean): SharedHttpUses {
  return unknownFiles ? { ...ALL_SHARED_HTTP_USES } : sharedHttpUses(apps);
}

/** What the shared file must say for `apps` (at least one) under `settings`, with the parts `uses` (by default, what the apps use). */
export function sharedHttpView(apps: App[], settings: SharedHttpSettings, uses: SharedHttpUses = sharedHttpUses(apps)): SharedHttpView {
  return {
    listenAddress: settings.listenAddress,
    httpPort: settings.httpPort,
    httpsPort: settings.httpsPort,
    httpDefault: !apps.some((app) => app.default === true),
    upgrade: uses.upgrade,
    sticky: uses.sticky ? STICKY : undefined,
    cacheCredentials: uses.cacheCredentials ? CACHE_CREDENTIALS_VARIABLE : undefined,
    cache: uses.cache ? { dir: `${settings.stateDir}/cache`, keysMb: 10, maxMb: 1024 } : undefined,
    serverNamesHash: sharedServerNamesHash(apps.flatMap((app) => app.serverNames), settings.mode),
    acmeChallengeDir: settings.acmeChallengeDir,
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

/** The parts the shared file writes only while an app uses them (or while a file Portico cannot read is there). */
const ON_DEMAND = new Set<keyof SharedHttp>(['upgrade', 'sticky', 'cacheCredentials', 'cache']);

/**
 * The first field of `found` that is not what Portico renders (`wanted`), or undefined. A superset is
 * accepted: a map or the cache zone no app uses may be there, exactly as Portico writes it (`full`).
 * A file written before each was written only on demand holds them all; nginx then defines what no
 * file uses, which costs only its load time, and the next change of an app writes the file without
 * them. One changed by hand, or one an app uses and the file lacks, is still a difference. So is a
 * file written before the catch-all answered HTTP-01 challenges (format 2): it is Portico's own, and
 * the next change of an app writes the challenge location; one that serves another folder is not.
 */
function firstDifference(found: SharedHttp, wanted: SharedHttp, full: SharedHttp): keyof SharedHttp | undefined {
  return (Object.keys(wanted) as Array<keyof SharedHttp>).find((key) => {
    if (isDeepStrictEqual(found[key], wanted[key])) return false;
    if (key === 'acmeChallengeDir' && found[key] === undefined) return false;
    const unused = wanted[key] === undefined || wanted[key] === false;
    return !(ON_DEMAND.has(key) && unused && isDeepStrictEqual(found[key], full[key]));
  });
}

/**
 * Why the shared file on disk is not the one Portico would write for the apps as they are, or
 * undefined when it is (or says more, as `firstDifference` accepts). The next change of any app
 * rewrites it (or removes it, with no app left).
 */
export function sharedHttpProblem(tree: AppTree, settings: SharedHttpSettings): string | undefined {
  const { shared } = tree;
  if (tree.apps.size === 0) return shared === undefined ? undefined : 'it exists although there is no app (Portico removes it with the last app)';
  if (shared === undefined) return 'it is missing although there are apps';
  if ('reason' in shared) return `it cannot be read as Portico writes it (edited by hand?): ${shared.reason}`;
  const apps = [...tree.apps.values()];
  const wanted = sharedHttpOf(sharedHttpView(apps, settings, sharedHttpNeeds(apps, tree.unreadable.length + tree.foreign.length > 0)));
  const key = firstDifference(shared.read, wanted, sharedHttpOf(sharedHttpView(apps, settings, ALL_SHARED_HTTP_USES)));
  if (key === undefined) return undefined;
  return `it is not what Portico writes for the apps (edited by hand?): ${key} is ${JSON.stringify(shared.read[key]) ?? 'absent'} where Portico renders ${JSON.stringify(wanted[key]) ?? 'none'}`;
}
