/**
 * testing/fake-registrar — a real actor of the registrar machine on a
 * `SimulatedClock`, with faked effects the test controls: each invoked actor
 * waits until the test resolves or rejects it (or answers at once, from
 * `answers`); the actions write to an in-memory state file, lock and log.
 */
import { createActor, fromPromise, SimulatedClock, type Actor, type InspectionEvent } from 'xstate';
import { registrarMachine } from '../../machines/registrar.js';
import type {
  LogParams,
  PersistedStatus,
  ReadSharedStateInput,
  RegistrarActorName,
  RegistrarActorOutputs,
  RegistrarEvent,
  RegistrarSettings,
} from '../../machines/registrar.js';
import { REGISTRAR_ACTOR_NAMES } from './catalog.js';
import { keyOfTakenTransition, type RegistrarSnapshot } from './model.js';

/** Let the fake actors' promises settle and the actor process what follows (`rounds` turns of the event loop). */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** An answer the fake gives at once: what `name` resolves with for its input (throw or reject to make it fail). */
export type FakeAnswers = {
  [A in RegistrarActorName]?: (input: unknown) => RegistrarActorOutputs[A] | Promise<RegistrarActorOutputs[A]>;
};

/** The fake state file: what `persistStatus`, `persistHealthcheck` and `shutdown` wrote. */
export interface FakeStateFile {
  status: PersistedStatus;
  statusWrites: number;
  healthchecks: number;
  /** On the fake's clock. */
  lastHealthcheckAt: number | null;
}

/** A delayed event the actor has scheduled, on the fake's clock. */
export interface ScheduledTimer {
  /** The event it sends, `xstate.after.<delay>.<state id>`. */
  type: string;
  armedAt: number;
  delayMs: number;
  dueAt: number;
}

/** Options of {@link FakeRegistrar}. */
export interface FakeRegistrarOptions {
  /** Actors that answer at once instead of waiting for {@link FakeRegistrar.resolve}. */
  answers?: FakeAnswers;
  /** Also sees every inspection event of the actor. */
  inspect?: (event: InspectionEvent) => void;
}

interface PendingCall {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type ScheduledEvents = Record<string, { event: { type: string }; delay: number }>;

/**
 * The registrar machine with faked effects, as an actor (`.actor`): give it
 * to the code under test as you would the registrar `createRegistrar` makes.
 * The fake keeps the bookkeeping a real registrar's effects would: the lock
 * is held from an `acquired` answer until `releaseLock`, `shutdown` or a
 * `LOCK_COMPROMISED`; `shutdown` writes `disconnected`.
 */
export class FakeRegistrar {
  readonly clock = new SimulatedClock();
  readonly file: FakeStateFile = { status: 'disconnected', statusWrites: 0, healthchecks: 0, lastHealthcheckAt: null };
  /** Whether the fake cross-process lock is held. */
  lockHeld = false;
  /** Every line the machine logged (the `log` action's params). */
  readonly logs: LogParams[] = [];
  /** How often each actor was started. */
  readonly started: Record<RegistrarActorName, number> = { checkCredentials: 0, acquireLock: 0, readSharedState: 0, registerWithDds: 0, shutdown: 0, signIn: 0 };
  /** The inputs each actor was started with. */
  readonly inputs: Record<RegistrarActorName, unknown[]> = { checkCredentials: [], acquireLock: [], readSharedState: [], registerWithDds: [], shutdown: [], signIn: [] };
  /** State node ids seen in any microstep (states held for no time included). */
  readonly stateIds = new Set<string>();
  /** Keys of the transitions taken in any microstep (see `transitionKey`). */
  readonly transitions = new Set<string>();
  /** Errors the actor reported. */
  readonly errors: unknown[] = [];
  readonly actor: Actor<typeof registrarMachine>;
  readonly #pending = new Map<RegistrarActorName, PendingCall>();
  readonly #armedAt = new WeakMap<object, number>();

