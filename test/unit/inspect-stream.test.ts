/**
 * What the inspection stream carries for the live view: the running timers
 * after each snapshot of a root actor, and the definition in declaration order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createActor, fromPromise, setup, type InspectionEvent } from 'xstate';
import { registrarMachine } from '../../machines/registrar.js';
import { orderedDefinition, TIMERS_MESSAGE_TYPE, timersMessage, type TimersMessage } from '../../src/inspect-stream.js';

const machine = setup({
  delays: { named: 1000 },
  actors: { child: fromPromise(() => new Promise<void>(() => undefined)) },
}).createMachine({
  id: 'clock',
  initial: 'zulu',
  states: {
    zulu: {
      invoke: { src: 'child' },
      after: { named: 'alpha', 5000: 'alpha' },
      on: { GO: 'alpha' },
    },
    alpha: {},
  },
});

describe('timersMessage', () => {
  it("lists a root actor's armed delays, soonest first, after each of its snapshots; null for anything else", () => {
    const messages: TimersMessage[] = [];
    const others: InspectionEvent[] = [];
    const actor = createActor(machine, {
      inspect: (event) => {
        const m = timersMessage(event, 42);
        if (m) messages.push(m);
        else others.push(event);
      },
    });
    const before = Date.now();
    actor.start();
    const first = messages.at(-1);
    assert.ok(first, 'a message after the first snapshot');
    assert.equal(first.type, TIMERS_MESSAGE_TYPE);
    assert.equal(first.sessionId, actor.sessionId);
    assert.equal(first.createdAt, '42');
    assert.deepEqual(first.timers.map((x) => [x.delay, x.state, x.ms]), [['named', 'zulu', 1000], ['5000', 'zulu', 5000]]);
    for (const x of first.timers) {
      assert.ok(x.startedAt >= before && x.startedAt <= Date.now());
      assert.equal(x.dueAt, x.startedAt + x.ms);
    }
    // The invoked actor's snapshots are no root's.
    assert.ok(others.some((e) => e.type === '@xstate.snapshot' && e.actorRef !== actor), 'the child had a snapshot');

    actor.send({ type: 'GO' });
    assert.deepEqual(messages.at(-1)?.timers, [], 'leaving the state cancelled both');
    actor.stop();
  });
});

describe('orderedDefinition', () => {
  it("is the machine's config with the states in declaration order, functions as { type: name }", () => {
    const definition = orderedDefinition(createActor(registrarMachine, { input: { settings: { intervalMs: 1000, maxRetry: -1, callbackPolicy: 'window', callbackWindowMs: 1000, protocol: 'legacy', session: null, retryAfterMaxMs: 600_000 } } }));
    assert.ok(definition);
    const config = JSON.parse(definition) as { id: string; states: Record<string, { states?: Record<string, unknown> }>; output: unknown };
    assert.equal(config.id, 'registrar');
    assert.deepEqual(Object.keys(config.states), Object.keys(registrarMachine.root.states));
    assert.deepEqual(Object.keys(config.states['registered']?.states ?? {}), ['health', 'callbackWindow', 'session']);
    assert.deepEqual(config.output, { type: 'output' });
  });

  it('is undefined for an actor that is not a machine', () => {
    assert.equal(orderedDefinition(createActor(fromPromise(() => Promise.resolve(1)))), undefined);
  });
});
