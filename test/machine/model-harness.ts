/**
 * Shared fakes and the model for the registrar statechart's model-based tests.
 *
 * Two halves:
 *
 * - **The model** — an abstraction of `registrarMachine` that `@xstate/graph`
 *   can traverse: a catalog of events (the invoked actors' `done`/`error`
 *   events with each meaningful output, the `after` timers, the external
 *   events), a state serialization that leaves counters out, and path
 *   generators built on `getShortestPaths` / `getSimplePaths` /
 *   `getPathsFromEvents`.
 * - **The harness** — a real actor of the machine, with controllable fake
 *   effects and a `SimulatedClock`, that replays a generated path step by
 *   step and checks, after every step, the actor's state and the effects it
 *   caused (state file, lock, health checks, callbacks, timers) against an
 *   independent specification of the lifecycle.
 *
 * Time: the harness lets time pass before every non-timer step (half of the
 * shortest pending timer, so none fires), and for a timer step advances the
 * clock to one millisecond before the timer's deadline (nothing may happen),
 * then one more (it must fire). Deadlines come from the specification, so a
 * timer that fires early, late, or is re-armed when it should not be is
 * caught.
 */
import assert from 'node:assert/strict';
import { getAdjacencyMap, getPathsFromEvents, getShortestPaths, getSimplePaths } from '@xstate/graph';
import type { StatePath } from '@xstate/graph';
import { createActor, fromPromise, initialTransition, SimulatedClock, transition } from 'xstate';
import type { Actor, ActorLogic, AnyStateNode, InspectionEvent, SnapshotFrom, StateValue } from 'xstate';
import { capDelayMs, registrarMachine } from '../../machines/registrar.js';
import type {
  CallbackPolicy,
  LogParams,
  PersistedStatus,
  ReadSharedStateInput,
  RegistrarActorName,
  RegistrarActorOutputs,
  RegistrarEvent,
  RegistrarInput,
  RegistrarSettings,
} from '../../machines/registrar.js';

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/** The machine's snapshot type. */
export type RegistrarSnapshot = SnapshotFrom<typeof registrarMachine>;

/** The invoked actors (each is invoked with its own name as id). */
export const ACTOR_NAMES = [
  'checkCredentials',
  'acquireLock',
  'readSharedState',
  'registerWithDds',
  'shutdown',
] as const satisfies readonly RegistrarActorName[];
/** One of {@link ACTOR_NAMES}. */
export type ActorName = RegistrarActorName;

/** An invoked actor resolved, with what the machine's types say it resolves with. */
export type ModelDoneEvent<A extends ActorName = ActorName> = {
  [N in A]: { type: `xstate.done.actor.${N}`; output: RegistrarActorOutputs[N] };
}[A];
/** An invoked actor rejected. */
export interface ModelErrorEvent {
  type: `xstate.error.actor.${ActorName}`;
  error: unknown;
}
/** A delayed transition's timer fired: `xstate.after.<delay>.<state id>`. */
export interface ModelAfterEvent {
  type: `xstate.after.${string}`;
}
/** The first step of every path. */
export interface ModelInitEvent {
  type: 'xstate.init';
}
/** Every event a model path may contain. */
export type ModelEvent = RegistrarEvent | ModelDoneEvent | ModelErrorEvent | ModelAfterEvent | ModelInitEvent;

/** One step of a path: the event, and the state the machine is in after it. */
export interface ModelStep {
  event: ModelEvent;
  state: RegistrarSnapshot;
}

/** A path through the model, from `xstate.init`. */
export interface ModelPath {
  description: string;
  steps: ModelStep[];
}

// ---------------------------------------------------------------------------
// Settings and the event catalog
// ---------------------------------------------------------------------------

/** The settings the models run with (`callbackWindowMs` < `intervalMs` matters: see {@link modelEvents}). */
export function modelSettings(callbackPolicy: CallbackPolicy): RegistrarSettings {
  return { intervalMs: 10_000, maxRetry: 2, callbackPolicy, callbackWindowMs: 5_000 };
}

/** The rejection every fake actor uses for its `xstate.error.actor.*` event (no secret in it). */
export const ACTOR_FAILURE: Error & { code: string } = Object.assign(new Error('simulated effect failure'), {
  code: 'ESIMULATED',
});

