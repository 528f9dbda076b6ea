/**
 * TCP load through a proxied port to an echo backend: a blaster (a few connections writing as fast
 * as the socket takes it, reading the echo back) and a churn of short connections (connect, one
 * byte there and back, close). Both bounded in time and count.
 */
import { connect, type Socket } from 'node:net';
import { LOOPBACK, roundTrip } from './net.js';

export interface BlastResult {
  /** Bytes that came back through the proxy (each crossed it twice: out and echoed). */
  bytes: number;
  ms: number;
}

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/**
 * Opens `connections` to `port`, writes 64 KiB chunks on each for `durationMs` (pausing whenever a
 * socket's buffer is full), counts the bytes echoed back until then, and closes them all.
 */
export async function blast(port: number, connections: number, durationMs: number): Promise<BlastResult> {
  const sockets: Socket[] = [];
  let bytes = 0;
  let running = true;
  const opened = Array.from(
    { length: connections },
    () =>
      new Promise<void>((resolve, reject) => {
        const socket = connect({ host: LOOPBACK, port });
        sockets.push(socket);
        socket.setNoDelay(true);
        const pump = (): void => {
          while (running && socket.write(CHUNK)) {
            // keep writing until the kernel's buffer is full
          }
        };
        socket.on('drain', pump);
        socket.on('data', (chunk: Buffer) => {
          if (running) bytes += chunk.length;
        });
        socket.once('connect', () => resolve());
        socket.once('error', (error) => (running ? reject(error) : undefined));
        socket.once('connect', pump);
      }),
  );
  try {
    await Promise.all(opened);
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    running = false;
    return { bytes, ms: performance.now() - start };
  } finally {
    running = false;
    for (const socket of sockets) socket.destroy();
  }
}

export interface ChurnResult {
  connections: number;
  failed: number;
  ms: number;
}

/**
 * `total` short connections through `port`, `concurrency` at a time: each connects, sends a byte,
 * waits for the echo and closes. Stops early at `maxMs`.
 */
export async function churn(port: number, total: number, concurrency: number, maxMs: number): Promise<ChurnResult> {
  let started = 0;
  let done = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + maxMs;
  const worker = async (): Promise<void> => {
    while (started < total && performance.now() < deadline) {
      started += 1;
      if (await roundTrip(port, 5000)) done += 1;
      else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { connections: done, failed, ms: performance.now() - start };
}
