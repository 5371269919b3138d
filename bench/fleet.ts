/**
 * Fleet-and-herd benchmark (issue 6, item 6): N registrars in one process
 * against the DDS simulator — memory per actor, time until all are
 * registered — then a DDS outage: the herd when DDS comes back, for the
 * crate's backoff and the alternative policies of `src/backoff.ts`.
 *
 *   node --import tsx bench/fleet.ts [--quick] [--n 1000,10000] [--herd-n 1000|none]
 *     [--outage 20] [--interval 8] [--probe-every 4] [--max-sockets 256]
 *     [--policies crate,full-jitter,decorrelated-jitter] [--lock real|none]
 *     [--recovery-timeout 120] [--request-timeout 120]
 *
 * Set-up. N actors of `createRegistrar` (the real effects) in this process,
 * each with its own key (generated before timing), node URL, data directory
 * (state file + a real `RegistrationLock`, as `createRegistrar` makes by
 * default; `--lock none` runs without) and `NodeSecretStore`, a logger that
 * only counts, and one shared `got` instance over one keep-alive
 * `http.Agent` (maxSockets 256: it bounds the fleet's concurrency toward
 * DDS — 10,000 simultaneous connections overflow DDS's accept backlog). The
 * request timeout is 120 s, not the library's 10 s: it also runs while a
 * request waits for one of the agent's sockets, and at 10 s thousands
 * starting at once collapse into timeouts and retries. Data directories live
 * on /dev/shm when present (the store fsyncs and renames on every write),
 * else in the OS temp dir. DDS is the real `DdsSimulator` in a child process
 * (`bench/fleet-dds-helpers.ts`), which counts arrivals per 100 ms. Every
 * node URL points at one HTTP server of this process that routes the
 * simulator's callback (`POST …/internal/v1/registrations`) to its actor's
 * `registrarSink` (the code behind `routerDds`). Probes: the simulator's are
 * off; this process sends each `registered` actor a `HEALTHCHECK` (what
 * `GET /health` does) at a fixed phase every `--probe-every` s while DDS is
 * up — 10,000 probes over HTTP would cost more than the registrars.
 * A fleet that only starts (not in `--herd-n`) uses a 600 s interval, so no
 * TTL expires while it starts.
 *
 * Figures.
 * 1. Memory per actor: heap used and RSS with all N registered, minus a
 *    baseline taken before creating them (after `gc()`), over N. Baseline:
 *    N started XState actors of a trivial two-state machine with one delayed
 *    transition (what a registered registrar minimally is: an actor and a
 *    timer), measured the same way in the same run.
 * 2. Time from starting all actors until all are `registered`, beside the
 *    DDS child's CPU time in that window (its signature check is the floor)
 *    and the fleet's CPU time per actor.
 * 3. Herd: DDS is stopped (connection refused: a real outage) for `--outage`
 *    s. No probes arrive, so each actor's TTL (`--interval`, shorter than the
 *    outage) expires and it retries with its backoff against a closed port.
 *    DDS comes back (a fresh simulator on the same port); figures: the
 *    fleet's registration attempts per second (peak over any 1 s window, from
 *    100 ms buckets), DDS arrivals per second (same), attempts in outage and
 *    recovery, and the time from DDS back until all are registered again —
 *    per policy, on the same fleet and the same outage. Baseline: the crate's
 *    policy (ratios alternative/crate).
 * 4. Model (no I/O, `bench/fleet-model-helpers.ts`): the same policies over
 *    10,000 nodes at the measured scale and at the defaults (interval 120 s)
 *    for several outages, DDS of unbounded capacity.
 *
 * Reports; never fails on figures. Cleans up its child, server and temp dirs
 * (also on SIGINT/SIGTERM).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import got, { type Got } from 'got';
import { createActor, createMachine, waitFor } from 'xstate';
import { createBackoffPolicy, type BackoffPolicy, type BackoffPolicyName, BACKOFF_POLICY_NAMES, isBackoffPolicyName } from '../src/backoff.js';
import { generateSecretKey } from '../src/crypto.js';
import { validateCallbackBody } from '../src/http.js';
import type { LogFields, Logger } from '../src/log.js';
import { NodeSecretStore } from '../src/persist.js';
import { createRegistrar, type Registrar } from '../src/registrar.js';
import { registrarSink } from '../src/router-dds.js';
import { writeFigure } from '../test/support/figures.js';
import { round, summarize } from '../test/support/stats.js';
import { now, sleep } from '../test/support/time.js';
import { fmt, numberList, parseBenchArgs, positiveNumber, printMachine, printTable, ratio, runBench } from './common.js';
import type { ChildMessage, DdsWindowStats, ParentMessage } from './fleet-dds-helpers.js';
import { modelHerd, type HerdModelResult, type HerdScenario } from './fleet-model-helpers.js';

const USAGE = `
bench/fleet.ts — N registrars in one process against the DDS simulator: memory per
actor, time until all are registered; then a DDS outage and the herd when it returns,
per backoff policy.

  node --import tsx bench/fleet.ts [options]

  --quick                 smoke run: N=50, a 2.5 s outage, interval 1 s
  --n <list>              fleet sizes (default 1000,10000)
  --herd-n <list|none>    sizes that also run the outage (default 1000; each policy
                          needs outage + recovery, and DDS verifies ~150 req/s)
  --outage <secs>         how long DDS is down (default 20)
  --interval <secs>       registrars' interval = health-check TTL (default 8; < outage)
  --probe-every <secs>    probe period while DDS is up (default interval / 2)
  --policies <list>       default crate,full-jitter,decorrelated-jitter
  --max-sockets <n>       the shared agent's maxSockets (default 256)
  --lock <real|none>      a RegistrationLock per registrar (default real) or none
  --recovery-timeout <s>  give up waiting for all registered (default 120)
  --request-timeout <s>   the registrars' REQUEST_TIMEOUT_SECS (default 120, not the
                          library's 10: the timeout also runs while a request waits
                          for one of the shared agent's sockets, and at 10 s a
                          simultaneous start of thousands collapses into timeouts)
`;

const BENCH = 'fleet';
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fleet-dds-helpers.ts');
/** The simulator never probes by itself (this process sends the probes): 24 h. */
const NO_PROBES_MS = 24 * 60 * 60 * 1000;
const KIB = 1024;
/**
 * The interval of a fleet that only starts (no outage): long enough that no
 * TTL expires while thousands start, so "all registered" is reached once.
 * With a few-second TTL, a fleet whose event loop lags under the start-up
 * load sees probes arrive late, re-registers and never settles — an artefact
 * of the short TTL the outage needs, not of the default 120 s.
 */
