/**
 * The access session (protocol `siwe`, PROTOCOL.md §6.5): a long simulated
 * run of refreshes (the token handed out never expired, refreshes at the
 * ratio), the re-arm latency from `verify`'s 403 to the next nonce request,
 * and the simulator's SIWE throughput beside legacy registrations
 * (docs/benchmarks.md §8).
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { SimulatedClock, waitFor } from 'xstate';
import { accessToken, reportUnauthorized } from '../src/access-token.js';
import type { RegistrarConfig } from '../src/config.js';
import { deriveEthAddress, generateSecretKey, loadSecp256k1Privhex } from '../src/crypto.js';
import { silentLogger } from '../src/log.js';
import { createRegistrationClient, type RegistrationResult } from '../src/register.js';
import { createSiweRegistrationClient, SIWE_NONCE_PATH } from '../src/register-siwe.js';
import { createRegistrar, type Registrar } from '../src/registrar.js';
import type { CleanupStack } from '../test/support/cleanup.js';
import { jsonAnswer, siweResponder, startFakeDds } from '../test/support/fake-dds.js';
import { listen } from '../test/support/http.js';
import { startSimulator } from '../test/support/simulator.js';
import { summarize, type Summary } from '../test/support/stats.js';
import { tempDir } from '../test/support/temp.js';
import { now } from '../test/support/time.js';
import { benchOptions, figures, fmt, printTable, ratio, runBench } from './common.js';
import { forkDds } from './fleet-dds.js';

const opts = benchOptions('session', 'The access session: simulated refreshes, re-arm latency, the simulator’s SIWE throughput.', {
  lifetimes: { default: [10, 60, 3600], quick: [10], help: 'token lifetimes of the simulated run, seconds' },
  refreshes: { default: 1000, quick: 20, help: 'refreshes per lifetime (SimulatedClock)' },
  rearms: { default: 50, quick: 3, help: 're-arms timed (real clock)' },
  seconds: { default: 3, quick: 0.5, help: 'seconds of load per request kind and round (throughput)' },
  concurrency: { default: 8, quick: 2, help: 'requests in flight (throughput)' },
});
const RATIO = 0.75;
const JITTER_MS = 500;
const REG_SECRET = `reg-secret-${randomBytes(8).toString('hex')}`;
const ACTIVE = { registered: { session: 'active' } } as const;

function siweConfig(ddsUrl: string, dataDir: string): RegistrarConfig {
  return {
    ddsBaseUrl: ddsUrl,
    protocol: 'siwe',
    nodeVersion: '1.0.0',
    regSecret: REG_SECRET,
    secp256k1Privhex: randomBytes(32).toString('hex'),
    capabilities: ['/bench/v1'],
    dataDir,
    tokenSafetyRatio: RATIO,
    tokenReauthJitterMs: JITTER_MS,
  };
}

const active = (r: Registrar): Promise<unknown> => waitFor(r, (s) => s.matches(ACTIVE), { timeout: 30_000 });
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

/**
 * One lifetime: the registrar (real wiring) on a `SimulatedClock` against a
 * fake DDS that dates its tokens by that clock; `accessToken()` at random
 * moments, the clock stepped to each refresh's due time when it comes first.
 */
async function simulatedRun(cleanup: CleanupStack, lifetimeMs: number, refreshes: number) {
  const clock = new SimulatedClock();
  clock.set(Date.now());
  const expiry = new Map<string, number>();
  const signIns: number[] = [];
  const verify = () => {
    const token = randomBytes(16).toString('hex');
    const at = clock.now();
    expiry.set(token, at + lifetimeMs);
    signIns.push(at);
    return jsonAnswer({ access_token: token, access_expires_at: new Date(at + lifetimeMs).toISOString() });
  };
  const dds = await startFakeDds(cleanup, { responder: siweResponder({ verify }) });
  const r = createRegistrar(siweConfig(dds.url, tempDir(cleanup, 'posemesh-bench-')), { clock, logger: silentLogger });
  r.start();
  cleanup.after(() => r.stop());
  await active(r);
  const left: number[] = [];
  let [calls, expired] = [0, 0];
  const t0 = now();
  while (signIns.length <= refreshes) {
    const due = (signIns.at(-1) as number) + r.getSnapshot().context.session.refreshInMs;
    clock.increment(Math.max(0, Math.min(due, clock.now() + Math.random() * (lifetimeMs / 6)) - clock.now()));
    await settle();
    // Asked while a refresh may be in flight: the old token must still be good.
    const token = (await accessToken(r, { signal: AbortSignal.timeout(30_000) })).expose();
    calls++;
    const remaining = (expiry.get(token) ?? -Infinity) - clock.now();
    if (remaining > 0) left.push(remaining / lifetimeMs);
    else expired++;
    if (!r.getSnapshot().matches(ACTIVE)) await active(r);
  }
  const realMs = now() - t0;
  const intervals = signIns.slice(1).map((t, i) => t - (signIns[i] as number));
  return {
    lifetimeMs,
    refreshes: intervals.length,
    calls,
    expired,
    ratio: summarize(intervals.map((ms) => ms / lifetimeMs)),
    jitterMs: summarize(intervals.map((ms) => ms - RATIO * lifetimeMs)),
    minLeft: summarize(left).min,
    registrations: dds.requests.filter((q) => q.path.endsWith('register-wallet')).length,
    realMs,
  };
}

