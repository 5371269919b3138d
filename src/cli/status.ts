/**
 * `status` — read the data directory's state file and print the status and the age of
 * the last health check. Exit 0 when registered and fresh (the last health
 * check is younger than one interval), 1 otherwise: usable as a container
 * health check. Under protocol `siwe` (the state file says so) there is no
 * probe TTL: exit 0 while registered and, with the access session on, while
 * its token has not expired; it prints the token's expiry (never the token).
 */
import type { Command } from 'commander';
import { dirname } from 'node:path';
import { SETTINGS } from '../settings/table.js';
import { addSettings, readSettings } from './settings.js';

/** Add `status` to the program. */
export function statusCommand(program: Command): void {
  const command = program
    .command('status')
    .description(`print the registration status from ${SETTINGS.dataDir.env}; exit 0 when registered and fresh (siwe: registered, with a valid access token when the session is on), 1 otherwise`)
    .option('--json', 'print one JSON object');
  addSettings(command, 'status');
  command.action(async (opts: { json?: boolean }) => {
    const { dataDir, registerIntervalSecs: intervalSecs } = readSettings(command, 'status').values;
    const { readStatusReport, sessionText, staleReasonText } = await import('./status-report.js');
    const report = readStatusReport(dataDir, intervalSecs);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else if (report.stateFile !== 'present') {
      const dataDirEnv = SETTINGS.dataDir.env;
      const why =
        report.stateFile === 'no-data-dir'
          ? `the data directory ${dirname(report.path)} does not exist: is ${dataDirEnv} (--data-dir) the one \`run\` uses?`
          : `no registrar has run with this ${dataDirEnv} yet, or \`run\` uses another one`;
      process.stdout.write(`status: unknown — no state file at ${report.path}\n${why}\n`);
    } else if (report.protocol === 'siwe') {
      const why = staleReasonText(report);
      const verdict = report.healthy ? 'healthy' : report.status !== 'registered' ? 'not registered' : why !== null ? 'registrar gone' : 'no valid access token';
      process.stdout.write(
        `status: ${report.status}\nprotocol: siwe (registered parks: no health-probe TTL) — ${verdict}\naccess session: ${sessionText(report)}\n${why === null ? '' : `why: ${why}\n`}state file: ${report.path}\n`,
      );
    } else {
      const age = report.ageSecs === null ? 'never' : report.futureBySecs !== null ? `${report.futureBySecs} s in the future` : `${report.ageSecs} s ago`;
      const verdict = report.healthy ? 'fresh' : report.status === 'registered' ? 'stale' : 'not registered';
      const why = staleReasonText(report);
      process.stdout.write(
        `status: ${report.status}\nlast health check: ${age} (interval ${intervalSecs} s) — ${verdict}\n${why === null ? '' : `why: ${why}\n`}state file: ${report.path}\n`,
      );
    }
    process.exitCode = report.healthy ? 0 : 1;
  });
}
