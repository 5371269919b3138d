/**
 * inspect-stream — what the sanitized inspection stream carries for the live
 * view beyond `@statelyai/inspect`'s own messages (createSanitizingInspector
 * adds both):
 *
 * - the running timers: after every snapshot of a root actor, which of its
 *   delays are armed, in which state, and when each fires. XState keeps them
 *   in its scheduler, not in the snapshot; they are read at once (the
 *   scheduler moves on) and sent after the snapshot they belong to;
 * - the machine's definition in declaration order: `@statelyai/inspect`
 *   serializes it with its keys sorted, which puts the states in alphabetical
 *   order (`acquiringLock`, `backoff`, …) instead of the lifecycle's.
 */
import type { AnyActorRef, InspectionEvent } from 'xstate';

/** The message's `type`. The Stately bridge page does not forward it (the inspector knows only `@xstate.*`). */
export const TIMERS_MESSAGE_TYPE = '@posemesh.timers';

/** One armed timer. */
export interface RunningTimer {
  /** The delay's name (`healthTtl`, `retryDelay`, …), or its length in ms for an unnamed one. */
  delay: string;
  /** The state that armed it, as a path (`registered.health.fresh`). */
  state: string;
  /** Its length, ms. */
  ms: number;
  /** When it was armed and when it fires, ms since the epoch (the daemon's clock). */
  startedAt: number;
  dueAt: number;
}

/** The timers of one root actor right after one of its snapshots. */
export interface TimersMessage {
  type: typeof TIMERS_MESSAGE_TYPE;
  /** The actor's session (the `sessionId` of its `@xstate.*` messages). */
  sessionId: string;
  /** When they were read, ms since the epoch, as a string (like the `@xstate.*` messages). */
  createdAt: string;
  /** Soonest first. */
  timers: RunningTimer[];
}

/** The part of a scheduled event read here (`ActorSystem.getSnapshot()._scheduledEvents`). */
interface Scheduled {
  event: { type: string };
  startedAt: number;
  delay: number;
  source: unknown;
}

/** A machine's delayed transition event: `xstate.after.<delay>.<state node id>`. */
const AFTER_EVENT = /^xstate\.after\.([^.]+)\.(.+)$/;

/** The timers `actor` has armed now, soonest first (a delayed event it sends itself counts too). */
export function runningTimers(actor: AnyActorRef): RunningTimer[] {
  const scheduled = Object.values(actor.system.getSnapshot()._scheduledEvents) as Scheduled[];
  // A machine's state node ids start with the machine's id.
  const machineId = typeof actor.src === 'object' ? (actor.src as { id?: unknown }).id : undefined;
  const prefix = typeof machineId === 'string' ? `${machineId}.` : '';
  return scheduled
    .filter((s) => s.source === actor)
    .map((s) => {
      const after = AFTER_EVENT.exec(s.event.type);
      const stateId = after?.[2] ?? '';
      return {
        delay: after?.[1] ?? s.event.type,
        state: stateId.startsWith(prefix) ? stateId.slice(prefix.length) : stateId,
        ms: s.delay,
        startedAt: s.startedAt,
        dueAt: s.startedAt + s.delay,
      };
    })
    .sort((a, b) => a.dueAt - b.dueAt);
}

/** The timers message for an inspection event, when it is a snapshot of a root actor; otherwise null. */
export function timersMessage(event: InspectionEvent, now: number = Date.now()): TimersMessage | null {
  if (event.type !== '@xstate.snapshot' || event.actorRef.sessionId !== event.rootId) return null;
  return {
    type: TIMERS_MESSAGE_TYPE,
    sessionId: event.actorRef.sessionId,
    createdAt: String(now),
    timers: runningTimers(event.actorRef as AnyActorRef),
  };
}

/** The depth `@statelyai/inspect` serializes a definition to. */
const DEFINITION_DEPTH = 10;

/** A value as `@statelyai/inspect` serializes a definition: functions as `{ type: name }`, cut at `maxDepth`. */
function definitionValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'function') return { type: value.name };
  if (value === null || typeof value !== 'object') return value;
  if (depth >= DEFINITION_DEPTH || seen.has(value)) return '[...]';
  seen.add(value);
  const out = Array.isArray(value)
    ? value.map((v) => definitionValue(v, depth + 1, seen))
    : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, definitionValue(v, depth + 1, seen)]));
  seen.delete(value);
  return out;
}

/**
 * The `definition` of an actor's `@xstate.actor` message — the JSON of its
 * machine's config — with the keys in declaration order; undefined when the
 * actor is not a machine.
 */
export function orderedDefinition(actor: AnyActorRef): string | undefined {
  const config = typeof actor.src === 'object' ? (actor.src as { config?: unknown }).config : undefined;
  if (config === null || typeof config !== 'object') return undefined;
  return JSON.stringify(definitionValue(config, 0, new WeakSet()));
}
