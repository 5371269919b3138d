/**
 * The registrar statechart: the whole registration lifecycle of a posemesh
 * node, in one place.
 *
 * ```
 * starting ─► acquiringLock ─► registering ─► registered ─► healthCheckStale ─┐
 *                 ▲  (trying ⇄ waitingForLock)    │   ▲ (health: fresh ⇄ checkingSiblings)
 *                 │                               ▼   │                          │
 *                 └──────────── backoff (deciding → retrying | cooldown) ◄───────┘
 *   STOP (anywhere) ─► stopping ─► stopped        invalid key ─► failed
 * ```
 *
 * Pure: this file imports `xstate` and nothing that touches a socket, a file
 * or a clock. Every effect is a named action or invoked actor; the
 * implementations here are placeholders, and `src/registrar.ts` supplies the
 * real ones with `.provide()`. Tests can swap any of them.
 *
 * Secrets never enter this machine: not in input, context, events or
 * outputs. The signer and the DDS client that hold them are captured by the
 * effect implementations.
 */
import { assign, fromPromise, setup } from 'xstate';

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/**
 * The longest delay the machine ever schedules (24 h). Node's timers overflow
 * above 2^31−1 ms (about 24.8 days) and then fire at once; every delay
 * (intervals, `Retry-After`, backoff) is capped well below that.
 */
export const MAX_DELAY_MS = 24 * 60 * 60 * 1000;

/** The shortest interval (the crate clamps the interval to at least 1 s). */
export const MIN_INTERVAL_MS = 1000;

/** Clamp a delay into [0, {@link MAX_DELAY_MS}]; NaN becomes 0. */
export function capDelayMs(ms: number): number {
  if (!Number.isFinite(ms)) return ms > 0 ? MAX_DELAY_MS : 0;
  return Math.min(Math.max(0, Math.round(ms)), MAX_DELAY_MS);
}

// ---------------------------------------------------------------------------
// Types: input, context, events, actor outputs
// ---------------------------------------------------------------------------

/** Who may hand the node its secret: see `docs/` (callback admission). */
export type CallbackPolicy = 'window' | 'always';

/** The machine's settings. No secrets here: they live in the effects. */
export interface RegistrarSettings {
  /** Interval and health-check TTL, ms (≥ 1000, ≤ {@link MAX_DELAY_MS}). */
  intervalMs: number;
  /** Retryable failures before a one-interval cooldown; −1 = unlimited. */
  maxRetry: number;
  /** `window` (default): callbacks only around a registration; `always`: the crate's behaviour. */
  callbackPolicy: CallbackPolicy;
  /** How long after a successful answer a callback is still accepted, ms. */
  callbackWindowMs: number;
}

/** The machine's input. */
export interface RegistrarInput {
  settings: RegistrarSettings;
}

/** How a failed registration is classed (PROTOCOL.md §3, "beyond"). */
export type FailureClass = 'conflict' | 'retryable' | 'slow';

/** The last failure, as a small value safe to publish. */
export interface FailureInfo {
  class: FailureClass;
  status: number | null;
  endpoint: string;
  retryAfterMs: number | null;
  message: string;
  code?: string;
}

/** A terminal error (the machine went to `failed`). */
export interface RegistrarError {
  code: string;
  message: string;
}

/** Whether this registrar holds the cross-process lock. */
export type LockStatus = 'none' | 'held' | 'unlocked';

/** The machine's context: counters, timings and ids — nothing secret. */
export interface RegistrarContext {
  settings: RegistrarSettings;
  /** Consecutive retryable failures (reset on success, cooldown, conflict, slow). */
  attempt: number;
  /** Registration requests sent so far. */
  requests: number;
  /** Successful registrations so far. */
  registrations: number;
  lock: LockStatus;
  lastFailure: FailureInfo | null;
  /** What the backoff policy proposed for the next retry, ms (before `Retry-After` and the cap). */
  policyDelayMs: number;
  /** The TTL timer's next length, ms (one interval, or what remains of a sibling's). */
  healthTtlMs: number;
  /** True from a successful answer until the callback window's timer fires. */
  callbackWindowOpen: boolean;
  /** Health probes received (counted, not timed: time lives in the state file). */
  probes: number;
  callbacks: number;
  nodeId: string | null;
  organizationId: string | null;
  publicKeyPrefix: string | null;
  error: RegistrarError | null;
}

