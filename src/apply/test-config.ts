/**
 * The main configs `nginx -t` runs against: the staged tree in place of the live one, or a single
 * new file alone (to name the culprit of a failed batch). Managed mode renders them from the same
 * template as the live main config; external mode copies the operator's nginx.conf with the stream
 * directory's include retargeted.
 */
import path from 'node:path';
import { PorticoError } from '../errors.js';
import { retargetInclude } from '../render/external.js';
import { STREAM_MAP_HASH_BUCKET_SIZE, isolatedMain, keepaliveMinTimeoutFor, sizeWorkers, trafficLogs, type MainRenderer, type MainView } from '../render/main.js';
import { NGINX_STATUS_PATH, type Settings } from '../settings.js';
import type { ConfigTree } from '../store/tree.js';
import { listenersFor } from '../nginx/limits.js';
import { rangeSize } from '../ports/allocate.js';

/** The files a test config includes in place of a live directory; a directory left out is read live. */
export interface TreeIncludes {
  streams?: string[];
  http?: string[];
}

export class TestConfigs {
  constructor(
    private readonly settings: Settings,
    private readonly tree: ConfigTree,
    private readonly renderMain: MainRenderer,
    /** The version of the nginx binary (`nginx -V`): what the main config may use. */
    private readonly nginxVersion: string,
    /** `quic_bpf on` in managed mode's main config: QUIC_BPF as decided at start-up (apply/quic-bpf.ts). */
    private readonly quicBpf = false,
    /** The stub_status listener's port (NGINX_STATUS_PORT, when this nginx has the module), or undefined. */
    private readonly statusPort: number | undefined = undefined,
  ) {}

  /** The view of managed mode's main config. */
  mainView(includes: TreeIncludes = {}): MainView {
    const s = this.settings;
    return {
      pidFile: s.pidFile,
      errorLog: s.errorLog ?? `${s.stateDir}/logs/error.log`,
      accessLog: `${s.stateDir}/logs/access.log`,
      tempDir: `${s.stateDir}/temp`,
      mimeTypes: `${s.stateDir}/mime.types`,
      streamMapHashBucketSize: STREAM_MAP_HASH_BUCKET_SIZE,
      streamIncludes: includes.streams ?? [`${s.streamDir}/*.conf`],
      httpIncludes: includes.http ?? [`${s.httpDir}/*.conf`],
      workerShutdownTimeout: s.workerShutdownTimeout,
      keepaliveMinTimeout: keepaliveMinTimeoutFor(this.nginxVersion),
      quicBpf: this.quicBpf,
      statusPort: this.statusPort,
      statusPath: NGINX_STATUS_PATH,
      traffic: s.trafficMetrics ? trafficLogs(s.stateDir) : undefined,
      // A tcp+udp stream opens two listening sockets on its port, and the apps share three more.
      ...sizeWorkers(listenersFor(rangeSize(s.portRange))),
    };
  }

  /** The live main config of managed mode. */
  liveMain(): string {
    return this.renderMain(this.mainView());
  }

  /** Writes a main config that reads `includes` instead of the live directories; answers its path. */
  async forTree(includes: TreeIncludes): Promise<string> {
    if (this.settings.mode === 'managed') {
      const view = this.mainView(includes);
      view.errorLog = `${this.settings.stateDir}/logs/test-error.log`;
      return this.tree.writeScratch('test-tree.conf', this.renderMain(view));
    }
    const conf = this.settings.nginxConf;
    let text = await this.tree.readOther(conf);
    for (const [dir, files] of [
      [this.settings.streamDir, includes.streams],
      [this.settings.httpDir, includes.http],
    ] as const) {
      if (files === undefined) continue;
      const retargeted = retargetInclude(text, path.dirname(conf), dir, files);
      if (retargeted.replaced === 0) {
        throw new PorticoError('NginxUnavailable', `${conf} has no "include ${dir}/*.conf;": nginx would not read Portico's files there`);
      }
      text = retargeted.text;
    }
    // Beside the operator's config, so that its relative includes resolve as they do for nginx.
    return this.tree.writeBeside(conf, '.portico-test.conf', text);
  }

  /** Writes `text` (stream servers Portico rendered) to a file and a main config holding it alone; answers the config's path. */
  async forStreamText(text: string): Promise<string> {
    return this.forFiles([await this.tree.writeScratch('test-streams.conf', text)]);
  }

  /** Writes a main config holding only the stream `files`, or the app `files` with `shared`; answers its path. */
  async forFiles(files: string[], context: 'stream' | 'http' = 'stream', shared: string[] = []): Promise<string> {
    const s = this.settings;
    const text = isolatedMain(context, [...shared, ...files], {
      errorLog: `${s.stateDir}/logs/test-error.log`,
      pidFile: `${s.stateDir}/scratch/isolated.pid`,
      workerConnections: this.mainView().workerConnections,
    });
    return this.tree.writeScratch('test-file.conf', text);
  }
}
