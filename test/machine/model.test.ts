/**
 * Model-based tests of the registrar statechart.
 *
 * `@xstate/graph` generates paths through an abstraction of `registrarMachine`
 * (the package's testing entry point, src/testing); each path is then
 * executed against a real actor with controllable fake effects and a
 * `SimulatedClock`, and every step is checked against the project's
 * specification of the lifecycle (`model-harness.ts`). The union of what the
 * executions visited must be every state node and every transition the
 * machine defines.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildCatalog,
  edgeCoveringPaths,
  enumerateStateIds,
  enumerateTransitions,
  FakeRegistrar,
  FULL_CATALOG,
  modelSize,
  pathFromEvents,
  pick,
  REPRESENTATIVE_OUTPUTS as OUTCOMES,
  simplePaths,
  type ModelPath,
  type RegistrarModelEvent as ModelEvent,
} from '../../src/testing/index.js';
import { executePath, modelSettings, SIWE_CATALOG, SMALL_CATALOG } from './model-harness.js';

const coverage = { stateIds: new Set<string>(), transitions: new Set<string>(), paths: 0, steps: 0 };

function record(h: FakeRegistrar, path: ModelPath): void {
  for (const id of h.stateIds) coverage.stateIds.add(id);
  for (const t of h.transitions) coverage.transitions.add(t);
  coverage.paths += 1;
  coverage.steps += path.steps.length;
}

async function runAll(paths: readonly ModelPath[], policy: 'window' | 'always', protocol: 'legacy' | 'siwe' = 'legacy'): Promise<void> {
  for (const path of paths) record(await executePath(path, modelSettings(policy, protocol)), path);
}

describe('registrar statechart, model-based', () => {
  const fullCatalog = buildCatalog(FULL_CATALOG);
  const smallCatalog = buildCatalog(SMALL_CATALOG);

  it('enumerates the machine: every state node and transition', () => {
    const ids = enumerateStateIds();
    const transitions = enumerateTransitions();
    // Spot checks that the enumeration reads the definition as intended.
    for (const id of ['registrar.backoff.deciding', 'registrar.registered.callbackWindow.closed', 'registrar.failed']) {
      assert.ok(ids.has(id), id);
    }
    for (const key of [
      'registrar.acquiringLock.trying —xstate.done.actor.acquireLock#1[lockBusy]',
      'registrar.acquiringLock.waitingForLock —xstate.after.interval.registrar.acquiringLock.waitingForLock#0',
      'registrar.backoff.deciding —always#0[maxRetryReached]',
      'registrar.stopping —STOP#0',
    ]) {
      assert.ok(transitions.has(key), key);
    }
    assert.ok(ids.size >= 20 && transitions.size >= 35, `${ids.size} states, ${transitions.size} transitions`);
  });

  it('policy window: every edge of the model, executed', async () => {
    const settings = modelSettings('window');
    const size = modelSize(settings, fullCatalog);
    const paths = edgeCoveringPaths(settings, fullCatalog);
    assert.ok(size.states >= 20, `abstract states: ${size.states}`);
    assert.ok(paths.length > 50, `paths: ${paths.length}`);
    await runAll(paths, 'window');
  });

  it('protocol siwe: every edge of the model (parking, re-arm, the access session), executed', async () => {
    const settings = modelSettings('window', 'siwe');
    const paths = edgeCoveringPaths(settings, buildCatalog(SIWE_CATALOG));
    assert.ok(paths.length > 30, `paths: ${paths.length}`);
    await runAll(paths, 'window', 'siwe');
  });

  it('policy always: every edge of a smaller model, executed', async () => {
    const paths = edgeCoveringPaths(modelSettings('always'), smallCatalog);
    assert.ok(paths.length > 20, `paths: ${paths.length}`);
    await runAll(paths, 'always');
  });

  it('policy always: every simple path to a final state, executed', async () => {
    // External events left out: they make the simple paths explode, and the edge-covering runs have them.
    const lifecycleOnly = smallCatalog.filter((e) => e.type.startsWith('xstate.') || e.type === 'STOP');
    const paths = simplePaths(modelSettings('always'), lifecycleOnly, (s) => s.status === 'done');
    assert.ok(paths.length >= 5, `paths: ${paths.length}`);
    for (const p of paths) assert.equal(p.steps.at(-1)?.state.status, 'done');
    await runAll(paths, 'always');
  });

  describe('hand-written scenarios (getPathsFromEvents)', () => {
    const ev = (label: string): ModelEvent => pick(fullCatalog, label);
    const toRegistered = [
      ev('done: checkCredentials(ok)'),
      ev('done: acquireLock(acquired)'),
      ev('done: readSharedState(notRegistered)'),
      ev('done: registerWithDds(ok)'),
    ];

    it('a probe restarts the TTL timer (it fires one interval after the last probe)', async () => {
      const path = pathFromEvents(modelSettings('window'), [
        ...toRegistered,
        ev('after callbackWindow (open)'),
        ev('HEALTHCHECK'),
        ev('HEALTHCHECK'),
        ev('after healthTtl (fresh)'),
        ev('done: readSharedState(liveStale)'),
        ev('after oneTurn (healthCheckStale)'),
      ]);
      assert.deepEqual(path.steps.at(-2)?.state.value, 'healthCheckStale');
      assert.deepEqual(path.steps.at(-1)?.state.value, { acquiringLock: 'trying' });
      await runAll([path], 'window');
    });

    it('max_retry retryable failures end in a cooldown, then the counter starts again', async () => {
      const attempt = [ev('done: acquireLock(acquired)'), ev('done: readSharedState(notRegistered)')];
      const path = pathFromEvents(modelSettings('window'), [
        ...toRegistered.slice(0, 1),
        ...attempt,
        ev('done: registerWithDds(retryable)'),
        ev('after retryDelay (retrying)'),
        ...attempt,
        ev('done: registerWithDds(retryableRetryAfter)'),
        ev('after cooldownDelay (cooldown)'),
        ...attempt,
        ev('done: registerWithDds(retryable)'),
      ]);
      const states = path.steps.map((s) => JSON.stringify(s.state.value));
      assert.equal(states.filter((s) => s.includes('cooldown')).length, 1);
      assert.deepEqual(path.steps.at(-1)?.state.value, { backoff: 'retrying' });
      assert.equal(path.steps.at(-1)?.state.context.attempt, 1);
      await runAll([path], 'window');
    });

    it('a live sibling that registered within the interval is trusted for what remains of it', async () => {
      const path = pathFromEvents(modelSettings('window'), [
        ev('done: checkCredentials(ok)'),
        ev('done: acquireLock(takeover)'),
        ev('done: readSharedState(liveFresh)'),
        ev('after healthTtl (fresh)'),
        ev('done: readSharedState(ownFresh)'),
        ev('after healthTtl (fresh)'),
        ev('error: readSharedState'),
      ]);
      assert.equal(path.steps[3]?.state.context.healthTtlMs, 10_000 - OUTCOMES.readSharedState.liveFresh.healthcheckAgeMs);
      await runAll([path], 'window');
    });
  });

  it('covers every state node and every transition of the machine', () => {
    const expectedStates = enumerateStateIds();
    const expectedTransitions = enumerateTransitions();
    const missingStates = [...expectedStates].filter((id) => !coverage.stateIds.has(id));
    const missingTransitions = [...expectedTransitions].filter((t) => !coverage.transitions.has(t));
    const unknown = [...coverage.transitions].filter((t) => !expectedTransitions.has(t));
    assert.deepEqual(missingStates, [], 'state nodes never visited');
    assert.deepEqual(missingTransitions, [], 'transitions never taken');
    assert.deepEqual(unknown, [], 'transitions taken that the enumeration does not know');
    assert.deepEqual(coverage.stateIds, expectedStates);
    assert.deepEqual(coverage.transitions, expectedTransitions);
    console.log(
      `model-based: ${coverage.paths} paths, ${coverage.steps} steps, ` +
        `${coverage.stateIds.size} states, ${coverage.transitions.size} transitions covered`,
    );
  });
});

/** Start the harness and take it through a first successful registration. */
async function registered(h: FakeRegistrar): Promise<void> {
  await h.start();
  await h.resolve('checkCredentials', OUTCOMES.checkCredentials.ok);
  await h.resolve('acquireLock', OUTCOMES.acquireLock.acquired);
  await h.resolve('readSharedState', OUTCOMES.readSharedState.notRegistered);
  await h.resolve('registerWithDds', OUTCOMES.registerWithDds.ok);
}

