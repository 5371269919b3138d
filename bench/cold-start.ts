/**
 * Cold start: how soon a freshly spawned registrar reaches DDS.
 *
 *   node --import tsx bench/cold-start.ts [--quick] [--runs 15]
 *
 * Each run spawns a process and times, on this process's monotonic clock
 * from just before `spawn()`:
 *
 * - **to request**: until its first registration request has arrived at DDS
 *   (headers parsed) — and is valid: DDS's own checks (src/sim/verify-registration.ts,
 *   signature included) run on every body;
 * - **to registered**: until it said so — `registration.success` on its
 *   stdout (ours), the answer read (the baseline);
 * - **CPU**: the CPU time its threads had used when the request arrived
 *   (`/proc/<pid>/task/<tid>/schedstat`, when the kernel has it): the figure
 *   that holds up on a busy machine.
 *
 * The processes, one after the other in each round (so that a noisy moment
 * hits them all alike):
 *
 * - **baseline**: a bare `node` that sends one POST with node:http
 *   (bench/cold-start-baseline.cjs);
 * - **ours**: the installed command (`posemesh-node-registration run`, i.e.
 *   dist/src/cli/launch.cjs: the bundled CLI with its code cache warm, as
 *   from the second start on), default settings, JSON log lines at `info`;
 * - **ours, first start**: the same with the code cache off
 *   (`POSEMESH_COMPILE_CACHE_DIR=off`): the very first start after install;
 * - **ours, unbundled**: the tsc output (dist/src/cli/bin.js), each module
 *   loaded on its own — what the bundle and code cache save.
 *
 * DDS is the fake DDS of test/support in this process, answering 200 at once. Each
 * registrar gets a fresh data directory and is SIGKILLed once registered.
 *
 * Goal: ours under 2× the baseline (medians). Prints the table and appends
 * the figures to .tmp/figures.jsonl; never fails on a slow machine.
 */
import * as fs from 'node:fs';
import { verifyRegistrationRequest } from '../src/sim/verify-registration.js';
import { REGISTRATION_PATH as REGISTER_PATH } from '../src/register.js';
import { newCredentials, registrarEnv, type Credentials } from '../test/reliability/common.js';
import { assertBuilt, BIN, spawnChild, type LineChild } from '../test/support/child.js';
import { CleanupStack } from '../test/support/cleanup.js';
import { okResponder, startFakeDds, type Responder } from '../test/support/fake-dds.js';
import { writeFigure } from '../test/support/figures.js';
import { summarize, type Summary } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { fmt, parseBenchArgs, positiveNumber, printMachine, printTable, ratio, runBench } from './common.js';

const USAGE = `
usage: node --import tsx bench/cold-start.ts [--quick] [--runs N]
  --runs N   rounds (each spawns every process once; default 15, --quick 3)
`;

const UNBUNDLED_BIN = 'dist/src/cli/bin.js';
const BASELINE_SCRIPT = 'bench/cold-start-baseline.cjs';

/** One request DDS received. */
interface Arrival {
  at: number;
  /** CPU ms the sender's threads had used by then (NaN when unknown). */
  cpuMs: number;
  valid: boolean;
}

/** The local DDS: records the arrival of each POST for whoever waits for it. */
interface ColdDds {
  url: string;
  /** The next request's arrival (sender: `pid`, for its CPU time). */
  next(pid: number, credentials: Credentials | null): Promise<Arrival>;
}