  constructor(
    readonly settings: RegistrarSettings,
    options: FakeRegistrarOptions = {},
  ) {
    const answers = options.answers ?? {};
    const call =
      <A extends RegistrarActorName>(name: A) =>
      ({ input, signal }: { input: unknown; signal: AbortSignal }): Promise<RegistrarActorOutputs[A]> => {
        this.started[name] += 1;
        this.inputs[name].push(input);
        const answer = answers[name] as ((input: unknown) => RegistrarActorOutputs[A] | Promise<RegistrarActorOutputs[A]>) | undefined;
        const output =
          answer !== undefined
            ? Promise.resolve().then(() => answer(input))
            : new Promise<RegistrarActorOutputs[A]>((resolve, reject) => {
                const entry: PendingCall = { resolve: (v) => resolve(v as RegistrarActorOutputs[A]), reject };
                this.#pending.set(name, entry);
                signal.addEventListener('abort', () => {
                  if (this.#pending.get(name) === entry) this.#pending.delete(name);
                });
              });
        return output.then(
          (value) => {
            this.#afterAnswer(name, value);
            return value;
          },
          (error: unknown) => {
            if (name === 'shutdown') this.lockHeld = false;
            throw error;
          },
        );
      };
    const machine = registrarMachine.provide({
      actors: {
        checkCredentials: fromPromise(call('checkCredentials')),
        acquireLock: fromPromise(call('acquireLock')),
        readSharedState: fromPromise<RegistrarActorOutputs['readSharedState'], ReadSharedStateInput>(call('readSharedState')),
        registerWithDds: fromPromise(call('registerWithDds')),
        shutdown: fromPromise(call('shutdown')),
        signIn: fromPromise(call('signIn')),
      },
      actions: {
        persistStatus: (_, params) => {
          this.file.status = params.status;
          this.file.statusWrites += 1;
        },
        persistHealthcheck: () => {
          this.file.healthchecks += 1;
          this.file.lastHealthcheckAt = this.clock.now();
        },
        releaseLock: () => {
          this.lockHeld = false;
        },
        log: (_, params) => {
          this.logs.push(params);
        },
      },
    });
    this.actor = createActor(machine, {
      clock: this.clock,
      input: { settings },
      inspect: (event: InspectionEvent) => {
        this.#onInspect(event);
        options.inspect?.(event);
      },
    });
    this.actor.subscribe({ error: (error) => this.errors.push(error) });
  }

  #afterAnswer(name: RegistrarActorName, value: unknown): void {
    if (name === 'acquireLock' && (value as RegistrarActorOutputs['acquireLock']).kind === 'acquired') this.lockHeld = true;
    if (name === 'shutdown') {
      // The real shutdown releases the lock, then writes `disconnected` (unless a live sibling is registered).
      this.lockHeld = false;
      this.file.status = 'disconnected';
    }
  }

  #onInspect(event: InspectionEvent): void {
    if (event.type !== '@xstate.microstep' || event.actorRef !== this.actor) return;
    for (const node of (event.snapshot as RegistrarSnapshot)._nodes) this.stateIds.add(node.id);
    for (const t of event._transitions) this.transitions.add(keyOfTakenTransition(t));
  }

  /** Note when each delayed event was scheduled (on the clock: XState's own `startedAt` is wall time). */
  #trackTimers(): void {
    for (const scheduled of Object.values(this.actor.system.getSnapshot()._scheduledEvents)) {
      if (!this.#armedAt.has(scheduled)) this.#armedAt.set(scheduled, this.clock.now());
    }
  }

  /** The delayed events scheduled now, by event type. */
  timers(): Map<string, ScheduledTimer> {
    this.#trackTimers();
    const timers = new Map<string, ScheduledTimer>();
    for (const scheduled of Object.values(this.actor.system.getSnapshot()._scheduledEvents as ScheduledEvents)) {
      const armedAt = this.#armedAt.get(scheduled) ?? this.clock.now();
      timers.set(scheduled.event.type, { type: scheduled.event.type, armedAt, delayMs: scheduled.delay, dueAt: armedAt + scheduled.delay });
    }
    return timers;
  }

  /** The actors waiting for the test. */
  pendingActors(): Set<RegistrarActorName> {
    return new Set(REGISTRAR_ACTOR_NAMES.filter((name) => this.#pending.has(name)));
  }

  async start(): Promise<void> {
    this.actor.start();
    await this.#settled();
  }

  /** Resolve the waiting call of `name`. @throws when it is not waiting */
  async resolve<A extends RegistrarActorName>(name: A, output: RegistrarActorOutputs[A]): Promise<void> {
    this.#take(name).resolve(output);
    await this.#settled();
  }

  /** Reject the waiting call of `name`. @throws when it is not waiting */
  async reject(name: RegistrarActorName, error: unknown): Promise<void> {
    this.#take(name).reject(error);
    await this.#settled();
  }

  async send(event: RegistrarEvent): Promise<void> {
    // What the event reports: the lock's refresh failed, it is no longer held.
    if (event.type === 'LOCK_COMPROMISED') this.lockHeld = false;
    this.actor.send(event);
    await this.#settled();
  }

  /** Let `ms` pass on the clock (0 fires the timers due now, zero-delay ones included). */
  async advance(ms: number): Promise<void> {
    this.clock.increment(ms);
    await this.#settled();
  }

  stop(): void {
    this.actor.stop();
  }

  getSnapshot(): RegistrarSnapshot {
    return this.actor.getSnapshot();
  }

  #take(name: RegistrarActorName): PendingCall {
    const call = this.#pending.get(name);
    if (call === undefined) throw new Error(`${name} is not running: cannot answer it`);
    this.#pending.delete(name);
    return call;
  }

  async #settled(): Promise<void> {
    this.#trackTimers();
    await settle();
    this.#trackTimers();
  }
}
