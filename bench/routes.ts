/**
 * Callback-routes benchmark: requests/s and p50/p99 latency of the DDS
 * callback routes (`GET /health`, `POST /internal/v1/registrations`) through
 * the project's express router, beside a bare `node:http` server answering
 * the same, on the same machine, in the same run.
 *
 *   node --import tsx bench/routes.ts [--quick] [--seconds S] [--rate R] [--connections C]
 *                                     [--routes health-dds,health-other,callback] [--log file|null]
 *
 * Each server runs in a child process of its own (bench/routes-server.ts), so
 * the load generator here never shares its event loop:
 * - ours: the daemon as `run` starts it (`startDaemon`: `createRoutesServer`
 *   + `routerDds(registrar, {logger})` + `createRegistrar`), registered against
 *   a local DDS stand-in, policy `window` with a one-hour interval and window
 *   (so every callback is admitted), production logger (JSON, `info`) to a file;
 * - baseline: a bare `node:http` server with the same routes, status codes and
 *   bodies (the POST body is parsed and checked for `id` and `secret`).
 *
 * Routes: `GET /health` as DDS sends it (`User-Agent: DDS v…`: ours records the
 * probe in the state file), `GET /health` from another caller (no write: the
 * router alone), and the registrations POST with a realistic body (a fake
 * secret, never printed). For each route and server:
 * 1. max throughput: autocannon, C connections (default 10), S seconds (default 5);
 * 2. at R req/s (default 1,000), paced: an open-loop client here that sends one
 *    request every 1/R s whatever the answers (latency from the send);
 * 3. at R req/s with autocannon's `overallRate`: note that autocannon sends each
 *    connection's per-second quota back to back, then waits for the next second
 *    (bursts), so this is closer to run 1 than to a steady load.
 * Each run also takes the server's CPU time per request (the child's
 * `process.cpuUsage()` around the run): unlike latency, it holds on a busy machine.
 * Goal: p99 under 10 ms at 1,000 req/s (run 2). Prints tables with the ratios
 * ours/baseline and records every figure with `recordBench`; asserts nothing.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { CALLBACK_PATH, HEALTH_PATH } from '../src/http.js';
import { nextMessage, REPO_ROOT } from '../test/support/child.js';
import { writeFigure } from '../test/support/figures.js';
import { round, summarize, type Summary } from '../test/support/stats.js';
import { now } from '../test/support/time.js';
import { fmt, parseBenchArgs, positiveNumber, printMachine, printTable, ratio, runBench } from './common.js';
import type { ChildMessage, LogSink, ServerChildConfig, ServerMode, ServerStats } from './routes-server.js';

const USAGE = `
bench/routes.ts — DDS callback routes (express router + registrar) vs a bare node:http server.

  node --import tsx bench/routes.ts [--quick] [--seconds S] [--rate R] [--connections C]

  --seconds S      length of each measured run (default 5; --quick: 0.5)
  --rate R         the fixed rate of runs 2 and 3, requests/s (default 1000)
  --connections C  autocannon connections, and the paced client's most sockets (default 10)
  --routes LIST    which routes, comma-separated (default: health-dds,health-other,callback)
  --log file|null  where ours logs (pino JSON, info): a file (default) or /dev/null
  --quick          smoke-sized run (0.5 s per run, no warm-up, no autocannon-rate run)
`;

const BENCH = 'routes';
const GOAL_P99_MS = 10;
const DDS_USER_AGENT = 'DDS v1.4.2';

// ---- autocannon: the parts of its programmatic API used here (it ships no types) ----

interface AutocannonOptions {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  connections?: number;
  duration?: number;
  overallRate?: number;
  /** Seconds before a request counts as timed out. */
  timeout?: number;
  /** How often results are sampled, ms: a run ends at the first sample after `duration`. */
  sampleInt?: number;
}

interface AutocannonHistogram {
  average: number;
  p50: number;
  p99: number;
  total: number;
}

interface AutocannonResult {
  /** Seconds. */
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
  /** Milliseconds, whole (an HDR histogram with 1 ms resolution). */
  latency: AutocannonHistogram;
  requests: AutocannonHistogram;
}

interface AutocannonInstance extends PromiseLike<AutocannonResult> {
  on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => void): this;
}

type Autocannon = (options: AutocannonOptions) => AutocannonInstance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

// ---- the routes ----

