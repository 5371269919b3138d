/**
 * log-rate-limit — identical warnings (a DDS that answers 409 for hours) are
 * logged once per window; the next line that gets through says how many were
 * suppressed.
 */
import type { LogFields, Logger, LogLevel } from './log.js';

/** Options of {@link createRateLimitedLog}. */
export interface RateLimitOptions {
  /** Window per key, ms (default 60 s). */
  windowMs?: number;
  /** The clock (default `Date.now`). */
  now?: () => number;
}

/** Log `fields` at `level`; lines with the same `key` inside the window are counted, not written. */
export type RateLimitedLog = (level: LogLevel, fields: LogFields, key?: string) => void;

/** Wrap a logger with per-key rate limiting. Lines without a key always pass. */
export function createRateLimitedLog(logger: Logger, options: RateLimitOptions = {}): RateLimitedLog {
  const windowMs = options.windowMs ?? 60_000;
  const now = options.now ?? Date.now;
  const seen = new Map<string, { at: number; suppressed: number }>();
  return (level, fields, key) => {
    if (key !== undefined) {
      const t = now();
      const entry = seen.get(key);
      if (entry && t - entry.at < windowMs) {
        entry.suppressed += 1;
        return;
      }
      const suppressed = entry?.suppressed ?? 0;
      seen.set(key, { at: t, suppressed: 0 });
      if (seen.size > 256) seen.delete(seen.keys().next().value as string);
      if (suppressed > 0) fields = { ...fields, suppressed };
    }
    logger[level](fields);
  };
}
