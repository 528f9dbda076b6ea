/**
 * AppTree: the directory of HTTP app files that nginx's `http` block includes, and the only code that
 * reads or writes it. Files are the truth, read through the same cache and staging as streams.
 *
 * `app_<name>.conf` files are Portico's apps and `portico_http.conf` is what they share; any other
 * `*.conf` file is foreign: reported, never overwritten or deleted.
 */
import type { App } from '../model/app.js';
import { APP_NAME_PATTERN } from '../model/app.js';
import { SHARED_HTTP_FILE, type SharedHttp } from '../model/http-shared.js';
import { readApp } from '../parse/app.js';
import { readSharedHttp } from '../parse/http-shared.js';
import type { AppFileOptions } from '../model/app-file.js';
import { ConfigDir } from './config-dir.js';

export interface UnreadableAppFile {
  name: string;
  app: string;
  reason: string;
}

/** What the live apps' directory holds, as of one read. */
export interface AppTree {
  apps: Map<string, App>;
  unreadable: UnreadableAppFile[];
  foreign: string[];
  /** Every `*.conf` file name in the directory, sorted: what nginx's include glob would read. */
  files: string[];
  /** The shared file (`portico_http.conf`) as read back, why it cannot be, or undefined when there is none. */
  shared: { read: SharedHttp } | { reason: string } | undefined;
}

type Parsed =
  | { kind: 'app'; app: App }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'shared'; shared: { read: SharedHttp } | { reason: string } }
  | { kind: 'foreign' };

const FILE_PATTERN = /^app_([a-z0-9-]{1,63})\.conf$/;

export class AppStore {
  /** The directory's files, staged and swapped by the apply pipeline. */
  readonly files: ConfigDir<Parsed>;

  constructor(
    readonly dir: string,
    readonly fileOptions: AppFileOptions,
  ) {
    this.files = new ConfigDir(dir, (name, text) => this.parse(name, text));
  }

  /** The file name of app `name`. */
  fileName(name: string): string {
    return `app_${name}.conf`;
  }

  open(): Promise<number | undefined> {
    return this.files.open();
  }

  async read(): Promise<AppTree> {
    const tree: AppTree = { apps: new Map(), unreadable: [], foreign: [], files: [], shared: undefined };
    for (const { name, parsed } of await this.files.read()) {
      tree.files.push(name);
      if (parsed.kind === 'app') tree.apps.set(parsed.app.name, parsed.app);
      else if (parsed.kind === 'unreadable') tree.unreadable.push({ name, app: FILE_PATTERN.exec(name)?.[1] ?? '', reason: parsed.reason });
      else if (parsed.kind === 'shared') tree.shared = parsed.shared;
      else tree.foreign.push(name);
    }
    return tree;
  }

  private parse(name: string, text: string): Parsed {
    if (name === SHARED_HTTP_FILE) {
      try {
        return { kind: 'shared', shared: { read: readSharedHttp(text) } };
      } catch (error) {
        return { kind: 'shared', shared: { reason: (error as Error).message } };
      }
    }
    const match = FILE_PATTERN.exec(name);
    if (!match || !APP_NAME_PATTERN.test(match[1] as string)) return { kind: 'foreign' };
    try {
      return { kind: 'app', app: readApp(text, this.fileOptions, match[1] as string) };
    } catch (error) {
      return { kind: 'unreadable', reason: (error as Error).message };
    }
  }
}
