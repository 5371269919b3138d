/**
 * testing/model — the registrar as a model `@xstate/graph` can traverse: a
 * state serialization that leaves the counters out (so that traversals
 * end), the events each state offers, and path generators whose paths carry
 * the exact snapshot of every step.
 */
import { getAdjacencyMap, getPathsFromEvents, getShortestPaths, getSimplePaths, type StatePath } from '@xstate/graph';
import { initialTransition, transition, type ActorLogic, type AnyStateNode, type SnapshotFrom } from 'xstate';
import { registrarMachine, type RegistrarEvent, type RegistrarInput, type RegistrarSettings } from '../../machines/registrar.js';
import { allStateNodes, eventLabel, type RegistrarModelEvent } from './catalog.js';

/** The registrar's snapshot. */
export type RegistrarSnapshot = SnapshotFrom<typeof registrarMachine>;

/** One step of a path: the event, and the snapshot after it. */
export interface ModelStep {
  event: RegistrarModelEvent;
  state: RegistrarSnapshot;
}

/** A path through the model, from `xstate.init`. */
export interface ModelPath {
  /** The steps' labels, joined by ` → `. */
  description: string;
  steps: ModelStep[];
}

/** The ids of a snapshot's active state nodes. */
export function activeStateIds(snapshot: RegistrarSnapshot): Set<string> {
  return new Set(snapshot._nodes.map((n) => n.id));
}

/**
 * The abstract state of a snapshot: its value and the few context fields
 * that change what the machine does next. Counters (requests, probes,
 * callbacks, registrations) and timings are left out: with them the state
 * space never ends, and `getShortestPaths` never returns.
 */
export function serializeState(snapshot: RegistrarSnapshot): string {
  const c = snapshot.context;
  const ids = activeStateIds(snapshot);
  const inLoop = ids.has('registrar.acquiringLock') || ids.has('registrar.registering') || ids.has('registrar.backoff');
  return JSON.stringify({
    v: snapshot.value,
    lock: c.lock,
    cb: c.callbackWindowOpen,
    // Whether a callback was accepted in this attempt: later ones are refused (only while it matters).
    ...(ids.has('registrar.registering') || ids.has('registrar.registered') ? { secret: c.secretReceived } : {}),
    // Counts toward max_retry: the next failure's fate depends on it.
    ...(inLoop ? { attempt: c.attempt } : {}),
    // The backoff's branch, its log line and its delay depend on these.
    ...(ids.has('registrar.backoff') ? { failure: c.lastFailure?.class ?? null, retryAfter: c.lastFailure?.retryAfterMs != null } : {}),
    // The TTL timer runs for a full interval, or for what remains of a sibling's.
    ...(ids.has('registrar.registered') ? { ttlRemainder: c.healthTtlMs !== c.settings.intervalMs } : {}),
    // Protocol siwe: a re-arm before a sign-in backs off (and the count goes on through a registration).
    ...(c.rearmedWithoutSignIn ? { rearmed: true, attempt: c.attempt } : {}),
    // The access session: failed tries in a row (retry or give up), and whether a token is held (refresh or first).
    ...(c.settings.session !== null && ids.has('registrar.registered') ? { signInFailures: c.session.failures, token: c.session.tokenExpiresAtMs !== null } : {}),
  });
}

/**
 * The events a snapshot offers: those of the catalogue some active state node
 * has a transition for. One timing rule keeps the model honest: the callback
 * window is shorter than the interval (see {@link traversalOptions}), so while
 * it is open the TTL timer cannot fire first and is not offered.
 */
export function enabledEvents(catalog: readonly RegistrarModelEvent[]): (snapshot: RegistrarSnapshot) => RegistrarModelEvent[] {
  return (snapshot) => {
    if (snapshot.status !== 'active') return [];
    const windowOpen = activeStateIds(snapshot).has('registrar.registered.callbackWindow.open');
    return catalog.filter((event) => {
      if (!snapshot._nodes.some((n) => n.transitions.has(event.type))) return false;
      return !(windowOpen && event.type.startsWith('xstate.after.healthTtl.'));
    });
  };
}

/**
 * `registrarMachine` as actor logic over {@link RegistrarModelEvent}: the
 * machine's own event type lists only the events sent from outside; a model
 * also sends XState's (`xstate.done.actor.*`, `xstate.error.actor.*`,
 * `xstate.after.*`), which the machine handles like any other. As plain
 * logic it also takes its input (`getPathsFromEvents` of @xstate/graph 3
 * builds a machine's default options without it).
 */
