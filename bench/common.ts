/**
 * The benchmarks' own helpers (`bench/*.ts`, run by `npm run bench`); what
 * they share with the tests — children, temp directories, the fake DDS, the
 * statistics summary, the figures file — is in test/support.
 *
 * Every benchmark measures the project beside a baseline *in the same run*,
 * prints a table with the ratio, and never fails because the machine is
 * slow: it exits non-zero only when it could not measure at all. Figures are
 * also appended to the figures file (test/support/figures.ts, `writeFigure`
 * with the benchmark's name as its suite) for `docs/benchmarks.md`.
 *
 * Each script takes `--quick` (a smoke-sized run, used by the test suite to
 * keep the scripts working) and its own options; `--help` lists them.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { machineInfo } from '../test/support/figures.js';
import { round } from '../test/support/stats.js';

/** `ours / baseline`, rounded to 2 decimals (`NaN` when the baseline is 0 or missing). */
export function ratio(ours: number, baseline: number): number {
  return baseline > 0 && Number.isFinite(ours) ? round(ours / baseline, 2) : NaN;
}

/** A number for a table cell: fixed decimals that shrink as the value grows. */
export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return '-';
  const d = digits ?? (Math.abs(n) < 10 ? 2 : Math.abs(n) < 1000 ? 1 : 0);
  return n.toFixed(d);
}

/** Print a table: a title line, a header row and rows, columns padded (first left-aligned, others right-aligned). */
export function printTable(title: string, header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** Print the machine line every benchmark starts with. */
export function printMachine(name: string): void {
  const m = machineInfo();
  console.log(`# ${name} — Node ${m.node}, ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, ${m.os}`);
}

/** A benchmark's parsed command line. */
export interface BenchArgs {
  /** `--quick`: a smoke-sized run. */
  quick: boolean;
  /** The script's own string options, by name (absent when not given). */
  options: Record<string, string | undefined>;
}

/**
 * Parse a benchmark's command line: `--quick`, `--help` and the script's own
 * string options (`names`, each `--name value`). Prints `usage` and exits 0
 * on `--help`; prints the error and the usage and exits 2 on a bad option.
 */
export function parseBenchArgs(usage: string, names: readonly string[] = [], argv: readonly string[] = process.argv.slice(2)): BenchArgs {
  const config: NonNullable<ParseArgsConfig['options']> = { quick: { type: 'boolean' }, help: { type: 'boolean' } };
  for (const name of names) config[name] = { type: 'string' };
  try {
    const { values } = parseArgs({ args: [...argv], options: config, strict: true, allowPositionals: false });
    if (values['help'] === true) {
      console.log(usage.trim());
      process.exit(0);
    }
    const options: Record<string, string | undefined> = {};
    for (const name of names) {
      const v = values[name];
      options[name] = typeof v === 'string' ? v : undefined;
    }
    return { quick: values['quick'] === true, options };
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${usage.trim()}`);
    process.exit(2);
  }
}

/** A positive number from an option (`fallback` when absent); exits 2 when it is not one. */
export function positiveNumber(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${name}: expected a positive number, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

/** A list of positive numbers from a comma-separated option (`fallback` when absent). */
export function numberList(raw: string | undefined, fallback: readonly number[], name: string): number[] {
  if (raw === undefined) return [...fallback];
  return raw.split(',').map((part) => positiveNumber(part.trim(), NaN, name));
}

/**
 * Run a benchmark's `main`: print its error and exit 1 when it throws (it
 * could not measure), else exit 0 — whatever the figures are.
 */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
      process.exit(1);
    },
  );
}
