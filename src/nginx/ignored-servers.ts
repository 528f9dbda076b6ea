/**
 * Servers nginx ignores. Since nginx 1.25.5 a stream server may share its listener with others (to
 * be chosen by `server_name`), and two http servers may name the same host on one listener: either
 * way nginx keeps the first, ignores the other and only warns, `conflicting server name "NAME" on
 * ADDRESS:PORT, ignored`, at `nginx -t` and at the master's parse on reload. A Portico stream (it
 * has no server name: "") or an app server name in such a line is a change nginx does not serve as
 * asked, or one that takes a listener from a server someone else wrote: refused like an error. Pure.
 */

/** A server name a change puts on a listener's port: "" for a stream, which has none. */
export interface ServerClaim {
  port: number;
  name: string;
}

const IGNORED = /conflicting server name "([^"]*)" on (?:\S+):(\d+), ignored/;

/** The lines of `lines` (nginx's stderr or error log) saying that nginx ignores a server on one of `claims`. */
export function ignoredServers(lines: string[], claims: ServerClaim[]): string[] {
  if (claims.length === 0) return [];
  const claimed = new Set(claims.map((c) => `${c.port} ${c.name.toLowerCase()}`));
  return lines.filter((line) => {
    const match = IGNORED.exec(line);
    return match !== null && claimed.has(`${match[2]} ${(match[1] as string).toLowerCase()}`);
  });
}