/** Outputs of the invoked actors, one per behaviour the machine distinguishes. */
export const OUTCOMES = {
  checkCredentials: {
    ok: { ok: true, publicKeyPrefix: '02abcdef' },
    invalid: { ok: false, code: 'EINVALIDKEY', message: 'the private key is not a valid secp256k1 key' },
  } satisfies Record<string, RegistrarActorOutputs['checkCredentials']>,
  acquireLock: {
    acquired: { kind: 'acquired', takeover: false },
    takeover: { kind: 'acquired', takeover: true },
    busy: { kind: 'busy', holderPid: 4242 },
    error: { kind: 'error', code: 'EACCES', message: 'permission denied on the lock' },
  } satisfies Record<string, RegistrarActorOutputs['acquireLock']>,
  readSharedState: {
    /** A live sibling registered and was probed 4 s ago: fresh. */
    liveFresh: { status: 'registered', healthcheckAgeMs: 4_000, writtenByLiveSibling: true },
    /** A live sibling registered, but its last probe is older than one interval. */
    liveStale: { status: 'registered', healthcheckAgeMs: 12_000, writtenByLiveSibling: true },
    /** A fresh probe on file, written by a process that is gone (or by us). */
    ownFresh: { status: 'registered', healthcheckAgeMs: 3_000, writtenByLiveSibling: false },
    /** Nobody registered. */
    notRegistered: { status: 'disconnected', healthcheckAgeMs: null, writtenByLiveSibling: false },
  } satisfies Record<string, RegistrarActorOutputs['readSharedState']>,
  registerWithDds: {
    ok: { ok: true, status: 200, endpoint: '/internal/v1/nodes/register' },
    retryable: {
      ok: false,
      class: 'retryable',
      status: 503,
      endpoint: '/internal/v1/nodes/register',
      retryAfterMs: null,
      message: 'HTTP 503',
    },
    retryableRetryAfter: {
      ok: false,
      class: 'retryable',
      status: 429,
      endpoint: '/internal/v1/nodes/register',
      retryAfterMs: 30_000,
      message: 'HTTP 429',
    },
    conflict: {
      ok: false,
      class: 'conflict',
      status: 409,
      endpoint: '/internal/v1/nodes/register',
      retryAfterMs: null,
      message: 'HTTP 409',
    },
    slowRetryAfter: {
      ok: false,
      class: 'slow',
      status: 400,
      endpoint: '/internal/v1/nodes/register',
      retryAfterMs: 60_000,
      message: 'HTTP 400',
      code: 'EHTTP',
    },
  } satisfies Record<string, RegistrarActorOutputs['registerWithDds']>,
  shutdown: { done: undefined } satisfies Record<string, RegistrarActorOutputs['shutdown']>,
} as const;

/** Which outputs (by key of {@link OUTCOMES}) a model offers, and whether actors may reject. */
export interface CatalogOptions {
  outcomes: { [A in ActorName]: ReadonlyArray<keyof (typeof OUTCOMES)[A]> };
  actorErrors: boolean;
}

/** Every output, every rejection. */
export const FULL_CATALOG: CatalogOptions = {
  outcomes: {
    checkCredentials: ['ok', 'invalid'],
    acquireLock: ['acquired', 'takeover', 'busy', 'error'],
    readSharedState: ['liveFresh', 'liveStale', 'ownFresh', 'notRegistered'],
    registerWithDds: ['ok', 'retryable', 'retryableRetryAfter', 'conflict', 'slowRetryAfter'],
    shutdown: ['done'],
  },
  actorErrors: true,
};

/** A smaller catalog (used with policy `always`, whose difference is callback admission). */
export const SMALL_CATALOG: CatalogOptions = {
  outcomes: {
    checkCredentials: ['ok'],
    acquireLock: ['acquired', 'busy'],
    readSharedState: ['liveFresh', 'notRegistered'],
    registerWithDds: ['ok', 'conflict'],
    shutdown: ['done'],
  },
  actorErrors: false,
};

/** The external events, as the model sends them. */
export const EXTERNAL_EVENTS: readonly RegistrarEvent[] = [
  { type: 'HEALTHCHECK' },
  { type: 'SECRET_RECEIVED', nodeId: 'node-7', organizationId: 'org-3', secretLength: 32 },
  { type: 'REGISTER_NOW' },
  { type: 'STOP' },
  { type: 'LOCK_COMPROMISED', code: 'ECOMPROMISED', message: 'the lock was not refreshed in time' },
];

const eventLabels = new WeakMap<object, string>();

/** A short, readable name for a model event (used in path descriptions). */
export function eventLabel(event: ModelEvent): string {
  return eventLabels.get(event) ?? event.type;
}

function labelled<E extends ModelEvent>(event: E, label: string): E {
  eventLabels.set(event, label);
  return event;
}

/** The catalog of events for a set of catalog options (stable objects: the model keys on them). */
export function buildCatalog(options: CatalogOptions): ModelEvent[] {
  const events: ModelEvent[] = [];
  for (const name of ACTOR_NAMES) {
    const outputs: Readonly<Record<string, unknown>> = OUTCOMES[name];
    for (const key of options.outcomes[name] as readonly string[]) {
      // `OUTCOMES[name]` is checked against the machine's output type of `name` above.
      const done = { type: `xstate.done.actor.${name}`, output: outputs[key] } as ModelDoneEvent;
      events.push(labelled(done, `done: ${name}(${key})`));
    }
    if (options.actorErrors) {
      events.push(labelled({ type: `xstate.error.actor.${name}`, error: ACTOR_FAILURE }, `error: ${name}`));
    }
  }
  for (const node of allStateNodes()) {
    for (const t of node.after) {
      const { delay } = parseAfterEventType(t.eventType);
      events.push(labelled({ type: t.eventType as ModelAfterEvent['type'] }, `after ${delay} (${node.key})`));
    }
  }
  for (const e of EXTERNAL_EVENTS) events.push(labelled({ ...e }, e.type));
  return events;
}

