/**
 * Staleness detection delay: how long after its health-check TTL runs out a
 * registered registrar's re-registration request reaches DDS.
 *
 *   node --import tsx bench/staleness.ts [--quick] [--intervals 1,2,5] [--trials 20]
 *                                        [--probes 2] [--budget-secs 170] [--seed 42] [--warmup 1]
 *
 * Ours: the real CLI as built (`node dist/src/cli/launch.cjs run`, test/support/child.ts
 * `BIN`), one child per interval T (`REGISTER_INTERVAL_SECS`), against a
 * minimal DDS stand-in in this process that answers every registration 200
 * at once and stamps each request's arrival (`performance.now()`, when its
 * headers are parsed). Each trial: once the registrar is registered, this
 * process plays DDS's health prober — `--probes` `GET /health` probes
 * (`User-Agent: DDS v…`), each a random 10–90 % of T after the previous one
 * (or after the registration), so the TTL never runs out while probed — and
 * then stops probing. The re-registration that follows ends the trial and
 * starts the next. The first `--warmup` trials of each child are not recorded
 * (a process's first expiry also pays for compiling its code paths once).
 *
 * The figure, on one monotonic clock (this process's):
 *
 *   delay = arrival of the re-registration request at DDS − (t_answered + T)
 *
 * where t_answered is when the last probe's answer reached the prober. The
 * registrar re-arms its TTL before it answers, so its true expiry lies in
 * [t_sent + T, t_answered + T]: the true delay is the figure plus at most the
 * probe's round trip (printed, "rtt").
 *
 * Ours is broken down from its JSON log lines (`time`, whole milliseconds of
 * its wall clock, mapped onto this clock: ±1 ms): TTL expiry →
 * `healthcheck.expired` (timer lateness, plus the state-file read that checks
 * for a sibling's probe and the status write) → `registration.attempt` (lock,
 * state read, signing) → request arrival (serialise, connect, send).
 *
 * Baseline: the crate's poll loop (PROTOCOL.md §3), modelled in
 * bench/staleness-helpers.ts (read its header for the model: it sleeps T
 * between looks while registered, notices the stale health check at the first
 * look after the TTL, then sleeps one more second before it registers; the
 * request is not signed). One model child per T, against the same DDS, with
 * the very same probe schedule (same seed: trial i has the same gaps).
 *
 * Every registrar and model child runs at once (all T side by side, so that the
 * whole run fits in about three minutes); they are idle but for the probes. A
 * side stops when it has `--trials` trials or when one more would not end
 * within `--budget-secs` of the start (after at least 3), so long intervals get
 * fewer trials. `--quick`: T = 1 s, 3 trials.
 *
 * Goal: under 20 ms whatever T (judged on the worst trial, ours). Prints the
 * table and appends the figures to .tmp/figures.jsonl; never fails on
 * a slow machine (exit 1 only when nothing could be measured).
 */
import http from 'node:http';
import { listenUrlOf, newCredentials, registrarEnv, spawnRegistrar } from '../test/reliability/common.js';
import { BIN, spawnChild, type JsonLine, type TimedLine, type WaitOptions } from '../test/support/child.js';
import { CleanupStack } from '../test/support/cleanup.js';
import { isRegistration, nodeUrlOf, startFakeDds, type DdsRequest } from '../test/support/fake-dds.js';
import { writeFigure } from '../test/support/figures.js';
import { seededRandom } from '../test/support/random.js';
import { summarize, type Summary } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { now, sleep } from '../test/support/time.js';
import { fmt, parseBenchArgs, printMachine, printTable, runBench } from './common.js';

const USAGE = `
Staleness detection delay: TTL expiry → re-registration request at DDS, ours (the
built CLI) beside a model of the crate's poll loop, for several intervals T.

  node --import tsx bench/staleness.ts [options]

  --intervals <list>    REGISTER_INTERVAL_SECS values, whole seconds (default 1,2,5)
  --trials <n>          trials per interval and side (default 20)
  --probes <n>          health probes per trial before they stop (default 2)
  --budget-secs <s>     stop starting trials that would end later than this (default 170)
  --seed <n>            seed of the probe schedule (default 42)
  --warmup <n>          unrecorded trials per side first (default 1; 0 for none)
  --quick               smoke run: T = 1 s, 3 trials
  --help                this text
`;

