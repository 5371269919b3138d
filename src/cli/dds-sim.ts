/**
 * `dds-sim` — the DDS simulator alone, for people testing their own node: it
 * verifies registrations as DDS does, calls the node back with an id and a
 * secret, and probes its `/health`; for the wallet generation it hands out
 * nonces, checks `register-wallet` and `verify`, and issues access tokens.
 */
import type { Command } from 'commander';
import { SETTINGS } from '../settings/table.js';
import { faultsOf } from './sim-options.js';
import { listenErrorLine } from './serve.js';
import { addSettings, CliError, EXIT, logSettingWarnings, readSettings } from './settings.js';
import { flushLogsAtExit } from './exit.js';
import { waitForSignal } from './signals.js';

/** Add `dds-sim` to the program. */
export function ddsSimCommand(program: Command): void {
  const command = program
    .command('dds-sim')
    .description('run the DDS simulator: verify registrations, call nodes back, probe their /health');
  addSettings(command, 'dds-sim');
  command.action(async () => {
    const { values: s, warnings } = readSettings(command, 'dds-sim');
    const [{ createLogger }, { DdsSimulator, DdsSimulatorListenError }] = await Promise.all([import('../log.js'), import('../sim/dds-simulator.js')]);
    const logger = createLogger({ format: s.logFormat, level: s.logLevel, bufferBytes: s.logBufferKib * 1024 });
    logSettingWarnings(logger, warnings);
    const sim = new DdsSimulator({
      host: s.simHost,
      port: s.simPort,
      probeIntervalMs: Math.round(s.simProbeIntervalSecs * 1000),
      tokenLifetimeMs: Math.round(s.simTokenLifetimeSecs * 1000),
      nonceLifetimeMs: Math.round(s.simNonceLifetimeSecs * 1000),
      chainId: s.simChainId,
      forgetAfterFailedProbes: s.simForgetAfterFailedProbes,
      faults: faultsOf(s),
      logger,
      expectedRegSecret: s.simExpectedRegSecret,
    });
    let started;
    try {
      started = await sim.start();
    } catch (error) {
      if (!(error instanceof DdsSimulatorListenError)) throw error;
      const names = { host: SETTINGS.simHost.env, port: SETTINGS.simPort.env };
      throw new CliError(EXIT.cannotStart, listenErrorLine(error.code, s.simHost, s.simPort, names));
    }
    logger.info({ event: 'dds_sim.ready', url: started.url }, `DDS simulator on ${started.url} — point ${SETTINGS.ddsBaseUrl.env} at it`);
    const signal = await waitForSignal();
    logger.info({ event: 'process.signal', signal });
    await sim.stop();
    await flushLogsAtExit(logger);
  });
}
