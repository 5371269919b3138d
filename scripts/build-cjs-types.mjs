#!/usr/bin/env node
// Copies the declarations tsc wrote (dist/src, dist/machines, …) to
// dist/cjs-types/, beside a package.json that says "type": "commonjs": the
// types of `require('posemesh-node-registration')` (package.json "exports",
// condition "require"). The JavaScript is the same ES module either way (Node
// ≥ 20.19 can require() it, and one copy means one node-secret store per
// process); only TypeScript must be told that a CommonJS file may load it —
// under `module: node16` it refuses an ES module's types (TS1479).
// Declaration maps are rewritten to name the same sources from their new place.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const DIST = 'dist';
const OUT = path.join(DIST, 'cjs-types');
const DECLARATION = /\.d\.c?ts$/;
const DECLARATION_MAP = /\.d\.c?ts\.map$/;

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(p);
    else yield p;
  }
}

rmSync(OUT, { recursive: true, force: true });
// Every directory tsc wrote (tsconfig.build.json's `include`).
const roots = readdirSync(DIST, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
for (const root of roots) {
  for (const from of files(path.join(DIST, root))) {
    const to = path.join(OUT, path.relative(DIST, from));
    if (DECLARATION.test(from)) {
      mkdirSync(path.dirname(to), { recursive: true });
      copyFileSync(from, to);
    } else if (DECLARATION_MAP.test(from)) {
      const map = JSON.parse(readFileSync(from, 'utf8'));
      const base = path.resolve(path.dirname(from), map.sourceRoot ?? '');
      map.sources = map.sources.map((s) => path.relative(path.dirname(to), path.resolve(base, s)).split(path.sep).join('/'));
      map.sourceRoot = '';
      mkdirSync(path.dirname(to), { recursive: true });
      writeFileSync(to, JSON.stringify(map));
    }
  }
}
writeFileSync(path.join(OUT, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);
