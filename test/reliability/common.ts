/**
 * What the reliability suite (`test/reliability/`) and the benchmarks that
 * run registrar children share, on top of test/support (imported module by
 * module: benchmarks load this file):
 *
 * - {@link SCALE} / {@link scaled}: `RELIABILITY_SCALE` multiplies every count;
 * - {@link spawnRegistrar} / {@link spawnNode}: the real CLI as built
 *   (`dist/src/cli/launch.cjs run`) as a child against a fake DDS that calls
 *   it back (`callbackResponder`); {@link sharedDataDir}: several on one data
 *   directory, {@link livenessEnv}: the staleness they judge each other by;
 * - {@link recordFigure}: figures for `docs/reliability.md` (suite `reliability`
 *   of the figures file, see test/support/figures.ts);
 * - small file helpers for the data directory (state file, lock, temp files).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateSecretKey } from '../../src/crypto.js';
import { spawnChild, type ChildResult, type JsonLine, type TimedLine, type WaitOptions } from '../support/child.js';
import type { Cleanup } from '../support/cleanup.js';
import type { FakeDds } from '../support/fake-dds.js';
import { writeFigure } from '../support/figures.js';
import { tempDir } from '../support/temp.js';
import { sleep } from '../support/time.js';

// ---------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------

function parseScale(raw: string | undefined): number {
  const n = Number(raw ?? 1);
  // `Math.max(1, NaN)` is NaN: a typo in the variable must not silently disable the suite.
  return Number.isFinite(n) ? Math.max(1, n) : 1;
}

/** `RELIABILITY_SCALE` (default 1, at least 1): multiplies every count of the suite. */
export const SCALE: number = parseScale(process.env['RELIABILITY_SCALE']);

/** `n` times {@link SCALE}, rounded, at least 1. */
export function scaled(n: number): number {
  return Math.max(1, Math.round(n * SCALE));
}