const BENCH = 'staleness';
const DDS_USER_AGENT = 'DDS v0.0.0-bench';
const GOAL_MS = 20;
/** Trials every side runs whatever the budget. */
const MIN_TRIALS = 3;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

interface Options {
  quick: boolean;
  intervals: number[];
  trials: number;
  probes: number;
  budgetMs: number;
  seed: number;
  warmup: number;
}

function fail(message: string): never {
  console.error(`${message}\n${USAGE.trim()}`);
  process.exit(2);
}

function positiveInteger(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) fail(`--${name}: expected a whole number ≥ 1, got ${JSON.stringify(raw)}`);
  return n;
}

function parseOptions(): Options {
  const { quick, options } = parseBenchArgs(USAGE, ['intervals', 'trials', 'probes', 'budget-secs', 'seed', 'warmup']);
  const intervals =
    options['intervals'] === undefined
      ? quick
        ? [1]
        : [1, 2, 5]
      : options['intervals'].split(',').map((part) => positiveInteger(part.trim(), NaN, 'intervals'));
  return {
    quick,
    intervals: [...new Set(intervals)].sort((a, b) => a - b),
    trials: positiveInteger(options['trials'], quick ? 3 : 20, 'trials'),
    probes: positiveInteger(options['probes'], 2, 'probes'),
    budgetMs: positiveInteger(options['budget-secs'], quick ? 600 : 170, 'budget-secs') * 1000,
    warmup: options['warmup'] === undefined ? 1 : options['warmup'] === '0' ? 0 : positiveInteger(options['warmup'], 1, 'warmup'),
    seed: options['seed'] === undefined ? 42 : Number.isInteger(Number(options['seed'])) ? Number(options['seed']) : fail('--seed: expected an integer'),
  };
}

// ---------------------------------------------------------------------------
// The probe schedule (the same for both sides)
// ---------------------------------------------------------------------------


/** The gaps (ms) before each probe of trial `trial` at interval `intervalSecs`: each 10–90 % of T. */
function probeGaps(seed: number, intervalSecs: number, trial: number, probes: number): number[] {
  const random = seededRandom(seed ^ Math.imul(intervalSecs, 0x9e3779b1) ^ Math.imul(trial + 1, 0x85ebca6b));
  return Array.from({ length: probes }, () => (0.1 + 0.8 * random()) * intervalSecs * 1000);
}

// ---------------------------------------------------------------------------
// The DDS stand-in: 200 at once, arrival stamped on this process's monotonic clock
// ---------------------------------------------------------------------------

interface BenchDds {
  url: string;
  /** Arrival times (`now()`) of the registrations of `nodeUrl` so far. */
  arrivals(nodeUrl: string): readonly number[];
  /** The arrival time of `nodeUrl`'s registration number `index` (0-based), waiting for it. */
  waitArrival(nodeUrl: string, index: number, timeoutMs: number): Promise<number>;
}

function arrivalsIn(requests: readonly DdsRequest[], nodeUrl: string): number[] {
  return requests.filter((r) => isRegistration(r) && nodeUrlOf(r) === nodeUrl).map((r) => r.at);
}

/** The fake DDS of test/support (200 at once), arrivals on its `at` (this process's `now()`, headers parsed). */
async function startBenchDds(cleanup: CleanupStack): Promise<BenchDds> {
  const dds = await startFakeDds(cleanup);
  return {
    url: dds.url,
    arrivals: (nodeUrl) => arrivalsIn(dds.requests, nodeUrl),
    waitArrival: (nodeUrl, index, timeoutMs) =>
      dds.waitFor((requests) => arrivalsIn(requests, nodeUrl)[index], timeoutMs, `registration #${index + 1} from ${nodeUrl}`),
  };
}