/** A DDS health probe arrived (the route persists nothing itself: the machine does). */
export interface HealthcheckEvent {
  type: 'HEALTHCHECK';
}
/** DDS handed over a node secret; the route stored it. Carries only its length. */
export interface SecretReceivedEvent {
  type: 'SECRET_RECEIVED';
  nodeId: string;
  organizationId: string | null;
  secretLength: number;
}
/** Register now, without waiting (from `registered` or `backoff`). */
export interface RegisterNowEvent {
  type: 'REGISTER_NOW';
}
/** Stop: release the lock, persist, and end in `stopped`. */
export interface StopEvent {
  type: 'STOP';
}
/** The lock's refresh failed: another process may take it. */
export interface LockCompromisedEvent {
  type: 'LOCK_COMPROMISED';
  code: string;
  message: string;
}

/** Every event the registrar accepts from outside. */
export type RegistrarEvent =
  | HealthcheckEvent
  | SecretReceivedEvent
  | RegisterNowEvent
  | StopEvent
  | LockCompromisedEvent;

/** Output of the `checkCredentials` actor. */
export type CredentialsCheck = { ok: true; publicKeyPrefix: string } | { ok: false; code: string; message: string };

/** Output of the `acquireLock` actor. */
export type LockOutcome =
  | { kind: 'acquired'; takeover: boolean }
  | { kind: 'busy'; holderPid: number | null }
  | { kind: 'error'; code: string; message: string };

/** Output of the `readSharedState` actor: what the state file says, judged by the effect. */
export interface SharedStateView {
  status: 'disconnected' | 'registering' | 'registered';
  /** Age of the file's last health check, ms; null when none. */
  healthcheckAgeMs: number | null;
  /** The file was written by another registrar that is still alive. */
  writtenByLiveSibling: boolean;
}

/** Output of the `registerWithDds` actor (it never rejects for DDS failures). */
export type RegistrationOutcome =
  | { ok: true; status: number; endpoint: string }
  | ({ ok: false } & FailureInfo);

/** Input handed to `readSharedState`. */
export interface ReadSharedStateInput {
  intervalMs: number;
}

/** A log line the machine asks for; the implementation adds rate limiting. */
export interface LogParams {
  level: 'debug' | 'info' | 'warn' | 'error';
  event: string;
  fields?: Record<string, unknown>;
  /** Identical warnings with the same key are rate-limited. */
  rateLimitKey?: string;
}

/** Status values written to the state file. */
export type PersistedStatus = 'disconnected' | 'registering' | 'registered';

// ---------------------------------------------------------------------------
// Pure helpers (exported for tests and the wiring)
// ---------------------------------------------------------------------------

/** The crate's backoff: min(2^attempt, 60) s × a factor in [0.8, 1.2], from `random` in [0, 1). */
export function crateBackoffDelayMs(attempt: number, random: number): number {
  const base = Math.min(2 ** Math.max(0, attempt), 60) * 1000;
  return capDelayMs(base * (0.8 + 0.4 * random));
}

/** The wait before the next retry: the policy's, or `Retry-After` when longer; capped. */
export function retryDelayMs(context: RegistrarContext): number {
  return capDelayMs(Math.max(context.policyDelayMs, context.lastFailure?.retryAfterMs ?? 0));
}

/** The wait of a cooldown: one interval, or `Retry-After` when longer; capped. */
export function cooldownDelayMs(context: RegistrarContext): number {
  return capDelayMs(Math.max(context.settings.intervalMs, context.lastFailure?.retryAfterMs ?? 0));
}

/** What remains of the interval after the probe the state file records (never negative). */
export function remainingTtlMs(context: RegistrarContext, view: SharedStateView): number {
  return capDelayMs(context.settings.intervalMs - Math.max(0, view.healthcheckAgeMs ?? 0));
}

function failureFromUnknown(error: unknown): FailureInfo {
  // An actor rejected unexpectedly: keep only a safe, generic description.
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'EUNEXPECTED';
  return {
    class: 'retryable',
    status: null,
    endpoint: '',
    retryAfterMs: null,
    message: `registration attempt failed unexpectedly (${code})`,
    code,
  };
}

function failureFields(f: FailureInfo | null): Record<string, unknown> {
  if (!f) return {};
  return { class: f.class, status: f.status, endpoint: f.endpoint, error: f.message, retry_after_ms: f.retryAfterMs };
}

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

