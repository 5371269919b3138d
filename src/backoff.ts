/**
 * backoff — the pluggable retry policy. A policy maps the number of
 * consecutive retryable failures (1 after the first) to a delay in ms; the
 * statechart then honours a longer `Retry-After` and caps the result.
 */
import { crateBackoffDelayMs } from '../machines/registrar.js';

/** Consecutive retryable failures (≥ 1) → delay before the next attempt, ms. */
export type BackoffPolicy = (attempt: number) => number;

/** A source of uniform random numbers in [0, 1). */
export type RandomSource = () => number;

/** The crate's policy: min(2^attempt, 60) s × a random factor in [0.8, 1.2]. */
export function crateBackoff(random: RandomSource = Math.random): BackoffPolicy {
  return (attempt) => crateBackoffDelayMs(attempt, random());
}

export { crateBackoffDelayMs };
