/**
 * The testing entry point (src/testing) catches what it claims to: a path
 * whose expected state, timer or answer is wrong fails at that step.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RegistrarSettings } from '../../machines/registrar.js';
import {
  buildCatalog,
  doneEvent,
  executePath,
  pathFromEvents,
  pick,
  REPRESENTATIVE_OUTPUTS as OUT,
  serializeState,
  traversalOptions,
  type ModelPath,
} from '../../src/testing/index.js';

const settings: RegistrarSettings = { intervalMs: 10_000, maxRetry: 2, callbackPolicy: 'window', callbackWindowMs: 5_000, protocol: 'legacy', session: null, retryAfterMaxMs: 600_000 };
const catalog = buildCatalog();
const ev = (label: string) => pick(catalog, label);
const toRegistered = () =>
  pathFromEvents(settings, [ev('done: checkCredentials(ok)'), ev('done: acquireLock(acquired)'), ev('done: readSharedState(notRegistered)'), ev('done: registerWithDds(ok)'), ev('after callbackWindow (open)')]);

test('a path as generated passes, and the hook sees every step', async () => {
  const seen: number[] = [];
  await executePath(toRegistered(), { settings, onStep: ({ index }) => void seen.push(index) });
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
});

test('a wrong expected state fails at its step', async () => {
  const path = toRegistered();
  const wrong: ModelPath = { ...path, steps: path.steps.map((s, i) => (i === 4 ? { ...s, state: path.steps[3]!.state } : s)) };
  await assert.rejects(executePath(wrong, { settings }), /step 4 \(done: registerWithDds\(ok\)\).*: state/s);
});

test('a timer step fires at its deadline, not before; a timer that is not scheduled fails', async () => {
  const path = toRegistered();
  const fired: number[] = [];
  await executePath(path, { settings, onStep: ({ registrar }) => void fired.push(registrar.clock.now()) });
  // Step 5 is the callback window's timer, armed at the success (step 4): exactly callbackWindowMs later.
  assert.equal(fired[5]! - fired[4]!, settings.callbackWindowMs);
  const noTimer: ModelPath = { ...path, steps: [...path.steps.slice(0, 3), path.steps[5]!] };
  await assert.rejects(executePath(noTimer, { settings }), /no timer scheduled for xstate\.after\.callbackWindow/);
});

test('an answer for an actor that is not running fails', async () => {
  const path = toRegistered();
  const early: ModelPath = { ...path, steps: [path.steps[0]!, { event: doneEvent('registerWithDds', OUT.registerWithDds.ok), state: path.steps[4]!.state }] };
  await assert.rejects(executePath(early, { settings }), /registerWithDds is not running/);
});

test('serializeState leaves the counters out; the model refuses a window as long as the interval', () => {
  const [a, b] = [toRegistered().steps[5]!.state, toRegistered().steps[5]!.state];
  const more = { ...b, context: { ...b.context, requests: 99, probes: 7, registrations: 5, callbacks: 3 } };
  assert.equal(serializeState(a), serializeState(more as typeof b));
  assert.throws(() => traversalOptions({ ...settings, callbackWindowMs: settings.intervalMs }, catalog), RangeError);
});
