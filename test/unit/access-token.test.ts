/**
 * accessToken() and reportUnauthorized() (src/access-token.ts) at their
 * edges, with registrars from createRegistrar against the real simulator:
 * waiting through registration, one sign-in for many callers, abort, stop,
 * failure, legacy, a failed refresh, and no token in any inspection event,
 * snapshot or log line.
 */
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import type { InspectionEvent } from 'xstate';
import { accessToken, AccessTokenError, reportUnauthorized, type AccessTokenErrorCode } from '../../src/access-token.js';
import type { RegistrarConfig } from '../../src/config.js';
import { leakScan, safeJson, startRegistrar, waitForSnapshot, type ScenarioRegistrar } from '../machine/scenario-helpers.js';
import { startSimulator, tempDir, type SimulatorHarness } from '../support/index.js';

const SIWE: Partial<RegistrarConfig> = { protocol: 'siwe', nodeUrl: undefined, tokenReauthJitterMs: 0 };
/** Secrets the sanitizing inspector was told of (the registrar's `addSecrets`). */
const toldInspector = new Set<string>();

/** A siwe registrar against `sim`, its inspection events scanned raw, and `addSecrets` recorded. */
function startSiwe(t: TestContext, sim: SimulatorHarness, config: Partial<RegistrarConfig> = {}, start = true): ScenarioRegistrar {
  const label = t.name;
  const inspect = (ev: InspectionEvent): void => {
    if (ev.type === '@xstate.event') leakScan.add(`${label}: inspected event`, safeJson(ev.event));
    else if (ev.type === '@xstate.snapshot') leakScan.add(`${label}: inspected snapshot`, safeJson(ev.snapshot));
  };
  const addSecrets = (secrets: Iterable<string>): void => {
    for (const s of secrets) toldInspector.add(s);
  };
  return startRegistrar(t, { dds: sim, dataDir: tempDir(t), config: { ...SIWE, ...config }, options: { inspect: { inspect: { next: inspect }, addSecrets } }, start });
}

/** The token's text, recorded for the final scan. */
async function tokenOf(r: ScenarioRegistrar, signal?: AbortSignal): Promise<string> {
  const token = (await accessToken(r.actor, signal === undefined ? {} : { signal })).expose();
  leakScan.addSecret(token);
  return token;
}

const rejectsWith = (promise: Promise<unknown>, code: AccessTokenErrorCode): Promise<void> =>
  assert.rejects(promise, (e: unknown) => e instanceof AccessTokenError && e.code === code && !/tok|[0-9a-f]{32}/i.test(e.message));

/** A simulator that holds every registration `latencyMs` (the registrar waits in `registering`). */
const slowSimulator = (t: TestContext): Promise<SimulatorHarness> => startSimulator(t, { faults: { latencyMs: 30_000 } });

