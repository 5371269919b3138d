/**
 * The figures file: every figure the reliability suite and the benchmarks
 * measure, one JSON line each in `.tmp/figures.jsonl`, for
 * `docs/reliability.md` and `docs/benchmarks.md` to be written from.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from './child.js';
import { round } from './stats.js';

/** Where {@link writeFigure} appends. */
export const FIGURES_FILE: string = path.join(REPO_ROOT, '.tmp', 'figures.jsonl');

/** What the figures were measured on. */
export interface MachineInfo {
  node: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
}

/** {@link MachineInfo} of this machine. */
export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    node: process.version,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** How the run that measured a figure was sized. */
export interface FigureRun {
  /** A benchmark's `--quick` (smoke-sized) run. */
  quick?: boolean;
  /** The reliability suite's `RELIABILITY_SCALE`. */
  scale?: number;
}

/**
 * Append one figure as a JSON line `{suite, name, value, quick?, scale?,
 * machine, at}`; `suite` is `reliability` or the benchmark's name. Best
 * effort: a figure that cannot be written never fails a test or a benchmark.
 */
export function writeFigure(suite: string, name: string, value: unknown, run: FigureRun = {}): void {
  try {
    fs.mkdirSync(path.dirname(FIGURES_FILE), { recursive: true });
    const line = JSON.stringify({ suite, name, value, ...run, machine: machineInfo(), at: new Date().toISOString() });
    fs.appendFileSync(FIGURES_FILE, `${line}\n`);
  } catch {
    // figures are a by-product
  }
}
