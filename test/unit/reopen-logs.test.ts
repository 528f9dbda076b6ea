/**
 * Nginx.reopenLogs under a flood: callers that come while a reopen runs share the next one, so every
 * caller's answer is of a USR1 sent after it asked, and 30 callers at once cost two signals.
 *
 * nginx itself cannot show how many signals it was sent (pending signals of one kind collapse into
 * one), so the master here is a stand-in process whose stderr is the error log, as nginx's is, and
 * the signals Portico sends are counted where they leave: process.kill.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Nginx } from '../../src/nginx/nginx.js';
import type { NginxProcess } from '../../src/nginx/process.js';
import { tempDir } from '../helpers/portico.js';

describe('Nginx.reopenLogs', () => {
  let dir: string;
  let master: ChildProcess;
  let nginx: Nginx;

  before(async () => {
    dir = await tempDir('reopen');
    const errorLog = `${dir}/error.log`;
    const fd = openSync(errorLog, 'a');
    // `sleep` ignores nothing: USR1 would end it, so it runs in a shell that traps it.
    master = spawn('sh', ['-c', 'trap "" USR1; sleep 60 & wait'], { stdio: ['ignore', 'ignore', fd] });
    closeSync(fd);
    const stub: NginxProcess = {
      mode: 'external',
      restarts: 0,
      adopted: true,
      masterPid: async () => master.pid,
      start: async () => undefined,
      stop: async () => undefined,
      release: () => undefined,
    };
    nginx = new Nginx({ bin: 'nginx', prefix: undefined, timeoutMs: 2000 }, stub, errorLog, pino({ level: 'silent' }));
  });
  after(async () => {
    master.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('30 callers at once share two signals: the one under way and the next', async () => {
    const sent: Array<string | number | undefined> = [];
    const kill = process.kill.bind(process);
    process.kill = ((pid: number, signal?: string | number) => {
      if (pid === master.pid) sent.push(signal);
      return kill(pid, signal);
    }) as typeof process.kill;
    try {
      const answers = await Promise.all(Array.from({ length: 30 }, () => nginx.reopenLogs()));
      assert.ok(answers.every((a) => a.confirmed && a.nginxPid === master.pid));
      assert.deepEqual(sent, ['SIGUSR1', 'SIGUSR1']);
      // Once those are over, the next caller sends its own.
      await nginx.reopenLogs();
      assert.equal(sent.length, 3);
    } finally {
      process.kill = kill;
    }
  });
});