// ---------------------------------------------------------------------------
// The machine's definition, enumerated
// ---------------------------------------------------------------------------

/** The root and every state node below it. */
export function allStateNodes(root: AnyStateNode = registrarMachine.root): AnyStateNode[] {
  return [root, ...Object.values(root.states).flatMap((child) => allStateNodes(child))];
}

/** `xstate.after.<delay>.<state id>` → its parts (delay names have no dot). */
export function parseAfterEventType(type: string): { delay: string; stateId: string } {
  const m = /^xstate\.after\.([^.]+)\.(.+)$/.exec(type);
  assert.ok(m?.[1] !== undefined && m[2] !== undefined, `not a delayed event type: ${type}`);
  return { delay: m[1], stateId: m[2] };
}

function guardName(t: { guard?: unknown }): string {
  const g = t.guard;
  if (g === undefined) return '';
  if (typeof g === 'string') return g;
  if (typeof g === 'object' && g !== null && 'type' in g) return String(g.type);
  return 'inline';
}

/** The key of one transition definition: source, event (`always` for eventless), branch index and guard. */
export function transitionKey(source: AnyStateNode, eventType: string, index: number, guard: string): string {
  return `${source.id} —${eventType === '' ? 'always' : eventType}#${index}${guard ? `[${guard}]` : ''}`;
}

/** Every transition of the machine: each branch of `on`, `after`, `always`, `onDone`, `onError`. */
export function enumerateTransitions(root: AnyStateNode = registrarMachine.root): Set<string> {
  const keys = new Set<string>();
  for (const node of allStateNodes(root)) {
    for (const [eventType, branches] of node.transitions) {
      branches.forEach((t, i) => keys.add(transitionKey(node, eventType, i, guardName(t))));
    }
    (node.always ?? []).forEach((t, i) => keys.add(transitionKey(node, '', i, guardName(t))));
  }
  return keys;
}

/** Every state node id (root included). */
export function enumerateStateIds(root: AnyStateNode = registrarMachine.root): Set<string> {
  return new Set(allStateNodes(root).map((n) => n.id));
}

function keyOfTakenTransition(t: { source: AnyStateNode; eventType: string; guard?: unknown }): string {
  const source = t.source;
  const branches = t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
  const index = (branches as readonly unknown[]).indexOf(t);
  assert.ok(index >= 0, `transition ${source.id} ${t.eventType} not found on its source`);
  return transitionKey(source, t.eventType, index, guardName(t));
}

// ---------------------------------------------------------------------------
// The model: serialization, events per state, paths
// ---------------------------------------------------------------------------

function activeIds(snapshot: RegistrarSnapshot): Set<string> {
  return new Set(snapshot._nodes.map((n) => n.id));
}

/**
 * The abstract state: the state value and the few context fields that change
 * what the machine does next. Counters (requests, probes, callbacks…) and
 * timings are left out, or the state space never ends.
 */
export function abstractState(snapshot: RegistrarSnapshot): string {
  const c = snapshot.context;
  const ids = activeIds(snapshot);
  const inLoop = ids.has('registrar.acquiringLock') || ids.has('registrar.registering') || ids.has('registrar.backoff');
  return JSON.stringify({
    v: snapshot.value,
    lock: c.lock,
    cb: c.callbackWindowOpen,
    // Counts toward max_retry: the next failure's fate depends on it.
    ...(inLoop ? { attempt: c.attempt } : {}),
    // The backoff's branch, its log line and its delay depend on these.
    ...(ids.has('registrar.backoff')
      ? { failure: c.lastFailure?.class ?? null, retryAfter: c.lastFailure?.retryAfterMs != null }
      : {}),
    // The TTL timer runs for a full interval, or for what remains of a sibling's.
    ...(ids.has('registrar.registered') ? { ttlRemainder: c.healthTtlMs !== c.settings.intervalMs } : {}),
  });
}

/**
 * The events a state offers: those some active state node has a transition
 * for. One timing rule keeps the model honest: while the callback window is
 * open the TTL timer cannot fire first (the window is shorter than any TTL
 * that runs alongside it), so `after healthTtl` is not offered then.
 */
