/**
 * Helpers for the end-to-end tests: spawn the real CLI
 * (`posemesh-node-registration`, i.e. the built `dist/src/cli/launch.cjs`) as a child
 * process with a controlled environment, read its JSON log lines as they
 * come, wait for a line matching a predicate, and prove that no secret ever
 * reached its output.
 */
import net from 'node:net';
import { tempDir as makeTempDir } from '../helpers/temp.js';
import { exitWithin, spawnChild, type ChildResult, type Cleanup, type LineChild } from '../helpers/child.js';

export { BIN, REPO_ROOT, type Cleanup, type JsonLine } from '../helpers/child.js';
export { assertNoLongHex, assertNoSecrets, secretForms } from '../helpers/secrets.js';

/** What a finished child left behind. */
export type CliResult = ChildResult;

/** A running CLI child (see test/helpers/child.ts). */
export type CliChild = LineChild;

/** A minimal environment: PATH and HOME, plus `extra` (undefined values are left out). */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
  if (process.env['HOME'] !== undefined) env['HOME'] = process.env['HOME'];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * Spawn the CLI with `args` in the repository root. The child is killed
 * (SIGKILL) in `t.after` if it is still running.
 */
export function spawnCli(t: Cleanup, args: readonly string[], env: NodeJS.ProcessEnv): CliChild {
  return spawnChild(t, { args, env, name: `cli ${args[0] ?? ''}`.trim(), waitTimeoutMs: 15_000, stopTimeoutMs: 10_000 });
}

/** Run the CLI to completion (SIGKILL and reject after `timeoutMs`). */
export function runCli(t: Cleanup, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<CliResult> {
  return exitWithin(spawnCli(t, args, env), timeoutMs, `cli ${args.join(' ')}`);
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

/** A fresh temporary directory, removed in `t.after` (see test/helpers/temp.ts). */
export function tempDir(t: Cleanup, prefix = 'posemesh-e2e-'): string {
  return makeTempDir(t, prefix);
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