export const registrarModelLogic: ActorLogic<RegistrarSnapshot, RegistrarModelEvent, RegistrarInput> = {
  transition: (snapshot, event, scope) => registrarMachine.transition(snapshot, event as RegistrarEvent, scope),
  getInitialSnapshot: (scope, input) => registrarMachine.getInitialSnapshot(scope, input),
  getPersistedSnapshot: (snapshot) => registrarMachine.getPersistedSnapshot(snapshot),
};

/** The snapshot after `event`, computed purely (no actor, no effect). */
export function nextSnapshot(snapshot: RegistrarSnapshot, event: RegistrarModelEvent): RegistrarSnapshot {
  return transition(registrarModelLogic, snapshot, event)[0];
}

/** The options `@xstate/graph`'s traversals take, for {@link registrarModelLogic}: a vertex is an abstract state. */
export interface RegistrarTraversalOptions {
  input: RegistrarInput;
  events: (snapshot: RegistrarSnapshot) => RegistrarModelEvent[];
  serializeState: (snapshot: RegistrarSnapshot, event?: RegistrarModelEvent, previous?: RegistrarSnapshot) => string;
}

/**
 * Traversal options for `settings` and a catalogue (`getShortestPaths(registrarModelLogic, traversalOptions(…))`).
 * `edges: true` makes a vertex "abstract state, reached by event from abstract state": the shortest
 * path to every vertex then takes every edge of the model.
 * @throws {RangeError} when the callback window is not shorter than the interval (the model assumes it is)
 */
export function traversalOptions(settings: RegistrarSettings, catalog: readonly RegistrarModelEvent[], { edges = false } = {}): RegistrarTraversalOptions {
  if (settings.callbackWindowMs >= settings.intervalMs) {
    throw new RangeError('the model assumes callbackWindowMs < intervalMs (which timer fires first depends on it)');
  }
  const events = enabledEvents(catalog);
  if (!edges) return { input: { settings }, events, serializeState: (s) => serializeState(s) };
  return {
    input: { settings },
    events,
    serializeState: (s, e, prev) => (e && prev ? `${serializeState(s)} via ${eventLabel(e)} from ${serializeState(prev)}` : serializeState(s)),
  };
}

/**
 * A path of `@xstate/graph` as {@link executePath} takes it. The graph hands
 * back, for each step, *a* snapshot with the step's abstract state (reached
 * by whatever path it met first, counters and all), so the events are
 * replayed with XState's pure transitions for the exact snapshot of each step.
 */
export function toModelPath(path: StatePath<RegistrarSnapshot, RegistrarModelEvent>, settings: RegistrarSettings): ModelPath {
  let snapshot: RegistrarSnapshot | null = null;
  const steps = path.steps.map((s, i) => {
    const event = s.event;
    if (snapshot === null) {
      if (event.type !== 'xstate.init') throw new Error('a path starts with xstate.init');
      [snapshot] = initialTransition(registrarMachine, { settings });
    } else {
      snapshot = nextSnapshot(snapshot, event);
    }
    if (serializeState(snapshot) !== serializeState(s.state)) throw new Error(`the replay diverges from the model at step ${i}`);
    return { event, state: snapshot };
  });
  return { description: steps.map((s) => eventLabel(s.event)).join(' → '), steps };
}

/** Drops every path whose events are a prefix of another path's (it is executed as part of the longer one). */
export function dropPrefixPaths(paths: readonly ModelPath[]): ModelPath[] {
  const sorted = [...paths].sort((a, b) => b.steps.length - a.steps.length);
  const kept: ModelPath[] = [];
  for (const p of sorted) {
    const isPrefix = kept.some((k) => p.steps.every((s, i) => k.steps[i] !== undefined && eventLabel(k.steps[i].event) === eventLabel(s.event)));
    if (!isPrefix) kept.push(p);
  }
  return kept;
}

/**
 * Appends the timer that fires next, if the path ends in a state with one, so
 * that the execution checks its deadline (an edge that wrongly re-arms or
 * cancels a timer is only seen when the timer is due).
 */
export function withTrailingTimer(path: ModelPath, catalog: readonly RegistrarModelEvent[]): ModelPath {
  const last = path.steps.at(-1);
  if (!last) return path;
  const timer = enabledEvents(catalog)(last.state).find((e) => e.type.startsWith('xstate.after.'));
  if (!timer) return path;
  return { description: `${path.description} → ${eventLabel(timer)}`, steps: [...path.steps, { event: timer, state: nextSnapshot(last.state, timer) }] };
}

