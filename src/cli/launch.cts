#!/usr/bin/env node
/**
 * The `posemesh-node-registration` command as installed: it loads the CLI
 * bundle (`dist/src/cli/bundle.cjs`, built by `scripts/build-bin.mjs` from
 * `src/cli/bin.ts`) with a V8 code cache, so that a start-up does not parse
 * and compile two megabytes of JavaScript again (see docs/benchmarks.md,
 * "Cold start").
 *
 * - On Node ≥ 22.1 this is Node's own compile cache (`module.enableCompileCache`).
 * - On Node 20 it is the same idea by hand: the bundle is compiled with
 *   `vm.Script` and the cache V8 made of it is written once, atomically —
 *   3 s after start-up or at exit, whichever comes first, so that it holds
 *   the functions start-up compiled. One cache per command (`run`,
 *   `status`…): each start-up compiles different functions.
 *
 * The cache lives in `$POSEMESH_COMPILE_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/posemesh-node-registration` (default `~/.cache/…`), and is
 * used only when that directory is owned by this user and not writable by
 * others (a code cache is code). `POSEMESH_COMPILE_CACHE_DIR=off` turns it
 * off. Every cache failure falls back to a plain compile: the cache only
 * ever makes the start faster, never different. V8 rejects a cache made
 * from another source, V8 version or flags.
 */

// Before anything else: the signals of start-up. Node's own SIGTERM/SIGINT is death by signal, its SIGUSR1
// opens the debugger; until the command listens itself (src/cli/signals.ts, which finds this record under
// the same key and documents it), a stop signal of a long-running command is recorded and SIGUSR1 counted.
{
  const record = {
    received: [] as string[],
    usr1: 0,
    onStop: (signal: string): void => void record.received.push(signal),
    onUsr1: (): void => void (record.usr1 += 1),
  };
  (process as unknown as Record<symbol, unknown>)[Symbol.for('posemesh-node-registration.earlySignals')] = record;
  process.on('SIGUSR1', record.onUsr1);
  if (['run', 'dev', 'dds-sim'].includes(process.argv[2] ?? '')) for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, record.onStop);
}

/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS file: `import = require` is how it imports under verbatimModuleSyntax */
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import vm = require('node:vm');
import Module = require('node:module');

const BUNDLE = path.join(__dirname, 'bundle.cjs');
/** When the cache is written: once start-up has compiled what it needs. */
const WRITE_CACHE_AFTER_MS = 3000;

/**
 * `mkdir -p`, one component at a time: Node's recursive mkdir spins forever
 * where mkdir answers ENOENT under an existing parent (`/proc`, `/sys`).
 */
function makeDir(dir: string): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d) && path.dirname(d) !== d; d = path.dirname(d)) missing.push(d);
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** The cache directory, created private; undefined when off or not private. */
function privateCacheDir(): string | undefined {
  const configured = process.env['POSEMESH_COMPILE_CACHE_DIR'];
  if (configured === 'off' || configured === '0') return undefined;
  try {
    // os.homedir() throws when HOME is unset and the user has no passwd entry (systemd's
    // DynamicUser=, `env -i` under a bare uid): then no cache, never a stack trace.
    const base = process.env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache');
    const dir = configured || path.join(base, 'posemesh-node-registration');
    makeDir(dir);
    const st = fs.statSync(dir);
    const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) return undefined;
    return dir;
  } catch {
    return undefined;
  }
}

/** Write `data` to `file` atomically (temp file + rename); failures are ignored. */
function writeQuietly(file: string, data: Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, data, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing more to do
    }
  }
}

/** The command's name as a file-name part (`run`, `status`…; `other` for anything else). */
function commandKey(): string {
  const command = process.argv[2] ?? '';
  return /^[a-z][a-z-]{0,15}$/.test(command) ? command : 'other';
}

/** Load the bundle with a hand-made code cache (Node < 22.1). */
function loadWithCodeCache(dir: string | undefined): void {
  const source = fs.readFileSync(BUNDLE, 'utf8').replace(/^#!/, '//');
  const st = fs.statSync(BUNDLE);
  const key = `${commandKey()}-${process.version}-${process.arch}-${st.size}-${Math.floor(st.mtimeMs)}`;
  const cacheFile = dir === undefined ? undefined : path.join(dir, `cli-${key}.v8cache`);
  let cachedData: Buffer | undefined;
  if (cacheFile !== undefined) {
    try {
      cachedData = fs.readFileSync(cacheFile);
    } catch {
      cachedData = undefined;
    }
  }
  const script = new vm.Script(Module.wrap(source), {
    filename: BUNDLE,
    ...(cachedData === undefined ? {} : { cachedData }),
    // A dynamic import() left in the bundle resolves as it would in a module of its own.
    ...(vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER === undefined ? {} : { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER }),
  });
  if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) {
    let written = false;
    const write = (): void => {
      if (written) return;
      written = true;
      writeQuietly(cacheFile, script.createCachedData());
    };
    setTimeout(write, WRITE_CACHE_AFTER_MS).unref();
    process.once('exit', write);
  }
  const bundle = new Module(BUNDLE, module);
  bundle.filename = BUNDLE;
  bundle.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(__dirname);
  const wrapper = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: Module,
    filename: string,
    dirname: string,
  ) => void;
  wrapper.call(bundle.exports, bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, __dirname);
}

const enableCompileCache = (Module as unknown as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
const cacheDir = privateCacheDir();
if (typeof enableCompileCache === 'function') {
  if (cacheDir !== undefined) enableCompileCache(cacheDir);
  require(BUNDLE);
} else {
  loadWithCodeCache(cacheDir);
}
