/**
 * `dds-sim` — the DDS simulator alone, for people testing their own node: it
 * verifies registrations as DDS does, calls the node back with an id and a
 * secret, and probes its `/health`.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { addFaultOptions, parseFaults, parseSecs } from './sim-options.js';
import { CliError, EXIT, parseLogSettings, type RawOptions } from './settings.js';
import { waitForSignal } from './signals.js';

/** Add `dds-sim` to the program. */
export function ddsSimCommand(program: Command): void {
  const command = program
    .command('dds-sim')
    .description('run the DDS simulator: verify registrations, call nodes back, probe their /health')
    .addOption(new Option('--host <addr>', 'interface to listen on').default('127.0.0.1').env('DDS_SIM_HOST'))
    .addOption(new Option('--port <port>', 'port to listen on').default('8787').env('DDS_SIM_PORT'))
    .addOption(new Option('--probe-interval-secs <secs>', 'time between health probes').default('3').env('DDS_SIM_PROBE_INTERVAL_SECS'))
    .addOption(new Option('--expected-reg-secret <secret>', 'refuse registrations without these credentials').env('DDS_SIM_EXPECTED_REG_SECRET'))
    .addOption(new Option('--log-format <format>', 'json or text').env('LOG_FORMAT'))
    .addOption(new Option('--log-level <level>', 'debug, info, warn or error').env('LOG_LEVEL'));
  addFaultOptions(command);
  command.action(async (opts: RawOptions) => {
    const log = parseLogSettings(opts, 'text');
    const [{ createLogger }, { DdsSimulator }] = await Promise.all([import('../log.js'), import('../sim/dds-simulator.js')]);
    const logger = createLogger({ format: log.logFormat, level: log.logLevel });
    const port = Number(opts['port']);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(EXIT.badSetting, `--port: expected a port number (got "${String(opts['port'])}")`);
    const probeIntervalSecs = parseSecs(opts['probeIntervalSecs'], '--probe-interval-secs', 3, 0.05);
    const expected = typeof opts['expectedRegSecret'] === 'string' ? opts['expectedRegSecret'] : undefined;
    const sim = new DdsSimulator({
      host: String(opts['host']),
      port,
      probeIntervalMs: Math.round(probeIntervalSecs * 1000),
      faults: parseFaults(opts),
      logger,
      ...(expected ? { expectedRegSecret: expected } : {}),
    });
    let started;
    try {
      started = await sim.start();
    } catch (error) {
      const code = (error as { code?: string }).code;
      throw new CliError(EXIT.cannotStart, `--port: cannot listen on ${String(opts['host'])}:${port}${code ? ` (${code})` : ''}`);
    }
    logger.info({ event: 'dds_sim.ready', url: started.url }, `DDS simulator on ${started.url} — point DDS_BASE_URL at it`);
    const signal = await waitForSignal();
    logger.info({ event: 'process.signal', signal });
    await sim.stop();
  });
}
