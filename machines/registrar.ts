/**
 * The registrar statechart: the whole registration lifecycle of a posemesh
 * node, in one place, and the domain types the rest of the package uses.
 *
 * ```
 * starting ─► acquiringLock ─► registering ─► registered ─► healthCheckStale ─┐
 *                 ▲  (trying ⇄ waitingForLock)    │   ▲ (health: fresh ⇄ checkingSiblings)
 *                 │                               ▼   │                          │
 *                 └──────────── backoff (deciding → retrying | cooldown) ◄───────┘
 *   STOP (anywhere) ─► stopping ─► stopped        invalid key ─► failed
 * ```
 *
 * Under protocol `siwe` (PROTOCOL.md §6) the same chart runs with other
 * effects: `registered.health` parks (no TTL), the `session` region keeps the
 * access token (signingIn → active → signingIn.refreshing, retrying,
 * signInFailed), and `REARM` (the host, or `verify`'s 403/404) leaves
 * `registered` through `rearming`.
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
import { assign, enqueueActions, fromPromise, raise, setup, type OutputFrom } from 'xstate';

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
// Domain types: settings, failures, statuses, the lock
// ---------------------------------------------------------------------------

/** Who may hand the node its secret: see `docs/` (callback admission). */
export type CallbackPolicy = 'window' | 'always';

/** The wire's generation: `legacy` (PROTOCOL.md §1–§3, crate 0.1.2) or `siwe` (§6, the wallet, crate 0.2). */
export type RegistrationProtocol = 'legacy' | 'siwe';

/** The access session's settings (§6.5). */
export interface AccessSessionSettings {
  /** Refresh at this fraction of the token's lifetime (0.75). */
  safetyRatio: number;
  /** ± this much around the refresh time, and the most a failed sign-in waits before its retry, ms (500). */
  jitterMs: number;
  /** Retries of a failed sign-in before waiting one interval (3). */
  maxRetries: number;
}

/** The machine's settings. No secrets here: they live in the effects. */
export interface RegistrarSettings {
  /** Interval and health-check TTL, ms (≥ 1000, ≤ {@link MAX_DELAY_MS}). */
  intervalMs: number;
  /** Retryable failures before a one-interval cooldown; −1 = unlimited. */
  maxRetry: number;
  /** `window` (default): callbacks only around a registration; `always`: the crate's behaviour. */
  callbackPolicy: CallbackPolicy;
  /** How long after a successful answer a callback is still accepted (unless one was accepted already), ms. */
  callbackWindowMs: number;
  /** `legacy`: the health-probe TTL re-arms; `siwe`: `registered` parks until `REARM`. */
  protocol: RegistrationProtocol;
  /** The access session (only under `siwe`); null: off. */
  session: AccessSessionSettings | null;
  /** The longest `Retry-After` honoured, ms: one answer must not silence the node for a day. */
  retryAfterMaxMs: number;
}

/** The machine's input. */
export interface RegistrarInput {
  settings: RegistrarSettings;
}

/**
 * How a failed attempt is handled (PROTOCOL.md, "the project goes beyond"):
 * - `conflict` — 409, another node with this identity is online: wait one interval;
 * - `retryable` — 408, 429, 5xx, network errors, timeouts, aborts: back off exponentially;
 * - `slow` — 3xx and other 4xx: retrying soon will not help, wait one interval.
 */
export type FailureClass = 'conflict' | 'retryable' | 'slow';

/** A failed attempt, as a small value safe to log and to keep in a snapshot. */
export interface FailureInfo {
  class: FailureClass;
  /** The HTTP status, or null when no answer came (transport error, timeout, abort). */
  status: number | null;
  /** The endpoint, userinfo removed (empty when no request went out). */
  endpoint: string;
  /** From `Retry-After` on a 429 or 503, in milliseconds; otherwise null. */
  retryAfterMs: number | null;
  /**
   * `registration failed: status <code>, endpoint <url>, body_snippet: <text>`
   * or `POST <endpoint> failed: <cause>`. Never contains the registration secret.
   */
  message: string;
  /** For transport failures: e.g. `ETIMEDOUT`, `ECONNREFUSED`, `ABORTED`. */
  code?: string;
}

/** A failed registration, as the DDS client returns it. */
export type RegistrationFailure = { ok: false } & FailureInfo;

/** Output of the `registerWithDds` actor (it never rejects for DDS failures). */
export type RegistrationOutcome = { ok: true; status: number; endpoint: string } | RegistrationFailure;

/** A terminal error (the machine went to `failed`). */
export interface RegistrarError {
  code: string;
  message: string;
}

/** What the machine ends with: its `output`, and what `toPromise(registrar)` resolves with. */
export type RegistrarOutput = { outcome: 'stopped' } | { outcome: 'failed'; error: RegistrarError };

/** Status values written to the state file (the crate's three). */
export type PersistedStatus = 'disconnected' | 'registering' | 'registered';

/** Whether this registrar uses the data directory's cross-process lock. */
export type LockStatus =
  /** Not held: between attempts, or another registrar has it. */
  | 'free'
  /** Held: from taking it until the attempt's answer (or the decision to trust a sibling). */
  | 'held'
  /** Could not be used (a disk error): this attempt registers without it rather than not at all. */
  | 'bypassed';

/**
 * The state tags. `attempt`: a registration attempt is under way — from the
 * start (credentials check) or the decision to register again (stale health
 * check, a retry, `REGISTER_NOW`) until DDS answered or a live sibling's
 * registration was trusted (`starting`, `acquiringLock`, `registering`,
 * `healthCheckStale`). Read with `snapshot.hasTag('attempt')`.
 */
export type RegistrarTag = 'attempt';

