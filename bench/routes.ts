/**
 * Callback routes: the two routes DDS calls on a node, served by ours (the
 * built CLI's `run`, registered, its callback window held open) and by a bare
 * `node:http` server (bench/bare-server.mjs): autocannon at full speed, then
 * 1,000 req/s paced and in autocannon's bursts (docs/benchmarks.md §3).
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { CALLBACK_PATH, HEALTH_PATH } from '../src/http.js';
import { newCredentials, registrarEnv } from '../test/reliability/common.js';
import { assertBuilt, BIN, REPO_ROOT, spawnChild } from '../test/support/child.js';
import { onCleanup, type CleanupStack } from '../test/support/cleanup.js';
import { startFakeDds } from '../test/support/fake-dds.js';
import { freePort } from '../test/support/ports.js';
import { summarize, type Summary } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { now, sleep } from '../test/support/time.js';
import { benchOptions, figures, fmt, printTable, ratio, runBench } from './common.js';
import { cpuMsOf } from './proc.js';

const ROUTE_KEYS = ['health-dds', 'health-other', 'callback'] as const;
const opts = benchOptions('routes', 'The DDS callback routes, ours (the built CLI) beside a bare node:http server.', {
  seconds: { default: 5, quick: 0.5, help: 'length of each measured run' },
  rate: { default: 1000, help: 'requests/s of the paced and burst runs' },
  connections: { default: 10, help: "autocannon's connections, and the paced client's most sockets" },
  routes: { default: ROUTE_KEYS.join(','), help: 'which routes, comma-separated' },
  log: { default: 'file', choices: ['file', 'null'], help: 'where ours logs (JSON, info): a file or /dev/null' },
});
const GOAL_P99_MS = 10;
const DDS_USER_AGENT = 'DDS v1.4.2';

// autocannon ships no types: the part of its API used here.
interface CannonResult {
  duration: number;
  errors: number;
  latency: { p99: number };
}
type Autocannon = (options: Record<string, unknown>) => PromiseLike<CannonResult> & {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
};
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

interface Route {
  key: (typeof ROUTE_KEYS)[number];
  label: string;
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** The registrations body as DDS sends it (PROTOCOL.md §2.1); the secret is fake, and looked for in the log afterwards. */
const SECRET = randomBytes(32).toString('hex');
const ROUTES: readonly Route[] = [
  { key: 'health-dds', label: 'GET /health (DDS probe)', method: 'GET', path: HEALTH_PATH, headers: { 'user-agent': DDS_USER_AGENT } },
  { key: 'health-other', label: 'GET /health (other caller)', method: 'GET', path: HEALTH_PATH, headers: { 'user-agent': 'kube-probe/1.29' } },
  {
    key: 'callback',
    label: `POST ${CALLBACK_PATH}`,
    method: 'POST',
    path: CALLBACK_PATH,
    headers: { 'content-type': 'application/json', 'user-agent': DDS_USER_AGENT },
    body: JSON.stringify({ id: randomUUID(), secret: SECRET, organization_id: randomUUID(), lighthouses_in_domains: [], domains: [] }),
  },
];

const routes = ROUTES.filter((r) => opts.routes.split(',').includes(r.key));
if (routes.length === 0 || opts.routes.split(',').some((k) => !ROUTE_KEYS.some((known) => known === k))) {
  console.error(`--routes: expected some of ${ROUTE_KEYS.join(', ')}, got ${JSON.stringify(opts.routes)}`);
  process.exit(2);
}

interface Server {
  name: 'ours' | 'bare';
  url: string;
  pid: number;
}

/** Ours: `run` as installed, logging to a file (or /dev/null), interval and callback window one hour. */
async function startOurs(cleanup: CleanupStack, logFile: string): Promise<Server> {
  const dds = await startFakeDds(cleanup);
  const creds = newCredentials();
  const port = await freePort();
  const env = registrarEnv({
    DDS_BASE_URL: dds.url,
    NODE_URL: 'http://127.0.0.1',
    REG_SECRET: creds.regSecret,
    SECP256K1_PRIVHEX: creds.envPrivhex,
    REGISTER_INTERVAL_SECS: '3600',
    CALLBACK_WINDOW_SECS: '3600',
    DATA_DIR: tempDir(cleanup, 'posemesh-bench-routes-'),
    PORT: String(port),
  });
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [BIN, 'run'], { cwd: REPO_ROOT, env, stdio: ['ignore', log, 'inherit'] });
  fs.closeSync(log);
  const exited = new Promise((resolve) => child.once('close', resolve));
  onCleanup(cleanup, () => {
    child.kill('SIGTERM');
    return exited;
  });
  await dds.waitForRequests(1, 30_000);
  // The answer, the transition to registered, the routes loaded after the first attempt.
  await sleep(1000);
  return { name: 'ours', url: `http://127.0.0.1:${port}`, pid: child.pid ?? 0 };
}

