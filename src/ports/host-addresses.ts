/**
 * What this host is, for the check that no upstream leads back into Portico's own listeners
 * (`model/loopback.ts`): the addresses of its interfaces, and what a host name resolves to, asked the
 * way nginx asks when it loads a config (getaddrinfo: /etc/hosts, then DNS).
 */
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';

export interface HostProbe {
  /** The addresses of this host's interfaces now (they may change while Portico runs). */
  addresses(): string[];
  /** The addresses `name` resolves to; none when it does not resolve within the time allowed. */
  resolve(name: string): Promise<string[]>;
}

/** How long a name may take to resolve; past it the name counts as not resolving (nginx -t then judges it). */
const RESOLVE_TIMEOUT_MS = 3000;

export const systemHostProbe: HostProbe = {
  addresses: () =>
    Object.values(networkInterfaces())
      .flat()
      .flatMap((info) => (info === undefined ? [] : [info.address])),
  async resolve(name) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string[]>((resolve) => {
      timer = setTimeout(() => resolve([]), RESOLVE_TIMEOUT_MS);
    });
    const found = lookup(name, { all: true, verbatim: true }).then(
      (answers) => answers.map((a) => a.address),
      () => [],
    );
    try {
      return await Promise.race([found, timeout]);
    } finally {
      clearTimeout(timer);
    }
  },
};
