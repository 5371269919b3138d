/**
 * Cold start: spawn → first valid registration request at DDS, and → registered,
 * for a bare `node` (bench/cold-start-baseline.cjs) and three variants of ours
 * (docs/benchmarks.md §1).
 */
import { verifyRegistrationRequest } from '../src/sim/verify-registration.js';
import { REGISTRATION_PATH } from '../src/register.js';
import { newCredentials, registrarEnv } from '../test/reliability/common.js';
import { assertBuilt, BIN, spawnChild } from '../test/support/child.js';
import { CleanupStack } from '../test/support/cleanup.js';
import { okResponder, startFakeDds, type FakeDds } from '../test/support/fake-dds.js';
import { summarize } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { benchOptions, figures, fmt, printTable, ratio, runBench } from './common.js';
import { cpuMsOf } from './proc.js';

const opts = benchOptions('cold-start', 'Cold start of ours (the built CLI) beside a bare node sending one POST.', {
  runs: { default: 15, quick: 3, help: 'rounds, each spawning every process once' },
});

interface Variant {
  name: string;
  /** The script run, or undefined for the baseline. */
  script?: string;
  /** POSEMESH_COMPILE_CACHE_DIR: the warm cache's directory, or off. */
  cache?: 'warm' | 'off';
}

const VARIANTS: readonly Variant[] = [
  { name: 'baseline: bare node, one POST' },
  { name: 'ours (run, code cache warm)', script: BIN, cache: 'warm' },
  { name: 'ours, first start (no code cache)', script: BIN, cache: 'off' },
  { name: 'ours, unbundled (tsc output)', script: 'dist/src/cli/bin.js', cache: 'off' },
];

/** One spawn: ms from just before spawn() to the request's arrival and to registered, CPU (ms) at the arrival, whether the request was valid. */
interface Sample {
  toRequest: number;
  toRegistered: number;
  cpuMs: number;
  valid: boolean;
}

async function spawnOnce(dds: FakeDds, v: Variant, cacheDir: string, stopGently = false): Promise<Sample> {
  const cleanup = new CleanupStack();
  try {
    const creds = newCredentials();
    const child =
      v.script === undefined
        ? spawnChild(cleanup, { script: 'bench/cold-start-baseline.cjs', args: [`${dds.url}${REGISTRATION_PATH}`], name: 'baseline' })
        : spawnChild(cleanup, {
            script: v.script,
            args: ['run'],
            name: v.name,
            waitTimeoutMs: 30_000,
            env: registrarEnv({
              DDS_BASE_URL: dds.url,
              NODE_URL: 'http://127.0.0.1:9/node',
              REG_SECRET: creds.regSecret,
              SECP256K1_PRIVHEX: creds.envPrivhex,
              DATA_DIR: tempDir(cleanup, 'pnr-cold-'),
              POSEMESH_COMPILE_CACHE_DIR: v.cache === 'warm' ? cacheDir : 'off',
            }),
          });
    const pid = child.proc.pid ?? 0;
    const arrival = new Promise<{ at: number; cpuMs: number; valid: boolean }>((resolve) => {
      dds.setResponder((req, fake) => {
        // Read before the answer: the CPU the process needed to get here.
        const cpuMs = cpuMsOf(pid);
        const valid = v.script === undefined || verifyRegistrationRequest(req.rawBody, { expectedRegSecret: creds.regSecret }).ok;
        resolve({ at: req.at, cpuMs, valid: req.path === REGISTRATION_PATH && valid });
        fake.setResponder(okResponder);
        return okResponder(req, fake);
      });
    });
    const { at, cpuMs, valid } = await arrival;
    const done = await child.waitForEvent(v.script === undefined ? 'baseline.answered' : 'registration.success');
    // SIGTERM lets `run` write its code cache at exit; the measured spawns are SIGKILLed at cleanup.
    if (stopGently) await child.stop('SIGTERM');
    return { toRequest: at - child.spawnedAt, toRegistered: done.at - child.spawnedAt, cpuMs, valid };
  } finally {
    await cleanup.run();
  }
}

runBench('cold start', async (cleanup) => {
  assertBuilt();
  const dds = await startFakeDds(cleanup);
  const cacheDir = tempDir(cleanup, 'pnr-cold-cache-');
  await spawnOnce(dds, VARIANTS[1] as Variant, cacheDir, true);
  const samples = new Map<Variant, Sample[]>(VARIANTS.map((v) => [v, []]));
  for (let round = 0; round < opts.runs; round++) {
    // One of each per round, so that a noisy moment hits them all alike.
    for (const v of VARIANTS) samples.get(v)?.push(await spawnOnce(dds, v, cacheDir));
    process.stdout.write(`\rround ${round + 1}/${opts.runs}`);
  }
  process.stdout.write('\n');

  const of = (v: Variant, pick: (s: Sample) => number) => summarize((samples.get(v) ?? []).map(pick));
  const base = VARIANTS[0] as Variant;
  const [bReq, bReg, bCpu] = [of(base, (s) => s.toRequest), of(base, (s) => s.toRegistered), of(base, (s) => s.cpuMs)];
  const record = figures('cold-start', opts.quick);
  const rows = VARIANTS.map((v) => {
    const [req, reg, cpu] = [of(v, (s) => s.toRequest), of(v, (s) => s.toRegistered), of(v, (s) => s.cpuMs)];
    const invalid = (samples.get(v) ?? []).filter((s) => !s.valid).length;
    const r = { toRequest: ratio(req.p50, bReq.p50), toRegistered: ratio(reg.p50, bReg.p50), cpu: ratio(cpu.p50, bCpu.p50) };
    record(v.name, { toRequestMs: req, toRegisteredMs: reg, cpuMsAtRequest: cpu, ratio: r, invalidRequests: invalid });
    return [
      v.name,
      String(req.n),
      fmt(req.p50, 0),
      fmt(req.p90, 0),
      `${fmt(r.toRequest)}×`,
      fmt(reg.p50, 0),
      `${fmt(r.toRegistered)}×`,
      fmt(cpu.p50, 0),
      `${fmt(r.cpu)}×`,
      String(invalid),
    ];
  });
  printTable(
    `Cold start, ${opts.runs} rounds (ms from spawn, medians unless said; ratios to the baseline's median)`,
    ['process', 'n', 'to request', 'p90', 'ratio', 'to registered', 'ratio', 'CPU at request', 'ratio', 'invalid'],
    rows,
  );
  const ours = ratio(of(VARIANTS[1] as Variant, (s) => s.toRequest).p50, bReq.p50);
  console.log(`\ngoal: ours under 2× the baseline to the first request — ${ours < 2 ? 'met' : 'missed'} (${fmt(ours)}×)`);
});
