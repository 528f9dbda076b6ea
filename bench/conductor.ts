/**
 * What stream-conductor does per request (issue 13, goal 1), which neither tests nor verifies: write
 * the stream file, run `nginx -s reload` (the binary as a process, against the operator's config),
 * answer. The client then polls the port, as a script would, until it echoes. Run on the operator's
 * nginx that Portico's external mode shares, with the same tree, so the two are side by side.
 *
 * One file, rewritten with a new port each time (as the floor's change file is), named outside
 * Portico's STREAM_PREFIX so Portico leaves it alone: the tree keeps the level's size.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { waitUntilServing } from './net.js';

const run = promisify(execFile);

export interface ConductorSample {
  /** From the create until `nginx -s reload` exited (stream-conductor's answer). */
  answeredMs: number;
  /** From the create until the port echoed a byte, polled from the answer on. */
  servingMs: number;
}

export interface StreamConductor {
  change(port: number): Promise<ConductorSample>;
}

/** `nginx -s reload` parses the whole config before it signals the master: seconds on a busy machine at scale. */
const RELOAD_TIMEOUT_MS = 60_000;
const SERVE_TIMEOUT_MS = 15_000;
export const CONDUCTOR_FILE = 'stream-conductor-bench.conf';

export function streamConductor(options: {
  nginxBin: string;
  /** The operator's nginx: its prefix folder, main config and stream directory. */
  root: string;
  conf: string;
  streamDir: string;
  streamText: (port: number) => string;
}): StreamConductor {
  const file = `${options.streamDir}/${CONDUCTOR_FILE}`;
  return {
    async change(port) {
      const start = performance.now();
      await writeFile(file, options.streamText(port));
      await run(options.nginxBin, ['-p', `${options.root}/`, '-c', options.conf, '-s', 'reload'], { timeout: RELOAD_TIMEOUT_MS });
      const answered = performance.now();
      const served = await waitUntilServing(port, SERVE_TIMEOUT_MS);
      return { answeredMs: answered - start, servingMs: served - start };
    },
  };
}