interface RouteSpec {
  key: string;
  label: string;
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** The registrations body as DDS sends it (PROTOCOL.md §2.1; the simulator's shape). The secret is fake. */
function callbackBody(): string {
  return JSON.stringify({
    id: randomUUID(),
    secret: randomBytes(32).toString('hex'),
    organization_id: randomUUID(),
    lighthouses_in_domains: [],
    domains: [],
  });
}

function routes(body: string): RouteSpec[] {
  return [
    { key: 'health-dds', label: 'GET /health (DDS probe)', method: 'GET', path: HEALTH_PATH, headers: { 'user-agent': DDS_USER_AGENT } },
    { key: 'health-other', label: 'GET /health (other caller)', method: 'GET', path: HEALTH_PATH, headers: { 'user-agent': 'kube-probe/1.29' } },
    {
      key: 'callback',
      label: `POST ${CALLBACK_PATH}`,
      method: 'POST',
      path: CALLBACK_PATH,
      headers: { 'content-type': 'application/json', 'user-agent': DDS_USER_AGENT },
      body,
    },
  ];
}

function logSinkOf(raw: string | undefined): LogSink {
  if (raw === undefined || raw === 'file' || raw === 'null') return raw ?? 'file';
  console.error(`--log: expected file or null, got ${JSON.stringify(raw)}`);
  process.exit(2);
}

/** The routes named by `--routes` (all when absent); exits 2 on an unknown name. */
function selectRoutes(all: readonly RouteSpec[], raw: string | undefined): RouteSpec[] {
  if (raw === undefined) return [...all];
  const names = raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const unknown = names.filter((n) => !all.some((r) => r.key === n));
  if (names.length === 0 || unknown.length > 0) {
    console.error(`--routes: unknown ${JSON.stringify(unknown.join(','))}; known: ${all.map((r) => r.key).join(', ')}`);
    process.exit(2);
  }
  return all.filter((r) => names.includes(r.key));
}

// ---- the server children ----

interface ServerChild {
  mode: ServerMode;
  url: string;
  stats(): Promise<ServerStats>;
  /** CPU time the child has used so far (user + system), µs. */
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

const SERVER_ENTRY = path.join(REPO_ROOT, 'bench', 'routes-server.ts');

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function startServerChild(mode: ServerMode, dataDir: string, log: LogSink, cleanups: (() => Promise<void>)[]): Promise<ServerChild> {
  const config: ServerChildConfig = { mode, dataDir, log };
  const child = fork(SERVER_ENTRY, [JSON.stringify(config)], {
    cwd: REPO_ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const kill = async (): Promise<void> => {
    if (!(await exited(child, 0))) child.kill('SIGKILL');
    await exited(child, 5_000);
  };
  cleanups.push(kill);
  const next = <T extends ChildMessage['type']>(type: T, timeoutMs: number): Promise<Extract<ChildMessage, { type: T }>> =>
    nextMessage(child, (m) => ((m as ChildMessage).type === type ? (m as Extract<ChildMessage, { type: T }>) : undefined), {
      what: `the ${mode} server child, waiting for '${type}'`,
      timeoutMs,
    });
  const ready = await next('ready', 60_000);
  return {
    mode,
    url: ready.url,
    async stats() {
      const reply = next('stats', 10_000);
      child.send({ type: 'stats' });
      return reply;
    },
    async cpuMicros() {
      const reply = next('cpu', 10_000);
      child.send({ type: 'cpu' });
      return (await reply).micros;
    },
    async stop() {
      if (child.connected) child.send({ type: 'stop' });
      if (!(await exited(child, 10_000))) await kill();
    },
  };
}

// ---- load ----

interface RunResult {
  /** Completed answers. */
  requests: number;
  seconds: number;
  reqPerSec: number;
  /** Latency of every answer, ms (sub-millisecond resolution). */
  latency: Summary;
  statuses: Record<string, number>;
  non2xx: number;
  errors: number;
  /** autocannon's own p99 (whole ms; corrected for coordinated omission when rate-limited). */
  autocannonP99?: number;
  /** The server's CPU time (user + system) per answer, µs: robust to a busy machine, unlike latency. */
  cpuMicrosPerRequest?: number;
}

function countStatus(statuses: Record<string, number>, status: number | string): void {
  const key = String(status);
  statuses[key] = (statuses[key] ?? 0) + 1;
}

function non2xxOf(statuses: Record<string, number>): number {
  return Object.entries(statuses).reduce((n, [code, count]) => (code.startsWith('2') ? n : n + count), 0);
}

/** One autocannon run (max throughput, or rate-limited with `overallRate`). */
async function cannonRun(url: string, route: RouteSpec, seconds: number, connections: number, overallRate?: number): Promise<RunResult> {
  const samples: number[] = [];
  const statuses: Record<string, number> = {};
  const instance = autocannon({
    url: new URL(route.path, url).href,
    method: route.method,
    headers: route.headers,
    ...(route.body === undefined ? {} : { body: route.body }),
    connections,
    duration: seconds,
    timeout: 10,
    sampleInt: 100,
    ...(overallRate === undefined ? {} : { overallRate }),
  });
  instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
    samples.push(responseTimeMs);
    countStatus(statuses, statusCode);
  });
  const result = await instance;
  return {
    requests: samples.length,
    seconds: result.duration,
    reqPerSec: result.duration > 0 ? samples.length / result.duration : NaN,
    latency: summarize(samples),
    statuses,
    non2xx: non2xxOf(statuses),
    errors: result.errors,
    autocannonP99: result.latency.p99,
  };
}

/** How long a paced run waits for the answers after its last send: as long as the run, at least 1 s, at most 10 s. */
function drainLimitSeconds(seconds: number): number {
  return Math.min(10, Math.max(1, seconds));
}

/**
 * An open-loop run at `rate` req/s: request i is sent at t0 + i/rate whatever
 * the answers (a timer wakes every ~1 ms and sends what is due), over a
 * keep-alive agent of at most `sockets` sockets. Latency runs from the send
 * (a request queued for a free socket counts its wait). Answers are awaited
 * at most {@link drainLimitSeconds} after the last send; the rest count as errors.
 */
async function pacedRun(url: string, route: RouteSpec, seconds: number, rate: number, sockets: number): Promise<RunResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  const target = new URL(route.path, url);
  const headers: Record<string, string | number> = { ...route.headers };
  if (route.body !== undefined) headers['content-length'] = Buffer.byteLength(route.body);
  const total = Math.max(1, Math.round(seconds * rate));
  const samples: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let finished = 0;
  let over = false;
  const t0 = now();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let drainTimer: NodeJS.Timeout | undefined;
    const end = (): void => {
      over = true;
      clearTimeout(drainTimer);
      resolve();
    };
    const sendOne = (): void => {
      const start = now();
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled || over) return;
        settled = true;
        if (ok) samples.push(now() - start);
        else errors += 1;
        if (++finished === total) end();
      };
      const req = http.request(target, { method: route.method, headers, agent }, (res) => {
        countStatus(statuses, res.statusCode ?? 0);
        res.on('end', () => settle(true));
        res.on('error', () => settle(false));
        res.resume();
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => settle(false));
      req.end(route.body);
    };
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((now() - t0) * rate) / 1000) + 1);
      while (sent < due) {
        sent += 1;
        sendOne();
      }
      if (sent < total) setTimeout(tick, 1);
      else if (!over) drainTimer = setTimeout(end, drainLimitSeconds(seconds) * 1000);
    };
    tick();
  });
  const elapsed = (now() - t0) / 1000;
  // Not answered within the drain limit.
  errors += total - finished;
  agent.destroy();
  return {
    requests: samples.length,
    seconds: elapsed,
    reqPerSec: samples.length / elapsed,
    latency: summarize(samples),
    statuses,
    non2xx: non2xxOf(statuses),
    errors,
  };
}