describe('registrar statechart, regressions', () => {
  it('a subscriber sees healthCheckStale between registered and acquiringLock (it is not transient)', async () => {
    const h = new FakeRegistrar(modelSettings('window'));
    const seen: string[] = [];
    h.actor.subscribe((s) => {
      const value = JSON.stringify(s.value);
      if (seen.at(-1) !== value) seen.push(value);
    });
    try {
      await registered(h);
      await h.advance(10_000); // the TTL runs out: the state file is read
      await h.resolve('readSharedState', OUTCOMES.readSharedState.notRegistered);
      const stale = h.actor.getSnapshot();
      assert.equal(stale.value, 'healthCheckStale', 'held until its zero-delay timer fires');
      assert.ok(stale.hasTag('attempt'));
      assert.equal(h.file.status, 'registering', 'registering persisted on entry');
      await h.advance(0);
      assert.deepEqual(seen.slice(-3), [
        '{"registered":{"health":"checkingSiblings","callbackWindow":"closed","session":"off"}}',
        '"healthCheckStale"',
        '{"acquiringLock":"trying"}',
      ]);
    } finally {
      h.stop();
    }
  });

  it(
    'a HEALTHCHECK does not extend the callback window',
    async () => {
      const h = new FakeRegistrar(modelSettings('window'));
      try {
        await registered(h);
        assert.ok(h.actor.getSnapshot().matches({ registered: { callbackWindow: 'open' } }), 'window open');
        await h.advance(3_000);
        await h.send({ type: 'HEALTHCHECK' });
        await h.advance(2_000); // 5 s after the answer: the window is over
        assert.ok(
          h.actor.getSnapshot().matches({ registered: { callbackWindow: 'closed' } }),
          'the window closes callbackWindowMs after the answer, probes or not',
        );
      } finally {
        h.stop();
      }
    },
  );
});
