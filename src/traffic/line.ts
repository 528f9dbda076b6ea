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

/**
 * One anchored pattern per format (one match per line, no split): the port 1-65535 without a leading
 * zero (range checked after), TCP or UDP, byte counts of up to 15 digits (exact in a double), nginx's
 * msec times (seconds with three decimals), a status of 100-599, and a server name as Portico
 * validates them (letters, digits, "-", ".", a leading "*." wildcard), "-" or nothing.
 */
const STREAM_LINE = /^ps1 ([1-9]\d{0,4}) (TCP|UDP) (0|[1-9]\d{0,14}) (0|[1-9]\d{0,14}) (\d{1,9}\.\d{3})$/;
const HTTP_LINE = /^ph1 ((?:\*\.)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}|-|) ([1-5]\d\d) (\d{1,9}\.\d{3})$/;

/** Reads one line (without its newline); undefined when it is not exactly one of Portico's formats. */
export function parseTrafficLine(line: string): TrafficLine | undefined {
  if (line.length > MAX_LINE_BYTES) return undefined;
  if (line.startsWith('ps1 ')) {
    const m = STREAM_LINE.exec(line);
    if (m === null) return undefined;
    const port = Number(m[1]);
    if (port > 65535) return undefined;
    return { kind: 'stream', port, protocol: m[2] === 'TCP' ? 'tcp' : 'udp', received: Number(m[3]), sent: Number(m[4]), seconds: Number(m[5]) };
  }
  if (line.startsWith('ph1 ')) {
    const m = HTTP_LINE.exec(line);
    if (m === null) return undefined;
    // nginx writes "-" for a variable without a value; an empty one is written as nothing.
    const name = m[1] === '-' ? '' : (m[1] as string);
    return { kind: 'http', serverName: name, status: Number(m[2]), seconds: Number(m[3]) };
  }
  return undefined;
}
