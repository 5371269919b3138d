/**
 * inspect — connect a registrar to the Stately inspector without leaking a
 * secret. The registrar keeps secrets out of the actor altogether; this
 * module is the last line of defence: every inspection event (snapshots,
 * events, child actors' inputs, outputs and errors, the serialized machine
 * definition) passes through a redacting serializer that scrubs every known
 * secret value and drops every field named like a secret. The stream also
 * carries the running timers and the definition in declaration order
 * (src/inspect-stream.ts) for the live view.
 */
import { createWebSocketInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { AnyActorRef, AnyEventObject, InspectionEvent, MachineContext, Observer } from 'xstate';
import { orderedDefinition, timersMessage } from './inspect-stream.js';
import { createRedactor, type Redactor } from './redact.js';

/** Options of {@link createSanitizingInspector}. */
export interface SanitizingInspectorOptions {
  /** The inspector relay's WebSocket URL, e.g. `ws://127.0.0.1:8090`. */
  url: string;
  /** Secrets known up front (more can be added with `addSecrets`). */
  secrets?: Iterable<string>;
  /** Start connecting at once (default true). */
  autoStart?: boolean;
}

/** A Stately WebSocket inspector with a redacting serializer. Pass it as `inspect` to `createRegistrar`. */
export interface SanitizingInspector {
  /** The observer XState calls. */
  readonly inspect: Observer<InspectionEvent>;
  /** Teach the sanitizer more secret values (createRegistrar does this for its own). */
  addSecrets(secrets: Iterable<string>, kind?: SecretKind): void;
  /** The redactor applied to every message (exposed for tests). */
  readonly redact: Redactor;
  start(): void;
  /** Close the WebSocket; lets the process exit. */
  stop(): void;
}

/**
 * A secret kept for good (`configured`: the registration secret, the key),
 * among the last few (`recent`: node secrets), or among the last two
 * (`token`: access tokens, one per refresh — their own list, so that
 * refreshes never push a node secret out).
 */
export type SecretKind = 'configured' | 'recent' | 'token';

/** How many of the secrets added later (node secrets DDS handed over) a scrubber keeps: the current one and a few before it. */
export const RECENT_SECRETS_KEPT = 4;

/** How many access tokens a scrubber keeps: the one held and the one it replaced. */
export const RECENT_TOKENS_KEPT = 2;

/**
 * A set of secret values plus the redactor that scrubs them. The `initial`
 * ones (the configured secrets) are kept for good; of those added later, the
 * last {@link RECENT_SECRETS_KEPT}: a node secret replaced long ago is in no
 * message any more, and keeping every one would make each message cost more
 * than the one before.
 */
export function createSecretScrubber(initial: Iterable<string> = []): {
  add(s: Iterable<string>, kind?: SecretKind): void;
  redact: Redactor;
} {
  const configured = new Set<string>();
  let recent: string[] = [];
  let tokens: string[] = [];
  const add = (secrets: Iterable<string>, kind: SecretKind = 'recent'): void => {
    for (const s of secrets) {
      if (typeof s !== 'string' || s.length === 0 || configured.has(s)) continue;
      if (kind === 'configured') {
        configured.add(s);
        recent = recent.filter((r) => r !== s);
        tokens = tokens.filter((r) => r !== s);
      } else if (kind === 'token') {
        tokens = [...tokens.filter((r) => r !== s), s].slice(-RECENT_TOKENS_KEPT);
      } else {
        recent = [...recent.filter((r) => r !== s), s].slice(-RECENT_SECRETS_KEPT);
      }
    }
  };
  add(initial, 'configured');
  return { add, redact: createRedactor(() => [...configured, ...recent, ...tokens]) };
}

/**
 * A WebSocket inspector for `@statelyai/inspect` whose every message is
 * scrubbed of secrets (context, events and the serialized message itself).
 */
export function createSanitizingInspector(options: SanitizingInspectorOptions): SanitizingInspector {
  const scrubber = createSecretScrubber(options.secrets);
  // Root machines' definitions in declaration order (src/inspect-stream.ts), until their message is sent.
  const definitions = new Map<string, string>();
  const ordered = (event: StatelyInspectionEvent): StatelyInspectionEvent => {
    if (event.type !== '@xstate.actor') return event;
    const definition = definitions.get(event.sessionId);
    if (definition === undefined) return event;
    definitions.delete(event.sessionId);
    return { ...event, definition };
  };
  const inspector = createWebSocketInspector({
    url: options.url,
    autoStart: options.autoStart ?? true,
    sanitizeContext: (context: MachineContext) => scrubber.redact(context),
    sanitizeEvent: (event: AnyEventObject) => scrubber.redact(event),
    serialize: (event: StatelyInspectionEvent) => scrubber.redact(ordered(event)),
  });
  // @statelyai/inspect's WebSocket adapter reconnects 5 s after any socket
  // error, including the one a close() during connecting raises, and keeps
  // its deferred events forever. Stopping must end all of that.
  const adapter = inspector.adapter as unknown as {
    ws?: { onerror: unknown; onopen: unknown; onclose: unknown };
    deferredEvents?: unknown[];
    send(message: unknown): void;
  };
  let stopped = false;
  const inspect: Observer<InspectionEvent> = {
    next: (event) => {
      if (event.type === '@xstate.actor' && event.actorRef.sessionId === event.rootId) {
        const definition = orderedDefinition(event.actorRef as AnyActorRef);
        if (definition !== undefined) definitions.set(event.actorRef.sessionId, definition);
      }
      inspector.inspect.next?.(event);
      // The live view's timers (src/inspect-stream.ts): read now, sent after the snapshot,
      // which @statelyai/inspect sends on the next turn.
      const timers = timersMessage(event);
      if (timers) setTimeout(() => stopped || adapter.send(scrubber.redact(timers)), 0);
    },
  };
  return {
    inspect,
    addSecrets: scrubber.add,
    redact: scrubber.redact,
    start: () => {
      stopped = false;
      inspector.start();
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (adapter.ws) {
        adapter.ws.onerror = () => undefined;
        adapter.ws.onopen = null;
      }
      inspector.stop();
      if (adapter.deferredEvents) adapter.deferredEvents.length = 0;
    },
  };
}
