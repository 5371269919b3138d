/**
 * Idle-cost benchmark (issue 6, item 5): what a registered registrar costs
 * while nothing happens but DDS health probes.
 *
 *   node --import tsx bench/idle.ts [--quick] [--seconds 60] [--interval 30]
 *        [--probe-every 10] [--callback-window 5] [--settle 6] [--gc-wait 120] [--connection close|keep-alive]
 *
 * Measured: the real CLI as built (`BIN`, `run`) against a local DDS stand-in
 * that answers every registration 200 (and calls the node back, as DDS
 * does). Baseline, in the same run: a bare `node:http` server
 * (bench/idle-baseline.mjs) answering `GET /health`. Both get the same probes
 * (`GET /health`, `User-Agent: DDS v…`, every `--probe-every` seconds, a new
 * connection each by default, as the simulator sends them) from this process.
 *
 * Each is started twice: a clean process, whose CPU time (user+sys of every
 * thread, from /proc/<pid>/task/<tid>/schedstat — nanoseconds — or stat ticks
 * when schedstat is missing), context switches (voluntary + involuntary, every
 * thread; the main thread's voluntary ones are its event loop's wake-ups plus
 * its waits for the disk, told apart by timing one state-file write here) and
 * RSS (VmRSS at the window's start and end, VmHWM) are read from /proc; and a
 * counted twin, preloaded with bench/idle-counter.mjs (async_hooks), which
 * counts the callbacks the event loop ran by type (Timeout, Immediate,
 * TCPWRAP, …) and attributes every timer to where it was armed. The hook
 * slows a process down, so the counted twins give the counts and the clean
 * processes everything else.
 *
 * The window opens once the registrar is registered and has settled (its
 * lock released, the callback window closed, the keep-alive socket of its
 * registration request gone) and V8's memory reducer has run its one full GC
 * after start-up (10–110 s after it; seen as the registrar's RSS falling), so
 * that the window shows the steady state; it opens half-way between two
 * probes and lasts `--seconds`. The interval (`REGISTER_INTERVAL_SECS`, the
 * health-check TTL) is longer than the probe period, so the registrar must
 * stay registered: the benchmark reports any re-registration in the window.
 *
 * Goal: no polling — wake-ups only for the TTL and the probes: per probe, as
 * many timer callbacks as the baseline (the TTL timer is re-armed by every
 * probe — cancelling a timer is not a wake-up), and no timer of our own that
 * fires while probes keep arriving. Prints tables and a verdict; never fails
 * on a figure. Figures go to the figures file (suite `idle`).
 * Linux only (/proc).
 */
import * as fs from 'node:fs';
import http from 'node:http';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFileAtomicSync } from '../src/state/atomic-file.js';
import { dataPaths, listenUrlOf, newCredentials, spawnNode, type RegistrarChild } from '../test/reliability/common.js';
import { REPO_ROOT, spawnChild, type LineChild } from '../test/support/child.js';
import { CleanupStack } from '../test/support/cleanup.js';
import { callbackResponder, nodeUrlOf, startFakeDds, type FakeDds } from '../test/support/fake-dds.js';
import { writeFigure } from '../test/support/figures.js';
import { round, summarize, type Summary } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { now, sleep } from '../test/support/time.js';
import { fmt, parseBenchArgs, positiveNumber, printMachine, printTable, ratio, runBench } from './common.js';

const USAGE = `
Usage: node --import tsx bench/idle.ts [--quick] [options]

Idle cost of a registered registrar (CPU, wake-ups, RSS) over a quiet window
with DDS health probes arriving, beside a bare node:http server.

  --seconds <s>          length of the measured window (default 60; --quick 4)
  --interval <s>         REGISTER_INTERVAL_SECS, the health-check TTL (default 30; --quick 3)
  --probe-every <s>      seconds between probes (default a third of the interval)
  --callback-window <s>  CALLBACK_WINDOW_SECS (default 5; --quick 1): it closes before the window opens
  --settle <s>           idle time after registration before the window (default 6; --quick 2)
  --gc-wait <s>          then wait up to this long for V8's memory reducer's full GC in the
                         registrar, which comes once, 10–110 s after start-up (default 120; --quick 0)
  --connection <c>       close (a new connection per probe, default) or keep-alive
  --quick                a smoke-sized run
  --help                 this text
`;

/** The probe's User-Agent: the registrar counts only probes from "DDS v…". */
const PROBE_USER_AGENT = 'DDS v1.0.0 (idle bench)';
const COUNTER = path.join(REPO_ROOT, 'bench', 'idle-counter.mjs');
const BASELINE_SCRIPT = 'bench/idle-baseline.mjs';

interface IdleOptions {
  quick: boolean;
  seconds: number;
  intervalSecs: number;
  probeEverySecs: number;
  callbackWindowSecs: number;
  settleSecs: number;
  gcWaitSecs: number;
  keepAlive: boolean;
}

