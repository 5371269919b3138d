/**
 * Shared helpers of the reliability suite (`test/reliability/`) and of
 * `bench/recovery.ts`:
 *
 * - {@link SCALE} / {@link scaled}: `RELIABILITY_SCALE` multiplies every count;
 * - {@link spawnRegistrar}: the real CLI (`src/cli/bin.ts run`, through tsx) as a
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
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { generateSecretKey } from '../../src/crypto.js';
import { startTestDdsServer, type RecordedRequest, type ResponderAnswer, type TestDdsServer } from '../helpers/dds-server.js';

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

/** The repository root (children run with it as their working directory). */
export const REPO_ROOT: string = fileURLToPath(new URL('../../', import.meta.url));

/** The CLI's entry point, relative to {@link REPO_ROOT}. */
export const BIN = 'src/cli/bin.ts';

/** The registration path DDS serves. */
export const REGISTER_PATH = '/internal/v1/nodes/register';

/** Sleep. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds on a monotonic clock. */
export function now(): number {
  return performance.now();
}

/** Something that can register cleanup (a `node:test` context, or {@link CleanupStack}). */
export interface Cleanup {
  after(fn: () => unknown): void;
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

/** A fresh temporary directory, removed at cleanup. */
export function tempDir(t: Cleanup, prefix = 'posemesh-reliability-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    } catch {
      // A child still writing (hooks run in the order they were added): remove it at exit instead.
      process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    }
  });
  return dir;
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

/** Every spelling of a secret to look for: as is, without `0x`, with `0x`, compared case-insensitively. */
export function secretForms(secret: string): string[] {
  const bare = secret.replace(/^0x/i, '');
  return [...new Set([secret, bare, `0x${bare}`].map((s) => s.toLowerCase()))].filter((s) => s.length >= 8);
}

/**
 * Assert that no secret (in any of its {@link secretForms}, any case) appears
 * in any of `texts`. The failure names where and which secret (by index), never the secret.
 *
 * @returns the number of (text, secret) pairs checked.
 */
export function assertNoSecrets(texts: Record<string, string> | readonly string[], secrets: readonly string[]): number {
  const entries: [string, string][] = Array.isArray(texts)
    ? texts.map((text, i): [string, string] => [`text #${i}`, text])
    : Object.entries(texts as Record<string, string>);
  assert.ok(secrets.length > 0, 'assertNoSecrets: no secrets to look for');
  let checks = 0;
  for (const [where, text] of entries) {
    const haystack = text.toLowerCase();
    secrets.forEach((secret, i) => {
      for (const form of secretForms(secret)) {
        assert.ok(!haystack.includes(form), `secret #${i} (${secret.length} chars) leaked into ${where}`);
      }
      checks += 1;
    });
  }
  return checks;
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

/** A parsed JSON log line. */
export type JsonLine = Record<string, unknown>;

/** A JSON log line and when (on {@link now}'s clock) the parent read it. */
export interface TimedLine {
  line: JsonLine;
  at: number;
}

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

/** Options of {@link RegistrarChild.waitFor}. */
export interface WaitOptions {
  timeoutMs?: number;
  from?: number;
  what?: string;
}

function tail(text: string, n = 3000): string {
  return text.length > n ? `…${text.slice(-n)}` : text;
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
 * Spawn `node --import tsx src/cli/bin.ts run` with `env` (see
 * {@link registrarEnv}). The child is SIGKILLed at cleanup if still running.
 */
export function spawnRegistrar(t: Cleanup, name: string, env: NodeJS.ProcessEnv): RegistrarChild {
  const spawnedAt = now();
  const proc = spawn(process.execPath, ['--import', 'tsx', BIN, 'run'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const json: TimedLine[] = [];
  let out = '';
  let err = '';
  let partial = '';
  let exited = false;
  let exitedAt: number | undefined;
  const wakers = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...wakers]) w();
  };
  const take = (line: string): void => {
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) json.push({ line: parsed as JsonLine, at: now() });
    } catch {
      // not a JSON line (kept in stdout for the secret scan)
    }
  };
  proc.stdout?.setEncoding('utf8');
  proc.stderr?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    out += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      take(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    wake();
  });
  proc.stderr?.on('data', (chunk: string) => {
    err += chunk;
  });
  const exitedPromise = new Promise<ChildExit>((resolve) => {
    proc.once('close', (code, signal) => {
      exited = true;
      exitedAt = now();
      if (partial !== '') take(partial);
      partial = '';
      wake();
      resolve({ code, signal });
    });
  });
  proc.once('error', () => undefined);
  t.after(() => {
    if (!exited) proc.kill('SIGKILL');
    return exitedPromise.then(() => undefined);
  });
  if (proc.pid === undefined) throw new Error(`${name}: could not spawn ${process.execPath}`);
  const pid = proc.pid;

  const child: RegistrarChild = {
    name,
    proc,
    pid,
    spawnedAt,
    json,
    stdout: () => out,
    stderr: () => err,
    get hasExited() {
      return exited;
    },
    get exitedAt() {
      return exitedAt;
    },
    exited: exitedPromise,
    waitFor(predicate, options = {}) {
      const { timeoutMs = 20_000, from = 0, what = 'a matching line' } = options;
      return new Promise((resolve, reject) => {
        let next = from;
        const done = (): void => {
          wakers.delete(check);
          clearTimeout(timer);
        };
        const check = (): void => {
          for (; next < json.length; next += 1) {
            const entry = json[next] as TimedLine;
            if (predicate(entry.line)) {
              done();
              resolve({ ...entry, index: next });
              return;
            }
          }
          if (exited) {
            done();
            reject(new Error(`${name} exited before ${what}\nstdout: ${tail(out)}\nstderr: ${tail(err)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no ${what} within ${timeoutMs} ms\nstdout: ${tail(out)}\nstderr: ${tail(err)}`));
        }, timeoutMs);
        wakers.add(check);
        check();
      });
    },
    waitForEvent(event, options = {}) {
      return child.waitFor((l) => l['event'] === event, { what: `event ${event}`, ...options });
    },
    events(event) {
      return json.filter((l) => l.line['event'] === event);
    },
    kill() {
      if (!exited) proc.kill('SIGKILL');
      return exitedPromise;
    },
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (!exited) proc.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          proc.kill('SIGKILL');
          reject(new Error(`${name} did not exit within ${timeoutMs} ms of ${signal}\nstdout: ${tail(out)}\nstderr: ${tail(err)}`));
        }, timeoutMs);
      });
      try {
        return await Promise.race([exitedPromise, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return child;
}

/** The URL a child's callback routes listen on (from its `http.listening` line). */
export async function listenUrlOf(child: RegistrarChild, timeoutMs = 30_000): Promise<string> {
  const { line } = await child.waitForEvent('http.listening', { timeoutMs });
  const url = line['url'];
  assert.equal(typeof url, 'string', `${child.name}: http.listening without a url`);
  return url as string;
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
