/**
 * The project's specification of the registrar's lifecycle, for its
 * model-based tests. The generic half — the event catalogue, the model
 * (`serializeState`), the path generators, the faked effects and the path
 * executor — is the package's testing entry point (src/testing, published as
 * `posemesh-node-registration/testing`); this file adds what the project
 * checks at every step, independently of the machine: the state file, the
 * health checks, callback admission, the lock, the `attempt` tag, the entry
 * log lines, the backoff's branches and counter, and every timer's deadline
 * (from the specification, compared with what the actor scheduled, so that a
 * timer armed early, late, or re-armed when it should not be is caught).
 */
import assert from 'node:assert/strict';
import {
  actorEventOf,
  doneOf,
  executePath as executeGenericPath,
  parseAfterEventType,
  type CatalogOptions,
  type ExecutedStep,
  type FakeRegistrar,
  type ModelPath,
  type RegistrarModelEvent,
} from '../../src/testing/index.js';
import {
  capDelayMs,
  sessionRestartDelayMs,
  signInRetryDelayMs,
  tokenRefreshDelayMs,
  type CallbackPolicy,
  type PersistedStatus,
  type RegistrarEvent,
  type RegistrarSettings,
  type RegistrationProtocol,
} from '../../machines/registrar.js';

/**
 * The settings the models run with (`callbackWindowMs` < `intervalMs`: the model assumes it); under `siwe`
 * the session is on. The `Retry-After` cap lies between the catalogue's two (30 s honoured, 60 s cut to the cap).
 */
export function modelSettings(callbackPolicy: CallbackPolicy, protocol: RegistrationProtocol = 'legacy'): RegistrarSettings {
  return {
    intervalMs: 10_000,
    maxRetry: 2,
    callbackPolicy,
    callbackWindowMs: 5_000,
    retryAfterMaxMs: 45_000,
    protocol,
    // One retry of a failed sign-in keeps the model small; the count's rule is the same for any.
    session: protocol === 'siwe' ? { safetyRatio: 0.75, jitterMs: 500, maxRetries: 1 } : null,
  };
}

/** The events a host sends a registrar of protocol `siwe`. */
const SIWE_EXTERNAL: readonly RegistrarEvent[] = [{ type: 'HEALTHCHECK' }, { type: 'REARM' }, { type: 'TOKEN_UNAUTHORIZED' }, { type: 'REGISTER_NOW' }, { type: 'STOP' }];

/** The catalogue of protocol `siwe`: the lifecycle's outcomes kept small, the session's all. */
export const SIWE_CATALOG: CatalogOptions = {
  outcomes: {
    checkCredentials: ['ok'],
    acquireLock: ['acquired'],
    readSharedState: ['notRegistered'],
    registerWithDds: ['ok', 'retryable'],
    shutdown: ['done'],
    signIn: ['ok', 'retryable', 'forgotten'],
  },
  actorErrors: true,
  external: SIWE_EXTERNAL,
};

/** A smaller catalogue (used with policy `always`, whose difference is callback admission). */
export const SMALL_CATALOG: CatalogOptions = {
  outcomes: {
    checkCredentials: ['ok'],
    acquireLock: ['acquired', 'busy'],
    readSharedState: ['liveFresh', 'notRegistered'],
    registerWithDds: ['ok', 'conflict'],
    shutdown: ['done'],
    signIn: [],
  },
  actorErrors: false,
};

const TIMER_NODES = [
  'acquiringLock.waitingForLock',
  'registered.health.fresh',
  'registered.callbackWindow.open',
  'healthCheckStale',
  'backoff.retrying',
  'backoff.cooldown',
  'rearming',
  'registered.session.active',
  'registered.session.retrying',
  'registered.session.signInFailed',
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
  'registrar.rearming': 'registration.rearm',
  'registrar.registered.session.active': 'session.signed_in',
  'registrar.registered.session.signInFailed': 'session.retries_exhausted',
};

/** States in which the cross-process lock may be held. */
const LOCK_STATES = ['registrar.acquiringLock.checkingSiblings', 'registrar.registering', 'registrar.stopping'];

/** States of a registration attempt under way: they carry the `attempt` tag. */
const ATTEMPT_STATES = ['registrar.starting', 'registrar.acquiringLock', 'registrar.registering', 'registrar.healthCheckStale', 'registrar.rearming'];