/** The access session as the context keeps it: times and counts, never the token. */
export interface AccessSessionContext {
  /** Successful sign-ins (the first and every refresh). */
  signIns: number;
  /** Failed sign-ins in a row (a success resets it). */
  failures: number;
  /** When the newest token expires, ms since the epoch; null: none held. */
  tokenExpiresAtMs: number | null;
  /** The wait before the next refresh, ms (planned at each sign-in). */
  refreshInMs: number;
  /** The wait before retrying a failed sign-in, ms. */
  retryInMs: number;
  /** The wait of `signInFailed` before starting over: one interval, never past the kept token's expiry, ms. */
  restartInMs: number;
  lastFailure: FailureInfo | null;
}

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
  /** True from a successful answer until the callback window's timer fires or a callback is accepted in it. */
  callbackWindowOpen: boolean;
  /**
   * A callback was accepted in this attempt (during the request or in the window after it):
   * the first one closes the window, later ones are refused unless byte-identical repeats.
   */
  secretReceived: boolean;
  /** Health probes received (counted, not timed: time lives in the state file). */
  probes: number;
  callbacks: number;
  nodeId: string | null;
  organizationId: string | null;
  publicKeyPrefix: string | null;
  error: RegistrarError | null;
  /** Re-arms so far (`REARM`: the host, or DDS forgetting the node). */
  rearms: number;
  /**
   * Re-armed and not signed in since: another re-arm now is DDS forgetting the
   * node as fast as it registers, counted as a retryable failure (no storm, §6.6).
   */
  rearmedWithoutSignIn: boolean;
  session: AccessSessionContext;
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

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
  /**
   * The body is byte-identical to the callback accepted last (DDS retrying):
   * the route compares digests it keeps itself; the machine sees only this flag.
   */
  repeat: boolean;
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

/**
 * The registration is no longer valid: register again (status `disconnected`
 * meanwhile). Sent by the host application (`reason` `host`, the default), or
 * raised by the access session when `verify` answers 403/404 (`forgotten`).
 */
export interface RearmEvent {
  type: 'REARM';
  reason?: 'host' | 'forgotten';
}
/** A service refused the access token (401): sign in again now (`reportUnauthorized`). */
export interface TokenUnauthorizedEvent {
  type: 'TOKEN_UNAUTHORIZED';
}

/** Every event the registrar accepts from outside. */
export type RegistrarEvent =
  | HealthcheckEvent
  | SecretReceivedEvent
  | RegisterNowEvent
  | StopEvent
  | LockCompromisedEvent
  | RearmEvent
  | TokenUnauthorizedEvent;

// ---------------------------------------------------------------------------
// What the effects answer
// ---------------------------------------------------------------------------

/** Output of the `checkCredentials` actor. */
export type CredentialsCheck = { ok: true; publicKeyPrefix: string } | ({ ok: false } & RegistrarError);

/**
 * Output of the `signIn` actor (§6.5). The token itself stays with the effect
 * (it is a secret); the machine learns only when it expires.
 */
export type SignInOutcome =
  | { ok: true; expiresAtMs: number; lifetimeMs: number; endpoint: string }
  | (FailureInfo & {
      ok: false;
      /** `verify` answered 403 or 404: DDS no longer knows the node. */
      forgotten: boolean;
      /** What remains of the token still held, ms; null when none is. */
      tokenRemainingMs: number | null;
    });

/** Output of the `acquireLock` actor. */
export type LockOutcome =
  | { kind: 'acquired'; takeover: boolean }
  | { kind: 'busy'; holderPid: number | null }
  | { kind: 'error'; code: string; message: string };

/** Output of the `readSharedState` actor: what the state file says, judged by the effect. */
export interface SharedStateView {
  status: PersistedStatus;
  /** Age of the file's last health check, ms; null when none. */
  healthcheckAgeMs: number | null;
  /** The file was written by another registrar that is still alive. */
  writtenByLiveSibling: boolean;
}

/** Input handed to `readSharedState`. */
export interface ReadSharedStateInput {
  intervalMs: number;
}

/** The last DDS health check as a state file records it (the crate's seconds, our milliseconds). */
export interface HealthcheckRecord {
  /** Whole Unix seconds, or null. */
  lastHealthcheck: number | null;
  /** Milliseconds since the epoch, or null (then the seconds count). */
  lastHealthcheckMs: number | null;
}

/** A log line the machine asks for; the implementation adds rate limiting. */
export interface LogParams {
  level: 'debug' | 'info' | 'warn' | 'error';
  event: string;
  fields?: Record<string, unknown>;
  /** Identical warnings with the same key are rate-limited. */
  rateLimitKey?: string;
}

// ---------------------------------------------------------------------------
// Pure helpers (exported for tests and the wiring)
// ---------------------------------------------------------------------------

/** The crate's backoff: min(2^attempt, 60) s × a factor in [0.8, 1.2], from `random` in [0, 1). */
export function crateBackoffDelayMs(attempt: number, random: number): number {
  const base = Math.min(2 ** Math.max(0, attempt), 60) * 1000;
  return capDelayMs(base * (0.8 + 0.4 * random));
}

/** The `Retry-After` honoured, ms: the last failure's, at most `retryAfterMaxMs`; 0 when none. */
function honouredRetryAfterMs(context: RegistrarContext): number {
  return Math.min(context.lastFailure?.retryAfterMs ?? 0, context.settings.retryAfterMaxMs);
}

/** The cap when the last failure's `Retry-After` exceeded it (for the log line), else undefined. */
export function retryAfterCappedMs(context: RegistrarContext): number | undefined {
  const asked = context.lastFailure?.retryAfterMs ?? 0;
  return asked > context.settings.retryAfterMaxMs ? context.settings.retryAfterMaxMs : undefined;
}

/** The wait before the next retry: the policy's, or `Retry-After` (at most `retryAfterMaxMs`) when longer; capped. */
export function retryDelayMs(context: RegistrarContext): number {
  return capDelayMs(Math.max(context.policyDelayMs, honouredRetryAfterMs(context)));
}

