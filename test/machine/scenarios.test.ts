/**
 * Scenario tests of the registrar: the XState actor from `createRegistrar`,
 * wired to its real effects — a real local DDS (test/support's fake DDS), a
 * real state file and lock in a temp directory, `routerDds` on a real
 * express server.
 *
 * Where delays must be checked exactly, a `SimulatedClock` drives the
 * statechart (its `now()` is then also the effects' wall clock): time moves
 * only by `clock.increment`, while HTTP and file I/O stay real. Elsewhere the
 * intervals are short and real (1–2 s).
 *
 * Every log dump, snapshot, inspection event and HTTP answer the scenarios
 * produce is recorded, and the last test scans them all for the secrets.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadSecp256k1Privhex, secp256k1PubkeyUncompressedHex, verifyRecoverableKeccakHex } from '../../src/crypto.js';
import type { RegistrarConfig } from '../../src/config.js';
import { MemoryLogger } from '../../src/log.js';
import { RegistrarFailedError, registrarDone, runRegistrationLoop } from '../../src/loop.js';
import { NodeSecretStore } from '../../src/persist.js';
import { RegistrationLock } from '../../src/state/index.js';
import { okResponder, onCleanup, tempDir, waitUntil, type Responder } from '../support/index.js';
import {
  PRIVATE_KEY_HEX,
  REG_SECRET,
  advance,
  leakScan,
  lockDirPath,
  nodeSecret,
  readStateFile,
  safeJson,
  scenarioConfig,
  simulatedClock,
  startDds,
  startNodeServer,
  startRegistrar,
  waitForSnapshot,
  type ScenarioRegistrar,
} from './scenario-helpers.js';

const WIRE_KEYS = ['url', 'version', 'registration_credentials', 'signature', 'timestamp', 'public_key', 'capabilities'];

/** The top-level state names a registrar went through, consecutive repeats dropped. */
function topStates(r: ScenarioRegistrar): string[] {
  const out: string[] = [];
  for (const v of r.values) {
    const value = JSON.parse(v) as unknown;
    const top = typeof value === 'string' ? value : Object.keys(value as object)[0] ?? '';
    if (out.at(-1) !== top) out.push(top);
  }
  return out;
}

/** A scenario on a SimulatedClock, jitter at its middle: a DDS answering with `responder`, a registrar with `config`. */
async function onSimulatedClock(t: TestContext, responder: Responder, config: Partial<RegistrarConfig>) {
  const clock = simulatedClock();
  const dds = await startDds(t, responder);
  const dataDir = tempDir(t);
  const r = startRegistrar(t, { dds, dataDir, config, options: { clock, random: () => 0.5 } });
  return { clock, dds, dataDir, r };
}

/** Wait until the registrar no longer holds the lock and the lock directory is gone. */
async function lockReleased(r: ScenarioRegistrar, dataDir: string): Promise<void> {
  // A release removes the directory, then the holder file (in that order: docs/reliability.md).
  await waitUntil(
    () => r.resources.lock?.held === false && !fs.existsSync(lockDirPath(dataDir)) && !fs.existsSync(`${lockDirPath(dataDir)}.holder.json`),
    'the lock to be released',
  );
}