/** The failure an event reports, if it ends an attempt: a DDS answer, a rejection, a compromised lock. */
function failureOf(event: RegistrarModelEvent): { class: string; retryAfterMs: number | null } | null {
  const output = doneOf(event, 'registerWithDds')?.output;
  if (output) return output.ok ? null : { class: output.class, retryAfterMs: output.retryAfterMs };
  if (event.type === 'xstate.error.actor.registerWithDds' || event.type === 'LOCK_COMPROMISED') return { class: 'retryable', retryAfterMs: null };
  return null;
}

/**
 * Replays one model path against a fresh fake registrar (the entry point's
 * `executePath`) and checks every step against the specification. Returns
 * the fake (for its coverage sets).
 */
export async function executePath(path: ModelPath, settings: RegistrarSettings): Promise<FakeRegistrar> {
  const timers = new Map<string, { armedAt: number; delayMs: number }>();
  let specTtlMs = settings.intervalMs;
  // PROTOCOL §3: consecutive retryable failures; max_retry of them mean one interval's cooldown.
  let specAttempt = 0;
  let specRetryAfterMs: number | null = null;
  let expectedStatus: PersistedStatus = 'disconnected';
  let expectedHealthchecks = 0;
  let expectedCallbacks = 0;
  // Whether a callback was accepted during the current attempt's request or window (the first closes it).
  let specSecretReceived = false;
  // §6.6: re-armed, and no sign-in succeeded since: the next re-arm backs off, and a registration keeps the count.
  let specRearmed = false;
  // The access session: the last token's lifetime (the refresh is planned from it), the wait after giving up.
  let specLifetimeMs = 0;
  let specRestartMs = settings.intervalMs;

  const check = ({ step, actual, registrar: h, logs, timers: scheduled, where, was, is }: ExecutedStep): void => {
    const { event } = step;
    const now = h.clock.now();

    // The state file's status.
    const registerDone = doneOf(event, 'registerWithDds');
    const succeeded = registerDone?.output.ok === true;
    const sharedView = doneOf(event, 'readSharedState')?.output;
    const signIn = doneOf(event, 'signIn')?.output;
    // A re-arm: sent by the host, or raised by the session when `verify` answered 403/404.
    const rearm = was('registrar.registered') && !is('registrar.registered') && (event.type === 'REARM' || (signIn?.ok === false && signIn.forgotten));
    if (rearm) {
      const storm = specRearmed;
      assert.ok(is(storm ? 'registrar.backoff' : 'registrar.rearming'), `${where}: a re-arm ${storm ? 'before a sign-in backs off' : 'registers again'}`);
      specRearmed = settings.session !== null;
    }
    if (doneOf(event, 'shutdown') || rearm) expectedStatus = 'disconnected';
    else if (succeeded) expectedStatus = 'registered';
    else if (is('registrar.registering') && !was('registrar.registering')) expectedStatus = 'registering';
    else if (was('registrar.registered') && !is('registrar.registered') && actorEventOf(event)?.name === 'readSharedState') {
      expectedStatus = 'registering'; // the health check went stale
    }
    assert.equal(h.file.status, expectedStatus, `${where}: persisted status`);

    // Health checks: every probe and every success is recorded.
    if (event.type === 'HEALTHCHECK' || succeeded) expectedHealthchecks += 1;
    assert.equal(h.file.healthchecks, expectedHealthchecks, `${where}: persisted health checks`);

    // Callbacks: admitted by policy `always`, or the first one during a request or inside the window.
    if (event.type === 'SECRET_RECEIVED') {
      const first = !specSecretReceived;
      // A repeat of the accepted callback (request in flight or registered): 200, nothing counted.
      const repeat = event.repeat && !first && (was('registrar.registering') || was('registrar.registered'));
      const admitted =
        !repeat &&
        (settings.callbackPolicy === 'always' || (was('registrar.registering') && first) || was('registrar.registered.callbackWindow.open'));
      if (admitted) {
        expectedCallbacks += 1;
        specSecretReceived = true;
      }
    }
    // A new request, a new window: nothing accepted in it yet.
    if (is('registrar.registering') && !was('registrar.registering')) specSecretReceived = false;
    assert.equal(actual.context.callbacks, expectedCallbacks, `${where}: callbacks admitted`);

    // Requests counted = requests sent; the state file is read with the interval.
    assert.equal(actual.context.requests, h.started.registerWithDds, `${where}: requests`);
    if (actorEventOf(event)?.name === 'readSharedState') assert.deepEqual(h.inputs.readSharedState.at(-1), { intervalMs: settings.intervalMs }, where);

    // The lock: held exactly when the context says so, and only where it may be.
    assert.equal(h.lockHeld, actual.context.lock === 'held', `${where}: lock held`);
    if (h.lockHeld) assert.ok(LOCK_STATES.some(is), `${where}: lock held in ${JSON.stringify(actual.value)}`);

    // The `attempt` tag: exactly on the states of an attempt under way.
    assert.equal(actual.hasTag('attempt'), ATTEMPT_STATES.some(is), `${where}: attempt tag`);

    // Entry log lines.
    const newLogs = logs.map((l) => l.event);
    for (const [id, logEvent] of Object.entries(ENTRY_LOGS)) {
      if (is(id) && !was(id)) assert.ok(newLogs.includes(logEvent), `${where}: ${logEvent} not logged (${newLogs.join(', ')})`);
    }
    if (succeeded) assert.ok(newLogs.includes('registration.success'), `${where}: registration.success not logged`);

    // What follows a failed attempt: exponential backoff, or a cooldown (PROTOCOL §3, "beyond").
    const failure =
      was('registrar.registering') && is('registrar.backoff')
        ? failureOf(event)
        : rearm && is('registrar.backoff')
          ? { class: 'retryable', retryAfterMs: null }
          : null;
    if (failure) {
      specRetryAfterMs = failure.retryAfterMs === null ? null : Math.min(failure.retryAfterMs, settings.retryAfterMaxMs);
      specAttempt = failure.class === 'retryable' ? specAttempt + 1 : 0;
      const cooldown = failure.class !== 'retryable' || (settings.maxRetry >= 0 && specAttempt >= settings.maxRetry);
      assert.ok(is(cooldown ? 'registrar.backoff.cooldown' : 'registrar.backoff.retrying'), `${where}: backoff branch`);
      if (cooldown) specAttempt = 0;
      if (failure.class === 'retryable' && cooldown) assert.ok(newLogs.includes('registration.max_retry_reached'), `${where}: max_retry_reached not logged`);
    }
    // A success resets the counter; so does skipping the request for a live sibling's registration.
    if ((succeeded || (was('registrar.acquiringLock') && is('registrar.registered'))) && !specRearmed) specAttempt = 0;
    if (signIn?.ok === true) {
      specAttempt = 0;
      specRearmed = false;
      specLifetimeMs = signIn.lifetimeMs;
    }
    if (signIn?.ok === false) specRestartMs = sessionRestartDelayMs(settings.intervalMs, signIn.forgotten ? null : signIn.tokenRemainingMs);
    if (event.type === 'xstate.error.actor.signIn') specRestartMs = settings.intervalMs;
    assert.equal(actual.context.attempt, specAttempt, `${where}: attempt counter`);

    // Timers of the new state, per the specification, against what the actor scheduled.
    if (succeeded) specTtlMs = settings.intervalMs;
    if (event.type === 'HEALTHCHECK' && was('registrar.registered')) specTtlMs = settings.intervalMs;
    if (sharedView && is('registrar.registered') && sharedView.healthcheckAgeMs !== null) specTtlMs = settings.intervalMs - sharedView.healthcheckAgeMs;
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
        // The default policy with random 0.5: min(2^attempt, 60) s, or Retry-After (at most the cap) when longer.
        'registrar.backoff.retrying': capDelayMs(Math.max(Math.min(2 ** specAttempt, 60) * 1000, specRetryAfterMs ?? 0)),
        'registrar.backoff.cooldown': capDelayMs(Math.max(settings.intervalMs, specRetryAfterMs ?? 0)),
        'registrar.rearming': 0,
        // The machine's own planning (the wiring adds random jitter): the exact ratio, half the jitter.
        'registrar.registered.session.active': tokenRefreshDelayMs(specLifetimeMs, settings.session?.safetyRatio ?? 1, 0, 0.5),
        'registrar.registered.session.retrying': signInRetryDelayMs(settings.session?.jitterMs ?? 0, 0.5),
        'registrar.registered.session.signInFailed': specRestartMs,
      }[id];
      assert.ok(delayMs !== undefined);
      timers.set(id, { armedAt: now, delayMs });
    }
    const actualDeadlines = Object.fromEntries([...scheduled.values()].map((t) => [parseAfterEventType(t.type)?.stateId ?? t.type, t.dueAt]));
    const specDeadlines = Object.fromEntries([...timers].map(([id, t]) => [id, t.armedAt + t.delayMs]));
    assert.deepEqual(actualDeadlines, specDeadlines, `${where}: timers (state id → deadline)`);
    if (actual.status === 'done') {
      assert.equal(timers.size, 0, `${where}: timers in a final state`);
      assert.ok(is('registrar.failed') ? actual.context.error !== null : actual.context.error === null, `${where}: error`);
    }
  };

  return executeGenericPath(path, { settings, onStep: check });
}
