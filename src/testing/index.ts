/**
 * posemesh-node-registration/testing — model-based tests of code that embeds
 * the registrar (see docs/testing.md).
 *
 * - the event catalogue: typed `xstate.done.actor.<name>` (outputs typed by
 *   `RegistrarActorOutputs`), `xstate.error.actor.<name>` and
 *   `xstate.after.<delay>.<state id>` events, with representative outputs,
 *   and the external events (`buildCatalog`, `pick`);
 * - the model: `serializeState` (counters left out, so that traversals end),
 *   `registrarModelLogic` and `traversalOptions` for `@xstate/graph`, and
 *   path generators (`edgeCoveringPaths`, `shortestPaths`, `simplePaths`,
 *   `pathFromEvents`);
 * - faked effects: `FakeRegistrar`, a real actor on a `SimulatedClock`
 *   whose invoked actors wait for the test's answers;
 * - `executePath`: a generated path, step by step, checked at each step,
 *   with a hook for the test's own checks.
 *
 * Needs `@xstate/graph` (an optional peer dependency: install it with your
 * test tools).
 *
 * @packageDocumentation
 */
export * from './catalog.js';
export * from './model.js';
export * from './fake-registrar.js';
export * from './execute.js';
