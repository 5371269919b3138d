/**
 * state/lock — the cross-process registration lock (PROTOCOL.md §3: "registration
 * attempts are serialised across processes by a lock").
 *
 * The lock is a directory made with `mkdir` by `proper-lockfile`, whose holder
 * refreshes its mtime every `updateMs`; a lock not refreshed for `staleMs`
 * counts as abandoned. Beside it (never inside: `proper-lockfile` removes the
 * lock with `rmdir`) the holder file `<lock>.holder.json` names the holder:
 * its instance id, pid, PID namespace, boot id and process start time, when
 * it acquired, and a random token.
 *
 * Liveness never rests on a pid alone: the lock is stale when its mtime (the
 * holder's heartbeat) was not seen to change for `staleMs` on our monotonic
 * clock (./liveness.ts) — an mtime in the future or a stepped wall clock
 * changes nothing. Faster, a holder provably gone (same PID namespace and
 * boot, and its process is gone or its start time differs: ./writer.ts) is
 * taken over at once: a crashed registrar stops blocking its siblings
 * immediately, not after `staleMs`.
 *
 * Every step that creates or removes the lock directory or the holder file
 * runs under a second, short-lived lock, the mutex `<lock>.mutex` (a
 * directory, 2 s staleness judged the same way); the holder file is written before the directory is made and
 * removed after it is removed. So while the directory exists its holder file
 * names its maker, "dead" is decided from that file under the mutex, and a
 * live holder never loses the lock to a takeover — only to staleness, which
 * proper-lockfile reports to it. The argument in full, and what lies outside
 * it: docs/reliability.md, "Why the lock's takeover is race-free".
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { lock as properLock } from 'proper-lockfile';
import { silentLogger, type Logger } from '../log.js';
import { DEFAULT_LOCK_STALE_SECS, MIN_LOCK_STALE_MS } from '../settings/table.js';
import { errorCode, errorReason, makeDirSync, parseJsonObject, readRegularFileSync, sweepStaleTempFiles, writeFileAtomicSync } from './atomic-file.js';
import { HeartbeatWatch, heartbeatVersion } from './liveness.js';
import { isProvablyGone, thisProcessWriter, writerFromJson, writerToJson, type WriterInfo } from './writer.js';

/** Who holds the lock, as its holder file says: the writer identity (instance id, pid namespace, …) and when it acquired. */
export interface LockHolder extends WriterInfo {
  /** When it acquired the lock (ms since the epoch, its wall clock: informative only). */
  acquiredAt: number;
}

/** The outcome of {@link RegistrationLock.tryAcquire}. */
export type LockAttempt =
  /** The lock is ours; `takeover` when it was taken from a dead or stale holder. */
  | { kind: 'acquired'; takeover: boolean }
  /** Another live process holds it (`holder` when its holder file is readable). */
  | { kind: 'busy'; holder: LockHolder | null }
  /** A disk error, not contention. `message` may name the path, never a secret. */
  | { kind: 'error'; code: string; message: string };

/** The outcome of {@link RegistrationLock.confirm}. */
export type LockConfirmation = { ok: true } | { ok: false; reason: string };

/** Options of {@link RegistrationLock}. */
export interface RegistrationLockOptions {
  /** The data directory (default `data`). */
  dir?: string;
  /**
   * The lock directory's path (default `<dir>/registration.lock`). Beside it
   * live `<lockPath>.holder.json` (who holds it) and `<lockPath>.mutex` (held
   * for milliseconds around every change).
   */
  lockPath?: string;
  /** A lock not refreshed for this long is abandoned (default: the `lockStaleSecs` setting's; at least {@link MIN_LOCK_STALE_MS}). */
  staleMs?: number;
  /** How often the holder refreshes the lock (default `staleMs / 2`; between 1 000 ms and `staleMs / 2`). */
  updateMs?: number;
  /** Where `lock.takeover`, `lock.compromised` and `lock.release.error` go (default: nowhere). */
  logger?: Logger;
  /** Called (never with a library error) when a held lock was lost: its directory vanished or another process took it as stale. */
  onCompromised?: (info: { code: string; message: string }) => void;
  /** Who this process says it is in the holder file (default: {@link thisProcessWriter}). */
  writer?: WriterInfo;
}

export { MIN_LOCK_STALE_MS };

