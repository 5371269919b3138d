/**
 * Protocol `siwe` end to end in one process, over real HTTP on 127.0.0.1
 * against the real simulator (a strict DDS: single-use nonces, every byte of
 * §6 checked): registered → parked, signed in, the token refreshed and
 * rewritten to ACCESS_TOKEN_FILE (0600), DDS forgets the node → 403 →
 * re-armed, registered and signed in again; no registration while parked;
 * no secret (registration secret, key, access tokens) anywhere.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { registrarMachine, type RegistrarActorOutputs as Out, type RegistrarSettings, type SignInOutcome } from '../../machines/registrar.js';
import { accessToken, AccessTokenError, reportUnauthorized } from '../../src/access-token.js';
import { deriveEthAddress, loadSecp256k1Privhex } from '../../src/crypto.js';
import { startSimulator, tempDir, type SimulatorHarness } from '../support/index.js';
import { leakScan, PRIVATE_KEY_HEX, readStateFile, startRegistrar, waitForSnapshot, type ScenarioRegistrar } from './scenario-helpers.js';

const WALLET = deriveEthAddress(loadSecp256k1Privhex(PRIVATE_KEY_HEX));
const TOKEN_LIFETIME_MS = 3000;

function startSiwe(t: TestContext, sim: SimulatorHarness, dataDir: string, extra: Record<string, unknown> = {}): ScenarioRegistrar {
  return startRegistrar(t, {
    dds: sim,
    dataDir,
    config: {
      protocol: 'siwe',
      nodeUrl: undefined,
      tokenSafetyRatio: 0.5,
      tokenReauthJitterMs: 20,
      accessTokenFile: join(dataDir, 'token'),
      ...extra,
    },
  });
}

/** Remember every token handed out: the leak scan looks for each. */
async function tokenOf(r: ScenarioRegistrar): Promise<string> {
  const token = (await accessToken(r.actor)).expose();
  leakScan.addSecret(token);
  return token;
}

describe('protocol siwe: the registrar and its access session against the simulator', () => {
  it('registers, parks, signs in, refreshes at the ratio, re-arms when DDS forgets the node, and cleans up on stop', async (t) => {
    const sim = await startSimulator(t, { tokenLifetimeMs: TOKEN_LIFETIME_MS });
    const dataDir = tempDir(t);
    const tokenFile = join(dataDir, 'token');
    const r = startSiwe(t, sim, dataDir);

    await waitForSnapshot(r.actor, (s) => s.matches({ registered: { session: 'active' } }));
    assert.ok(r.actor.getSnapshot().matches({ registered: { health: 'parked' } }), 'siwe parks: no TTL');
    const first = await tokenOf(r);
    assert.equal(readFileSync(tokenFile, 'utf8'), first, 'the token file holds the token handed out');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    assert.equal(readStateFile(dataDir)?.status, 'registered');

    // Two refreshes: each new token arrives before the one before expires; no registration meanwhile.
    await waitForSnapshot(r.actor, (s) => s.context.session.signIns >= 3, 15_000);
    const issued = sim.of('siwe.token.issued');
    for (let i = 1; i < issued.length; i++) assert.ok(issued[i]!.expiresAt - issued[i - 1]!.expiresAt < TOKEN_LIFETIME_MS, 'refreshed before expiry');
    assert.equal(sim.of('siwe.registered').length, 1, 'parked: one registration only');
    const refreshed = await tokenOf(r);
    assert.notEqual(refreshed, first);
    assert.equal(readFileSync(tokenFile, 'utf8'), refreshed, 'the file holds the newest token');

    // DDS forgets the node: the next refresh gets 403, the registration is re-armed.
    sim.sim.forget(WALLET);
    const rearmed = r.actor.getSnapshot().context.rearms;
    await waitForSnapshot(r.actor, (s) => s.context.rearms > rearmed && s.matches({ registered: { session: 'active' } }), 15_000);
    assert.equal(sim.of('siwe.registered').length, 2, 'registered again after the 403');
    const types = sim.events.map((e) => (e.type === 'siwe.rejected' ? `${e.type}:${e.call}:${e.status}` : e.type));
    const forgot = types.indexOf('siwe.forgotten');
    assert.ok(forgot >= 0 && types.indexOf('siwe.rejected:verify:403', forgot) > forgot, `verify answered 403 after the node was forgotten: ${types.join(' ')}`);
    assert.ok(r.fileStatuses.includes('disconnected'), `re-armed: status disconnected meanwhile (${r.fileStatuses.join(' → ')})`);
    const again = await tokenOf(r);
    assert.equal(readFileSync(tokenFile, 'utf8'), again);
    assert.ok(r.logger.dump().includes('re-arming registration'));

    const done = await r.stop();
    assert.equal(done.status, 'done');
    assert.equal(existsSync(tokenFile), false, 'the token file is removed on stop');
    await assert.rejects(accessToken(r.actor), (e: unknown) => e instanceof AccessTokenError && e.code === 'ESTOPPED');
    assert.deepEqual(leakScan.findings(), []);
  });

  it('needs no NODE_URL, and reportUnauthorized makes the token due at once (one sign-in for concurrent callers)', async (t) => {
    const sim = await startSimulator(t, { tokenLifetimeMs: 60_000 });
    const r = startSiwe(t, sim, tempDir(t));
    const [a, b] = await Promise.all([tokenOf(r), tokenOf(r)]);
    assert.equal(a, b, 'concurrent callers share one sign-in');
    assert.equal(sim.of('siwe.signed_in').length, 1);
    reportUnauthorized(r.actor);
    const next = await tokenOf(r);
    assert.notEqual(next, a, 'a refused token is not handed out again');
    assert.equal(sim.of('siwe.signed_in').length, 2);
    assert.equal(sim.of('siwe.registered').length, 1);
  });

  it('under protocol legacy, or with the session off, accessToken rejects with ESESSIONOFF', async (t) => {
    const sim = await startSimulator(t);
    const r = startSiwe(t, sim, tempDir(t), { accessSession: false });
    await waitForSnapshot(r.actor, (s) => s.matches({ registered: { session: 'off' } }));
    await assert.rejects(accessToken(r.actor), (e: unknown) => e instanceof AccessTokenError && e.code === 'ESESSIONOFF');
    assert.equal(sim.of('siwe.nonce.issued').length, 1, 'registration only: no sign-in');
  });
});