const START_ONLY_INTERVAL_SECS = 600;

interface Options {
  quick: boolean;
  sizes: number[];
  herdSizes: number[];
  outageMs: number;
  intervalSecs: number;
  probeEveryMs: number;
  policies: BackoffPolicyName[];
  maxSockets: number;
  lock: boolean;
  recoveryTimeoutMs: number;
  requestTimeoutSecs: number;
}

function parseOptions(): Options {
  const { quick, options: o } = parseBenchArgs(USAGE, [
    'n',
    'herd-n',
    'outage',
    'interval',
    'probe-every',
    'policies',
    'max-sockets',
    'lock',
    'recovery-timeout',
    'request-timeout',
  ]);
  const sizes = numberList(o['n'], quick ? [50] : [1000, 10000], 'n').map(Math.round);
  const herdSizes = o['herd-n'] === 'none' ? [] : numberList(o['herd-n'], quick ? [50] : [1000], 'herd-n').map(Math.round);
  const intervalSecs = positiveNumber(o['interval'], quick ? 1 : 8, 'interval');
  const outageMs = positiveNumber(o['outage'], quick ? 2.5 : 20, 'outage') * 1000;
  const probeEveryMs = positiveNumber(o['probe-every'], intervalSecs / 2, 'probe-every') * 1000;
  const policies = (o['policies'] ?? BACKOFF_POLICY_NAMES.join(',')).split(',').map((p) => p.trim());
  for (const p of policies) {
    if (!isBackoffPolicyName(p)) {
      console.error(`--policies: unknown policy ${JSON.stringify(p)} (known: ${BACKOFF_POLICY_NAMES.join(', ')})`);
      process.exit(2);
    }
  }
  const lock = o['lock'] ?? 'real';
  if (lock !== 'real' && lock !== 'none') {
    console.error('--lock: expected real or none');
    process.exit(2);
  }
  if (intervalSecs * 1000 >= outageMs) console.warn('warning: --interval ≥ --outage: some registrars will not notice the outage');
  if (probeEveryMs >= intervalSecs * 1000) console.warn('warning: --probe-every ≥ --interval: registrars will go stale between probes');
  return {
    quick,
    sizes: [...new Set([...sizes, ...herdSizes])].sort((a, b) => a - b),
    herdSizes,
    outageMs,
    intervalSecs,
    probeEveryMs,
    policies: policies as BackoffPolicyName[],
    maxSockets: Math.round(positiveNumber(o['max-sockets'], 256, 'max-sockets')),
    lock: lock === 'real',
    recoveryTimeoutMs: positiveNumber(o['recovery-timeout'], quick ? 30 : 120, 'recovery-timeout') * 1000,
    requestTimeoutSecs: positiveNumber(o['request-timeout'], 120, 'request-timeout'),
  };
}

// ---------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------

type CleanupFn = () => void | Promise<void>;

