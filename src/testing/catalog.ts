/**
 * testing/catalog — every event a path through the registrar may contain,
 * typed: the invoked actors' `xstate.done.actor.<name>` (with outputs typed
 * by `RegistrarActorOutputs`) and `xstate.error.actor.<name>`, the delayed
 * transitions' `xstate.after.<delay>.<state id>` (read from the machine's
 * definition), and the events sent from outside.
 */
import type { AnyStateNode } from 'xstate';
import { registrarMachine } from '../../machines/registrar.js';
import type { RegistrarActorName, RegistrarActorOutputs, RegistrarEvent } from '../../machines/registrar.js';

/** The invoked actors (each is invoked with its own name as id). */
export const REGISTRAR_ACTOR_NAMES = [
  'checkCredentials',
  'acquireLock',
  'readSharedState',
  'registerWithDds',
  'shutdown',
  'signIn',
] as const satisfies readonly RegistrarActorName[];

/** An invoked actor resolved, with what the machine's types say it resolves with. */
export type RegistrarDoneEvent<A extends RegistrarActorName = RegistrarActorName> = {
  [N in A]: { type: `xstate.done.actor.${N}`; output: RegistrarActorOutputs[N] };
}[A];

/** An invoked actor rejected. */
export type RegistrarErrorEvent<A extends RegistrarActorName = RegistrarActorName> = {
  [N in A]: { type: `xstate.error.actor.${N}`; error: unknown };
}[A];

/** A delayed transition's timer fired: `xstate.after.<delay>.<state id>`. */
export interface RegistrarAfterEvent {
  type: `xstate.after.${string}`;
}

/** The first step of every path. */
export interface RegistrarInitEvent {
  type: 'xstate.init';
}

/** Every event a path may contain. */
export type RegistrarModelEvent = RegistrarEvent | RegistrarDoneEvent | RegistrarErrorEvent | RegistrarAfterEvent | RegistrarInitEvent;

/** `name` resolved with `output`. */
export function doneEvent<A extends RegistrarActorName>(name: A, output: RegistrarActorOutputs[A]): RegistrarDoneEvent<A> {
  return { type: `xstate.done.actor.${name}`, output } as RegistrarDoneEvent<A>;
}

/** `name` rejected with `error`. */
export function errorEvent<A extends RegistrarActorName>(name: A, error: unknown): RegistrarErrorEvent<A> {
  return { type: `xstate.error.actor.${name}`, error } as RegistrarErrorEvent<A>;
}

/** The actor a done or error event is of, or null for any other event. */
export function actorEventOf(event: RegistrarModelEvent): { kind: 'done' | 'error'; name: RegistrarActorName } | null {
  const m = /^xstate\.(done|error)\.actor\.(.+)$/.exec(event.type);
  const name = REGISTRAR_ACTOR_NAMES.find((n) => n === m?.[2]);
  if (m === null || name === undefined) return null;
  return { kind: m[1] === 'done' ? 'done' : 'error', name };
}

/** Whether `event` is `name`'s done event (its output then typed). */
export function isDoneEvent<A extends RegistrarActorName>(event: RegistrarModelEvent, name: A): event is Extract<RegistrarModelEvent, RegistrarDoneEvent<A>> {
  return event.type === `xstate.done.actor.${name}`;
}

/** `name`'s done event, or null. */
export function doneOf<A extends RegistrarActorName>(event: RegistrarModelEvent, name: A): Extract<RegistrarModelEvent, RegistrarDoneEvent<A>> | null {
  return isDoneEvent(event, name) ? event : null;
}

/** An event sent from outside (not one of XState's own). */
export function isExternalEvent(event: RegistrarModelEvent): event is RegistrarEvent {
  return !event.type.startsWith('xstate.');
}

/** `xstate.after.<delay>.<state id>` → its parts (delay names have no dot); null for another event type. */
export function parseAfterEventType(type: string): { delay: string; stateId: string } | null {
  const m = /^xstate\.after\.([^.]+)\.(.+)$/.exec(type);
  return m?.[1] === undefined || m[2] === undefined ? null : { delay: m[1], stateId: m[2] };
}

