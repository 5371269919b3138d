/**
 * Staleness detection delay: how long after its health-check TTL runs out a
 * registered registrar's re-registration request reaches DDS — ours (the
 * built CLI) beside the crate's poll loop (bench/staleness-crate.ts), the
 * same probe schedule for both, intervals side by side (docs/benchmarks.md §2).
 */
import { newCredentials, registrarEnv } from '../test/reliability/common.js';
import { assertBuilt, BIN, spawnChild, type JsonLine, type LineChild } from '../test/support/child.js';
import type { CleanupStack } from '../test/support/cleanup.js';
import { isRegistration, nodeUrlOf, probeHealth, startFakeDds, type DdsRequest, type FakeDds } from '../test/support/fake-dds.js';
import { seededRandom } from '../test/support/random.js';
import { summarize, type Summary } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { now, sleep } from '../test/support/time.js';
import { benchOptions, figures, fmt, printTable, runBench } from './common.js';

const opts = benchOptions('staleness', 'TTL expiry → re-registration request at DDS: ours (the built CLI) beside the crate’s loop.', {
  intervals: { default: [1, 2, 5], quick: [1], help: 'REGISTER_INTERVAL_SECS values, whole seconds' },
  trials: { default: 20, quick: 3, help: 'trials per interval and side' },
});
const GOAL_MS = 20;
/** Probes per trial, each a random 10–90 % of T after the one before; then they stop. */
const PROBES = 2;
/** Unrecorded trials per child first: its first expiry also compiles its code paths. */
const WARMUP = 1;
const SEED = 42;
/** A side starts no trial that would end later than this after the start (after its first 3). */
const BUDGET_MS = opts.quick ? 600_000 : 170_000;
const MIN_TRIALS = 3;

type Kind = 'ours' | 'crate';

interface Side {
  kind: Kind;
  T: number;
  nodeUrl: string;
  listenUrl: string;
  child: LineChild;
}

/** Where the delay went (ms), from the side's log lines (±1 ms), and the bound on it. */
interface Trial {
  delayMs: number;
  /** The last probe's round trip: the true delay is at most this much longer. */
  rttMs: number;
  toExpiredMs: number;
  /** `healthcheck.expired` → `lock.acquired` (ours; the crate's lock is process memory). */
  toLockMs: number;
  toAttemptMs: number;
  toArrivalMs: number;
  durationMs: number;
}

const arrivals = (requests: readonly DdsRequest[], nodeUrl: string): number[] =>
  requests.filter((r) => isRegistration(r) && nodeUrlOf(r) === nodeUrl).map((r) => r.at);

/** A log line's moment on this process's clock: the crate model's `t_ms` (sub-ms), ours' pino `time` (whole ms: its middle). */
function lineAt(line: JsonLine): number {
  const epoch = typeof line['t_ms'] === 'number' ? line['t_ms'] : Date.parse(String(line['time'])) + 0.5;
  return epoch - (Date.now() + 0.5 - now());
}

async function startSide(cleanup: CleanupStack, dds: FakeDds, kind: Kind, T: number): Promise<Side> {
  const nodeUrl = `http://${kind}-t${T}.bench.test:8080`;
  let child: LineChild;
  if (kind === 'ours') {
    const creds = newCredentials();
    const env = registrarEnv({
      DDS_BASE_URL: dds.url,
      NODE_URL: nodeUrl,
      REG_SECRET: creds.regSecret,
      SECP256K1_PRIVHEX: creds.envPrivhex,
      REGISTER_INTERVAL_SECS: String(T),
      DATA_DIR: tempDir(cleanup, 'posemesh-bench-staleness-'),
    });
    child = spawnChild(cleanup, { args: ['run'], env, name: `ours-T${T}`, waitTimeoutMs: 30_000, stopTimeoutMs: 15_000 });
  } else {
    const args = [JSON.stringify({ intervalSecs: T, ddsBaseUrl: dds.url, nodeUrl })];
    child = spawnChild(cleanup, { script: 'bench/staleness-crate.ts', args, name: `crate-T${T}`, waitTimeoutMs: 30_000 });
  }
  const listenUrl = String((await child.waitForEvent('http.listening')).line['url']);
  await child.waitForEvent('registration.success');
  return { kind, T, nodeUrl, listenUrl, child };
}

/** One trial: probe, stop probing, time the re-registration; `undefined` when it re-registered while still probed (a stalled machine). */
async function runTrial(side: Side, dds: FakeDds, index: number): Promise<Trial | undefined> {
  const T = side.T * 1000;
  const consumed = arrivals(dds.requests, side.nodeUrl).length;
  const cursor = side.child.json.length;
  const random = seededRandom(SEED ^ Math.imul(side.T, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));
  const started = now();
  let due = started;
  let sent = 0;
  let answered = 0;
  for (let i = 0; i < PROBES; i++) {
    due += (0.1 + 0.8 * random()) * T;
    await sleep(Math.max(0, due - now()));
    sent = now();
    const { status } = await probeHealth(side.listenUrl, 'DDS v0.0.0-bench');
    answered = now();
    if (status !== 200) throw new Error(`${side.kind} T=${side.T}: probe answered ${status}`);
  }
  const success = side.child.waitForEvent('registration.success', { from: cursor, timeoutMs: 2 * T + 20_000 });
  if (arrivals(dds.requests, side.nodeUrl).length > consumed) {
    await success;
    return undefined;
  }
  const expiry = answered + T;
  const arrival = await dds.waitFor((rs) => arrivals(rs, side.nodeUrl)[consumed], 2 * T + 20_000, `re-registration of ${side.nodeUrl}`);
  await success;
  const lines = side.child.timed.slice(cursor).map((t) => t.line);
  const find = (event: string, from = 0): number => lines.findIndex((l, i) => i >= from && l['event'] === event);
  const iExpired = find('healthcheck.expired');
  const iAttempt = find('registration.attempt', Math.max(0, iExpired));
  const iLock = lines.slice(0, iAttempt).findIndex((l, i) => i >= iExpired && l['event'] === 'lock.acquired');
  const at = (i: number): number => (i < 0 || lines[i] === undefined ? NaN : lineAt(lines[i] as JsonLine));
  return {
    delayMs: arrival - expiry,
    rttMs: answered - sent,
    toExpiredMs: at(iExpired) - expiry,
    toLockMs: at(iLock) - at(iExpired),
    toAttemptMs: at(iAttempt) - (iLock < 0 ? at(iExpired) : at(iLock)),
    toArrivalMs: arrival - at(iAttempt),
    durationMs: now() - started,
  };
}

