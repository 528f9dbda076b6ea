/**
 * Entry point: parse the settings, start Portico, serve the API, and stop gracefully on SIGTERM or
 * SIGINT (queued changes finish, a managed nginx quits, the state lock is released).
 */
import { pino } from 'pino';
import { startPortico } from './portico.js';
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
  let running;
  try {
    running = await startPortico(settings, { log });
  } catch (error) {
    log.fatal({ err: error }, `portico could not start: ${(error as Error).message}`);
    process.exit(1);
  }
  const host = settings.bindAddress.includes(':') ? `[${settings.bindAddress}]` : settings.bindAddress;
  const server = running.app.listen(settings.bindPort, settings.bindAddress, () => {
    log.info(
      { mode: settings.mode, range: settings.portRange, streamDir: settings.streamDir },
      `portico listening on http://${host}:${settings.bindPort}`,
    );
  });
  server.on('error', (error) => {
    log.fatal({ err: error }, `cannot listen on ${host}:${settings.bindPort}`);
    void running.close({ stopNginx: false }).finally(() => process.exit(1));
  });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // Stop taking requests; let queued changes finish and answer; only then drop what is left.
    server.close();
    server.closeIdleConnections();
    running
      .close()
      .finally(() => server.closeAllConnections())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, 'stopping failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