// ---- the benchmark ----

type RunKind = 'max' | 'paced' | 'cannonRate';
const KINDS: readonly RunKind[] = ['max', 'paced', 'cannonRate'];

/** The runs made: all, or without the autocannon-rate one with `--quick`. */
function kindsOf(s: Settings): readonly RunKind[] {
  return s.quick ? KINDS.filter((k) => k !== 'cannonRate') : KINDS;
}

interface Settings {
  seconds: number;
  rate: number;
  connections: number;
  log: LogSink;
  quick: boolean;
}

function runOnce(kind: RunKind, server: ServerChild, route: RouteSpec, s: Settings): Promise<RunResult> {
  switch (kind) {
    case 'max':
      return cannonRun(server.url, route, s.seconds, s.connections);
    case 'paced':
      return pacedRun(server.url, route, s.seconds, s.rate, s.connections);
    case 'cannonRate':
      return cannonRun(server.url, route, s.seconds, s.connections, s.rate);
  }
}

type Results = Map<string, RunResult>;
const keyOf = (route: RouteSpec, kind: RunKind, mode: ServerMode): string => `${route.key}/${kind}/${mode}`;

/** Per route, what the `ours` child says happened (deltas of its counters over the route's runs). */
interface RouteEffects {
  route: RouteSpec;
  /** Answers the client counted from `ours` (warm-up included). */
  answers: number;
  callbacks: number;
  probes: number;
  /** `null` when ours logs to /dev/null. */
  logLines: number | null;
  stillRegistered: boolean;
  /** Ours after the route's runs, MiB. */
  rssMiB: number;
  heapUsedMiB: number;
}