describe('registrar scenarios (real DDS, real state file and lock)', () => {
  it('1. first registration: starting → acquiringLock → registering → registered, the PROTOCOL body, state file, lock released', async (t) => {
    const dds = await startDds(t);
    const dataDir = tempDir(t);
    const startedAt = Date.now();
    const r = startRegistrar(t, { dds, dataDir });

    const s = await waitForSnapshot(r.actor, (x) => x.matches('registered'));
    assert.deepEqual(r.values, [
      '"starting"',
      '{"acquiringLock":"trying"}',
      '{"acquiringLock":"checkingSiblings"}',
      '"registering"',
      '{"registered":{"health":"fresh","callbackWindow":"open","session":"off"}}',
    ]);
    assert.equal(s.context.requests, 1);
    assert.equal(s.context.registrations, 1);
    assert.equal(s.context.attempt, 0);
    assert.equal(s.context.lastFailure, null);

    // Exactly one request, with exactly the PROTOCOL body.
    const [req] = await dds.waitForRequests(1);
    assert.ok(req);
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/internal/v1/nodes/register', 'the trailing slash of the DDS base URL is dropped');
    assert.match(String(req.headers['content-type']), /^application\/json\b/);
    const body = JSON.parse(req.rawBody) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), WIRE_KEYS, 'keys in the PROTOCOL order');
    const config = scenarioConfig(dds, dataDir);
    assert.equal(body.url, config.nodeUrl, 'the node URL exactly as configured');
    assert.equal(body.version, '1.2.3');
    assert.equal(body.registration_credentials, REG_SECRET);
    assert.deepEqual(body.capabilities, config.capabilities);
    const publicKey = secp256k1PubkeyUncompressedHex(loadSecp256k1Privhex(PRIVATE_KEY_HEX));
    assert.equal(body.public_key, publicKey);
    assert.match(String(body.public_key), /^04[0-9a-f]{128}$/);
    const timestamp = String(body.timestamp);
    assert.match(timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/);
    const signedAt = Date.parse(`${timestamp.slice(0, 23)}Z`);
    assert.ok(signedAt >= startedAt - 1000 && signedAt <= Date.now() + 1000, 'signed now');
    const signature = String(body.signature);
    assert.match(signature, /^[0-9a-f]{128}0[01]$/, 'r‖s‖v with v = 0 or 1 last');
    assert.ok(verifyRecoverableKeccakHex(signature, `${config.nodeUrl}${timestamp}`, publicKey), 'the signature verifies');
    assert.ok(!verifyRecoverableKeccakHex(signature, `${config.nodeUrl}${timestamp}x`, publicKey), 'and only for url + timestamp');

    // The state file says registered, with a health check of now.
    const file = readStateFile(dataDir);
    assert.ok(file);
    assert.equal(file.status, 'registered');
    assert.equal(typeof file.last_healthcheck, 'number');
    const hc = file.last_healthcheck as number;
    assert.ok(Number.isInteger(hc) && hc >= Math.floor(startedAt / 1000) && hc <= Math.ceil(Date.now() / 1000));

    // The lock was released after the success.
    await lockReleased(r, dataDir);
    assert.ok(!fs.existsSync(`${lockDirPath(dataDir)}.holder.json`), 'the holder file is gone too');

    // The log tells the story.
    assert.equal(r.logger.events('registration.loop.start').length, 1);
    assert.equal(r.logger.events('lock.acquired').length, 1);
    assert.equal(r.logger.events('registration.success').length, 1);
    assert.deepEqual(
      r.logger.events('status.transition').map((l) => [l.from, l.to]),
      [
        ['disconnected', 'registering'],
        ['registering', 'registered'],
      ],
    );
    assert.deepEqual(r.fileStatuses, ['missing', 'registering', 'registered']);

    await sleep(200);
    assert.equal(dds.requests.length, 1, 'no second request');
  });

  it('2. DDS probes through routerDds keep it registered: no re-registration over ~3 intervals', async (t) => {
    const dds = await startDds(t);
    const dataDir = tempDir(t);
    const r = startRegistrar(t, { dds, dataDir, config: { registerIntervalSecs: 1.5 } });
    const node = await startNodeServer(t, r.actor);
    await waitForSnapshot(r.actor, (x) => x.matches('registered'));

    const until = Date.now() + 3 * 1500 + 300;
    let probes = 0;
    while (Date.now() < until) {
      const answer = await node.probe('DDS v1.0.0');
      assert.deepEqual(answer, { status: 200, body: '' });
      probes += 1;
      await sleep(250);
    }

    const s = r.actor.getSnapshot();
    assert.ok(s.matches({ registered: { health: 'fresh' } }), `still registered, got ${JSON.stringify(s.value)}`);
    assert.equal(dds.requests.length, 1, 'no re-registration');
    assert.equal(s.context.registrations, 1);
    assert.equal(s.context.probes, probes, 'every probe reached the actor');
    assert.equal(r.logger.events('healthcheck.expired').length, 0);
    assert.ok(r.logger.events('healthcheck.touch').filter((l) => l.source === 'probe').length >= probes);
    const file = readStateFile(dataDir);
    assert.equal(file?.status, 'registered');
    assert.ok(Date.now() - Number(file?.last_healthcheck_ms) < 1500, 'the probes are recorded in the state file');
    assert.deepEqual(r.fileStatuses, ['missing', 'registering', 'registered']);
  });

  it('3. stale health check → re-registration after one interval (probes from others do not count)', async (t) => {
    const dds = await startDds(t);
    const dataDir = tempDir(t);
    const r = startRegistrar(t, { dds, dataDir, config: { registerIntervalSecs: 1 } });
    const node = await startNodeServer(t, r.actor);
    await waitForSnapshot(r.actor, (x) => x.matches('registered'));

    // Not DDS: answered 200, changes nothing.
    assert.equal((await node.probe('curl/8.5.0')).status, 200);
    assert.equal((await node.probe('dds v1.0.0')).status, 200);

    const [first, second] = await dds.waitForRequests(2, 10_000);
    const s = await waitForSnapshot(r.actor, (x) => x.matches('registered') && x.context.registrations === 2);
    await r.stop();

    assert.ok(first && second);
    assert.ok(second.receivedAt - (first.finishedAt ?? first.receivedAt) >= 950, 'not before one interval');
    assert.equal(s.context.probes, 0);
    assert.ok(r.logger.events('healthcheck.expired').length >= 1);
    assert.equal(r.logger.events('healthcheck.expired')[0]?.interval_ms, 1000);
    // The file went registering → registered, back to registering, registered again (then disconnected on STOP).
    assert.deepEqual(r.fileStatuses.slice(0, 5), ['missing', 'registering', 'registered', 'registering', 'registered']);
    assert.deepEqual(
      r.logger.events('status.transition').slice(0, 4).map((l) => `${String(l.from)}→${String(l.to)}`),
      ['disconnected→registering', 'registering→registered', 'registered→registering', 'registering→registered'],
    );
    // healthCheckStale is a state a subscriber sees, not a transient one.
    assert.deepEqual(topStates(r).slice(0, 9), [
      'starting',
      'acquiringLock',
      'registering',
      'registered',
      'healthCheckStale',
      'acquiringLock',
      'registering',
      'registered',
      'stopping',
    ]);
  });

  it('4. 500s back off 2 s, 4 s, then max_retry cooldown of one interval; 429 Retry-After: 30 waits 30 s (SimulatedClock)', async (t) => {
    const { clock, dds, dataDir, r } = await onSimulatedClock(t, () => ({ status: 500, body: 'internal\nerror' }), { registerIntervalSecs: 20, maxRetry: 3 });
    const retryingAfter = async (requests: number) => {
      await dds.waitForRequests(requests);
      return waitForSnapshot(r.actor, (x) => x.matches({ backoff: 'retrying' }) && x.context.requests === requests);
    };
    const assertStill = (state: 'retrying' | 'cooldown', requests: number, when: string) => {
      const s = r.actor.getSnapshot();
      assert.ok(s.matches({ backoff: state }), `${when}: still in backoff.${state}, got ${JSON.stringify(s.value)}`);
      assert.equal(dds.requests.length, requests, `${when}: no new request`);
    };
    /** Still in backoff.`state` (after `requests` requests) 1 ms before `ms` more, moved on at `ms`. */
    const leavesAfter = async (ms: number, state: 'retrying' | 'cooldown', requests: number, when: string) => {
      await advance(clock, ms - 1);
      assertStill(state, requests, when);
      await advance(clock, 1);
      const s = r.actor.getSnapshot();
      // Left backoff at the delay: attempting now, or (a fast local DDS) already back after one more request.
      assert.ok(!s.matches('backoff') || s.context.requests >= requests + 1, `moved on at the delay, got ${JSON.stringify(s.value)}`);
      await dds.waitForRequests(requests + 1);
    };

    // Failure 1: attempt 1, 2 s.
    let s = await retryingAfter(1);
    assert.equal(s.context.attempt, 1);
    assert.equal(s.context.policyDelayMs, 2000);
    assert.equal(s.context.lastFailure?.class, 'retryable');
    assert.equal(s.context.lastFailure?.status, 500);
    assert.ok(s.context.lastFailure?.message.includes('body_snippet: internal error'), 'snippet with the newline replaced');
    await lockReleased(r, dataDir);
    assert.equal(readStateFile(dataDir)?.status, 'registering');
    await leavesAfter(2000, 'retrying', 1, 'at 1999 ms');

    // Failure 2: attempt 2, 4 s.
    s = await retryingAfter(2);
    assert.equal(s.context.attempt, 2);
    assert.equal(s.context.policyDelayMs, 4000);
    assert.equal(r.logger.events('registration.max_retry_reached').length, 0);
    await leavesAfter(4000, 'retrying', 2, 'at 3999 ms');

    // Failure 3 = max_retry: cooldown of one interval, counter reset.
    s = await waitForSnapshot(r.actor, (x) => x.matches({ backoff: 'cooldown' }) && x.context.requests === 3);
    assert.equal(s.context.attempt, 0, 'attempt counter reset');
    const maxRetry = r.logger.events('registration.max_retry_reached');
    assert.equal(maxRetry.length, 1);
    assert.equal(maxRetry[0]?.max_retry, 3);
    assert.equal(maxRetry[0]?.wait_ms, 20_000);
    assert.deepEqual(
      r.logger.events('registration.retry_scheduled').map((l) => l.wait_ms),
      [2000, 4000],
    );
    assert.deepEqual(
      r.logger.events('registration.error').map((l) => [l.status, l.attempt]),
      [
        [500, 1],
        [500, 2],
        [500, 3],
      ],
    );

    // Next: a 429 with Retry-After: 30, longer than the policy's 2 s.
    dds.setResponder(() => ({ status: 429, headers: { 'retry-after': '30' }, body: 'slow down' }));
    await leavesAfter(20_000, 'cooldown', 3, 'at 19 999 ms of the cooldown');
    s = await retryingAfter(4);
    assert.equal(s.context.attempt, 1);
    assert.equal(s.context.policyDelayMs, 2000, 'the policy alone would wait 2 s');
    assert.equal(s.context.lastFailure?.status, 429);
    assert.equal(s.context.lastFailure?.retryAfterMs, 30_000);
    assert.equal(r.logger.events('registration.retry_scheduled').at(-1)?.wait_ms, 30_000);

    dds.setResponder(okResponder);
    await advance(clock, 2000);
    assertStill('retrying', 4, 'at the policy delay (2 s)');
    await leavesAfter(28_000, 'retrying', 4, 'at 29 999 ms');
    s = await waitForSnapshot(r.actor, (x) => x.matches('registered'));
    assert.equal(s.context.attempt, 0);
    assert.equal(s.context.registrations, 1);
    assert.equal(readStateFile(dataDir)?.status, 'registered');
  });

  it('5. 409 waits one interval, is not counted as an attempt, and its warning is rate-limited (SimulatedClock)', async (t) => {
    // maxRetry 1: had a 409 counted, the first one would already reach max_retry.
    const { clock, dds, r } = await onSimulatedClock(t, () => ({ status: 409, body: 'node already online' }), { registerIntervalSecs: 10, maxRetry: 1 });

    const conflicts = 7; // at 0, 10, …, 60 s: the 7th is one rate-limit window (60 s) after the first
    for (let n = 1; n <= conflicts; n++) {
      await dds.waitForRequests(n);
      const s = await waitForSnapshot(r.actor, (x) => x.matches({ backoff: 'cooldown' }) && x.context.requests === n);
      assert.equal(s.context.attempt, 0, `attempt not counted after 409 #${n}`);
      assert.equal(s.context.lastFailure?.class, 'conflict');
      assert.equal(s.context.lastFailure?.status, 409);
      if (n === conflicts) break;
      await advance(clock, 9999);
      assert.ok(r.actor.getSnapshot().matches({ backoff: 'cooldown' }), 'still cooling down 1 ms before the interval');
      assert.equal(dds.requests.length, n);
      await advance(clock, 1);
      const after = r.actor.getSnapshot();
      // Attempting now, or (a fast local DDS) already back in cooldown after one more request.
      assert.ok(!after.matches('backoff') || after.context.requests > n, 'tries again after one interval');
    }

    const lines = r.logger.events('registration.conflict');
    assert.ok(lines.length < conflicts, `fewer conflict lines (${lines.length}) than 409s (${conflicts})`);
    assert.equal(lines.length, 2, 'the first, then one a window later');
    assert.equal(lines[0]?.status, 409);
    assert.equal(lines[0]?.suppressed, undefined);
    assert.equal(lines[1]?.suppressed, conflicts - 2, 'the next line says how many were suppressed');
    assert.deepEqual(
      r.logger.events('registration.cooldown').map((l) => l.wait_ms),
      Array(conflicts).fill(10_000),
    );
    assert.equal(r.logger.events('registration.max_retry_reached').length, 0);
    assert.equal(r.logger.events('registration.retry_scheduled').length, 0);
  });

  it('6. an invalid key (63 hex digits) → failed with EINVALIDKEY, no request, the key never shown', async (t) => {
    const dds = await startDds(t);
    const badKey = PRIVATE_KEY_HEX.slice(1);
    assert.equal(badKey.length, 63);
    leakScan.addSecret(badKey);

    const dataDir = tempDir(t);
    const r = startRegistrar(t, { dds, dataDir, config: { secp256k1Privhex: badKey } });
    const s = await waitForSnapshot(r.actor, (x) => x.status === 'done');
    assert.equal(s.value, 'failed');
    assert.equal(s.context.error?.code, 'EINVALIDKEY');
    assert.deepEqual(s.output, { outcome: 'failed', error: s.context.error }, 'the machine says how it ended');
    await assert.rejects(registrarDone(r.actor), (err: unknown) => err instanceof RegistrarFailedError && err.code === 'EINVALIDKEY');
    assert.match(s.context.error?.message ?? '', /secp256k1Privhex/);
    assert.ok(!(s.context.error?.message ?? '').includes(badKey));
    leakScan.check('invalid key: context.error', JSON.stringify(s.context.error));
    assert.equal(r.logger.events('registration.loop.failed').length, 1);
    assert.equal(r.logger.events('registration.loop.failed')[0]?.code, 'EINVALIDKEY');
    assert.equal(r.logger.events('registration.loop.start').length, 0);
    leakScan.check('invalid key: log', r.logger.dump());
    assert.equal(readStateFile(dataDir), null, 'nothing persisted');
    assert.ok(!fs.existsSync(lockDirPath(dataDir)), 'no lock taken');

    // runRegistrationLoop: `done` rejects with RegistrarFailedError.
    const logger = new MemoryLogger();
    const loop = runRegistrationLoop(scenarioConfig(dds, tempDir(t), { secp256k1Privhex: `0x${badKey}` }), {
      logger,
      secrets: new NodeSecretStore(),
    });
    onCleanup(t, () => loop.stop());
    let caught: unknown;
    await assert.rejects(loop.done, (err: unknown) => {
      caught = err;
      return err instanceof RegistrarFailedError && err.code === 'EINVALIDKEY';
    });
    assert.ok(caught instanceof Error);
    assert.ok(!caught.message.includes(badKey) && !String(caught.stack).includes(badKey));
    leakScan.check('invalid key: RegistrarFailedError', `${caught.message}\n${String(caught.stack)}\n${safeJson(caught)}`);
    leakScan.check('invalid key: loop log', logger.dump());
    await loop.stop(); // stopping a failed loop resolves

    await sleep(100);
    assert.equal(dds.requests.length, 0, 'no request reached DDS');
  });

  it('7a. STOP while registered → stopped, state file disconnected, lock free', async (t) => {
    const dds = await startDds(t);
    const dataDir = tempDir(t);
    const r = startRegistrar(t, { dds, dataDir });
    await waitForSnapshot(r.actor, (x) => x.matches('registered'));
    await lockReleased(r, dataDir);

    const s = await r.stop();
    assert.equal(s.value, 'stopped');
    assert.deepEqual(s.output, { outcome: 'stopped' });
    await registrarDone(r.actor); // resolves
    assert.equal(s.context.lock, 'free');
    assert.equal(readStateFile(dataDir)?.status, 'disconnected');
    assert.equal(r.logger.events('status.transition').at(-1)?.to, 'disconnected');
    assert.equal(r.logger.events('registration.loop.stopped').length, 1);
    assert.equal(r.logger.events('status.kept').length, 0);
    assert.ok(!fs.existsSync(lockDirPath(dataDir)));
  });

  it('7b. STOP while the request is in flight → the request is aborted, stopped quickly, lock released', async (t) => {
    const dds = await startDds(t, () => 'hang');
    const dataDir = tempDir(t);
    const r = startRegistrar(t, { dds, dataDir, config: { requestTimeoutSecs: 60 } });
    const [req] = await dds.waitForRequests(1);
    assert.ok(req);
    assert.ok(r.actor.getSnapshot().matches('registering'));
    assert.equal(r.resources.lock?.held, true);
    assert.ok(fs.existsSync(lockDirPath(dataDir)));

    const t0 = Date.now();
    const s = await r.stop(30_000);
    const took = Date.now() - t0;
    assert.equal(s.value, 'stopped');
    assert.ok(took < 10_000, `stopped in ${took} ms, not after the 60 s request timeout`);
    await waitUntil(() => req.finishedAt !== undefined, 'the DDS to see the request closed', 5000);
    assert.equal(r.resources.lock?.held, false);
    assert.ok(!fs.existsSync(lockDirPath(dataDir)), 'the lock directory is gone');
    assert.equal(readStateFile(dataDir)?.status, 'disconnected');
    assert.equal(r.logger.events('registration.success').length, 0);

    // Another lock on the same directory gets it at once, and not by taking over a dead holder's.
    const other = new RegistrationLock({ dir: dataDir });
    const attempt = await other.tryAcquire();
    assert.deepEqual(attempt, { kind: 'acquired', takeover: false });
    await other.release();
    assert.equal(dds.requests.length, 1);
  });

  it('8a. callbacks: the first in flight or in the window → 200 and closes it; others → 409 but a byte-identical repeat → 200; after the window, a failure, STOP → 403', async (t) => {
    const { clock, dds, r } = await onSimulatedClock(t, () => ({ status: 200, body: '{}', delayMs: 2000 }), { registerIntervalSecs: 60, callbackWindowSecs: 5 });
    const node = await startNodeServer(t, r.actor);
    const given: string[] = [];
    const secret = (label: string): string => {
      const s = nodeSecret(label);
      given.push(s);
      return s;
    };

    // While the request is in flight (DDS answers after 2 s): the first callback is accepted.
    await dds.waitForRequests(1);
    assert.ok(r.actor.getSnapshot().matches('registering'));
    const s1 = secret('in-flight');
    const first = { id: 'node-1', secret: s1, organization_id: 'org-1' };
    let answer = await node.callback(first);
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body), { ok: true });
    assert.ok(r.actor.getSnapshot().matches('registering'), 'answered while the request was still in flight');
    assert.equal(r.secrets.read(), s1);
    assert.equal(r.secrets.identity()?.nodeId, 'node-1');
    assert.equal(r.secrets.identity()?.organizationId, 'org-1');
    let s = r.actor.getSnapshot();
    assert.equal(s.context.callbacks, 1);
    assert.equal(s.context.nodeId, 'node-1');
    assert.equal(s.context.organizationId, 'org-1');

    // A stranger after it, still in flight: 409, nothing changes. DDS's repeat: 200, nothing changes.
    answer = await node.callback({ id: 'node-x', secret: secret('stranger-in-flight') });
    assert.deepEqual([answer.status, answer.body], [409, 'secret already received']);
    answer = await node.callback({ ...first });
    assert.equal(answer.status, 200);
    answer = await node.callback({ ...first, organization_id: 'org-2' });
    assert.equal(answer.status, 409, 'not byte-identical: not a repeat');
    assert.equal(r.secrets.read(), s1);
    assert.equal(r.actor.getSnapshot().context.callbacks, 1);

    // After success: the window stays closed (DDS called back already).
    s = await waitForSnapshot(r.actor, (x) => x.matches('registered'));
    assert.ok(s.matches({ registered: { callbackWindow: 'closed' } }), 'no window after a callback in flight');
    answer = await node.callback({ id: 'node-y', secret: secret('stranger-after-answer') });
    assert.equal(answer.status, 409);
    assert.equal((await node.callback({ ...first })).status, 200, 'a repeat after the answer');
    assert.equal(r.secrets.read(), s1);
    assert.equal(r.secrets.identity()?.nodeId, 'node-1');

    // A second attempt, with no callback in flight: the window opens, the first callback in it closes it.
    r.actor.send({ type: 'REGISTER_NOW' });
    await dds.waitForRequests(2);
    await advance(clock, 2000);
    s = await waitForSnapshot(r.actor, (x) => x.matches({ registered: { callbackWindow: 'open' } }) && x.context.requests === 2);
    const s2 = secret('window');
    const second = { id: 'node-2', secret: s2, organization_id: null };
    answer = await node.callback(second);
    assert.equal(answer.status, 200);
    assert.equal(r.secrets.read(), s2);
    assert.equal(r.secrets.identity()?.nodeId, 'node-2');
    assert.equal(r.actor.getSnapshot().context.callbacks, 2);
    assert.ok(r.actor.getSnapshot().matches({ registered: { callbackWindow: 'closed' } }), 'the first callback closed the window');
    answer = await node.callback({ id: 'node-z', secret: secret('stranger-in-window') });
    assert.equal(answer.status, 409);
    assert.equal((await node.callback({ ...second })).status, 200);
    assert.equal(r.secrets.read(), s2);
    assert.equal(r.actor.getSnapshot().context.callbacks, 2);

    // A third attempt: without a callback the window closes after 5 s; then 403.
    r.actor.send({ type: 'REGISTER_NOW' });
    await dds.waitForRequests(3);
    await advance(clock, 2000);
    await waitForSnapshot(r.actor, (x) => x.matches({ registered: { callbackWindow: 'open' } }) && x.context.requests === 3);
    await advance(clock, 4999);
    assert.ok(r.actor.getSnapshot().matches({ registered: { callbackWindow: 'open' } }), 'open until the window ends');
    await advance(clock, 1);
    assert.ok(r.actor.getSnapshot().matches({ registered: { callbackWindow: 'closed' } }), 'closed at 5 s');
    const s3 = secret('late');
    answer = await node.callback({ id: 'node-3', secret: s3, organization_id: 'org-3' });
    assert.deepEqual([answer.status, answer.body], [403, 'no registration in progress']);
    assert.equal(r.secrets.read(), s2, 'the store is unchanged');
    assert.equal(r.secrets.identity()?.nodeId, 'node-2');
    assert.equal(r.actor.getSnapshot().context.callbacks, 2);
    assert.equal(r.actor.getSnapshot().context.nodeId, 'node-2');

    // After a failed answer (in backoff): refused.
    dds.setResponder(() => ({ status: 500, body: 'down' }));
    r.actor.send({ type: 'REGISTER_NOW' });
    await dds.waitForRequests(4);
    await waitForSnapshot(r.actor, (x) => x.matches({ backoff: 'retrying' }) && x.context.requests === 4);
    const s4 = secret('after-failure');
    answer = await node.callback({ id: 'node-4', secret: s4 });
    assert.equal(answer.status, 403);
    assert.equal(r.secrets.read(), s2);

    // After STOP: refused.
    await r.stop();
    const s5 = secret('after-stop');
    answer = await node.callback({ id: 'node-5', secret: s5 });
    assert.equal(answer.status, 403);
    assert.equal(r.secrets.read(), s2);
    assert.equal(r.logger.events('registration.callback').length, 5, 'two accepted, three repeats');
    // Refusals are rate-limited: one warning per reason per minute (7 refusals, 3 reasons); the rest at debug.
    const refused = r.logger.events('registration.callback.refused').filter((l) => l.level === 'warn');
    assert.deepEqual(refused.map((l) => l.reason), ['secret already received', 'no registration in progress', 'registrar is not running']);
    assert.equal(r.logger.events('registration.callback.refused').length, 7, 'every refusal is a line');
    assert.deepEqual(
      r.logger.events('registration.callback').map((l) => l.secret_len),
      [s1.length, s1.length, s1.length, s2.length, s2.length],
    );

    // The node secrets appear nowhere: log, snapshot, persisted snapshot.
    const texts = [r.logger.dump(), JSON.stringify(r.actor.getSnapshot()), safeJson(r.actor.getPersistedSnapshot())];
    for (const text of texts) for (const g of given) assert.ok(!text.includes(g), 'a node secret leaked');
    leakScan.check('callbacks: log', texts[0] ?? '');
    leakScan.check('callbacks: snapshot', texts[1] ?? '');
    leakScan.check('callbacks: persisted snapshot', texts[2] ?? '');
  });

  it("8b. callbacks with policy 'always': accepted in backoff and after the window, refused after STOP", async (t) => {
    const { clock, dds, r } = await onSimulatedClock(t, () => ({ status: 503, body: 'maintenance' }), { registerIntervalSecs: 60, callbackWindowSecs: 5, callbackPolicy: 'always' });
    const node = await startNodeServer(t, r.actor);

    await waitForSnapshot(r.actor, (x) => x.matches({ backoff: 'retrying' }));
    const s1 = nodeSecret('always-backoff');
    assert.equal((await node.callback({ id: 'n-1', secret: s1 })).status, 200);
    assert.equal(r.secrets.read(), s1);

    dds.setResponder(okResponder);
    await advance(clock, 2000);
    await waitForSnapshot(r.actor, (x) => x.matches('registered'));
    await advance(clock, 5000);
    assert.ok(r.actor.getSnapshot().matches({ registered: { callbackWindow: 'closed' } }));
    const s2 = nodeSecret('always-late');
    assert.equal((await node.callback({ id: 'n-2', secret: s2 })).status, 200);
    assert.equal(r.secrets.read(), s2);
    assert.equal(r.actor.getSnapshot().context.callbacks, 2);

    await r.stop();
    const s3 = nodeSecret('always-stopped');
    assert.equal((await node.callback({ id: 'n-3', secret: s3 })).status, 403);
    assert.equal(r.secrets.read(), s2);
    for (const text of [r.logger.dump(), JSON.stringify(r.actor.getSnapshot()), safeJson(r.actor.getPersistedSnapshot())]) {
      for (const g of [s1, s2, s3]) assert.ok(!text.includes(g), 'a node secret leaked');
    }
  });

  it('9. two registrars on one data directory: one request at a time, the second skips, neither clobbers the other', async (t) => {
    const dds = await startDds(t, () => ({ status: 200, body: '{}', delayMs: 300 }));
    const dataDir = tempDir(t);
    const config = { registerIntervalSecs: 2 };
    const one = startRegistrar(t, { dds, dataDir, config, start: false, label: 'sibling one' });
    const two = startRegistrar(t, { dds, dataDir, config, start: false, label: 'sibling two' });
    assert.notEqual(one.secrets, two.secrets);
    one.actor.start();
    two.actor.start();

    // Whoever took the lock first registers; keep DDS probing it (as DDS would).
    await waitUntil(
      () => one.logger.events('registration.success').length + two.logger.events('registration.success').length > 0,
      'a first registration',
    );
    const [winner, other] = one.logger.events('registration.success').length > 0 ? [one, two] : [two, one];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        if (winner.actor.getSnapshot().status === 'active') winner.actor.send({ type: 'HEALTHCHECK' });
        await sleep(250);
      }
    })();
    onCleanup(t, async () => {
      probing = false;
      await prober;
    });

    // The other, after taking the lock, sees the live sibling's fresh `registered` and skips.
    await waitUntil(() => other.logger.events('registration.skipped').length > 0, 'the second registrar to skip', 15_000);
    const s = await waitForSnapshot(other.actor, (x) => x.matches('registered'));
    assert.equal(s.context.requests, 0, 'the second never sent a request');
    assert.equal(s.context.lock, 'free');
    assert.equal(other.logger.events('lock.acquired').length, 1, 'it did take the lock before deciding');
    assert.equal(other.logger.events('registration.success').length, 0);
    assert.equal(dds.requests.length, 1);
    assert.equal(dds.maxConcurrent, 1, 'never two registration requests at once');
    assert.equal(readStateFile(dataDir)?.status, 'registered');
    await waitUntil(() => other.resources.lock?.held === false && winner.resources.lock?.held === false, 'both locks free');

    // Stopping the second while the first is registered keeps `registered`.
    await other.stop();
    assert.equal(other.logger.events('status.kept').length, 1);
    assert.equal(other.logger.events('status.kept')[0]?.status, 'registered');
    assert.equal(readStateFile(dataDir)?.status, 'registered');
    assert.ok(winner.actor.getSnapshot().matches('registered'));

    // After both stop: disconnected.
    probing = false;
    await prober;
    await winner.stop();
    assert.equal(winner.logger.events('status.kept').length, 0);
    assert.equal(readStateFile(dataDir)?.status, 'disconnected');
    assert.ok(!fs.existsSync(lockDirPath(dataDir)));
    assert.equal(dds.requests.length, 1);
    assert.equal(dds.maxConcurrent, 1);
  });

  it(
    '9b. a DDS probe that reaches the sibling which skipped does not let it overwrite the live registrar’s `registered` when it stops',
    async (t) => {
      const dds = await startDds(t, () => ({ status: 200, body: '{}', delayMs: 300 }));
      const dataDir = tempDir(t);
      const config = { registerIntervalSecs: 60 };
      const first = startRegistrar(t, { dds, dataDir, config, label: 'probe-sibling one' });
      await waitForSnapshot(first.actor, (x) => x.matches('registered'));
      const second = startRegistrar(t, { dds, dataDir, config, label: 'probe-sibling two' });
      await waitForSnapshot(second.actor, (x) => x.matches('registered'));
      assert.equal(second.logger.events('registration.skipped').length, 1, 'the second skipped');
      assert.equal(dds.requests.length, 1);

      // DDS probes the node URL; behind a load balancer the probe reaches the second replica.
      const node = await startNodeServer(t, second.actor, 'probe-sibling two');
      assert.equal((await node.probe('DDS v1.0.0')).status, 200);
      assert.equal(readStateFile(dataDir)?.status, 'registered');

      await second.stop();
      assert.ok(first.actor.getSnapshot().matches('registered'), 'the first is still registered');
      assert.equal(readStateFile(dataDir)?.status, 'registered', 'the live registrar’s status is kept');
    },
  );

  it('10. no secret in any log dump, snapshot, inspection event, HTTP answer or error of the scenarios above', () => {
    // The scan itself can fail: a text holding the registration secret is found.
    const control = `{"registration_credentials":"${REG_SECRET}"}`;
    assert.ok([...leakScan.secrets].some((secret) => control.includes(secret)));

    const kinds = new Set(leakScan.texts.map((x) => x.where.replace(/^.*: /, '')));
    for (const kind of ['log', 'snapshot', 'persisted snapshot', 'inspected event', 'inspected snapshot', 'POST /internal/v1/registrations answer', 'GET /health answer']) {
      assert.ok(kinds.has(kind), `the scan saw some ${kind}`);
    }
    assert.ok(leakScan.texts.length > 200, `scanned ${leakScan.texts.length} texts`);
    assert.ok(leakScan.secrets.size >= 4 + 1 + 8, 'the bad key and the node secrets of the callbacks are in the scan');
    assert.deepEqual(leakScan.findings(), []);
  });
});