function parseOptions(): IdleOptions {
  const { quick, options: o } = parseBenchArgs(USAGE, ['seconds', 'interval', 'probe-every', 'callback-window', 'settle', 'gc-wait', 'connection']);
  const intervalSecs = positiveNumber(o['interval'], quick ? 3 : 30, 'interval');
  const connection = o['connection'] ?? 'close';
  if (connection !== 'close' && connection !== 'keep-alive') {
    console.error(`--connection: expected close or keep-alive, got ${JSON.stringify(connection)}`);
    process.exit(2);
  }
  const opts: IdleOptions = {
    quick,
    seconds: positiveNumber(o['seconds'], quick ? 4 : 60, 'seconds'),
    intervalSecs,
    probeEverySecs: positiveNumber(o['probe-every'], intervalSecs / 3, 'probe-every'),
    callbackWindowSecs: positiveNumber(o['callback-window'], quick ? 1 : 5, 'callback-window'),
    settleSecs: positiveNumber(o['settle'], quick ? 2 : 6, 'settle'),
    gcWaitSecs: o['gc-wait'] === '0' ? 0 : positiveNumber(o['gc-wait'], quick ? 0 : 120, 'gc-wait'),
    keepAlive: connection === 'keep-alive',
  };
  if (opts.probeEverySecs >= opts.intervalSecs) {
    console.error(`note: probes every ${opts.probeEverySecs} s do not keep a ${opts.intervalSecs} s TTL fresh: expect re-registrations`);
  }
  return opts;
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/** One thread's counters. */
interface TaskSample {
  /** CPU time, ns (schedstat), or `null` when schedstat is missing. */
  cpuNs: number | null;
  /** utime + stime, clock ticks. */
  ticks: number;
  voluntary: number;
  nonvoluntary: number;
}

/** A process's counters at one moment. */
interface ProcSample {
  pid: number;
  at: number;
  tasks: Map<number, TaskSample>;
  rssKiB: number;
  hwmKiB: number;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function statusField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function readTask(pid: number, tid: number): TaskSample | null {
  const dir = `/proc/${pid}/task/${tid}`;
  const stat = readText(`${dir}/stat`);
  const status = readText(`${dir}/status`);
  if (stat === null || status === null) return null;
  // Fields after the command name (which may hold spaces), counted from field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const schedstat = readText(`${dir}/schedstat`);
  const cpuNs = schedstat === null ? null : Number(schedstat.split(' ')[0]);
  return {
    cpuNs: Number.isFinite(cpuNs) ? cpuNs : null,
    ticks,
    voluntary: statusField(status, 'voluntary_ctxt_switches'),
    nonvoluntary: statusField(status, 'nonvoluntary_ctxt_switches'),
  };
}

function sampleProc(pid: number): ProcSample {
  const status = readText(`/proc/${pid}/status`);
  if (status === null) throw new Error(`process ${pid} is gone`);
  const tasks = new Map<number, TaskSample>();
  for (const name of fs.readdirSync(`/proc/${pid}/task`)) {
    const t = readTask(pid, Number(name));
    if (t !== null) tasks.set(Number(name), t);
  }
  return { pid, at: now(), tasks, rssKiB: statusField(status, 'VmRSS'), hwmKiB: statusField(status, 'VmHWM') };
}

/** The clock tick (USER_HZ) of utime/stime: 100 on every Linux we know of. */
const TICK_MS = 10;

/** What a process did between two samples. */
interface ProcDelta {
  cpuMs: number;
  /** Where the CPU time came from. */
  cpuSource: 'schedstat' | 'ticks';
  voluntary: number;
  nonvoluntary: number;
  mainVoluntary: number;
  threads: number;
  rssStartMiB: number;
  rssEndMiB: number;
  peakMiB: number;
}

function procDelta(a: ProcSample, b: ProcSample): ProcDelta {
  let ns = 0;
  let ticks = 0;
  let schedstat = true;
  let voluntary = 0;
  let nonvoluntary = 0;
  for (const [tid, end] of b.tasks) {
    // A thread born in the window counts from zero; one that died in it is lost (Node's threads live as long as the process).
    const start = a.tasks.get(tid) ?? { cpuNs: 0, ticks: 0, voluntary: 0, nonvoluntary: 0 };
    if (end.cpuNs === null || start.cpuNs === null) schedstat = false;
    else ns += end.cpuNs - start.cpuNs;
    ticks += end.ticks - start.ticks;
    voluntary += end.voluntary - start.voluntary;
    nonvoluntary += end.nonvoluntary - start.nonvoluntary;
  }
  const mainA = a.tasks.get(a.pid);
  const mainB = b.tasks.get(b.pid);
  const mib = (kib: number): number => kib / 1024;
  return {
    cpuMs: schedstat ? ns / 1e6 : ticks * TICK_MS,
    cpuSource: schedstat ? 'schedstat' : 'ticks',
    voluntary,
    nonvoluntary,
    mainVoluntary: mainA && mainB ? mainB.voluntary - mainA.voluntary : NaN,
    threads: b.tasks.size,
    rssStartMiB: mib(a.rssKiB),
    rssEndMiB: mib(b.rssKiB),
    peakMiB: mib(b.hwmKiB),
  };
}

// ---------------------------------------------------------------------------
// The counting preload's snapshots
// ---------------------------------------------------------------------------

type Counts = Record<string, number>;

/** A snapshot written by bench/idle-counter.mjs. */
interface CounterSnapshot {
  cpu: { user: number; system: number };
  fired: Counts;
  topLevel: Counts;
  created: Counts;
  firedByOrigin: Counts;
  createdByOrigin: Counts;
  liveByOrigin: Counts;
  activeResources: string[];
}

function minus(b: Counts, a: Counts): Counts {
  const out: Counts = {};
  for (const [k, v] of Object.entries(b)) {
    const d = v - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** Ask a counted child for a snapshot (SIGUSR2) and read it. */
async function counterSnapshot(target: Target, timeoutMs = 10_000): Promise<CounterSnapshot> {
  if (target.counterOut === undefined) throw new Error(`${target.name} is not counted`);
  target.snapshots += 1;
  const file = `${target.counterOut}-${target.snapshots}.json`;
  target.child.proc.kill('SIGUSR2');
  const deadline = now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (now() > deadline || target.child.hasExited) throw new Error(`${target.name}: no counter snapshot ${path.basename(file)}`);
    await sleep(10);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CounterSnapshot;
}

/** Callback types that are not entries of the event loop: work queued by a callback, run before the loop goes on. */
const NOT_ENTRIES = new Set(['PROMISE', 'TickObject', 'Microtask', 'SIGNALWRAP']);

/** What a counted child's event loop ran in the window. */
interface CallbackCounts {
  /** Callbacks by resource type (SIGNALWRAP, the snapshot's own signal, left out). */
  fired: Counts;
  /** Top-level callbacks by resource type (SIGNALWRAP left out). */
  topLevel: Counts;
  /** Timer callbacks (Timeout + Immediate). */
  timers: number;
  /** Entries of the event loop into JavaScript: top-level callbacks of timers and I/O (not nextTick or promise reactions). */
  entries: number;
  /** Timer callbacks by origin. */
  firedByOrigin: Counts;
  /** Timers armed, by origin. */
  createdByOrigin: Counts;
  /** Timers alive at the window's end, by origin. */
  liveAtEnd: Counts;
  activeAtEnd: string[];
  /** CPU time of the counted twin (with the hook), ms. */
  cpuMsWithHook: number;
}

function callbackCounts(a: CounterSnapshot, b: CounterSnapshot): CallbackCounts {
  const fired = minus(b.fired, a.fired);
  const topLevel = minus(b.topLevel, a.topLevel);
  delete fired['SIGNALWRAP'];
  delete topLevel['SIGNALWRAP'];
  const sum = (counts: Counts, pred: (type: string) => boolean): number =>
    Object.entries(counts)
      .filter(([t]) => pred(t))
      .reduce((s, [, n]) => s + n, 0);
  return {
    fired,
    topLevel,
    timers: sum(fired, (t) => t === 'Timeout' || t === 'Immediate'),
    entries: sum(topLevel, (t) => !NOT_ENTRIES.has(t)),
    firedByOrigin: minus(b.firedByOrigin, a.firedByOrigin),
    createdByOrigin: minus(b.createdByOrigin, a.createdByOrigin),
    liveAtEnd: b.liveByOrigin,
    activeAtEnd: b.activeResources,
    cpuMsWithHook: (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1000,
  };
}

// ---------------------------------------------------------------------------
// The processes
// ---------------------------------------------------------------------------

type Kind = 'ours' | 'baseline';

/** A measured child. */
interface Target {
  name: string;
  kind: Kind;
  counted: boolean;
  child: Pick<LineChild, 'proc' | 'hasExited'> & { stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<unknown> };
  pid: number;
  /** Where its routes listen. */
  url: string;
  /** The counting preload's snapshot prefix (counted twins). */
  counterOut?: string;
  snapshots: number;
  /** The registrar's child (ours). */
  registrar?: RegistrarChild;
  nodeUrl?: string;
  dataDir?: string;
}

function counterEnv(dir: string, name: string): { env: Record<string, string>; out: string } {
  const out = path.join(dir, `${name}-counts`);
  // Source maps: the CLI is one bundle; its timers' creation stacks then name the sources (xstate, src/…).
  return { env: { NODE_OPTIONS: `--enable-source-maps --import=${pathToFileURL(COUNTER).href}`, IDLE_COUNTER_OUT: out }, out };
}

async function startOurs(cleanup: CleanupStack, dds: FakeDds, dir: string, opts: IdleOptions, counted: boolean): Promise<Target> {
  const name = counted ? 'ours-counted' : 'ours';
  const nodeUrl = `http://${name}.idle.bench.test:8080`;
  const dataDir = path.join(dir, name, 'data');
  const counter = counted ? counterEnv(dir, name) : undefined;
  const child = spawnNode(cleanup, dds, newCredentials(), {
    name,
    nodeUrl,
    dataDir,
    env: {
      REGISTER_INTERVAL_SECS: String(opts.intervalSecs),
      CALLBACK_WINDOW_SECS: String(opts.callbackWindowSecs),
      ...counter?.env,
    },
  });
  const url = await listenUrlOf(child);
  return { name, kind: 'ours', counted, child, pid: child.pid, url, ...(counter ? { counterOut: counter.out } : {}), snapshots: 0, registrar: child, nodeUrl, dataDir };
}

async function startBaseline(cleanup: CleanupStack, dir: string, counted: boolean): Promise<Target> {
  const name = counted ? 'baseline-counted' : 'baseline';
  const counter = counted ? counterEnv(dir, name) : undefined;
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
  Object.assign(env, counter?.env);
  const child: LineChild = spawnChild(cleanup, { script: BASELINE_SCRIPT, env, name });
  const { line } = await child.waitForEvent('http.listening');
  const pid = child.proc.pid;
  if (pid === undefined || typeof line['url'] !== 'string') throw new Error(`${name}: did not start`);
  return { name, kind: 'baseline', counted, child, pid, url: line['url'], ...(counter ? { counterOut: counter.out } : {}), snapshots: 0 };
}

// ---------------------------------------------------------------------------
// The probes
// ---------------------------------------------------------------------------

/** One round of probes (every target at once). */
interface ProbeRound {
  at: number;
  /** Status by target name (`null`: failed). */
  status: Record<string, number | null>;
}

function probeOnce(url: string, agent: http.Agent | false): Promise<number | null> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': PROBE_USER_AGENT };
    if (agent === false) headers['connection'] = 'close';
    const req = http.get(`${url}/health`, { agent, headers, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? null));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** Probes every target every `everyMs`, on a fixed grid from its start (no drift). */
class Prober {
  readonly rounds: ProbeRound[] = [];
  readonly startedAt = now();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #pending = new Set<Promise<void>>();
  readonly #agent: http.Agent | false;
  readonly #targets: readonly Target[];
  readonly everyMs: number;

  constructor(targets: readonly Target[], everyMs: number, keepAlive: boolean) {
    this.#targets = targets;
    this.everyMs = everyMs;
    // The server closes an idle keep-alive connection after 5 s (both servers); the client keeps it until then.
    this.#agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
    this.#round(0);
  }

  /** When probe round `k` is due. */
  dueAt(k: number): number {
    return this.startedAt + k * this.everyMs;
  }

  #round(k: number): void {
    if (this.#stopped) return;
    const round: ProbeRound = { at: now(), status: {} };
    this.rounds.push(round);
    for (const t of this.#targets) {
      const p = probeOnce(t.url, this.#agent).then((status) => {
        round.status[t.name] = status;
      });
      this.#pending.add(p);
      void p.finally(() => this.#pending.delete(p));
    }
    this.#timer = setTimeout(() => this.#round(k + 1), Math.max(0, this.dueAt(k + 1) - now()));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await Promise.allSettled([...this.#pending]);
    if (this.#agent !== false) this.#agent.destroy();
  }
}

// ---------------------------------------------------------------------------
// The window
// ---------------------------------------------------------------------------

/** What one target's window looked like. */
interface WindowFigures {
  proc: ProcDelta;
  /** The same, per probe period (the window sampled half-way between probes). */
  periods: ProcDelta[];
  counts?: CallbackCounts;
}

/** The registrar's behaviour in the window. */
interface RegistrarCheck {
  name: string;
  registrationsAtDds: number;
  successes: number;
  expired: number;
  touches: number;
  lockHeldAtStart: boolean;
  lockHeldAtEnd: boolean;
}

interface WindowResult {
  ms: number;
  probes: number;
  failedProbes: number;
  figures: Map<string, WindowFigures>;
  checks: RegistrarCheck[];
}

/**
 * Sample every target's /proc half-way between probes until `end` (reading
 * /proc does not wake a process): one sample per probe period, so that a
 * one-off (a full GC) shows as one period out of many.
 */
async function samplePeriods(targets: readonly Target[], start: number, end: number, everyMs: number): Promise<Map<string, ProcSample[]>> {
  const samples = new Map<string, ProcSample[]>(targets.map((t) => [t.name, []]));
  for (let k = 1; start + k * everyMs < end - everyMs / 4; k++) {
    await sleep(Math.max(0, start + k * everyMs - now()));
    for (const t of targets) samples.get(t.name)?.push(sampleProc(t.pid));
  }
  await sleep(Math.max(0, end - now()));
  return samples;
}

async function measureWindow(targets: readonly Target[], dds: FakeDds, prober: Prober, seconds: number): Promise<WindowResult> {
  const ours = targets.filter((t) => t.kind === 'ours');
  const jsonAt = new Map(ours.map((t) => [t.name, t.registrar?.json.length ?? 0]));
  const lockAt = (t: Target): boolean => t.dataDir !== undefined && fs.existsSync(dataPaths(t.dataDir).lock);
  const lockStart = new Map(ours.map((t) => [t.name, lockAt(t)]));
  const wallStart = Date.now();
  const startProc = new Map(targets.map((t) => [t.name, sampleProc(t.pid)]));
  const startCounts = new Map<string, CounterSnapshot>();
  for (const t of targets) if (t.counted) startCounts.set(t.name, await counterSnapshot(t));
  const start = now();

  const middle = await samplePeriods(targets, start, start + seconds * 1000, prober.everyMs);

  const end = now();
  const endProc = new Map(targets.map((t) => [t.name, sampleProc(t.pid)]));
  const figures = new Map<string, WindowFigures>();
  for (const t of targets) {
    const first = startProc.get(t.name) as ProcSample;
    const last = endProc.get(t.name) as ProcSample;
    const series = [first, ...(middle.get(t.name) ?? []), last];
    const periods = series.slice(1).map((b, i) => procDelta(series[i] as ProcSample, b));
    const proc = procDelta(first, last);
    const a = startCounts.get(t.name);
    figures.set(t.name, a === undefined ? { proc, periods } : { proc, periods, counts: callbackCounts(a, await counterSnapshot(t)) });
  }
  const wallEnd = Date.now();

  const rounds = prober.rounds.filter((r) => r.at >= start && r.at < end);
  const failedProbes = rounds.reduce((n, r) => n + Object.values(r.status).filter((s) => s !== 200).length, 0);
  const checks = ours.map((t): RegistrarCheck => {
    const lines = (t.registrar?.json ?? []).slice(jsonAt.get(t.name) ?? 0).map((l) => l.line);
    const count = (event: string): number => lines.filter((l) => l['event'] === event).length;
    return {
      name: t.name,
      registrationsAtDds: dds.registrations().filter((r) => nodeUrlOf(r) === t.nodeUrl && r.receivedAt >= wallStart && r.receivedAt <= wallEnd).length,
      successes: count('registration.success'),
      expired: count('healthcheck.expired'),
      touches: lines.filter((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe').length,
      lockHeldAtStart: lockStart.get(t.name) ?? false,
      lockHeldAtEnd: lockAt(t),
    };
  });
  return { ms: end - start, probes: rounds.length, failedProbes, figures, checks };
}

// ---------------------------------------------------------------------------
// The state file's cost
// ---------------------------------------------------------------------------

/** What one durable state-file write (temp file, fsync, rename, fsync of the directory) costs this machine's main thread (medians). */
interface StateWriteCost {
  switchesPerWrite: number;
  cpuMsPerWrite: number;
}

/**
 * Every probe makes the registrar record it in the state file, durably
 * (PROTOCOL.md: the crate does too). Each fsync blocks the main thread until
 * the disk answers — a voluntary context switch that is not an event-loop
 * wake-up. Measure that cost here, on the same file system, to tell the two apart.
 */
function calibrateStateWrite(dir: string, writes = 31): StateWriteCost {
  const target = path.join(dir, 'calibration', 'registration_state.json');
  writeFileAtomicSync(target, '{}\n');
  const switches: number[] = [];
  const cpuMs: number[] = [];
  for (let i = 0; i < writes; i++) {
    const before = readTask(process.pid, process.pid);
    writeFileAtomicSync(target, `${JSON.stringify({ status: 'registered', lastHealthcheck: Math.floor(Date.now() / 1000), i })}\n`);
    const after = readTask(process.pid, process.pid);
    if (before === null || after === null) continue;
    switches.push(after.voluntary - before.voluntary + after.nonvoluntary - before.nonvoluntary);
    cpuMs.push(before.cpuNs !== null && after.cpuNs !== null ? (after.cpuNs - before.cpuNs) / 1e6 : (after.ticks - before.ticks) * TICK_MS);
  }
  // The median: another process's disk traffic makes some fsyncs wait longer.
  return { switchesPerWrite: summarize(switches).p50, cpuMsPerWrite: summarize(cpuMs).p50 };
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/** The figures of one side (ours or baseline), clean process and counted twin together. */
interface SideFigures {
  cpuMs: number;
  cpuPct: number;
  cpuMsPerProbe: number;
  cpuSource: string;
  timerCallbacks: number;
  timerCallbacksPerProbe: number;
  loopEntries: number;
  loopEntriesPerProbe: number;
  callbacksByType: Counts;
  topLevelByType: Counts;
  contextSwitches: number;
  contextSwitchesPerProbe: number;
  mainVoluntary: number;
  mainVoluntaryPerProbe: number;
  threads: number;
  rssStartMiB: number;
  rssEndMiB: number;
  peakMiB: number;
  cpuMsWithHook: number;
  /** CPU ms per probe period (the window cut half-way between probes). */
  periodCpuMs: Summary;
  /** Context switches (all threads) per probe period. */
  periodSwitches: Summary;
  /** Main-thread voluntary switches per probe period. */
  periodMainVoluntary: Summary;
  /** Probe periods (1-based) in which RSS fell by {@link GC_RSS_DROP_MIB} or more: a full GC ran (V8's memory reducer). */
  gcPeriods: number[];
}

function sideFigures(result: WindowResult, kind: Kind): SideFigures {
  const clean = result.figures.get(kind)?.proc;
  const periods = result.figures.get(kind)?.periods ?? [];
  const counts = result.figures.get(`${kind}-counted`)?.counts;
  if (clean === undefined || counts === undefined) throw new Error(`no figures for ${kind}`);
  const per = (n: number): number => (result.probes > 0 ? n / result.probes : NaN);
  return {
    cpuMs: clean.cpuMs,
    cpuPct: (clean.cpuMs / result.ms) * 100,
    cpuMsPerProbe: per(clean.cpuMs),
    cpuSource: clean.cpuSource,
    timerCallbacks: counts.timers,
    timerCallbacksPerProbe: per(counts.timers),
    loopEntries: counts.entries,
    loopEntriesPerProbe: per(counts.entries),
    callbacksByType: counts.fired,
    topLevelByType: counts.topLevel,
    contextSwitches: clean.voluntary + clean.nonvoluntary,
    contextSwitchesPerProbe: per(clean.voluntary + clean.nonvoluntary),
    mainVoluntary: clean.mainVoluntary,
    mainVoluntaryPerProbe: per(clean.mainVoluntary),
    threads: clean.threads,
    rssStartMiB: clean.rssStartMiB,
    rssEndMiB: clean.rssEndMiB,
    peakMiB: clean.peakMiB,
    cpuMsWithHook: counts.cpuMsWithHook,
    periodCpuMs: summarize(periods.map((p) => p.cpuMs)),
    periodSwitches: summarize(periods.map((p) => p.voluntary + p.nonvoluntary)),
    periodMainVoluntary: summarize(periods.map((p) => p.mainVoluntary)),
    gcPeriods: periods.flatMap((p, i) => (p.rssStartMiB - p.rssEndMiB >= GC_RSS_DROP_MIB ? [i + 1] : [])),
  };
}

function gcList(periods: readonly number[]): string {
  return periods.length === 0 ? 'none' : `${periods.length} (period ${periods.join(', ')})`;
}

function printMain(o: SideFigures, b: SideFigures, result: WindowResult, disk: StateWriteCost): void {
  const row = (label: string, x: number, y: number, digits?: number): string[] => [label, fmt(x, digits), fmt(y, digits), fmt(ratio(x, y))];
  printTable(
    `Idle window: ${round(result.ms / 1000, 1)} s, ${result.probes} probes (CPU from ${o.cpuSource})`,
    ['figure', 'ours', 'baseline', 'ratio'],
    [
      row('CPU time, ms', o.cpuMs, b.cpuMs),
      row('CPU, % of one core', o.cpuPct, b.cpuPct, 3),
      row('CPU ms per probe (window / probes)', o.cpuMsPerProbe, b.cpuMsPerProbe, 3),
      row('CPU ms per probe period, median', o.periodCpuMs.p50, b.periodCpuMs.p50, 3),
      row('CPU ms per probe period, max', o.periodCpuMs.max, b.periodCpuMs.max, 3),
      row('timer callbacks (Timeout + Immediate)', o.timerCallbacks, b.timerCallbacks, 0),
      row('timer callbacks per probe', o.timerCallbacksPerProbe, b.timerCallbacksPerProbe),
      row('event-loop entries (timers + I/O)', o.loopEntries, b.loopEntries, 0),
      row('event-loop entries per probe', o.loopEntriesPerProbe, b.loopEntriesPerProbe),
      row('context switches (all threads)', o.contextSwitches, b.contextSwitches, 0),
      row('context switches per probe period, median', o.periodSwitches.p50, b.periodSwitches.p50, 1),
      row('main-thread voluntary switches', o.mainVoluntary, b.mainVoluntary, 0),
      row('main-thread voluntary switches per probe period, median', o.periodMainVoluntary.p50, b.periodMainVoluntary.p50, 1),
      row('  less one state-file write', o.periodMainVoluntary.p50 - disk.switchesPerWrite, b.periodMainVoluntary.p50, 1),
      row('RSS at start, MiB', o.rssStartMiB, b.rssStartMiB, 1),
      row('RSS at end, MiB', o.rssEndMiB, b.rssEndMiB, 1),
      row('peak RSS (VmHWM), MiB', o.peakMiB, b.peakMiB, 1),
      row('threads', o.threads, b.threads, 0),
      row('CPU time of the counted twin, ms', o.cpuMsWithHook, b.cpuMsWithHook),
    ],
  );
  console.log(
    `one durable state-file write (temp file, fsync, rename, fsync of the directory) on this file system: ${fmt(disk.switchesPerWrite)} context switches, ${fmt(disk.cpuMsPerWrite, 3)} ms CPU`,
  );
  console.log(
    `probe periods with a full GC (RSS fell ≥ ${GC_RSS_DROP_MIB} MiB): ours ${gcList(o.gcPeriods)} of ${o.periodCpuMs.n}, baseline ${gcList(b.gcPeriods)} of ${b.periodCpuMs.n}` +
      (o.gcPeriods.length + b.gcPeriods.length > 0 ? " — a one-off (V8's memory reducer after start-up): see the medians, or a longer --settle" : ''),
  );
}

/** An RSS drop this large means a full GC ran. */
const GC_RSS_DROP_MIB = 4;

/**
 * Wait (up to `maxSecs`) for the full GC V8's memory reducer runs once some
 * 10–110 s after start-up, when the process has gone quiet: seen from outside
 * as a target's RSS falling {@link GC_RSS_DROP_MIB} below its highest. Waits
 * for every target given; returns when the last was seen ({@link now}'s
 * clock), or `null` when one was not seen in time.
 */
async function waitForStartupGc(targets: readonly Target[], maxSecs: number): Promise<number | null> {
  if (targets.length === 0 || maxSecs <= 0) return null;
  const deadline = now() + maxSecs * 1000;
  const peak = new Map<string, number>();
  const pending = new Set(targets);
  while (pending.size > 0) {
    if (now() > deadline) return null;
    for (const t of [...pending]) {
      const rss = sampleProc(t.pid).rssKiB / 1024;
      const top = Math.max(peak.get(t.name) ?? 0, rss);
      peak.set(t.name, top);
      if (top - rss >= GC_RSS_DROP_MIB) pending.delete(t);
    }
    if (pending.size > 0) await sleep(500);
  }
  return now();
}

/** What the processes did between registration and the window: the start-up's tail (V8's memory reducer). */
function printSettling(registered: Map<string, ProcSample>, settled: Map<string, ProcSample>): void {
  const parts: string[] = [];
  for (const name of ['ours', 'baseline']) {
    const a = registered.get(name);
    const b = settled.get(name);
    if (a === undefined || b === undefined) continue;
    const d = procDelta(a, b);
    parts.push(`${name} ${fmt(d.cpuMs)} ms CPU, RSS ${fmt(d.rssStartMiB, 1)} → ${fmt(d.rssEndMiB, 1)} MiB`);
  }
  const secs = round(((settled.get('ours')?.at ?? 0) - (registered.get('ours')?.at ?? 0)) / 1000, 1);
  console.log(`before the window (${secs} s from registration, not counted above): ${parts.join('; ')}`);
}

function printCallbackTypes(o: SideFigures, b: SideFigures): void {
  const types = [...new Set([...Object.keys(o.callbacksByType), ...Object.keys(b.callbacksByType)])].sort();
  printTable(
    'Callbacks in the window by resource type: all (top-level) — counted twins',
    ['type', 'ours', 'baseline'],
    types.map((t) => [t, `${o.callbacksByType[t] ?? 0} (${o.topLevelByType[t] ?? 0})`, `${b.callbacksByType[t] ?? 0} (${b.topLevelByType[t] ?? 0})`]),
  );
}

/** A timer's origin, parsed from the preload's key (`type \t ms \t repeat \t where \t project \t callers`). */
interface TimerOrigin {
  type: string;
  ms: number;
  repeat: boolean;
  /** The first frame of its creation stack outside Node's timer code. */
  where: string;
  /** The first frame of the project's code under it ('' if none). */
  project: string;
  /** The names of the next callers (`a ← b ← c`). */
  callers: string;
}

function parseTimerKey(key: string): TimerOrigin {
  const [type = '?', ms = 'NaN', repeat = '0', where = '?', project = '', callers = ''] = key.split('\t');
  return { type, ms: Number(ms), repeat: repeat === '1', where, project, callers };
}

/** Timers grouped by type, repetition and where they were armed (durations differ from one arming to the next). */
interface TimerGroup {
  type: string;
  repeat: boolean;
  where: string;
  projects: Set<string>;
  callers: Set<string>;
  minMs: number;
  maxMs: number;
  armed: number;
  fired: number;
  alive: number;
}

function groupKeyOf(o: TimerOrigin): string {
  return `${o.type}${o.repeat ? ' repeat' : ''} @ ${o.where}`;
}

function timerGroups(c: CallbackCounts | undefined): Map<string, TimerGroup> {
  const groups = new Map<string, TimerGroup>();
  if (c === undefined) return groups;
  const add = (counts: Counts, field: 'armed' | 'fired' | 'alive'): void => {
    for (const [key, n] of Object.entries(counts)) {
      const o = parseTimerKey(key);
      const k = groupKeyOf(o);
      let g = groups.get(k);
      if (g === undefined) {
        g = { type: o.type, repeat: o.repeat, where: o.where, projects: new Set(), callers: new Set(), minMs: o.ms, maxMs: o.ms, armed: 0, fired: 0, alive: 0 };
        groups.set(k, g);
      }
      if (o.project !== '' && o.project !== o.where) g.projects.add(o.project);
      if (o.callers !== '') g.callers.add(o.callers);
      g.minMs = Math.min(g.minMs, o.ms);
      g.maxMs = Math.max(g.maxMs, o.ms);
      g[field] += n;
    }
  };
  add(c.createdByOrigin, 'armed');
  add(c.firedByOrigin, 'fired');
  add(c.liveAtEnd, 'alive');
  return groups;
}

/** What a timer is, for people (by where it was armed and its duration: the CLI is one bundle, so paths say little). */
function describeTimer(g: TimerGroup, intervalMs: number): string {
  const callers = [...g.callers].join(' ');
  const nodeInternal = g.where.includes('(node:');
  if (g.where.includes('setupConnectionsTracking')) return "node:http: request-timeout check (Node's, every 30 s)";
  if (g.where.startsWith('cache (node:internal/http')) return 'node:http: Date-header cache (one per response)';
  if (g.where.includes('setStreamTimeout')) return 'socket timeout (keep-alive)';
  if (g.where.includes('proper-lockfile') || callers.includes('updateLock')) return 'proper-lockfile: lock refresh';
  if (g.type === 'Timeout' && !g.repeat && !nodeInternal && g.minMs === intervalMs && g.maxMs === intervalMs) {
    return 'statechart: health-check TTL (re-armed per probe)';
  }
  if (g.where.includes('xstate') || callers.includes('schedule')) return 'statechart: a delayed transition';
  return '';
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function msRange(g: TimerGroup): string {
  return g.minMs === g.maxMs ? `${g.minMs}` : `${g.minMs}–${g.maxMs}`;
}

function printTimers(result: WindowResult, intervalMs: number): void {
  const rows: string[][] = [];
  for (const kind of ['ours', 'baseline'] as const) {
    const groups = timerGroups(result.figures.get(`${kind}-counted`)?.counts);
    for (const g of [...groups.values()].sort((x, y) => y.fired - x.fired || y.armed - x.armed)) {
      const via = [...g.projects, ...[...g.callers].slice(0, 1)].map((f) => ` ← ${f}`).join('');
      rows.push([
        kind,
        `${g.type}${g.repeat ? ' (repeat)' : ''}`,
        msRange(g),
        String(g.armed),
        String(g.fired),
        String(g.alive),
        describeTimer(g, intervalMs) || '?',
        clip(`${g.where}${via}`, 200),
      ]);
    }
  }
  printTable('Timers armed and fired in the window, alive at its end (counted twins)', ['who', 'timer', 'ms', 'armed', 'fired', 'alive', 'what', 'armed at'], rows);
  for (const kind of ['ours', 'baseline'] as const) {
    const c = result.figures.get(`${kind}-counted`)?.counts;
    if (c) console.log(`${kind}: active resources at the end: ${c.activeAtEnd.join(', ') || 'none'}`);
  }
}

/** How ours' timers compare with the baseline's. */
interface TimerAttribution {
  /** Timer callbacks of ours with no match in the baseline, by origin (the TTL's left out). */
  extra: Counts;
  /** Times the TTL timer fired (0 while probes arrive). */
  ttlFired: number;
  /** Times it was armed (once per probe). */
  ttlArmed: number;
  /** Repeating timers of ours alive at the end that the baseline lacks: polling. */
  polling: string[];
}

function attributeTimers(result: WindowResult, intervalMs: number): TimerAttribution {
  const ours = timerGroups(result.figures.get('ours-counted')?.counts);
  const base = timerGroups(result.figures.get('baseline-counted')?.counts);
  const extra: Counts = {};
  let ttlFired = 0;
  let ttlArmed = 0;
  const polling: string[] = [];
  for (const [k, g] of ours) {
    if (describeTimer(g, intervalMs).includes('TTL')) {
      ttlFired += g.fired;
      ttlArmed += g.armed;
      continue;
    }
    const d = g.fired - (base.get(k)?.fired ?? 0);
    if (d > 0) extra[k] = d;
    if (g.repeat && g.alive > 0 && !base.has(k)) polling.push(k);
  }
  return { extra, ttlFired, ttlArmed, polling };
}

interface Verdict {
  met: boolean;
  text: string;
}

function verdict(result: WindowResult, o: SideFigures, b: SideFigures, t: TimerAttribution, disk: StateWriteCost): Verdict {
  const extra = Object.values(t.extra).reduce((s, n) => s + n, 0);
  const reRegistered = result.checks.some((c) => c.registrationsAtDds > 0 || c.successes > 0 || c.expired > 0);
  const met = extra === 0 && t.polling.length === 0 && t.ttlFired === 0 && !reRegistered && result.failedProbes === 0;
  const parts = [
    `timer callbacks ${o.timerCallbacks} vs ${b.timerCallbacks} (baseline), ${extra} of our own`,
    `TTL timer armed ${t.ttlArmed}× by ${result.probes} probes, fired ${t.ttlFired}×`,
    `repeating timers of our own: ${t.polling.length === 0 ? 'none' : t.polling.join('; ')}`,
    `re-registrations: ${reRegistered ? 'YES' : 'none'}`,
    `event-loop entries per probe ${fmt(o.loopEntriesPerProbe)} vs ${fmt(b.loopEntriesPerProbe)}`,
    `main-thread switches per probe period ${fmt(o.periodMainVoluntary.p50)} vs ${fmt(b.periodMainVoluntary.p50)}, of which ${fmt(disk.switchesPerWrite)} are the fsync'd state-file write (disk waits, not wake-ups)`,
  ];
  return { met, text: `${met ? 'MET' : 'MISSED'} — ${parts.join('; ')}` };
}

function printChecks(result: WindowResult): void {
  printTable(
    'Registrars in the window (must stay registered)',
    ['registrar', 'registrations at DDS', 'registration.success', 'healthcheck.expired', 'probes recorded', 'lock held (start/end)'],
    result.checks.map((c) => [
      c.name,
      String(c.registrationsAtDds),
      String(c.successes),
      String(c.expired),
      `${c.touches}/${result.probes}`,
      `${c.lockHeldAtStart ? 'yes' : 'no'}/${c.lockHeldAtEnd ? 'yes' : 'no'}`,
    ]),
  );
  if (result.failedProbes > 0) console.log(`probes that did not get 200: ${result.failedProbes}`);
}

function record(opts: IdleOptions, result: WindowResult, o: SideFigures, b: SideFigures, t: TimerAttribution, disk: StateWriteCost, v: Verdict): void {
  const q = { quick: opts.quick };
  const r = (x: number): number => round(x, 3);
  const side = (s: SideFigures): Record<string, unknown> => ({
    cpu_ms: r(s.cpuMs),
    cpu_pct: r(s.cpuPct),
    cpu_ms_per_probe: r(s.cpuMsPerProbe),
    timer_callbacks: s.timerCallbacks,
    timer_callbacks_per_probe: r(s.timerCallbacksPerProbe),
    loop_entries: s.loopEntries,
    loop_entries_per_probe: r(s.loopEntriesPerProbe),
    context_switches: s.contextSwitches,
    context_switches_per_probe: r(s.contextSwitchesPerProbe),
    main_voluntary_switches: s.mainVoluntary,
    main_voluntary_switches_per_probe: r(s.mainVoluntaryPerProbe),
    period_cpu_ms_median: r(s.periodCpuMs.p50),
    period_cpu_ms_max: r(s.periodCpuMs.max),
    period_switches_median: r(s.periodSwitches.p50),
    period_main_voluntary_median: r(s.periodMainVoluntary.p50),
    gc_periods: s.gcPeriods.length,
    rss_start_mib: r(s.rssStartMiB),
    rss_end_mib: r(s.rssEndMiB),
    peak_mib: r(s.peakMiB),
    callbacks_by_type: s.callbacksByType,
  });
  writeFigure(
    'idle',
    'settings',
    {
      window_s: r(result.ms / 1000),
      probes: result.probes,
      interval_s: opts.intervalSecs,
      probe_every_s: opts.probeEverySecs,
      callback_window_s: opts.callbackWindowSecs,
      connection: opts.keepAlive ? 'keep-alive' : 'close',
      cpu_source: o.cpuSource,
    },
    q,
  );
  writeFigure('idle', 'ours', side(o), q);
  writeFigure('idle', 'baseline', side(b), q);
  writeFigure(
    'idle',
    'ratio',
    {
      cpu_ms: ratio(o.cpuMs, b.cpuMs),
      period_cpu_ms_median: ratio(o.periodCpuMs.p50, b.periodCpuMs.p50),
      timer_callbacks: ratio(o.timerCallbacks, b.timerCallbacks),
      loop_entries: ratio(o.loopEntries, b.loopEntries),
      context_switches: ratio(o.contextSwitches, b.contextSwitches),
      rss_end: ratio(o.rssEndMiB, b.rssEndMiB),
    },
    q,
  );
  writeFigure('idle', 'state_write', { switches: r(disk.switchesPerWrite), cpu_ms: r(disk.cpuMsPerWrite) }, q);
  writeFigure('idle', 'timers', { extra: t.extra, ttl_armed: t.ttlArmed, ttl_fired: t.ttlFired, polling: t.polling }, q);
  writeFigure('idle', 'checks', result.checks, q);
  writeFigure('idle', 'verdict', { met: v.met, text: v.text }, q);
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions();
  if (process.platform !== 'linux') throw new Error('bench/idle.ts reads /proc: Linux only');
  printMachine('idle cost');
  console.log(
    `window ${opts.seconds} s; REGISTER_INTERVAL_SECS ${opts.intervalSecs}; a probe every ${round(opts.probeEverySecs, 2)} s (${opts.keepAlive ? 'keep-alive' : 'new connection each'}); CALLBACK_WINDOW_SECS ${opts.callbackWindowSecs}; settle ${opts.settleSecs} s + up to ${opts.gcWaitSecs} s for the start-up GC`,
  );
  const cleanup = new CleanupStack();
  let prober: Prober | undefined;
  try {
    const dir = tempDir(cleanup, 'posemesh-bench-idle-');
    const dds = await startFakeDds(cleanup, { responder: callbackResponder() });
    const targets = await Promise.all([
      startOurs(cleanup, dds, dir, opts, false),
      startOurs(cleanup, dds, dir, opts, true),
      startBaseline(cleanup, dir, false),
      startBaseline(cleanup, dir, true),
    ]);
    for (const t of targets) {
      if (t.registrar) await t.registrar.waitForEvent('registration.success', { timeoutMs: 30_000 });
    }
    process.stderr.write(`idle: registered; probing every ${opts.probeEverySecs} s, settling ${opts.settleSecs} s\n`);
    const registered = new Map(targets.map((t) => [t.name, sampleProc(t.pid)]));
    prober = new Prober(targets, opts.probeEverySecs * 1000, opts.keepAlive);
    await sleep(opts.settleSecs * 1000);
    const gc = await waitForStartupGc(targets.filter((t) => t.kind === 'ours'), opts.gcWaitSecs);
    const registeredAt = registered.get('ours')?.at ?? now();
    if (gc !== null) process.stderr.write(`idle: start-up GC of both registrars seen ${round((gc - registeredAt) / 1000, 1)} s after registration\n`);
    else if (opts.gcWaitSecs > 0) process.stderr.write(`idle: no start-up GC seen within ${opts.gcWaitSecs} s; measuring anyway\n`);
    // Open the window half-way between two probes.
    const k = Math.ceil((now() - prober.startedAt) / prober.everyMs);
    await sleep(Math.max(0, prober.dueAt(k) + prober.everyMs / 2 - now()));
    const settled = new Map(targets.map((t) => [t.name, sampleProc(t.pid)]));
    process.stderr.write(`idle: measuring ${opts.seconds} s\n`);
    const result = await measureWindow(targets, dds, prober, opts.seconds);
    await prober.stop();
    prober = undefined;
    for (const t of targets) await t.child.stop('SIGTERM', 15_000).catch(() => undefined);

    const disk = calibrateStateWrite(dir);
    const intervalMs = opts.intervalSecs * 1000;
    const o = sideFigures(result, 'ours');
    const b = sideFigures(result, 'baseline');
    const timers = attributeTimers(result, intervalMs);
    printMain(o, b, result, disk);
    printSettling(registered, settled);
    printCallbackTypes(o, b);
    printTimers(result, intervalMs);
    printChecks(result);
    const v = verdict(result, o, b, timers, disk);
    console.log(`\ngoal: no polling — wake-ups only for the TTL and the probes: ${v.text}`);
    record(opts, result, o, b, timers, disk, v);
  } finally {
    await prober?.stop();
    await cleanup.run();
  }
}

runBench(main);