/** The wait of a cooldown: one interval, or `Retry-After` (at most `retryAfterMaxMs`) when longer; capped. */
export function cooldownDelayMs(context: RegistrarContext): number {
  return capDelayMs(Math.max(context.settings.intervalMs, honouredRetryAfterMs(context)));
}

/** A backoff line's fields: the wait, and the cap when it cut `Retry-After` short. */
function waitFields(context: RegistrarContext, waitMs: number): Record<string, unknown> {
  const capped = retryAfterCappedMs(context);
  return capped === undefined ? { wait_ms: waitMs } : { wait_ms: waitMs, retry_after_capped_ms: capped };
}

/** What remains of the interval after the probe the state file records (never negative). */
export function remainingTtlMs(context: RegistrarContext, view: SharedStateView): number {
  return capDelayMs(context.settings.intervalMs - Math.max(0, view.healthcheckAgeMs ?? 0));
}

/** When DDS last probed, ms since the epoch (the finer time, else the crate's seconds); null when never. */
export function lastHealthcheckAtMs(record: HealthcheckRecord): number | null {
  return record.lastHealthcheckMs ?? (record.lastHealthcheck === null ? null : record.lastHealthcheck * 1000);
}

/** How long ago DDS last probed at `now`, ms (never negative); null when never. */
export function healthcheckAgeMs(record: HealthcheckRecord, now: number): number | null {
  const at = lastHealthcheckAtMs(record);
  return at === null ? null : Math.max(0, now - at);
}

/**
 * A timestamp further ahead of the reader's wall clock than this lies "in
 * the future": the clock was stepped back since it was written, or its
 * writer's clock is ahead. (A little ahead is rounding and scheduling.)
 */
export const FUTURE_TOLERANCE_MS = 1000;

/** How far the last probe lies ahead of `now` beyond {@link FUTURE_TOLERANCE_MS}, ms; null when it does not. */
export function healthcheckFutureByMs(record: HealthcheckRecord, now: number): number | null {
  const at = lastHealthcheckAtMs(record);
  return at !== null && at - now > FUTURE_TOLERANCE_MS ? at - now : null;
}

/** Someone (this registrar or a sibling) recorded a DDS probe within the interval. */
export function probedWithin(view: SharedStateView, intervalMs: number): boolean {
  return view.healthcheckAgeMs !== null && view.healthcheckAgeMs < intervalMs;
}

/** A live sibling registered and was probed within the interval: its registration holds for this node too. */
export function siblingRegisteredWithin(view: SharedStateView, intervalMs: number): boolean {
  return view.status === 'registered' && view.writtenByLiveSibling && probedWithin(view, intervalMs);
}

/**
 * When to refresh a token of `lifetimeMs` (§6.5): at `ratio` of it, moved by
 * up to ± `jitterMs` (`random` in [0, 1)), never past the lifetime.
 */
export function tokenRefreshDelayMs(lifetimeMs: number, ratio: number, jitterMs: number, random: number): number {
  return capDelayMs(Math.min(lifetimeMs, lifetimeMs * ratio + (2 * random - 1) * jitterMs));
}

/** The wait before retrying a failed sign-in: 0…`jitterMs`, from `random` in [0, 1). */
export function signInRetryDelayMs(jitterMs: number, random: number): number {
  return capDelayMs(jitterMs * random);
}

/** After the retries failed: start over in one interval, sooner when the kept token expires first. */
export function sessionRestartDelayMs(intervalMs: number, tokenRemainingMs: number | null): number {
  return capDelayMs(tokenRemainingMs !== null && tokenRemainingMs > 0 ? Math.min(intervalMs, tokenRemainingMs) : intervalMs);
}