export function modelEvents(catalog: readonly ModelEvent[]): (snapshot: RegistrarSnapshot) => ModelEvent[] {
  return (snapshot) => {
    if (snapshot.status !== 'active') return [];
    const windowOpen = activeIds(snapshot).has('registrar.registered.callbackWindow.open');
    return catalog.filter((event) => {
      if (!snapshot._nodes.some((n) => n.transitions.has(event.type))) return false;
      if (windowOpen && event.type.startsWith('xstate.after.healthTtl.')) return false;
      return true;
    });
  };
}

/**
 * `registrarMachine` as actor logic over the model's events. The machine's
 * event type lists only the events sent from outside; the model also sends
 * XState's own (`xstate.done.actor.*`, `xstate.error.actor.*`,
 * `xstate.after.*`), which the machine handles like any other. As plain
 * logic it also takes its input (`getPathsFromEvents` of @xstate/graph 3.0.4
 * builds a machine's default options without it, and the context needs it).
 */
const registrarLogic: ActorLogic<RegistrarSnapshot, ModelEvent, RegistrarInput> = {
  transition: (snapshot, event, scope) => registrarMachine.transition(snapshot, event as RegistrarEvent, scope),
  getInitialSnapshot: (scope, input) => registrarMachine.getInitialSnapshot(scope, input),
  getPersistedSnapshot: (snapshot) => registrarMachine.getPersistedSnapshot(snapshot),
};

/** The snapshot after `event`, computed purely (no actor, no effect). */
function modelTransition(snapshot: RegistrarSnapshot, event: ModelEvent): RegistrarSnapshot {
  return transition(registrarLogic, snapshot, event)[0];
}

/** Traversal options for `@xstate/graph`: a vertex is an abstract state. */
function traversal(settings: RegistrarSettings, catalog: readonly ModelEvent[]) {
  return { input: { settings }, events: modelEvents(catalog), serializeState: abstractState };
}

/**
 * Traversal options where a vertex is "abstract state, reached by event from
 * abstract state": the shortest path to every vertex then takes every edge.
 */
function edgeTraversal(settings: RegistrarSettings, catalog: readonly ModelEvent[]) {
  return {
    ...traversal(settings, catalog),
    serializeState: (s: RegistrarSnapshot, e: ModelEvent | undefined, prev?: RegistrarSnapshot) =>
      e && prev ? `${abstractState(s)} via ${eventLabel(e)} from ${abstractState(prev)}` : abstractState(s),
  };
}

/**
 * A path as the executor wants it. `@xstate/graph` hands back, for each step,
 * *a* snapshot with the step's abstract state (one reached by whatever path
 * it met first, counters and all), so the path is replayed with XState's pure
 * `initialTransition`/`transition` to get the exact snapshot of each step.
 */
function toModelPath(path: StatePath<RegistrarSnapshot, ModelEvent>, settings: RegistrarSettings): ModelPath {
  let snapshot: RegistrarSnapshot | null = null;
  const steps = path.steps.map((s, i) => {
    const event = s.event;
    if (snapshot === null) {
      assert.equal(event.type, 'xstate.init', 'a path starts with xstate.init');
      [snapshot] = initialTransition(registrarMachine, { settings });
    } else {
      snapshot = modelTransition(snapshot, event);
    }
    assert.equal(abstractState(snapshot), abstractState(s.state), `replay diverges from the model at step ${i}`);
    return { event, state: snapshot };
  });
  return { description: steps.map((s) => eventLabel(s.event)).join(' → '), steps };
}

/** Drops every path whose events are a prefix of another path's (it is executed as part of the longer one). */
export function dropPrefixPaths(paths: readonly ModelPath[]): ModelPath[] {
  const sorted = [...paths].sort((a, b) => b.steps.length - a.steps.length);
  const kept: ModelPath[] = [];
  for (const p of sorted) {
    const isPrefix = kept.some((k) =>
      p.steps.every((s, i) => k.steps[i] !== undefined && eventLabel(k.steps[i].event) === eventLabel(s.event)),
    );
    if (!isPrefix) kept.push(p);
  }
  return kept;
}

/** The abstract model's size: states and edges (adjacency of `@xstate/graph`). */
export function modelSize(settings: RegistrarSettings, catalog: readonly ModelEvent[]): { states: number; edges: number } {
  const adj = getAdjacencyMap(registrarLogic, traversal(settings, catalog));
  const states = Object.keys(adj).length;
  const edges = Object.values(adj).reduce((n, v) => n + Object.keys(v.transitions).length, 0);
  return { states, edges };
}

/**
 * Appends the timer that fires next, if the path ends in a state with one, so
 * that the executor checks its deadline (an edge that wrongly re-arms or
 * cancels a timer is only seen when the timer is due).
 */
export function withTrailingTimer(path: ModelPath, catalog: readonly ModelEvent[]): ModelPath {
  const last = path.steps.at(-1);
  if (!last) return path;
  const timer = modelEvents(catalog)(last.state).find((e) => e.type.startsWith('xstate.after.'));
  if (!timer) return path;
  const state = modelTransition(last.state, timer);
  return { description: `${path.description} → ${eventLabel(timer)}`, steps: [...path.steps, { event: timer, state }] };
}