/** A side's trials: after the warm-up, until it has enough or the budget would be overrun. */
async function runSide(side: Side, dds: FakeDds, deadline: number): Promise<Trial[]> {
  const trials: Trial[] = [];
  const mean = (): number => trials.reduce((a, t) => a + t.durationMs, 0) / trials.length;
  try {
    for (let i = 0; i < WARMUP; i++) await runTrial(side, dds, -1 - i);
    for (let i = 0, discarded = 0; trials.length < opts.trials && discarded <= opts.trials; i++) {
      if (trials.length >= MIN_TRIALS && now() + mean() > deadline) break;
      const trial = await runTrial(side, dds, i);
      if (trial === undefined) discarded += 1;
      else trials.push(trial);
      process.stderr.write(
        `${side.kind.padEnd(5)} T=${side.T}s trial ${i + 1}: ${trial === undefined ? 'discarded (re-registered while probed)' : `${fmt(trial.delayMs)} ms`}\n`,
      );
    }
  } catch (error) {
    process.stderr.write(`${side.kind} T=${side.T}s stopped: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n`);
  }
  return trials;
}

runBench('staleness', async (cleanup) => {
  assertBuilt();
  console.log(`ours: ${BIN} run; baseline: the crate's loop (bench/staleness-crate.ts); T = ${opts.intervals.join(', ')} s, up to ${opts.trials} trials each`);
  const dds = await startFakeDds(cleanup);
  const deadline = now() + BUDGET_MS;
  // Every side at once; each starts its trials right after its own first registration.
  const measure = async (kind: Kind, T: number): Promise<Trial[]> => {
    const side = await startSide(cleanup, dds, kind, T);
    const trials = await runSide(side, dds, deadline);
    await side.child.stop().catch(() => undefined);
    return trials;
  };
  const results = await Promise.all(
    opts.intervals.map(async (T) => {
      const [ours, crate] = await Promise.all([measure('ours', T), measure('crate', T)]);
      return { T, ours, crate };
    }),
  );
  if (results.every((r) => r.ours.length === 0)) throw new Error('no trial of ours could be measured');

  const pick = (trials: readonly Trial[], key: keyof Trial): Summary => summarize(trials.map((t) => t[key]).filter(Number.isFinite));
  printTable(
    `Staleness detection delay (ms): TTL expiry → re-registration request at DDS; ${PROBES} probes per trial, then none`,
    ['T (s)', 'trials ours/crate', 'ours p50', 'p90', 'max', 'crate p50', 'p90', 'max', 'ours ÷ crate (p50)', `goal < ${GOAL_MS} ms`],
    results.map(({ T, ours, crate }) => {
      const [o, c] = [pick(ours, 'delayMs'), pick(crate, 'delayMs')];
      const goal = o.n === 0 ? '-' : o.max < GOAL_MS ? 'met' : `missed (max ${fmt(o.max)})`;
      return [String(T), `${o.n}/${c.n}`, fmt(o.p50), fmt(o.p90), fmt(o.max), fmt(c.p50), fmt(c.p90), fmt(c.max), `1/${fmt(c.p50 / o.p50, 0)}`, goal];
    }),
  );
  for (const kind of ['ours', 'crate'] as const) {
    printTable(
      `${kind === 'ours' ? 'Ours' : 'Crate model'}: where the delay goes (ms, p50 / max; log lines ±1 ms)`,
      ['T (s)', 'expiry → healthcheck.expired', '→ lock.acquired', '→ registration.attempt', '→ arrival at DDS', 'probe rtt (bound)'],
      results.map((r) => {
        const cell = (k: keyof Trial): string => `${fmt(pick(r[kind], k).p50)} / ${fmt(pick(r[kind], k).max)}`;
        return [String(r.T), cell('toExpiredMs'), cell('toLockMs'), cell('toAttemptMs'), cell('toArrivalMs'), cell('rttMs')];
      }),
    );
  }
  const record = figures('staleness', opts.quick);
  for (const r of results) {
    const parts = (trials: Trial[]) =>
      Object.fromEntries((['delayMs', 'rttMs', 'toExpiredMs', 'toLockMs', 'toAttemptMs', 'toArrivalMs'] as const).map((k) => [k, pick(trials, k)]));
    record(`T${r.T}s`, { intervalSecs: r.T, probes: PROBES, warmup: WARMUP, ours: parts(r.ours), crate: parts(r.crate), goalMs: GOAL_MS });
  }
});
