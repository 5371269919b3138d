/**
 * PID namespaces for the reliability suite: a registrar child as the init of
 * a namespace of its own (`unshare --pid --fork --mount-proc`, as root), as
 * in a container.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { sleep } from '../support/time.js';
import type { RegistrarChild } from './common.js';

/** The registrar as init of a PID namespace of its own; `--kill-child`: killing `unshare` kills it. */
export const UNSHARE = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'] as const;

/** Why PID-namespace tests cannot run here, or `undefined`. */
export function noUnshare(): string | undefined {
  const r = spawnSync(UNSHARE[0], [...UNSHARE.slice(1), 'true'], { stdio: 'ignore', timeout: 10_000 });
  if (r.error !== undefined) return `unshare is not available (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  return r.status === 0 ? undefined : `unshare --pid is not permitted here (exit ${r.status}; needs root)`;
}

/** The pid of node inside `unshare --fork` (its only child), as this namespace sees it. */
export function innerPid(child: RegistrarChild): number {
  const text = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim();
  const pid = Number(text.split(/\s+/)[0]);
  assert.ok(Number.isSafeInteger(pid) && pid > 0, `${child.name}: no child of unshare (${JSON.stringify(text)})`);
  return pid;
}

/** SIGTERM node itself (unshare ignores it) and wait for the exit. */
export async function stopInner(child: RegistrarChild, timeoutMs = 20_000): Promise<number | null> {
  process.kill(innerPid(child), 'SIGTERM');
  const exit = await Promise.race([child.exited, sleep(timeoutMs).then(() => null)]);
  assert.ok(exit !== null, `${child.name} did not stop within ${timeoutMs} ms`);
  return exit.code;
}