/** Staleness of the short-lived mutex around lock changes (proper-lockfile's minimum). */
const MUTEX_STALE_MS = 2000;
const DEFAULT_STALE_MS = DEFAULT_LOCK_STALE_SECS * 1000;

/** The largest holder file read (ours are ~150 bytes). */
const MAX_HOLDER_FILE_BYTES = 64 * 1024;

/**
 * How long to wait for a busy mutex before answering `busy`: past its
 * staleness, so that a mutex left by a killed process is broken and taken
 * rather than reported as a busy lock.
 */
const MUTEX_WAIT_MS = MUTEX_STALE_MS + 1000;

/** Change `p`'s mtime (a heartbeat); errors are for the judge to see. */
function touch(p: string): void {
  try {
    const t = new Date();
    fs.lutimesSync(p, t, t);
  } catch {
    // gone or broken: whoever looks next decides
  }
}

/** The wait before look `i` (from 0) at a busy mutex: 5 ms growing to 60 ms, with jitter. */
function mutexDelay(i: number): number {
  return Math.min(5 * 1.3 ** i, 60) * (0.5 + Math.random());
}

interface HolderRecord extends LockHolder {
  token: string;
}

type MutexResult = { ok: true; release: () => Promise<void> } | { ok: false; attempt: LockAttempt };

function parseHolder(text: string): HolderRecord | null {
  const json = parseJsonObject(text);
  if (json === undefined) return null;
  const writer = writerFromJson(json);
  const { acquired_at: acquiredAt, token } = json;
  if (writer === null || typeof token !== 'string') return null;
  if (typeof acquiredAt !== 'number' || !Number.isFinite(acquiredAt)) return null;
  return { ...writer, acquiredAt, token };
}

/** Our words for proper-lockfile's compromise errors (an fs error renamed ECOMPROMISED, or its mtime check). */
function compromiseReason(err: Error): string {
  const message = typeof err.message === 'string' ? err.message : '';
  const fsCode = /^(E[A-Z]+):/.exec(message)?.[1];
  if (fsCode === 'ENOENT') return 'its directory vanished';
  if (fsCode !== undefined) return `it could not be refreshed (${fsCode})`;
  return 'its mtime changed under it: another process took it as stale';
}

function publicHolder(r: HolderRecord): LockHolder {
  const { token: _token, ...holder } = r;
  return holder;
}

/**
 * The registration lock of one data directory.
 *
 * @example
 * ```ts
 * const lock = new RegistrationLock({ dir: 'data', logger, onCompromised: () => actor.send({ type: 'LOCK_LOST' }) });
 * const attempt = await lock.tryAcquire();
 * if (attempt.kind === 'acquired') {
 *   try { await register(); } finally { await lock.release(); }
 * }
 * ```
 */
export class RegistrationLock {
  /** The lock directory's absolute path. */
  readonly path: string;
  readonly #holderPath: string;
  readonly #mutexPath: string;
  readonly #staleMs: number;
  readonly #updateMs: number;
  readonly #logger: Logger;
  readonly #onCompromised: ((info: { code: string; message: string }) => void) | undefined;
  readonly #writer: WriterInfo;
  /** proper-lockfile's release function while we hold the lock. */
  #release: (() => Promise<void>) | undefined;
  /** Our holder file's token while we hold the lock. */
  #token: string | undefined;
  /** The error code of the current holder-file read-error episode, if one is under way. */
  #holderReadError: string | undefined;
  /** Serialises this instance's operations. */
  #queue: Promise<unknown> = Promise.resolve();
  /** When we saw the lock's and the mutex's mtimes change, on our monotonic clock (./liveness.ts). */
  readonly #watch = new HeartbeatWatch();

  constructor(options: RegistrationLockOptions = {}) {
    this.path = path.resolve(options.lockPath ?? path.join(options.dir ?? 'data', 'registration.lock'));
    this.#holderPath = `${this.path}.holder.json`;
    this.#mutexPath = `${this.path}.mutex`;
    this.#staleMs = Math.max(MIN_LOCK_STALE_MS, options.staleMs ?? DEFAULT_STALE_MS);
    this.#updateMs = Math.min(Math.max(options.updateMs ?? this.#staleMs / 2, 1000), this.#staleMs / 2);
    this.#logger = options.logger ?? silentLogger;
    this.#onCompromised = options.onCompromised;
    this.#writer = { ...(options.writer ?? thisProcessWriter()) };
  }