/** The rejection of every fake actor's `xstate.error.actor.*` event in the catalogue (no secret in it). */
export const ACTOR_FAILURE: Error & { code: string } = Object.assign(new Error('simulated effect failure'), { code: 'ESIMULATED' });

const ENDPOINT = '/internal/v1/nodes/register';
const VERIFY_ENDPOINT = '/internal/v1/auth/siwe/verify';

/** Representative outputs of the invoked actors: one per behaviour the machine distinguishes. */
export const REPRESENTATIVE_OUTPUTS = {
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
    /** A live sibling registered and was probed 4 s ago (fresh for an interval longer than that). */
    liveFresh: { status: 'registered', healthcheckAgeMs: 4_000, writtenByLiveSibling: true },
    /** A live sibling registered, but its last probe is 12 s old. */
    liveStale: { status: 'registered', healthcheckAgeMs: 12_000, writtenByLiveSibling: true },
    /** A probe 3 s ago on file, written by a process that is gone (or by this one). */
    ownFresh: { status: 'registered', healthcheckAgeMs: 3_000, writtenByLiveSibling: false },
    /** Nobody registered. */
    notRegistered: { status: 'disconnected', healthcheckAgeMs: null, writtenByLiveSibling: false },
  } satisfies Record<string, RegistrarActorOutputs['readSharedState']>,
  registerWithDds: {
    ok: { ok: true, status: 200, endpoint: ENDPOINT },
    retryable: { ok: false, class: 'retryable', status: 503, endpoint: ENDPOINT, retryAfterMs: null, message: 'HTTP 503' },
    retryableRetryAfter: { ok: false, class: 'retryable', status: 429, endpoint: ENDPOINT, retryAfterMs: 30_000, message: 'HTTP 429' },
    conflict: { ok: false, class: 'conflict', status: 409, endpoint: ENDPOINT, retryAfterMs: null, message: 'HTTP 409' },
    slowRetryAfter: { ok: false, class: 'slow', status: 400, endpoint: ENDPOINT, retryAfterMs: 60_000, message: 'HTTP 400', code: 'EHTTP' },
  } satisfies Record<string, RegistrarActorOutputs['registerWithDds']>,
  shutdown: { done: undefined } satisfies Record<string, RegistrarActorOutputs['shutdown']>,
  signIn: {
    /** A token for an hour (the simulator's default lifetime). */
    ok: { ok: true, expiresAtMs: 1_900_000_000_000, lifetimeMs: 3_600_000, endpoint: VERIFY_ENDPOINT },
    /** `verify` answered 503; a token with 10 minutes left is still held. */
    retryable: { ok: false, class: 'retryable', status: 503, endpoint: VERIFY_ENDPOINT, retryAfterMs: null, message: 'HTTP 503', forgotten: false, tokenRemainingMs: 600_000 },
    /** `verify` answered 403: DDS no longer knows the node. */
    forgotten: { ok: false, class: 'slow', status: 403, endpoint: VERIFY_ENDPOINT, retryAfterMs: null, message: 'HTTP 403', forgotten: true, tokenRemainingMs: null },
  } satisfies Record<string, RegistrarActorOutputs['signIn']>,
} as const;

/** The name of a representative output of actor `A`. */
export type OutputName<A extends RegistrarActorName> = keyof (typeof REPRESENTATIVE_OUTPUTS)[A] & string;

/** The events sent from outside, as a catalogue offers them. */
export const EXTERNAL_EVENTS: readonly RegistrarEvent[] = [
  { type: 'HEALTHCHECK' },
  { type: 'SECRET_RECEIVED', nodeId: 'node-7', organizationId: 'org-3', secretLength: 32, repeat: false },
  // DDS retrying the callback it made: the same body, so the route flags it a repeat.
  { type: 'SECRET_RECEIVED', nodeId: 'node-7', organizationId: 'org-3', secretLength: 32, repeat: true },
  { type: 'REGISTER_NOW' },
  { type: 'STOP' },
  { type: 'LOCK_COMPROMISED', code: 'ECOMPROMISED', message: 'the lock was not refreshed in time' },
  { type: 'REARM' },
  { type: 'TOKEN_UNAUTHORIZED' },
];

