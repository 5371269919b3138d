/**
 * The fault matrix (issue 5): every DDS and disk fault, each driven through
 * a real registrar (`createRegistrar`: real HTTP to a local misbehaving DDS,
 * a real state file and lock in a temp directory, `routerDds` on a real
 * express server that DDS calls back with a node secret), then healed.
 *
 * Every case must end with the registrar `registered` and the state file
 * `registered` and parseable (DNS failure excepted: its base URL cannot be
 * healed), and prove on the way that the registrar
 * - never crashes (no `uncaughtException` / `unhandledRejection`);
 * - never spins (DDS requests during a fault phase of known length stay
 *   within what the backoff allows, and there are some: it keeps trying);
 * - never leaks (after STOP: the actor is done, the DDS sees no open
 *   connection, no more ref'd timers than before the case, give or take 2);
 * - logs the failure class (`registration.error` / `registration.conflict`,
 *   fields `class` and `status`), and disk problems once per episode;
 * - writes nothing half: every file left in the data directory parses;
 * - leaks no secret: log dumps, every snapshot (live and persisted), every
 *   failure message, the callback answers and the files are scanned for the
 *   registration secret, the private key and every node secret DDS handed out.
 *
 * Real time throughout, kept short: interval 1 s, backoff 200 ms, request
 * timeout 0.5 s. Figures (cases run, recovery time per case) go to
 * `.tmp/figures.jsonl`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { waitFor, type SnapshotFrom } from 'xstate';
import type { registrarMachine } from '../../machines/registrar.js';
import type { RegistrarConfig } from '../../src/config.js';
import { MemoryLogger, type CapturedLogLine } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import { createRegistrar, type Registrar } from '../../src/registrar.js';
import { REGISTRATION_PATH as REGISTER_PATH } from '../../src/register.js';
import {
  assertNoSecrets,
  callNodeBack,
  freePort,
  onCleanup,
  sleep,
  startFakeDds,
  startNodeServer,
  tempDir,
  waitUntil,
  type DdsAnswer,
  type DdsRequest,
  type FakeDds,
  type FakeDdsOptions,
  type NodeServer,
  type Responder,
} from '../support/index.js';
import { newCredentials, recordFigure, scaled } from './common.js';
import { activeTimeouts, canMountTmpfs, fillDisk, mountTinyTmpfs, unmount, watchCrashes } from './fault-helpers.js';

type Snapshot = SnapshotFrom<typeof registrarMachine>;

// ---------------------------------------------------------------------------
// Settings and secrets
// ---------------------------------------------------------------------------

const CREDENTIALS = newCredentials();
/** The registrar's secrets; node secrets are added as DDS hands them out (the scan tries every case and `0x` form). */
const SECRETS = new Set<string>([CREDENTIALS.regSecret, CREDENTIALS.privhex]);

/** A text to scan, and where it came from. */
interface ScannedText {
  where: string;
  text: string;
}

/** Scan `texts` (grouped by where they came from) for every secret known so far. */
function assertNoLeaks(texts: readonly ScannedText[]): void {
  const grouped: Record<string, string> = {};
  for (const { where, text } of texts) grouped[where] = grouped[where] === undefined ? text : `${grouped[where]}\n${text}`;
  assertNoSecrets(grouped, [...SECRETS]);
}

const INTERVAL_MS = 1000;
const BACKOFF_MS = 200;
const TIMEOUT_MS = 500;
const STATE_FILE = 'registration_state.json';
const LOCK_DIR = 'registration.lock';
/** Ref'd timers allowed above the case's starting count after STOP (runner and library noise). */
const TIMER_SLACK = 1;

/** Every text the whole matrix produced, for the final scan. */
const allTexts: ScannedText[] = [];
/** Per case: its name and the recovery time after healing (ms), or null when it could not heal. */
const recoveries: Array<{ name: string; recoveryMs: number | null }> = [];

// ---------------------------------------------------------------------------
// The case harness
// ---------------------------------------------------------------------------

/** One callback DDS made to the node, and the node's answer. */
interface CallbackRecord {
  secret: string;
  status: number;
  answer: string;
}

interface CaseOptions {
  /** The DDS base URL; default: the fake DDS started for the case. */
  ddsBaseUrl?: string;
  /** The fake DDS's first responder; `null`: start no DDS (the case starts its own). */
  responder?: Responder | null;
  /** Prepare the data directory before the registrar starts; returns its path (default `<tmp>/data`). */
  prepare?: (tmp: string) => string;
  /** The case heals (default true): it must end `registered`. */
  heals?: boolean;
  /** Overrides of the registrar's config. */
  config?: Partial<RegistrarConfig>;
  /** Undo what `prepare` did (after the registrar stopped, before the temp directory goes). */
  cleanup?: (tmp: string) => void;
}

