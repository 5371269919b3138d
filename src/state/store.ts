/**
 * state/store — the registration state file of one data directory
 * (format: ./state-file.ts; I/O: ./atomic-file.ts).
 *
 * - Writes are atomic and durable (`writeFileAtomicSync`); temp files left by
 *   a killed writer are never read and are swept once over a minute old.
 * - Reads never throw: a corrupt file, a non-object or an unknown status is
 *   logged once (`status.unknown`) and read as `disconnected`. Only a regular
 *   file is read: a symlink, FIFO or directory at the path is a read error.
 * - Disk faults never throw either: `write` returns `false`, logs
 *   `state.write.error` once per episode and `state.write.recovered` (the
 *   failures counted, the episode's length) when it is over — with
 *   `errorQuietMs`, only once writes went that long without a failure
 *   (./error-episode.ts); meanwhile `read` falls back to what was last meant
 *   to be written if the file cannot be read (`state.read.error`, with the
 *   path, the code and, for what is not a regular file, the reason).
 *
 * Synchronous on purpose: the statechart calls it from actions, which must be
 * synchronous and ordered.
 *
 * @module
 */
import * as path from 'node:path';
import { silentLogger, type Logger } from '../log.js';
import { errorCode, errorReason, readRegularFileSync, sweepStaleTempFiles, writeFileAtomicSync } from './atomic-file.js';
import { ErrorEpisode } from './error-episode.js';
import {
  copyState,
  defaultRegistrationState,
  isRegistrationStatus,
  parseStateText,
  serializeState,
  validateState,
  sameSession,
  sessionWith,
  type ParsedStateFile,
  type RegistrationState,
  type RegistrationStatus,
} from './state-file.js';
import type { RegistrationProtocol } from '../../machines/registrar.js';
import { sameWriter, thisProcessWriter, type WriterInfo } from './writer.js';

/** Names a registrar in the session's holders: its instance id, else its pid and start. */
function writerKey(w: WriterInfo): string {
  return w.instance ?? `${w.host}:${w.pid}:${w.startedAt}`;
}

/** The largest state file read (the crate's is ~60 bytes; unknown keys are carried, within reason). */
export const MAX_STATE_FILE_BYTES = 1024 * 1024;

/** Options of {@link StateStore}. */
export interface StateStoreOptions {
  /** The data directory (default `data`, relative to the working directory). */
  dir?: string;
  /** The file's name inside `dir` (default `registration_state.json`). */
  fileName?: string;
  /** Where `status.unknown` and `state.*` lines go (default: nowhere). */
  logger?: Logger;
  /** Who this store says wrote the file (default: {@link thisProcessWriter}). */
  writer?: WriterInfo;
  /** The clock for health-check times, in ms since the epoch (default `Date.now`). */
  now?: () => number;
  /**
   * A health check recorded less than this long ago (ms) is not written
   * again: DDS may probe many times a second, and each write is two
   * `fsync`s on the probe's path (default 0: every probe is written). The
   * registrar uses min(1 s, interval / 10); the file's `last_healthcheck`
   * is whole seconds anyway.
   */
  healthcheckResolutionMs?: number;
  /**
   * A disk-error episode is over (`state.write.recovered`) only when no
   * failure came for this long after a success, ms (default 0: at the first
   * success). The registrar uses two intervals: a nearly full disk whose
   * writes fail and succeed by turns is one episode, not two lines a cycle.
   */
  errorQuietMs?: number;
  /**
   * The generation this store's registrar registers by (default `legacy`):
   * under `siwe` every write says so (file key `protocol`); under `legacy` none
   * does, and a `protocol` or `session` left by an earlier writer is dropped.
   */
  protocol?: RegistrationProtocol;
  /** Whether the registrar keeps an access session (under `siwe`): every write then records it (file key `session`). */
  session?: boolean;
}

const SWEEP_EVERY_MS = 60_000;

/**
 * The registration state file of one data directory.
 *
 * @example
 * ```ts
 * const store = new StateStore({ dir: 'data', logger });
 * store.setStatus('registered');
 * store.touchHealthcheckNow();
 * store.read(); // { status: 'registered', lastHealthcheck: 1704164645, … }
 * ```
 */