  /** Whether this instance holds the lock (turns `false` when the lock is compromised). */
  get held(): boolean {
    return this.#release !== undefined;
  }

  /** The lock's staleness, after clamping. */
  get staleMs(): number {
    return this.#staleMs;
  }

  /**
   * Try once to take the lock. Never waits for a holder, never rejects.
   * Holding it already answers `acquired` again (`takeover: false`).
   */
  tryAcquire(): Promise<LockAttempt> {
    return this.#serialise(async () => {
      try {
        return await this.#tryAcquire();
      } catch (err) {
        return this.#error(err, 'cannot lock');
      }
    });
  }

  /** Let go of the lock (and our holder file). A no-op when not held; never rejects. */
  release(): Promise<void> {
    return this.#serialise(async () => {
      try {
        await this.#releaseHeld();
      } catch (err) {
        this.#logger.warn({ event: 'lock.release.error', path: this.path, code: errorCode(err) }, 'cannot release the lock');
      }
    });
  }

  /**
   * Right before a request goes out: is the lock still ours? Under the mutex
   * (so no takeover is half done), the holder file must carry our token and
   * the lock directory must be there and not stale. When it is not, the
   * lock counts as lost: `lock.compromised` is logged and `onCompromised`
   * called, as when proper-lockfile notices; a stale lock that is still ours
   * is let go, so that a successor need not wait. Never rejects.
   *
   * What this cannot close: a holder paused after this answer, with its
   * request about to go or on the wire (docs/reliability.md).
   */
  confirm(): Promise<LockConfirmation> {
    return this.#serialise(async () => {
      const token = this.#token;
      const release = this.#release;
      if (token === undefined || release === undefined) return { ok: false, reason: 'the lock is not held' };
      const mutex = await this.#lockMutex();
      if (!mutex.ok) return { ok: false, reason: 'cannot take the mutex to check the lock' };
      try {
        const holder = this.#readHolderRecord();
        let reason: string | undefined;
        let ours = false;
        if (holder === null || holder.token !== token) {
          reason = 'its holder file names another holder: it was taken over';
        } else {
          ours = true;
          let stat: fs.Stats | undefined;
          try {
            stat = fs.statSync(this.path);
          } catch (err) {
            reason = errorCode(err) === 'ENOENT' ? 'its directory vanished' : `it cannot be inspected (${errorCode(err)})`;
          }
          if (stat !== undefined) {
            const age = Date.now() - stat.mtimeMs;
            if (age > this.#staleMs) reason = `it was not refreshed for ${Math.round(age)} ms (stale after ${this.#staleMs} ms)`;
          }
        }
        if (reason === undefined) return { ok: true };
        this.#release = undefined;
        this.#token = undefined;
        if (ours) {
          // Still ours but stale: remove it (and stop proper-lockfile's refresh) rather than let it linger.
          await release().catch(() => undefined);
          fs.rmSync(this.#holderPath, { force: true });
        }
        // Taken over: proper-lockfile's next refresh sees the new mtime and stops (its report is ignored: token gone).
        const info = { code: 'ECOMPROMISED', message: `lock ${this.path} was lost: ${reason}` };
        this.#logger.warn({ event: 'lock.compromised', path: this.path, code: info.code, message: info.message }, 'the lock was lost');
        try {
          this.#onCompromised?.(info);
        } catch {
          // a throwing callback must not fail the check
        }
        return { ok: false, reason };
      } finally {
        await mutex.release().catch(() => undefined);
      }
    });
  }

  /** Who holds the lock according to the holder file, or `null` (no file, unreadable, invalid). */
  readHolder(): LockHolder | null {
    const r = this.#readHolderRecord();
    return r === null ? null : publicHolder(r);
  }

  #serialise<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(op);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** The holder file's record, or `null`; what is not a regular file there is logged once (`state.read.error`). */
  #readHolderRecord(): HolderRecord | null {
    let text: string;
    try {
      text = readRegularFileSync(this.#holderPath, MAX_HOLDER_FILE_BYTES).toString('utf8');
    } catch (err) {
      const code = errorCode(err);
      if (code !== 'ENOENT' && this.#holderReadError !== code) {
        this.#logger.error(
          { event: 'state.read.error', path: this.#holderPath, code, reason: errorReason(err) },
          'cannot read the lock holder file; its holder counts as unknown',
        );
      }
      this.#holderReadError = code === 'ENOENT' ? undefined : code;
      return null;
    }
    this.#holderReadError = undefined;
    return parseHolder(text);
  }

  #error(err: unknown, what: string): LockAttempt {
    const code = errorCode(err);
    return { kind: 'error', code, message: `${what} ${this.path}: ${code}` };
  }

  /** An `error` attempt when `p` exists but is not a directory (a lock is always a directory). */
  #notADirectory(p: string): LockAttempt | undefined {
    try {
      if (!fs.lstatSync(p).isDirectory()) return { kind: 'error', code: 'ENOTDIR', message: `cannot lock ${p}: not a directory` };
    } catch {
      // Gone meanwhile: let the next attempt decide.
    }
    return undefined;
  }

  #busy(): LockAttempt {
    return { kind: 'busy', holder: this.readHolder() };
  }

  /**
   * Take the mutex, waiting a little while it is busy. A mutex whose mtime we
   * have not seen change for {@link MUTEX_STALE_MS} (on our monotonic clock,
   * whatever its mtime says: a day ahead, or a stepped clock) was left by a
   * killed process: it is broken, so it never blocks longer than that.
   */
  async #lockMutex(): Promise<MutexResult> {
    const deadline = performance.now() + MUTEX_WAIT_MS;
    const p = this.#mutexPath;
    for (let i = 0; ; i++) {
      try {
        fs.mkdirSync(p, { mode: 0o700 });
        this.#watch.forget(p);
        // Held for milliseconds, yet a slow disk must not let a sibling break it: keep it beating.
        const beat = setInterval(() => touch(p), MUTEX_STALE_MS / 4);
        beat.unref();
        return {
          ok: true,
          release: async () => {
            clearInterval(beat);
            try {
              fs.rmdirSync(p);
            } catch {
              // broken by a sibling meanwhile (outside the argument: docs/reliability.md)
            }
          },
        };
      } catch (err) {
        if (errorCode(err) !== 'EEXIST') return { ok: false, attempt: this.#error(err, 'cannot lock') };
        // A regular file there is a disk fault, not a holder.
        const notDir = this.#notADirectory(p);
        if (notDir) return { ok: false, attempt: notDir };
        const version = heartbeatVersion(p);
        if (version !== null && this.#watch.isStale(p, MUTEX_STALE_MS, version)) {
          // Break it only if it is still the one judged (a new holder's is another version).
          if (heartbeatVersion(p) === version) {
            try {
              fs.rmdirSync(p);
              this.#logger.info({ event: 'lock.mutex.broken', path: p }, 'broke a mutex left by a process that is gone');
            } catch {
              // gone meanwhile
            }
          }
          this.#watch.forget(p);
          continue;
        }
        if (performance.now() >= deadline) return { ok: false, attempt: this.#busy() };
      }
      await sleep(mutexDelay(i));
    }
  }

  async #tryAcquire(): Promise<LockAttempt> {
    if (this.held) return { kind: 'acquired', takeover: false };
    try {
      makeDirSync(path.dirname(this.path));
    } catch (err) {
      return this.#error(err, 'cannot create the directory of');
    }
    const mutex = await this.#lockMutex();
    if (!mutex.ok) return mutex.attempt;
    try {
      return await this.#acquireUnderMutex();
    } finally {
      await mutex.release().catch(() => undefined);
    }
  }

  /** The critical section of an acquire (the caller holds the mutex). */
  async #acquireUnderMutex(): Promise<LockAttempt> {
    let takeover = false;
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(this.path);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') return this.#error(err, 'cannot inspect');
    }
    if (stat !== undefined) {
      if (!stat.isDirectory()) {
        return { kind: 'error', code: 'ENOTDIR', message: `cannot lock ${this.path}: not a directory` };
      }
      const holder = this.#readHolderRecord();
      // Dead only when a pid proves it (same PID namespace and boot); stale when its heartbeat —
      // the lock's mtime, refreshed every updateMs — was not seen to change for staleMs on OUR
      // monotonic clock: no wall clock (ours stepped, its mtime in the future) decides.
      const dead = holder !== null && isProvablyGone(holder, this.#writer);
      const stale = this.#watch.isStale(this.path, this.#staleMs);
      if (!dead && !stale) return { kind: 'busy', holder: holder === null ? null : publicHolder(holder) };
      // The directory first, the holder file second: a crash in between leaves a
      // stray holder file without a lock, which is harmless.
      try {
        fs.rmdirSync(this.path);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') return this.#error(err, 'cannot take over');
      }
      fs.rmSync(this.#holderPath, { force: true });
      takeover = true;
      this.#logger.info(
        {
          event: 'lock.takeover',
          path: this.path,
          reason: dead ? 'holder_dead' : 'stale',
          holder_pid: holder?.pid ?? null,
          holder_host: holder?.host ?? null,
          holder_instance: holder?.instance ?? null,
        },
        dead ? 'took over the lock of a process that is gone' : 'took over a stale lock',
      );
    }

    // The holder file first, the directory second: a crash in between leaves a
    // holder file naming a dead process and no lock, which is harmless; a lock
    // directory therefore always has a holder file naming who made it.
    const token = randomBytes(12).toString('hex');
    try {
      writeFileAtomicSync(
        this.#holderPath,
        `${JSON.stringify({ ...writerToJson(this.#writer), acquired_at: Date.now(), token })}\n`,
        // Not fsync'd: it must survive a kill of this process (the page cache does), not a power
        // loss — after which a lock directory without its holder file only waits out staleMs once.
        { durable: false },
      );
    } catch (err) {
      return this.#error(err, 'cannot write the holder file of');
    }

    let release: () => Promise<void>;
    try {
      release = await properLock(this.path, {
        lockfilePath: this.path,
        realpath: false,
        retries: 0,
        stale: this.#staleMs,
        update: this.#updateMs,
        onCompromised: (err: Error) => this.#compromised(token, err),
      });
    } catch (err) {
      if (this.#readHolderRecord()?.token === token) fs.rmSync(this.#holderPath, { force: true });
      // ELOCKED here means a process that does not use the mutex made the lock.
      if (errorCode(err) === 'ELOCKED') return this.#busy();
      return this.#error(err, 'cannot lock');
    }
    sweepStaleTempFiles(this.#holderPath);
    this.#watch.forget(this.path);
    this.#release = release;
    this.#token = token;
    return { kind: 'acquired', takeover };
  }

  /** proper-lockfile's onCompromised: must never throw (its default throws, crashing the process). */
  #compromised(token: string, err: Error): void {
    try {
      if (this.#token !== token) return; // an earlier hold, already let go
      this.#release = undefined;
      this.#token = undefined;
      const info = { code: 'ECOMPROMISED', message: `lock ${this.path} was lost: ${compromiseReason(err)}` };
      this.#logger.warn({ event: 'lock.compromised', path: this.path, code: info.code, message: info.message }, 'the lock was lost');
      this.#onCompromised?.(info);
    } catch {
      // a throwing callback must not take the process down from a timer
    }
  }

  async #releaseHeld(): Promise<void> {
    const release = this.#release;
    const token = this.#token;
    if (release === undefined) return;
    this.#release = undefined;
    this.#token = undefined;
    // Without the mutex (stuck, or a disk error) still let go: keeping the lock would be worse.
    const mutex = await this.#lockMutex();
    try {
      const record = this.#readHolderRecord();
      if (record !== null && record.token !== token) {
        // Taken over while we stalled: the lock directory is no longer ours.
        // proper-lockfile notices on its next refresh and reports the compromise.
        this.#logger.warn(
          { event: 'lock.release.error', path: this.path, code: 'ENOTOWNER' },
          'the lock was taken over by another process; leaving it alone',
        );
        return;
      }
      // The directory first, the holder file second (see #acquireUnderMutex).
      try {
        await release();
      } catch (err) {
        const code = errorCode(err);
        // ERELEASED: compromised meanwhile, already reported.
        if (code !== 'ERELEASED') {
          this.#logger.warn({ event: 'lock.release.error', path: this.path, code }, 'cannot release the lock');
        }
      }
      try {
        fs.rmSync(this.#holderPath, { force: true });
      } catch (err) {
        this.#logger.warn(
          { event: 'lock.release.error', path: this.#holderPath, code: errorCode(err) },
          'cannot remove the lock holder file',
        );
      }
    } finally {
      if (mutex.ok) await mutex.release().catch(() => undefined);
    }
  }
}
