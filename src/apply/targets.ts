/**
 * The check that no upstream leads back into this host's own listeners (`model/loopback.ts`), with
 * the facts it needs gathered here: this host's addresses, and the host names that matter resolved
 * as nginx would resolve them. Only a name whose port is one of Portico's own listeners or a
 * stream's port is resolved, so an ordinary backend costs no lookup.
 *
 * It runs inside the single writer, against the streams as the batch leaves them: two changes that
 * would close a ring between them cannot both pass. A name whose DNS answer changes after the check
 * is beyond it (nginx resolves again when it loads the config).
 */
import type { App } from '../model/app.js';
import {
  appLoopIssue,
  appUpstreamRefs,
  namesAt,
  streamLoopIssue,
  streamUpstreamRefs,
  suspectRefs,
  type HostFacts,
  type LoopIssue,
  type OwnListeners,
} from '../model/loopback.js';
import { isBracketableIPv6, isIPv4 } from '../model/net.js';
import type { Stream } from '../model/stream.js';
import type { HostProbe } from '../ports/host-addresses.js';

export type { LoopIssue };

export class TargetCheck {
  constructor(
    private readonly probe: HostProbe,
    private readonly own: OwnListeners,
    /** BIND_ADDRESS: the API's address counts as this host's even if no interface lists it yet. */
    private readonly bindAddress: string,
  ) {}

  /** Why an upstream of `stream` leads back into this host (with `others`, the other streams), or undefined. */
  async stream(stream: Stream, others: ReadonlyMap<number, Stream>): Promise<LoopIssue | undefined> {
    const suspects = suspectRefs(stream, others, this.own);
    // Most streams lead nowhere near this host's listeners: nothing to resolve, nothing to search.
    if (suspects.length === 0) return undefined;
    // A ring may pass through any stream: the names of every stream that points at a stream's port.
    const ports = new Set([this.own.apiPort, stream.port, ...others.keys()]);
    const names = namesAt([...suspects, ...[...others.values()].flatMap((s) => streamUpstreamRefs(s))], ports);
    return streamLoopIssue(stream, others, this.own, await this.facts(names));
  }

  /** Why an upstream of `app` leads back into this host, or undefined. */
  async app(app: App): Promise<LoopIssue | undefined> {
    const ports = new Set([this.own.apiPort, ...this.own.appPorts.map((p) => p.port)]);
    return appLoopIssue(app, this.own, await this.facts(namesAt(appUpstreamRefs(app), ports)));
  }

  private async facts(names: string[]): Promise<HostFacts> {
    const resolved = new Map(await Promise.all(names.map(async (name) => [name.toLowerCase(), await this.probe.resolve(name)] as const)));
    const bind = isIPv4(this.bindAddress) || isBracketableIPv6(this.bindAddress) ? [this.bindAddress] : [];
    return { hostAddresses: [...this.probe.addresses(), ...bind], resolved: (name) => resolved.get(name.toLowerCase()) };
  }
}
