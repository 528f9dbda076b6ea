/**
 * What the routes are handed: the parts of a running Portico they call into.
 */
import type { Applier } from '../apply/applier.js';
import type { Nginx } from '../nginx/nginx.js';
import type { BoundProbe } from '../ports/allocate.js';
import type { Settings } from '../settings.js';
import type { AppStore } from '../store/apps.js';
import type { CertStore } from '../store/certs.js';
import type { ConfigTree } from '../store/tree.js';

export interface Portico {
  settings: Settings;
  tree: ConfigTree;
  apps: AppStore;
  certs: CertStore;
  applier: Applier;
  nginx: Nginx;
  isBound: BoundProbe;
  version: string;
  startedAt: Date;
}