/**
 * Edge coverage: one shortest path to every (state, event) edge of the
 * abstract model, each followed by the timer due next; prefixes dropped.
 */
export function edgeCoveringPaths(settings: RegistrarSettings, catalog: readonly ModelEvent[]): ModelPath[] {
  const paths = getShortestPaths(registrarLogic, edgeTraversal(settings, catalog));
  return dropPrefixPaths(paths.map((p) => withTrailingTimer(toModelPath(p, settings), catalog)));
}

/** Every simple path (no state twice) to the states `toState` accepts. */
export function simplePaths(
  settings: RegistrarSettings,
  catalog: readonly ModelEvent[],
  toState: (s: RegistrarSnapshot) => boolean,
): ModelPath[] {
  return getSimplePaths(registrarLogic, { ...traversal(settings, catalog), toState }).map((p) => toModelPath(p, settings));
}

/** The path an explicit event sequence takes through the model (throws if one is not accepted there). */
export function pathFromEvents(settings: RegistrarSettings, events: readonly ModelEvent[]): ModelPath {
  const [path] = getPathsFromEvents(registrarLogic, [...events], { ...traversal(settings, []), events: [...events] });
  assert.ok(path, 'getPathsFromEvents found no path');
  const modelPath = toModelPath(path, settings);
  modelPath.steps.forEach((step, i) => {
    const before = modelPath.steps[i - 1]?.state;
    if (!before) return;
    const handled = before.status === 'active' && before._nodes.some((n) => n.transitions.has(step.event.type));
    assert.ok(handled, `step ${i}: ${eventLabel(step.event)} is not handled in ${JSON.stringify(before.value)}`);
  });
  return modelPath;
}

/** A catalog event by label (for hand-written scenarios). */
export function pick(catalog: readonly ModelEvent[], label: string): ModelEvent {
  const event = catalog.find((e) => eventLabel(e) === label);
  assert.ok(event, `no event labelled ${label}`);
  return event;
}

// ---------------------------------------------------------------------------
// The harness: a real actor with controllable fake effects
// ---------------------------------------------------------------------------

/** Lets the fake actors' promises settle and the actor process what follows. */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface PendingCall {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  input: unknown;
}

/** The fake state file: what `persistStatus` / `persistHealthcheck` / `shutdown` wrote. */
export interface FakeStateFile {
  status: PersistedStatus;
  statusWrites: number;
  healthchecks: number;
  lastHealthcheckAt: number | null;
}

/**
 * A real registrar actor on a `SimulatedClock`, with fake effects the test
 * drives: each invoked actor waits until the test resolves or rejects it.
 */
export class RegistrarHarness {
  readonly clock = new SimulatedClock();
  readonly file: FakeStateFile = { status: 'disconnected', statusWrites: 0, healthchecks: 0, lastHealthcheckAt: null };
  /** Whether the fake cross-process lock is held by this registrar. */
  lockHeld = false;
  readonly logs: LogParams[] = [];
  readonly started: Record<ActorName, number> = {
    checkCredentials: 0,
    acquireLock: 0,
    readSharedState: 0,
    registerWithDds: 0,
    shutdown: 0,
  };
  /** State node ids seen in any microstep (transient states included). */
  readonly stateIds = new Set<string>();
  /** Transition keys (see {@link transitionKey}) taken in any microstep. */
  readonly transitions = new Set<string>();
  readonly errors: unknown[] = [];
  readonly actor: Actor<typeof registrarMachine>;
  private readonly pending = new Map<ActorName, PendingCall>();

