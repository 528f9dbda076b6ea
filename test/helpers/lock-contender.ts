/**
 * A process of its own that contends for the state lock, for test/unit/lock.test.ts. Once loaded it
 * says `ready` over IPC; then, round after round, the parent sends `{round, at}` (a time on the
 * shared clock), so that every contender tries at the same instant however long each took to start.
 * It tries to take the lock, prints `<round> took` or `<round> refused: <message>` and reports the
 * same over IPC. A winner holds the lock until the parent, having heard every contender of the round,
 * sends `{crash: round}`: it then leaves the lock as a crash would, naming a dead process (DEAD_PID),
 * replaced atomically, so that the next round starts with a stale lock again, and says `crashed`.
 * No contender's lateness (a loaded machine) can make it meet the next round's stale lock early.
 *
 * argv: LOCK_FILE DEAD_PID
 */
import { rename, writeFile } from 'node:fs/promises';
import { acquireLock } from '../../src/store/lock.js';

const [file = '', deadPid = '0'] = process.argv.slice(2);
type Order = { round: number; at: number } | { crash: number } | { done: true };

const orders: Order[] = [];
let wake: (() => void) | undefined;
process.on('message', (message) => {
  orders.push(message as Order);
  wake?.();
});
const next = async (): Promise<Order> => {
  while (orders.length === 0) await new Promise<void>((resolve) => (wake = resolve));
  return orders.shift() as Order;
};
process.send?.('ready');
for (;;) {
  const order = await next();
  if ('done' in order) break;
  if ('crash' in order) {
    const crashed = `${file}.crashed-${process.pid}`;
    await writeFile(crashed, `${deadPid} 1\n`);
    await rename(crashed, file);
    process.send?.({ crashed: order.crash });
    continue;
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, order.at - Date.now())));
  let line: string;
  try {
    await acquireLock(file);
    line = `${order.round} took`;
  } catch (error) {
    line = `${order.round} refused: ${(error as Error).message}`;
  }
  process.stdout.write(`${line}\n`);
  process.send?.({ round: order.round, took: line.endsWith(' took') });
}
process.disconnect?.();
