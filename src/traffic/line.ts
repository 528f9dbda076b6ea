/**
 * The lines nginx writes for the per-resource traffic metrics, and their parser. The formats are
 * Portico's own (rendered into the main config's `stream {}` and `http {}` blocks): a version tag
 * and only fields nginx computes itself or takes from Portico's config, never one a client sends
 * (no Host header, no URI). Every field is still validated: a line that is not exactly Portico's
 * format is refused, never half read. Pure.
 */

/** The `log_format` name (in `stream {}` and in `http {}`) and the tags lines start with (a new field means a new tag). */
export const TRAFFIC_FORMAT_NAME = 'portico_traffic';
export const STREAM_TAG = 'ps1';
export const HTTP_TAG = 'ph1';

/**
 * The stream format: the listening port, TCP or UDP, bytes from and to the client, the session's
 * time. All of them nginx's own numbers.
 */
export const STREAM_LOG_FORMAT = `${STREAM_TAG} $server_port $protocol $bytes_received $bytes_sent $session_time`;

/**
 * The HTTP format: the first name of the server block that took the request (from Portico's app
 * file, not the client's Host: a Host that matches no app lands in the default server, whose name
 * is ""), the status and the request time. HTTP/1.1, HTTP/2 and HTTP/3 alike.
 */
export const HTTP_LOG_FORMAT = `${HTTP_TAG} $server_name $status $request_time`;

/** A line longer than this is not Portico's (the longest is about 300 bytes): dropped whole. */
export const MAX_LINE_BYTES = 1024;

export interface StreamSession {
  kind: 'stream';
  port: number;
  protocol: 'tcp' | 'udp';
  /** Bytes nginx received from the client ($bytes_received). */
  received: number;
  /** Bytes nginx sent to the client ($bytes_sent). */
  sent: number;
  seconds: number;
}

export interface HttpRequest {
  kind: 'http';
  /** The server block's first server_name; "" for the default server (no app). */
  serverName: string;
  status: number;
  seconds: number;
}

export type TrafficLine = StreamSession | HttpRequest;

const PORT = /^[1-9]\d{0,4}$/;
/** nginx's off_t counters; 15 digits stay exact in a double. */
const COUNT = /^(?:0|[1-9]\d{0,14})$/;
/** nginx's msec times: seconds with three decimals. */
const SECONDS = /^\d{1,9}\.\d{3}$/;
const STATUS = /^[1-5]\d\d$/;
/** A server name as Portico validates them (letters, digits, "-", ".", a leading "*." wildcard), or "". */
const SERVER_NAME = /^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})?$/;

/** Reads one line (without its newline); undefined when it is not exactly one of Portico's formats. */
export function parseTrafficLine(line: string): TrafficLine | undefined {
  if (line.length > MAX_LINE_BYTES) return undefined;
  const fields = line.split(' ');
  if (fields[0] === STREAM_TAG) {
    if (fields.length !== 6) return undefined;
    const [, port, protocol, received, sent, seconds] = fields as [string, string, string, string, string, string];
    if (!PORT.test(port) || Number(port) > 65535) return undefined;
    if (protocol !== 'TCP' && protocol !== 'UDP') return undefined;
    if (!COUNT.test(received) || !COUNT.test(sent) || !SECONDS.test(seconds)) return undefined;
    return {
      kind: 'stream',
      port: Number(port),
      protocol: protocol === 'TCP' ? 'tcp' : 'udp',
      received: Number(received),
      sent: Number(sent),
      seconds: Number(seconds),
    };
  }
  if (fields[0] === HTTP_TAG) {
    if (fields.length !== 4) return undefined;
    const [, serverName, status, seconds] = fields as [string, string, string, string];
    // nginx writes "-" for a variable without a value; an empty one is written as nothing.
    const name = serverName === '-' ? '' : serverName;
    if (name !== '' && !SERVER_NAME.test(name)) return undefined;
    if (!STATUS.test(status) || !SECONDS.test(seconds)) return undefined;
    return { kind: 'http', serverName: name, status: Number(status), seconds: Number(seconds) };
  }
  return undefined;
}
