/**
 * HTTP for tests that send traffic through the nginx Portico manages: backends that say who they are
 * and echo what they received, a client that sets Host, the source address and a cookie jar, and a
 * minimal RFC 6455 WebSocket client and server (one masked text frame each way is all we need, and
 * we add no npm dependency). Every address is on 127.0.0.0/8; every wait is bounded; every close()
 * destroys the open sockets and resolves once the server is closed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const LOOPBACK = '127.0.0.1';

/** What a backend received, as it answers it (JSON). */
export interface Seen {
  backend: string;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Backend {
  name: string;
  port: number;
  /** HTTP requests answered (WebSocket upgrades included). */
  requests(): number;
  /** TCP connections accepted. */
  connections(): number;
  /** Every request received, in order. */
  seen: Seen[];
  close(): Promise<void>;
}

/**
 * A node:http server on 127.0.0.1:0 that answers every request 200 with the JSON of what it received
 * (`Seen`), and accepts a WebSocket upgrade, echoing each text message as `<name>:<text>`.
 */
export async function startBackend(name: string): Promise<Backend> {
  let connections = 0;
  const seen: Seen[] = [];
  const sockets = new Set<Duplex>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const entry: Seen = { backend: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(entry);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(entry));
    });
  });
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    seen.push({ backend: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' });
    sockets.add(socket);
    acceptWebSocket(req, socket, head, (text) => `${name}:${text}`);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, LOOPBACK, () => resolve()));
  return {
    name,
    port: (server.address() as AddressInfo).port,
    requests: () => seen.length,
    connections: () => connections,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Cookies a client keeps between requests: name → value, from Set-Cookie, sent back as Cookie. */
export class CookieJar {
  readonly cookies = new Map<string, string>();

  store(setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const [pair = ''] = line.split(';');
      const at = pair.indexOf('=');
      if (at > 0) this.cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
  }

  header(): string | undefined {
    return this.cookies.size === 0 ? undefined : [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

export interface SendOptions {
  port: number;
  /** The Host header. */
  host: string;
  path?: string;
  method?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** The client's source address (any of 127.0.0.0/8). */
  localAddress?: string;
  jar?: CookieJar;
  timeoutMs?: number;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection, with the Host header given. The
 * jar, if any, sends its cookies and keeps the ones the answer sets. Rejects after `timeoutMs`.
 */
export function send(options: SendOptions): Promise<Answer> {
  const { port, host, path = '/', method = 'GET', body, localAddress, jar, timeoutMs = 5000 } = options;
  const cookie = jar?.header();
  const headers: Record<string, string | number> = {
    host,
    ...(cookie !== undefined && { cookie }),
    ...(body !== undefined && { 'content-length': Buffer.byteLength(body) }),
    ...options.headers,
  };
  return new Promise<Answer>((resolve, reject) => {
    const req = request({ host: LOOPBACK, port, path, method, headers, agent: false, ...(localAddress !== undefined && { localAddress }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        clearTimeout(timer);
        jar?.store(res.headers['set-cookie']);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`${method} http://${host}${path} via ${port}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(body);
  });
}

/** The backend's JSON answer (`Seen`) of a request, or an error naming the status it got instead. */
export async function sendToBackend(options: SendOptions): Promise<Seen & { answer: Answer }> {
  const answer = await send(options);
  if (answer.status !== 200) throw new Error(`${options.method ?? 'GET'} ${options.host}${options.path ?? '/'}: ${answer.status} ${answer.body.slice(0, 200)}`);
  return { ...(JSON.parse(answer.body) as Seen), answer };
}

// --- WebSocket (RFC 6455), the least of it: handshake, unfragmented frames up to 64 KiB, close ---

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;

export function webSocketAccept(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** One frame, FIN set; masked with a random key when `mask` (a client must mask, a server must not). */
export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  if (payload.length > 0xffff) throw new Error('frames over 64 KiB are not needed here');
  const length = payload.length < 126 ? Buffer.from([payload.length]) : Buffer.from([126, payload.length >> 8, payload.length & 0xff]);
  length[0] = (length[0] as number) | (mask ? 0x80 : 0);
  if (!mask) return Buffer.concat([Buffer.from([0x80 | opcode]), length, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ (key[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x80 | opcode]), length, key, masked]);
}

export interface Frame {
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** The complete frames at the start of `buffer` (unmasked), and the bytes left over. */
export function decodeFrames(buffer: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let at = 0;
  for (;;) {
    if (buffer.length - at < 2) break;
    const opcode = (buffer[at] as number) & 0x0f;
    const masked = ((buffer[at + 1] as number) & 0x80) !== 0;
    let length = (buffer[at + 1] as number) & 0x7f;
    let header = 2;
    if (length === 126) {
      if (buffer.length - at < 4) break;
      length = buffer.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) throw new Error('frames over 64 KiB are not needed here');
    const keyAt = at + header;
    const dataAt = keyAt + (masked ? 4 : 0);
    if (buffer.length < dataAt + length) break;
    const data = Buffer.from(buffer.subarray(dataAt, dataAt + length));
    if (masked) for (let i = 0; i < data.length; i += 1) data[i] = (data[i] as number) ^ (buffer[keyAt + (i % 4)] as number);
    frames.push({ opcode, masked, payload: data });
    at = dataAt + length;
  }
  return { frames, rest: buffer.subarray(at) };
}

/**
 * Completes a server-side WebSocket handshake on an upgraded socket and answers each masked text
 * frame with `reply(text)`; an unmasked client frame (a protocol error, RFC 6455 5.1) closes it.
 */
export function acceptWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, reply: (text: string) => string): void {
  const key = req.headers['sec-websocket-key'];
  socket.on('error', () => socket.destroy());
  if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    return;
  }
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${webSocketAccept(key)}\r\n\r\n`);
  let pending = Buffer.from(head);
  const onData = (chunk: Buffer): void => {
    const { frames, rest } = decodeFrames(Buffer.concat([pending, chunk]));
    pending = Buffer.from(rest);
    for (const frame of frames) {
      if (!frame.masked || frame.opcode === OPCODE_CLOSE) {
        socket.end(encodeFrame(OPCODE_CLOSE, Buffer.alloc(0), false));
        return;
      }
      if (frame.opcode === OPCODE_TEXT) socket.write(encodeFrame(OPCODE_TEXT, Buffer.from(reply(frame.payload.toString())), false));
    }
  };
  socket.on('data', onData);
  if (pending.length > 0) onData(Buffer.alloc(0));
}

export interface WebSocketClient {
  /** The 101 answer's headers. */
  headers: IncomingHttpHeaders;
  /** Sends one masked text frame and answers the text of the next frame (which must be an unmasked text frame). */
  exchange(text: string, timeoutMs?: number): Promise<string>;
  close(): void;
}

/**
 * Opens a WebSocket to 127.0.0.1:`port` with the Host given: rejects unless the answer is 101 with
 * the Sec-WebSocket-Accept that the key we sent calls for (RFC 6455 4.1).
 */
export function openWebSocket(options: { port: number; host: string; path?: string; timeoutMs?: number }): Promise<WebSocketClient> {
  const { port, host, path = '/', timeoutMs = 5000 } = options;
  const key = randomBytes(16).toString('base64');
  return new Promise<WebSocketClient>((resolve, reject) => {
    const req = request({
      host: LOOPBACK,
      port,
      path,
      agent: false,
      headers: { host, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
    });
    const timer = setTimeout(() => req.destroy(new Error(`no WebSocket handshake from ${host} via ${port} within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      res.resume();
      reject(new Error(`WebSocket handshake answered ${res.statusCode}, not 101`));
    });
    req.on('upgrade', (res, socket, head) => {
      clearTimeout(timer);
      if (res.headers['sec-websocket-accept'] !== webSocketAccept(key)) {
        socket.destroy();
        reject(new Error(`Sec-WebSocket-Accept ${res.headers['sec-websocket-accept']} does not answer our key`));
        return;
      }
      socket.on('error', () => socket.destroy());
      let pending = Buffer.from(head);
      const frames: Frame[] = [];
      let wake: (() => void) | undefined;
      socket.on('data', (chunk: Buffer) => {
        const decoded = decodeFrames(Buffer.concat([pending, chunk]));
        pending = Buffer.from(decoded.rest);
        frames.push(...decoded.frames);
        wake?.();
      });
      socket.on('close', () => wake?.());
      const nextFrame = (ms: number): Promise<Frame> =>
        new Promise<Frame>((done, fail) => {
          const check = (): void => {
            const frame = frames.shift();
            if (frame !== undefined) {
              clearTimeout(t);
              wake = undefined;
              done(frame);
            } else if (socket.destroyed) {
              clearTimeout(t);
              fail(new Error('the WebSocket closed before a frame arrived'));
            }
          };
          const t = setTimeout(() => fail(new Error(`no WebSocket frame within ${ms} ms`)), ms);
          wake = check;
          check();
        });
      resolve({
        headers: res.headers,
        async exchange(text, ms = 3000) {
          socket.write(encodeFrame(OPCODE_TEXT, Buffer.from(text), true));
          const frame = await nextFrame(ms);
          if (frame.opcode !== OPCODE_TEXT || frame.masked) throw new Error(`expected an unmasked text frame, got opcode ${frame.opcode}, masked ${frame.masked}`);
          return frame.payload.toString();
        },
        close() {
          socket.destroy();
        },
      });
    });
    req.end();
  });
}