const notProvided = (name: string) => () =>
  Promise.reject(Object.assign(new Error(`registrar: the "${name}" actor was not provided`), { code: 'ENOTPROVIDED' }));

export const registrarMachine = setup({
  types: {
    context: {} as RegistrarContext,
    events: {} as RegistrarEvent,
    input: {} as RegistrarInput,
  },
  actors: {
    /** Validate the key (and whatever else must hold before the first attempt). */
    checkCredentials: fromPromise<CredentialsCheck>(notProvided('checkCredentials')),
    /** Try the cross-process lock once. */
    acquireLock: fromPromise<LockOutcome>(notProvided('acquireLock')),
    /** Read the shared state file and judge who wrote it. */
    readSharedState: fromPromise<SharedStateView, ReadSharedStateInput>(notProvided('readSharedState')),
    /** Sign and send one registration request. Resolves with the outcome, failures included. */
    registerWithDds: fromPromise<RegistrationOutcome>(notProvided('registerWithDds')),
    /** Release the lock and persist `disconnected` (unless a live sibling is registered). */
    shutdown: fromPromise<void>(notProvided('shutdown')),
  },
  actions: {
    /** Write the status to the state file (logs `status.transition`). */
    persistStatus: (_, _params: { status: PersistedStatus }) => undefined,
    /** Record a DDS health check "now" in the state file. */
    persistHealthcheck: () => undefined,
    /** Release the cross-process lock if this registrar holds it. */
    releaseLock: () => undefined,
    /** Write a log line. */
    log: (_, _params: LogParams) => undefined,
    /** Ask the backoff policy for the next retry's delay (provided: the policy is pluggable). */
    computeRetryDelay: assign({
      policyDelayMs: ({ context }) => crateBackoffDelayMs(context.attempt, 0.5),
    }),
    countFailure: assign(({ context, event }) => {
      const output = (event as { output?: RegistrationOutcome }).output;
      const failure: FailureInfo =
        output && !output.ok
          ? {
              class: output.class,
              status: output.status,
              endpoint: output.endpoint,
              retryAfterMs: output.retryAfterMs,
              message: output.message,
              ...(output.code === undefined ? {} : { code: output.code }),
            }
          : failureFromUnknown((event as { error?: unknown }).error);
      return {
        lastFailure: failure,
        attempt: failure.class === 'retryable' ? context.attempt + 1 : 0,
        callbackWindowOpen: false,
      };
    }),
    resetAttempts: assign({ attempt: 0 }),
    /** A DDS probe while registered: count it and give the TTL timer a full interval. */
    countProbe: assign(({ context }) => ({ probes: context.probes + 1, healthTtlMs: context.settings.intervalMs })),
    recordSuccess: assign(({ context }) => ({
      attempt: 0,
      lastFailure: null,
      registrations: context.registrations + 1,
      callbackWindowOpen: true,
      healthTtlMs: context.settings.intervalMs,
    })),
    recordCallback: assign(({ context, event }) => {
      if (event.type !== 'SECRET_RECEIVED') return {};
      return { callbacks: context.callbacks + 1, nodeId: event.nodeId, organizationId: event.organizationId };
    }),
  },
  guards: {
    credentialsValid: ({ event }) => (event as { output?: CredentialsCheck }).output?.ok === true,
    lockAcquired: ({ event }) => (event as { output?: LockOutcome }).output?.kind === 'acquired',
    lockBusy: ({ event }) => (event as { output?: LockOutcome }).output?.kind === 'busy',
    /** A live sibling registered within the interval: skip our own request. */
    liveSiblingRegistered: ({ context, event }) => {
      const view = (event as { output?: SharedStateView }).output;
      return (
        view !== undefined &&
        view.status === 'registered' &&
        view.writtenByLiveSibling &&
        view.healthcheckAgeMs !== null &&
        view.healthcheckAgeMs < context.settings.intervalMs
      );
    },
    /** Someone (a sibling) recorded a probe within the interval: the node is still probed. */
    freshProbeOnFile: ({ context, event }) => {
      const view = (event as { output?: SharedStateView }).output;
      return (
        view !== undefined && view.healthcheckAgeMs !== null && view.healthcheckAgeMs < context.settings.intervalMs
      );
    },
    registrationSucceeded: ({ event }) => (event as { output?: RegistrationOutcome }).output?.ok === true,
    maxRetryReached: ({ context }) =>
      context.lastFailure?.class === 'retryable' &&
      context.settings.maxRetry >= 0 &&
      context.attempt >= context.settings.maxRetry,
    lastFailureRetryable: ({ context }) => context.lastFailure?.class === 'retryable',
    callbackPolicyAlways: ({ context }) => context.settings.callbackPolicy === 'always',
    callbackWindowOpen: ({ context }) => context.callbackWindowOpen,
  },
  delays: {
    /** One interval: lock busy, cooldown without `Retry-After`. */
    interval: ({ context }) => capDelayMs(context.settings.intervalMs),
    /** The health-check TTL timer (re-armed for what remains after a sibling's probe). */
    healthTtl: ({ context }) => capDelayMs(context.healthTtlMs),
    /** The backoff policy's delay, or `Retry-After` when longer. */
    retryDelay: ({ context }) => retryDelayMs(context),
    /** One interval, or `Retry-After` when longer. */
    cooldownDelay: ({ context }) => cooldownDelayMs(context),
    /** How long callbacks are accepted after a successful answer. */
    callbackWindow: ({ context }) => capDelayMs(context.settings.callbackWindowMs),
  },
}).createMachine({
  id: 'registrar',
  context: ({ input }) => ({
    settings: input.settings,
    attempt: 0,
    requests: 0,
    registrations: 0,
    lock: 'none',
    lastFailure: null,
    policyDelayMs: 0,
    healthTtlMs: input.settings.intervalMs,
    callbackWindowOpen: false,
    probes: 0,
    callbacks: 0,
    nodeId: null,
    organizationId: null,
    publicKeyPrefix: null,
    error: null,
  }),
  initial: 'starting',
  on: {
    STOP: { target: '.stopping' },
    // A probe always counts (the crate's behaviour); `registered` also restarts its TTL timer.
    HEALTHCHECK: {
      actions: ['persistHealthcheck', assign({ probes: ({ context }) => context.probes + 1 })],
    },
    // Policy `always`: accept a callback in any state (the crate's behaviour).
    SECRET_RECEIVED: { guard: 'callbackPolicyAlways', actions: 'recordCallback' },
    LOCK_COMPROMISED: {
      actions: [
        assign({ lock: 'none' }),
        { type: 'log', params: ({ event }) => ({ level: 'warn', event: 'lock.compromised', fields: { code: event.code, error: event.message } }) },
      ],
    },
  },
  states: {
    starting: {
      invoke: {
        id: 'checkCredentials',
        src: 'checkCredentials',
        onDone: [
          {
            guard: 'credentialsValid',
            target: 'acquiringLock',
            actions: [
              assign({
                publicKeyPrefix: ({ event }) => (event.output.ok ? event.output.publicKeyPrefix : null),
              }),
              {
                type: 'log',
                params: ({ context }) => ({
                  level: 'info',
                  event: 'registration.loop.start',
                  fields: {
                    interval_ms: context.settings.intervalMs,
                    max_retry: context.settings.maxRetry,
                    callback_policy: context.settings.callbackPolicy,
                  },
                }),
              },
            ],
          },
          {
            target: 'failed',
            actions: assign({
              error: ({ event }) =>
                event.output.ok ? null : { code: event.output.code, message: event.output.message },
            }),
          },
        ],
        onError: {
          target: 'failed',
          actions: assign({
            error: { code: 'ECREDENTIALS', message: 'could not check the credentials' },
          }),
        },
      },
    },

    acquiringLock: {
      initial: 'trying',
      states: {
        trying: {
          invoke: {
            id: 'acquireLock',
            src: 'acquireLock',
            onDone: [
              {
                guard: 'lockAcquired',
                target: 'checkingSiblings',
                actions: [
                  assign({ lock: 'held' }),
                  {
                    type: 'log',
                    params: ({ event }) => ({
                      level: 'info',
                      event: 'lock.acquired',
                      fields: { takeover: event.output.kind === 'acquired' && event.output.takeover },
                    }),
                  },
                ],
              },
              {
                guard: 'lockBusy',
                target: 'waitingForLock',
                actions: {
                  type: 'log',
                  params: ({ event }) => ({
                    level: 'info',
                    event: 'lock.busy',
                    fields: { holder_pid: event.output.kind === 'busy' ? event.output.holderPid : null },
                  }),
                },
              },
              {
                // A disk error is not "busy": it must not stop the node from registering.
                target: '#registrar.registering',
                actions: [
                  assign({ lock: 'unlocked' }),
                  {
                    type: 'log',
                    params: ({ event }) => ({
                      level: 'warn',
                      event: 'lock.error',
                      fields:
                        event.output.kind === 'error' ? { code: event.output.code, error: event.output.message } : {},
                      rateLimitKey: 'lock.error',
                    }),
                  },
                ],
              },
            ],
            onError: {
              target: '#registrar.registering',
              actions: [
                assign({ lock: 'unlocked' }),
                { type: 'log', params: { level: 'warn', event: 'lock.error', fields: { code: 'EUNEXPECTED' }, rateLimitKey: 'lock.error' } },
              ],
            },
          },
        },
        waitingForLock: {
          after: { interval: 'trying' },
        },
        checkingSiblings: {
          invoke: {
            id: 'readSharedState',
            src: 'readSharedState',
            input: ({ context }) => ({ intervalMs: context.settings.intervalMs }),
            onDone: [
              {
                guard: 'liveSiblingRegistered',
                target: '#registrar.registered',
                actions: [
                  'releaseLock',
                  assign({
                    lock: 'none',
                    attempt: 0,
                    callbackWindowOpen: false,
                    healthTtlMs: ({ context, event }) => remainingTtlMs(context, event.output),
                  }),
                  { type: 'log', params: { level: 'info', event: 'registration.skipped', fields: { reason: 'a live sibling registered within the interval' } } },
                ],
              },
              { target: '#registrar.registering' },
            ],
            onError: { target: '#registrar.registering' },
          },
          on: {
            // The lock was lost before the request went out: try to take it again.
            LOCK_COMPROMISED: {
              target: 'trying',
              actions: [
                assign({ lock: 'none' }),
                { type: 'log', params: ({ event }) => ({ level: 'warn', event: 'lock.compromised', fields: { code: event.code, error: event.message } }) },
              ],
            },
          },
        },
      },
    },

    registering: {
      entry: [
        { type: 'persistStatus', params: { status: 'registering' } },
        assign({ requests: ({ context }) => context.requests + 1 }),
      ],
      exit: ['releaseLock', assign({ lock: 'none' })],
      invoke: {
        id: 'registerWithDds',
        src: 'registerWithDds',
        onDone: [
          {
            guard: 'registrationSucceeded',
            target: 'registered',
            actions: [
              'recordSuccess',
              { type: 'persistStatus', params: { status: 'registered' } },
              'persistHealthcheck',
              {
                type: 'log',
                params: ({ event }) => ({
                  level: 'info',
                  event: 'registration.success',
                  fields: event.output.ok ? { status: event.output.status, endpoint: event.output.endpoint } : {},
                }),
              },
            ],
          },
          { target: 'backoff', actions: 'countFailure' },
        ],
        onError: { target: 'backoff', actions: 'countFailure' },
      },
      on: {
        // The request is in flight: DDS may call back before or after it answers.
        SECRET_RECEIVED: { actions: 'recordCallback' },
        LOCK_COMPROMISED: {
          target: 'backoff',
          actions: [
            assign({
              lock: 'none',
              lastFailure: ({ event }) => ({
                class: 'retryable' as const,
                status: null,
                endpoint: '',
                retryAfterMs: null,
                message: `lock compromised during the attempt: ${event.message}`,
                code: event.code,
              }),
              attempt: ({ context }) => context.attempt + 1,
              callbackWindowOpen: false,
            }),
            { type: 'log', params: ({ event }) => ({ level: 'warn', event: 'lock.compromised', fields: { code: event.code, error: event.message } }) },
          ],
        },
      },
    },

    registered: {
      type: 'parallel',
      exit: assign({ callbackWindowOpen: false }),
      on: {
        REGISTER_NOW: { target: 'acquiringLock' },
      },
      states: {
        health: {
          initial: 'fresh',
          states: {
            fresh: {
              after: { healthTtl: 'checkingSiblings' },
              on: {
                // Every probe restarts the TTL timer: re-enter `fresh` (a plain
                // self-transition would keep the running `after` timer). Only this
                // region re-enters: the callback window keeps its own timer.
                HEALTHCHECK: { target: 'fresh', reenter: true, actions: ['persistHealthcheck', 'countProbe'] },
              },
            },
            checkingSiblings: {
              // The timer fired: before declaring the health check stale, look at the
              // shared state file — a sibling may have been probed in the meantime.
              invoke: {
                id: 'readSharedState',
                src: 'readSharedState',
                input: ({ context }) => ({ intervalMs: context.settings.intervalMs }),
                onDone: [
                  {
                    guard: 'freshProbeOnFile',
                    target: 'fresh',
                    actions: assign({
                      healthTtlMs: ({ context, event }) => remainingTtlMs(context, event.output),
                    }),
                  },
                  { target: '#registrar.healthCheckStale' },
                ],
                onError: { target: '#registrar.healthCheckStale' },
              },
              on: {
                // A probe while the file is being read: fresh again.
                HEALTHCHECK: { target: 'fresh', actions: ['persistHealthcheck', 'countProbe'] },
              },
            },
          },
        },
        callbackWindow: {
          initial: 'deciding',
          states: {
            deciding: {
              always: [{ guard: 'callbackWindowOpen', target: 'open' }, { target: 'closed' }],
            },
            open: {
              after: { callbackWindow: { target: 'closed', actions: assign({ callbackWindowOpen: false }) } },
              on: { SECRET_RECEIVED: { actions: 'recordCallback' } },
            },
            closed: {},
          },
        },
      },
    },

    healthCheckStale: {
      entry: [
        { type: 'persistStatus', params: { status: 'registering' } },
        {
          type: 'log',
          params: ({ context }) => ({ level: 'warn', event: 'healthcheck.expired', fields: { interval_ms: context.settings.intervalMs } }),
        },
      ],
      always: { target: 'acquiringLock' },
    },

    backoff: {
      initial: 'deciding',
      entry: {
        type: 'log',
        params: ({ context }) => {
          const f = context.lastFailure;
          if (f?.class === 'conflict') {
            return { level: 'warn', event: 'registration.conflict', fields: failureFields(f), rateLimitKey: 'registration.conflict' };
          }
          if (f?.class === 'slow') {
            return { level: 'warn', event: 'registration.error', fields: failureFields(f), rateLimitKey: `registration.slow.${f.status ?? ''}` };
          }
          return { level: 'warn', event: 'registration.error', fields: { ...failureFields(f), attempt: context.attempt } };
        },
      },
      on: {
        REGISTER_NOW: { target: 'acquiringLock' },
      },
      states: {
        deciding: {
          always: [
            {
              guard: 'maxRetryReached',
              target: 'cooldown',
              actions: [
                {
                  type: 'log',
                  params: ({ context }) => ({
                    level: 'warn',
                    event: 'registration.max_retry_reached',
                    fields: { max_retry: context.settings.maxRetry, wait_ms: cooldownDelayMs(context) },
                  }),
                },
                'resetAttempts',
              ],
            },
            { guard: 'lastFailureRetryable', target: 'retrying', actions: 'computeRetryDelay' },
            { target: 'cooldown', actions: 'resetAttempts' },
          ],
        },
        /** Exponential backoff after a retryable failure. */
        retrying: {
          entry: {
            type: 'log',
            params: ({ context }) => ({ level: 'info', event: 'registration.retry_scheduled', fields: { attempt: context.attempt, wait_ms: retryDelayMs(context) } }),
          },
          after: { retryDelay: '#registrar.acquiringLock' },
        },
        /** One interval after a conflict, a slow failure or max_retry. */
        cooldown: {
          entry: {
            type: 'log',
            params: ({ context }) => ({ level: 'info', event: 'registration.cooldown', fields: { wait_ms: cooldownDelayMs(context) } }),
          },
          after: { cooldownDelay: '#registrar.acquiringLock' },
        },
      },
    },

    stopping: {
      entry: { type: 'log', params: { level: 'info', event: 'registration.loop.stopping' } },
      on: { STOP: {} },
      invoke: {
        id: 'shutdown',
        src: 'shutdown',
        onDone: { target: 'stopped', actions: assign({ lock: 'none' }) },
        onError: {
          target: 'stopped',
          actions: [
            assign({ lock: 'none' }),
            { type: 'log', params: { level: 'warn', event: 'registration.loop.stop_error' } },
          ],
        },
      },
    },

    stopped: {
      type: 'final',
      entry: { type: 'log', params: { level: 'info', event: 'registration.loop.stopped' } },
    },

    failed: {
      type: 'final',
      entry: {
        type: 'log',
        params: ({ context }) => ({ level: 'error', event: 'registration.loop.failed', fields: { code: context.error?.code, error: context.error?.message } }),
      },
    },
  },
});

/** The registrar machine's type. */
export type RegistrarMachine = typeof registrarMachine;