/** A test timeout that grows with {@link SCALE}: `baseMs` plus `perUnitMs` for each unit of scale above 1. */
export function scaledTimeout(baseMs: number, perUnitMs = baseMs): number {
  return Math.round(baseMs + (SCALE - 1) * perUnitMs);
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/** The secrets one registrar is started with. */
export interface Credentials {
  regSecret: string;
  /** The private key as 64 lowercase hex digits. */
  privhex: string;
  /** How it is handed to the child: `0x` and upper case (the CLI accepts both). */
  envPrivhex: string;
}

/** Fresh credentials: a recognisable registration secret and a valid key. */
export function newCredentials(): Credentials {
  const privhex = generateSecretKey().exposeHex().toLowerCase();
  return {
    regSecret: `reg-secret-${randomBytes(18).toString('hex')}`,
    privhex,
    envPrivhex: `0x${privhex.toUpperCase()}`,
  };
}

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

/** A figure of the reliability suite, at this run's {@link SCALE}. */
export function recordFigure(name: string, value: unknown): void {
  writeFigure('reliability', name, value, { scale: SCALE });
}

// ---------------------------------------------------------------------------
// Registrar children
// ---------------------------------------------------------------------------

/** How a child ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running `run` child. */
export interface RegistrarChild {
  /** A label for messages (e.g. `registrar-2`). */
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** When it was spawned (`performance.now()`). */
  readonly spawnedAt: number;
  /** Its JSON log lines so far, in order. */
  readonly json: readonly TimedLine[];
  stdout(): string;
  stderr(): string;
  readonly hasExited: boolean;
  /** Resolves once it exited and its output was read to the end. */
  readonly exited: Promise<ChildExit>;
  /** When it exited (`performance.now()`), if it did. */
  readonly exitedAt: number | undefined;
  /** Wait for a JSON line matching `predicate` at index `from` (default 0) or later. */
  waitFor(predicate: (line: JsonLine) => boolean, options?: WaitOptions): Promise<TimedLine & { index: number }>;
  /** Wait for a line whose `event` is `name`. */
  waitForEvent(name: string, options?: WaitOptions): Promise<TimedLine & { index: number }>;
  /** The lines whose `event` is `name`. */
  events(name: string): TimedLine[];
  /** Send SIGKILL (if still running) and wait for the exit. */
  kill(): Promise<ChildExit>;
  /** Send `signal` and wait for the exit; SIGKILL and reject after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ChildExit>;
}

/** The environment of a `run` child: PATH and HOME, JSON logs, 127.0.0.1 and a free port, plus `extra`. */
export function registrarEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
  Object.assign(env, { LOG_FORMAT: 'json', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: '0', NODE_VERSION: '1.2.3' });
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * Spawn `node dist/src/cli/launch.cjs run` with `env` (see
 * {@link registrarEnv}) through test/support/child.ts. The child is SIGKILLed
 * at cleanup if still running.
 */
export function spawnRegistrar(t: Cleanup, name: string, env: NodeJS.ProcessEnv, wrapper: readonly string[] = []): RegistrarChild {
  const c = spawnChild(t, { args: ['run'], env, name, waitTimeoutMs: 20_000, stopTimeoutMs: 15_000, wrapper });
  if (c.proc.pid === undefined) throw new Error(`${name}: could not spawn ${process.execPath}`);
  const pid = c.proc.pid;
  const exitOf = (r: ChildResult): ChildExit => ({ code: r.code, signal: r.signal });
  const exited = c.exited.then(exitOf);
  return {
    name,
    proc: c.proc,
    pid,
    spawnedAt: c.spawnedAt,
    json: c.timed,
    stdout: c.stdout,
    stderr: c.stderr,
    get hasExited() {
      return c.hasExited;
    },
    get exitedAt() {
      return c.exitedAt;
    },
    exited,
    waitFor: (predicate, options) => c.waitFor(predicate, options),
    waitForEvent: (event, options) => c.waitForEvent(event, options),
    events: (event) => c.timed.filter((l) => l.line['event'] === event),
    kill: () => c.kill().then(exitOf),
    stop: (signal, timeoutMs) => c.stop(signal, timeoutMs).then(exitOf),
  };
}

/** The URL a child's callback routes listen on (from its `http.listening` line). */
export async function listenUrlOf(child: RegistrarChild, timeoutMs = 30_000): Promise<string> {
  const { line } = await child.waitForEvent('http.listening', { timeoutMs });
  const url = line['url'];
  assert.equal(typeof url, 'string', `${child.name}: http.listening without a url`);
  return url as string;
}

/** Where and how {@link spawnNode} starts a registrar. */
export interface NodeSpec {
  /** A label for messages (e.g. `registrar-2`). */
  name: string;
  /** Its NODE_URL (what it registers as). */
  nodeUrl: string;
  dataDir: string;
  /** More environment (e.g. LOCK_STALE_SECS, CALLBACK_WINDOW_SECS), over the defaults. */
  env?: Record<string, string>;
  /** A command that runs node for it (e.g. `unshare` for a PID namespace of its own). */
  wrapper?: readonly string[];
}

/**
 * Spawn a registrar against `dds` with `creds` (REGISTER_INTERVAL_SECS=1) and
 * tell the DDS where it listens once it says so, so that it is called back.
 */
export function spawnNode(t: Cleanup, dds: FakeDds, creds: Credentials, spec: NodeSpec): RegistrarChild {
  const child = spawnRegistrar(
    t,
    spec.name,
    registrarEnv({
      DDS_BASE_URL: dds.url,
      NODE_URL: spec.nodeUrl,
      REG_SECRET: creds.regSecret,
      SECP256K1_PRIVHEX: creds.envPrivhex,
      REGISTER_INTERVAL_SECS: '1',
      DATA_DIR: spec.dataDir,
      ...spec.env,
    }),
    spec.wrapper,
  );
  void listenUrlOf(child).then(
    (url) => dds.setListenUrl(spec.nodeUrl, url),
    () => undefined,
  );
  return child;
}

/**
 * The environment of registrars that judge each other's liveness: a lock
 * staleness of `staleSecs` and the request timeout a second under it (the
 * settings refuse a staleness not above the timeout), `extra` over them.
 */
export function livenessEnv(staleSecs: number, extra: Record<string, string> = {}): Record<string, string> {
  return { LOCK_STALE_SECS: String(staleSecs), REQUEST_TIMEOUT_SECS: String(staleSecs - 1), ...extra };
}

/** Registrars sharing one fresh data directory, one DDS and one environment. */
export interface SharedDataDir {
  dataDir: string;
  /** Spawn one as `http://<name>.reliability.test:8080` (see {@link spawnNode}); `more.env` goes over the shared one. */
  spawn(name: string, creds: Credentials, more?: Pick<NodeSpec, 'env' | 'wrapper'>): RegistrarChild;
}

/** A fresh `data` directory in a temp directory, for registrars of `dds` started with `env`. */
export function sharedDataDir(t: Cleanup, dds: FakeDds, env: Record<string, string>): SharedDataDir {
  const dataDir = path.join(tempDir(t), 'data');
  return {
    dataDir,
    spawn: (name, creds, more = {}) =>
      spawnNode(t, dds, creds, { name, nodeUrl: `http://${name}.reliability.test:8080`, dataDir, ...more, env: { ...env, ...more.env } }),
  };
}

/** Everything a child wrote, for the secret scan: `{ '<name> stdout': …, '<name> stderr': … }`. */
export function outputsOf(children: readonly RegistrarChild[]): Record<string, string> {
  const texts: Record<string, string> = {};
  for (const c of children) {
    texts[`${c.name} stdout`] = c.stdout();
    texts[`${c.name} stderr`] = c.stderr();
  }
  return texts;
}

// ---------------------------------------------------------------------------
// The data directory
// ---------------------------------------------------------------------------

/** Paths of a data directory's files. */
export function dataPaths(dataDir: string): { state: string; lock: string; holder: string; mutex: string } {
  const lock = path.join(dataDir, 'registration.lock');
  return {
    state: path.join(dataDir, 'registration_state.json'),
    lock,
    holder: `${lock}.holder.json`,
    mutex: `${lock}.mutex`,
  };
}

/** The state file's text, or `null` when it does not exist. */
export function readStateText(dataDir: string): string | null {
  try {
    return fs.readFileSync(dataPaths(dataDir).state, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The state file as JSON, or `null` when it does not exist. Throws (with the text) when it does not parse. */
export function readStateJson(dataDir: string): Record<string, unknown> | null {
  const text = readStateText(dataDir);
  if (text === null) return null;
  try {
    const v: unknown = JSON.parse(text);
    assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), 'state file is not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new Error(`state file does not parse (${(err as Error).message}): ${JSON.stringify(text.slice(0, 200))}`);
  }
}

/** Temp files of atomic writes in `dataDir` (`.<target>.<pid>.<hex>.tmp`), with the pid that wrote each. */
export function tempFiles(dataDir: string): { name: string; pid: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dataDir);
  } catch {
    return [];
  }
  const out: { name: string; pid: number }[] = [];
  for (const name of names) {
    const m = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
    if (m) out.push({ name, pid: Number(m[1]) });
  }
  return out;
}

/**
 * Watch the state file while a test runs: read it every `everyMs`, count the
 * reads, and keep the texts that did not parse.
 */
export function watchStateFile(dataDir: string, everyMs = 10): { stop(): Promise<{ reads: number; missing: number; bad: string[] }> } {
  let stopped = false;
  let reads = 0;
  let missing = 0;
  const bad: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      try {
        if (readStateJson(dataDir) === null) missing += 1;
      } catch (err) {
        bad.push((err as Error).message);
      }
      reads += 1;
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { reads, missing, bad };
    },
  };
}
