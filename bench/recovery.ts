/**
 * Crash recovery: a registered `run` SIGKILLed at a random moment of its
 * cycle and a successor started at once on the same data directory; and a
 * dead holder's lock taken over (docs/benchmarks.md §7, docs/reliability.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RegistrationLock } from '../src/state/lock.js';
import { dataPaths, newCredentials, recordFigure, spawnNode, type RegistrarChild } from '../test/reliability/common.js';
import { spawnChild } from '../test/support/child.js';
import type { CleanupStack } from '../test/support/cleanup.js';
import { callbackResponder, startFakeDds } from '../test/support/fake-dds.js';
import { summarize, type Summary } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { now, sleep } from '../test/support/time.js';
import { benchOptions, figures, fmt, printTable, runBench } from './common.js';

const opts = benchOptions('recovery', 'SIGKILL → successor registered, and the takeover of a dead holder’s lock.', {
  runs: { default: 10, quick: 2, help: 'SIGKILLs, and lock takeovers' },
});
/** What a successor would wait for without the takeover. */
const LOCK_STALE_SECS = 30;
/** DDS answers each registration after this long, so that some kills land with a request in flight. */
const ANSWER_DELAY_MS = 200;

interface Recovery {
  killToSuccess: number;
  startup: number;
  upToSuccess: number;
  tookOver: boolean;
}

async function recoveries(cleanup: CleanupStack): Promise<{ runs: Recovery[]; mutexLeft: number }> {
  const creds = newCredentials();
  const dds = await startFakeDds(cleanup, { responder: callbackResponder({ delayMs: ANSWER_DELAY_MS }) });
  const dataDir = path.join(tempDir(cleanup, 'posemesh-bench-'), 'data');
  let n = 0;
  const start = (): RegistrarChild => {
    const name = `bench-${n++}`;
    return spawnNode(cleanup, dds, creds, { name, nodeUrl: `http://${name}.bench.test:8080`, dataDir, env: { LOCK_STALE_SECS: String(LOCK_STALE_SECS) } });
  };
  const runs: Recovery[] = [];
  let mutexLeft = 0;
  let victim = start();
  await victim.waitForEvent('registration.success', { timeoutMs: 60_000 });
  for (let i = 0; i < opts.runs; i++) {
    if (i % 2 === 0)
      await sleep(Math.random() * 1500); // registered, at a random moment of its cycle
    else {
      // Holding the lock: its next request in flight.
      const nodeUrl = `http://${victim.name}.bench.test:8080`;
      await new Promise<void>((resolve) => dds.onRegistration((_req, url) => url === nodeUrl && resolve()));
      dds.onRegistration(undefined);
      await sleep(Math.random() * (ANSWER_DELAY_MS - 50));
    }
    const killedAt = now();
    await victim.kill();
    // A kill inside the lock's critical section leaves its mutex, which has its own 2 s staleness.
    if (fs.existsSync(dataPaths(dataDir).mutex)) mutexLeft += 1;
    const successor = start();
    const up = await successor.waitForEvent('http.listening', { timeoutMs: 60_000 });
    const ok = await successor.waitForEvent('registration.success', { timeoutMs: 60_000 });
    const tookOver = successor.json.slice(0, ok.index).some((l) => l.line['event'] === 'lock.takeover');
    runs.push({ killToSuccess: ok.at - killedAt, startup: up.at - successor.spawnedAt, upToSuccess: ok.at - up.at, tookOver });
    process.stderr.write(`run ${i + 1}/${opts.runs}: ${Math.round(ok.at - killedAt)} ms${tookOver ? ' (took the lock over)' : ''}\n`);
    victim = successor;
  }
  await victim.stop('SIGTERM', 30_000);
  return { runs, mutexLeft };
}

/** A child takes the lock (test/fixtures/lock-child.ts) and is SIGKILLed; one tryAcquire() here takes it over. */
async function takeovers(cleanup: CleanupStack): Promise<{ ms: number[]; failed: number }> {
  const lockPath = path.join(tempDir(cleanup, 'posemesh-bench-lock-'), 'registration.lock');
  const ms: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const args = [JSON.stringify({ mode: 'hold', lockPath, staleMs: LOCK_STALE_SECS * 1000 })];
    // It holds the lock until its stdin ends.
    const child = spawnChild(cleanup, { script: 'test/fixtures/lock-child.ts', args, name: 'lock-child', stdin: 'pipe' });
    const { line } = await child.waitForEvent('attempt', { timeoutMs: 30_000 });
    if ((line['result'] as { kind?: unknown } | undefined)?.kind !== 'acquired') throw new Error(`lock-child could not take the lock: ${JSON.stringify(line)}`);
    await child.kill();
    const lock = new RegistrationLock({ lockPath, staleMs: LOCK_STALE_SECS * 1000 });
    const t0 = now();
    const attempt = await lock.tryAcquire();
    const took = now() - t0;
    await lock.release();
    if (attempt.kind === 'acquired' && attempt.takeover) ms.push(took);
  }
  return { ms, failed: opts.runs - ms.length };
}

runBench('recovery', async (cleanup) => {
  const { runs, mutexLeft } = await recoveries(cleanup);
  const lock = await takeovers(cleanup);
  const rows: [string, string, Summary][] = [
    ['SIGKILL → successor registered', 'recovery_kill_to_success_ms', summarize(runs.map((r) => r.killToSuccess))],
    ['  lock held at the kill (taken over)', 'recovery_kill_to_success_lock_held_ms', summarize(runs.filter((r) => r.tookOver).map((r) => r.killToSuccess))],
    ['  lock free at the kill', 'recovery_kill_to_success_lock_free_ms', summarize(runs.filter((r) => !r.tookOver).map((r) => r.killToSuccess))],
    ['  of which process start-up (spawn → listening)', 'recovery_startup_ms', summarize(runs.map((r) => r.startup))],
    ['  of which up → registered', 'recovery_up_to_success_ms', summarize(runs.map((r) => r.upToSuccess))],
    ['lock takeover of a dead holder (tryAcquire)', 'lock_takeover_ms', summarize(lock.ms)],
  ];
  printTable(
    'Crash recovery (ms)',
    ['', 'n', 'min', 'median', 'p95', 'max'],
    rows.map(([label, , s]) => [label, String(s.n), fmt(s.min), fmt(s.p50), fmt(s.p95), fmt(s.max)]),
  );
  console.log(
    `\nDDS answers after ${ANSWER_DELAY_MS} ms (part of "up → registered"); kills that left the lock's mutex: ${mutexLeft}; takeovers that failed: ${lock.failed}`,
  );
  console.log(`without the takeover a successor would wait LOCK_STALE_SECS = ${LOCK_STALE_SECS} s`);
  const record = figures('recovery', opts.quick);
  for (const [, name, s] of rows) {
    const value = { n: s.n, min: s.min, median: s.p50, p95: s.p95, max: s.max };
    record(name, value);
    // Also for docs/reliability.md, as the reliability suite's.
    recordFigure(`bench.${name}`, value);
  }
  record('dds_answer_delay_ms', ANSWER_DELAY_MS);
});