// ---------------------------------------------------------------------------
// The prober
// ---------------------------------------------------------------------------

interface ProbeResult {
  sent: number;
  answered: number;
  status: number;
}

/** One DDS health probe (a fresh connection, as a prober's would be). */
function probe(listenUrl: string): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const sent = now();
    const req = http.get(`${listenUrl}/health`, { agent: false, headers: { 'user-agent': DDS_USER_AGENT }, timeout: 5000 }, (res) => {
      const answered = now();
      res.resume();
      res.on('end', () => resolve({ sent, answered, status: res.statusCode ?? 0 }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
  });
}

async function sleepUntil(t: number): Promise<void> {
  const ms = t - now();
  if (ms > 0) await sleep(ms);
}

// ---------------------------------------------------------------------------
// Sides: ours (the CLI) and the crate model
// ---------------------------------------------------------------------------

type SideKind = 'ours' | 'crate';

/** What a side's child gives: its JSON lines, waiting, stopping. */
interface SideChild {
  lines(): readonly TimedLine[];
  waitForEvent(event: string, options?: WaitOptions): Promise<TimedLine & { index: number }>;
  stop(): Promise<unknown>;
}

interface Side {
  kind: SideKind;
  intervalSecs: number;
  nodeUrl: string;
  listenUrl: string;
  child: SideChild;
  /** Epoch ms of a log line (its own clock), or NaN. */
  lineEpochMs(line: JsonLine): number;
}

function oursEpochMs(line: JsonLine): number {
  // pino's isoTime: whole milliseconds, truncated; the middle of that millisecond.
  return typeof line['time'] === 'string' ? Date.parse(line['time']) + 0.5 : NaN;
}

function crateEpochMs(line: JsonLine): number {
  return typeof line['t_ms'] === 'number' ? line['t_ms'] : NaN;
}

/** An epoch time (ms) on this process's `now()` clock (the offset sampled now, to ±0.5 ms). */
function epochToNow(epochMs: number): number {
  return epochMs - (Date.now() + 0.5 - now());
}

async function startOurs(cleanup: CleanupStack, dds: BenchDds, intervalSecs: number): Promise<Side> {
  const creds = newCredentials();
  const nodeUrl = `http://ours-t${intervalSecs}.bench.test:8080`;
  const child = spawnRegistrar(
    cleanup,
    `ours-T${intervalSecs}`,
    registrarEnv({
      DDS_BASE_URL: dds.url,
      NODE_URL: nodeUrl,
      REG_SECRET: creds.regSecret,
      SECP256K1_PRIVHEX: creds.envPrivhex,
      REGISTER_INTERVAL_SECS: String(intervalSecs),
      DATA_DIR: tempDir(cleanup, 'posemesh-bench-staleness-'),
    }),
  );
  const listenUrl = await listenUrlOf(child);
  return {
    kind: 'ours',
    intervalSecs,
    nodeUrl,
    listenUrl,
    child: { lines: () => child.json, waitForEvent: (e, o) => child.waitForEvent(e, o), stop: () => child.stop('SIGTERM', 15_000) },
    lineEpochMs: oursEpochMs,
  };
}

async function startCrateModel(cleanup: CleanupStack, dds: BenchDds, intervalSecs: number): Promise<Side> {
  const nodeUrl = `http://crate-t${intervalSecs}.bench.test:8080`;
  const child = spawnChild(cleanup, {
    script: 'bench/staleness-helpers.ts',
    args: [JSON.stringify({ intervalSecs, ddsBaseUrl: dds.url, nodeUrl })],
    name: `crate-T${intervalSecs}`,
    waitTimeoutMs: 30_000,
  });
  const { line } = await child.waitForEvent('http.listening');
  return {
    kind: 'crate',
    intervalSecs,
    nodeUrl,
    listenUrl: String(line['url']),
    child: { lines: () => child.timed, waitForEvent: (e, o) => child.waitForEvent(e, o), stop: () => child.stop('SIGTERM') },
    lineEpochMs: crateEpochMs,
  };
}

// ---------------------------------------------------------------------------
// Trials
// ---------------------------------------------------------------------------

interface Trial {
  /** Re-registration arrival − (last probe answered + T). */
  delayMs: number;
  /** The last probe's round trip: the true delay is at most this much longer. */
  rttMs: number;
  /** Expiry → `healthcheck.expired` (NaN when the line is missing). */
  toExpiredMs: number;
  /** `healthcheck.expired` → `lock.acquired` (ours; NaN for the crate model, whose lock is process memory). */
  toLockMs: number;
  /** `lock.acquired` (or `healthcheck.expired` when there is none) → `registration.attempt`. */
  toAttemptMs: number;
  /** `registration.attempt` → arrival at DDS. */
  toArrivalMs: number;
  /** How long the trial took (registered → registered again). */
  durationMs: number;
}

interface SideResult {
  trials: Trial[];
  /** Trials thrown away: a registration arrived while the probes still ran. */
  discarded: number;
  error?: string;
}

/** The first line named `event` at index `from` or later, with its index, or undefined. */
function findLine(lines: readonly TimedLine[], event: string, from: number): { line: JsonLine; index: number } | undefined {
  for (let i = from; i < lines.length; i++) {
    const line = (lines[i] as TimedLine).line;
    if (line['event'] === event) return { line, index: i };
  }
  return undefined;
}

/** Split the delay by the side's log lines (from `cursor` on). */
function breakdown(side: Side, cursor: number, expiry: number, arrival: number): Pick<Trial, 'toExpiredMs' | 'toLockMs' | 'toAttemptMs' | 'toArrivalMs'> {
  const lines = side.child.lines();
  const at = (found: { line: JsonLine } | undefined): number => (found === undefined ? NaN : epochToNow(side.lineEpochMs(found.line)));
  const expired = findLine(lines, 'healthcheck.expired', cursor);
  const attempt = expired === undefined ? undefined : findLine(lines, 'registration.attempt', expired.index);
  const lock = expired === undefined || attempt === undefined ? undefined : findLine(lines.slice(0, attempt.index), 'lock.acquired', expired.index);
  const tExpired = at(expired);
  const tLock = at(lock);
  const tAttempt = at(attempt);
  return {
    toExpiredMs: tExpired - expiry,
    toLockMs: tLock - tExpired,
    toAttemptMs: tAttempt - (lock === undefined ? tExpired : tLock),
    toArrivalMs: arrival - tAttempt,
  };
}

/** Should the side start another trial? */
function wantsAnother(done: Trial[], options: Options, deadline: number): boolean {
  if (done.length >= options.trials) return false;
  if (done.length < Math.min(MIN_TRIALS, options.trials)) return true;
  const mean = done.reduce((a, t) => a + t.durationMs, 0) / done.length;
  return now() + mean <= deadline;
}

/** One trial: probe, stop probing, time the re-registration. `consumed` = registrations seen so far. */
async function runTrial(side: Side, dds: BenchDds, options: Options, index: number, consumed: number): Promise<Trial | 'discarded'> {
  const T = side.intervalSecs * 1000;
  const started = now();
  const cursor = side.child.lines().length;
  let at = started;
  let last: ProbeResult | undefined;
  for (const gap of probeGaps(options.seed, side.intervalSecs, index, options.probes)) {
    at += gap;
    await sleepUntil(at);
    last = await probe(side.listenUrl);
    if (last.status !== 200) throw new Error(`${side.kind} T=${side.intervalSecs}: probe answered ${last.status}`);
  }
  if (last === undefined) throw new Error('no probe sent');
  if (dds.arrivals(side.nodeUrl).length > consumed) {
    // It expired while still probed (a stalled machine): wait until it is registered again.
    await side.child.waitForEvent('registration.success', { from: cursor, timeoutMs: 20_000 });
    return 'discarded';
  }
  const expiry = last.answered + T;
  const arrival = await dds.waitArrival(side.nodeUrl, consumed, 2 * T + 20_000);
  await side.child.waitForEvent('registration.success', { from: cursor, timeoutMs: 20_000 });
  return { delayMs: arrival - expiry, rttMs: last.answered - last.sent, ...breakdown(side, cursor, expiry, arrival), durationMs: now() - started };
}

async function runSide(side: Side, dds: BenchDds, options: Options, deadline: number): Promise<SideResult> {
  const result: SideResult = { trials: [], discarded: 0 };
  try {
    for (let i = 0; i < options.warmup; i++) {
      await runTrial(side, dds, options, -1 - i, dds.arrivals(side.nodeUrl).length);
    }
    for (let i = 0; wantsAnother(result.trials, options, deadline) && result.discarded <= options.trials; i++) {
      const consumed = dds.arrivals(side.nodeUrl).length;
      const trial = await runTrial(side, dds, options, i, consumed);
      if (trial === 'discarded') {
        result.discarded += 1;
        process.stderr.write(`${side.kind} T=${side.intervalSecs}s: re-registered while still probed; trial discarded\n`);
        continue;
      }
      result.trials.push(trial);
      process.stderr.write(`${side.kind.padEnd(5)} T=${side.intervalSecs}s trial ${result.trials.length}: ${fmt(trial.delayMs)} ms\n`);
    }
  } catch (error) {
    result.error = error instanceof Error ? error.message.split('\n')[0] : String(error);
    process.stderr.write(`${side.kind} T=${side.intervalSecs}s stopped: ${result.error}\n`);
  }
  return result;
}

/** Start a side and wait for its first registration. */
async function startSide(cleanup: CleanupStack, dds: BenchDds, kind: SideKind, intervalSecs: number): Promise<Side> {
  const side = kind === 'ours' ? await startOurs(cleanup, dds, intervalSecs) : await startCrateModel(cleanup, dds, intervalSecs);
  await dds.waitArrival(side.nodeUrl, 0, 30_000);
  await side.child.waitForEvent('registration.success', { timeoutMs: 30_000 });
  return side;
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

interface IntervalResult {
  intervalSecs: number;
  ours: SideResult;
  crate: SideResult;
}

function pick(trials: readonly Trial[], key: keyof Trial): Summary {
  return summarize(trials.map((t) => t[key]).filter((v) => Number.isFinite(v)));
}

function verdict(s: Summary): string {
  if (s.n === 0) return '-';
  return s.max < GOAL_MS ? 'met' : `missed (max ${fmt(s.max)} ms)`;
}

function ratioCell(ours: number, crate: number): string {
  if (!(ours > 0) || !(crate > 0)) return '-';
  const r = ours / crate;
  return `${r.toPrecision(2)} (1/${Math.round(1 / r)})`;
}

function printResults(results: readonly IntervalResult[], options: Options): void {
  printTable(
    `Staleness detection delay (ms): TTL expiry → re-registration request at DDS; ${options.probes} probe(s) per trial`,
    ['T (s)', 'trials', 'ours p50', 'p90', 'max', 'crate p50', 'p90', 'max', 'ours/crate p50', `goal < ${GOAL_MS} ms`],
    results.map((r) => {
      const o = pick(r.ours.trials, 'delayMs');
      const c = pick(r.crate.trials, 'delayMs');
      return [String(r.intervalSecs), `${o.n}/${c.n}`, fmt(o.p50), fmt(o.p90), fmt(o.max), fmt(c.p50), fmt(c.p90), fmt(c.max), ratioCell(o.p50, c.p50), verdict(o)];
    }),
  );
  const parts = (label: string, side: (r: IntervalResult) => SideResult): void =>
    printTable(
      `${label}: where the delay goes (ms, p50 / max; log lines ±1 ms)`,
      ['T (s)', 'expiry → healthcheck.expired', 'expired → lock.acquired', '→ registration.attempt', 'attempt → arrival', 'probe rtt (bound)'],
      results.map((r) => {
        const t = side(r).trials;
        const cell = (k: keyof Trial): string => {
          const s = pick(t, k);
          return `${fmt(s.p50)} / ${fmt(s.max)}`;
        };
        return [String(r.intervalSecs), cell('toExpiredMs'), cell('toLockMs'), cell('toAttemptMs'), cell('toArrivalMs'), cell('rttMs')];
      }),
    );
  parts('Ours', (r) => r.ours);
  parts('Crate model', (r) => r.crate);
  const discarded = results.reduce((a, r) => a + r.ours.discarded + r.crate.discarded, 0);
  const errors = results.flatMap((r) => [r.ours, r.crate].flatMap((s) => (s.error === undefined ? [] : [`T=${r.intervalSecs}s: ${s.error}`])));
  console.log('');
  console.log(
    `trials are ours/crate, after ${options.warmup} unrecorded warm-up trial(s) each; seed ${options.seed}; every side ran at once (${results.length * 2} children)`,
  );
  if (discarded > 0) console.log(`discarded trials (re-registered while probed): ${discarded}`);
  for (const e of errors) console.log(`stopped early: ${e}`);
}

function record(results: readonly IntervalResult[], options: Options): void {
  const brief = (s: Summary): Record<string, number> => ({ n: s.n, p50: s.p50, p90: s.p90, max: s.max, mean: s.mean });
  for (const r of results) {
    const o = pick(r.ours.trials, 'delayMs');
    const c = pick(r.crate.trials, 'delayMs');
    writeFigure(
      BENCH,
      `T${r.intervalSecs}s`,
      {
        interval_secs: r.intervalSecs,
        probes: options.probes,
        warmup_trials: options.warmup,
        ours_delay_ms: brief(o),
        crate_delay_ms: brief(c),
        ratio_p50: o.p50 / c.p50,
        goal_ms: GOAL_MS,
        goal_met: o.n > 0 && o.max < GOAL_MS,
        ours_breakdown_ms: {
          to_expired: brief(pick(r.ours.trials, 'toExpiredMs')),
          to_lock: brief(pick(r.ours.trials, 'toLockMs')),
          to_attempt: brief(pick(r.ours.trials, 'toAttemptMs')),
          to_arrival: brief(pick(r.ours.trials, 'toArrivalMs')),
          probe_rtt: brief(pick(r.ours.trials, 'rttMs')),
        },
        crate_breakdown_ms: {
          to_expired: brief(pick(r.crate.trials, 'toExpiredMs')),
          to_attempt: brief(pick(r.crate.trials, 'toAttemptMs')),
        },
      },
      { quick: options.quick },
    );
  }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions();
  printMachine(BENCH);
  console.log(`ours: node ${BIN} run; baseline: the crate's loop modelled in bench/staleness-helpers.ts`);
  console.log(`intervals ${options.intervals.join(', ')} s; up to ${options.trials} trials each; ${options.probes} probe(s) per trial; budget ${options.budgetMs / 1000} s`);
  const cleanup = new CleanupStack();
  try {
    const dds = await startBenchDds(cleanup);
    const deadline = now() + options.budgetMs;
    // Each side starts its trials right after its own first registration (an
    // unprobed registrar re-registers every T: waiting for the others would
    // start it at a random point of its TTL).
    const measure = async (kind: SideKind, T: number): Promise<{ side: Side; result: SideResult }> => {
      const side = await startSide(cleanup, dds, kind, T);
      return { side, result: await runSide(side, dds, options, deadline) };
    };
    const results: IntervalResult[] = await Promise.all(
      options.intervals.map(async (T) => {
        const [ours, crate] = await Promise.all([measure('ours', T), measure('crate', T)]);
        await Promise.all([ours.side.child.stop(), crate.side.child.stop()].map((p) => p.catch(() => undefined)));
        return { intervalSecs: T, ours: ours.result, crate: crate.result };
      }),
    );
    if (results.every((r) => r.ours.trials.length === 0)) throw new Error('no trial of ours could be measured');
    printResults(results, options);
    record(results, options);
  } finally {
    await cleanup.run();
  }
}

runBench(main);
