/**
 * A process of its own that contends for the state lock, for test/unit/lock.test.ts. Once loaded it
 * says `ready` over IPC and waits for the parent's `{firstAt}` (a time on the shared clock), so that
 * every contender starts each round at the same instant however long each took to start. In each of
 * ROUNDS rounds it tries to take the lock and prints `<round> took` or `<round> refused: <message>`.
 * A winner holds the lock until late in the round and then leaves it as a crash would: naming a dead
 * process (DEAD_PID), replaced atomically, so that the next round starts with a stale lock again.
 *
 * argv: LOCK_FILE ROUND_MS ROUNDS DEAD_PID
 */
import { rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireLock } from '../../src/store/lock.js';

const [file = '', roundMs = '0', rounds = '0', deadPid = '0'] = process.argv.slice(2);
const firstAt = await new Promise<number>((resolve) => {
  process.once('message', (message) => resolve((message as { firstAt: number }).firstAt));
  process.send?.('ready');
});
for (let round = 0; round < Number(rounds); round += 1) {
  const start = firstAt + round * Number(roundMs);
  await sleep(Math.max(0, start - Date.now()));
  try {
    await acquireLock(file);
    process.stdout.write(`${round} took\n`);
    await sleep(Math.max(0, start + Number(roundMs) * 0.7 - Date.now()));
    const crashed = `${file}.crashed-${process.pid}`;
    await writeFile(crashed, `${deadPid} 1\n`);
    await rename(crashed, file);
  } catch (error) {
    process.stdout.write(`${round} refused: ${(error as Error).message}\n`);
  }
}
process.disconnect?.();
