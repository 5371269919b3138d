/**
 * A Node child process (by default the real CLI as built and installed,
 * `dist/src/cli/launch.cjs`) whose stdout is read as JSON lines as they come,
 * each stamped with the moment it arrived: the one implementation behind the
 * end-to-end suite's `spawnCli`, the reliability suite's `spawnRegistrar` and
 * the benchmarks' children.
 *
 * ```ts
 * const child = spawnChild(t, { args: ['run'], env });
 * const { line, at } = await child.waitForEvent('http.listening');
 * await child.stop('SIGTERM');
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { onCleanup, type Cleanup } from './cleanup.js';

/** The repository root (children run with it as their working directory). */
export const REPO_ROOT: string = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The CLI's entry point as shipped (package.json `bin`), relative to
 * {@link REPO_ROOT}: the launcher compiled into `dist/` and the bundle it
 * loads (built by `npm ci`'s `prepare` and by `npm test`), so that the tests
 * run what users run, and children start in a fraction of a second.
 */
export const BIN = 'dist/src/cli/launch.cjs';
/** The bundle {@link BIN} loads (scripts/build-bin.mjs). */
export const BUNDLE = 'dist/src/cli/bundle.cjs';

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

let checkedBuild = false;
/** Refuse to test a stale build: `dist/` must be newer than every file in `src/` and `machines/`. */
export function assertBuilt(): void {
  if (checkedBuild) return;
  const mtime = (file: string): number => (fs.existsSync(path.join(REPO_ROOT, file)) ? fs.statSync(path.join(REPO_ROOT, file)).mtimeMs : 0);
  const built = Math.min(mtime(BIN), mtime(BUNDLE));
  const sources = Math.max(newestMtime(path.join(REPO_ROOT, 'src')), newestMtime(path.join(REPO_ROOT, 'machines')));
  if (built < sources) throw new Error(`${BIN} or ${BUNDLE} is missing or older than src/: run \`npm run build\` first (npm test does)`);
  checkedBuild = true;
}

/** A parsed JSON line of a child's stdout. */
export type JsonLine = Record<string, unknown>;

/** A JSON line and when (on `performance.now()`'s clock) the parent read it. */
export interface TimedLine {
  line: JsonLine;
  at: number;
}

/** What a finished child left behind. */
export interface ChildResult {
  /** Exit status, or `null` when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link LineChild.waitFor}. */
export interface WaitOptions {
  /** Give up after this long (default: the child's `waitTimeoutMs`). */
  timeoutMs?: number;
  /** Look at JSON lines from this index on (default 0). */
  from?: number;
  /** What is waited for, for messages. */
  what?: string;
}

/** Options of {@link LineChild.waitForEvent}. */
export interface WaitForEventOptions extends WaitOptions {
  /** The field compared with the name (default `event`). */
  field?: string;
}

/** How to start a child with {@link spawnChild}. */
export interface SpawnChildOptions {
  /** The script run through tsx, relative to `cwd` (default {@link BIN}). */
  script?: string;
  /** Its arguments. */
  args?: readonly string[];
  /** Its environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Its working directory (default {@link REPO_ROOT}). */
  cwd?: string;
  /**
   * A command that runs node for it (e.g. `['unshare', '--pid', '--fork', '--mount-proc']`);
   * `proc` is then that command's process, not node's.
   */
  wrapper?: readonly string[];
  /** A label for messages (default `child`). */
  name?: string;
  /** `pipe` keeps stdin open (for children that run until it ends); default `ignore`. */
  stdin?: 'ignore' | 'pipe';
  /** Default timeout of {@link LineChild.waitFor} (default 15 s). */
  waitTimeoutMs?: number;
  /** Default timeout of {@link LineChild.stop} (default 10 s). */
  stopTimeoutMs?: number;
  /** Run as this user and group id (as root: e.g. a uid with no passwd entry, as systemd's `DynamicUser=`). */
  uid?: number;
  gid?: number;
}

/** A running child and its output. */
export interface LineChild {
  readonly name: string;
  readonly proc: ChildProcess;
  /** When it was spawned (`performance.now()`). */
  readonly spawnedAt: number;
  /** Every complete stdout line so far, in order (a last unterminated one is added at the exit). */
  readonly lines: readonly string[];
  /** The stdout lines that parsed as JSON objects, in order. */
  readonly json: readonly JsonLine[];
  /** The same lines with their arrival times ({@link json}'s indices). */
  readonly timed: readonly TimedLine[];
  /** All stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  readonly hasExited: boolean;
  /** When it exited (`performance.now()`), if it did. */
  readonly exitedAt: number | undefined;
  /** Resolves once it exited and its output was read to the end. */
  readonly exited: Promise<ChildResult>;
  /**
   * Wait for a JSON line matching `predicate` at index `from` (default 0) or
   * later. Rejects after the timeout, or as soon as the child exits without
   * one, with the output's tail in the message.
   */
  waitFor(predicate: (line: JsonLine) => boolean, options?: WaitOptions): Promise<TimedLine & { index: number }>;
  /** Wait for a line whose `field` (default `event`) equals `name`. */
  waitForEvent(name: string, options?: WaitForEventOptions): Promise<TimedLine & { index: number }>;
  /** The JSON lines whose `field` (default `event`) equals `name`. */
  events(name: string, field?: string): JsonLine[];
  /** Send SIGKILL (if still running) and wait for the exit. */
  kill(): Promise<ChildResult>;
  /** Send `signal` (default SIGTERM) and wait for the exit; SIGKILL and reject after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ChildResult>;
}

/** The last `n` characters of `text`. */
export function tail(text: string, n = 3000): string {
  return text.length > n ? `…${text.slice(-n)}` : text;
}

/**
 * Spawn `node <script> …args` (through tsx for a `.ts` script) in `cwd`, reading its stdout as
 * JSON lines. The child is SIGKILLed at cleanup if it is still running, and
 * the cleanup waits for its exit.
 */
export function spawnChild(t: Cleanup, options: SpawnChildOptions = {}): LineChild {
  const { script = BIN, args = [], env, cwd = REPO_ROOT, name = 'child', stdin = 'ignore' } = options;
  const waitTimeoutMs = options.waitTimeoutMs ?? 15_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const spawnedAt = performance.now();
  if (script === BIN) assertBuilt();
  // Compiled JavaScript runs as is; TypeScript (test fixtures) through tsx.
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const nodeArgs = [...loader, script, ...args];
  const [command, ...commandArgs] = options.wrapper === undefined ? [process.execPath, ...nodeArgs] : [...options.wrapper, process.execPath, ...nodeArgs];
  const proc = spawn(command ?? process.execPath, commandArgs, {
    cwd,
    env: env ?? process.env,
    stdio: [stdin, 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  const lines: string[] = [];
  const json: JsonLine[] = [];
  const timed: TimedLine[] = [];
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
    lines.push(line);
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
        json.push(parsed as JsonLine);
        timed.push({ line: parsed as JsonLine, at: performance.now() });
      }
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
  const exitedPromise = new Promise<ChildResult>((resolve) => {
    // 'close' fires after the stdio streams ended: the output is complete.
    proc.once('close', (code, signal) => {
      exited = true;
      exitedAt = performance.now();
      if (partial !== '') take(partial);
      partial = '';
      wake();
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  proc.once('error', () => undefined);
  onCleanup(t, () => {
    if (!exited) proc.kill('SIGKILL');
    return exitedPromise.then(() => undefined);
  });

  const child: LineChild = {
    name,
    proc,
    spawnedAt,
    lines,
    json,
    timed,
    stdout: () => out,
    stderr: () => err,
    get hasExited() {
      return exited;
    },
    get exitedAt() {
      return exitedAt;
    },
    exited: exitedPromise,
    waitFor(predicate, waitOptions = {}) {
      const { timeoutMs = waitTimeoutMs, from = 0, what = 'a matching line' } = waitOptions;
      return new Promise((resolve, reject) => {
        let next = from;
        const done = (): void => {
          wakers.delete(check);
          clearTimeout(timer);
        };
        const check = (): void => {
          for (; next < timed.length; next += 1) {
            const entry = timed[next] as TimedLine;
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
    waitForEvent(event, waitOptions = {}) {
      const { field = 'event', ...rest } = waitOptions;
      return child.waitFor((l) => l[field] === event, { what: `${field} ${event}`, ...rest });
    },
    events(event, field = 'event') {
      return json.filter((l) => l[field] === event);
    },
    kill() {
      if (!exited) proc.kill('SIGKILL');
      return exitedPromise;
    },
    async stop(signal = 'SIGTERM', timeoutMs = stopTimeoutMs) {
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

/**
 * Wait for `child` to exit on its own; SIGKILL it and reject after
 * `timeoutMs` (the message says `what` and the output's tail).
 */
export async function exitWithin(child: LineChild, timeoutMs: number, what = child.name): Promise<ChildResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.proc.kill('SIGKILL');
      reject(new Error(`${what} did not finish within ${timeoutMs} ms\nstdout: ${tail(child.stdout())}\nstderr: ${tail(child.stderr())}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([child.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link nextMessage}. */
export interface NextMessageOptions {
  /** Names the child and what is awaited, in messages. */
  what: string;
  timeoutMs: number;
  /** More to say when it fails (e.g. the child's stderr). */
  context?: () => string;
}

/**
 * The first IPC message of `proc` that `pick` accepts (returns something for);
 * rejects when `pick` throws, when the child exits first, or after the timeout.
 */
export function nextMessage<T>(proc: ChildProcess, pick: (message: unknown) => T | undefined, options: NextMessageOptions): Promise<T> {
  const { what, timeoutMs, context = () => '' } = options;
  return new Promise((resolve, reject) => {
    const fail = (message: string): void => {
      done();
      const more = context();
      reject(new Error(more === '' ? message : `${message}\n${more}`));
    };
    const onMessage = (message: unknown): void => {
      let picked: T | undefined;
      try {
        picked = pick(message);
      } catch (error) {
        done();
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (picked === undefined) return;
      done();
      resolve(picked);
    };
    const onExit = (code: number | null): void => fail(`${what}: the child exited (code ${String(code)}) first`);
    const timer = setTimeout(() => fail(`${what}: nothing within ${timeoutMs} ms`), timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      proc.off('message', onMessage);
      proc.off('exit', onExit);
    };
    proc.on('message', onMessage);
    proc.once('exit', onExit);
  });
}
