/**
 * One Portico per state directory: a lock file holding the owner's pid. A lock left by a process
 * that is gone (a crash, a kill -9; a zombie counts as gone) is taken over; one held by a live process stops start-up.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { PorticoError } from '../errors.js';
import { isAlive } from '../proc.js';


export interface Lock {
  release(): Promise<void>;
}

/** Takes the lock at `file` for this process; throws Conflict if another live Portico holds it. */
export async function acquireLock(file: string): Promise<Lock> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return { release: () => rm(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && (await isAlive(holder))) {
      throw new PorticoError('Conflict', `another Portico (pid ${holder}) owns this state directory (lock ${file})`);
    }
    await rm(file, { force: true });
  }
  throw new PorticoError('Conflict', `cannot take the lock ${file}`);
}