interface CaseEnv {
  tmp: string;
  dataDir: string;
  logger: MemoryLogger;
  secrets: NodeSecretStore;
  actor: Registrar;
  node: NodeServer;
  /** The case's DDS, once there is one. */
  dds: FakeDds | undefined;
  /** Every fake DDS of the case (checked for open connections after STOP). */
  servers: FakeDds[];
  callbacks: CallbackRecord[];
  texts: ScannedText[];
  /** 200, after calling the node back with a fresh node secret (as DDS does). */
  healthy: (req: DdsRequest) => Promise<DdsAnswer>;
  /** Start (and track) another fake DDS. */
  startDds(options?: FakeDdsOptions): Promise<FakeDds>;
  /** Mark the moment the fault is healed. */
  healed(): void;
  healedAt: number | undefined;
  /** Set by a case whose recovery is over before its body ends (default: measured after the body). */
  recoveredAt: number | undefined;
}

function registerRequests(dds: FakeDds | undefined, from = 0, to = Infinity): DdsRequest[] {
  return (dds?.requests ?? []).filter((r) => r.path.startsWith(REGISTER_PATH) && r.receivedAt >= from && r.receivedAt <= to);
}

function events(logger: MemoryLogger, name: string, from = 0): CapturedLogLine[] {
  return logger.lines.slice(from).filter((l) => l.event === name);
}

/** Requests a retryable fault may cause in `phaseMs`: one per backoff at most, plus the first and one of slack. */
function retryableBudget(phaseMs: number): number {
  return Math.floor(phaseMs / BACKOFF_MS) + 2;
}

/** Requests a one-interval fault (409, other 4xx, 3xx) may cause in `phaseMs`. */
function intervalBudget(phaseMs: number): number {
  return Math.floor(phaseMs / INTERVAL_MS) + 2;
}

/**
 * Watch a one-interval fault for a phase: the registrar keeps trying, but
 * never faster than one request per interval. Returns the phase's requests.
 */
async function assertOneIntervalApart(dds: FakeDds | undefined, what: string): Promise<DdsRequest[]> {
  const p = await phase(scaled(2200));
  const reqs = registerRequests(dds, p.from, p.to);
  assert.ok(reqs.length >= 2, `keeps trying (${reqs.length})`);
  assert.ok(reqs.length <= intervalBudget(p.ms), `no spinning: ${reqs.length} in ${p.ms} ms`);
  for (let k = 1; k < reqs.length; k++) {
    const gap = (reqs[k]?.receivedAt ?? 0) - (reqs[k - 1]?.receivedAt ?? 0);
    assert.ok(gap >= INTERVAL_MS - 50, `one interval between ${what} (${gap} ms)`);
  }
  return reqs;
}