async function startBare(cleanup: CleanupStack): Promise<Server> {
  const child = spawnChild(cleanup, { script: 'bench/bare-server.mjs', name: 'bare' });
  const { line } = await child.waitForEvent('http.listening');
  return { name: 'bare', url: String(line['url']), pid: child.proc.pid ?? 0 };
}

interface Run {
  answers: number;
  reqPerSec: number;
  /** ms, every answer, sub-ms resolution. */
  latency: Summary;
  /** Answers not 2xx, and requests that failed. */
  bad: number;
  /** autocannon's own p99 (whole ms). */
  cannonP99?: number;
  /** The server's CPU (every thread) per answer, µs. */
  cpuUsPerRequest: number;
}

async function cannon(url: string, route: Route, overallRate?: number): Promise<Omit<Run, 'cpuUsPerRequest'>> {
  const samples: number[] = [];
  let bad = 0;
  const run = autocannon({
    url: new URL(route.path, url).href,
    method: route.method,
    headers: route.headers,
    body: route.body,
    connections: opts.connections,
    duration: opts.seconds,
    timeout: 10,
    sampleInt: 100,
    overallRate,
  });
  run.on('response', (_c, status, _b, ms) => {
    samples.push(ms);
    if (status < 200 || status > 299) bad += 1;
  });
  const result = await run;
  return {
    answers: samples.length,
    reqPerSec: samples.length / result.duration,
    latency: summarize(samples),
    bad: bad + result.errors,
    cannonP99: result.latency.p99,
  };
}

