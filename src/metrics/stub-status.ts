/**
 * nginx's stub_status page, read at scrape time: `Active connections`, the `accepts handled
 * requests` counters and the `Reading Writing Waiting` split. The parse is pure; the read is one
 * plain HTTP GET on a connection of its own, bounded in time and size, that never throws.
 */
import http from 'node:http';

export interface StubStatus {
  active: number;
  accepted: number;
  handled: number;
  requests: number;
  reading: number;
  writing: number;
  waiting: number;
}

/** The most a stub_status answer may weigh (nginx's is about 100 bytes). */
const MAX_BYTES = 4096;

/**
 * The numbers of a stub_status answer, or undefined when `text` is not one. nginx writes:
 * `Active connections: 1 \nserver accepts handled requests\n 7 7 9 \nReading: 0 Writing: 1 Waiting: 0 \n`.
 */
export function parseStubStatus(text: string): StubStatus | undefined {
  // At most 20 digits each, as nginx's 64-bit counters have: a longer number would be Infinity (+Inf on /metrics).
  const match =
    /^Active connections:\s*(\d{1,20})\s*\nserver accepts handled requests\s*\n\s*(\d{1,20})\s+(\d{1,20})\s+(\d{1,20})\s*\nReading:\s*(\d{1,20})\s+Writing:\s*(\d{1,20})\s+Waiting:\s*(\d{1,20})\s*$/.exec(
      text,
    );
  if (match === null) return undefined;
  const [active, accepted, handled, requests, reading, writing, waiting] = match.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return { active, accepted, handled, requests, reading, writing, waiting };
}

/** Reads and parses stub_status at `url` (http only); undefined when nginx does not answer one within `timeoutMs`. */
export function readStubStatus(url: string, timeoutMs: number): Promise<StubStatus | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (value: StubStatus | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(value);
    };
    // A connection of its own, closed after the answer: no idle keep-alive connection of Portico's
    // sits among nginx's `Waiting` between scrapes.
    const req = http.get(url, { agent: false, headers: { connection: 'close', accept: 'text/plain' } }, (res) => {
      if (res.statusCode !== 200) {
        finish(undefined);
        return;
      }
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_BYTES) finish(undefined);
      });
      res.on('end', () => finish(parseStubStatus(body)));
      res.on('error', () => finish(undefined));
    });
    req.on('error', () => finish(undefined));
    const timer = setTimeout(() => finish(undefined), timeoutMs);
  });
}
