/**
 * Fleet and herd: N registrars in one process (`createRegistrar`, real
 * effects) against the real simulator in a child (bench/fleet-dds.ts) —
 * memory per registrar beside a bare XState actor, time until all are
 * registered — then a DDS outage and the herd when it returns, per backoff
 * policy beside the crate's, and a model of the same at the defaults
 * (docs/benchmarks.md §6).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import got, { type Got } from 'got';
import { createActor, createMachine, waitFor } from 'xstate';
import { capDelayMs } from '../machines/registrar.js';
import { BACKOFF_POLICY_NAMES, createBackoffPolicy, isBackoffPolicyName, type BackoffPolicy, type BackoffPolicyName } from '../src/backoff.js';
import { generateSecretKey } from '../src/crypto.js';
import { validateCallbackBody } from '../src/http.js';
import type { LogFields, Logger } from '../src/log.js';
import { NodeSecretStore } from '../src/persist.js';
import { createRegistrar, type Registrar } from '../src/registrar.js';
import { registrarSink } from '../src/router-dds.js';
import type { CleanupStack } from '../test/support/cleanup.js';
import { listen, readBody } from '../test/support/http.js';
import { seededRandom } from '../test/support/random.js';
import { percentile, summarize } from '../test/support/stats.js';
import { now, sleep } from '../test/support/time.js';
import { benchOptions, figures, fmt, printTable, ratio, runBench } from './common.js';
import { BUCKET_MS, forkDds, type DdsStats } from './fleet-dds.js';

const opts = benchOptions('fleet', 'N registrars in one process: memory, start, and the herd after a DDS outage per backoff policy.', {
  n: { default: [1000, 10000], quick: [50], help: 'fleet sizes' },
  'herd-n': { default: [1000], quick: [50], help: 'the sizes that also run the outage (0: none)' },
  outage: { default: 20, quick: 2.5, help: 'seconds DDS is down' },
  interval: { default: 8, quick: 1, help: 'the outage fleets’ interval = health-check TTL, seconds (< outage); probes every half of it' },
  policies: { default: BACKOFF_POLICY_NAMES.join(','), help: 'the backoff policies of the herd' },
});
const POLICIES = opts.policies.split(',');
if (!POLICIES.every(isBackoffPolicyName)) {
  console.error(`--policies: expected some of ${BACKOFF_POLICY_NAMES.join(', ')}, got ${JSON.stringify(opts.policies)}`);
  process.exit(2);
}
const HERD_SIZES = opts['herd-n'].filter((n) => n > 0);
const SIZES = [...new Set([...opts.n, ...HERD_SIZES])].sort((a, b) => a - b);
const PROBE_EVERY_MS = (opts.interval * 1000) / 2;
/** The shared agent's sockets: they bound the fleet's concurrency toward DDS (10,000 connections at once overflow its accept backlog). */
const MAX_SOCKETS = 256;
/** Not the library's 10 s: the timeout also runs while a request waits for a socket, and 10,000 starting at once would time out and retry. */
const REQUEST_TIMEOUT_SECS = 120;
const RECOVERY_TIMEOUT_MS = (opts.quick ? 30 : 120) * 1000;
/** A fleet that only starts: no TTL expires while thousands start (a lagging event loop would see probes late, and re-register). */
const START_ONLY_INTERVAL_SECS = 600;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap used and RSS (bytes) after the pending callbacks settled and the heap stopped shrinking. */
async function memory(): Promise<{ heap: number; rss: number }> {
  await sleep(200);
  for (let i = 0; i < 4; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}
const perActorKiB = (a: { heap: number; rss: number }, b: { heap: number; rss: number }, n: number) => ({
  heap: (b.heap - a.heap) / n / 1024,
  rss: (b.rss - a.rss) / n / 1024,
});

/** Baseline: N started actors of a trivial machine with one pending delayed transition, the least a registered registrar is. */
async function bareActorKiB(n: number): Promise<{ heap: number; rss: number }> {
  const machine = createMachine({ initial: 'idle', states: { idle: { after: { 3_600_000: 'done' } }, done: { type: 'final' } } });
  const before = await memory();
  const actors = Array.from({ length: n }, () => createActor(machine).start());
  const after = await memory();
  for (const a of actors) a.stop();
  return perActorKiB(before, after, n);
}

type Dds = Awaited<ReturnType<typeof forkDds>>;

/** What the whole fleet did, counted from its log lines (nothing kept per line). */
class FleetStats {
  registered = 0;
  readonly registeredAt: Float64Array;
  readonly isRegistered: Uint8Array;
  /** Registration attempts per 100 ms bucket. */
  attempts = new Map<number, number>();
  readonly warnings = new Map<string, number>();
  #waiter: { n: number; resolve: (at: number) => void } | null = null;

  constructor(n: number) {
    this.registeredAt = new Float64Array(n);
    this.isRegistered = new Uint8Array(n);
  }

  logger(i: number): Logger {
    const warn = (f: LogFields): void => {
      const cause = f.event === 'registration.error' ? `:${String(f['status'] ?? /timeout|ECONN\w+|aborted/.exec(String(f['error']))?.[0] ?? 'other')}` : '';
      this.warnings.set(f.event + cause, (this.warnings.get(f.event + cause) ?? 0) + 1);
    };
    return { debug: () => undefined, info: (f) => this.#info(i, f), warn, error: warn };
  }

  #info(i: number, f: LogFields): void {
    if (f.event === 'registration.attempt') {
      const k = Math.floor(Date.now() / BUCKET_MS);
      this.attempts.set(k, (this.attempts.get(k) ?? 0) + 1);
    } else if (f.event === 'status.transition') {
      if (f['from'] === 'registered' && this.isRegistered[i] === 1) {
        this.isRegistered[i] = 0;
        this.registered -= 1;
      }
      if (f['to'] === 'registered' && this.isRegistered[i] === 0) {
        this.isRegistered[i] = 1;
        this.registeredAt[i] = now();
        this.registered += 1;
        if (this.#waiter !== null && this.registered >= this.#waiter.n) this.#waiter.resolve(now());
      }
    }
  }

  /** The attempts per bucket from `fromMs` to `toMs`. */
  attemptsIn(fromMs: number, toMs: number): number[] {
    const out: number[] = [];
    for (let k = Math.floor(fromMs / BUCKET_MS); k <= Math.floor(toMs / BUCKET_MS); k++) out.push(this.attempts.get(k) ?? 0);
    return out;
  }

  /** The warnings, most frequent first (and forgets them). */
  takeWarnings(): string {
    const text = [...this.warnings]
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ×${n}`)
      .join(', ');
    this.warnings.clear();
    return text || 'none';
  }

  /** `now()` once all `n` are registered, or null after `timeoutMs`. */
  waitAll(n: number, timeoutMs: number): Promise<number | null> {
    if (this.registered >= n) return Promise.resolve(now());
    return new Promise((resolve) => {
      const done = (at: number | null): void => {
        clearTimeout(timer);
        this.#waiter = null;
        resolve(at);
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      this.#waiter = { n, resolve: done };
    });
  }
}

/** The policy every registrar uses now (switched between herds); one instance per registrar and policy (decorrelated jitter keeps state). */
const current: { policy: BackoffPolicyName } = { policy: 'crate' };
function switchablePolicy(): BackoffPolicy {
  const instances = new Map<BackoffPolicyName, BackoffPolicy>();
  return (attempt) => {
    if (!instances.has(current.policy)) instances.set(current.policy, createBackoffPolicy(current.policy));
    return (instances.get(current.policy) as BackoffPolicy)(attempt);
  };
}

/** One server for every node URL: `/n/<i>/…` → registrar i's sink (what `routerDds` runs). */
async function startNodeServer(cleanup: CleanupStack, fleet: { actors: Registrar[] }): Promise<string> {
  const server = http.createServer((req, res) => {
    const match = /^\/n\/(\d+)(\/.*)$/.exec(req.url ?? '');
    const actor = match ? fleet.actors[Number(match[1])] : undefined;
    if (!match || !actor) return void res.writeHead(404).end();
    const sink = registrarSink(actor);
    if (req.method === 'GET' && match[2] === '/health') {
      void sink.onHealthProbe({ userAgent: String(req.headers['user-agent'] ?? ''), receivedAt: Date.now() });
      return void res.writeHead(200).end();
    }
    void readBody(req).then(async ({ body, rawBody }) => {
      const checked = validateCallbackBody(body);
      if (!checked.ok) return void res.writeHead(checked.status).end();
      const bodyDigest = createHash('sha256').update(rawBody).digest('hex');
      const decision = await Promise.resolve(sink.onCallback(checked.payload, { bodyDigest })).catch(() => null);
      res.writeHead(decision === null ? 409 : decision.accepted ? 200 : (decision.status ?? 403)).end();
    });
  });
  return (await listen(cleanup, server)).url;
}

/**
 * DDS's probes, as `HEALTHCHECK` events (10,000 HTTP probes would cost more
 * than the registrars): registrar i at phase i/N of the period, so that every
 * policy meets the same spread of TTL expiries; a late tick probes once.
 */
function startProbes(actors: readonly Registrar[], periodMs: number) {
  const state = { ddsUp: true };
  const start = now();
  const due = Float64Array.from(actors, (_, i) => start + (periodMs * i) / actors.length);
  const timer = setInterval(() => {
    const t = now();
    actors.forEach((actor, i) => {
      let next = due[i] as number;
      if (next > t) return;
      while (next <= t) next += periodMs;
      due[i] = next;
      if (state.ddsUp && actor.getSnapshot().matches('registered')) actor.send({ type: 'HEALTHCHECK' });
    });
  }, 100);
  return { state, stop: () => clearInterval(timer) };
}

interface Fleet {
  actors: Registrar[];
  stats: FleetStats;
  probes: ReturnType<typeof startProbes>;
}

interface Setup {
  n: number;
  ddsUrl: string;
  nodeBase: string;
  regSecret: string;
  root: string;
  client: Got;
  intervalSecs: number;
}

/** Create the registrars (not started) into `fleet`; how long that took, ms. */
function createFleet(s: Setup, keys: readonly string[], fleet: Fleet): number {
  fleet.stats = new FleetStats(s.n);
  const t0 = now();
  fleet.actors = keys.map((key, i) =>
    createRegistrar(
      {
        ddsBaseUrl: s.ddsUrl,
        nodeUrl: `${s.nodeBase}/n/${i}`,
        nodeVersion: '1.0.0',
        regSecret: s.regSecret,
        secp256k1Privhex: key,
        registerIntervalSecs: s.intervalSecs,
        requestTimeoutSecs: REQUEST_TIMEOUT_SECS,
        dataDir: path.join(s.root, String(i)),
      },
      { logger: fleet.stats.logger(i), secrets: new NodeSecretStore(), got: s.client, backoffPolicy: switchablePolicy() },
    ),
  );
  return now() - t0;
}

const cpuMs = (): number => (process.cpuUsage().user + process.cpuUsage().system) / 1000;
const loopBusy = (a: DdsStats, b: DdsStats): number => (b.loopActiveMs - a.loopActiveMs) / (b.loopActiveMs - a.loopActiveMs + b.loopIdleMs - a.loopIdleMs);
const total = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
/** The largest sum over any 1 s of 100 ms buckets. */
function peakPerSec(buckets: readonly number[]): number {
  const width = 1000 / BUCKET_MS;
  let [sum, best] = [0, 0];
  buckets.forEach((b, i) => {
    sum += b - (i >= width ? (buckets[i - width] as number) : 0);
    best = Math.max(best, sum);
  });
  return best;
}

async function startAll(s: Setup, dds: Dds, fleet: Fleet) {
  // Keys and directories first: they are not the registrars' cost.
  const keys = Array.from({ length: s.n }, () => generateSecretKey().exposeHex());
  for (let i = 0; i < s.n; i++) fs.mkdirSync(path.join(s.root, String(i)), { recursive: true, mode: 0o700 });
  const bare = await bareActorKiB(s.n);
  const before = await memory();
  const ddsBefore = await dds.stats();
  const cpuBefore = cpuMs();
  const createMs = createFleet(s, keys, fleet);
  const t0 = now();
  for (const a of fleet.actors) a.start();
  fleet.probes = startProbes(fleet.actors, (s.intervalSecs * 1000) / 2);
  const allAt = await fleet.stats.waitAll(s.n, RECOVERY_TIMEOUT_MS * 2);
  const fleetCpuMs = cpuMs() - cpuBefore;
  const ddsAfter = await dds.stats();
  const mem = perActorKiB(before, await memory(), s.n);
  const times = [...fleet.stats.registeredAt].filter((t, i) => fleet.stats.isRegistered[i] === 1 && t > 0).map((t) => t - t0);
  return {
    n: s.n,
    createS: createMs / 1000,
    allRegisteredS: allAt === null ? null : (allAt - t0) / 1000,
    registered: fleet.stats.registered,
    p50S: summarize(times).p50 / 1000,
    ddsCpuS: (ddsAfter.cpuUs - ddsBefore.cpuUs) / 1e6,
    ddsBusy: loopBusy(ddsBefore, ddsAfter),
    fleetCpuMsPerActor: fleetCpuMs / s.n,
    heapKiB: mem.heap,
    rssKiB: mem.rss,
    bareHeapKiB: bare.heap,
  };
}

/** DDS down for the outage (no probes: every TTL expires), then back on the same port; the fleet's retries under `policy`. */
async function herd(fleet: Fleet, dds: Dds, regSecret: string, policy: BackoffPolicyName) {
  current.policy = policy;
  const downAt = Date.now();
  fleet.probes.state.ddsUp = false;
  await dds.stop();
  await sleep(opts.outage * 1000);
  const registeredAtReturn = fleet.stats.registered;
  const inOutage = total(fleet.stats.attemptsIn(downAt, Date.now()));
  const ddsBefore = await dds.stats();
  await dds.start(regSecret);
  const [upAt, tUp] = [Date.now(), now()];
  fleet.probes.state.ddsUp = true;
  const allAt = await fleet.stats.waitAll(fleet.actors.length, RECOVERY_TIMEOUT_MS);
  const ddsAfter = await dds.stats(upAt, Date.now());
  const attempts = fleet.stats.attemptsIn(upAt, Date.now());
  const back = summarize([...fleet.stats.registeredAt].filter((t, i) => fleet.stats.isRegistered[i] === 1 && t >= tUp).map((t) => t - tUp));
  return {
    n: fleet.actors.length,
    policy,
    registeredAtReturn,
    attemptsInOutage: inOutage,
    attemptsInRecovery: total(attempts),
    peakAttemptsPerSec: peakPerSec(attempts),
    ddsRequests: total(ddsAfter.requests),
    peakDdsPerSec: peakPerSec(ddsAfter.requests),
    allBackS: allAt === null ? null : (allAt - tUp) / 1000,
    p50S: back.p50 / 1000,
    p90S: back.p90 / 1000,
    ddsBusy: loopBusy(ddsBefore, ddsAfter),
  };
}

/**
 * The herd without I/O: each node's last probe uniform in the last period
 * before the outage, so its TTL expires at interval − U[0, period) after DDS
 * goes down (one whose TTL outlives the outage never notices); every attempt
 * in the outage fails at once and the real policy (capped as the machine
 * caps it) picks the next; the first after DDS returns succeeds (DDS of
 * unbounded capacity: the model isolates the policy).
 */
function modelHerd(s: { nodes: number; intervalMs: number; probeEveryMs: number; outageMs: number }, policy: BackoffPolicyName) {
  const [phase, random] = [seededRandom(1), seededRandom(1001)];
  const returns: number[] = [];
  let attemptsInOutage = 0;
  for (let i = 0; i < s.nodes; i++) {
    let t = s.intervalMs - phase() * s.probeEveryMs;
    if (t >= s.outageMs) continue;
    const next = createBackoffPolicy(policy, random);
    for (let attempt = 1; t < s.outageMs; attempt++, attemptsInOutage++) t += capDelayMs(next(attempt));
    returns.push(t - s.outageMs);
  }
  returns.sort((a, b) => a - b);
  let [peak, lo] = [0, 0];
  returns.forEach((r, hi) => {
    while (r - (returns[lo] as number) >= 1000) lo++;
    peak = Math.max(peak, hi - lo + 1);
  });
  return { noticed: returns.length, attemptsInOutage, peakPerSec: peak, allBackMs: returns.at(-1) ?? 0, p50Ms: percentile(returns, 0.5) || 0 };
}

runBench('fleet', async (cleanup) => {
  const dds = await forkDds(cleanup);
  const regSecret = randomBytes(24).toString('hex');
  const ddsUrl = await dds.start(regSecret);
  const fleet: Fleet = { actors: [], stats: new FleetStats(0), probes: { state: { ddsUp: true }, stop: () => undefined } };
  const nodeBase = await startNodeServer(cleanup, fleet);
  const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  cleanup.after(() => agent.destroy());
  const client = got.extend({ agent: { http: agent } });
  // The registrars' data directories on a tmpfs when there is one: 10,000 state files and locks.
  const root = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'posemesh-fleet-'));
  cleanup.after(() => fs.rmSync(root, { recursive: true, force: true }));
  console.log(`data directories under ${path.dirname(root)}; the simulator in a child; maxSockets ${MAX_SOCKETS}, request timeout ${REQUEST_TIMEOUT_SECS} s`);
  const starts: Awaited<ReturnType<typeof startAll>>[] = [];
  const herds: Awaited<ReturnType<typeof herd>>[] = [];
  for (const n of SIZES) {
    const outage = HERD_SIZES.includes(n);
    const setup: Setup = {
      n,
      ddsUrl,
      nodeBase,
      regSecret,
      root: path.join(root, `n${n}`),
      client,
      intervalSecs: outage ? opts.interval : START_ONLY_INTERVAL_SECS,
    };
    const start = await startAll(setup, dds, fleet);
    starts.push(start);
    console.log(`N=${n}: ${start.registered}/${n} registered in ${fmt(start.allRegisteredS ?? NaN)} s; warnings: ${fleet.stats.takeWarnings()}`);
    try {
      for (const policy of outage && start.allRegisteredS !== null ? (POLICIES as BackoffPolicyName[]) : []) {
        const h = await herd(fleet, dds, regSecret, policy);
        herds.push(h);
        console.log(
          `N=${n} ${policy}: all back ${fmt(h.allBackS ?? NaN)} s after DDS returned, peak ${h.peakAttemptsPerSec} attempts/s; warnings: ${fleet.stats.takeWarnings()}`,
        );
        // The callbacks land, the fleet settles, before the next outage.
        await sleep(Math.min(2000, PROBE_EVERY_MS));
      }
    } finally {
      fleet.probes.stop();
      for (const a of fleet.actors) a.send({ type: 'STOP' });
      await Promise.all(fleet.actors.map((a) => waitFor(a, (s) => s.status === 'done', { timeout: 60_000 }).catch(() => undefined)));
      fs.rmSync(setup.root, { recursive: true, force: true });
    }
  }

  const record = figures('fleet', opts.quick);
  printTable(
    `Fleet start and memory (interval ${opts.interval} s for the outage fleets, ${START_ONLY_INTERVAL_SECS} s for the others; memory after gc, per registrar)`,
    [
      'N',
      'create s',
      'start → all registered s',
      'p50 s',
      'DDS CPU s',
      'DDS busy',
      'fleet CPU ms/registrar',
      'heap KiB',
      'RSS KiB',
      'bare actor heap KiB',
      'heap ratio',
    ],
    starts.map((r) => {
      record(`start.n${r.n}`, r);
      const all = r.allRegisteredS === null ? `timeout (${r.registered}/${r.n})` : fmt(r.allRegisteredS);
      return [
        String(r.n),
        fmt(r.createS),
        all,
        fmt(r.p50S),
        fmt(r.ddsCpuS),
        `${fmt(r.ddsBusy * 100, 0)} %`,
        fmt(r.fleetCpuMsPerActor),
        fmt(r.heapKiB),
        fmt(r.rssKiB),
        fmt(r.bareHeapKiB),
        fmt(ratio(r.heapKiB, r.bareHeapKiB)),
      ];
    }),
  );
  if (herds.length > 0) {
    printTable(
      `Herd after a ${opts.outage} s outage (interval ${opts.interval} s; peaks over any 1 s of 100 ms buckets; ratios to the crate's policy)`,
      [
        'N',
        'policy',
        'registered at return',
        'attempts in outage',
        'peak attempts/s',
        'ratio',
        'peak DDS req/s',
        'DDS req',
        'all back s',
        'ratio',
        'p50 s',
        'p90 s',
        'DDS busy',
      ],
      herds.map((h) => {
        const base = herds.find((b) => b.n === h.n && b.policy === 'crate');
        const backRatio = base !== undefined && base.allBackS !== null && h.allBackS !== null ? ratio(h.allBackS, base.allBackS) : NaN;
        record(`herd.n${h.n}.${h.policy}`, { ...h, peakRatio: ratio(h.peakAttemptsPerSec, base?.peakAttemptsPerSec ?? NaN), backRatio });
        return [
          String(h.n),
          h.policy,
          String(h.registeredAtReturn),
          String(h.attemptsInOutage),
          String(h.peakAttemptsPerSec),
          fmt(ratio(h.peakAttemptsPerSec, base?.peakAttemptsPerSec ?? NaN)),
          String(h.peakDdsPerSec),
          String(h.ddsRequests),
          fmt(h.allBackS ?? NaN),
          fmt(backRatio),
          fmt(h.p50S),
          fmt(h.p90S),
          `${fmt(h.ddsBusy * 100, 0)} %`,
        ];
      }),
    );
  }
  // The measured scenario first (a cross-check), then the defaults (interval 120 s) with short and long outages.
  const nodes = opts.quick ? 1000 : 10_000;
  const scenarios = [
    [opts.interval, PROBE_EVERY_MS / 1000, opts.outage],
    [120, 60, 90],
    [120, 60, 150],
    [120, 60, 300],
    [120, 60, 600],
    [120, 10, 150],
    [120, 10, 300],
  ] as const;
  const header = ['interval s', 'probe every s', 'outage s', 'noticed'];
  for (const p of POLICIES) header.push(`${p}: peak/s`, 'ratio', 'all back s', 'ratio', 'p50 s');
  printTable(
    `Model (no I/O, ${nodes} nodes, the real policies, DDS of unbounded capacity; first row: the measured scenario; ratios to the crate's policy)`,
    header,
    scenarios.map(([interval, probeEvery, outage]) => {
      const s = { nodes, intervalMs: interval * 1000, probeEveryMs: probeEvery * 1000, outageMs: outage * 1000 };
      const results = new Map(POLICIES.map((p) => [p, modelHerd(s, p as BackoffPolicyName)]));
      record(`model.i${interval}.p${probeEvery}.o${outage}`, { ...s, ...Object.fromEntries(results) });
      const crate = results.get('crate');
      const cells = [fmt(interval, 0), fmt(probeEvery, 0), fmt(outage, 0), String(results.values().next().value?.noticed ?? 0)];
      for (const r of results.values()) {
        cells.push(
          String(r.peakPerSec),
          fmt(ratio(r.peakPerSec, crate?.peakPerSec ?? NaN)),
          fmt(r.allBackMs / 1000),
          fmt(ratio(r.allBackMs, crate?.allBackMs ?? NaN)),
          fmt(r.p50Ms / 1000),
        );
      }
      return cells;
    }),
  );
});