describe('re-arm without a storm (PROTOCOL.md §6.6)', () => {
  const settings: RegistrarSettings = {
    intervalMs: 60_000,
    maxRetry: -1,
    callbackPolicy: 'window',
    callbackWindowMs: 5_000,
    retryAfterMaxMs: 600_000,
    protocol: 'siwe',
    session: { safetyRatio: 0.75, jitterMs: 0, maxRetries: 3 },
  };
  const forgotten: SignInOutcome = { ok: false, class: 'slow', status: 403, endpoint: '/v', retryAfterMs: null, message: 'HTTP 403', forgotten: true, tokenRemainingMs: null };

  it('the first re-arm registers at once; the next ones before a sign-in succeeds back off 2 s, 4 s, 8 s', async () => {
    const clock = new SimulatedClock();
    let registrations = 0;
    let signIns = 0;
    const actor = createActor(
      registrarMachine.provide({
        actors: {
          checkCredentials: fromPromise(async (): Promise<Out['checkCredentials']> => ({ ok: true, publicKeyPrefix: '04ab' })),
          acquireLock: fromPromise(async (): Promise<Out['acquireLock']> => ({ kind: 'acquired', takeover: false })),
          readSharedState: fromPromise(async (): Promise<Out['readSharedState']> => ({ status: 'disconnected', healthcheckAgeMs: null, writtenByLiveSibling: false })),
          registerWithDds: fromPromise(async (): Promise<Out['registerWithDds']> => {
            registrations += 1;
            return { ok: true, status: 200, endpoint: '/r' };
          }),
          signIn: fromPromise(async (): Promise<SignInOutcome> => {
            signIns += 1;
            return forgotten;
          }),
          shutdown: fromPromise(async (): Promise<void> => undefined),
        },
      }),
      { input: { settings }, clock },
    );
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    };
    actor.start();
    await settle();
    // Registered, signed in → 403 → first re-arm: `rearming` for one turn, then registered again at once.
    clock.increment(0);
    await settle();
    assert.equal(registrations, 2, 'the first re-arm registers at once');
    const waits: number[] = [];
    for (let n = 0; n < 3; n++) {
      const s = actor.getSnapshot();
      assert.ok(s.matches({ backoff: 'retrying' }), `a re-arm before any sign-in succeeded backs off (${JSON.stringify(s.value)})`);
      waits.push(s.context.policyDelayMs);
      clock.increment(s.context.policyDelayMs);
      await settle();
    }
    assert.deepEqual(waits, [2000, 4000, 8000]);
    assert.equal(actor.getSnapshot().context.rearms, signIns, 'every re-arm is counted, the backed-off ones too');
    actor.stop();
  });
});