/** A bare nonce round trip on a fresh connection (the baseline of the re-arm): ms. */
function nonceRoundTrip(url: string, wallet: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const body = JSON.stringify({ wallet });
    const req = http.request(`${url}${SIWE_NONCE_PATH}`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      res.resume().on('end', () => (res.statusCode === 200 ? resolve(now() - t0) : reject(new Error(`nonce: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject).end(body);
  });
}

/** DDS forgets the node, a service reports 401: from `verify`'s 403 to the next nonce request at the simulator, beside a bare nonce round trip. */
async function rearmLatency(cleanup: CleanupStack, runs: number): Promise<{ ours: Summary; client: Summary; bare: Summary }> {
  const sim = await startSimulator(cleanup, { expectedRegSecret: REG_SECRET });
  const config = siweConfig(sim.url, tempDir(cleanup, 'posemesh-bench-'));
  const wallet = deriveEthAddress(loadSecp256k1Privhex(config.secp256k1Privhex));
  // The moment the statechart decides to re-arm (its registration.rearm line): the client's share is before it.
  let rearmAt = NaN;
  const logger = { ...silentLogger, warn: (f: { event?: unknown }) => void (f.event === 'registration.rearm' && (rearmAt = now())) };
  const r = createRegistrar(config, { logger });
  r.start();
  cleanup.after(() => r.stop());
  await active(r);
  const ours: number[] = [];
  const client: number[] = [];
  const bare: number[] = [];
  for (let i = -1; i < runs; i++) {
    let [forbidden, nonce] = [NaN, NaN];
    rearmAt = NaN;
    const off = sim.sim.on((e) => {
      if (e.type === 'siwe.rejected' && e.call === 'verify' && e.status === 403) forbidden = now();
      else if (e.type === 'siwe.nonce.issued' && Number.isFinite(forbidden) && Number.isNaN(nonce)) nonce = now();
    });
    const rearms = r.getSnapshot().context.rearms;
    sim.sim.forget(wallet);
    reportUnauthorized(r);
    await waitFor(r, (s) => s.context.rearms > rearms && s.matches(ACTIVE), { timeout: 30_000 });
    off();
    const base = await nonceRoundTrip(sim.url, wallet);
    // The first of each is a warm-up.
    if (i < 0) continue;
    if (!Number.isFinite(nonce - forbidden)) throw new Error('the re-arm was not seen at the simulator');
    ours.push(nonce - forbidden);
    if (Number.isFinite(rearmAt)) client.push(rearmAt - forbidden);
    bare.push(base);
  }
  return { ours: summarize(ours), client: summarize(client), bare: summarize(bare) };
}

interface Kind {
  key: string;
  name: string;
  run(worker: number): Promise<RegistrationResult | { ok: boolean }>;
}

/** Requests per second and DDS CPU per request through the simulator in a child (bench/fleet-dds.ts), `concurrency` in flight, interleaved rounds. */
async function throughput(cleanup: CleanupStack, seconds: number, concurrency: number, record: (name: string, value: unknown) => void) {
  const dds = await forkDds(cleanup);
  const url = await dds.start(REG_SECRET);
  // The nodes legacy DDS calls back: one server answering 200.
  const nodes = await listen(cleanup, http.createServer((_req, res) => res.end('{}')));
  const common = { ddsBaseUrl: url, nodeVersion: '1.0.0', regSecret: REG_SECRET, capabilities: ['/bench/v1'] };
  const workers = Array.from({ length: concurrency }, (_, w) => {
    const key = generateSecretKey();
    return {
      legacy: createRegistrationClient({ ...common, key, nodeUrl: `${nodes.url}/n${w}` }),
      siwe: createSiweRegistrationClient({ ...common, key }),
    };
  });
  const at = (w: number) => workers[w] as (typeof workers)[number];
  for (let w = 0; w < concurrency; w++) if (!(await at(w).siwe.register()).ok) throw new Error('a SIWE registration was refused');
  const kinds: Kind[] = [
    { key: 'legacy', name: 'legacy registration — baseline', run: (w) => at(w).legacy.register() },
    { key: 'siweRegistration', name: 'SIWE registration (nonce + register-wallet)', run: (w) => at(w).siwe.register() },
    { key: 'siweSignIn', name: 'SIWE sign-in (nonce + verify)', run: (w) => at(w).siwe.signIn() },
  ];
  const totals = kinds.map(() => ({ ops: 0, ms: 0, ddsCpuUs: 0, clientCpuUs: 0 }));
  for (let round = 0; round < 2; round++) {
    for (let j = 0; j < kinds.length; j++) {
      const i = (j + round) % kinds.length;
      const kind = kinds[i] as Kind;
      const before = await dds.stats();
      const [t0, cpu0] = [now(), process.cpuUsage()];
      let ops = 0;
      await Promise.all(
        workers.map(async (_, w) => {
          while (now() - t0 < seconds * 1000) {
            if (!(await kind.run(w)).ok) throw new Error(`${kind.name}: refused`);
            ops++;
          }
        }),
      );
      const total = totals[i] as (typeof totals)[number];
      total.ms += now() - t0;
      const cpu = process.cpuUsage(cpu0);
      total.clientCpuUs += cpu.user + cpu.system;
      total.ops += ops;
      total.ddsCpuUs += (await dds.stats()).cpuUs - before.cpuUs;
    }
  }
  const perSec = totals.map((t) => (t.ops / t.ms) * 1000);
  const perCpuSec = totals.map((t) => (t.ops / t.ddsCpuUs) * 1e6);
  printTable(
    `Simulator SIWE throughput over HTTP (DDS in a child, ${concurrency} in flight, 2 interleaved rounds of ${seconds} s); ratios ÷ legacy`,
    ['request', 'req/s', 'ratio', 'DDS CPU ms/req', 'per DDS CPU s', 'ratio', 'client CPU ms/req'],
    kinds.map((k, i) => {
      const [wall, cpu] = [perSec[i] as number, perCpuSec[i] as number];
      const clientMs = (totals[i] as (typeof totals)[number]).clientCpuUs / 1000 / (totals[i] as (typeof totals)[number]).ops;
      record(`throughput.${k.key}`, { reqPerSec: wall, ratioToLegacy: ratio(wall, perSec[0] as number), ddsCpuMsPerReq: 1000 / cpu, ratioToLegacyCpu: ratio(cpu, perCpuSec[0] as number), clientCpuMsPerReq: clientMs });
      return [k.name, fmt(wall, 0), fmt(ratio(wall, perSec[0] as number)), fmt(1000 / cpu), fmt(cpu, 0), fmt(ratio(cpu, perCpuSec[0] as number)), fmt(clientMs)];
    }),
  );
}

runBench('session', async (cleanup) => {
  const record = figures('session', opts.quick);
  console.log(`ratio ${RATIO}, jitter ±${JITTER_MS} ms; ${opts.refreshes} refreshes per lifetime (${opts.lifetimes.join(', ')} s), ${opts.rearms} re-arms`);
  const runs = [];
  for (const secs of opts.lifetimes) runs.push(await simulatedRun(cleanup, secs * 1000, opts.refreshes));
  printTable(
    'Simulated refreshes (SimulatedClock; accessToken() at random moments); refresh = time between sign-ins ÷ lifetime',
    ['lifetime s', 'refreshes', 'calls', 'expired handed out', 'ratio mean', 'p50', 'p99', 'jitter min ms', 'max ms', 'least left', 'registrations', 'real s'],
    runs.map((x) => {
      record(`refresh.${x.lifetimeMs / 1000}s`, x);
      const f = (n: number): string => n.toFixed(4);
      return [String(x.lifetimeMs / 1000), String(x.refreshes), String(x.calls), String(x.expired), f(x.ratio.mean), f(x.ratio.p50), f(x.ratio.p99), fmt(x.jitterMs.min, 0), fmt(x.jitterMs.max, 0), f(x.minLeft), String(x.registrations), fmt(x.realMs / 1000, 1)];
    }),
  );
  const { ours, client, bare } = await rearmLatency(cleanup, opts.rearms);
  record('rearm', { ours, client, bare, ratioP50: ratio(ours.p50, bare.p50) });
  printTable(
    `Re-arm latency (ms, real clock, ${ours.n} runs): verify's 403 → next nonce request at the simulator; baseline a bare nonce round trip`,
    ['', 'p50', 'p90', 'p99', 'max', 'ratio p50'],
    [
      ['ours: 403 → nonce request', fmt(ours.p50), fmt(ours.p90), fmt(ours.p99), fmt(ours.max), fmt(ratio(ours.p50, bare.p50))],
      ['… of which 403 → re-arm decided (registration.rearm)', fmt(client.p50), fmt(client.p90), fmt(client.p99), fmt(client.max), fmt(ratio(client.p50, bare.p50))],
      ['baseline: bare nonce round trip', fmt(bare.p50), fmt(bare.p90), fmt(bare.p99), fmt(bare.max), '1.00'],
    ],
  );
  console.log(`goal: re-arm under 20 ms — ${ours.p99 < 20 ? 'met' : 'missed'} (p99 ${fmt(ours.p99)} ms)`);
  await throughput(cleanup, opts.seconds, opts.concurrency, record);
});
