/**
 * Entry point: parse the settings, bind the API's socket, start Portico, serve the API, and stop
 * gracefully on SIGTERM or SIGINT (queued changes finish, a managed nginx quits, the state lock is
 * released); SIGHUP reads API_TOKENS_FILE again. The socket is bound first so that a taken port
 * fails before anything else is started.
 */
import { pino } from 'pino';
import { bindApi, type ApiListener } from './api/listener.js';
import { startPortico, type RunningPortico } from './portico.js';
import { SettingsError, loadSettings } from './settings.js';

async function main(): Promise<void> {
  let settings;
  try {
    settings = loadSettings();
  } catch (error) {
    if (error instanceof SettingsError) {
      process.stderr.write(`portico: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = pino({ level: settings.logLevel, base: { pid: process.pid } });

  let listener: ApiListener;
  try {
    listener = await bindApi(settings.bindAddress, settings.bindPort, settings.apiLimits, (refusal) => {
      const setting = refusal.cap === 'client' ? 'API_MAX_CONNECTIONS_PER_CLIENT' : 'API_MAX_CONNECTIONS';
      const whose = refusal.cap === 'client' ? `${refusal.client}'s` : 'any';
      log.warn({ module: 'api', event: 'connections-refused', ...refusal }, `${setting} reached: refusing ${whose} new connections (said once, until it is below the limit again)`);
    });
  } catch (error) {
    // The operator's mistake, not a bug: the message says it all, a stack trace would bury it.
    log.fatal({ bindAddress: settings.bindAddress, bindPort: settings.bindPort }, (error as Error).message);
    process.exit(1);
  }

  // Stop taking requests; let queued changes finish and answer; only then drop what is left.
  const shutDown = (running: RunningPortico, signal: NodeJS.Signals): void => {
    log.info({ signal }, 'stopping: no new API requests; finishing the changes already queued');
    listener.server.close();
    listener.server.closeIdleConnections();
    running
      .close()
      .finally(() => listener.server.closeAllConnections())
      .then(() => {
        log.info('stopped');
        process.exit(0);
      })
      .catch((error: unknown) => {
        log.error({ err: error }, 'stopping failed');
        process.exit(1);
      });
  };

  // A signal during start-up stops Portico as soon as it is up: nothing it started is left behind.
  let running: RunningPortico | undefined;
  let stopRequested: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopRequested !== undefined) return;
    stopRequested = signal;
    if (running === undefined) log.info({ signal }, 'stopping once start-up has finished');
    else shutDown(running, signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A log rotation's postrotate step: nginx reopens its logs. (The handler also keeps node from
  // opening its inspector, which is what SIGUSR1 does to a node process by default.)
  process.on('SIGUSR1', () => {
    if (running === undefined) {
      log.warn('SIGUSR1 ignored: Portico is still starting; send it again once it is up');
      return;
    }
    running.portico.nginx.reopenLogs().catch((error: unknown) => log.error({ err: error }, `SIGUSR1: reopening nginx's logs failed: ${(error as Error).message}`));
  });
  // Without a handler node would exit on SIGHUP. Portico signals its managed nginx by pid, so this
  // signal is Portico's own. One during start-up may follow the start's read of the file: it is
  // answered once Portico runs.
  let reloadPending = false;
  process.on('SIGHUP', () => {
    if (running === undefined) reloadPending = true;
    else void running.reloadTokens();
  });

  try {
    running = await startPortico(settings, { log });
  } catch (error) {
    // startPortico has stopped what it started and released the lock; the socket is ours to close.
    log.fatal({ err: error }, `portico could not start: ${(error as Error).message}`);
    await listener.close();
    process.exit(1);
  }
  listener.serve(running.app);
  if (reloadPending) void running.reloadTokens();
  if (stopRequested !== undefined) {
    shutDown(running, stopRequested);
    return;
  }
  log.info(
    { mode: settings.mode, range: settings.portRange, streamDir: settings.streamDir },
    `portico listening on http://${listener.address}`,
  );
}

void main();