/** Open loop: request i is sent at t0 + i/rate whatever the answers (latency from the send), over at most `connections` keep-alive sockets. */
async function paced(url: string, route: Route): Promise<Omit<Run, 'cpuUsPerRequest'>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections });
  const headers = { ...route.headers, ...(route.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(route.body)) }) };
  const total = Math.max(1, Math.round(opts.seconds * opts.rate));
  const samples: number[] = [];
  let bad = 0;
  const t0 = now();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let finished = 0;
    const settle = (ms: number | null): void => {
      if (ms === null) bad += 1;
      else samples.push(ms);
      if (++finished === total) resolve();
    };
    const sendOne = (): void => {
      const start = now();
      const req = http.request(new URL(route.path, url), { method: route.method, headers, agent }, (res) => {
        if ((res.statusCode ?? 0) > 299) bad += 1;
        res.on('end', () => settle(now() - start)).on('error', () => settle(null));
        res.resume();
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => settle(null));
      req.end(route.body);
    };
    const tick = (): void => {
      for (const due = Math.min(total, Math.floor(((now() - t0) * opts.rate) / 1000) + 1); sent < due; sent++) sendOne();
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  agent.destroy();
  return { answers: samples.length, reqPerSec: samples.length / ((now() - t0) / 1000), latency: summarize(samples), bad };
}

type Kind = 'max' | 'paced' | 'bursts';
const KINDS: readonly Kind[] = opts.quick ? ['max', 'paced'] : ['max', 'paced', 'bursts'];

async function measure(kind: Kind, server: Server, route: Route): Promise<Run> {
  const cpu0 = cpuMsOf(server.pid);
  const r = kind === 'paced' ? await paced(server.url, route) : await cannon(server.url, route, kind === 'bursts' ? opts.rate : undefined);
  return { ...r, cpuUsPerRequest: ((cpuMsOf(server.pid) - cpu0) * 1000) / r.answers };
}

/** The share of one core the server used, %. */
const coreShare = (r: Run): number => (r.cpuUsPerRequest * r.reqPerSec) / 1e4;

runBench('routes', async (cleanup) => {
  assertBuilt();
  const logFile = opts.log === 'file' ? path.join(tempDir(cleanup, 'posemesh-bench-routes-log-'), 'ours.log') : '/dev/null';
  const servers = await Promise.all([startOurs(cleanup, logFile), startBare(cleanup)]);
  console.log(`ours: ${BIN} run (policy window, 1 h window), JSON log at info to ${opts.log === 'file' ? 'a file' : '/dev/null'}; baseline: bare node:http`);
  console.log(`${opts.seconds} s per run, ${opts.connections} connections, ${opts.rate} req/s paced and in bursts`);
  const results = new Map<string, Run>();
  const get = (route: Route, kind: Kind, s: Server['name']): Run => results.get(`${route.key}/${kind}/${s}`) as Run;
  /** Answers ours gave, by route (warm-ups included): what its log must account for. */
  const oursAnswers = new Map<string, number>();
  const count = (s: Server, route: Route, r: { answers: number }): void => {
    if (s.name === 'ours') oursAnswers.set(route.key, (oursAnswers.get(route.key) ?? 0) + r.answers);
  };
  for (const route of routes) {
    // Warm-up (JIT, sockets): not in the figures.
    if (!opts.quick) for (const s of servers) count(s, route, await cannon(s.url, route));
    for (const [i, kind] of KINDS.entries()) {
      // Which server goes first alternates, so that a drift of the machine's load hits both alike.
      for (const s of i % 2 === 0 ? servers : [...servers].reverse()) {
        const r = await measure(kind, s, route);
        results.set(`${route.key}/${kind}/${s.name}`, r);
        count(s, route, r);
        process.stderr.write(
          `${route.key} ${kind} ${s.name}: ${fmt(r.reqPerSec, 0)} req/s, p99 ${fmt(r.latency.p99)} ms, ${fmt(r.cpuUsPerRequest, 0)} µs CPU/req\n`,
        );
      }
    }
  }

  const pair = (o: number, b: number, d?: number): string => `${fmt(o, d)} / ${fmt(b, d)}`;
  printTable(
    `Max throughput — autocannon, ${opts.connections} connections, ${opts.seconds} s (ours / bare node:http)`,
    ['route', 'ours req/s', 'bare req/s', 'ratio', 'p50 ms ours / bare', 'p99 ms ours / bare', 'CPU µs/req ours / bare', 'non-2xx or failed'],
    routes.map((route) => {
      const [o, b] = [get(route, 'max', 'ours'), get(route, 'max', 'bare')];
      return [
        route.label,
        fmt(o.reqPerSec, 0),
        fmt(b.reqPerSec, 0),
        fmt(ratio(o.reqPerSec, b.reqPerSec)),
        pair(o.latency.p50, b.latency.p50),
        pair(o.latency.p99, b.latency.p99),
        pair(o.cpuUsPerRequest, b.cpuUsPerRequest, 0),
        pair(o.bad, b.bad, 0),
      ];
    }),
  );
  printTable(
    `At ${opts.rate} req/s, paced (open loop: one request every 1/rate s) — the goal; and in autocannon's per-second bursts`,
    [
      'route',
      'p50 ms ours / bare',
      'p99 ms ours / bare',
      'p99 ratio',
      '% of a core ours / bare',
      'bursts: p99 ours / bare',
      'non-2xx or failed',
      `p99 < ${GOAL_P99_MS} ms`,
    ],
    routes.map((route) => {
      const [o, b] = [get(route, 'paced', 'ours'), get(route, 'paced', 'bare')];
      const [ob, bb] = [results.get(`${route.key}/bursts/ours`), results.get(`${route.key}/bursts/bare`)];
      const met = (r: Run | undefined): string => (r === undefined ? '' : r.latency.p99 < GOAL_P99_MS && r.bad === 0 ? 'met' : 'missed');
      return [
        route.label,
        pair(o.latency.p50, b.latency.p50),
        pair(o.latency.p99, b.latency.p99),
        fmt(ratio(o.latency.p99, b.latency.p99)),
        pair(coreShare(o), coreShare(b), 0),
        pair(ob?.latency.p99 ?? NaN, bb?.latency.p99 ?? NaN),
        pair(o.bad, b.bad, 0),
        `paced: ${met(o)}${ob === undefined ? '' : `; bursts: ${met(ob)}`}`,
      ];
    }),
  );

  // What the real code did, from its log: one line per accepted callback and per recorded DDS probe.
  if (opts.log === 'file') {
    const text = fs.readFileSync(logFile, 'utf8');
    const lines = text.split('\n').flatMap((l) => (l.startsWith('{') ? [JSON.parse(l) as Record<string, unknown>] : []));
    const n = (pred: (l: Record<string, unknown>) => boolean): number => lines.filter(pred).length;
    const left = n((l) => l['event'] === 'healthcheck.expired' || l['from'] === 'registered');
    console.log(
      `\nours' log: ${n((l) => l['event'] === 'registration.callback')} callbacks accepted (the client counted ${oursAnswers.get('callback') ?? 0} answers), ` +
        `${n((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe')} DDS probes recorded (${oursAnswers.get('health-dds') ?? 0} answers); ` +
        `${left === 0 ? 'registered throughout' : `LEFT registered ${left}×`}; the secret ${text.includes(SECRET) ? 'APPEARS in the log' : 'is not in the log'}`,
    );
  }
  const record = figures('routes', opts.quick);
  record('settings', { seconds: opts.seconds, rate: opts.rate, connections: opts.connections, log: opts.log });
  for (const route of routes) {
    for (const kind of KINDS) record(`${route.key}.${kind}`, { ours: get(route, kind, 'ours'), bare: get(route, kind, 'bare'), goalP99Ms: GOAL_P99_MS });
  }
});