async function benchRoute(route: RouteSpec, servers: readonly ServerChild[], s: Settings, results: Results): Promise<RouteEffects> {
  const ours = servers.find((x) => x.mode === 'ours');
  if (!ours) throw new Error('no ours server');
  const before = await ours.stats();
  let answers = 0;
  if (!s.quick) {
    // Warm-up (JIT, sockets): not recorded.
    for (const server of servers) {
      const r = await cannonRun(server.url, route, 1, s.connections);
      if (server.mode === 'ours') answers += r.requests;
    }
  }
  for (const [i, kind] of kindsOf(s).entries()) {
    // Alternate which server goes first, so a drift of the machine's load hits both alike.
    const order = i % 2 === 0 ? servers : [...servers].reverse();
    for (const server of order) {
      const cpu0 = await server.cpuMicros();
      const r = await runOnce(kind, server, route, s);
      const cpu = (await server.cpuMicros()) - cpu0;
      r.cpuMicrosPerRequest = r.requests > 0 ? cpu / r.requests : NaN;
      results.set(keyOf(route, kind, server.mode), r);
      if (server.mode === 'ours') answers += r.requests;
      process.stderr.write(
        `${route.key} ${kind} ${server.mode}: ${Math.round(r.reqPerSec)} req/s, p50 ${fmt(r.latency.p50)} ms, p99 ${fmt(r.latency.p99)} ms, ` +
          `CPU ${fmt(r.cpuMicrosPerRequest ?? NaN, 0)} µs/req` +
          `${r.non2xx > 0 ? `, non-2xx ${r.non2xx}` : ''}${r.errors > 0 ? `, errors ${r.errors}` : ''}\n`,
      );
    }
  }
  const after = await ours.stats();
  return {
    route,
    answers,
    callbacks: after.callbacks - before.callbacks,
    probes: after.probes - before.probes,
    logLines: after.logLines === null || before.logLines === null ? null : after.logLines - before.logLines,
    stillRegistered: after.registered,
    rssMiB: after.rssMiB,
    heapUsedMiB: after.heapUsedMiB,
  };
}

function get(results: Results, route: RouteSpec, kind: RunKind, mode: ServerMode): RunResult {
  const r = results.get(keyOf(route, kind, mode));
  if (!r) throw new Error(`missing result ${keyOf(route, kind, mode)}`);
  return r;
}

function statusText(r: RunResult): string {
  return r.non2xx + r.errors === 0 ? '0' : `${r.non2xx}${r.errors > 0 ? ` +${r.errors} err` : ''}`;
}

function printMax(allRoutes: readonly RouteSpec[], results: Results, s: Settings): void {
  const rows = allRoutes.map((route) => {
    const o = get(results, route, 'max', 'ours');
    const b = get(results, route, 'max', 'bare');
    return [
      route.label,
      fmt(o.reqPerSec, 0),
      fmt(b.reqPerSec, 0),
      fmt(ratio(o.reqPerSec, b.reqPerSec)),
      fmt(o.latency.p50),
      fmt(b.latency.p50),
      fmt(o.latency.p99),
      fmt(b.latency.p99),
      fmt(ratio(o.latency.p99, b.latency.p99)),
      fmt(o.cpuMicrosPerRequest ?? NaN, 0),
      fmt(b.cpuMicrosPerRequest ?? NaN, 0),
      fmt(ratio(o.cpuMicrosPerRequest ?? NaN, b.cpuMicrosPerRequest ?? NaN)),
      `${statusText(o)} / ${statusText(b)}`,
    ];
  });
  printTable(
    `Max throughput — autocannon, ${s.connections} connections, ${s.seconds} s (ours / bare node:http)`,
    ['route', 'ours req/s', 'bare req/s', 'ratio', 'ours p50', 'bare p50', 'ours p99', 'bare p99', 'p99 ratio', 'ours CPU µs/req', 'bare CPU µs/req', 'CPU ratio', 'non-2xx'],
    rows,
  );
}

