/**
 * The benchmarks still run: each `bench/<name>.ts --quick` (a few seconds)
 * must exit 0 and print its table. Their figures are not judged here —
 * benchmarks report, they never fail on a slow machine (docs/benchmarks.md).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../support/index.js';

/** Each benchmark and a line its output must contain. */
const BENCHES: readonly (readonly [name: string, expected: RegExp])[] = [
  ['cold-start', /goal: ours under 2× the baseline to the first request — (met|missed)/],
  ['staleness', /Staleness detection delay \(ms\)[\s\S]*Crate model: where the delay goes/],
  ['routes', /Max throughput[\s\S]*paced[\s\S]*POST \/internal\/v1\/registrations/],
  ['signing', /Signatures per second[\s\S]*signRecoverableKeccakHex[\s\S]*Simulator checks per second[\s\S]*SIWE sign-in[\s\S]*Every signer's signatures were verified/],
  ['idle', /goal: no polling — wake-ups only for the TTL and the probes: (MET|MISSED)/],
  ['fleet', /Fleet start and memory[\s\S]*Herd after a/],
  ['recovery', /SIGKILL → successor registered[\s\S]*lock takeover/],
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