function readState(dataDir: string): Record<string, unknown> | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dataDir, STATE_FILE), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Nothing half-written: every file in the data directory parses as JSON (the lock and its mutex are directories). */
function assertDataDirClean(dataDir: string, ignore: readonly string[] = []): void {
  let names: string[];
  try {
    names = fs.readdirSync(dataDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (ignore.includes(name)) continue;
    const full = path.join(dataDir, name);
    const st = fs.lstatSync(full);
    if (st.isDirectory() && name === 'instances') {
      // The registrars' instance records (src/state/instances.ts): whole JSON files too.
      for (const record of fs.readdirSync(full)) {
        assert.ok(record.endsWith('.json') && !record.startsWith('.'), `unexpected file instances/${record} (a temp file left behind?)`);
        assert.doesNotThrow(() => JSON.parse(fs.readFileSync(path.join(full, record), 'utf8')), `instances/${record} does not parse`);
      }
      continue;
    }
    if (st.isDirectory()) {
      assert.ok(name === LOCK_DIR || name === `${LOCK_DIR}.mutex`, `unexpected directory ${name} in the data directory`);
      continue;
    }
    assert.ok(name.endsWith('.json'), `unexpected file ${name} in the data directory (a temp file left behind?)`);
    assert.doesNotThrow(() => JSON.parse(fs.readFileSync(full, 'utf8')), `${name} does not parse`);
  }
  const state = readState(dataDir);
  if (state !== null) assert.ok(['disconnected', 'registering', 'registered'].includes(String(state.status)), 'state file status');
}

/**
 * Run one fault case: set up, run `body` (fault phase, then heal), and check
 * the common ending: registered (when the case heals), the file, STOP, no
 * crash, no open connection, no leftover timer, no secret anywhere.
 */
async function runCase(t: TestContext, name: string, o: CaseOptions, body: (env: CaseEnv) => Promise<void>): Promise<void> {
  const timersBefore = activeTimeouts();
  // Torn down last first (test/support/cleanup.ts): the actor, the DDSes, the node, the crash watch, `o.cleanup`, the directory.
  const tmp = tempDir(t, 'pnr-fault-');
  onCleanup(t, () => o.cleanup?.(tmp));
  const crashes = watchCrashes();
  onCleanup(t, () => crashes.uninstall());
  const servers: FakeDds[] = [];

  const dataDir = o.prepare ? o.prepare(tmp) : path.join(tmp, 'data');
  const logger = new MemoryLogger();
  const secrets = new NodeSecretStore({ logger });
  const node = await startNodeServer(t);
  const callbacks: CallbackRecord[] = [];
  const texts: ScannedText[] = [];
  const nodeUrl = `${node.url}/`;
  let counter = 0;

  const healthy = async (req: DdsRequest): Promise<DdsAnswer> => {
    const b = req.body as { url?: unknown } | undefined;
    if (req.path.startsWith(REGISTER_PATH) && typeof b?.url === 'string') {
      counter += 1;
      const secret = `node-secret-${name.replace(/\W+/g, '-')}-${counter}-${randomBytes(8).toString('hex')}`;
      SECRETS.add(secret);
      try {
        const answer = await callNodeBack(b.url, { id: `node-${counter}`, secret, organization_id: 'org-faults' });
        callbacks.push({ secret, status: answer.status, answer: answer.body });
        texts.push({ where: `${name}: callback answer`, text: answer.body });
      } catch {
        callbacks.push({ secret, status: 0, answer: '' });
      }
    }
    return { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' };
  };

  const startDds = async (options: FakeDdsOptions = {}): Promise<FakeDds> => {
    const dds = await startFakeDds(t, options);
    servers.push(dds);
    return dds;
  };
  const dds = o.responder === null ? undefined : await startDds({ responder: o.responder ?? healthy });
  const ddsBaseUrl = o.ddsBaseUrl ?? dds?.url;
  assert.ok(ddsBaseUrl !== undefined, 'a case without a DDS names its base URL');

  const actor = createRegistrar(
    {
      ddsBaseUrl,
      nodeUrl,
      nodeVersion: '1.0.0',
      regSecret: CREDENTIALS.regSecret,
      secp256k1Privhex: CREDENTIALS.envPrivhex,
      capabilities: ['/reconstruction/global-refinement/v1'],
      registerIntervalSecs: INTERVAL_MS / 1000,
      requestTimeoutSecs: TIMEOUT_MS / 1000,
      dataDir,
      ...o.config,
    },
    { logger, secrets, backoffPolicy: () => BACKOFF_MS },
  );
  onCleanup(t, async () => {
    if (actor.getSnapshot().status !== 'active') return;
    actor.send({ type: 'STOP' });
    await waitFor(actor, (s) => s.status !== 'active', { timeout: 5000 }).catch(() => undefined);
  });
  const env: CaseEnv = {
    tmp,
    dataDir,
    logger,
    secrets,
    actor,
    node,
    dds,
    servers,
    callbacks,
    texts,
    healthy,
    startDds,
    healed() {
      env.healedAt = Date.now();
    },
    healedAt: undefined,
    recoveredAt: undefined,
  };
  node.attach(actor);
  actor.subscribe({
    next: (s: Snapshot) => {
      texts.push({ where: `${name}: snapshot`, text: JSON.stringify(s) });
      const f = s.context.lastFailure;
      if (f !== null) texts.push({ where: `${name}: failure message`, text: f.message });
      if (s.context.error !== null) texts.push({ where: `${name}: error`, text: JSON.stringify(s.context.error) });
    },
    error: (err: unknown) => {
      texts.push({ where: `${name}: actor error`, text: String(err) });
    },
  });
  actor.start();

  await body(env);

  const heals = o.heals !== false;
  let recoveryMs: number | null = null;
  if (heals) {
    const healedAt = env.healedAt ?? Date.now();
    const done = (): boolean => {
      const s = actor.getSnapshot();
      const state = readState(dataDir);
      return (
        s.matches('registered') &&
        state?.status === 'registered' &&
        typeof state.last_healthcheck_ms === 'number' &&
        state.last_healthcheck_ms >= healedAt
      );
    };
    await waitUntil(done, `${name}: registered (actor and state file) after healing`, 15_000);
    recoveryMs = (env.recoveredAt ?? Date.now()) - healedAt;
    recoveries.push({ name, recoveryMs });
    recordFigure(`faults.recovery_ms.${name}`, recoveryMs);
    // The node secret DDS handed out in the healed registration reached the node's store.
    const accepted = callbacks.filter((c) => c.status === 200);
    assert.ok(accepted.length > 0, `${name}: a node secret was handed out and accepted (${callbacks.map((c) => c.status).join(',')})`);
  } else {
    recoveries.push({ name, recoveryMs: null });
  }

  // STOP: the actor ends, nothing stays open.
  const stopFrom = logger.lines.length;
  if (actor.getSnapshot().status === 'active') actor.send({ type: 'STOP' });
  const final = await waitFor(actor, (s) => s.status === 'done', { timeout: 10_000 });
  assert.equal(final.value, 'stopped', `${name}: ended in stopped`);
  assert.equal(events(logger, 'registration.loop.stop_error', stopFrom).length, 0, `${name}: stopped without error`);
  for (const s of servers) {
    await waitUntil(() => s.openConnections === 0, `${name}: no open connection to ${s.url} after STOP`, 3000);
  }
  await sleep(200);
  const timersAfter = activeTimeouts();
  assert.ok(
    timersAfter <= timersBefore + TIMER_SLACK,
    `${name}: ${timersAfter} ref'd timers after STOP, ${timersBefore} before the case`,
  );
  assertDataDirClean(dataDir);
  assert.equal(fs.existsSync(path.join(dataDir, LOCK_DIR)), false, `${name}: the lock is released after STOP`);
  assert.deepEqual(crashes.caught, [], `${name}: the process did not crash`);

  if (heals) {
    const accepted = callbacks.filter((c) => c.status === 200);
    const last = accepted.at(-1);
    if (last !== undefined) assert.equal(secrets.read(), last.secret, `${name}: the node holds the last secret DDS handed out`);
  }

  texts.push({ where: `${name}: log`, text: logger.dump() });
  texts.push({ where: `${name}: final snapshot`, text: JSON.stringify(actor.getSnapshot()) });
  texts.push({ where: `${name}: persisted snapshot`, text: JSON.stringify(actor.getPersistedSnapshot()) });
  texts.push({ where: `${name}: node store`, text: JSON.stringify(secrets) });
  const stateText = fs.existsSync(path.join(dataDir, STATE_FILE)) ? fs.readFileSync(path.join(dataDir, STATE_FILE), 'utf8') : '';
  texts.push({ where: `${name}: state file`, text: stateText });
  allTexts.push(...texts);
  assertNoLeaks(texts);
}

/** Wait `ms` of fault phase and return its window. */
async function phase(ms: number): Promise<{ from: number; to: number; ms: number }> {
  const from = Date.now();
  await sleep(ms);
  const to = Date.now();
  return { from, to, ms: to - from };
}

/** The `registration.error` / `registration.conflict` lines of a fault phase. */
function failureLines(logger: MemoryLogger, event = 'registration.error'): CapturedLogLine[] {
  return events(logger, event);
}

function assertRetryableLines(logger: MemoryLogger, what: string, status: number | null, message: RegExp): void {
  const lines = failureLines(logger);
  assert.ok(lines.length > 0, `${what}: registration.error logged`);
  for (const l of lines) {
    assert.equal(l.class, 'retryable', `${what}: class`);
    if (status === null) assert.equal(l.status, null, `${what}: no status`);
    assert.match(String(l.error), message, `${what}: message`);
  }
}

const PHASE_MS = scaled(1500);

/** Disk problems are logged once per episode (or rate-limited): at most `max` lines of each since line `from`. */
function assertDiskLogsBounded(logger: MemoryLogger, from = 0, max = 2): void {
  for (const name of ['state.write.error', 'state.read.error', 'lock.error', 'status.transition.error', 'healthcheck.touch.error']) {
    const n = events(logger, name, from).length;
    assert.ok(n <= max, `${name} logged ${n} times in one episode`);
  }
}

// ---------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------

describe('fault matrix: DDS faults', () => {
  it('connection refused, then a DDS appears on that port', async (t) => {
    const port = await freePort();
    await runCase(t, 'refused', { responder: null, ddsBaseUrl: `http://127.0.0.1:${port}` }, async (env) => {
      const p = await phase(PHASE_MS);
      const attempts = events(env.logger, 'registration.attempt').length;
      assert.ok(attempts >= 2, `keeps trying (${attempts} attempts)`);
      assert.ok(attempts <= retryableBudget(p.ms), `no spinning: ${attempts} attempts in ${p.ms} ms`);
      assertRetryableLines(env.logger, 'refused', null, /^POST http:\/\/127\.0\.0\.1:\d+\/internal\/v1\/nodes\/register failed: .*ECONNREFUSED/);
      env.dds = await env.startDds({ port, responder: env.healthy });
      env.healed();
    });
  });

  it('DNS failure: backs off as retryable with a sane message, never crashes, stops cleanly', async (t) => {
    await runCase(t, 'dns', { responder: null, ddsBaseUrl: 'http://nonexistent.invalid:1', heals: false }, async (env) => {
      const p = await phase(PHASE_MS);
      const attempts = events(env.logger, 'registration.attempt').length;
      assert.ok(attempts >= 2, `keeps trying (${attempts} attempts)`);
      assert.ok(attempts <= retryableBudget(p.ms), `no spinning: ${attempts} attempts in ${p.ms} ms`);
      assertRetryableLines(
        env.logger,
        'dns',
        null,
        /^POST http:\/\/nonexistent\.invalid:1\/internal\/v1\/nodes\/register failed: (getaddrinfo (ENOTFOUND|EAI_AGAIN) nonexistent\.invalid|timeout after 500 ms)$/,
      );
      const s = env.actor.getSnapshot();
      assert.equal(s.status, 'active');
      assert.ok(!s.matches('failed') && !s.matches('registered'), `still trying: ${JSON.stringify(s.value)}`);
      assert.equal(readState(env.dataDir)?.status, 'registering', 'the state file says registering');
    });
  });

  it('a hang past the timeout', async (t) => {
    await runCase(t, 'hang', { responder: () => 'hang' }, async (env) => {
      const p = await phase(scaled(2000));
      const reqs = registerRequests(env.dds, p.from, p.to);
      assert.ok(reqs.length >= 2, `keeps trying (${reqs.length})`);
      assert.ok(reqs.length <= Math.floor(p.ms / (TIMEOUT_MS + BACKOFF_MS)) + 2, `no spinning: ${reqs.length} in ${p.ms} ms`);
      assert.ok((env.dds?.openConnections ?? 0) <= 2, 'hung connections do not pile up');
      // Every hung request the registrar gave up on was closed by it, about at the timeout.
      for (const r of reqs.slice(0, -1)) {
        assert.ok(r.finishedAt !== undefined, 'the client closed the hung request');
        assert.ok(r.finishedAt - r.receivedAt <= TIMEOUT_MS + 1000, `closed after ${r.finishedAt - r.receivedAt} ms`);
      }
      assertRetryableLines(env.logger, 'hang', null, /failed: timeout after 500 ms$/);
      env.dds?.setResponder(env.healthy);
      env.healed();
    });
  });

  it('STOP while a request hangs: the request is aborted at once, not at its timeout', async (t) => {
    await runCase(t, 'stop-mid-hang', { responder: () => 'hang', heals: false, config: { requestTimeoutSecs: 30 } }, async (env) => {
      await env.dds?.waitForRequests(1);
      await sleep(100);
      assert.ok(env.actor.getSnapshot().matches('registering'), 'the request is in flight');
      assert.equal(env.dds?.openConnections, 1);
      const stoppedAt = Date.now();
      env.actor.send({ type: 'STOP' });
      await waitFor(env.actor, (s) => s.status === 'done', { timeout: 5000 });
      await waitUntil(() => env.dds?.openConnections === 0, 'the hung connection closed', 5000);
      const closedAfter = Date.now() - stoppedAt;
      assert.ok(closedAfter < 2000, `closed ${closedAfter} ms after STOP (the request timeout is 30 s)`);
      assert.equal(readState(env.dataDir)?.status, 'disconnected', 'disconnected persisted on STOP');
      assert.equal(env.dds?.requests.length, 1, 'no request after STOP');
    });
  });

  it('a slow body: headers at once, the body trickles past the timeout', async (t) => {
    const trickle: Responder = () => ({
      status: 503,
      headers: { 'content-type': 'text/plain' },
      trickle: { chunk: 'slow ', everyMs: 50, forMs: 5000 },
    });
    await runCase(t, 'slow-body', { responder: trickle }, async (env) => {
      const p = await phase(scaled(2000));
      const reqs = registerRequests(env.dds, p.from, p.to);
      assert.ok(reqs.length >= 2, `keeps trying (${reqs.length})`);
      assert.ok(reqs.length <= Math.floor(p.ms / (BACKOFF_MS + 50)) + 2, `no spinning: ${reqs.length} in ${p.ms} ms`);
      for (const r of reqs.slice(0, -1)) {
        assert.ok(r.finishedAt !== undefined, 'the client closed the trickling answer');
        assert.ok(r.finishedAt - r.receivedAt <= TIMEOUT_MS + 1000, `closed after ${r.finishedAt - r.receivedAt} ms`);
      }
      const lines = failureLines(env.logger);
      assert.ok(lines.length > 0);
      for (const l of lines) {
        assert.equal(l.class, 'retryable');
        assert.equal(l.status, 503);
        assert.match(String(l.error), /^registration failed: status 503, endpoint http:\/\/127\.0\.0\.1:\d+\/internal\/v1\/nodes\/register, body_snippet: (slow )*/);
      }
      env.dds?.setResponder(env.healthy);
      env.healed();
    });
  });

  it('5xx (echoing the request body, secret included)', async (t) => {
    const statuses = [500, 502, 503, 504];
    let i = 0;
    const fault: Responder = (req) => ({ status: statuses[i++ % statuses.length] ?? 500, body: `upstream broke on: ${req.rawBody}` });
    await runCase(t, '5xx', { responder: fault }, async (env) => {
      const p = await phase(PHASE_MS);
      const reqs = registerRequests(env.dds, p.from, p.to);
      assert.ok(reqs.length >= 2, `keeps trying (${reqs.length})`);
      assert.ok(reqs.length <= retryableBudget(p.ms), `no spinning: ${reqs.length} in ${p.ms} ms`);
      const lines = failureLines(env.logger);
      assert.ok(lines.length > 0);
      for (const l of lines) {
        assert.equal(l.class, 'retryable');
        assert.ok(statuses.includes(Number(l.status)), `status ${String(l.status)}`);
        assert.match(String(l.error), /body_snippet: upstream broke on: \{.*\[redacted\]/);
      }
      env.dds?.setResponder(env.healthy);
      env.healed();
    });
  });

  it('429 with Retry-After: the wait honours it', async (t) => {
    await runCase(t, '429', { responder: () => ({ status: 429, headers: { 'retry-after': '2' }, body: 'slow down' }) }, async (env) => {
      await env.dds?.waitForRequests(2, 10_000);
      const [first, second] = registerRequests(env.dds);
      assert.ok(first !== undefined && second !== undefined);
      const gap = second.receivedAt - (first.finishedAt ?? first.receivedAt);
      assert.ok(gap >= 1900, `waited ${gap} ms after a Retry-After of 2 s (backoff alone is ${BACKOFF_MS} ms)`);
      const lines = failureLines(env.logger);
      assert.ok(lines.length > 0);
      for (const l of lines) {
        assert.equal(l.class, 'retryable');
        assert.equal(l.status, 429);
        assert.equal(l.retry_after_ms, 2000);
      }
      const scheduled = events(env.logger, 'registration.retry_scheduled');
      assert.ok(scheduled.length > 0 && scheduled.every((l) => l.wait_ms === 2000), 'retry scheduled after the Retry-After');
      // Healed right after the second 429: the registrar still waits out its Retry-After.
      const secondAnsweredAt = second.finishedAt ?? second.receivedAt;
      env.dds?.setResponder(env.healthy);
      env.healed();
      await waitFor(env.actor, (s) => s.matches('registered'), { timeout: 10_000 });
      const third = registerRequests(env.dds)[2];
      assert.ok(third !== undefined);
      assert.ok(third.receivedAt - secondAnsweredAt >= 1900, `the healed request also waited out Retry-After (${third.receivedAt - secondAnsweredAt} ms)`);
    });
  });

  it('409: one interval between attempts, logged as a conflict', async (t) => {
    await runCase(t, '409', { responder: () => ({ status: 409, body: 'a node with this identity is online' }) }, async (env) => {
      const reqs = await assertOneIntervalApart(env.dds, 'conflicts');
      const lines = failureLines(env.logger, 'registration.conflict');
      assert.ok(lines.length >= 1, 'registration.conflict logged');
      assert.ok(lines.length <= 2, `rate-limited (${lines.length} lines for ${reqs.length} conflicts)`);
      for (const l of lines) {
        assert.equal(l.class, 'conflict');
        assert.equal(l.status, 409);
      }
      assert.equal(failureLines(env.logger).length, 0, 'a conflict is not logged as an error');
      env.dds?.setResponder(env.healthy);
      env.healed();
    });
  });

  it('4xx: one interval between attempts', async (t) => {
    const statuses = [400, 403, 404, 422];
    let i = 0;
    await runCase(t, '4xx', { responder: () => ({ status: statuses[i++ % statuses.length] ?? 400, body: 'no' }) }, async (env) => {
      await assertOneIntervalApart(env.dds, '4xx');
      const lines = failureLines(env.logger);
      assert.ok(lines.length >= 1);
      for (const l of lines) {
        assert.equal(l.class, 'slow');
        assert.ok(statuses.includes(Number(l.status)), `status ${String(l.status)}`);
      }
      env.dds?.setResponder(env.healthy);
      env.healed();
    });
  });

  it('3xx to another origin: never followed, the other origin receives nothing', async (t) => {
    const statuses = [307, 308, 302, 301];
    let i = 0;
    await runCase(t, '3xx', { responder: () => ({ status: 500 }) }, async (env) => {
      const other = await env.startDds({});
      env.dds?.setResponder(() => ({
        status: statuses[i++ % statuses.length] ?? 307,
        headers: { location: `${other.url}${REGISTER_PATH}` },
        body: 'moved',
      }));
      const p = await phase(scaled(2200));
      const reqs = registerRequests(env.dds, p.from, p.to);
      assert.ok(reqs.length >= 2, `keeps trying (${reqs.length})`);
      assert.ok(reqs.length <= intervalBudget(p.ms), `no spinning: ${reqs.length} in ${p.ms} ms`);
      assert.equal(other.requests.length, 0, 'the other origin received no request');
      assert.equal(other.acceptedConnections, 0, 'nor a connection');
      const lines = failureLines(env.logger).filter((l) => l.status !== 500);
      assert.ok(lines.length >= 1, 'the redirects were logged');
      for (const l of lines) {
        assert.equal(l.class, 'slow');
        assert.ok(statuses.includes(Number(l.status)), `status ${String(l.status)}`);
      }
      env.dds?.setResponder(env.healthy);
      env.healed();
      await waitFor(env.actor, (s) => s.matches('registered'), { timeout: 10_000 });
      assert.equal(other.requests.length, 0, 'still nothing at the other origin');
    });
  });

  it('a 200 with a garbage body is a success', async (t) => {
    const garbage = randomBytes(256 * 1024);
    const calledBack: { healthy?: CaseEnv['healthy'] } = {};
    let n = 0;
    // Every answer is 200 with 256 KiB of garbage; every other one also calls the node back first.
    const responder: Responder = async (req) => {
      n += 1;
      if (n % 2 === 1) await calledBack.healthy?.(req);
      return { status: 200, headers: { 'content-type': 'application/json' }, body: garbage };
    };
    await runCase(t, 'garbage-200', { responder }, async (env) => {
      calledBack.healthy = env.healthy;
      env.healed();
      await waitFor(env.actor, (s) => s.matches('registered'), { timeout: 10_000 });
      env.recoveredAt = Date.now();
      await waitFor(env.actor, (s) => s.context.registrations >= 2, { timeout: 10_000 });
      assert.equal(failureLines(env.logger).length, 0, 'no registration.error');
      assert.ok(events(env.logger, 'registration.success').length >= 2);
    });
  });

  it('a connection reset', async (t) => {
    await runCase(t, 'reset', { responder: () => 'destroy' }, async (env) => {
      const p = await phase(PHASE_MS);
      const reqs = registerRequests(env.dds, p.from, p.to);
      assert.ok(reqs.length >= 2, `keeps trying (${reqs.length})`);
      assert.ok(reqs.length <= retryableBudget(p.ms), `no spinning: ${reqs.length} in ${p.ms} ms`);
      assertRetryableLines(env.logger, 'reset', null, /failed: .*(ECONNRESET|socket hang up|connection reset)/);
      env.dds?.setResponder(env.healthy);
      env.healed();
    });
  });

  it('a malformed answer: not HTTP at all, or headers past the parser limit', async (t) => {
    const answers = [
      { raw: randomBytes(512) },
      { raw: `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(128 * 1024)}\r\n\r\n{}` },
    ];
    let i = 0;
    await runCase(t, 'malformed', { responder: () => answers[i++ % answers.length] ?? 'destroy' }, async (env) => {
      const p = await phase(PHASE_MS);
      const reqs = registerRequests(env.dds, p.from, p.to);
      assert.ok(reqs.length >= 2, `keeps trying (${reqs.length})`);
      assert.ok(reqs.length <= retryableBudget(p.ms), `no spinning: ${reqs.length} in ${p.ms} ms`);
      assert.equal(events(env.logger, 'registration.success').length, 0, 'a 200 behind oversized headers is not a success');
      assertRetryableLines(env.logger, 'malformed', null, /^POST http:\/\/127\.0\.0\.1:\d+\/internal\/v1\/nodes\/register failed: /);
      env.dds?.setResponder(env.healthy);
      env.healed();
    });
  });
});

describe('fault matrix: disk faults', () => {
  it('data directory unwritable (its parent is a regular file), then usable', async (t) => {
    const prepare = (tmp: string): string => {
      fs.writeFileSync(path.join(tmp, 'blocker'), 'not a directory');
      return path.join(tmp, 'blocker', 'data');
    };
    await runCase(t, 'datadir-unwritable', { prepare }, async (env) => {
      await waitFor(env.actor, (s) => s.context.registrations >= 3, { timeout: 10_000 });
      // Kept registering from memory: DDS got them, the actor got to registered.
      assert.ok(registerRequests(env.dds).length >= 3);
      assert.equal(readState(env.dataDir), null, 'no state file could be written');
      const writeErrors = events(env.logger, 'state.write.error');
      assert.ok(writeErrors.length >= 1 && writeErrors.length <= 2, `state.write.error once per episode (${writeErrors.length})`);
      const lockErrors = events(env.logger, 'lock.error');
      assert.ok(lockErrors.length >= 1 && lockErrors.length <= 2, `lock.error not per attempt (${lockErrors.length})`);
      assertDiskLogsBounded(env.logger);
      fs.rmSync(path.join(env.tmp, 'blocker'));
      fs.mkdirSync(env.dataDir, { recursive: true });
      env.healed();
      await waitUntil(() => events(env.logger, 'state.write.recovered').length > 0, 'state.write.recovered');
    });
  });

  it('the state file replaced by a directory, then removed', async (t) => {
    await runCase(t, 'statefile-is-dir', {}, async (env) => {
      await waitFor(env.actor, (s) => s.matches('registered'), { timeout: 10_000 });
      const statePath = path.join(env.dataDir, STATE_FILE);
      fs.rmSync(statePath);
      fs.mkdirSync(statePath);
      fs.writeFileSync(path.join(statePath, 'inside'), 'x');
      const before = env.actor.getSnapshot().context.registrations;
      await waitFor(env.actor, (s) => s.context.registrations >= before + 2, { timeout: 10_000 });
      const readErrors = events(env.logger, 'state.read.error');
      const writeErrors = events(env.logger, 'state.write.error');
      assert.ok(writeErrors.length >= 1 && writeErrors.length <= 2, `state.write.error once per episode (${writeErrors.length})`);
      assert.ok(readErrors.length <= 2, `state.read.error once per episode (${readErrors.length})`);
      assertDiskLogsBounded(env.logger);
      fs.rmSync(statePath, { recursive: true });
      env.healed();
    });
  });

  it('a corrupt state file (garbage bytes), at start and while running', async (t) => {
    const prepare = (tmp: string): string => {
      const dir = path.join(tmp, 'data');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, STATE_FILE), Buffer.concat([Buffer.from('{"status":"regis'), randomBytes(64)]));
      return dir;
    };
    await runCase(t, 'statefile-corrupt', { prepare }, async (env) => {
      await waitUntil(() => readState(env.dataDir)?.status === 'registered', 'the garbage file rewritten as registered');
      assert.ok(events(env.logger, 'status.unknown').length >= 1, 'status.unknown logged');
      fs.writeFileSync(path.join(env.dataDir, STATE_FILE), randomBytes(100));
      env.healed();
      const before = env.actor.getSnapshot().context.registrations;
      await waitFor(env.actor, (s) => s.context.registrations > before, { timeout: 10_000 });
      const unknown = events(env.logger, 'status.unknown');
      assert.ok(unknown.length >= 1 && unknown.length <= 4, `status.unknown once per episode (${unknown.length})`);
    });
  });

  it('the lock path cannot be created (a regular file in its place), then can', async (t) => {
    const prepare = (tmp: string): string => {
      const dir = path.join(tmp, 'data');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, LOCK_DIR), 'in the way');
      return dir;
    };
    await runCase(t, 'lock-uncreatable', { prepare }, async (env) => {
      await waitFor(env.actor, (s) => s.context.registrations >= 3, { timeout: 10_000 });
      assert.ok(registerRequests(env.dds).length >= 3, 'kept registering unlocked');
      assert.equal(readState(env.dataDir)?.status, 'registered', 'the state file is still written');
      const lockErrors = events(env.logger, 'lock.error');
      assert.ok(lockErrors.length >= 1 && lockErrors.length <= 2, `lock.error not per attempt (${lockErrors.length})`);
      assert.equal(events(env.logger, 'lock.acquired').length, 0);
      assertDiskLogsBounded(env.logger);
      fs.rmSync(path.join(env.dataDir, LOCK_DIR));
      env.healed();
      await waitUntil(() => events(env.logger, 'lock.acquired').length > 0, 'the lock acquired again');
    });
  });

  it('a full data directory (a tiny tmpfs filled up while running), then space again', async (t) => {
    if (!canMountTmpfs()) {
      t.skip('mounting a tmpfs is not permitted here');
      return;
    }
    const prepare = (tmp: string): string => {
      const dir = path.join(tmp, 'mnt');
      fs.mkdirSync(dir);
      assert.ok(mountTinyTmpfs(dir, 64), 'mounted a 64 KiB tmpfs');
      return dir;
    };
    await runCase(t, 'disk-full', { prepare, cleanup: (tmp) => unmount(path.join(tmp, 'mnt')) }, async (env) => {
      // Fill it once the first registration is written and the lock (and its holder file) let go:
      // from then on no write of this process can find a free block.
      // The holder file goes after the lock dir: filled before it went, its block would free up for the next attempt's lock.
      const released = (name: string): boolean => !fs.existsSync(path.join(env.dataDir, name));
      await waitUntil(
        () => readState(env.dataDir)?.status === 'registered' && released(LOCK_DIR) && released(`${LOCK_DIR}.holder.json`) && released(`${LOCK_DIR}.mutex`),
        'first registration written and the lock released',
      );
      assert.ok(fillDisk(env.dataDir) > 0);
      const from = env.logger.lines.length;
      const before = env.actor.getSnapshot().context.registrations;
      await waitFor(env.actor, (s) => s.context.registrations >= before + 2, { timeout: 10_000 });
      // Kept registering from memory, unlocked.
      const writeErrors = events(env.logger, 'state.write.error', from);
      assert.ok(writeErrors.length >= 1 && writeErrors.length <= 2, `state.write.error once per episode (${writeErrors.length})`);
      assert.ok(writeErrors.every((l) => l.code === 'ENOSPC'), 'ENOSPC');
      assert.equal(events(env.logger, 'state.write.recovered', from).length, 0, 'no write got through while full');
      const lockErrors = events(env.logger, 'lock.error', from);
      assert.ok(lockErrors.length >= 1 && lockErrors.length <= 2, `lock.error not per attempt (${lockErrors.length})`);
      // Nothing half-written while full: the last good file still parses, no temp file is left.
      assert.equal(readState(env.dataDir)?.status, 'registered', 'the last good state file is intact');
      assertDataDirClean(env.dataDir, ['filler']);
      assertDiskLogsBounded(env.logger, from);
      fs.rmSync(path.join(env.dataDir, 'filler'));
      env.healed();
      await waitUntil(() => events(env.logger, 'state.write.recovered').length > 0, 'state.write.recovered');
    });
  });

  it(
    'the lock mutex path blocked by a regular file: registers unlocked at once',
    async (t) => {
      const prepare = (tmp: string): string => {
        const dir = path.join(tmp, 'data');
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, `${LOCK_DIR}.mutex`), 'in the way');
        return dir;
      };
      await runCase(t, 'mutex-blocked', { prepare }, async (env) => {
        // Like a regular file at the lock path: a disk problem, registered unlocked within a moment.
        await waitFor(env.actor, (s) => s.matches('registered'), { timeout: 3000 });
        assert.equal(events(env.logger, 'lock.busy').length, 0, 'not mistaken for a busy lock');
        fs.rmSync(path.join(env.dataDir, `${LOCK_DIR}.mutex`));
        env.healed();
      });
    },
  );
});

describe('fault matrix: totals', () => {
  after(() => {
    recordFigure('faults.cases', recoveries.length);
  });

  it('no secret anywhere in what the whole matrix produced', () => {
    assert.ok(allTexts.length > 0, 'the matrix produced texts to scan');
    assertNoLeaks(allTexts);
    // Node secrets were handed out (and so were part of the scan).
    assert.ok(SECRETS.size > 2, 'DDS handed out node secrets');
  });
});