describe('accessToken()', () => {
  after(() => {
    assert.deepEqual(leakScan.findings(), [], 'no token, key or secret in any inspection event, snapshot or log');
  });

  it('waits through registration and the first sign-in, even when asked before start', async (t) => {
    const sim = await startSimulator(t);
    const r = startSiwe(t, sim, {}, false);
    const pending = tokenOf(r);
    r.actor.start();
    const token = await pending;
    assert.equal(sim.of('siwe.registered').length, 1);
    assert.equal(sim.of('siwe.signed_in').length, 1);
    assert.ok(r.actor.getSnapshot().matches({ registered: { session: 'active' } }));
    assert.ok(toldInspector.has(token), 'the sanitizing inspector is told each token');
  });

  it('many concurrent callers share one sign-in and get the same token', async (t) => {
    const sim = await startSimulator(t);
    const r = startSiwe(t, sim);
    const tokens = await Promise.all(Array.from({ length: 50 }, () => tokenOf(r)));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(sim.of('siwe.signed_in').length, 1);
    assert.equal(await tokenOf(r), tokens[0], 'a held token is handed out at once, no new sign-in');
    assert.equal(sim.of('siwe.signed_in').length, 1);
  });

  it('rejects with EABORTED when the signal aborts (or has aborted), and the registrar goes on', async (t) => {
    const sim = await slowSimulator(t);
    const r = startSiwe(t, sim);
    await rejectsWith(accessToken(r.actor, { signal: AbortSignal.abort() }), 'EABORTED');
    const controller = new AbortController();
    const waiting = accessToken(r.actor, { signal: controller.signal });
    await waitForSnapshot(r.actor, (s) => s.matches('registering'));
    controller.abort();
    await rejectsWith(waiting, 'EABORTED');
    assert.equal(r.actor.getSnapshot().status, 'active');
  });

  it('rejects with ESTOPPED when the registrar stops while the caller waits, and after', async (t) => {
    const sim = await slowSimulator(t);
    const r = startSiwe(t, sim);
    const waiting = accessToken(r.actor);
    await waitForSnapshot(r.actor, (s) => s.matches('registering'));
    const stopped = r.stop();
    await rejectsWith(waiting, 'ESTOPPED');
    await stopped;
    await rejectsWith(accessToken(r.actor), 'ESTOPPED');
  });

  it('rejects with EFAILED when the registrar fails (an invalid key), for waiting and later callers', async (t) => {
    const sim = await startSimulator(t);
    const r = startSiwe(t, sim, { secp256k1Privhex: 'not-a-key' }, false);
    const waiting = accessToken(r.actor);
    r.actor.start();
    await rejectsWith(waiting, 'EFAILED');
    await rejectsWith(accessToken(r.actor), 'EFAILED');
    assert.equal(sim.events.length, 0, 'nothing reached DDS');
  });

  it('rejects with ESESSIONOFF under protocol legacy; reportUnauthorized is then ignored', async (t) => {
    const sim = await startSimulator(t);
    const r = startRegistrar(t, { dds: sim, dataDir: tempDir(t) });
    await rejectsWith(accessToken(r.actor), 'ESESSIONOFF');
    reportUnauthorized(r.actor);
    await waitForSnapshot(r.actor, (s) => s.matches('registered'));
    assert.equal(sim.of('siwe.nonce.issued').length, 0, 'legacy: no SIWE call');
  });

  it('a failed refresh keeps handing out the old token while it is valid', async (t) => {
    // Refresh due after 1 s of a 20 s token: the old one stays valid long after the refresh fails.
    const sim = await startSimulator(t, { tokenLifetimeMs: 20_000 });
    const r = startSiwe(t, sim, { tokenSafetyRatio: 0.05 });
    const first = await tokenOf(r);
    sim.sim.setFaults({ verifyFailStatus: 503 });
    await waitForSnapshot(r.actor, (s) => s.context.session.failures >= 1);
    assert.ok(sim.of('siwe.fault').some((e) => e.call === 'verify' && e.status === 503), 'the refresh met the 503');
    assert.equal(await tokenOf(r), first, 'the old token, still valid');
    assert.ok((r.resources.tokens?.remainingMs() ?? 0) > 0);
    assert.equal(sim.of('siwe.signed_in').length, 1);
  });

  it('reportUnauthorized() hides the token at once: callers wait for the next sign-in', async (t) => {
    const sim = await startSimulator(t);
    const r = startSiwe(t, sim);
    const first = await tokenOf(r);
    reportUnauthorized(r.actor);
    assert.equal(r.resources.tokens?.current(), undefined, 'refused before the new sign-in');
    const next = await tokenOf(r);
    assert.notEqual(next, first);
    assert.equal(sim.of('siwe.signed_in').length, 2);
    assert.equal(sim.of('siwe.registered').length, 1, 'a 401 from a service signs in again, it does not re-register');
  });

  // Reported the moment the first token is handed out: before, the machine was still in signingIn (ignoring the 401) and the caller waited forever.
  it('reportUnauthorized right as the token is handed out counts; for a token a refresh replaced already: no sign-in', { timeout: 20_000 }, async (t) => {
    const sim = await startSimulator(t);
    const r = startSiwe(t, sim);
    const stale = await accessToken(r.actor);
    reportUnauthorized(r.actor, stale);
    const fresh = await accessToken(r.actor);
    leakScan.addSecret(stale.expose());
    leakScan.addSecret(fresh.expose());
    await waitForSnapshot(r.actor, (s) => s.matches({ registered: { session: 'active' } }));
    // A second service answers 401 for the old token: the fresh one stays, the session stays active.
    reportUnauthorized(r.actor, stale);
    assert.ok(r.actor.getSnapshot().matches({ registered: { session: 'active' } }), 'no sign-in started');
    assert.equal(r.resources.tokens?.current()?.token.expose(), fresh.expose());
    assert.equal(sim.of('siwe.signed_in').length, 2);
  });
});