/** The share of one core the server used during the run, %. */
function coreShare(r: RunResult): number {
  return r.cpuMicrosPerRequest === undefined ? NaN : (r.cpuMicrosPerRequest * r.reqPerSec) / 1e4;
}

function printAtRate(kind: 'paced' | 'cannonRate', title: string, allRoutes: readonly RouteSpec[], results: Results, s: Settings): void {
  const rows = allRoutes.map((route) => {
    const o = get(results, route, kind, 'ours');
    const b = get(results, route, kind, 'bare');
    const row = [
      route.label,
      `${fmt(o.reqPerSec, 0)} / ${fmt(b.reqPerSec, 0)}`,
      fmt(o.latency.p50),
      fmt(b.latency.p50),
      fmt(ratio(o.latency.p50, b.latency.p50)),
      fmt(o.latency.p99),
      fmt(b.latency.p99),
      fmt(ratio(o.latency.p99, b.latency.p99)),
    ];
    row.push(`${fmt(coreShare(o), 0)} / ${fmt(coreShare(b), 0)}`);
    if (kind === 'cannonRate') row.push(`${fmt(o.autocannonP99 ?? NaN, 0)} / ${fmt(b.autocannonP99 ?? NaN, 0)}`);
    row.push(`${statusText(o)} / ${statusText(b)}`);
    row.push(o.latency.p99 < GOAL_P99_MS && o.non2xx + o.errors === 0 ? 'met' : 'missed');
    return row;
  });
  const header = ['route', 'req/s ours/bare', 'ours p50', 'bare p50', 'p50 ratio', 'ours p99', 'bare p99', 'p99 ratio', '% of a core ours/bare'];
  if (kind === 'cannonRate') header.push('ac p99 (ms, CO-corr.)');
  header.push('non-2xx', `p99 < ${GOAL_P99_MS} ms`);
  printTable(title.replace('{rate}', String(s.rate)), header, rows);
}

/** Log lines per request: per callback or probe the registrar counted (exact), else per answer counted here. */
function linesPerRequest(e: RouteEffects): number {
  if (e.logLines === null) return NaN;
  const handled = e.callbacks + e.probes;
  const n = handled > 0 ? handled : e.answers;
  return n > 0 ? e.logLines / n : NaN;
}

function printEffects(effects: readonly RouteEffects[]): void {
  printTable(
    'What the real code did (ours, all runs of the route, warm-up included)',
    ['route', 'answers', 'callbacks (registrar)', 'probes (registrar)', 'log lines', 'lines/request', 'still registered', 'RSS / heap MiB'],
    effects.map((e) => [
      e.route.label,
      String(e.answers),
      String(e.callbacks),
      String(e.probes),
      e.logLines === null ? '-' : String(e.logLines),
      fmt(linesPerRequest(e)),
      e.stillRegistered ? 'yes' : 'NO',
      `${fmt(e.rssMiB, 0)} / ${fmt(e.heapUsedMiB, 0)}`,
    ]),
  );
}

function figure(r: RunResult): Record<string, unknown> {
  return {
    reqPerSec: round(r.reqPerSec, 0),
    p50Ms: round(r.latency.p50, 3),
    p99Ms: round(r.latency.p99, 3),
    maxMs: round(r.latency.max, 3),
    requests: r.requests,
    non2xx: r.non2xx,
    errors: r.errors,
    statuses: r.statuses,
    ...(r.autocannonP99 === undefined ? {} : { autocannonP99Ms: r.autocannonP99 }),
    cpuMicrosPerRequest: round(r.cpuMicrosPerRequest ?? NaN, 1),
    coreSharePercent: round(coreShare(r), 1),
  };
}

