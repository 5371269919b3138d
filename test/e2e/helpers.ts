/**
 * Helpers for the end-to-end tests: spawn the real CLI
 * (`posemesh-node-registration`, i.e. `src/cli/bin.ts` through tsx) as a child
 * process with a controlled environment, read its JSON log lines as they
 * come, wait for a line matching a predicate, and prove that no secret ever
 * reached its output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

/** The repository root (the CLI runs with it as its working directory). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The CLI's entry point, relative to {@link REPO_ROOT}. */
export const BIN = 'src/cli/bin.ts';

/** A parsed JSON line of the child's stdout. */
export type JsonLine = Record<string, unknown>;

/** What a finished child left behind. */
export interface CliResult {
  /** Exit status, or `null` when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running CLI child. */
export interface CliChild {
  readonly proc: ChildProcess;
  /** Every complete stdout line so far, in order. */
  readonly lines: readonly string[];
  /** The stdout lines that parsed as JSON objects, in order. */
  readonly json: readonly JsonLine[];
  /** All stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /**
   * Wait for a JSON line matching `predicate`, looking at lines from index
   * `from` of {@link json} on (default 0). Rejects after `timeoutMs` or when
   * the child exits first, with the output's tail in the message.
   */
  waitFor(predicate: (line: JsonLine) => boolean, options?: { timeoutMs?: number; from?: number; what?: string }): Promise<{ line: JsonLine; index: number }>;
  /** Shorthand: wait for a line whose `field` (default `event`) equals `name`. */
  waitForEvent(name: string, options?: { timeoutMs?: number; from?: number; field?: string }): Promise<{ line: JsonLine; index: number }>;
  /** The JSON lines whose `field` (default `event`) equals `name`. */
  events(name: string, field?: string): JsonLine[];
  /** Resolves when the child has exited (and its output is fully read). */
  readonly exited: Promise<CliResult>;
  /** Whether the child has exited. */
  readonly hasExited: boolean;
  /** Send a signal and wait for the exit (SIGKILL after `timeoutMs`, then rejects). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<CliResult>;
}

/** A minimal environment: PATH and HOME, plus `extra` (undefined values are left out). */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
  if (process.env['HOME'] !== undefined) env['HOME'] = process.env['HOME'];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

function tail(text: string, n = 2000): string {
  return text.length > n ? `…${text.slice(-n)}` : text;
}

/** Something that can register cleanup (a `node:test` test context). */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/**
 * Spawn the CLI with `args` in {@link REPO_ROOT}. The child is killed
 * (SIGKILL) in `t.after` if it is still running.
 */
export function spawnCli(t: Cleanup, args: readonly string[], env: NodeJS.ProcessEnv): CliChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const json: JsonLine[] = [];
  let out = '';
  let err = '';
  let partial = '';
  let exited = false;
  const wakers = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...wakers]) w();
  };

  proc.stdout?.setEncoding('utf8');
  proc.stderr?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    out += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      lines.push(line);
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) json.push(parsed as JsonLine);
      } catch {
        // not a JSON line
      }
    }
    wake();
  });
  proc.stderr?.on('data', (chunk: string) => {
    err += chunk;
  });

  const exitedPromise = new Promise<CliResult>((resolve) => {
    // 'close' fires after the stdio streams ended: the output is complete.
    proc.once('close', (code, signal) => {
      exited = true;
      if (partial !== '') {
        lines.push(partial);
        partial = '';
      }
      wake();
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  proc.once('error', () => undefined);

  t.after(() => {
    if (!exited) proc.kill('SIGKILL');
    return exitedPromise.then(() => undefined);
  });

  const child: CliChild = {
    proc,
    lines,
    json,
    stdout: () => out,
    stderr: () => err,
    get hasExited() {
      return exited;
    },
    exited: exitedPromise,
    waitFor(predicate, options = {}) {
      const { timeoutMs = 15_000, from = 0, what = 'a matching line' } = options;
      return new Promise((resolve, reject) => {
        const done = (): void => {
          wakers.delete(check);
          clearTimeout(timer);
        };
        const check = (): void => {
          for (let i = from; i < json.length; i += 1) {
            const line = json[i] as JsonLine;
            if (predicate(line)) {
              done();
              resolve({ line, index: i });
              return;
            }
          }
          if (exited) {
            done();
            reject(new Error(`child exited before ${what}\nstdout: ${tail(out)}\nstderr: ${tail(err)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nstdout: ${tail(out)}\nstderr: ${tail(err)}`));
        }, timeoutMs);
        wakers.add(check);
        check();
      });
    },
    waitForEvent(name, options = {}) {
      const field = options.field ?? 'event';
      return child.waitFor((l) => l[field] === name, { ...options, what: `${field} ${name}` });
    },
    events(name, field = 'event') {
      return json.filter((l) => l[field] === name);
    },
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (!exited) proc.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          proc.kill('SIGKILL');
          reject(new Error(`child did not exit within ${timeoutMs} ms of ${signal}\nstdout: ${tail(out)}\nstderr: ${tail(err)}`));
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

/** Run the CLI to completion (SIGKILL and reject after `timeoutMs`). */
export async function runCli(t: Cleanup, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<CliResult> {
  const child = spawnCli(t, args, env);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.proc.kill('SIGKILL');
      reject(new Error(`cli ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${tail(child.stdout())}\nstderr: ${tail(child.stderr())}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([child.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port that was free a moment ago on `host` (listen on 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Occupy a port on `host` (closed in `t.after`); resolves with the port. */
export async function occupyPort(t: Cleanup, host = '127.0.0.1'): Promise<number> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/** A fresh temporary directory, removed in `t.after`. */
export function tempDir(t: Cleanup, prefix = 'posemesh-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The spellings under which a secret might show up: as is, lower and upper
 * case, and for hex keys with and without a `0x` prefix.
 */
export function secretForms(secret: string): string[] {
  const bare = secret.replace(/^0x/i, '');
  const forms = new Set([secret, bare, bare.toLowerCase(), bare.toUpperCase()]);
  return [...forms].filter((s) => s.length >= 8);
}

/**
 * Assert that none of `secrets` (in any of its {@link secretForms}) appears in
 * any of `texts`, compared case-insensitively. The message names where, never what.
 */
export function assertNoSecrets(texts: Record<string, string>, secrets: readonly string[]): void {
  for (const [where, text] of Object.entries(texts)) {
    const haystack = text.toLowerCase();
    secrets.forEach((secret, i) => {
      for (const form of secretForms(secret)) {
        assert.ok(!haystack.includes(form.toLowerCase()), `secret #${i} leaked into ${where}`);
      }
    });
  }
}

/**
 * Assert that no run of `minLength` or more hex digits appears in `text`:
 * for outputs where the secrets are made by the child itself (a node secret
 * from the simulator, `dev`'s own key and registration secret), which are all
 * long hex strings, while nothing that may be shown (ids are UUIDs, public key
 * prefixes are short) is.
 */
export function assertNoLongHex(where: string, text: string, minLength = 40): void {
  const m = new RegExp(`[0-9a-fA-F]{${minLength},}`).exec(text);
  assert.ok(m === null, `${where} holds a run of ${m?.[0].length ?? 0} hex digits (a secret?) at offset ${m?.index ?? -1}`);
}

/** Sleep. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fake DDS probing a node's `/health` every `everyMs` until stopped (at the latest in `t.after`). */
export function startProber(
  t: Cleanup,
  nodeUrl: string,
  everyMs: number,
  userAgent = 'DDS v1.0.0',
): { stop(): Promise<void>; readonly count: number; readonly failures: number } {
  let stopped = false;
  let count = 0;
  let failures = 0;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await fetch(`${nodeUrl}/health`, { headers: { 'user-agent': userAgent, connection: 'close' }, signal: AbortSignal.timeout(5000) });
        await res.body?.cancel();
        if (res.status === 200) count += 1;
        else failures += 1;
      } catch {
        failures += 1;
      }
      if (!stopped) await sleep(everyMs);
    }
  })();
  const stop = async (): Promise<void> => {
    stopped = true;
    await loop;
  };
  t.after(stop);
  return {
    stop,
    get count() {
      return count;
    },
    get failures() {
      return failures;
    },
  };
}
