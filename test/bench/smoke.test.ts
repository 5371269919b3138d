/**
 * The benchmarks still run: each `bench/<name>.ts --quick` (a few seconds)
 * must exit 0 and print its own tables. Their figures are not judged here —
 * benchmarks report, they never fail on a slow machine (docs/benchmarks.md).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../support/index.js';

/** Each benchmark and what its output must hold: its own tables, with measured rows, and its verdict where it has one. */
const BENCHES: readonly (readonly [name: string, expected: RegExp])[] = [
  ['cold-start', /Cold start, 3 rounds[\s\S]*ours \(run, code cache warm\)\s+3\s+\d+[\s\S]*goal: ours under 2× the baseline to the first request — (met|missed)/],
  ['staleness', /Staleness detection delay \(ms\)[\s\S]*\n1\s+\d+\/\d+\s+\d[\s\S]*Ours: where the delay goes[\s\S]*Crate model: where the delay goes/],
  ['routes', /Max throughput[\s\S]*POST \/internal\/v1\/registrations\s+\d+[\s\S]*paced[\s\S]*ours' log: \d+ callbacks accepted/],
  [
    'signing',
    /Signatures per second[\s\S]*signRecoverableKeccakHex[^\n]*\s\d+[\s\S]*First signatures[\s\S]*Simulator checks per second[\s\S]*SIWE sign-in[^\n]*\s\d+[\s\S]*Every signer's signatures were verified/,
  ],
  ['idle', /Idle window[\s\S]*timer callbacks[\s\S]*Timers armed and fired[\s\S]*goal: no polling — wake-ups only for the TTL and the probes: (MET|MISSED)/],
  ['fleet', /Fleet start and memory[\s\S]*\n50\s+\d[\s\S]*Herd after a[\s\S]*decorrelated-jitter[\s\S]*Model \(no I\/O/],
  ['recovery', /SIGKILL → successor registered\s+\d+\s+\d[\s\S]*lock takeover of a dead holder \(tryAcquire\)\s+\d+\s+\d/],
  [
    'session',
    /Simulated refreshes[\s\S]*\n10\s+20\s+\d+\s+0\s+0\.\d+[\s\S]*ours: 403 → nonce request\s+\d[\s\S]*goal: re-arm under 20 ms — (met|missed)[\s\S]*SIWE sign-in \(nonce \+ verify\)\s+\d+/,
  ],
];

function runQuick(name: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `bench/${name}.ts`, '--quick'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('benchmarks (--quick)', () => {
  for (const [name, expected] of BENCHES) {
    it(`bench/${name}.ts runs and reports`, { timeout: 180_000 }, async () => {
      const { code, out } = await runQuick(name);
      assert.equal(code, 0, `bench/${name}.ts --quick exited ${code}:\n${out.slice(-3000)}`);
      assert.match(out, expected);
    });
  }
});