/** Which outputs (by name in {@link REPRESENTATIVE_OUTPUTS}) a catalogue offers, whether actors reject, which external events. */
export interface CatalogOptions {
  outcomes: { [A in RegistrarActorName]: readonly OutputName<A>[] };
  /** Offer each actor's `xstate.error.actor.*` (with {@link ACTOR_FAILURE}). */
  actorErrors: boolean;
  /** The external events (default {@link EXTERNAL_EVENTS}). */
  external?: readonly RegistrarEvent[];
}

/** Every representative output, every rejection, every external event. */
export const FULL_CATALOG: CatalogOptions = {
  outcomes: {
    checkCredentials: ['ok', 'invalid'],
    acquireLock: ['acquired', 'takeover', 'busy', 'error'],
    readSharedState: ['liveFresh', 'liveStale', 'ownFresh', 'notRegistered'],
    registerWithDds: ['ok', 'retryable', 'retryableRetryAfter', 'conflict', 'slowRetryAfter'],
    shutdown: ['done'],
    signIn: ['ok', 'retryable', 'forgotten'],
  },
  actorErrors: true,
};

const eventLabels = new WeakMap<object, string>();

/** A short, readable name of a catalogue event (`done: acquireLock(busy)`, `after interval (waitingForLock)`), else its type. */
export function eventLabel(event: RegistrarModelEvent): string {
  return eventLabels.get(event) ?? event.type;
}

function labelled<E extends RegistrarModelEvent>(event: E, label: string): E {
  eventLabels.set(event, label);
  return event;
}

/** The root and every state node below it. */
export function allStateNodes(root: AnyStateNode = registrarMachine.root): AnyStateNode[] {
  return [root, ...Object.values(root.states).flatMap((child) => allStateNodes(child))];
}

/** Every delayed transition's event of the machine, labelled `after <delay> (<state key>)`. */
export function afterEvents(): RegistrarAfterEvent[] {
  return allStateNodes().flatMap((node) =>
    node.after.map((t) => labelled({ type: t.eventType as RegistrarAfterEvent['type'] }, `after ${parseAfterEventType(t.eventType)?.delay ?? '?'} (${node.key})`)),
  );
}

/**
 * The catalogue of events for `options` (default: {@link FULL_CATALOG}).
 * Stable objects: a path generator keys on them; give the same array to
 * every call of one traversal.
 */
export function buildCatalog(options: CatalogOptions = FULL_CATALOG): RegistrarModelEvent[] {
  const events: RegistrarModelEvent[] = [];
  for (const name of REGISTRAR_ACTOR_NAMES) {
    const outputs: Readonly<Record<string, unknown>> = REPRESENTATIVE_OUTPUTS[name];
    for (const key of options.outcomes[name] as readonly string[]) {
      // `REPRESENTATIVE_OUTPUTS[name]` is checked against the machine's output type of `name` above.
      events.push(labelled({ type: `xstate.done.actor.${name}`, output: outputs[key] } as RegistrarDoneEvent, `done: ${name}(${key})`));
    }
    if (options.actorErrors) events.push(labelled(errorEvent(name, ACTOR_FAILURE), `error: ${name}`));
  }
  events.push(...afterEvents());
  for (const e of options.external ?? EXTERNAL_EVENTS) events.push(labelled({ ...e }, e.type === 'SECRET_RECEIVED' && e.repeat ? 'SECRET_RECEIVED (repeat)' : e.type));
  return events;
}

/** A catalogue event by its label (for hand-written paths). @throws when there is none */
export function pick(catalog: readonly RegistrarModelEvent[], label: string): RegistrarModelEvent {
  const event = catalog.find((e) => eventLabel(e) === label);
  if (event === undefined) throw new Error(`no event labelled ${label} in the catalogue`);
  return event;
}
