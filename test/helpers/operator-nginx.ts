/**
 * An nginx run the way an operator (or a sidecar's neighbour) runs it, for external mode's tests:
 * daemonized under a temp root, its own nginx.conf including a stream directory Portico shares, and,
 * when asked, an http directory too. Stopped by pid (QUIT, then KILL after 3 s).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { eventually } from './net.js';
import { nginxBin, processRuns, tempDir } from './portico.js';

const run = promisify(execFile);

export interface Sidecar {
  root: string;
  conf: string;
  pidFile: string;
  errorLog: string;
  streamDir: string;
  master(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts an nginx the way an operator would (daemonized), with a stream directory to share. */
export async function startOperatorNginx(): Promise<Sidecar> {
  const root = await tempDir('external');
  const streamDir = `${root}/etc/stream.d`;
  await mkdir(streamDir, { recursive: true });
  await mkdir(`${root}/logs`, { recursive: true });
  const conf = `${root}/etc/nginx.conf`;
  const pidFile = `${root}/nginx.pid`;
  const errorLog = `${root}/logs/error.log`;
  await writeFile(
    conf,
    [
      `pid ${pidFile};`,
      `error_log ${errorLog} notice;`,
      'worker_processes 1;',
      'events { worker_connections 1024; }',
      '# the operator\'s own comment: include /nowhere/*.conf;',
      'stream {',
      '    include stream.d/*.conf;',
      '}',
      '',
    ].join('\n'),
  );
  await run(nginxBin(), ['-p', `${root}/`, '-c', conf, '-e', errorLog]);
  const master = async (): Promise<number> => Number((await readFile(pidFile, 'utf8')).trim());
  return {
    root,
    conf,
    pidFile,
    errorLog,
    streamDir,
    master,
    async stop() {
      const pid = await master().catch(() => 0);
      if (pid > 0 && (await processRuns(pid))) {
        process.kill(pid, 'SIGQUIT');
        if (!(await eventually(async () => !(await processRuns(pid)), 3000))) process.kill(pid, 'SIGKILL');
      }
    },
  };
}

