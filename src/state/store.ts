/**
 * state/store — the registration state file (PROTOCOL.md §3).
 *
 * The file is the crate's format, `{"status":"registered","last_healthcheck":1704164645}`,
 * with extra keys the crate ignores: `last_healthcheck_ms` (a finer time) and
 * `writer` (`{pid, host, started_at}`: which process wrote it last, so a
 * sibling can tell a live registrar from one that is gone).
 *
 * Everything here is synchronous on purpose: the statechart calls it from
 * actions, which must be synchronous and ordered.
 *
 * - Writes are atomic and durable: a temp file in the same directory, written,
 *   fsynced, renamed over the target, then the directory fsynced. A reader
 *   sees the old file or the new one, never half of one, even when the writer
 *   is SIGKILLed mid-write. Temp files left by a killed writer are never read
 *   and are removed once they are over a minute old.
 * - Reads never throw: a corrupt file, a non-object or an unknown status is
 *   logged once (`status.unknown`) and read as `disconnected`.
 * - Disk faults never throw either: `write` returns `false`, logs
 *   `state.write.error` once per episode and `state.write.recovered` when a
 *   write succeeds again; meanwhile `read` falls back to what was last meant
 *   to be written if the file cannot be read.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger, type Logger } from '../log.js';

/** The persisted registration status. */
export type RegistrationStatus = 'disconnected' | 'registering' | 'registered';

/** The statuses, in the crate's order. */
export const REGISTRATION_STATUSES: readonly RegistrationStatus[] = ['disconnected', 'registering', 'registered'];

/** A process that writes the state file or holds the lock. */
export interface WriterInfo {
  /** Its process id. */
  pid: number;
  /** The host it runs on (`os.hostname()`). */
  host: string;
  /**
   * When it started (ms since the Unix epoch): the process's start for
   * {@link thisProcessWriter}, the registrar's creation for {@link newWriterInfo}.
   * Tells it apart from a later process with the same pid.
   */
  startedAt: number;
}

/** What the state file holds. */
export interface RegistrationState {
  /** The registration status (file key `status`). */
  status: RegistrationStatus;
  /** The last DDS health check in whole Unix seconds, or `null` (file key `last_healthcheck`). */
  lastHealthcheck: number | null;
  /**
   * The last DDS health check in ms since the epoch, or `null` (file key
   * `last_healthcheck_ms`). When the file lacks it (the crate writes only two
   * keys) or it disagrees with `last_healthcheck`, it is read as
   * `lastHealthcheck * 1000`.
   */
  lastHealthcheckMs: number | null;
  /** Who wrote the file last (file key `writer`: `{pid, host, started_at}`), if known. */
  writer: WriterInfo | null;
}

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
}

/** The state of a node that never registered. */
export function defaultRegistrationState(): RegistrationState {
  return { status: 'disconnected', lastHealthcheck: null, lastHealthcheckMs: null, writer: null };
}

const STARTED_AT = Math.round(Date.now() - process.uptime() * 1000);

/** This process: its pid, `os.hostname()` and its start time (rounded to a ms). */
export function thisProcessWriter(): WriterInfo {
  return { pid: process.pid, host: os.hostname(), startedAt: STARTED_AT };
}

let lastIssuedStartedAt = STARTED_AT;

/**
 * A writer identity for one registrar of this process: this pid and host,
 * and a `startedAt` (its creation time) that no other writer of this process
 * has, so that two registrars sharing a process and a data directory are told
 * apart. Announce it with {@link registerLiveWriter} while the registrar runs.
 */
export function newWriterInfo(): WriterInfo {
  lastIssuedStartedAt = Math.max(Date.now(), lastIssuedStartedAt + 1);
  return { pid: process.pid, host: os.hostname(), startedAt: lastIssuedStartedAt };
}

/** Writers of this process that are running (see {@link registerLiveWriter}), with a count of registrations. */
const liveWriters = new Map<string, number>();

function writerKey(w: WriterInfo): string {
  return `${w.pid}\u0000${w.host}\u0000${w.startedAt}`;
}

/**
 * Declare `w` (a writer of this process, from {@link newWriterInfo}) alive
 * until the returned function is called: {@link isWriterAlive} then answers
 * for it from this registry instead of from the process start time.
 */
