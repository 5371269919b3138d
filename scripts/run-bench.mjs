#!/usr/bin/env node
// Runs every benchmark (the list below: bench/<name>.ts), one child process each,
// in sequence, with tsx as the loader. Benchmarks report; they never fail on
// a slow machine: a non-zero exit means one could not measure at all.
// Usage: node scripts/run-bench.mjs [--quick] [name ...]   (names without .ts)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const wanted = args.filter((a) => !a.startsWith('--'));
// The benchmarks, in the order docs/benchmarks.md shows them (other bench/ files are their helpers).
const all = ['cold-start', 'staleness', 'routes', 'signing', 'idle', 'fleet', 'recovery', 'session'];
const missing = all.filter((name) => !existsSync(join('bench', `${name}.ts`)));
if (missing.length > 0) {
  console.error(`missing benchmark file(s): ${missing.map((n) => `bench/${n}.ts`).join(', ')}`);
  process.exit(1);
}
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${all.join(', ')}`);
  process.exit(2);
}
const names = wanted.length > 0 ? wanted : all;
const failed = [];
for (const name of names) {
  console.log(`\n=== bench/${name}.ts ${flags.join(' ')}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('bench', `${name}.ts`), ...flags], { stdio: 'inherit' });
  if (r.status !== 0) failed.push(name);
}
if (failed.length > 0) {
  console.error(`\ncould not measure: ${failed.join(', ')}`);
  process.exit(1);
}
