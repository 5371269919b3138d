/**
 * `run` — the production registrar: serves the DDS callback routes and runs
 * the actor until SIGINT/SIGTERM, then stops gracefully (STOP, lock released,
 * state persisted, server closed) and exits 0.
 */
import type { Command } from 'commander';
import { addSettings, CliError, EXIT, logSettingWarnings, readSettings } from './settings.js';
import type { ProcessLogger } from '../log.js';
import { flushLogsAtExit } from './exit.js';
import { onStatusSignal, waitForSignal } from './signals.js';

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
    let logger: ProcessLogger | undefined;
    try {
      // Loaded on use: `--help`, `status` and `keygen` start faster without them.
      const [{ createLogger }, { startDaemon }, { describeState }] = await Promise.all([
        import('../log.js'),
        import('./daemon.js'),
        import('./live-view.js'),
      ]);
      const log = createLogger({ format: settings.logFormat, level: settings.logLevel, bufferBytes: settings.logBufferKib * 1024 });
      logger = log;
      logSettingWarnings(log, warnings);
      // A SIGTERM received since the launcher started resolves this at once (see signals.ts).
      const signal = waitForSignal();
      const daemon = await startDaemon({ settings, logger: log, registrarOptions: { signer } });
      // SIGUSR1: one status line, never Node's debugger.
      const stopStatus = onStatusSignal(() => {
        const { value, context } = daemon.registrar.getSnapshot();
        const failure = context.lastFailure;
        const expiresAt = context.session.tokenExpiresAtMs;
        log.info(
          {
            event: 'process.status',
            state: describeState(value),
            lock: context.lock,
            requests: context.requests,
            registrations: context.registrations,
            last_failure: failure === null ? null : { class: failure.class, status: failure.status, error: failure.message },
            // Under siwe with the session on: its state and the token's expiry (never the token).
            session:
              context.settings.session === null
                ? null
                : {
                    state: sessionStateOf(value, describeState),
                    sign_ins: context.session.signIns,
                    failures: context.session.failures,
                    token_expires_at: expiresAt === null ? null : new Date(expiresAt).toISOString(),
                    token_expires_in_ms: expiresAt === null ? null : Math.max(0, expiresAt - Date.now()),
                  },
          },
          'status (SIGUSR1)',
        );
      });
      // Once the first registration attempt is over, sign on this thread and end the worker.
      void daemon.firstAttempt.then(() => setImmediate(() => signer.warm()));
      const outcome = await Promise.race([signal, daemon.done.then(() => 'done' as const)]);
      if (outcome !== 'done') log.info({ event: 'process.signal', signal: outcome }, 'stopping');
      await daemon.stop();
      stopStatus();
      const { registrarDone, RegistrarFailedError } = await import('../loop.js');
      await registrarDone(daemon.registrar).catch((error: unknown) => {
        // A bad key, or a data directory another node's live registrar uses: the setting is wrong (exit 2).
        const exitCode =
          error instanceof RegistrarFailedError && (error.code === 'EINVALIDKEY' || error.code === 'EDATADIRINUSE') ? EXIT.badSetting : EXIT.unexpected;
        throw error instanceof RegistrarFailedError ? new CliError(exitCode, error.message) : error;
      });
      log.info({ event: 'process.exit', code: 0 });
    } finally {
      signer.close();
      // What the log holds is written, for a bounded time: a stalled reader never holds the exit.
      if (logger !== undefined) await flushLogsAtExit(logger);
    }
  });
}

/** The session region's state (`active`, `signingIn.refreshing`…), or `idle` outside `registered`. */
function sessionStateOf(value: unknown, describe: (value: unknown) => string): string {
  const registered = typeof value === 'object' && value !== null ? (value as { registered?: unknown }).registered : undefined;
  const session = typeof registered === 'object' && registered !== null ? (registered as { session?: unknown }).session : undefined;
  return session === undefined ? 'idle' : describe(session);
}
