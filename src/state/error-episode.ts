/**
 * state/error-episode — how a disk-error episode is logged: one line when it
 * starts (`<event>.error`), the failures after it counted silently, and one
 * `<event>.recovered` (with the count and the duration) once it is over.
 *
 * With hysteresis: an episode is over only when no failure came for
 * `quietMs` after the first success (logged at the first success after
 * that). On a nearly full disk, where writes fail and succeed by turns, the
 * episode then stays one episode instead of two lines every cycle.
 */
import type { Logger, LogFields } from '../log.js';

/** Options of {@link ErrorEpisode}. */
export interface ErrorEpisodeOptions {
  logger: Logger;
  /** The lines' name: `<event>.error`, `<event>.recovered` (e.g. `state.write`). */
  event: string;
  /** Fields on both lines (e.g. the path). */
  fields?: Record<string, unknown>;
  /** The messages of the two lines. */
  messages: { error: string; recovered: string };
  /** The clock, ms (default `Date.now`). */
  now?: () => number;
  /** How long operations must go without a failure before the episode is over, ms (default 0: at the first success). */
  quietMs?: number;
}

/** One kind of disk operation's error episodes (see the module's comment). */
export class ErrorEpisode {
  readonly #o: ErrorEpisodeOptions;
  readonly #now: () => number;
  readonly #quietMs: number;
  /** When the episode's first failure came; undefined when no episode is under way. */
  #since: number | undefined;
  #failures = 0;
  /** The first success since the last failure (the disk's recovery, if no failure follows). */
  #successSince: number | undefined;
  #lastCode: string | undefined;

  constructor(options: ErrorEpisodeOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#quietMs = Math.max(0, options.quietMs ?? 0);
  }

  /** The last operation failed (its error code), or undefined when it succeeded. */
  get failing(): string | undefined {
    return this.#since !== undefined && this.#successSince === undefined ? this.#lastCode : undefined;
  }

  /** An episode is under way (from its first failure until `<event>.recovered`). */
  get active(): boolean {
    return this.#since !== undefined;
  }

  /** An operation failed with `code`: the first failure of an episode is logged (with `extra`), the others counted. */
  failed(code: string, extra: Record<string, unknown> = {}): void {
    const t = this.#now();
    if (this.#since === undefined) {
      this.#since = t;
      this.#failures = 0;
      this.#o.logger.error(this.#line('error', { code, ...extra }), this.#o.messages.error);
    }
    this.#failures += 1;
    this.#lastCode = code;
    this.#successSince = undefined;
  }

  /** An operation succeeded: the episode is over once no failure came for `quietMs` since the first success. */
  succeeded(): void {
    if (this.#since === undefined) return;
    const t = this.#now();
    this.#successSince ??= t;
    if (t - this.#successSince < this.#quietMs) return;
    this.#o.logger.info(
      this.#line('recovered', { failures: this.#failures, last_code: this.#lastCode, episode_ms: Math.max(0, this.#successSince - this.#since) }),
      this.#o.messages.recovered,
    );
    this.#since = undefined;
    this.#successSince = undefined;
    this.#failures = 0;
  }

  #line(kind: 'error' | 'recovered', fields: Record<string, unknown>): LogFields {
    return { event: `${this.#o.event}.${kind}`, ...this.#o.fields, ...fields };
  }
}
