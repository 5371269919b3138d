#!/usr/bin/env node
// Bundles the CLI (src/cli/bin.ts and everything it imports, dependencies
// included) into one CommonJS file, dist/src/cli/bundle.cjs, which the
// installed command (dist/src/cli/launch.cjs, compiled by tsc from
// src/cli/launch.cts) loads with a V8 code cache. One file instead of a few
// hundred modules, compiled once: see docs/benchmarks.md, "Cold start".
// The signing worker (src/sign-worker.ts, see src/warm-signer.ts) is bundled
// beside it, as dist/src/cli/sign-worker.js: the bundle looks for it next to
// itself. The library (dist/src/index.js) is not bundled, nor is prom-client
// (a dependency, required from node_modules when metrics are on).
//
// No source maps: a bundle's map names files of node_modules/ and src/ as they
// lay at build time, which an installed package does not have, and weighed
// 4 MB (60 % of the package). Stack traces name bundle.cjs and, with
// keepNames, the functions. `--sourcemap` (e.g. `node scripts/build-bin.mjs
// --sourcemap` for `--enable-source-maps` while debugging here) makes them
// again; the package test refuses to pack them.
import { build } from 'esbuild';
import { chmodSync, rmSync } from 'node:fs';

const sourcemap = process.argv.includes('--sourcemap') ? 'linked' : false;

/** What both bundles share: Node 20, compact but with readable names. */
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  sourcemap,
  legalComments: 'linked',
  logLevel: 'warning',
};

const outfile = 'dist/src/cli/bundle.cjs';
const workerFile = 'dist/src/cli/sign-worker.js';
// A map left by an earlier `--sourcemap` build must not ship with a bundle it does not describe.
for (const file of [outfile, workerFile]) rmSync(`${file}.map`, { force: true });
await build({
  ...common,
  entryPoints: ['src/cli/bin.ts'],
  outfile,
  format: 'cjs',
  // Loaded from node_modules, and only by `--metrics` (src/cli/metrics-server.ts): the bundle every start compiles stays lean.
  external: ['prom-client'],
  // `import.meta.url` (src/version.ts finds package.json from it) is the bundle's own URL.
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
chmodSync(outfile, 0o755);

await build({ ...common, entryPoints: ['src/sign-worker.ts'], outfile: workerFile, format: 'esm' });
