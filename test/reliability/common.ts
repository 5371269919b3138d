/**
 * Shared helpers of the reliability suite (`test/reliability/`) and of
 * `bench/recovery.ts`:
 *
 * - {@link SCALE} / {@link scaled}: `RELIABILITY_SCALE` multiplies every count;
 * - {@link spawnRegistrar}: the real CLI as built (`dist/src/cli/launch.cjs run`) as a
 *   child with JSON log lines, each stamped with the moment it arrived;
 * - {@link startReliabilityDds}: a local DDS (test/helpers/dds-server.ts) that
 *   delays registrations and calls each registering node back with a fresh
 *   node secret, as DDS does, remembering every secret it handed out;
 * - {@link assertNoSecrets}: the secret scanner;
 * - {@link recordFigure}: figures for `docs/reliability.md`, appended as JSON
 *   lines to `.tmp/reliability-figures.jsonl` in the repository;
 * - small file helpers for the data directory (state file, lock, temp files).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { generateSecretKey } from '../../src/crypto.js';
import { REGISTRATION_PATH as REGISTER_PATH } from '../../src/register.js';
import { REPO_ROOT, spawnChild, type ChildResult, type Cleanup, type JsonLine, type TimedLine, type WaitOptions } from '../helpers/child.js';
import { startTestDdsServer, type RecordedRequest, type ResponderAnswer, type TestDdsServer } from '../helpers/dds-server.js';
import { tempDir as makeTempDir } from '../helpers/temp.js';

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
// Small utilities
// ---------------------------------------------------------------------------

export { BIN, REPO_ROOT, type Cleanup, type JsonLine, type TimedLine, type WaitOptions } from '../helpers/child.js';
export { assertNoSecrets, secretForms } from '../helpers/secrets.js';

/** Sleep. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds on a monotonic clock. */
export function now(): number {
  return performance.now();
}

