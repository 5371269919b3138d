/** The DDS simulator's fault flags, shared by `dds-sim` and `dev`. */
import { Option, type Command } from 'commander';
import type { DdsSimulatorFaults } from '../sim/dds-simulator.js';
import { CliError, EXIT } from './settings.js';

/** Add the fault-injection flags (each with a `DDS_SIM_…` environment variable). */
export function addFaultOptions(command: Command): Command {
  return command
    .addOption(new Option('--fail-status <status>', 'answer registrations with this HTTP status, 300-599 (e.g. 500, 409, 429)').env('DDS_SIM_FAIL_STATUS'))
    .addOption(new Option('--fail-count <n>', 'only fail the first n registrations, then recover').env('DDS_SIM_FAIL_COUNT'))
    .addOption(new Option('--failure-rate <0..1>', 'fail this fraction of registrations at random').env('DDS_SIM_FAILURE_RATE'))
    .addOption(new Option('--latency-ms <ms>', 'delay every registration answer').env('DDS_SIM_LATENCY_MS'))
    .addOption(new Option('--retry-after-secs <secs>', 'Retry-After on 429 and 503 answers').env('DDS_SIM_RETRY_AFTER_SECS'))
    .addOption(new Option('--pause-probes', 'send no health probes').env('DDS_SIM_PAUSE_PROBES'));
}

function num(value: unknown, flag: string, check: (n: number) => boolean, expected: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(n) || !check(n)) {
    throw new CliError(EXIT.badSetting, `${flag}: expected ${expected} (got "${String(value).slice(0, 40)}")`);
  }
  return n;
}

/** Read the fault flags. @throws {CliError} (exit 2) for a bad value. */
export function parseFaults(opts: Record<string, unknown>): DdsSimulatorFaults {
  const faults: DdsSimulatorFaults = {};
  const failStatus = num(opts['failStatus'], '--fail-status', (n) => Number.isInteger(n) && n >= 300 && n <= 599, 'a failing HTTP status, 300-599');
  if (failStatus !== undefined) faults.failStatus = failStatus;
  const failCount = num(opts['failCount'], '--fail-count', (n) => Number.isInteger(n) && n >= 0, 'a whole number ≥ 0');
  if (failCount !== undefined) faults.failCount = failCount;
  const failureRate = num(opts['failureRate'], '--failure-rate', (n) => n >= 0 && n <= 1, 'a number from 0 to 1');
  if (failureRate !== undefined) faults.failureRate = failureRate;
  const latencyMs = num(opts['latencyMs'], '--latency-ms', (n) => n >= 0 && n <= 600_000, 'milliseconds from 0 to 600000');
  if (latencyMs !== undefined) faults.latencyMs = latencyMs;
  const retryAfter = num(opts['retryAfterSecs'], '--retry-after-secs', (n) => Number.isInteger(n) && n >= 0, 'whole seconds ≥ 0');
  if (retryAfter !== undefined) faults.retryAfterSecs = retryAfter;
  if (opts['pauseProbes'] !== undefined && opts['pauseProbes'] !== false) faults.pauseProbes = true;
  return faults;
}

/** Read a positive number of seconds from a flag value. */
export function parseSecs(value: unknown, flag: string, fallback: number, min = 0): number {
  return num(value, flag, (n) => n >= min && n <= 86_400, `seconds from ${min} to 86400`) ?? fallback;
}