/** One shortest path to every abstract state. */
export function shortestPaths(settings: RegistrarSettings, catalog: readonly RegistrarModelEvent[]): ModelPath[] {
  return getShortestPaths(registrarModelLogic, traversalOptions(settings, catalog)).map((p) => toModelPath(p, settings));
}

/** Edge coverage: one shortest path to every (state, event) edge of the model, each followed by the timer due next; prefixes dropped. */
export function edgeCoveringPaths(settings: RegistrarSettings, catalog: readonly RegistrarModelEvent[]): ModelPath[] {
  const paths = getShortestPaths(registrarModelLogic, traversalOptions(settings, catalog, { edges: true }));
  return dropPrefixPaths(paths.map((p) => withTrailingTimer(toModelPath(p, settings), catalog)));
}

/** Every simple path (no abstract state twice) to the states `toState` accepts. Keep the catalogue small: their number explodes. */
export function simplePaths(settings: RegistrarSettings, catalog: readonly RegistrarModelEvent[], toState: (s: RegistrarSnapshot) => boolean): ModelPath[] {
  return getSimplePaths(registrarModelLogic, { ...traversalOptions(settings, catalog), toState }).map((p) => toModelPath(p, settings));
}

/** The path an explicit sequence of events takes. @throws when an event is not handled where it comes */
export function pathFromEvents(settings: RegistrarSettings, events: readonly RegistrarModelEvent[]): ModelPath {
  const [path] = getPathsFromEvents(registrarModelLogic, [...events], { ...traversalOptions(settings, []), events: [...events] });
  if (path === undefined) throw new Error('getPathsFromEvents found no path');
  const modelPath = toModelPath(path, settings);
  modelPath.steps.forEach((step, i) => {
    const before = modelPath.steps[i - 1]?.state;
    if (!before) return;
    if (before.status !== 'active' || !before._nodes.some((n) => n.transitions.has(step.event.type))) {
      throw new Error(`step ${i}: ${eventLabel(step.event)} is not handled in ${JSON.stringify(before.value)}`);
    }
  });
  return modelPath;
}

/** The model's size: abstract states and edges. */
export function modelSize(settings: RegistrarSettings, catalog: readonly RegistrarModelEvent[]): { states: number; edges: number } {
  const adjacency = getAdjacencyMap(registrarModelLogic, traversalOptions(settings, catalog));
  const states = Object.keys(adjacency).length;
  const edges = Object.values(adjacency).reduce((n, v) => n + Object.keys(v.transitions).length, 0);
  return { states, edges };
}

// ---------------------------------------------------------------------------
// The machine's definition, enumerated (for coverage)
// ---------------------------------------------------------------------------

function guardName(t: { guard?: unknown }): string {
  const g = t.guard;
  if (g === undefined) return '';
  if (typeof g === 'string') return g;
  if (typeof g === 'object' && g !== null && 'type' in g) return String(g.type);
  return 'inline';
}

/** The key of one transition: source, event (`always` for eventless), branch index and guard. */
export function transitionKey(source: AnyStateNode, eventType: string, index: number, guard: string): string {
  return `${source.id} —${eventType === '' ? 'always' : eventType}#${index}${guard ? `[${guard}]` : ''}`;
}

/** The key of a transition taken (as a microstep's inspection event lists them). */
export function keyOfTakenTransition(t: { source: AnyStateNode; eventType: string; guard?: unknown }): string {
  const source = t.source;
  const branches = t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
  const index = (branches as readonly unknown[]).indexOf(t);
  if (index < 0) throw new Error(`transition ${source.id} ${t.eventType} not found on its source`);
  return transitionKey(source, t.eventType, index, guardName(t));
}

/** Every transition of the machine: each branch of `on`, `after`, `always`, `onDone`, `onError`. */
export function enumerateTransitions(root: AnyStateNode = registrarMachine.root): Set<string> {
  const keys = new Set<string>();
  for (const node of allStateNodes(root)) {
    for (const [eventType, branches] of node.transitions) branches.forEach((t, i) => keys.add(transitionKey(node, eventType, i, guardName(t))));
    (node.always ?? []).forEach((t, i) => keys.add(transitionKey(node, '', i, guardName(t))));
  }
  return keys;
}

/** Every state node id (root included). */
export function enumerateStateIds(root: AnyStateNode = registrarMachine.root): Set<string> {
  return new Set(allStateNodes(root).map((n) => n.id));
}