function record(allRoutes: readonly RouteSpec[], results: Results, effects: readonly RouteEffects[], s: Settings): void {
  const options = { quick: s.quick };
  writeFigure(BENCH, 'settings', { seconds: s.seconds, rate: s.rate, connections: s.connections, logger: `pino json info → ${s.log === 'file' ? 'file' : '/dev/null'}`, callbackPolicy: 'window (1 h window)' }, options);
  for (const route of allRoutes) {
    for (const kind of kindsOf(s)) {
      const o = get(results, route, kind, 'ours');
      const b = get(results, route, kind, 'bare');
      writeFigure(
        BENCH,
        `${route.key}.${kind}`,
        {
          ours: figure(o),
          bare: figure(b),
          ratio: {
            cpuPerRequest: ratio(o.cpuMicrosPerRequest ?? NaN, b.cpuMicrosPerRequest ?? NaN),
            reqPerSec: ratio(o.reqPerSec, b.reqPerSec),
            p50: ratio(o.latency.p50, b.latency.p50),
            p99: ratio(o.latency.p99, b.latency.p99),
          },
          ...(kind === 'max' ? {} : { goalP99Ms: GOAL_P99_MS, goalMet: o.latency.p99 < GOAL_P99_MS && o.non2xx + o.errors === 0 }),
        },
        options,
      );
    }
  }
  for (const e of effects) {
    writeFigure(
      BENCH,
      `${e.route.key}.effects`,
      {
        answers: e.answers,
        callbacks: e.callbacks,
        probes: e.probes,
        logLines: e.logLines,
        linesPerRequest: round(linesPerRequest(e), 2),
        stillRegistered: e.stillRegistered,
        rssMiB: e.rssMiB,
        heapUsedMiB: e.heapUsedMiB,
      },
      options,
    );
  }
}

/** The secret must not appear in the daemon's log (a cheap check on the real path). */
function checkLogForSecret(dataDir: string, secret: string): void {
  const logFile = path.join(dataDir, 'daemon.log');
  if (fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8').includes(secret)) {
    console.log('\nWARNING: the node secret appears in the daemon log');
  }
}

async function main(): Promise<void> {
  const args = parseBenchArgs(USAGE, ['seconds', 'rate', 'connections', 'routes', 'log']);
  const s: Settings = {
    seconds: positiveNumber(args.options['seconds'], args.quick ? 0.5 : 5, 'seconds'),
    rate: positiveNumber(args.options['rate'], 1000, 'rate'),
    connections: Math.round(positiveNumber(args.options['connections'], 10, 'connections')),
    log: logSinkOf(args.options['log']),
    quick: args.quick,
  };
  const body = callbackBody();
  const secret = (JSON.parse(body) as { secret: string }).secret;
  const allRoutes = selectRoutes(routes(body), args.options['routes']);
  printMachine('routes');
  console.log(
    `ours: startDaemon (express router + registrar, policy window, pino json/info); baseline: bare node:http. ` +
      `${s.seconds} s per run, ${s.connections} connections, rate ${s.rate} req/s; ours logs to ${s.log === 'file' ? 'a file' : '/dev/null'}.`,
  );

  const cleanups: (() => Promise<void>)[] = [];
  const runCleanups = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    void runCleanups().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'posemesh-bench-routes-'));
  cleanups.push(async () => fs.rmSync(root, { recursive: true, force: true }));
  try {
    const oursDir = path.join(root, 'ours');
    const bareDir = path.join(root, 'bare');
    fs.mkdirSync(oursDir);
    fs.mkdirSync(bareDir);
    const servers = await Promise.all([
      startServerChild('ours', oursDir, s.log, cleanups),
      startServerChild('bare', bareDir, s.log, cleanups),
    ]);
    const results: Results = new Map();
    const effects: RouteEffects[] = [];
    for (const route of allRoutes) effects.push(await benchRoute(route, servers, s, results));
    for (const server of servers) await server.stop();
    checkLogForSecret(oursDir, secret);

    printMax(allRoutes, results, s);
    printAtRate('paced', 'At {rate} req/s, paced (open loop, one request every 1/rate s) — the goal', allRoutes, results, s);
    if (!s.quick) printAtRate('cannonRate', 'At {rate} req/s, autocannon overallRate (per-second bursts)', allRoutes, results, s);
    printEffects(effects);
    console.log('\nLatencies in ms (sub-ms resolution, every answer); ratios ours/bare: < 1 is better for latency, > 1 for req/s.');
    record(allRoutes, results, effects, s);
  } finally {
    await runCleanups();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

runBench(main);