/** CPU time (ms) used so far by every thread of `pid`, from schedstat; NaN when unavailable. */
function cpuMsOf(pid: number): number {
  try {
    let ns = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

/** The fake DDS answering 200 at once; the sender's CPU is read before the answer, the arrival is when its headers were parsed. */
async function startColdDds(cleanup: CleanupStack): Promise<ColdDds> {
  const dds = await startFakeDds(cleanup);
  return {
    url: dds.url,
    next: (pid, credentials) =>
      new Promise((resolve) => {
        const once: Responder = (req, fake) => {
          const cpuMs = cpuMsOf(pid);
          fake.setResponder(okResponder);
          // The baseline's body is not a registration: only ours is checked.
          const valid =
            req.path === REGISTER_PATH && (credentials === null || verifyRegistrationRequest(req.rawBody, { expectedRegSecret: credentials.regSecret }).ok);
          resolve({ at: req.at, cpuMs, valid });
          return okResponder(req, fake);
        };
        dds.setResponder(once);
      }),
  };
}

/** What one spawn measured (ms). */
interface Sample {
  toRequest: number;
  toRegistered: number;
  cpuMs: number;
  valid: boolean;
}

interface Variant {
  name: string;
  spawn(cleanup: CleanupStack, dds: ColdDds): { child: LineChild; credentials: Credentials | null; doneEvent: string };
}

function registrarVariant(name: string, script: string, extraEnv: Record<string, string>, cacheDir: () => string): Variant {
  return {
    name,
    spawn(cleanup, dds) {
      const credentials = newCredentials();
      const env = registrarEnv({
        DDS_BASE_URL: dds.url,
        NODE_URL: 'http://127.0.0.1:9/node',
        REG_SECRET: credentials.regSecret,
        SECP256K1_PRIVHEX: credentials.envPrivhex,
        DATA_DIR: tempDir(cleanup, 'pnr-cold-'),
        POSEMESH_COMPILE_CACHE_DIR: cacheDir(),
        ...extraEnv,
      });
      const child = spawnChild(cleanup, { script, args: ['run'], env, name, waitTimeoutMs: 30_000 });
      return { child, credentials, doneEvent: 'registration.success' };
    },
  };
}

const baselineVariant: Variant = {
  name: 'baseline: bare node, one POST',
  spawn(cleanup, dds) {
    const child = spawnChild(cleanup, { script: BASELINE_SCRIPT, args: [`${dds.url}${REGISTER_PATH}`], name: 'baseline', waitTimeoutMs: 30_000 });
    return { child, credentials: null, doneEvent: 'baseline.answered' };
  },
};

async function measureOnce(variant: Variant, dds: ColdDds): Promise<Sample> {
  const cleanup = new CleanupStack();
  try {
    const { child, credentials, doneEvent } = variant.spawn(cleanup, dds);
    const pid = child.proc.pid;
    if (pid === undefined) throw new Error(`${variant.name}: could not spawn`);
    const arrival = await dds.next(pid, credentials);
    const done = await child.waitFor((line) => line['event'] === doneEvent);
    return {
      toRequest: arrival.at - child.spawnedAt,
      toRegistered: done.at - child.spawnedAt,
      cpuMs: arrival.cpuMs,
      valid: arrival.valid,
    };
  } finally {
    await cleanup.run();
  }
}

/** Start `run` once with SIGTERM after registering, so that its code cache is written at exit. */
async function warmCodeCache(dds: ColdDds, cacheDir: string): Promise<void> {
  const cleanup = new CleanupStack();
  try {
    const { child } = registrarVariant('warm-up', BIN, {}, () => cacheDir).spawn(cleanup, dds);
    await dds.next(child.proc.pid ?? 0, null);
    await child.waitFor((line) => line['event'] === 'registration.success');
    await child.stop('SIGTERM');
  } finally {
    await cleanup.run();
  }
}

async function main(): Promise<void> {
  const args = parseBenchArgs(USAGE, ['runs']);
  const runs = Math.round(positiveNumber(args.options['runs'], args.quick ? 3 : 15, 'runs'));
  printMachine('cold start');
  assertBuilt();
  const cleanup = new CleanupStack();
  try {
    const dds = await startColdDds(cleanup);
    const cacheDir = tempDir(cleanup, 'pnr-cold-cache-');
    await warmCodeCache(dds, cacheDir);

    const variants: Variant[] = [
      baselineVariant,
      registrarVariant('ours (run, code cache warm)', BIN, {}, () => cacheDir),
      registrarVariant('ours, first start (no code cache)', BIN, {}, () => 'off'),
      registrarVariant('ours, unbundled (tsc output)', UNBUNDLED_BIN, {}, () => 'off'),
    ];
    const samples = new Map<Variant, Sample[]>(variants.map((v) => [v, []]));
    for (let round = 0; round < runs; round++) {
      for (const v of variants) samples.get(v)?.push(await measureOnce(v, dds));
      process.stdout.write(`\rround ${round + 1}/${runs}`);
    }
    process.stdout.write('\n');

    const summaryOf = (v: Variant, pick: (s: Sample) => number): Summary => summarize((samples.get(v) ?? []).map(pick));
    const base = {
      toRequest: summaryOf(baselineVariant, (s) => s.toRequest),
      toRegistered: summaryOf(baselineVariant, (s) => s.toRegistered),
      cpu: summaryOf(baselineVariant, (s) => s.cpuMs),
    };
    const rows: string[][] = [];
    for (const v of variants) {
      const all = samples.get(v) ?? [];
      const toRequest = summaryOf(v, (s) => s.toRequest);
      const toRegistered = summaryOf(v, (s) => s.toRegistered);
      const cpu = summaryOf(v, (s) => s.cpuMs);
      const invalid = v === baselineVariant ? 0 : all.filter((s) => !s.valid).length;
      rows.push([
        v.name,
        String(toRequest.n),
        fmt(toRequest.p50, 0),
        fmt(toRequest.p90, 0),
        `${fmt(ratio(toRequest.p50, base.toRequest.p50))}×`,
        fmt(toRegistered.p50, 0),
        `${fmt(ratio(toRegistered.p50, base.toRegistered.p50))}×`,
        fmt(cpu.p50, 0),
        `${fmt(ratio(cpu.p50, base.cpu.p50))}×`,
        String(invalid),
      ]);
      writeFigure(
        'cold-start',
        v.name,
        {
          toRequestMs: toRequest,
          toRegisteredMs: toRegistered,
          cpuMsAtRequest: cpu,
          ratioToRequest: ratio(toRequest.p50, base.toRequest.p50),
          ratioToRegistered: ratio(toRegistered.p50, base.toRegistered.p50),
          ratioCpu: ratio(cpu.p50, base.cpu.p50),
          invalidRequests: invalid,
        },
        { quick: args.quick },
      );
    }
    printTable(
      `Cold start, ${runs} rounds (ms from spawn; medians unless said; ratios to the baseline's median)`,
      ['process', 'n', 'to request', 'p90', 'ratio', 'to registered', 'ratio', 'CPU at request', 'ratio', 'invalid'],
      rows,
    );
    const ours = variants[1] as Variant;
    const oursRatio = ratio(summaryOf(ours, (s) => s.toRequest).p50, base.toRequest.p50);
    console.log(`\ngoal: ours under 2× the baseline to the first request — ${oursRatio < 2 ? 'met' : 'missed'} (${fmt(oursRatio)}×)`);
  } finally {
    await cleanup.run();
  }
}

runBench(main);
