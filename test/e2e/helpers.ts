/**
 * Helpers for the end-to-end tests: spawn the real CLI
 * (`posemesh-node-registration`, i.e. the built `dist/src/cli/launch.cjs`) as a child
 * process with a controlled environment (test/support/child.ts reads its JSON
 * log lines as they come).
 */
import { exitWithin, spawnChild, type ChildResult, type Cleanup, type LineChild } from '../support/index.js';

/** What a finished child left behind. */
export type CliResult = ChildResult;

/** A running CLI child (see test/support/child.ts). */
export type CliChild = LineChild;

/** A minimal environment: PATH and HOME, plus `extra` (undefined values are left out). */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
  if (process.env['HOME'] !== undefined) env['HOME'] = process.env['HOME'];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** Spawn the CLI with `args` in the repository root; it is killed (SIGKILL) at cleanup if still running. */
export function spawnCli(t: Cleanup, args: readonly string[], env: NodeJS.ProcessEnv): CliChild {
  return spawnChild(t, { args, env, name: `cli ${args[0] ?? ''}`.trim(), waitTimeoutMs: 15_000, stopTimeoutMs: 10_000 });
}

/** Run the CLI to completion (SIGKILL and reject after `timeoutMs`). */
export function runCli(t: Cleanup, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<CliResult> {
  return exitWithin(spawnCli(t, args, env), timeoutMs, `cli ${args.join(' ')}`);
}

/** What `run` needs to know of its node: DDS, the credentials, the data directory. */
export interface RunTarget {
  ddsUrl: string;
  regSecret: string;
  privhex: string;
  dataDir: string;
}

/**
 * A `run` environment for `target`: JSON logs, routes on a free port of
 * 127.0.0.1, a node URL nothing answers, a 5 s interval; `extra` over it.
 */
export function runEnv(target: RunTarget, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return cliEnv({
    LOG_FORMAT: 'json',
    DDS_BASE_URL: target.ddsUrl,
    NODE_URL: 'http://127.0.0.1:9/node',
    REG_SECRET: target.regSecret,
    SECP256K1_PRIVHEX: target.privhex,
    REGISTER_INTERVAL_SECS: '5',
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: target.dataDir,
    ...extra,
  });
}