export function registerLiveWriter(w: WriterInfo): () => void {
  const key = writerKey(w);
  liveWriters.set(key, (liveWriters.get(key) ?? 0) + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const n = (liveWriters.get(key) ?? 1) - 1;
    if (n <= 0) liveWriters.delete(key);
    else liveWriters.set(key, n);
  };
}

/** Whether `a` and `b` name the same writer (pid, host and start time). */
export function sameWriter(a: WriterInfo, b: WriterInfo): boolean {
  return a.pid === b.pid && a.host === b.host && a.startedAt === b.startedAt;
}

/**
 * Whether the process `w` names may still be running.
 *
 * On this host (`here.host`), it is alive when `process.kill(pid, 0)`
 * succeeds or fails with `EPERM` (it exists, we may not signal it); on Linux
 * an exited process its parent has not reaped yet (a zombie) counts as dead.
 * When the pid is `here`'s own, the kill test says nothing: the writer is
 * alive when it is `here` itself, this process ({@link thisProcessWriter}),
 * or a writer of this process registered with {@link registerLiveWriter};
 * any other (say, a record left by an earlier process that had our pid, or a
 * registrar of this process that has stopped) counts as dead. On another
 * host we cannot tell, so it counts as alive.
 */
export function isWriterAlive(w: WriterInfo, here: WriterInfo = thisProcessWriter()): boolean {
  if (w.host !== here.host) return true;
  if (w.pid === here.pid) {
    if (sameWriter(w, here) || liveWriters.has(writerKey(w))) return true;
    return w.pid === process.pid && w.host === os.hostname() && w.startedAt === STARTED_AT;
  }
  if (!Number.isSafeInteger(w.pid) || w.pid <= 0) return false;
  try {
    process.kill(w.pid, 0);
  } catch (err) {
    return errorCode(err) === 'EPERM';
  }
  return !isZombie(w.pid);
}

/**
 * On Linux, whether `pid` has exited but not been reaped by its parent yet
 * (`process.kill(pid, 0)` still succeeds for such a process). Elsewhere `false`.
 */
function isZombie(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S …": comm may contain spaces and parentheses, the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}

/** The `code` of a Node system error, or `EUNKNOWN`. @internal */
export function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return 'EUNKNOWN';
}

const TEMP_SUFFIX = '.tmp';

function tempPrefix(target: string): string {
  return `.${path.basename(target)}.`;
}

/** Options of {@link writeFileAtomicSync}. */
export interface AtomicWriteOptions {
  /** The file's mode (default 0600). */
  mode?: number;
  /**
   * fsync the file before the rename and the directory after it, so that
   * the write survives a power loss (default true). Without, the write is
   * still atomic and survives a crash of the process (the page cache does),
   * and costs no disk wait.
   */
  durable?: boolean;
}

/**
 * Write `data` to `target` atomically (and, by default, durably): a uniquely
 * named temp file beside it, fsync, rename over `target`, fsync the
 * directory. Creates the directory (mode 0700) if it is missing. On failure
 * the temp file is removed and the error thrown; `target` is then untouched.
 *
 * @internal shared by the store and the lock's holder file.
 */