/** An attempt's actor rejected unexpectedly: keep only a safe, generic description. */
function unexpectedFailure(error: unknown): FailureInfo {
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

/** The lock was lost while the request was in flight: retry as after a network error. */
function lockLostFailure(lost: LockCompromisedEvent): FailureInfo {
  return {
    class: 'retryable',
    status: null,
    endpoint: '',
    retryAfterMs: null,
    message: `lock compromised during the attempt: ${lost.message}`,
    code: lost.code,
  };
}

/** A re-arm before any sign-in succeeded since the last one: DDS forgets the node as fast as it registers. */
const REARM_STORM_FAILURE: FailureInfo = {
  class: 'retryable',
  status: null,
  endpoint: '',
  retryAfterMs: null,
  message: 're-armed again before a sign-in succeeded: DDS forgets the node as fast as it registers',
  code: 'EREARMED',
};

/** The `signIn` actor rejected (its effect never should). */
function unexpectedSignIn(error: unknown): SignInOutcome {
  return { ...unexpectedFailure(error), ok: false, forgotten: false, tokenRemainingMs: null };
}

/** The failure fields the context keeps (an effect's outcome may carry more). */
function safeFailure(f: FailureInfo): FailureInfo {
  const kept: FailureInfo = { class: f.class, status: f.status, endpoint: f.endpoint, retryAfterMs: f.retryAfterMs, message: f.message };
  if (f.code !== undefined) kept.code = f.code;
  return kept;
}

/** The context after a failed attempt: a retryable failure counts toward `max_retry`, the others start the count again. */
function afterFailure(context: RegistrarContext, failure: FailureInfo): Partial<RegistrarContext> {
  return {
    lastFailure: safeFailure(failure),
    attempt: failure.class === 'retryable' ? context.attempt + 1 : 0,
    callbackWindowOpen: false,
  };
}

/**
 * The context after a successful answer: the count starts again, the TTL runs a full interval,
 * and the callback window opens — unless DDS called back while the request was in flight.
 */
function afterSuccess(context: RegistrarContext): Partial<RegistrarContext> {
  return {
    // Re-armed and not signed in since: the count goes on until a sign-in succeeds (no storm, §6.6).
    attempt: context.rearmedWithoutSignIn ? context.attempt : 0,
    lastFailure: null,
    registrations: context.registrations + 1,
    // Under `siwe` DDS has no URL to call back: no window (policy `always` still admits callbacks).
    callbackWindowOpen: !context.secretReceived && context.settings.protocol === 'legacy',
    healthTtlMs: context.settings.intervalMs,
  };
}

function failureFields(f: FailureInfo | null): Record<string, unknown> {
  if (!f) return {};
  return { class: f.class, status: f.status, endpoint: f.endpoint, error: f.message, retry_after_ms: f.retryAfterMs };
}

/** The log line of a lock attempt's outcome. */
function lockLine(outcome: LockOutcome): LogParams {
  switch (outcome.kind) {
    case 'acquired':
      return { level: 'info', event: 'lock.acquired', fields: { takeover: outcome.takeover } };
    case 'busy':
      return { level: 'info', event: 'lock.busy', fields: { holder_pid: outcome.holderPid } };
    default:
      return { level: 'warn', event: 'lock.error', fields: { code: outcome.code, error: outcome.message }, rateLimitKey: 'lock.error' };
  }
}

/** The log line of a failed attempt (backoff's entry): conflicts and slow failures are rate-limited. */
function failureLine(context: RegistrarContext): LogParams {
  const f = context.lastFailure;
  if (f?.class === 'conflict') {
    return { level: 'warn', event: 'registration.conflict', fields: failureFields(f), rateLimitKey: 'registration.conflict' };
  }
  if (f?.class === 'slow') {
    return { level: 'warn', event: 'registration.error', fields: failureFields(f), rateLimitKey: `registration.slow.${f.status ?? ''}` };
  }
  return { level: 'warn', event: 'registration.error', fields: { ...failureFields(f), attempt: context.attempt } };
}

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

const notProvided = (name: string) => () =>
  Promise.reject(Object.assign(new Error(`registrar: the "${name}" actor was not provided`), { code: 'ENOTPROVIDED' }));

/** The invoked actors, as placeholders (each is invoked with its own name as id). */
const actors = {
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
  /** One sign-in of the access session (§6.5): keeps the token, answers its expiry. Never rejects. */
  signIn: fromPromise<SignInOutcome>(notProvided('signIn')),
};

/** The invoked actors' names. */
export type RegistrarActorName = keyof typeof actors;

/** What each invoked actor resolves with (what a test faking the effects must answer). */
export type RegistrarActorOutputs = { [A in RegistrarActorName]: OutputFrom<(typeof actors)[A]> };

type LogAction = { type: 'log'; params: LogParams };

// Inside `setup`, enqueueActions would infer the actions it may enqueue as `never`: these say `log`.
type LoggingCollect<P> = Parameters<typeof enqueueActions<RegistrarContext, RegistrarEvent, P, RegistrarEvent, never, LogAction, never, never>>[0];

/** A named action that may enqueue `log` (and assign), with params of type `P`. */
function logging<P>(collect: LoggingCollect<P>) {
  return enqueueActions<RegistrarContext, RegistrarEvent, P, RegistrarEvent, never, LogAction, never, never>(collect);
}

/** A named action that writes one log line, made from the context and the action's params. */
function logLine<P = undefined>(line: (context: RegistrarContext, params: P) => LogParams) {
  return logging<P>(({ context, enqueue }, params) => enqueue({ type: 'log', params: line(context, params) }));
}

/** The `acquireLock` actor rejected (its effect never should): treated as a disk error. */
const LOCK_UNEXPECTED: LockOutcome = { kind: 'error', code: 'EUNEXPECTED', message: 'the lock attempt failed unexpectedly' };

/** The `checkCredentials` actor rejected (its effect never should). */
const CREDENTIALS_UNCHECKED: CredentialsCheck = { ok: false, code: 'ECREDENTIALS', message: 'could not check the credentials' };

export const registrarMachine = setup({
  types: {
    context: {} as RegistrarContext,
    events: {} as RegistrarEvent,
    input: {} as RegistrarInput,
    output: {} as RegistrarOutput,
    tags: {} as RegistrarTag,
  },
  actors,
  actions: {
    /** Write the status to the state file (logs `status.transition`). */
    persistStatus: (_, _params: { status: PersistedStatus }) => undefined,
    /** Record a DDS health check "now" in the state file. */
    persistHealthcheck: (_, _params: { source: 'probe' | 'registration' }) => undefined,
    /** Release the cross-process lock if this registrar holds it. */
    releaseLock: () => undefined,
    /** Write a log line (every other log action goes through this one). */
    log: (_, _params: LogParams) => undefined,
    /** Ask the backoff policy for the next retry's delay (provided: the policy is pluggable). */
    computeRetryDelay: assign({
      policyDelayMs: ({ context }) => crateBackoffDelayMs(context.attempt, 0.5),
    }),
    /** Keep what the credentials check says: the key's prefix, or why the registrar cannot run. */
    recordCredentials: assign((_, check: CredentialsCheck) =>
      check.ok ? { publicKeyPrefix: check.publicKeyPrefix } : { error: { code: check.code, message: check.message } },
    ),
    /** Record DDS's answer: a success resets the count and opens the callback window; a failure is counted. */
    recordAnswer: assign(({ context }, outcome: RegistrationOutcome) =>
      outcome.ok ? afterSuccess(context) : afterFailure(context, outcome),
    ),
    /** Count an attempt that ended without an answer (the actor rejected, the lock was lost). */
    countFailure: assign(({ context }, failure: FailureInfo) => afterFailure(context, failure)),
    resetAttempts: assign({ attempt: 0 }),
    /** A DDS probe while registered: count it and give the TTL timer a full interval. */
    countProbe: assign(({ context }) => ({ probes: context.probes + 1, healthTtlMs: context.settings.intervalMs })),
    /** An accepted callback: it closes the window (a later one is refused). */
    recordCallback: assign(({ context }, callback: SecretReceivedEvent) => ({
      callbacks: context.callbacks + 1,
      nodeId: callback.nodeId,
      organizationId: callback.organizationId,
      secretReceived: true,
      callbackWindowOpen: false,
    })),
    /** A sign-in succeeded: the token's expiry, and the refresh planned (provided: the jitter is random). */
    recordSignIn: assign(({ context }, signedIn: SignInOutcome) => ({
      attempt: 0,
      rearmedWithoutSignIn: false,
      session: {
        ...context.session,
        signIns: context.session.signIns + 1,
        failures: 0,
        lastFailure: null,
        tokenExpiresAtMs: signedIn.ok ? signedIn.expiresAtMs : context.session.tokenExpiresAtMs,
      },
    })),
    /** A sign-in failed: count it; the retry's wait is planned (provided: random). */
    recordSignInFailure: assign(({ context }, failed: SignInOutcome) =>
      failed.ok
        ? {}
        : {
            session: {
              ...context.session,
              failures: context.session.failures + 1,
              lastFailure: safeFailure(failed),
              tokenExpiresAtMs: failed.tokenRemainingMs === null || failed.forgotten ? null : context.session.tokenExpiresAtMs,
              restartInMs: sessionRestartDelayMs(context.settings.intervalMs, failed.forgotten ? null : failed.tokenRemainingMs),
            },
          },
    ),
    resetSignInFailures: assign(({ context }) => ({ session: { ...context.session, failures: 0 } })),
    /**
     * Hand out the token the `signIn` effect holds back (provided): as the session becomes
     * `active`, so that a 401 reported by whoever got it finds the session where it counts.
     */
    holdToken: () => undefined,
    /** Plan the next refresh (provided with a random source for the jitter; this one is the exact ratio). */
    planRefresh: assign(({ context }, signedIn: SignInOutcome) =>
      signedIn.ok
        ? { session: { ...context.session, refreshInMs: tokenRefreshDelayMs(signedIn.lifetimeMs, context.settings.session?.safetyRatio ?? 1, 0, 0.5) } }
        : {},
    ),
    /** Plan a failed sign-in's retry wait (provided with a random source; this one waits half the jitter). */
    planSignInRetry: assign(({ context }) => ({
      session: { ...context.session, retryInMs: signInRetryDelayMs(context.settings.session?.jitterMs ?? 0, 0.5) },
    })),
    /** `verify` answered 403/404: DDS no longer knows the node. */
    rearmFromSession: raise({ type: 'REARM', reason: 'forgotten' }),
    /** A re-arm: counted; with the session on, the next one before a sign-in is a storm. */
    recordRearm: assign(({ context }) => ({
      rearms: context.rearms + 1,
      rearmedWithoutSignIn: context.settings.session !== null,
      callbackWindowOpen: false,
    })),
    logRearm: logLine((_, rearm: RearmEvent) => ({
      level: 'warn',
      event: 'registration.rearm',
      fields: { reason: rearm.reason ?? 'host', message: 'registration is no longer valid; re-arming registration' },
    })),
    logSignedIn: logLine((context) => ({
      level: 'info',
      event: 'session.signed_in',
      fields: { sign_ins: context.session.signIns, expires_at: context.session.tokenExpiresAtMs, refresh_in_ms: context.session.refreshInMs },
    })),
    logSignInFailed: logLine((context) => ({
      level: 'warn',
      event: 'session.sign_in_failed',
      fields: { ...failureFields(context.session.lastFailure), failures: context.session.failures },
      rateLimitKey: 'session.sign_in_failed',
    })),
    logSessionGaveUp: logLine((context) => ({
      level: 'warn',
      event: 'session.retries_exhausted',
      fields: { failures: context.session.failures, restart_in_ms: context.session.restartInMs, token_expires_at: context.session.tokenExpiresAtMs },
    })),
    /** The lock was lost: say so, and stop counting on it. */
    lockCompromised: logging<LockCompromisedEvent>(({ enqueue }, lost) => {
      enqueue.assign({ lock: 'free' });
      enqueue({ type: 'log', params: { level: 'warn', event: 'lock.compromised', fields: { code: lost.code, error: lost.message } } });
    }),
    logLoopStart: logLine((context) => ({
      level: 'info',
      event: 'registration.loop.start',
      fields: {
        interval_ms: context.settings.intervalMs,
        max_retry: context.settings.maxRetry,
        callback_policy: context.settings.callbackPolicy,
      },
    })),
    logLockOutcome: logLine((_, outcome: LockOutcome) => lockLine(outcome)),
    logSiblingTrusted: logLine(() => ({
      level: 'info',
      event: 'registration.skipped',
      fields: { reason: 'a live sibling registered within the interval' },
    })),
    logRegistered: logLine((_, answer: RegistrationOutcome) => ({
      level: 'info',
      event: 'registration.success',
      fields: { status: answer.status, endpoint: answer.endpoint },
    })),
    logHealthcheckExpired: logLine((context) => ({
      level: 'warn',
      event: 'healthcheck.expired',
      fields: { interval_ms: context.settings.intervalMs },
    })),
    logFailure: logLine(failureLine),
    logMaxRetryReached: logLine((context) => ({
      level: 'warn',
      event: 'registration.max_retry_reached',
      fields: { max_retry: context.settings.maxRetry, ...waitFields(context, cooldownDelayMs(context)) },
    })),
    logRetryScheduled: logLine((context) => ({
      level: 'info',
      event: 'registration.retry_scheduled',
      fields: { attempt: context.attempt, ...waitFields(context, retryDelayMs(context)) },
    })),
    logCooldown: logLine((context) => ({ level: 'info', event: 'registration.cooldown', fields: waitFields(context, cooldownDelayMs(context)) })),
    /** A repeat changes nothing; this line is its transition's effect (`can()` counts only transitions that do something). */
    logCallbackRepeat: logLine(() => ({ level: 'debug', event: 'registration.repeat_callback' })),
    logStopping: logLine(() => ({ level: 'info', event: 'registration.loop.stopping' })),
    logStopError: logLine(() => ({ level: 'warn', event: 'registration.loop.stop_error' })),
    logStopped: logLine(() => ({ level: 'info', event: 'registration.loop.stopped' })),
    logFailed: logLine((context) => ({
      level: 'error',
      event: 'registration.loop.failed',
      fields: { code: context.error?.code, error: context.error?.message },
    })),
  },
  guards: {
    credentialsValid: (_, check: CredentialsCheck) => check.ok,
    lockAcquired: (_, outcome: LockOutcome) => outcome.kind === 'acquired',
    lockBusy: (_, outcome: LockOutcome) => outcome.kind === 'busy',
    /** A live sibling registered within the interval: skip our own request. */
    liveSiblingRegistered: ({ context }, view: SharedStateView) => siblingRegisteredWithin(view, context.settings.intervalMs),
    /** Someone (a sibling) recorded a probe within the interval: the node is still probed. */
    freshProbeOnFile: ({ context }, view: SharedStateView) => probedWithin(view, context.settings.intervalMs),
    registrationSucceeded: (_, outcome: RegistrationOutcome) => outcome.ok,
    maxRetryReached: ({ context }) =>
      context.lastFailure?.class === 'retryable' &&
      context.settings.maxRetry >= 0 &&
      context.attempt >= context.settings.maxRetry,
    lastFailureRetryable: ({ context }) => context.lastFailure?.class === 'retryable',
    callbackPolicyAlways: ({ context }) => context.settings.callbackPolicy === 'always',
    callbackWindowOpen: ({ context }) => context.callbackWindowOpen,
    /** No callback was accepted in this attempt yet: this one is the first, and closes the window. */
    first: ({ context }) => !context.secretReceived,
    /** A byte-identical repeat of the callback accepted in this attempt (DDS retrying): 200, and nothing changes. */
    repeat: ({ context }, callback: SecretReceivedEvent) => context.secretReceived && callback.repeat,
    /** Protocol `siwe`: once registered, wait for a re-arm (no health-probe TTL). */
    parks: ({ context }) => context.settings.protocol === 'siwe',
    /** The access session runs (protocol `siwe`, not turned off). */
    sessionOn: ({ context }) => context.settings.session !== null,
    signedIn: (_, outcome: SignInOutcome) => outcome.ok,
    /** `verify` answered 403/404. */
    nodeForgotten: (_, outcome: SignInOutcome) => !outcome.ok && outcome.forgotten,
    /** Failed sign-ins in a row (this one included) are still within `maxRetries` + 1 tries. */
    signInRetriesLeft: ({ context }) => context.session.failures < (context.settings.session?.maxRetries ?? 0),
    /** A token (not yet known to have expired) is in hand: the sign-in in flight refreshes it. */
    tokenHeld: ({ context }) => context.session.tokenExpiresAtMs !== null,
    /** Re-armed again before a sign-in succeeded since the last re-arm (§6.6). */
    rearmStorm: ({ context }) => context.rearmedWithoutSignIn,
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
    /** Zero: the state holds for one turn of the event loop, so that subscribers see it. */
    oneTurn: 0,
    /** At the safety ratio of the token's lifetime, ± jitter. */
    tokenRefresh: ({ context }) => capDelayMs(context.session.refreshInMs),
    /** 0…jitter before retrying a failed sign-in. */
    signInRetry: ({ context }) => capDelayMs(context.session.retryInMs),
    /** One interval (sooner when the kept token expires) after the retries failed. */
    sessionRestart: ({ context }) => capDelayMs(context.session.restartInMs),
  },
}).createMachine({
  id: 'registrar',
  context: ({ input }) => ({
    settings: input.settings,
    attempt: 0,
    requests: 0,
    registrations: 0,
    lock: 'free',
    lastFailure: null,
    policyDelayMs: 0,
    healthTtlMs: input.settings.intervalMs,
    callbackWindowOpen: false,
    secretReceived: false,
    probes: 0,
    callbacks: 0,
    nodeId: null,
    organizationId: null,
    publicKeyPrefix: null,
    error: null,
    rearms: 0,
    rearmedWithoutSignIn: false,
    session: { signIns: 0, failures: 0, tokenExpiresAtMs: null, refreshInMs: 0, retryInMs: 0, restartInMs: 0, lastFailure: null },
  }),
  initial: 'starting',
  output: ({ context }) => (context.error === null ? { outcome: 'stopped' } : { outcome: 'failed', error: context.error }),
  on: {
    STOP: { target: '.stopping' },
    // A probe always counts (the crate's behaviour); `registered` also restarts its TTL timer.
    HEALTHCHECK: {
      actions: [{ type: 'persistHealthcheck', params: { source: 'probe' } }, assign({ probes: ({ context }) => context.probes + 1 })],
    },
    // Policy `always`: accept a callback in any state (the crate's behaviour).
    SECRET_RECEIVED: { guard: 'callbackPolicyAlways', actions: { type: 'recordCallback', params: ({ event }) => event } },
    LOCK_COMPROMISED: { actions: { type: 'lockCompromised', params: ({ event }) => event } },
  },
  states: {
    starting: {
      tags: 'attempt',
      invoke: {
        id: 'checkCredentials',
        src: 'checkCredentials',
        onDone: [
          {
            guard: { type: 'credentialsValid', params: ({ event }) => event.output },
            target: 'acquiringLock',
            actions: [{ type: 'recordCredentials', params: ({ event }) => event.output }, 'logLoopStart'],
          },
          { target: 'failed', actions: { type: 'recordCredentials', params: ({ event }) => event.output } },
        ],
        onError: { target: 'failed', actions: { type: 'recordCredentials', params: CREDENTIALS_UNCHECKED } },
      },
    },

    acquiringLock: {
      tags: 'attempt',
      initial: 'trying',
      states: {
        trying: {
          invoke: {
            id: 'acquireLock',
            src: 'acquireLock',
            onDone: [
              {
                guard: { type: 'lockAcquired', params: ({ event }) => event.output },
                target: 'checkingSiblings',
                actions: [assign({ lock: 'held' }), { type: 'logLockOutcome', params: ({ event }) => event.output }],
              },
              {
                guard: { type: 'lockBusy', params: ({ event }) => event.output },
                target: 'waitingForLock',
                actions: { type: 'logLockOutcome', params: ({ event }) => event.output },
              },
              {
                // A disk error is not "busy": it must not stop the node from registering.
                target: '#registrar.registering',
                actions: [assign({ lock: 'bypassed' }), { type: 'logLockOutcome', params: ({ event }) => event.output }],
              },
            ],
            onError: {
              target: '#registrar.registering',
              actions: [assign({ lock: 'bypassed' }), { type: 'logLockOutcome', params: LOCK_UNEXPECTED }],
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
            // Unreadable: register (a sibling's registration is trusted only when the file says so).
            onError: { target: '#registrar.registering' },
            onDone: [
              {
                guard: { type: 'liveSiblingRegistered', params: ({ event }) => event.output },
                target: '#registrar.registered',
                actions: [
                  'releaseLock',
                  assign({
                    lock: 'free',
                    // Re-armed and not signed in since: the count goes on (no storm, §6.6), as after our own registration.
                    attempt: ({ context }) => (context.rearmedWithoutSignIn ? context.attempt : 0),
                    callbackWindowOpen: false,
                    healthTtlMs: ({ context, event }) => remainingTtlMs(context, event.output),
                  }),
                  'logSiblingTrusted',
                ],
              },
              { target: '#registrar.registering' },
            ],
          },
          on: {
            // The lock was lost before the request went out: try to take it again.
            LOCK_COMPROMISED: { target: 'trying', actions: { type: 'lockCompromised', params: ({ event }) => event } },
          },
        },
      },
    },

    registering: {
      tags: 'attempt',
      entry: [
        { type: 'persistStatus', params: { status: 'registering' } },
        // A new attempt, a new window: no callback accepted in it yet.
        assign({ requests: ({ context }) => context.requests + 1, secretReceived: false }),
      ],
      exit: ['releaseLock', assign({ lock: 'free' })],
      invoke: {
        id: 'registerWithDds',
        src: 'registerWithDds',
        onDone: [
          {
            guard: { type: 'registrationSucceeded', params: ({ event }) => event.output },
            target: 'registered',
            actions: [
              { type: 'recordAnswer', params: ({ event }) => event.output },
              { type: 'persistStatus', params: { status: 'registered' } },
              { type: 'persistHealthcheck', params: { source: 'registration' } },
              { type: 'logRegistered', params: ({ event }) => event.output },
            ],
          },
          { target: 'backoff', actions: { type: 'recordAnswer', params: ({ event }) => event.output } },
        ],
        onError: { target: 'backoff', actions: { type: 'countFailure', params: ({ event }) => unexpectedFailure(event.error) } },
      },
      on: {
        // The request is in flight: DDS may call back before or after it answers. The first
        // callback closes the window; after it only a byte-identical repeat is answered 200.
        SECRET_RECEIVED: [
          { guard: 'first', actions: { type: 'recordCallback', params: ({ event }) => event } },
          { guard: { type: 'repeat', params: ({ event }) => event }, actions: 'logCallbackRepeat' },
        ],
        LOCK_COMPROMISED: {
          target: 'backoff',
          actions: [
            { type: 'lockCompromised', params: ({ event }) => event },
            { type: 'countFailure', params: ({ event }) => lockLostFailure(event) },
          ],
        },
      },
    },

    registered: {
      type: 'parallel',
      exit: assign({ callbackWindowOpen: false }),
      on: {
        REGISTER_NOW: { target: 'acquiringLock' },
        REARM: [
          {
            // DDS forgot the node again before a sign-in succeeded: back off, as after a retryable failure.
            guard: 'rearmStorm',
            target: 'backoff',
            actions: [
              { type: 'logRearm', params: ({ event }) => event },
              'recordRearm',
              { type: 'persistStatus', params: { status: 'disconnected' } },
              { type: 'countFailure', params: REARM_STORM_FAILURE },
            ],
          },
          { target: 'rearming', actions: [{ type: 'logRearm', params: ({ event }) => event }, 'recordRearm'] },
        ],
      },
      states: {
        health: {
          initial: 'deciding',
          states: {
            deciding: {
              always: [{ guard: 'parks', target: 'parked' }, { target: 'fresh' }],
            },
            /** Protocol `siwe`: no TTL; a probe (routes mounted) is recorded by the root handler and arms nothing. */
            parked: {},
            fresh: {
              after: { healthTtl: 'checkingSiblings' },
              on: {
                // Every probe restarts the TTL timer: re-enter `fresh` (a plain
                // self-transition would keep the running `after` timer). Only this
                // region re-enters: the callback window keeps its own timer.
                HEALTHCHECK: {
                  target: 'fresh',
                  reenter: true,
                  actions: [{ type: 'persistHealthcheck', params: { source: 'probe' } }, 'countProbe'],
                },
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
                    guard: { type: 'freshProbeOnFile', params: ({ event }) => event.output },
                    target: 'fresh',
                    actions: assign({ healthTtlMs: ({ context, event }) => remainingTtlMs(context, event.output) }),
                  },
                  { target: '#registrar.healthCheckStale' },
                ],
                onError: { target: '#registrar.healthCheckStale' },
              },
              on: {
                // A probe while the file is being read: fresh again.
                HEALTHCHECK: { target: 'fresh', actions: [{ type: 'persistHealthcheck', params: { source: 'probe' } }, 'countProbe'] },
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
              // The first callback in the window closes it.
              on: { SECRET_RECEIVED: { target: 'closed', actions: { type: 'recordCallback', params: ({ event }) => event } } },
            },
            closed: {
              // DDS retrying the callback it made during the request or in the window: 200, nothing changes.
              on: { SECRET_RECEIVED: { guard: { type: 'repeat', params: ({ event }) => event }, actions: 'logCallbackRepeat' } },
            },
          },
        },
        /** The access session (§6.5): the token stays with the `signIn` effect; here only its expiry. */
        session: {
          initial: 'deciding',
          states: {
            deciding: {
              // A session starts with a fresh round of retries (registered again after a re-arm).
              always: [{ guard: 'sessionOn', target: 'signingIn', actions: 'resetSignInFailures' }, { target: 'off' }],
            },
            off: {},
            signingIn: {
              initial: 'first',
              invoke: {
                id: 'signIn',
                src: 'signIn',
                onDone: [
                  {
                    guard: { type: 'signedIn', params: ({ event }) => event.output },
                    target: 'active',
                    actions: [
                      { type: 'recordSignIn', params: ({ event }) => event.output },
                      { type: 'planRefresh', params: ({ event }) => event.output },
                      'holdToken',
                      'logSignedIn',
                    ],
                  },
                  {
                    guard: { type: 'nodeForgotten', params: ({ event }) => event.output },
                    target: 'forgotten',
                    actions: [{ type: 'recordSignInFailure', params: ({ event }) => event.output }, 'logSignInFailed'],
                  },
                  {
                    guard: 'signInRetriesLeft',
                    target: 'retrying',
                    actions: [{ type: 'recordSignInFailure', params: ({ event }) => event.output }, 'logSignInFailed', 'planSignInRetry'],
                  },
                  { target: 'signInFailed', actions: [{ type: 'recordSignInFailure', params: ({ event }) => event.output }, 'logSignInFailed'] },
                ],
                onError: [
                  {
                    guard: 'signInRetriesLeft',
                    target: 'retrying',
                    actions: [{ type: 'recordSignInFailure', params: ({ event }) => unexpectedSignIn(event.error) }, 'logSignInFailed', 'planSignInRetry'],
                  },
                  { target: 'signInFailed', actions: [{ type: 'recordSignInFailure', params: ({ event }) => unexpectedSignIn(event.error) }, 'logSignInFailed'] },
                ],
              },
              states: {
                /** No token in hand (the first sign-in, or after one was lost). */
                first: {},
                /** A token in hand: its successor is on the way. */
                refreshing: {},
              },
            },
            active: {
              after: { tokenRefresh: 'signingIn.refreshing' },
              on: { TOKEN_UNAUTHORIZED: 'signingIn.refreshing' },
            },
            retrying: {
              after: { signInRetry: [{ guard: 'tokenHeld', target: 'signingIn.refreshing' }, { target: 'signingIn' }] },
            },
            /** `verify` answered 403/404: DDS no longer knows the node; `registered` handles the REARM raised here. */
            forgotten: {
              entry: 'rearmFromSession',
            },
            /** The retries failed: start over after one interval (never past the kept token's expiry). */
            signInFailed: {
              entry: 'logSessionGaveUp',
              // Starting over: a fresh round of retries.
              exit: 'resetSignInFailures',
              after: { sessionRestart: 'signingIn' },
              on: { TOKEN_UNAUTHORIZED: 'signingIn' },
            },
          },
        },
      },
    },

    /** Re-armed (the host, or DDS forgot the node): `disconnected`, and register again. */
    rearming: {
      tags: 'attempt',
      entry: { type: 'persistStatus', params: { status: 'disconnected' } },
      // Held for one turn, like healthCheckStale: a snapshot, the inspector and the live view show it.
      after: { oneTurn: 'acquiringLock' },
    },

    healthCheckStale: {
      tags: 'attempt',
      entry: [{ type: 'persistStatus', params: { status: 'registering' } }, 'logHealthcheckExpired'],
      // Held for one turn, not left at once (`always`): a snapshot, the inspector and the live view show it.
      after: { oneTurn: 'acquiringLock' },
    },

    backoff: {
      initial: 'deciding',
      entry: 'logFailure',
      on: {
        REGISTER_NOW: { target: 'acquiringLock' },
      },
      states: {
        deciding: {
          always: [
            { guard: 'maxRetryReached', target: 'cooldown', actions: ['logMaxRetryReached', 'resetAttempts'] },
            { guard: 'lastFailureRetryable', target: 'retrying', actions: 'computeRetryDelay' },
            { target: 'cooldown', actions: 'resetAttempts' },
          ],
        },
        /** Exponential backoff after a retryable failure. */
        retrying: {
          entry: 'logRetryScheduled',
          after: { retryDelay: '#registrar.acquiringLock' },
        },
        /** One interval after a conflict, a slow failure or max_retry. */
        cooldown: {
          entry: 'logCooldown',
          after: { cooldownDelay: '#registrar.acquiringLock' },
        },
      },
    },

    stopping: {
      entry: 'logStopping',
      on: { STOP: {} },
      invoke: {
        id: 'shutdown',
        src: 'shutdown',
        onDone: { target: 'stopped', actions: assign({ lock: 'free' }) },
        onError: { target: 'stopped', actions: [assign({ lock: 'free' }), 'logStopError'] },
      },
    },

    stopped: {
      type: 'final',
      entry: 'logStopped',
    },

    failed: {
      type: 'final',
      entry: 'logFailed',
    },
  },
});

/** The registrar machine's type. */
export type RegistrarMachine = typeof registrarMachine;
