/**
 * testing/execute — run a generated path against a {@link FakeRegistrar},
 * step by step, checking after each that the real actor is where the path
 * says (state value, status, tags, context, output, running actors), then
 * handing the step to the test's own checks.
 *
 * Time: before every step that is not a timer, half of the shortest pending
 * timer passes (none fires); for a timer step, the clock goes to one
 * millisecond before its deadline (nothing may happen), then one more (it
 * must fire). A zero-delay timer (`oneTurn`, which holds `healthCheckStale`
 * for one turn) fires with a step of 0.
 */
import assert from 'node:assert/strict';
import type { LogParams, RegistrarSettings } from '../../machines/registrar.js';
import { actorEventOf, eventLabel, isDoneEvent, isExternalEvent } from './catalog.js';
import { FakeRegistrar, type FakeRegistrarOptions, type ScheduledTimer } from './fake-registrar.js';
import { activeStateIds, type ModelPath, type ModelStep, type RegistrarSnapshot } from './model.js';

/** What the test's own checks get after each step. */
export interface ExecutedStep {
  index: number;
  step: ModelStep;
  /** The path's snapshot before this step (null at `xstate.init`). */
  previous: RegistrarSnapshot | null;
  /** The actor's snapshot after the step (checked equal to `step.state`). */
  actual: RegistrarSnapshot;
  registrar: FakeRegistrar;
  /** The log lines this step caused. */
  logs: LogParams[];
  /** The delayed events scheduled after the step, by event type. */
  timers: Map<string, ScheduledTimer>;
  /** `step <i> (<event>) of: <path>`, for assertion messages. */
  where: string;
  /** Whether a state node was active before the step, and after it. */
  was(stateId: string): boolean;
  is(stateId: string): boolean;
}

/** Options of {@link executePath}. */
export interface ExecutePathOptions {
  settings: RegistrarSettings;
  /** The test's own checks, after the built-in ones of each step. */
  onStep?: (step: ExecutedStep) => void | Promise<void>;
  /** Compare the context too (default true). */
  checkContext?: boolean;
  /** Options of the {@link FakeRegistrar} made for the path. */
  registrar?: FakeRegistrarOptions;
  /** Before the first step: e.g. hand `registrar.actor` to the code under test. */
  onStart?: (registrar: FakeRegistrar) => void | Promise<void>;
}

const sameSet = (a: Iterable<string>, b: Iterable<string>): boolean => {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
};

/** Execute `path` against a fresh {@link FakeRegistrar} (stopped at the end); returns it, for its coverage sets. */
export async function executePath(path: ModelPath, options: ExecutePathOptions): Promise<FakeRegistrar> {
  const registrar = new FakeRegistrar(options.settings, options.registrar);
  const checkContext = options.checkContext ?? true;
  let previous: RegistrarSnapshot | null = null;
  try {
    await options.onStart?.(registrar);
    for (const [index, step] of path.steps.entries()) {
      const where = `step ${index} (${eventLabel(step.event)}) of: ${path.description}`;
      const { event } = step;
      const logsBefore = registrar.logs.length;
      const remaining = (timer: ScheduledTimer): number => timer.dueAt - registrar.clock.now();

      if (event.type === 'xstate.init') {
        assert.equal(previous, null, `${where}: xstate.init comes first`);
        await registrar.start();
      } else {
        assert.ok(previous !== null, `${where}: a path starts with xstate.init`);
        const before = registrar.getSnapshot().value;
        const timers = registrar.timers();
        if (event.type.startsWith('xstate.after.')) {
          const timer = timers.get(event.type);
          assert.ok(timer, `${where}: no timer scheduled for ${event.type}`);
          const due = remaining(timer);
          for (const other of timers.values()) assert.ok(remaining(other) >= due, `${where}: ${other.type} would fire first`);
          assert.ok(due >= 0, `${where}: the timer is overdue`);
          if (due > 0) {
            await registrar.advance(due - 1);
            assert.deepEqual(registrar.getSnapshot().value, before, `${where}: fired before its deadline`);
          }
          await registrar.advance(due > 0 ? 1 : 0);
        } else {
          const shortest = Math.min(...[...timers.values()].map(remaining));
          const pause = Number.isFinite(shortest) ? Math.floor(shortest / 2) : 1_000;
          if (pause > 0) await registrar.advance(pause);
          assert.deepEqual(registrar.getSnapshot().value, before, `${where}: a timer fired while time passed`);
          const call = actorEventOf(event);
          if (call !== null) {
            if (isDoneEvent(event, call.name)) await registrar.resolve(call.name, event.output);
            else await registrar.reject(call.name, 'error' in event ? event.error : undefined);
          } else {
            assert.ok(isExternalEvent(event), `${where}: not an event to send`);
            await registrar.send(event);
          }
        }
      }

      const actual = registrar.getSnapshot();
      const expected = step.state;
      assert.deepEqual(registrar.errors, [], `${where}: the actor errored`);
      assert.deepEqual(actual.value, expected.value, `${where}: state`);
      assert.equal(actual.status, expected.status, `${where}: status`);
      assert.ok(sameSet(actual.tags, expected.tags), `${where}: tags ${[...actual.tags].join(',')} ≠ ${[...expected.tags].join(',')}`);
      if (checkContext) assert.deepEqual(actual.context, expected.context, `${where}: context`);
      if (expected.status === 'done') assert.deepEqual(actual.output, expected.output, `${where}: output`);
      const invoked = expected._nodes.flatMap((n) => n.invoke.map((i) => i.id));
      assert.ok(sameSet(registrar.pendingActors(), invoked), `${where}: running actors ${[...registrar.pendingActors()].join(',')} ≠ ${invoked.join(',')}`);

      const before = previous;
      const activeBefore = before === null ? new Set<string>() : activeStateIds(before);
      const activeAfter = activeStateIds(expected);
      await options.onStep?.({
        index,
        step,
        previous: before,
        actual,
        registrar,
        logs: registrar.logs.slice(logsBefore),
        timers: registrar.timers(),
        where,
        was: (id) => activeBefore.has(id),
        is: (id) => activeAfter.has(id),
      });
      previous = expected;
    }
  } finally {
    registrar.stop();
  }
  return registrar;
}
