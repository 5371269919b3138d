/**
 * backoff — the pluggable retry policy. A policy maps the number of
 * consecutive retryable failures (1 after the first) to a delay in ms; the
 * statechart then honours a longer `Retry-After` and caps the result.
 *
 * Three policies ship, selectable by name ({@link createBackoffPolicy}, the
 * `backoff` setting):
 *
 * - `crate` (default): the Rust crate's, min(2^attempt, 60) s × U[0.8, 1.2].
 * - `full-jitter`: AWS's "full jitter", U[0, min(60 s, 1 s × 2^attempt)]:
 *   the crate's envelope, the whole of it used.
 * - `decorrelated-jitter`: AWS's "decorrelated jitter",
 *   min(60 s, U[1 s, 3 × previous delay]), restarting from 1 s at the first
 *   failure of a series. It keeps the previous delay, so every registrar
 *   needs its own instance: the factories return a fresh one on every call.
 *
 * `bench/fleet.ts` compares them on a fleet of registrars coming back from a
 * DDS outage (see `docs/benchmarks.md`).
 */
import { crateBackoffDelayMs } from '../machines/registrar.js';

/** Consecutive retryable failures (≥ 1) → delay before the next attempt, ms. */
export type BackoffPolicy = (attempt: number) => number;

/** A source of uniform random numbers in [0, 1). */
export type RandomSource = () => number;

/** The names of the policies {@link createBackoffPolicy} knows. */
export const BACKOFF_POLICY_NAMES = ['crate', 'full-jitter', 'decorrelated-jitter'] as const;

/** A policy's name: the `backoff` setting. */
export type BackoffPolicyName = (typeof BACKOFF_POLICY_NAMES)[number];

/** The default policy: the crate's (wire- and behaviour-compatible). */
export const DEFAULT_BACKOFF_POLICY: BackoffPolicyName = 'crate';

/** Base delay of the jitter policies, ms (the crate's first retry waits 2 × this, ±20 %). */
export const JITTER_BASE_MS = 1000;

/** Longest delay of the jitter policies, ms (the crate's cap). */
export const JITTER_CAP_MS = 60_000;

/** Base and cap of a jitter policy. */
export interface JitterOptions {
  /** Base delay, ms (default {@link JITTER_BASE_MS}). */
  baseMs?: number;
  /** Longest delay, ms (default {@link JITTER_CAP_MS}). */
  capMs?: number;
}

/** Whether `value` names a policy of {@link BACKOFF_POLICY_NAMES}. */
export function isBackoffPolicyName(value: unknown): value is BackoffPolicyName {
  return typeof value === 'string' && (BACKOFF_POLICY_NAMES as readonly string[]).includes(value);
}

/** The crate's policy: min(2^attempt, 60) s × a random factor in [0.8, 1.2]. */
export function crateBackoff(random: RandomSource = Math.random): BackoffPolicy {
  return (attempt) => crateBackoffDelayMs(attempt, random());
}

function jitterBounds(options: JitterOptions): { baseMs: number; capMs: number } {
  const baseMs = options.baseMs ?? JITTER_BASE_MS;
  const capMs = options.capMs ?? JITTER_CAP_MS;
  if (!(baseMs > 0) || !Number.isFinite(baseMs)) throw new RangeError('baseMs must be a positive number of ms');
  if (!(capMs >= baseMs) || !Number.isFinite(capMs)) throw new RangeError('capMs must be a number of ms ≥ baseMs');
  return { baseMs, capMs };
}

/**
 * AWS's "full jitter": U[0, min(cap, base × 2^attempt)] — with the defaults,
 * the crate's envelope (2, 4, 8 … 60 s) with the delay drawn from all of it.
 * Stateless.
 */
export function fullJitterBackoff(random: RandomSource = Math.random, options: JitterOptions = {}): BackoffPolicy {
  const { baseMs, capMs } = jitterBounds(options);
  return (attempt) => random() * Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
}

/**
 * AWS's "decorrelated jitter": min(cap, U[base, 3 × previous delay]), the
 * previous delay being `base` at the first failure of a series (`attempt`
 * ≤ 1). Stateful: every call returns a new instance with its own memory;
 * give each registrar its own.
 */
export function decorrelatedJitterBackoff(random: RandomSource = Math.random, options: JitterOptions = {}): BackoffPolicy {
  const { baseMs, capMs } = jitterBounds(options);
  let previousMs = baseMs;
  return (attempt) => {
    if (attempt <= 1) previousMs = baseMs;
    const upperMs = Math.max(baseMs, previousMs * 3);
    previousMs = Math.min(capMs, baseMs + random() * (upperMs - baseMs));
    return previousMs;
  };
}

/** A fresh instance of the named policy (each call has its own state). */
export function createBackoffPolicy(name: BackoffPolicyName = DEFAULT_BACKOFF_POLICY, random: RandomSource = Math.random): BackoffPolicy {
  switch (name) {
    case 'crate':
      return crateBackoff(random);
    case 'full-jitter':
      return fullJitterBackoff(random);
    case 'decorrelated-jitter':
      return decorrelatedJitterBackoff(random);
    default:
      throw new RangeError(`unknown backoff policy ${JSON.stringify(String(name)).slice(0, 40)}`);
  }
}

export { crateBackoffDelayMs };
