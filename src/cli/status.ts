/**
 * `status` — read DATA_DIR's state file and print the status and the age of
 * the last health check. Exit 0 when registered and fresh (the last health
 * check is younger than one interval), 1 otherwise: usable as a container
 * health check.
 */
import type { Command } from 'commander';
import { StateStore } from '../state/index.js';
import { silentLogger } from '../log.js';
import { addSettingOptions, parseStatusSettings, type RawOptions } from './settings.js';

/** What `status` reports. */
export interface StatusReport {
  status: string;
  healthy: boolean;
  lastHealthcheck: string | null;
  ageSecs: number | null;
  intervalSecs: number;
  path: string;
}

/** Judge a data directory's state file (exported for tests and embedding hosts). */
export function readStatusReport(dataDir: string, intervalSecs: number, now = Date.now()): StatusReport {
  const store = new StateStore({ dir: dataDir, logger: silentLogger });
  const state = store.read();
  const lastMs = state.lastHealthcheckMs ?? (state.lastHealthcheck === null ? null : state.lastHealthcheck * 1000);
  const ageSecs = lastMs === null ? null : Math.max(0, (now - lastMs) / 1000);
  const healthy = state.status === 'registered' && ageSecs !== null && ageSecs <= intervalSecs;
  return {
    status: state.status,
    healthy,
    lastHealthcheck: lastMs === null ? null : new Date(lastMs).toISOString(),
    ageSecs: ageSecs === null ? null : Math.round(ageSecs * 10) / 10,
    intervalSecs,
    path: store.path,
  };
}

/** Add `status` to the program. */
export function statusCommand(program: Command): void {
  const command = program
    .command('status')
    .description('print the registration status from DATA_DIR; exit 0 when registered and fresh, 1 otherwise')
    .option('--json', 'print one JSON object');
  addSettingOptions(command, ['DATA_DIR', 'REGISTER_INTERVAL_SECS']);
  command.action((opts: RawOptions) => {
    const { dataDir, intervalSecs } = parseStatusSettings(opts);
    const report = readStatusReport(dataDir, intervalSecs);
    if (opts['json']) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      const age = report.ageSecs === null ? 'never' : `${report.ageSecs} s ago`;
      const verdict = report.healthy ? 'fresh' : report.status === 'registered' ? 'stale' : 'not registered';
      process.stdout.write(
        `status: ${report.status}\nlast health check: ${age} (interval ${intervalSecs} s) — ${verdict}\nstate file: ${report.path}\n`,
      );
    }
    process.exitCode = report.healthy ? 0 : 1;
  });
}
