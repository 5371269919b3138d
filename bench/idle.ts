/**
 * Idle cost: what a registered registrar (the built CLI's `run`) costs over a
 * quiet window with only DDS health probes arriving, beside a bare
 * `node:http` server (bench/bare-server.mjs) probed alike. Each side runs
 * twice: a clean process read from /proc, and a twin counted by
 * bench/idle-counter.mjs (docs/benchmarks.md §5). Linux only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFileAtomicSync } from '../src/state/atomic-file.js';
import { dataPaths, listenUrlOf, newCredentials, spawnNode } from '../test/reliability/common.js';
import { assertBuilt, REPO_ROOT, spawnChild, type TimedLine } from '../test/support/child.js';
import type { CleanupStack } from '../test/support/cleanup.js';
import { callbackResponder, nodeUrlOf, probeHealth, startFakeDds, type FakeDds } from '../test/support/fake-dds.js';
import { summarize } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { now, sleep } from '../test/support/time.js';
import { benchOptions, figures, fmt, printTable, ratio, runBench } from './common.js';
import { procDelta, readTask, sampleProc, type ProcDelta, type ProcSample } from './proc.js';

const opts = benchOptions('idle', 'Idle cost of a registered registrar (CPU, timer callbacks, context switches, RSS) beside a bare node:http server.', {
  seconds: { default: 60, quick: 4, help: 'length of the measured window' },
  interval: { default: 30, quick: 3, help: 'REGISTER_INTERVAL_SECS, the health-check TTL; a probe every third of it' },
  'gc-wait': { default: 120, quick: 0, help: "seconds to wait at most for V8's one full GC after start-up (10–110 s after it)" },
});
const PROBE_EVERY_MS = (opts.interval * 1000) / 3;
/** The callback window closes, and the lock is released, before the window opens. */
const CALLBACK_WINDOW_SECS = opts.quick ? 1 : 5;
const SETTLE_MS = (CALLBACK_WINDOW_SECS + 1) * 1000;
/** An RSS drop this large is a full GC. */
const GC_DROP_MIB = 4;
/** Callback types that are not entries of the event loop: work a callback queued, run before the loop goes on; and the snapshot's own signal. */
const NOT_ENTRIES = new Set(['PROMISE', 'TickObject', 'Microtask', 'SIGNALWRAP']);

type Counts = Record<string, number>;
interface Snapshot {
  cpu: { user: number; system: number };
  fired: Counts;
  topLevel: Counts;
  armed: Counts;
  firedByOrigin: Counts;
  live: Counts;
  active: string[];
}

interface Target {
  name: string;
  kind: 'ours' | 'baseline';
  pid: number;
  url: string;
  stop(): Promise<unknown>;
  /** Counted twins: the snapshots' prefix, and how many were asked for. */
  counterOut?: string;
  snapshots: number;
  /** Ours: its log lines, node URL and data directory. */
  lines?: readonly TimedLine[];
  nodeUrl?: string;
  dataDir?: string;
}

function counterEnv(dir: string, name: string, counted: boolean): Record<string, string> {
  if (!counted) return {};
  // Source maps: the CLI is one bundle; its timers' frames then name the sources.
  return {
    NODE_OPTIONS: `--enable-source-maps --import=${pathToFileURL(path.join(REPO_ROOT, 'bench', 'idle-counter.mjs')).href}`,
    IDLE_COUNTER_OUT: path.join(dir, `${name}-counts`),
  };
}

async function startOurs(cleanup: CleanupStack, dds: FakeDds, dir: string, counted: boolean): Promise<Target> {
  const name = counted ? 'ours-counted' : 'ours';
  const [nodeUrl, dataDir] = [`http://${name}.idle.bench.test:8080`, path.join(dir, name)];
  const env: Record<string, string> = {
    REGISTER_INTERVAL_SECS: String(opts.interval),
    CALLBACK_WINDOW_SECS: String(CALLBACK_WINDOW_SECS),
    ...counterEnv(dir, name, counted),
  };
  const child = spawnNode(cleanup, dds, newCredentials(), { name, nodeUrl, dataDir, env });
  const url = await listenUrlOf(child);
  await child.waitForEvent('registration.success', { timeoutMs: 30_000 });
  return {
    name,
    kind: 'ours',
    pid: child.pid,
    url,
    stop: () => child.stop('SIGTERM', 15_000),
    counterOut: env['IDLE_COUNTER_OUT'],
    snapshots: 0,
    lines: child.json,
    nodeUrl,
    dataDir,
  };
}