class Cleanup {
  readonly #fns: CleanupFn[] = [];
  add(fn: CleanupFn): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.#fns.reverse()) {
      try {
        await fn();
      } catch (error) {
        console.error(`cleanup: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

interface Memory {
  heapUsed: number;
  rss: number;
}

async function measureMemory(): Promise<Memory> {
  // Let pending callbacks settle, then collect until the heap stops shrinking.
  await sleep(200);
  for (let i = 0; i < 4; i++) collectGarbage();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss };
}

function perActorKiB(after: Memory, before: Memory, n: number): { heap: number; rss: number } {
  return { heap: (after.heapUsed - before.heapUsed) / n / KIB, rss: (after.rss - before.rss) / n / KIB };
}

/** Baseline: N started actors of a trivial machine with one pending delayed transition. */
async function bareActorKiB(n: number): Promise<{ heap: number; rss: number }> {
  const machine = createMachine({
    id: 'bare',
    initial: 'idle',
    states: { idle: { after: { 3_600_000: 'done' } }, done: { type: 'final' } },
  });
  const before = await measureMemory();
  const actors = Array.from({ length: n }, () => createActor(machine));
  for (const a of actors) a.start();
  const after = await measureMemory();
  for (const a of actors) a.stop();
  return perActorKiB(after, before, n);
}

// ---------------------------------------------------------------------------
// The DDS child
// ---------------------------------------------------------------------------

class DdsChild {
  readonly #child: ChildProcess;
  readonly #waiters: ((m: ChildMessage) => void)[] = [];
  #port = 0;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (m: ChildMessage) => this.#waiters.shift()?.(m));
  }

  static async spawn(): Promise<DdsChild> {
    const child = fork(CHILD, ['--fleet-dds-child'], { execArgv: ['--import', 'tsx', ...(process.env['FLEET_DDS_CPU_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['FLEET_DDS_CPU_PROF']}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const dds = new DdsChild(child);
    const ready = await dds.#next(30_000);
    if (ready.type !== 'ready') throw new Error('DDS child did not start');
    return dds;
  }

  #next(timeoutMs = 30_000): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('DDS child did not answer')), timeoutMs);
      const onExit = (): void => reject(new Error('DDS child exited'));
      this.#child.once('exit', onExit);
      this.#waiters.push((m) => {
        clearTimeout(timer);
        this.#child.off('exit', onExit);
        resolve(m);
      });
    });
  }

  async #ask(message: ParentMessage): Promise<ChildMessage> {
    const answer = this.#next();
    this.#child.send(message);
    return answer;
  }

  /** Start (or restart, on the same port) the simulator; resolves with its URL. */
  async start(expectedRegSecret: string): Promise<string> {
    const m = await this.#ask({ cmd: 'start', port: this.#port, expectedRegSecret, probeIntervalMs: NO_PROBES_MS });
    if (m.type !== 'started') throw new Error(`DDS child could not start the simulator: ${m.type === 'start-failed' ? m.message : m.type}`);
    this.#port = m.port;
    return m.url;
  }

  async stop(): Promise<void> {
    await this.#ask({ cmd: 'stop' });
  }

  async stats(fromMs: number, toMs: number): Promise<DdsWindowStats> {
    const m = await this.#ask({ cmd: 'stats', fromMs, toMs });
    if (m.type !== 'stats') throw new Error('DDS child answered stats with something else');
    return m.stats;
  }

  async exit(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.send({ cmd: 'exit' } satisfies ParentMessage);
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// Counting what the registrars log
// ---------------------------------------------------------------------------

/** 100 ms buckets of wall-clock time. */
class Buckets {
  static readonly MS = 100;
  #map = new Map<number, number>();
  add(atMs: number): void {
    const k = Math.floor(atMs / Buckets.MS);
    this.#map.set(k, (this.#map.get(k) ?? 0) + 1);
  }
  window(fromMs: number, toMs: number): number[] {
    const out: number[] = [];
    for (let k = Math.floor(fromMs / Buckets.MS); k <= Math.floor(toMs / Buckets.MS); k++) out.push(this.#map.get(k) ?? 0);
    return out;
  }
  clear(): void {
    this.#map = new Map();
  }
}

/** What the whole fleet did, updated from the registrars' log lines (nothing is kept per line). */
class FleetStats {
  registered = 0;
  readonly registeredAt: Float64Array;
  readonly isRegistered: Uint8Array;
  readonly attempts = new Buckets();
  timeouts = 0;
  refused = 0;
  #target = 0;
  #waiter: ((at: number) => void) | null = null;

  constructor(n: number) {
    this.registeredAt = new Float64Array(n);
    this.isRegistered = new Uint8Array(n);
  }

  onInfo(index: number, fields: LogFields): void {
    if (fields.event === 'registration.attempt') {
      this.attempts.add(Date.now());
    } else if (fields.event === 'status.transition') {
      if (fields['from'] === 'registered' && this.isRegistered[index] === 1) {
        this.isRegistered[index] = 0;
        this.registered--;
      }
      if (fields['to'] === 'registered' && this.isRegistered[index] === 0) {
        this.isRegistered[index] = 1;
        this.registeredAt[index] = now();
        this.registered++;
        if (this.registered >= this.#target && this.#waiter) {
          const resolve = this.#waiter;
          this.#waiter = null;
          resolve(now());
        }
      }
    }
  }

  /** Warnings by event (and, for failed attempts, by status or cause). */
  readonly warnings = new Map<string, number>();

  onWarn(fields: LogFields): void {
    let key = fields.event;
    if (fields.event === 'registration.error') {
      const error = typeof fields['error'] === 'string' ? fields['error'] : '';
      if (error.includes('timeout')) this.timeouts++;
      else if (error.includes('ECONNREFUSED')) this.refused++;
      const cause = /timeout|ECONN\w+|aborted|lock compromised/.exec(error)?.[0];
      key = `${fields.event}:${fields['status'] ?? cause ?? 'other'}`;
    }
    this.warnings.set(key, (this.warnings.get(key) ?? 0) + 1);
  }

  /** The warnings, most frequent first, as `event:cause ×n`. */
  describeWarnings(): string {
    return [...this.warnings].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none';
  }

  /** Resolves with `now()` when all `n` are registered, or null after `timeoutMs`. */
  waitAll(n: number, timeoutMs: number): Promise<number | null> {
    if (this.registered >= n) return Promise.resolve(now());
    this.#target = n;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        resolve(null);
      }, timeoutMs);
      this.#waiter = (at) => {
        clearTimeout(timer);
        resolve(at);
      };
    });
  }
}

/** A registrar's logger: counts into {@link FleetStats}, keeps nothing. */
class CountingLogger implements Logger {
  readonly #index: number;
  readonly #stats: FleetStats;
  constructor(index: number, stats: FleetStats) {
    this.#index = index;
    this.#stats = stats;
  }
  debug(): void {}
  info(fields: LogFields): void {
    this.#stats.onInfo(this.#index, fields);
  }
  warn(fields: LogFields): void {
    this.#stats.onWarn(fields);
  }
  error(fields: LogFields): void {
    this.#stats.onWarn(fields);
  }
}

// ---------------------------------------------------------------------------
// The fleet
// ---------------------------------------------------------------------------

/** The policy every registrar uses right now (switched between herd runs). */
const currentPolicy: { name: BackoffPolicyName } = { name: 'crate' };

/** One registrar's policy: an instance per policy name, made on first use (decorrelated jitter keeps state). */
function switchablePolicy(): BackoffPolicy {
  const instances = new Map<BackoffPolicyName, BackoffPolicy>();
  return (attempt) => {
    let policy = instances.get(currentPolicy.name);
    if (policy === undefined) {
      policy = createBackoffPolicy(currentPolicy.name);
      instances.set(currentPolicy.name, policy);
    }
    return policy(attempt);
  };
}

interface Fleet {
  actors: Registrar[];
  stats: FleetStats;
  probes: ProbeDriver;
  nodeBase: string;
}

/** One server for every node URL: `/n/<index>/…` → that registrar's sink (what `routerDds` runs). */
async function startNodeServer(fleetRef: { current: Fleet | null }, cleanup: Cleanup): Promise<string> {
  const server = http.createServer((req, res) => {
    const match = /^\/n\/(\d+)(\/.*)$/.exec(req.url ?? '');
    const actor = match ? fleetRef.current?.actors[Number(match[1])] : undefined;
    if (!match || !actor) {
      res.writeHead(404).end();
      return;
    }
    const sink = registrarSink(actor);
    if (req.method === 'GET' && match[2] === '/health') {
      void sink.onHealthProbe({ userAgent: String(req.headers['user-agent'] ?? ''), receivedAt: Date.now() });
      res.writeHead(200).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      const checked = validateCallbackBody(body);
      if (!checked.ok) {
        res.writeHead(checked.status).end();
        return;
      }
      void Promise.resolve(sink.onCallback(checked.payload)).then(
        (decision) => res.writeHead(decision.accepted ? 200 : 403).end(),
        () => res.writeHead(409).end(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}

/**
 * Stands in for DDS's probes: actor i is due at a fixed phase, every
 * `periodMs` (phase i/N of the period, so the probes are spread evenly and
 * every policy meets the same spread of TTL expiries). Every 100 ms, each
 * actor that is due gets `HEALTHCHECK` if it is `registered` and DDS is up;
 * a late tick catches up (one probe, not one per missed period).
 */
class ProbeDriver {
  ddsUp = true;
  readonly #timer: NodeJS.Timeout;
  readonly #due: Float64Array;
  constructor(actors: readonly Registrar[], periodMs: number) {
    const start = now();
    this.#due = Float64Array.from(actors, (_, i) => start + (periodMs * i) / actors.length);
    this.#timer = setInterval(() => {
      const t = now();
      for (let i = 0; i < actors.length; i++) {
        let due = this.#due[i] as number;
        if (due > t) continue;
        while (due <= t) due += periodMs;
        this.#due[i] = due;
        const actor = actors[i] as Registrar;
        if (this.ddsUp && actor.getSnapshot().matches('registered')) actor.send({ type: 'HEALTHCHECK' });
      }
    }, 100);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

function dataRoot(cleanup: Cleanup): string {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, 'posemesh-fleet-'));
  cleanup.add(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface FleetSetup {
  n: number;
  ddsUrl: string;
  nodeBase: string;
  regSecret: string;
  keys: string[];
  root: string;
  client: Got;
  /** The registrars' interval: `--interval` for a fleet that runs the outage, else {@link START_ONLY_INTERVAL_SECS}. */
  intervalSecs: number;
  /** The probe period: `--probe-every` for a fleet that runs the outage, else half the interval. */
  probeEveryMs: number;
  o: Options;
}

function createFleet(s: FleetSetup): Fleet {
  const stats = new FleetStats(s.n);
  const actors: Registrar[] = [];
  for (let i = 0; i < s.n; i++) {
    const dataDir = path.join(s.root, String(i));
    actors.push(
      createRegistrar(
        {
          ddsBaseUrl: s.ddsUrl,
          nodeUrl: `${s.nodeBase}/n/${i}`,
          nodeVersion: '1.0.0',
          regSecret: s.regSecret,
          secp256k1Privhex: s.keys[i] as string,
          registerIntervalSecs: s.intervalSecs,
          requestTimeoutSecs: s.o.requestTimeoutSecs,
          dataDir,
        },
        {
          logger: new CountingLogger(i, stats),
          secrets: new NodeSecretStore(),
          got: s.client,
          backoffPolicy: switchablePolicy(),
          ...(s.o.lock ? {} : { lock: null }),
        },
      ),
    );
  }
  return { actors, stats, probes: new ProbeDriver(actors, s.probeEveryMs), nodeBase: s.nodeBase };
}

async function stopFleet(fleet: Fleet): Promise<void> {
  fleet.probes.stop();
  for (const a of fleet.actors) a.send({ type: 'STOP' });
  await Promise.all(fleet.actors.map((a) => waitFor(a, (s) => s.status === 'done', { timeout: 60_000 }).catch(() => undefined)));
}

// ---------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------

interface StartResult {
  n: number;
  createMs: number;
  allRegisteredMs: number | null;
  registeredAtEnd: number;
  registeredP50Ms: number;
  fleetCpuMsPerActor: number;
  ddsCpuMs: number;
  ddsLoopBusy: number;
  timeouts: number;
  memory: { heap: number; rss: number };
  bare: { heap: number; rss: number };
}

function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

function loopBusy(a: DdsWindowStats, b: DdsWindowStats): number {
  const active = b.loopActiveMs - a.loopActiveMs;
  const total = active + (b.loopIdleMs - a.loopIdleMs);
  return total > 0 ? active / total : NaN;
}

async function startAll(s: FleetSetup, dds: DdsChild, fleetRef: { current: Fleet | null }): Promise<{ fleet: Fleet; result: StartResult }> {
  const bare = await bareActorKiB(s.n);
  for (let i = 0; i < s.n; i++) fs.mkdirSync(path.join(s.root, String(i)), { recursive: true, mode: 0o700 });
  const before = await measureMemory();
  const ddsBefore = await dds.stats(Date.now(), Date.now());
  const cpuBefore = cpuMs();

  const tCreate = now();
  const fleet = createFleet(s);
  fleetRef.current = fleet;
  const createMs = now() - tCreate;

  const t0 = now();
  for (const a of fleet.actors) a.start();
  const allAt = await fleet.stats.waitAll(s.n, s.o.recoveryTimeoutMs * 2);
  const cpuAfter = cpuMs();
  const ddsAfter = await dds.stats(Date.now(), Date.now());
  const after = await measureMemory();

  const times = Array.from(fleet.stats.registeredAt.filter((t, i) => fleet.stats.isRegistered[i] === 1 && t > 0), (t) => t - t0);
  return {
    fleet,
    result: {
      n: s.n,
      createMs,
      allRegisteredMs: allAt === null ? null : allAt - t0,
      registeredAtEnd: fleet.stats.registered,
      registeredP50Ms: summarize(times).p50,
      fleetCpuMsPerActor: (cpuAfter - cpuBefore) / s.n,
      ddsCpuMs: (ddsAfter.cpuUs - ddsBefore.cpuUs) / 1000,
      ddsLoopBusy: loopBusy(ddsBefore, ddsAfter),
      timeouts: fleet.stats.timeouts,
      memory: perActorKiB(after, before, s.n),
      bare,
    },
  };
}

interface HerdResult {
  n: number;
  policy: BackoffPolicyName;
  registeredAtReturn: number;
  attemptsDuringOutage: number;
  attemptsDuringRecovery: number;
  peakAttemptsPerSec: number;
  peakAttempts100msPerSec: number;
  ddsRequests: number;
  ddsConnections: number;
  peakDdsPerSec: number;
  peakDds100msPerSec: number;
  recoveryMs: number | null;
  recoveryP50Ms: number;
  recoveryP90Ms: number;
  timeouts: number;
  ddsLoopBusy: number;
}

/** The largest sum of `width` consecutive buckets (a sliding window). */
function peakWindow(buckets: readonly number[], width: number): number {
  let sum = 0;
  let best = 0;
  for (let i = 0; i < buckets.length; i++) {
    sum += buckets[i] ?? 0;
    if (i >= width) sum -= buckets[i - width] ?? 0;
    best = Math.max(best, sum);
  }
  return best;
}

const total = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

async function herd(fleet: Fleet, dds: DdsChild, regSecret: string, policy: BackoffPolicyName, o: Options): Promise<HerdResult> {
  const n = fleet.actors.length;
  currentPolicy.name = policy;
  fleet.stats.attempts.clear();
  fleet.stats.timeouts = 0;
  fleet.stats.refused = 0;

  const downAt = Date.now();
  fleet.probes.ddsUp = false;
  await dds.stop();
  await sleep(o.outageMs);
  const registeredAtReturn = fleet.stats.registered;
  const attemptsDuringOutage = total(fleet.stats.attempts.window(downAt, Date.now()));
  const ddsBefore = await dds.stats(Date.now(), Date.now());
  await dds.start(regSecret);
  const upAt = Date.now();
  const tUp = now();
  fleet.probes.ddsUp = true;
  const allAt = await fleet.stats.waitAll(n, o.recoveryTimeoutMs);
  const endAt = Date.now();
  const ddsAfter = await dds.stats(upAt, endAt);

  const attempts = fleet.stats.attempts.window(upAt, endAt);
  const times = Array.from(fleet.stats.registeredAt.filter((t, i) => fleet.stats.isRegistered[i] === 1 && t >= tUp), (t) => t - tUp);
  const recovery = summarize(times);
  const perSec = 1000 / Buckets.MS;
  return {
    n,
    policy,
    registeredAtReturn,
    attemptsDuringOutage,
    attemptsDuringRecovery: total(attempts),
    peakAttemptsPerSec: peakWindow(attempts, perSec),
    peakAttempts100msPerSec: Math.max(0, ...attempts) * perSec,
    ddsRequests: total(ddsAfter.requests),
    ddsConnections: total(ddsAfter.connections),
    peakDdsPerSec: peakWindow(ddsAfter.requests, perSec),
    peakDds100msPerSec: Math.max(0, ...ddsAfter.requests) * perSec,
    recoveryMs: allAt === null ? null : allAt - tUp,
    recoveryP50Ms: recovery.p50,
    recoveryP90Ms: recovery.p90,
    timeouts: fleet.stats.timeouts,
    ddsLoopBusy: loopBusy(ddsBefore, ddsAfter),
  };
}

// ---------------------------------------------------------------------------
// Model (no I/O): the same policies at the real defaults and many outages
// ---------------------------------------------------------------------------

interface ModelRow {
  scenario: HerdScenario;
  results: Map<BackoffPolicyName, HerdModelResult>;
}

/** The measured scenario first (a cross-check), then the defaults (interval 120 s) with short and long outages. */
function modelScenarios(o: Options): HerdScenario[] {
  const nodes = o.quick ? 1000 : 10_000;
  const measured = { nodes, intervalMs: o.intervalSecs * 1000, probeEveryMs: o.probeEveryMs, outageMs: o.outageMs };
  const real = (probeEverySecs: number, outageSecs: number): HerdScenario => ({ nodes, intervalMs: 120_000, probeEveryMs: probeEverySecs * 1000, outageMs: outageSecs * 1000 });
  return [measured, real(60, 90), real(60, 150), real(60, 300), real(60, 600), real(10, 150), real(10, 300)];
}

function runModel(o: Options): ModelRow[] {
  return modelScenarios(o).map((scenario) => ({
    scenario,
    results: new Map(o.policies.map((p) => [p, modelHerd(scenario, p)] as const)),
  }));
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

const secs = (ms: number | null): string => (ms === null ? 'timeout' : fmt(ms / 1000));

function printStart(results: readonly StartResult[], o: Options): void {
  printTable(
    `Fleet start and memory (interval ${o.intervalSecs} s for the outage fleets, ${START_ONLY_INTERVAL_SECS} s for the others; request timeout ${o.requestTimeoutSecs} s, maxSockets ${o.maxSockets}, lock ${o.lock ? 'real' : 'none'}; memory after gc, per actor)`,
    ['N', 'create s', 'start→all registered s', 'p50 s', 'DDS CPU s', 'DDS loop busy', 'fleet CPU ms/actor', 'timeouts', 'heap KiB/actor', 'RSS KiB/actor', 'bare actor heap KiB', 'heap ratio'],
    results.map((r) => [
      String(r.n),
      fmt(r.createMs / 1000),
      r.allRegisteredMs === null ? `timeout (${r.registeredAtEnd}/${r.n})` : fmt(r.allRegisteredMs / 1000),
      fmt(r.registeredP50Ms / 1000),
      fmt(r.ddsCpuMs / 1000),
      `${fmt(r.ddsLoopBusy * 100, 0)} %`,
      fmt(r.fleetCpuMsPerActor),
      String(r.timeouts),
      fmt(r.memory.heap),
      fmt(r.memory.rss),
      fmt(r.bare.heap),
      fmt(ratio(r.memory.heap, r.bare.heap)),
    ]),
  );
}

function printHerd(results: readonly HerdResult[], o: Options): void {
  const crate = (n: number): HerdResult | undefined => results.find((r) => r.n === n && r.policy === 'crate');
  printTable(
    `Herd after a ${o.outageMs / 1000} s outage (interval ${o.intervalSecs} s; peaks over any 1 s window of 100 ms buckets; ratios vs crate)`,
    ['N', 'policy', 'reg. at return', 'attempts in outage', 'attempts in recovery', 'peak attempts/s', 'ratio', 'peak DDS req/s', 'DDS req', 'timeouts', 'recovery all s', 'ratio', 'p50 s', 'p90 s', 'DDS busy'],
    results.map((r) => {
      const base = crate(r.n);
      return [
        String(r.n),
        r.policy,
        String(r.registeredAtReturn),
        String(r.attemptsDuringOutage),
        String(r.attemptsDuringRecovery),
        String(r.peakAttemptsPerSec),
        base ? fmt(ratio(r.peakAttemptsPerSec, base.peakAttemptsPerSec)) : '-',
        String(r.peakDdsPerSec),
        String(r.ddsRequests),
        String(r.timeouts),
        secs(r.recoveryMs),
        base && r.recoveryMs !== null && base.recoveryMs !== null ? fmt(ratio(r.recoveryMs, base.recoveryMs)) : '-',
        fmt(r.recoveryP50Ms / 1000),
        fmt(r.recoveryP90Ms / 1000),
        `${fmt(r.ddsLoopBusy * 100, 0)} %`,
      ];
    }),
  );
}

function printModel(rows: readonly ModelRow[], o: Options): void {
  const header = ['interval s', 'probe every s', 'outage s', 'noticed'];
  for (const p of o.policies) header.push(`${p}: peak/s`, 'ratio', 'all back s', 'ratio', 'p50 s', 'attempts');
  printTable(
    `Model (no I/O, ${rows[0]?.scenario.nodes ?? 0} nodes, the real policies, DDS of unbounded capacity; first row = the measured scenario; ratios vs crate)`,
    header,
    rows.map(({ scenario: s, results }) => {
      const crate = results.get('crate');
      const cells = [fmt(s.intervalMs / 1000, 0), fmt(s.probeEveryMs / 1000, 0), fmt(s.outageMs / 1000, 0), String(results.values().next().value?.noticed ?? 0)];
      for (const p of o.policies) {
        const r = results.get(p) as HerdModelResult;
        cells.push(
          String(r.peakPerSec),
          crate ? fmt(ratio(r.peakPerSec, crate.peakPerSec)) : '-',
          fmt(r.recoveryMs / 1000),
          crate ? fmt(ratio(r.recoveryMs, crate.recoveryMs)) : '-',
          fmt(r.recoveryP50Ms / 1000),
          String(r.attemptsInOutage),
        );
      }
      return cells;
    }),
  );
}

function record(start: readonly StartResult[], herds: readonly HerdResult[], model: readonly ModelRow[], o: Options): void {
  const opts = { quick: o.quick };
  const setup = { intervalSecs: o.intervalSecs, requestTimeoutSecs: o.requestTimeoutSecs, outageSecs: o.outageMs / 1000, probeEverySecs: o.probeEveryMs / 1000, maxSockets: o.maxSockets, lock: o.lock };
  writeFigure(BENCH, 'setup', setup, opts);
  for (const r of start) {
    writeFigure(BENCH, `start.n${r.n}`, {
      createS: round(r.createMs / 1000),
      allRegisteredS: r.allRegisteredMs === null ? null : round(r.allRegisteredMs / 1000),
      ddsCpuS: round(r.ddsCpuMs / 1000),
      ddsLoopBusy: round(r.ddsLoopBusy),
      fleetCpuMsPerActor: round(r.fleetCpuMsPerActor),
      timeouts: r.timeouts,
    }, opts);
    writeFigure(BENCH, `memory.n${r.n}`, {
      heapKiBPerActor: round(r.memory.heap),
      rssKiBPerActor: round(r.memory.rss),
      bareActorHeapKiB: round(r.bare.heap),
      ratio: ratio(r.memory.heap, r.bare.heap),
    }, opts);
  }
  for (const h of herds) {
    const base = herds.find((r) => r.n === h.n && r.policy === 'crate');
    writeFigure(BENCH, `herd.n${h.n}.${h.policy}`, {
      ...h,
      recoveryS: h.recoveryMs === null ? null : round(h.recoveryMs / 1000),
      peakRatio: base ? ratio(h.peakAttemptsPerSec, base.peakAttemptsPerSec) : null,
      recoveryRatio: base && h.recoveryMs !== null && base.recoveryMs !== null ? ratio(h.recoveryMs, base.recoveryMs) : null,
    }, opts);
  }
  for (const { scenario: s, results } of model) {
    const value: Record<string, unknown> = { ...s };
    for (const [p, r] of results) value[p] = { ...r, recoveryMs: round(r.recoveryMs), recoveryP50Ms: round(r.recoveryP50Ms) };
    writeFigure(BENCH, `model.i${s.intervalMs / 1000}.p${s.probeEveryMs / 1000}.o${s.outageMs / 1000}`, value, opts);
  }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseOptions();
  printMachine(BENCH);
  const cleanup = new Cleanup();
  const onSignal = (signal: NodeJS.Signals): void => {
    console.error(`${signal}: cleaning up`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const warnings: string[] = [];
  process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));
  const starts: StartResult[] = [];
  const herds: HerdResult[] = [];
  try {
    const dds = await DdsChild.spawn();
    cleanup.add(() => dds.exit());
    const regSecret = randomBytes(24).toString('hex');
    const ddsUrl = await dds.start(regSecret);
    const fleetRef: { current: Fleet | null } = { current: null };
    const nodeBase = await startNodeServer(fleetRef, cleanup);
    const agent = new http.Agent({ keepAlive: true, maxSockets: o.maxSockets });
    cleanup.add(() => agent.destroy());
    const client = got.extend({ agent: { http: agent } });
    const root = dataRoot(cleanup);
    console.log(`data directories under ${path.dirname(root)}; DDS simulator in a child process`);

    for (const n of o.sizes) {
      const keys = Array.from({ length: n }, () => generateSecretKey().exposeHex());
      const fleetRoot = path.join(root, `n${n}`);
      const outage = o.herdSizes.includes(n);
      const intervalSecs = outage ? o.intervalSecs : START_ONLY_INTERVAL_SECS;
      const probeEveryMs = outage ? o.probeEveryMs : (START_ONLY_INTERVAL_SECS * 1000) / 2;
      const setup: FleetSetup = { n, ddsUrl, nodeBase, regSecret, keys, root: fleetRoot, client, intervalSecs, probeEveryMs, o };
      console.log(`\nN=${n}: starting…`);
      const { fleet, result } = await startAll(setup, dds, fleetRef);
      starts.push(result);
      console.log(`N=${n}: ${result.registeredAtEnd}/${n} registered in ${secs(result.allRegisteredMs)} s; warnings: ${fleet.stats.describeWarnings()}`);
      fleet.stats.warnings.clear();
      try {
        if (o.herdSizes.includes(n) && result.allRegisteredMs !== null) {
          for (const policy of o.policies) {
            const h = await herd(fleet, dds, regSecret, policy, o);
            herds.push(h);
            console.log(`N=${n} ${policy}: all registered again ${secs(h.recoveryMs)} s after DDS returned (peak ${h.peakAttemptsPerSec} attempts/s); warnings: ${fleet.stats.describeWarnings()}`);
            fleet.stats.warnings.clear();
            // Let the callbacks land and the fleet settle before the next outage.
            await sleep(Math.min(2000, o.probeEveryMs));
          }
        }
      } finally {
        await stopFleet(fleet);
        fleetRef.current = null;
        fs.rmSync(fleetRoot, { recursive: true, force: true });
      }
    }
  } finally {
    await cleanup.run();
  }
  const model = runModel(o);
  printStart(starts, o);
  if (herds.length > 0) printHerd(herds, o);
  printModel(model, o);
  if (warnings.length > 0) console.log(`\nprocess warnings: ${[...new Set(warnings)].join('; ')}`);
  record(starts, herds, model, o);
}

runBench(main);
