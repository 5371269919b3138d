/**
 * Time in tests and benchmarks: a monotonic clock, sleeping, and polling for
 * a condition (real time; tests that check delays use XState's SimulatedClock).
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

/** Milliseconds on a monotonic clock (`performance.now()`). */
export function now(): number {
  return performance.now();
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return delay(ms);
}

/** Poll every `everyMs` until `check` returns (or resolves with) true; fail naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}