async function startBaseline(cleanup: CleanupStack, dir: string, counted: boolean): Promise<Target> {
  const name = counted ? 'baseline-counted' : 'baseline';
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: process.env['HOME'], ...counterEnv(dir, name, counted) };
  const child = spawnChild(cleanup, { script: 'bench/bare-server.mjs', env, name });
  const { line } = await child.waitForEvent('http.listening');
  return {
    name,
    kind: 'baseline',
    pid: child.proc.pid ?? 0,
    url: String(line['url']),
    stop: () => child.stop(),
    counterOut: env['IDLE_COUNTER_OUT'],
    snapshots: 0,
  };
}

/** Ask a counted twin for a snapshot (SIGUSR2) and read it. */
async function snapshot(t: Target): Promise<Snapshot> {
  const file = `${t.counterOut}-${++t.snapshots}.json`;
  process.kill(t.pid, 'SIGUSR2');
  for (const deadline = now() + 10_000; !fs.existsSync(file); await sleep(10)) if (now() > deadline) throw new Error(`${t.name}: no counter snapshot`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
}

function minus(b: Counts, a: Counts): Counts {
  return Object.fromEntries(Object.entries(b).flatMap(([k, v]) => (v - (a[k] ?? 0) === 0 ? [] : [[k, v - (a[k] ?? 0)]])));
}
const sum = (c: Counts, pred: (key: string) => boolean): number => Object.entries(c).reduce((s, [k, n]) => (pred(k) ? s + n : s), 0);

/** Probes every target on a fixed grid from its start, a new connection each (as the simulator does). */
function startProber(targets: readonly Target[]) {
  const rounds: { at: number; failed: number }[] = [];
  const startedAt = now();
  let timer: NodeJS.Timeout | undefined;
  const round = (k: number): void => {
    const r = { at: now(), failed: 0 };
    rounds.push(r);
    for (const t of targets)
      void probeHealth(t.url, 'DDS v1.0.0 (idle bench)', 10_000).then(
        (a) => (r.failed += a.status === 200 ? 0 : 1),
        () => (r.failed += 1),
      );
    timer = setTimeout(() => round(k + 1), startedAt + (k + 1) * PROBE_EVERY_MS - now());
  };
  round(0);
  return { rounds, startedAt, stop: () => clearTimeout(timer) };
}

/** Wait (up to `maxMs`) until each target's RSS fell GC_DROP_MIB below its highest: V8's memory reducer ran its one full GC. */
async function waitForStartupGc(targets: readonly Target[], maxMs: number): Promise<boolean> {
  const peak = new Map<Target, number>();
  const pending = new Set(targets);
  for (const deadline = now() + maxMs; pending.size > 0; await sleep(500)) {
    if (now() > deadline) return false;
    for (const t of pending) {
      const rss = sampleProc(t.pid).rssKiB / 1024;
      peak.set(t, Math.max(peak.get(t) ?? 0, rss));
      if ((peak.get(t) ?? 0) - rss >= GC_DROP_MIB) pending.delete(t);
    }
  }
  return true;
}

/** What one durable state-file write (temp file, fsync, rename, fsync of the directory) costs the main thread here: context switches (disk waits) and CPU ms, medians. */
function stateWriteCost(dir: string): { switches: number; cpuMs: number } {
  const target = path.join(dir, 'calibration', 'registration_state.json');
  const switches: number[] = [];
  const cpuMs: number[] = [];
  for (let i = 0; i < 31; i++) {
    const a = readTask(process.pid, process.pid);
    writeFileAtomicSync(target, `${JSON.stringify({ status: 'registered', lastHealthcheck: Math.floor(Date.now() / 1000), i })}\n`);
    const b = readTask(process.pid, process.pid);
    if (a === null || b === null) continue;
    switches.push(b.voluntary - a.voluntary + b.nonvoluntary - a.nonvoluntary);
    cpuMs.push(b.cpuMs - a.cpuMs);
  }
  return { switches: summarize(switches).p50, cpuMs: summarize(cpuMs).p50 };
}

/** Timers by type, repetition and where they were armed (the key without its duration and callers). */
interface TimerGroup {
  type: string;
  repeat: boolean;
  where: string;
  callers: string;
  ms: Set<number>;
  armed: number;
  fired: number;
  alive: number;
}

function timerGroups(a: Snapshot, b: Snapshot): Map<string, TimerGroup> {
  const groups = new Map<string, TimerGroup>();
  const add = (counts: Counts, field: 'armed' | 'fired' | 'alive'): void => {
    for (const [key, n] of Object.entries(counts)) {
      const [type = '?', ms = 'NaN', repeat = '0', where = '?', callers = ''] = key.split('\t');
      const id = `${type}${repeat === '1' ? ' repeat' : ''} @ ${where}`;
      const g = groups.get(id) ?? { type, repeat: repeat === '1', where, callers, ms: new Set<number>(), armed: 0, fired: 0, alive: 0 };
      groups.set(id, g);
      g.ms.add(Number(ms));
      g[field] += n;
    }
  };
  add(minus(b.armed, a.armed), 'armed');
  add(minus(b.firedByOrigin, a.firedByOrigin), 'fired');
  add(b.live, 'alive');
  return groups;
}

/** What a timer is, for people: by where it was armed and its duration (the CLI is one bundle, so paths say little). */
function describe(g: TimerGroup): string {
  if (g.where.includes('setupConnectionsTracking')) return "node:http: request-timeout check (Node's, every 30 s)";
  if (g.where.startsWith('cache (node:internal/http')) return 'node:http: Date-header cache (one per response)';
  if (g.where.includes('setStreamTimeout')) return 'socket timeout (keep-alive)';
  if (g.where.includes('proper-lockfile') || g.callers.includes('updateLock')) return 'proper-lockfile: lock refresh';
  if (g.type === 'Timeout' && !g.repeat && !g.where.includes('(node:') && [...g.ms].every((ms) => ms === opts.interval * 1000))
    return 'statechart: health-check TTL (re-armed per probe)';
  if (g.where.includes('xstate') || g.callers.includes('schedule')) return 'statechart: a delayed transition';
  return '?';
}

interface Side {
  proc: ProcDelta;
  timers: number;
  entries: number;
  groups: Map<string, TimerGroup>;
  active: string[];
}

runBench('idle cost', async (cleanup) => {
  if (process.platform !== 'linux') throw new Error('bench/idle.ts reads /proc: Linux only');
  assertBuilt();
  console.log(
    `window ${opts.seconds} s; REGISTER_INTERVAL_SECS ${opts.interval}; a probe every ${fmt(PROBE_EVERY_MS / 1000)} s on a new connection; CALLBACK_WINDOW_SECS ${CALLBACK_WINDOW_SECS}`,
  );
  const dir = tempDir(cleanup, 'posemesh-bench-idle-');
  const dds = await startFakeDds(cleanup, { responder: callbackResponder() });
  const targets = await Promise.all([
    startOurs(cleanup, dds, dir, false),
    startOurs(cleanup, dds, dir, true),
    startBaseline(cleanup, dir, false),
    startBaseline(cleanup, dir, true),
  ]);
  const prober = startProber(targets);
  cleanup.after(() => prober.stop());
  await sleep(SETTLE_MS);
  const ours = targets.filter((t) => t.kind === 'ours');
  if (opts['gc-wait'] > 0 && !(await waitForStartupGc(ours, opts['gc-wait'] * 1000)))
    console.log(`no start-up GC seen within ${opts['gc-wait']} s; measuring anyway`);
  // The window opens half-way between two probes.
  const k = Math.ceil((now() - prober.startedAt) / PROBE_EVERY_MS);
  await sleep(Math.max(0, prober.startedAt + (k + 0.5) * PROBE_EVERY_MS - now()));

  process.stderr.write(`idle: measuring ${opts.seconds} s\n`);
  const lockHeld = (t: Target): boolean => t.dataDir !== undefined && fs.existsSync(dataPaths(t.dataDir).lock);
  const linesAt = new Map(ours.map((t) => [t, t.lines?.length ?? 0]));
  const lockAtStart = ours.map(lockHeld);
  const [wallStart, start] = [Date.now(), now()];
  const procStart = new Map<Target, ProcSample>(targets.map((t) => [t, sampleProc(t.pid)]));
  const counted = targets.filter((t) => t.counterOut !== undefined);
  const countStart = new Map(await Promise.all(counted.map(async (t) => [t, await snapshot(t)] as const)));
  await sleep(opts.seconds * 1000);
  const end = now();
  const procEnd = new Map<Target, ProcSample>(targets.map((t) => [t, sampleProc(t.pid)]));
  const countEnd = new Map(await Promise.all(counted.map(async (t) => [t, await snapshot(t)] as const)));
  const wallEnd = Date.now();
  prober.stop();
  const rounds = prober.rounds.filter((r) => r.at >= start && r.at < end);
  const probes = rounds.length;
  const failedProbes = rounds.reduce((n, r) => n + r.failed, 0);
  const windowMs = end - start;

  const side = (kind: Target['kind']): Side => {
    const clean = targets.find((t) => t.kind === kind && t.counterOut === undefined) as Target;
    const twin = targets.find((t) => t.kind === kind && t.counterOut !== undefined) as Target;
    const [a, b] = [countStart.get(twin) as Snapshot, countEnd.get(twin) as Snapshot];
    const fired = minus(b.fired, a.fired);
    return {
      proc: procDelta(procStart.get(clean) as ProcSample, procEnd.get(clean) as ProcSample),
      timers: (fired['Timeout'] ?? 0) + (fired['Immediate'] ?? 0),
      entries: sum(minus(b.topLevel, a.topLevel), (type) => !NOT_ENTRIES.has(type)),
      groups: timerGroups(a, b),
      active: b.active,
    };
  };
  const [o, base] = [side('ours'), side('baseline')];
  const disk = stateWriteCost(dir);
  for (const t of targets) await t.stop().catch(() => undefined);

  const per = (n: number): number => n / probes;
  const row = (label: string, x: number, y: number, digits?: number): string[] => [label, fmt(x, digits), fmt(y, digits), fmt(ratio(x, y))];
  printTable(
    `Idle window: ${fmt(windowMs / 1000, 1)} s, ${probes} probes`,
    ['figure', 'ours', 'baseline', 'ratio'],
    [
      row('CPU time, ms', o.proc.cpuMs, base.proc.cpuMs),
      row('CPU, % of a core', (o.proc.cpuMs / windowMs) * 100, (base.proc.cpuMs / windowMs) * 100, 3),
      row('CPU per probe, ms', per(o.proc.cpuMs), per(base.proc.cpuMs)),
      row('timer callbacks (Timeout + Immediate)', o.timers, base.timers, 0),
      row('event-loop entries (timers + I/O) per probe', per(o.entries), per(base.entries)),
      row('context switches, all threads', o.proc.switches, base.proc.switches, 0),
      row('main-thread voluntary context switches per probe', per(o.proc.mainVoluntary), per(base.proc.mainVoluntary), 1),
      row('  less one state-file write', per(o.proc.mainVoluntary) - disk.switches, per(base.proc.mainVoluntary), 1),
      row('RSS at the window’s start, MiB', o.proc.rssStartMiB, base.proc.rssStartMiB, 1),
      row('RSS at its end, MiB', o.proc.rssEndMiB, base.proc.rssEndMiB, 1),
      row('peak RSS (VmHWM), MiB', o.proc.peakMiB, base.proc.peakMiB, 1),
    ],
  );
  console.log(`one durable state-file write here: ${fmt(disk.switches)} context switches, ${fmt(disk.cpuMs, 3)} ms CPU`);

  const timerRows: string[][] = [];
  for (const [who, s] of [
    ['ours', o],
    ['baseline', base],
  ] as const) {
    for (const g of [...s.groups.values()].sort((x, y) => y.fired - x.fired || y.armed - x.armed)) {
      const ms = [...g.ms].sort((x, y) => x - y);
      timerRows.push([
        who,
        `${g.type}${g.repeat ? ' (repeat)' : ''}`,
        ms.length > 1 ? `${ms[0]}–${ms.at(-1)}` : String(ms[0]),
        String(g.armed),
        String(g.fired),
        String(g.alive),
        describe(g),
        g.where.slice(0, 120),
      ]);
    }
  }
  printTable(
    'Timers armed and fired in the window, alive at its end (counted twins)',
    ['who', 'timer', 'ms', 'armed', 'fired', 'alive', 'what', 'armed at'],
    timerRows,
  );
  console.log(`active resources at the end: ours ${o.active.join(', ') || 'none'}; baseline ${base.active.join(', ') || 'none'}`);

  // Ours' timers against the baseline's: the TTL's apart, a callback the baseline did not run is a wake-up of our own; a repeating timer it lacks is polling.
  let [ttlArmed, ttlFired, extra] = [0, 0, 0];
  const polling: string[] = [];
  for (const [id, g] of o.groups) {
    if (describe(g).includes('TTL')) [ttlArmed, ttlFired] = [ttlArmed + g.armed, ttlFired + g.fired];
    else extra += Math.max(0, g.fired - (base.groups.get(id)?.fired ?? 0));
    if (g.repeat && g.alive > 0 && !base.groups.has(id)) polling.push(id);
  }
  const checks = ours.map((t) => {
    const lines = (t.lines ?? []).slice(linesAt.get(t)).map((l) => l.line);
    const count = (event: string): number => lines.filter((l) => l['event'] === event).length;
    const atDds = dds.registrations().filter((r) => nodeUrlOf(r) === t.nodeUrl && r.receivedAt >= wallStart && r.receivedAt <= wallEnd).length;
    return {
      name: t.name,
      reRegistrations: atDds + count('registration.success') + count('healthcheck.expired'),
      touches: lines.filter((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe').length,
    };
  });
  const reRegistered = checks.reduce((n, c) => n + c.reRegistrations, 0);
  console.log(
    `registrars in the window: ${checks.map((c) => `${c.name} ${c.touches}/${probes} probes recorded, re-registrations ${c.reRegistrations}`).join('; ')}; ` +
      `lock held at start/end: ${lockAtStart.map((h) => (h ? 'yes' : 'no')).join(',')}/${ours.map((t) => (lockHeld(t) ? 'yes' : 'no')).join(',')}; failed probes ${failedProbes}`,
  );
  const met = extra === 0 && polling.length === 0 && ttlFired === 0 && reRegistered === 0 && failedProbes === 0;
  console.log(
    `\ngoal: no polling — wake-ups only for the TTL and the probes: ${met ? 'MET' : 'MISSED'} — timer callbacks ${o.timers} vs ${base.timers}, ${extra} of our own; ` +
      `TTL armed ${ttlArmed}× by ${probes} probes, fired ${ttlFired}×; repeating timers of our own: ${polling.join('; ') || 'none'}; re-registrations: ${reRegistered}`,
  );

  const record = figures('idle', opts.quick);
  const figuresOf = (s: Side) => ({
    ...s.proc,
    cpuMsPerProbe: per(s.proc.cpuMs),
    timerCallbacks: s.timers,
    loopEntriesPerProbe: per(s.entries),
    mainVoluntaryPerProbe: per(s.proc.mainVoluntary),
  });
  record('settings', { windowS: windowMs / 1000, probes, intervalS: opts.interval, probeEveryS: PROBE_EVERY_MS / 1000, callbackWindowS: CALLBACK_WINDOW_SECS });
  record('ours', figuresOf(o));
  record('baseline', figuresOf(base));
  record('state_write', disk);
  record('verdict', { met, extra, ttlArmed, ttlFired, polling, reRegistered, failedProbes });
});
