/**
 * A model of the herd, for `bench/fleet.ts`: the retry schedules of N
 * registrars through a DDS outage, computed with the real policies of
 * `src/backoff.ts` and the machine's cap (`capDelayMs`), without I/O. It
 * extends the measured run (one outage, scaled-down times) to the real
 * defaults (interval 120 s) and to many outage lengths, cheaply.
 *
 * Each node's last probe before the outage is uniform in the last probe
 * period, so its TTL expires at `interval − U[0, probe period)` after DDS
 * goes down (a node whose TTL outlives the outage never notices it). From
 * then on every attempt during the outage fails at once (connection
 * refused: no `Retry-After`) and the policy picks the next; the first
 * attempt after DDS returns succeeds (DDS of unbounded capacity: the model
 * isolates what the policy does).
 */
import { capDelayMs } from '../machines/registrar.js';
import { createBackoffPolicy, type BackoffPolicyName } from '../src/backoff.js';
import { seededRandom } from '../test/support/random.js';

/** One scenario. */
export interface HerdScenario {
  nodes: number;
  intervalMs: number;
  probeEveryMs: number;
  outageMs: number;
}

/** What a policy does in a scenario. */
export interface HerdModelResult {
  /** Nodes that noticed the outage (their TTL expired during it). */
  noticed: number;
  /** Attempts that failed during the outage. */
  attemptsInOutage: number;
  /** Most first-attempts-after-return in any 1 s window. */
  peakPerSec: number;
  /** From DDS back until the last noticing node is registered, ms. */
  recoveryMs: number;
  /** Median of that per node, ms. */
  recoveryP50Ms: number;
}


/** The most values of an ascending list inside any window of `widthMs`. */
function peakInWindow(sorted: readonly number[], widthMs: number): number {
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while ((sorted[hi] as number) - (sorted[lo] as number) >= widthMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** Run the model for one policy (a fresh policy instance per node, as in the registrar). */
export function modelHerd(s: HerdScenario, policy: BackoffPolicyName, seed = 1): HerdModelResult {
  const phase = seededRandom(seed);
  const random = seededRandom(seed + 1000);
  const returns: number[] = [];
  let attemptsInOutage = 0;
  for (let i = 0; i < s.nodes; i++) {
    let t = s.intervalMs - phase() * s.probeEveryMs;
    if (t >= s.outageMs) continue;
    const next = createBackoffPolicy(policy, random);
    let attempt = 0;
    while (t < s.outageMs) {
      attemptsInOutage++;
      attempt++;
      t += capDelayMs(next(attempt));
    }
    returns.push(t - s.outageMs);
  }
  returns.sort((a, b) => a - b);
  return {
    noticed: returns.length,
    attemptsInOutage,
    peakPerSec: peakInWindow(returns, 1000),
    recoveryMs: returns.length === 0 ? 0 : (returns[returns.length - 1] as number),
    recoveryP50Ms: returns.length === 0 ? 0 : (returns[Math.ceil(returns.length / 2) - 1] as number),
  };
}
