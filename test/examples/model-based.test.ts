/**
 * The example of docs/testing.md: a model-based test of an app that embeds
 * the registrar (./readiness.ts), written as a user writes it — imported from
 * `posemesh-node-registration/testing` (the package's own name: the built
 * package, through its `exports`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getShortestPaths } from '@xstate/graph';
import {
  buildCatalog,
  edgeCoveringPaths,
  executePath,
  pathFromEvents,
  pick,
  registrarModelLogic,
  traversalOptions,
} from 'posemesh-node-registration/testing';
import type { RegistrarSettings } from 'posemesh-node-registration';
import { trackReadiness, type Readiness } from './readiness.js';

// The model assumes a callback window shorter than the interval.
const settings: RegistrarSettings = { intervalMs: 10_000, maxRetry: 2, callbackPolicy: 'window', callbackWindowMs: 5_000, protocol: 'legacy', session: null, retryAfterMaxMs: 600_000 };
// Every representative answer of every effect, every failure, every timer, every outside event.
const catalog = buildCatalog();

test('getShortestPaths over the model ends: counters are left out of the state', () => {
  const paths = getShortestPaths(registrarModelLogic, traversalOptions(settings, catalog));
  assert.ok(paths.length > 20, `${paths.length} abstract states`);
});

test('the app is ready exactly while the registrar is registered, on every edge of the model', async () => {
  const paths = edgeCoveringPaths(settings, catalog);
  for (const path of paths) {
    let app: { readonly current: Readiness; stop(): void } | undefined;
    await executePath(path, {
      settings,
      // The code under test gets the fake registrar's actor, as it would get createRegistrar's.
      onStart: (registrar) => {
        app = trackReadiness(registrar.actor);
      },
      onStep: ({ actual, where }) => {
        assert.equal(app?.current === 'ready', actual.matches('registered'), `${where}: ready`);
        if (actual.matches('backoff')) assert.equal(app?.current, 'retrying', where);
      },
    });
    app?.stop();
  }
});

test('a hand-written path: a stale health check takes the node out of service until it registers again', async () => {
  const ev = (label: string) => pick(catalog, label);
  const path = pathFromEvents(settings, [
    ev('done: checkCredentials(ok)'),
    ev('done: acquireLock(acquired)'),
    ev('done: readSharedState(notRegistered)'),
    ev('done: registerWithDds(ok)'),
    ev('after callbackWindow (open)'),
    ev('after healthTtl (fresh)'),
    ev('done: readSharedState(notRegistered)'),
    ev('after oneTurn (healthCheckStale)'),
    ev('done: acquireLock(acquired)'),
    ev('done: readSharedState(notRegistered)'),
    ev('done: registerWithDds(ok)'),
  ]);
  const seen: Readiness[] = [];
  let app: ReturnType<typeof trackReadiness> | undefined;
  await executePath(path, {
    settings,
    onStart: (registrar) => {
      app = trackReadiness(registrar.actor);
    },
    onStep: ({ actual }) => {
      if (seen.at(-1) !== app?.current && app) seen.push(app.current);
      // healthCheckStale is a state of its own: the app sees it, for one turn.
      if (actual.matches('healthCheckStale')) assert.equal(app?.current, 'registering');
    },
  });
  assert.deepEqual(seen, ['registering', 'ready', 'registering', 'ready']);
});
