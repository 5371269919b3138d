/**
 * What every benchmark shares beyond test/support: its options, its tables,
 * its ratios and how it runs. Method and figures: docs/benchmarks.md.
 */
import { parseArgs } from 'node:util';
import { CleanupStack } from '../test/support/cleanup.js';
import { machineInfo, writeFigure } from '../test/support/figures.js';
import { round } from '../test/support/stats.js';

/** One option: its default (a number, a list of numbers or a word), the default under `--quick`, one line of help. */
export interface OptionSpec {
  default: number | readonly number[] | string;
  quick?: number | readonly number[] | string;
  help: string;
  /** The words a string option accepts. */
  choices?: readonly string[];
}

type ValueOf<S extends OptionSpec> = S['default'] extends number ? number : S['default'] extends readonly number[] ? number[] : string;

/** The parsed options: each by name, and `quick`. */
export type Options<S extends Record<string, OptionSpec>> = { quick: boolean } & { -readonly [K in keyof S]: ValueOf<S[K]> };

function usage(name: string, about: string, specs: Record<string, OptionSpec>): string {
  const lines = Object.entries(specs).map(([k, s]) => {
    const quick = s.quick === undefined ? '' : `; --quick ${String(s.quick)}`;
    return `  --${k.padEnd(14)} ${s.help} (default ${String(s.default)}${quick})`;
  });
  return [`${about}\n\nusage: node --import tsx bench/${name}.ts [--quick] [options]`, ...lines, `  --${'quick'.padEnd(14)} a smoke-sized run`].join('\n');
}

/** Parse the command line against `specs`: `--help` prints the usage (exit 0), a bad option its error and the usage (exit 2). */
export function benchOptions<S extends Record<string, OptionSpec>>(name: string, about: string, specs: S): Options<S> {
  const text = usage(name, about, specs);
  const config: Record<string, { type: 'string' | 'boolean' }> = { quick: { type: 'boolean' }, help: { type: 'boolean' } };
  for (const k of Object.keys(specs)) config[k] = { type: 'string' };
  const fail = (message: string): never => {
    console.error(`${message}\n\n${text}`);
    process.exit(2);
  };
  let values: Record<string, string | boolean | undefined> = {};
  try {
    values = parseArgs({ args: process.argv.slice(2), options: config, strict: true }).values as typeof values;
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  if (values['help'] === true) {
    console.log(text);
    process.exit(0);
  }
  const quick = values['quick'] === true;
  const out: Record<string, unknown> = { quick };
  for (const [k, s] of Object.entries(specs)) {
    const raw = values[k];
    const fallback = quick && s.quick !== undefined ? s.quick : s.default;
    if (typeof raw !== 'string') out[k] = Array.isArray(fallback) ? [...fallback] : fallback;
    else if (typeof s.default === 'string') {
      if (s.choices !== undefined && !s.choices.includes(raw)) fail(`--${k}: expected one of ${s.choices.join(', ')}, got ${JSON.stringify(raw)}`);
      out[k] = raw;
    } else {
      const list = raw.split(',').map(Number);
      if (list.some((n) => !Number.isFinite(n) || n < 0) || (typeof s.default === 'number' && list.length !== 1))
        fail(`--${k}: expected ${typeof s.default === 'number' ? 'a number' : 'numbers, comma-separated'} ≥ 0, got ${JSON.stringify(raw)}`);
      out[k] = typeof s.default === 'number' ? list[0] : list;
    }
  }
  return out as Options<S>;
}

/** `ours / baseline`, 2 decimals (`NaN` when the baseline is 0 or missing). */
export function ratio(ours: number, baseline: number): number {
  return baseline > 0 && Number.isFinite(ours) ? round(ours / baseline, 2) : NaN;
}

/** A number for a table cell: decimals that shrink as the value grows; `-` when not finite. */
export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return '-';
  return n.toFixed(digits ?? (Math.abs(n) < 10 ? 2 : Math.abs(n) < 1000 ? 1 : 0));
}

/** Print a title, a header and rows, the first column left-aligned, the others right-aligned. */
export function printTable(title: string, header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(`\n${title}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) console.log(line(r));
}

/** A writer of `suite`'s figures (test/support/figures.ts), marked quick or not. */
export function figures(suite: string, quick: boolean): (name: string, value: unknown) => void {
  return (name, value) => writeFigure(suite, name, value, { quick });
}

/**
 * Run a benchmark: print the machine, run `main` with a cleanup stack (run at
 * the end, and on SIGINT/SIGTERM), exit 0 whatever the figures, 1 when it
 * could not measure (it threw).
 */
export function runBench(title: string, main: (cleanup: CleanupStack) => Promise<void>): void {
  const m = machineInfo();
  console.log(`# ${title} — Node ${m.node}, ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, ${m.os}`);
  const cleanup = new CleanupStack();
  const onSignal = (): void => void cleanup.run().finally(() => process.exit(130));
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  main(cleanup)
    .finally(() => cleanup.run())
    .then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
        process.exit(1);
      },
    );
}
