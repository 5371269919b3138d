/**
 * `run` — the production registrar: serves the DDS callback routes and runs
 * the actor until SIGINT/SIGTERM, then stops gracefully (STOP, lock released,
 * state persisted, server closed) and exits 0.
 */
import type { Command } from 'commander';
import { addSettings, CliError, EXIT, logSettingWarnings, readSettings } from './settings.js';
import { waitForSignal } from './signals.js';

/** Add `run` to the program. */
export function runCommand(program: Command): void {
  const command = program
    .command('run')
    .description('run the registrar: serve the DDS callback routes and keep the node registered');
  addSettings(command, 'run').addHelpText('after', 'Exit status: 0 graceful stop, 2 bad setting, 3 cannot start, 1 unexpected.');
  command.action(async () => {
    const { values: settings, warnings } = readSettings(command, 'run');
    // First of all, a worker thread starts building noble's table of the key on the other core
    // while this thread loads the rest: the first registration request does not wait for it.
    const { startWarmSigner } = await import('../warm-signer.js');
    const signer = startWarmSigner(settings.secp256k1Privhex);
    try {
      // Loaded on use: `--help`, `status` and `keygen` start faster without them.
      const [{ createLogger }, { startDaemon }] = await Promise.all([import('../log.js'), import('./daemon.js')]);
      const logger = createLogger({ format: settings.logFormat, level: settings.logLevel });
      logSettingWarnings(logger, warnings);
      // Listen for signals before starting: a SIGTERM during start-up still stops gracefully.
      const signal = waitForSignal();
      const daemon = await startDaemon({ settings, logger, registrarOptions: { signer } });
      // Once the first registration attempt is over, sign on this thread and end the worker.
      void daemon.firstAttempt.then(() => setImmediate(() => signer.warm()));
      const outcome = await Promise.race([signal, daemon.done.then(() => 'done' as const)]);
      if (outcome !== 'done') logger.info({ event: 'process.signal', signal: outcome }, 'stopping');
      await daemon.stop();
      const { registrarDone, RegistrarFailedError } = await import('../loop.js');
      await registrarDone(daemon.registrar).catch((error: unknown) => {
        // A bad key, or a data directory another node's live registrar uses: the setting is wrong (exit 2).
        const exitCode =
          error instanceof RegistrarFailedError && (error.code === 'EINVALIDKEY' || error.code === 'EDATADIRINUSE') ? EXIT.badSetting : EXIT.unexpected;
        throw error instanceof RegistrarFailedError ? new CliError(exitCode, error.message) : error;
      });
      logger.info({ event: 'process.exit', code: 0 });
    } finally {
      signer.close();
    }
  });
}