  constructor(readonly settings: RegistrarSettings) {
    const call =
      <A extends ActorName>(name: A) =>
      ({ input, signal }: { input: unknown; signal: AbortSignal }): Promise<RegistrarActorOutputs[A]> => {
        this.started[name] += 1;
        return new Promise<RegistrarActorOutputs[A]>((resolve, reject) => {
          const entry: PendingCall = { resolve: (v) => resolve(v as RegistrarActorOutputs[A]), reject, input };
          this.pending.set(name, entry);
          signal.addEventListener('abort', () => {
            if (this.pending.get(name) === entry) this.pending.delete(name);
          });
        });
      };
    const machine = registrarMachine.provide({
      actors: {
        checkCredentials: fromPromise(call('checkCredentials')),
        acquireLock: fromPromise(call('acquireLock')),
        readSharedState: fromPromise<RegistrarActorOutputs['readSharedState'], ReadSharedStateInput>(call('readSharedState')),
        registerWithDds: fromPromise(call('registerWithDds')),
        shutdown: fromPromise(call('shutdown')),
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
      inspect: (ev: InspectionEvent) => this.onInspect(ev),
    });
    this.actor.subscribe({ error: (err) => this.errors.push(err) });
  }

  private onInspect(ev: InspectionEvent): void {
    if (ev.type !== '@xstate.microstep' || ev.actorRef !== this.actor) return;
    for (const node of (ev.snapshot as RegistrarSnapshot)._nodes) this.stateIds.add(node.id);
    for (const t of ev._transitions) this.transitions.add(keyOfTakenTransition(t));
  }

  /** The actors currently waiting for the test. */
  pendingActors(): Set<ActorName> {
    return new Set(this.pending.keys());
  }

  /** The input the pending call of `name` was started with. */
  pendingInput(name: ActorName): unknown {
    return this.pending.get(name)?.input;
  }

  async start(): Promise<void> {
    this.actor.start();
    await settle();
  }

  /** Resolve the pending call of `name` (it must be pending). */
  async resolve<A extends ActorName>(name: A, output: RegistrarActorOutputs[A]): Promise<void> {
    const call = this.pending.get(name);
    assert.ok(call, `${name} is not running: cannot resolve it`);
    this.pending.delete(name);
    call.resolve(output);
    await settle();
  }

  /** Reject the pending call of `name` (it must be pending). */
  async reject(name: ActorName, error: unknown): Promise<void> {
    const call = this.pending.get(name);
    assert.ok(call, `${name} is not running: cannot reject it`);
    this.pending.delete(name);
    call.reject(error);
    await settle();
  }

  async send(event: RegistrarEvent): Promise<void> {
    this.actor.send(event);
    await settle();
  }

  /** Let `ms` pass on the clock (0 fires the timers due now, zero-delay ones included). */
  async advance(ms: number): Promise<void> {
    this.clock.increment(ms);
    await settle();
  }

  stop(): void {
    this.actor.stop();
  }
}

// ---------------------------------------------------------------------------
// Executing a path: the specification each step is checked against
// ---------------------------------------------------------------------------

const TIMER_NODES = [
  'acquiringLock.waitingForLock',
  'registered.health.fresh',
  'registered.callbackWindow.open',
  'healthCheckStale',
  'backoff.retrying',
  'backoff.cooldown',
].map((p) => `registrar.${p}`);

/** Log events a state's entry must produce (checked when a step newly enters it). */
const ENTRY_LOGS: Record<string, string> = {
  'registrar.acquiringLock.waitingForLock': 'lock.busy',
  'registrar.healthCheckStale': 'healthcheck.expired',
  'registrar.backoff.retrying': 'registration.retry_scheduled',
  'registrar.backoff.cooldown': 'registration.cooldown',
  'registrar.stopping': 'registration.loop.stopping',
  'registrar.stopped': 'registration.loop.stopped',
  'registrar.failed': 'registration.loop.failed',
};

/** States in which the cross-process lock may be held. */
const LOCK_STATES = ['registrar.acquiringLock.checkingSiblings', 'registrar.registering', 'registrar.stopping'];

/** States of a registration attempt under way: they carry the `attempt` tag. */
const ATTEMPT_STATES = ['registrar.starting', 'registrar.acquiringLock', 'registrar.registering', 'registrar.healthCheckStale'];

/** An event sent from outside (not one of XState's own). */
function isExternal(event: ModelEvent): event is RegistrarEvent {
  return !event.type.startsWith('xstate.');
}

function isDone<A extends ActorName>(event: ModelEvent, name: A): event is Extract<ModelEvent, ModelDoneEvent<A>> {
  return event.type === `xstate.done.actor.${name}`;
}

function doneOf<A extends ActorName>(event: ModelEvent, name: A): Extract<ModelEvent, ModelDoneEvent<A>> | null {
  return isDone(event, name) ? event : null;
}

function actorOf(event: ModelEvent): { kind: 'done' | 'error'; name: ActorName } | null {
  const m = /^xstate\.(done|error)\.actor\.(.+)$/.exec(event.type);
  if (!m) return null;
  const name = ACTOR_NAMES.find((n) => n === m[2]);
  assert.ok(name, `unknown actor in ${event.type}`);
  return { kind: m[1] === 'done' ? 'done' : 'error', name };
}

/** The failure an event reports, if it ends an attempt: a DDS answer, a rejection, a compromised lock. */
function failureOf(event: ModelEvent): { class: string; retryAfterMs: number | null } | null {
  const output = doneOf(event, 'registerWithDds')?.output;
  if (output) return output.ok ? null : { class: output.class, retryAfterMs: output.retryAfterMs };
  if (event.type === 'xstate.error.actor.registerWithDds' || event.type === 'LOCK_COMPROMISED') {
    return { class: 'retryable', retryAfterMs: null };
  }
  return null;
}

interface Timer {
  armedAt: number;
  delayMs: number;
}

/**
 * Replays one model path against a fresh {@link RegistrarHarness} and checks
 * every step. Returns the harness (for its coverage sets).
 */
export async function executePath(path: ModelPath, settings: RegistrarSettings): Promise<RegistrarHarness> {
  const h = new RegistrarHarness(settings);
  const timers = new Map<string, Timer>();
  let specTtlMs = settings.intervalMs;
  // PROTOCOL §3: consecutive retryable failures; max_retry of them mean one interval's cooldown.
  let specAttempt = 0;
  let specRetryAfterMs: number | null = null;
  let expectedStatus: PersistedStatus = 'disconnected';
  let expectedHealthchecks = 0;
  let expectedCallbacks = 0;
  let prev: RegistrarSnapshot | null = null;

  const remaining = (id: string): number => {
    const t = timers.get(id);
    assert.ok(t, `no timer armed for ${id}`);
    return t.armedAt + t.delayMs - h.clock.now();
  };

  try {
    for (const [index, step] of path.steps.entries()) {
      const where = `step ${index} (${eventLabel(step.event)}) of: ${path.description}`;
      const event = step.event;
      const logsBefore = h.logs.length;
      const next = step.state;

      // 1. Drive the real actor to produce the step's event.
      if (event.type === 'xstate.init') {
        assert.equal(prev, null, where);
        await h.start();
      } else {
        assert.ok(prev, where);
        const before = h.actor.getSnapshot();
        if (event.type.startsWith('xstate.after.')) {
          const { stateId } = parseAfterEventType(event.type);
          const due = remaining(stateId);
          for (const other of timers.keys()) {
            assert.ok(remaining(other) >= due, `${where}: ${other} would fire before ${stateId}`);
          }
          assert.ok(due >= 0, `${where}: timer ${stateId} overdue`);
          if (due > 0) {
            await h.advance(due - 1);
            assert.deepEqual(h.actor.getSnapshot().value, before.value, `${where}: fired before its deadline`);
          }
          await h.advance(due > 0 ? 1 : 0);
        } else {
          // Time passes before anything happens: half of the shortest pending timer (none for a zero-delay one).
          const shortest = Math.min(...[...timers.keys()].map(remaining));
          const pause = Number.isFinite(shortest) ? Math.floor(shortest / 2) : 1_000;
          if (pause > 0) await h.advance(pause);
          assert.deepEqual(h.actor.getSnapshot().value, before.value, `${where}: a timer fired while time passed`);
          const call = actorOf(event);
          if (call) {
            if (doneOf(event, 'acquireLock')?.output.kind === 'acquired') {
              assert.equal(h.lockHeld, false, `${where}: lock acquired twice`);
              h.lockHeld = true;
            }
            if (call.name === 'shutdown') {
              // The real shutdown releases the lock, then (maybe) writes `disconnected`.
              h.lockHeld = false;
              if (call.kind === 'done') h.file.status = 'disconnected';
            }
            if (call.name === 'readSharedState') {
              assert.deepEqual(h.pendingInput('readSharedState'), { intervalMs: settings.intervalMs }, where);
            }
            if (isDone(event, call.name)) await h.resolve(call.name, event.output);
            else if ('error' in event) await h.reject(call.name, event.error);
          } else {
            assert.ok(isExternal(event), `${where}: not an event to send`);
            if (event.type === 'LOCK_COMPROMISED') h.lockHeld = false; // the lock is gone
            await h.send(event);
          }
        }
      }
      const now = h.clock.now();

      // 2. The actor is where the model says, with the same context.
      const actual = h.actor.getSnapshot();
      assert.deepEqual(h.errors, [], `${where}: the actor errored`);
      assert.deepEqual(actual.value as StateValue, next.value, `${where}: state`);
      assert.deepEqual(actual.context, next.context, `${where}: context`);
      assert.equal(actual.status, next.status, `${where}: status`);

      // 3. Effects, against the specification.
      const was = (id: string) => prev !== null && activeIds(prev).has(id);
      const is = (id: string) => activeIds(next).has(id);
      const registerDone = doneOf(event, 'registerWithDds');
      const succeeded = registerDone?.output.ok === true;
      const sharedView = doneOf(event, 'readSharedState')?.output;

      // The state file's status.
      if (doneOf(event, 'shutdown')) expectedStatus = 'disconnected';
      else if (succeeded) expectedStatus = 'registered';
      else if (is('registrar.registering') && !was('registrar.registering')) expectedStatus = 'registering';
      else if (
        was('registrar.registered') &&
        !is('registrar.registered') &&
        actorOf(event)?.name === 'readSharedState'
      ) {
        expectedStatus = 'registering'; // the health check went stale
      }
      assert.equal(h.file.status, expectedStatus, `${where}: persisted status`);

      // Health checks: every probe and every success is recorded.
      if (event.type === 'HEALTHCHECK' || succeeded) expectedHealthchecks += 1;
      assert.equal(h.file.healthchecks, expectedHealthchecks, `${where}: persisted health checks`);

      // Callbacks: admitted by policy `always`, during a request, or inside the window.
      if (event.type === 'SECRET_RECEIVED') {
        const admitted =
          settings.callbackPolicy === 'always' ||
          was('registrar.registering') ||
          was('registrar.registered.callbackWindow.open');
        if (admitted) expectedCallbacks += 1;
      }
      assert.equal(actual.context.callbacks, expectedCallbacks, `${where}: callbacks admitted`);

      // Requests counted = requests sent.
      assert.equal(actual.context.requests, h.started.registerWithDds, `${where}: requests`);

      // The lock: held exactly when the context says so, and only where it may be.
      assert.equal(h.lockHeld, next.context.lock === 'held', `${where}: lock held`);
      if (h.lockHeld) assert.ok(LOCK_STATES.some(is), `${where}: lock held in ${JSON.stringify(next.value)}`);

      // The `attempt` tag: exactly on the states of an attempt under way.
      assert.equal(actual.hasTag('attempt'), ATTEMPT_STATES.some(is), `${where}: attempt tag`);

      // Exactly the actors of the active states are running.
      const expectedActors = new Set(next._nodes.flatMap((n) => n.invoke.map((i) => i.id)));
      assert.deepEqual(h.pendingActors(), expectedActors, `${where}: running actors`);

      // Entry log lines.
      const newLogs = h.logs.slice(logsBefore).map((l) => l.event);
      for (const [id, logEvent] of Object.entries(ENTRY_LOGS)) {
        if (is(id) && !was(id)) assert.ok(newLogs.includes(logEvent), `${where}: ${logEvent} not logged (${newLogs.join(', ')})`);
      }
      if (succeeded) assert.ok(newLogs.includes('registration.success'), `${where}: registration.success not logged`);

      // What follows a failed attempt: exponential backoff, or a cooldown (PROTOCOL §3, "beyond").
      const failure = was('registrar.registering') && is('registrar.backoff') ? failureOf(event) : null;
      if (failure) {
        specRetryAfterMs = failure.retryAfterMs;
        specAttempt = failure.class === 'retryable' ? specAttempt + 1 : 0;
        const cooldown =
          failure.class !== 'retryable' || (settings.maxRetry >= 0 && specAttempt >= settings.maxRetry);
        assert.ok(is(cooldown ? 'registrar.backoff.cooldown' : 'registrar.backoff.retrying'), `${where}: backoff branch`);
        if (cooldown) specAttempt = 0;
        if (failure.class === 'retryable' && cooldown) {
          assert.ok(newLogs.includes('registration.max_retry_reached'), `${where}: max_retry_reached not logged`);
        }
      }
      // A success resets the counter; so does skipping the request for a live sibling's registration.
      if (succeeded || (was('registrar.acquiringLock') && is('registrar.registered'))) specAttempt = 0;
      assert.equal(actual.context.attempt, specAttempt, `${where}: attempt counter`);

      // 4. Timers of the new state, per the specification.
      if (succeeded) specTtlMs = settings.intervalMs;
      if (event.type === 'HEALTHCHECK' && was('registrar.registered')) specTtlMs = settings.intervalMs;
      if (sharedView && is('registrar.registered') && sharedView.healthcheckAgeMs !== null) {
        specTtlMs = settings.intervalMs - sharedView.healthcheckAgeMs;
      }
      const rearmed = (id: string): boolean => event.type === 'HEALTHCHECK' && id === 'registrar.registered.health.fresh';
      for (const id of TIMER_NODES) {
        if (!is(id)) {
          timers.delete(id);
          continue;
        }
        if (was(id) && !rearmed(id) && timers.has(id)) continue;
        const delayMs = {
          'registrar.acquiringLock.waitingForLock': settings.intervalMs,
          'registrar.registered.health.fresh': capDelayMs(specTtlMs),
          'registrar.registered.callbackWindow.open': settings.callbackWindowMs,
          'registrar.healthCheckStale': 0,
          // The default policy with random 0.5: min(2^attempt, 60) s, or Retry-After when longer.
          'registrar.backoff.retrying': capDelayMs(
            Math.max(Math.min(2 ** specAttempt, 60) * 1000, specRetryAfterMs ?? 0),
          ),
          'registrar.backoff.cooldown': capDelayMs(Math.max(settings.intervalMs, specRetryAfterMs ?? 0)),
        }[id];
        assert.ok(delayMs !== undefined);
        timers.set(id, { armedAt: now, delayMs });
      }
      if (next.status === 'done') {
        assert.equal(timers.size, 0, `${where}: timers in a final state`);
        // The machine's output says how it ended.
        const expectedOutput = is('registrar.failed')
          ? { outcome: 'failed', error: actual.context.error }
          : { outcome: 'stopped' };
        assert.ok(is('registrar.failed') ? actual.context.error !== null : actual.context.error === null, `${where}: error`);
        assert.deepEqual(actual.output, expectedOutput, `${where}: output`);
      }
      prev = next;
    }
  } finally {
    h.stop();
  }
  return h;
}