export class StateStore {
  /** The state file's absolute path. */
  readonly path: string;
  readonly #logger: Logger;
  readonly #writer: WriterInfo;
  readonly #now: () => number;
  readonly #resolutionMs: number;
  /** What was last written (or meant to be) or read: the fallback when the file cannot be read. */
  #memory: ParsedStateFile | undefined;
  readonly #writeErrors: ErrorEpisode;
  readonly #readErrors: ErrorEpisode;
  /** The problem of the current invalid-file episode, if one is under way. */
  #invalid: string | undefined;
  #lastSweep = -Infinity;
  readonly #protocol: RegistrationProtocol;
  /** Under siwe with the session on: when this registrar's token expires (null: none), its entry in `session`. */
  #session: { expiresAtMs: number | null } | undefined;

  constructor(options: StateStoreOptions = {}) {
    this.path = path.resolve(options.dir ?? 'data', options.fileName ?? 'registration_state.json');
    this.#logger = options.logger ?? silentLogger;
    this.#writer = { ...(options.writer ?? thisProcessWriter()) };
    this.#now = options.now ?? Date.now;
    this.#resolutionMs = Math.max(0, options.healthcheckResolutionMs ?? 0);
    const episode = { logger: this.#logger, fields: { path: this.path }, now: this.#now, quietMs: options.errorQuietMs };
    this.#writeErrors = new ErrorEpisode({
      ...episode,
      event: 'state.write',
      messages: { error: 'cannot write the state file; keeping the state in memory', recovered: 'the state file is writable again' },
    });
    this.#readErrors = new ErrorEpisode({
      ...episode,
      event: 'state.read',
      messages: { error: 'cannot read the state file; using the last known state', recovered: 'the state file is readable again' },
    });
    this.#protocol = options.protocol ?? 'legacy';
    this.#session = this.#protocol === 'siwe' && options.session === true ? { expiresAtMs: null } : undefined;
  }

  /** `false` while the last write or read failed. */
  get healthy(): boolean {
    return this.#writeErrors.failing === undefined && this.#readErrors.failing === undefined;
  }

  /**
   * The state in the file. A missing file reads as `disconnected` with no
   * health check; an invalid one as `disconnected` (keeping a valid
   * `last_healthcheck`), logged once as `status.unknown`. When the file
   * cannot be read (or is missing after a failed write), the state last
   * written or read is returned. Never throws.
   */
  read(): RegistrationState {
    return copyState(this.#readFile().state);
  }

  /**
   * Replace the file's content with `state` (unknown keys are dropped; use
   * {@link setStatus} / {@link touchHealthcheckNow} to keep them).
   *
   * @returns `false` on a disk error (logged once per episode); never throws for one.
   * @throws RangeError when `state` is not a valid state (a programming error).
   */
  write(state: RegistrationState): boolean {
    validateState(state);
    return this.#write(copyState(state), {});
  }

  /**
   * Set the status, keeping the health check and any unknown keys; stamps
   * this writer. A file that already says so, written by this writer, is
   * left as it is. Durable, but for the transient `registering`: atomic,
   * without waiting for the disk.
   */
  setStatus(status: RegistrationStatus): boolean {
    if (!isRegistrationStatus(status)) throw new RangeError('invalid registration status');
    const current = this.#readFile();
    const { writer } = current.state;
    if (
      this.#readCleanly(current) &&
      current.state.status === status &&
      writer !== null &&
      sameWriter(writer, this.#writer) &&
      this.#hasStamp(current.state)
    ) {
      return true;
    }
    // `registering` is transient (a request is about to leave): it is not worth a disk wait on the
    // way to that request. A power loss that loses it loses nothing: every start registers anew.
    return this.#write(this.#withStamp({ ...current.state, status, writer: { ...this.#writer } }), current.extras, status !== 'registering');
  }

  /**
   * Record when this registrar's access token expires (`null`: none held),
   * keeping everything else, its siblings' entries included; a store
   * without a session ignores it. Atomic, not durable: after a power loss
   * the token has gone with its process.
   */
  setSession(accessExpiresAtMs: number | null): boolean {
    if (this.#session === undefined) return true;
    this.#session = { expiresAtMs: accessExpiresAtMs };
    const current = this.#readFile();
    if (this.#readCleanly(current) && this.#hasStamp(current.state)) return true;
    return this.#write(this.#withStamp({ ...current.state, writer: current.state.writer ?? { ...this.#writer } }), current.extras, false);
  }

  /**
   * Record a DDS health check at `now()`, keeping the status, its writer and
   * any unknown keys. `writer` names who wrote the *status*: a probe that
   * reaches a sibling must not make the file look as if that sibling had
   * registered (a file with no writer yet gets this one).
   */
  touchHealthcheckNow(): boolean {
    const ms = this.#now();
    // Within the resolution of the last one this store wrote, not even the file is read.
    const mine = this.#memory?.state.lastHealthcheckMs ?? null;
    if (this.healthy && mine !== null && ms >= mine && ms - mine < this.#resolutionMs) return true;
    const current = this.#readFile();
    const last = current.state.lastHealthcheckMs;
    if (this.#readCleanly(current) && last !== null && ms >= last && ms - last < this.#resolutionMs) return true;
    const writer = current.state.writer ?? { ...this.#writer };
    return this.#write(
      this.#withStamp({ ...current.state, lastHealthcheck: Math.floor(ms / 1000), lastHealthcheckMs: ms, writer }),
      current.extras,
    );
  }

  /** `state` already says what this store would stamp on it. */
  #hasStamp(state: RegistrationState): boolean {
    const stamped = this.#withStamp(state);
    return stamped.protocol === state.protocol && sameSession(stamped.session, state.session);
  }

  /**
   * `state` with this store's protocol, and its entry in the session (expired
   * ones pruned); under `legacy`, or without a session, neither key survives.
   */
  #withStamp(state: RegistrationState): RegistrationState {
    const { protocol: _protocol, session, ...rest } = state;
    const out: RegistrationState = { ...rest };
    if (this.#protocol !== 'siwe') return out;
    out.protocol = 'siwe';
    if (this.#session !== undefined) out.session = sessionWith(session, writerKey(this.#writer), this.#session.expiresAtMs, this.#now());
    return out;
  }

  #readFile(): ParsedStateFile {
    let text: string;
    try {
      text = readRegularFileSync(this.path, MAX_STATE_FILE_BYTES).toString('utf8');
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT') {
        this.#readErrors.succeeded();
        // After a failed write the file may never have been created: what we
        // meant to write is still the truth for this process.
        if (this.#writeErrors.failing !== undefined && this.#memory !== undefined) return this.#memory;
        return { state: defaultRegistrationState(), extras: {} };
      }
      this.#readErrors.failed(code, { reason: errorReason(err) });
      return this.#memory ?? { state: defaultRegistrationState(), extras: {} };
    }
    this.#readErrors.succeeded();
    const parsed = parseStateText(text);
    if (parsed.problem !== undefined) {
      if (this.#invalid !== parsed.problem) {
        this.#invalid = parsed.problem;
        this.#logger.warn(
          { event: 'status.unknown', path: this.path, reason: parsed.problem },
          'invalid state file; treating the status as disconnected',
        );
      }
    } else {
      this.#invalid = undefined;
      this.#memory = parsed;
    }
    return parsed;
  }

  /** `parsed` came from a valid file just read, and no disk error is under way. */
  #readCleanly(parsed: ParsedStateFile): boolean {
    return parsed.problem === undefined && this.healthy;
  }

  #write(state: RegistrationState, extras: Record<string, unknown>, durable = true): boolean {
    this.#memory = { state, extras };
    try {
      writeFileAtomicSync(this.path, serializeState(state, extras), { durable });
    } catch (err) {
      this.#writeErrors.failed(errorCode(err));
      return false;
    }
    this.#writeErrors.succeeded();
    this.#invalid = undefined;
    const t = Date.now();
    if (t - this.#lastSweep >= SWEEP_EVERY_MS) {
      this.#lastSweep = t;
      sweepStaleTempFiles(this.path);
    }
    return true;
  }
}