/** Cleanup for scripts outside `node:test` (the benchmark): run the functions in reverse with {@link run}. */
export class CleanupStack implements Cleanup {
  readonly #fns: (() => unknown)[] = [];
  after(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  /** Run every registered function, last first; errors are ignored. */
  async run(): Promise<void> {
    while (this.#fns.length > 0) {
      const fn = this.#fns.pop();
      try {
        await fn?.();
      } catch {
        // cleanup goes on
      }
    }
  }
}

/** A fresh temporary directory, removed at cleanup (see test/helpers/temp.ts). */
export function tempDir(t: Cleanup, prefix = 'posemesh-reliability-'): string {
  return makeTempDir(t, prefix);
}

/** Summary statistics of a sample (nearest-rank percentiles). */
export interface Stats {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
  mean: number;
}

/** {@link Stats} of `values` (all `NaN` for an empty sample). */
export function stats(values: readonly number[]): Stats {
  if (values.length === 0) return { n: 0, min: NaN, median: NaN, p95: NaN, max: NaN, mean: NaN };
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
  return {
    n: s.length,
    min: s[0] as number,
    median: rank(0.5),
    p95: rank(0.95),
    max: s[s.length - 1] as number,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/** Round to `digits` decimals (for figures). */
export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
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

/** Where {@link recordFigure} appends. */
export const FIGURES_FILE: string = path.join(REPO_ROOT, '.tmp', 'reliability-figures.jsonl');

/**
 * Append one figure to {@link FIGURES_FILE} (`{name, value, scale, at}` as a
 * JSON line), for the lead to write `docs/reliability.md` from. Best effort:
 * a figure that cannot be written never fails a test.
 */
export function recordFigure(name: string, value: unknown): void {
  try {
    fs.mkdirSync(path.dirname(FIGURES_FILE), { recursive: true });
    const line = JSON.stringify({ name, value, scale: SCALE, at: new Date().toISOString() });
    fs.appendFileSync(FIGURES_FILE, `${line}\n`);
  } catch {
    // figures are a by-product
  }
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
  /** When it was spawned ({@link now}'s clock). */
  readonly spawnedAt: number;
  /** Its JSON log lines so far, in order. */
  readonly json: readonly TimedLine[];
  stdout(): string;
  stderr(): string;
  readonly hasExited: boolean;
  /** Resolves once it exited and its output was read to the end. */
  readonly exited: Promise<ChildExit>;
  /** When it exited ({@link now}'s clock), if it did. */
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
 * {@link registrarEnv}) through test/helpers/child.ts. The child is SIGKILLed
 * at cleanup if still running.
 */
export function spawnRegistrar(t: Cleanup, name: string, env: NodeJS.ProcessEnv): RegistrarChild {
  const c = spawnChild(t, { args: ['run'], env, name, waitTimeoutMs: 20_000, stopTimeoutMs: 15_000 });
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
}

/**
 * Spawn a registrar against `dds` with `creds` (REGISTER_INTERVAL_SECS=1) and
 * tell the DDS where it listens once it says so, so that it is called back.
 */
export function spawnNode(t: Cleanup, dds: ReliabilityDds, creds: Credentials, spec: NodeSpec): RegistrarChild {
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
  );
  void listenUrlOf(child).then(
    (url) => dds.setListenUrl(spec.nodeUrl, url),
    () => undefined,
  );
  return child;
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
// The local DDS
// ---------------------------------------------------------------------------

/** A callback the DDS made to a node, and how the node answered. */
export interface CallbackRecord {
  nodeUrl: string;
  /** HTTP status, or `null` when the request failed (node gone). */
  status: number | null;
  /** The answer's body (scanned for secrets too). */
  body: string;
}

/** A {@link TestDdsServer} that also plays DDS's callback. */
export interface ReliabilityDds {
  readonly server: TestDdsServer;
  readonly url: string;
  /** Registration requests received so far. */
  registrations(): RecordedRequest[];
  /** Every node secret handed out so far. */
  readonly nodeSecrets: readonly string[];
  /** Every callback made, with its answer. */
  readonly callbacks: readonly CallbackRecord[];
  /** Tell the DDS where the node that registers as `nodeUrl` listens (so it can call it back). */
  setListenUrl(nodeUrl: string, listenUrl: string): void;
  /** The delay before answering a registration of `nodeUrl` (ms); also called once per registration. */
  setDelay(delay: (req: RecordedRequest, nodeUrl: string) => number): void;
  /** Called (synchronously) for every registration request as it arrives. */
  onRegistration(hook: ((req: RecordedRequest, nodeUrl: string) => void) | undefined): void;
  /** Call the node registered as `nodeUrl` back now with a fresh node secret; resolves with the answer's status. */
  callBack(nodeUrl: string): Promise<number | null>;
  /** Wait until all callbacks started so far have answered. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** The `url` of a registration body (the registering node's NODE_URL), or `''`. */
export function nodeUrlOf(req: RecordedRequest): string {
  const body = req.body;
  if (body !== null && typeof body === 'object' && 'url' in body && typeof body.url === 'string') return body.url;
  return '';
}

/**
 * Start a local DDS on 127.0.0.1: it answers every registration 200 `{}`
 * after `delay` ms, and — while the request is in flight, as DDS does —
 * calls the registering node back on `POST /internal/v1/registrations` with
 * a fresh id and node secret (when it knows where the node listens). It
 * never probes `/health`.
 */
export async function startReliabilityDds(t: Cleanup): Promise<ReliabilityDds> {
  const server = await startTestDdsServer();
  t.after(() => server.close());
  const listenUrls = new Map<string, string>();
  const nodeSecrets: string[] = [];
  const callbacks: CallbackRecord[] = [];
  const pending = new Set<Promise<void>>();
  let delay: (req: RecordedRequest, nodeUrl: string) => number = () => 0;
  let hook: ((req: RecordedRequest, nodeUrl: string) => void) | undefined;

  const callBack = (nodeUrl: string, listenUrl: string): Promise<number | null> => {
    const secret = randomBytes(32).toString('hex');
    nodeSecrets.push(secret);
    const p = (async () => {
      let status: number | null = null;
      let body = '';
      try {
        const res = await fetch(`${listenUrl}/internal/v1/registrations`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: JSON.stringify({ id: randomUUID(), secret, organization_id: 'org-reliability' }),
          signal: AbortSignal.timeout(10_000),
        });
        status = res.status;
        body = await res.text();
      } catch {
        // the node is gone (killed): nothing to record but the attempt
      }
      callbacks.push({ nodeUrl, status, body });
      return status;
    })();
    const settled = p.then(() => undefined);
    pending.add(settled);
    void settled.finally(() => pending.delete(settled));
    return p;
  };

  server.setResponder((req): ResponderAnswer => {
    if (!req.path.split('?')[0]?.endsWith(REGISTER_PATH)) return { status: 404, body: 'not found' };
    const nodeUrl = nodeUrlOf(req);
    try {
      hook?.(req, nodeUrl);
    } catch {
      // a test hook must not break the server
    }
    const listenUrl = listenUrls.get(nodeUrl);
    if (listenUrl !== undefined) void callBack(nodeUrl, listenUrl);
    return { status: 200, headers: { 'content-type': 'application/json' }, body: '{}', delayMs: Math.max(0, delay(req, nodeUrl)) };
  });

  return {
    server,
    url: server.url,
    registrations: () => server.requests.filter((r) => r.method === 'POST' && r.path.split('?')[0] === REGISTER_PATH),
    nodeSecrets,
    callbacks,
    setListenUrl(nodeUrl, listenUrl) {
      listenUrls.set(nodeUrl, listenUrl);
    },
    setDelay(d) {
      delay = d;
    },
    onRegistration(h) {
      hook = h;
    },
    callBack(nodeUrl) {
      const listenUrl = listenUrls.get(nodeUrl);
      if (listenUrl === undefined) return Promise.reject(new Error(`no listen URL known for ${nodeUrl}`));
      return callBack(nodeUrl, listenUrl);
    },
    async settle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    close: () => server.close(),
  };
}

/** Requests whose [receivedAt, finishedAt] intervals overlap, as pairs of indices (after sorting by arrival). */
export function overlappingPairs(requests: readonly RecordedRequest[]): [number, number][] {
  const sorted = [...requests].sort((a, b) => a.receivedAt - b.receivedAt);
  const pairs: [number, number][] = [];
  let latestEnd = -Infinity;
  let latestIdx = -1;
  sorted.forEach((r, i) => {
    if (r.receivedAt < latestEnd) pairs.push([latestIdx, i]);
    const end = r.finishedAt ?? Infinity;
    if (end > latestEnd) {
      latestEnd = end;
      latestIdx = i;
    }
  });
  return pairs;
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