export function writeFileAtomicSync(target: string, data: string, options: AtomicWriteOptions = {}): void {
  const { mode = 0o600, durable = true } = options;
  const dir = path.dirname(target);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = path.join(dir, `${tempPrefix(target)}${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  let fd: number | undefined;
  let created = false;
  try {
    fd = fs.openSync(temp, 'wx', mode);
    created = true;
    fs.fchmodSync(fd, mode); // the umask may have narrowed it; make it exact
    fs.writeFileSync(fd, data);
    if (durable) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, target);
    created = false;
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error matters
      }
    }
    if (created) {
      try {
        fs.unlinkSync(temp);
      } catch {
        // nothing more to do: stale temp files are swept later
      }
    }
    throw err;
  }
  if (durable) fsyncDirectory(dir);
}

/** Make a rename in `dir` durable. Best effort: some systems cannot fsync a directory. */
function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // the rename is done and visible; only its durability is not confirmed
  } finally {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // ignore
      }
    }
  }
}

/**
 * Remove temp files of `target` (as {@link writeFileAtomicSync} names them)
 * older than `maxAgeMs`: left by a writer that was killed mid-write.
 * Best effort, never throws.
 *
 * @internal
 */
export function sweepStaleTempFiles(target: string, maxAgeMs = 60_000): void {
  const dir = path.dirname(target);
  const prefix = tempPrefix(target);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const cutoff = Date.now() - maxAgeMs;
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(TEMP_SUFFIX)) continue;
    const file = path.join(dir, name);
    try {
      const st = fs.lstatSync(file);
      if (st.isFile() && st.mtimeMs < cutoff) fs.unlinkSync(file);
    } catch {
      // gone already, or not ours to remove
    }
  }
}

/** Keys this module reads and writes; any others are carried along untouched. */
const KNOWN_KEYS = new Set(['status', 'last_healthcheck', 'last_healthcheck_ms', 'writer']);

interface ParsedFile {
  state: RegistrationState;
  /** Unknown keys found in the file, kept so read-modify-write preserves them. */
  extras: Record<string, unknown>;
  /** Why the file was not a valid state, if it was not. */
  problem?: string;
}

/** Set `obj[key]` as an own data property, even for a key like `__proto__`. */
function defineKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStatus(v: unknown): v is RegistrationStatus {
  return typeof v === 'string' && (REGISTRATION_STATUSES as readonly string[]).includes(v);
}

function parseWriter(v: unknown): WriterInfo | null {
  if (!isRecord(v)) return null;
  const { pid, host, started_at: startedAt } = v;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  if (typeof host !== 'string' || typeof startedAt !== 'number' || !Number.isFinite(startedAt)) return null;
  return { pid, host, startedAt };
}

/** Parse the text of a state file. Never throws. @internal */
export function parseStateText(text: string): ParsedFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { state: defaultRegistrationState(), extras: {}, problem: 'invalid JSON' };
  }
  if (!isRecord(json)) {
    return { state: defaultRegistrationState(), extras: {}, problem: 'not a JSON object' };
  }
  const extras: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!KNOWN_KEYS.has(k)) defineKey(extras, k, v);

  const rawHc = json.last_healthcheck;
  let lastHealthcheck: number | null = null;
  let problem: string | undefined;
  if (typeof rawHc === 'number' && Number.isFinite(rawHc)) {
    lastHealthcheck = Math.floor(rawHc);
  } else if (rawHc !== null && rawHc !== undefined) {
    problem = 'last_healthcheck is not a number';
  }
  let lastHealthcheckMs: number | null = null;
  const rawMs = json.last_healthcheck_ms;
  if (lastHealthcheck !== null) {
    // Trust the finer time only while it agrees with the crate's key, which
    // another writer (the crate itself) may have rewritten on its own.
    lastHealthcheckMs =
      typeof rawMs === 'number' && Number.isFinite(rawMs) && Math.floor(rawMs / 1000) === lastHealthcheck
        ? rawMs
        : lastHealthcheck * 1000;
  }
  const status = json.status;
  if (problem === undefined && !isStatus(status)) {
    problem =
      status === undefined ? 'missing status' : `unknown status ${JSON.stringify(status).slice(0, 40)}`;
  }
  return {
    state: {
      status: problem === undefined && isStatus(status) ? status : 'disconnected',
      lastHealthcheck,
      lastHealthcheckMs,
      writer: parseWriter(json.writer),
    },
    extras,
    ...(problem === undefined ? {} : { problem }),
  };
}

/** The file's text for `state` (crate keys first), plus `extras`. @internal */
export function serializeState(state: RegistrationState, extras: Record<string, unknown> = {}): string {
  const out: Record<string, unknown> = {
    status: state.status,
    last_healthcheck: state.lastHealthcheck,
    last_healthcheck_ms: state.lastHealthcheckMs,
    writer:
      state.writer === null
        ? null
        : { pid: state.writer.pid, host: state.writer.host, started_at: state.writer.startedAt },
  };
  for (const [k, v] of Object.entries(extras)) if (!KNOWN_KEYS.has(k)) defineKey(out, k, v);
  return `${JSON.stringify(out)}\n`;
}

function copyState(s: RegistrationState): RegistrationState {
  return { ...s, writer: s.writer === null ? null : { ...s.writer } };
}

function validateState(state: RegistrationState): void {
  if (!isStatus(state.status)) throw new RangeError('invalid registration status');
  for (const v of [state.lastHealthcheck, state.lastHealthcheckMs]) {
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v))) {
      throw new RangeError('health-check times must be finite numbers or null');
    }
  }
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
  #memory: ParsedFile | undefined;
  /** The error code of the current write-error episode, if one is under way. */
  #writeError: string | undefined;
  /** The error code of the current read-error episode, if one is under way. */
  #readError: string | undefined;
  /** The problem of the current invalid-file episode, if one is under way. */
  #invalid: string | undefined;
  #lastSweep = -Infinity;

  constructor(options: StateStoreOptions = {}) {
    this.path = path.resolve(options.dir ?? 'data', options.fileName ?? 'registration_state.json');
    this.#logger = options.logger ?? silentLogger;
    this.#writer = { ...(options.writer ?? thisProcessWriter()) };
    this.#now = options.now ?? Date.now;
    this.#resolutionMs = Math.max(0, options.healthcheckResolutionMs ?? 0);
  }

  /** `false` while a disk error (of a write or of a read) is under way. */
  get healthy(): boolean {
    return this.#writeError === undefined && this.#readError === undefined;
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
    if (!isStatus(status)) throw new RangeError('invalid registration status');
    const current = this.#readFile();
    const { writer } = current.state;
    if (this.#readCleanly(current) && current.state.status === status && writer !== null && sameWriter(writer, this.#writer)) return true;
    // `registering` is transient (a request is about to leave): it is not worth a disk wait on the
    // way to that request. A power loss that loses it loses nothing: every start registers anew.
    return this.#write({ ...current.state, status, writer: { ...this.#writer } }, current.extras, status !== 'registering');
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
      { ...current.state, lastHealthcheck: Math.floor(ms / 1000), lastHealthcheckMs: ms, writer },
      current.extras,
    );
  }

  #readFile(): ParsedFile {
    let text: string;
    try {
      text = fs.readFileSync(this.path, 'utf8');
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT') {
        this.#endReadError();
        // After a failed write the file may never have been created: what we
        // meant to write is still the truth for this process.
        if (this.#writeError !== undefined && this.#memory !== undefined) return this.#memory;
        return { state: defaultRegistrationState(), extras: {} };
      }
      if (this.#readError === undefined) {
        this.#logger.error(
          { event: 'state.read.error', path: this.path, code },
          'cannot read the state file; using the last known state',
        );
      }
      this.#readError = code;
      return this.#memory ?? { state: defaultRegistrationState(), extras: {} };
    }
    this.#endReadError();
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
  #readCleanly(parsed: ParsedFile): boolean {
    return parsed.problem === undefined && this.#readError === undefined && this.#writeError === undefined;
  }

  #endReadError(): void {
    if (this.#readError !== undefined) {
      this.#readError = undefined;
      this.#logger.info({ event: 'state.read.recovered', path: this.path }, 'the state file is readable again');
    }
  }

  #write(state: RegistrationState, extras: Record<string, unknown>, durable = true): boolean {
    this.#memory = { state, extras };
    try {
      writeFileAtomicSync(this.path, serializeState(state, extras), { durable });
    } catch (err) {
      const code = errorCode(err);
      if (this.#writeError === undefined) {
        this.#logger.error(
          { event: 'state.write.error', path: this.path, code },
          'cannot write the state file; keeping the state in memory',
        );
      }
      this.#writeError = code;
      return false;
    }
    if (this.#writeError !== undefined) {
      this.#writeError = undefined;
      this.#logger.info({ event: 'state.write.recovered', path: this.path }, 'the state file is writable again');
    }
    this.#invalid = undefined;
    const t = Date.now();
    if (t - this.#lastSweep >= SWEEP_EVERY_MS) {
      this.#lastSweep = t;
      sweepStaleTempFiles(this.path);
    }
    return true;
  }
}
