/**
 * token-keeper — where the access session's token lives (PROTOCOL.md §6.5):
 * in this object's private fields, never in the statechart. It hands the
 * newest token that has not expired to embedders, writes it to the token
 * file (the sidecar pattern, like Vault Agent's file sink) and removes the
 * file when the token expires without a successor, is dropped, or on close.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { AccessToken } from './register-siwe.js';
import type { Logger } from './log.js';
import { errorCode, writeFileAtomicSync } from './state/atomic-file.js';

/** A timer source (the registrar's clock: `SimulatedClock` in tests). */
export interface KeeperClock {
  setTimeout(fn: (...args: unknown[]) => void, timeout: number): unknown;
  clearTimeout(id: unknown): void;
}

/** Options of {@link TokenKeeper}. */
export interface TokenKeeperOptions {
  /** Wall-clock time, ms (the expiry is a wall-clock time). */
  now: () => number;
  /** Where the token is written (mode 0600, atomically); undefined: nowhere. */
  file?: string | undefined;
  logger: Logger;
  /** Default: Node's timers (unref'd: an expiry timer never keeps a process alive). */
  clock?: KeeperClock | undefined;
  /** Told each token as it arrives, so sanitizers can scrub it. */
  onToken?: (token: string) => void;
}

/** A token and when it expires. */
export interface HeldToken {
  token: AccessToken;
  expiresAtMs: number;
}

const nodeTimers: KeeperClock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

/** Node's timers overflow above 2^31 − 1 ms: an expiry further away is looked at again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TokenKeeper {
  readonly #now: () => number;
  readonly #file: string | undefined;
  readonly #logger: Logger;
  readonly #clock: KeeperClock;
  readonly #onToken: ((token: string) => void) | undefined;
  readonly #listeners = new Set<() => void>();
  #held: HeldToken | undefined;
  /** A service refused the held token (401): it is not handed out again. */
  #refused = false;
  /** What the file holds, as this keeper wrote it (a write may fail: then the file still holds an older token). */
  #inFile: HeldToken | undefined;
  #timer: unknown;
  #closed = false;
  /** A sign-in's token, until the statechart has recorded that sign-in ({@link commitStaged}). */
  #staged: HeldToken | undefined;

  constructor(options: TokenKeeperOptions) {
    this.#now = options.now;
    this.#file = options.file;
    this.#logger = options.logger;
    this.#clock = options.clock ?? nodeTimers;
    this.#onToken = options.onToken;
    this.#removeLeftover();
  }

  /** The token to hand out: held, not expired, not refused; else undefined. */
  current(): HeldToken | undefined {
    const held = this.#held;
    if (held === undefined || this.#refused || held.expiresAtMs <= this.#now()) return undefined;
    return held;
  }

  /** What remains of the held token (refused or not), ms; null when none is held or it expired. */
  remainingMs(): number | null {
    const held = this.#held;
    if (held === undefined) return null;
    const left = held.expiresAtMs - this.#now();
    return left > 0 ? left : null;
  }

  /**
   * A sign-in's token, held back until {@link commitStaged}: the registrar
   * commits it as its statechart enters `session.active`, so whoever gets the
   * token (and may report a 401 at once) finds the session where a 401 counts.
   */
  stage(token: AccessToken, expiresAtMs: number): void {
    if (!this.#closed) this.#staged = { token, expiresAtMs };
  }

  /** Keep the staged token (if any). */
  commitStaged(): void {
    const staged = this.#staged;
    this.#staged = undefined;
    if (staged !== undefined) this.keep(staged.token, staged.expiresAtMs);
  }

  /** A new token from a sign-in: it replaces the held one, in memory and in the file. Ignored once closed. */
  keep(token: AccessToken, expiresAtMs: number): void {
    if (this.#closed) return;
    this.#onToken?.(token.expose());
    this.#held = { token, expiresAtMs };
    this.#refused = false;
    this.#writeFile(this.#held);
    this.#armExpiry();
    this.#changed();
  }

  /**
   * A service answered 401: hand the held token out no more (the session
   * signs in again). With `token`, only if it is the one held (a 401 for a
   * token already replaced refuses nothing). Whether it refused one now.
   */
  refuse(token?: AccessToken): boolean {
    const held = this.#held;
    if (held === undefined || this.#refused) return false;
    if (token !== undefined && token.expose() !== held.token.expose()) return false;
    this.#refused = true;
    this.#changed();
    return true;
  }

  /** Forget the token (DDS forgot the node: it is worthless) and remove the file. */
  drop(reason: string): void {
    if (this.#held === undefined && this.#inFile === undefined) return;
    this.#held = undefined;
    this.#refused = false;
    this.#clearTimer();
    this.#removeFile(reason);
    this.#changed();
  }

  /** Called whenever what {@link current} answers may have changed. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The registrar stopped: forget the token, remove the file; later tokens are ignored. */
  close(): void {
    this.#closed = true;
    this.#held = undefined;
    this.#staged = undefined;
    this.#clearTimer();
    this.#removeFile('stopped');
    this.#changed();
  }

  #changed(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** One timer, for the sooner of the held token's expiry and the file's (they differ after a failed write). */
  #armExpiry(): void {
    this.#clearTimer();
    const due = [this.#held, this.#inFile].filter((h): h is HeldToken => h !== undefined).map((h) => h.expiresAtMs);
    if (due.length === 0) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, Math.min(...due) - this.#now()));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const now = this.#now();
      let changed = false;
      if (this.#held !== undefined && this.#held.expiresAtMs <= now) {
        this.#held = undefined;
        changed = true;
      }
      // Expired without a successor in the file: it must not hand out a dead token.
      if (this.#inFile !== undefined && this.#inFile.expiresAtMs <= now) this.#removeFile('expired');
      this.#armExpiry();
      if (changed) this.#changed();
    }, wait);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #writeFile(held: HeldToken): void {
    if (this.#file === undefined) return;
    try {
      // Not durable: after a power loss the token is stale anyway; the file must never be torn.
      writeFileAtomicSync(this.#file, held.token.expose(), { mode: 0o600, durable: false });
      this.#inFile = held;
      this.#logger.debug({ event: 'access_token_file.written', file: this.#file });
    } catch (error) {
      // The file keeps the token before (valid until its own expiry, when it is removed).
      this.#logger.warn({ event: 'access_token_file.error', file: this.#file, code: errorCode(error) }, 'cannot write the access token file');
    }
  }

  /** A file left by a registrar that did not stop (SIGKILL, a crash) holds a token nobody vouches for. */
  #removeLeftover(): void {
    if (this.#file === undefined || !existsSync(this.#file)) return;
    this.#unlink('leftover');
  }

  /** Remove the file if it still holds the token this keeper wrote (never another registrar's). */
  #removeFile(reason: string): void {
    const inFile = this.#inFile;
    if (this.#file === undefined || inFile === undefined) return;
    this.#inFile = undefined;
    let content: string;
    try {
      content = readFileSync(this.#file, 'utf8');
    } catch {
      return; // gone already
    }
    if (content !== inFile.token.expose()) {
      this.#logger.warn({ event: 'access_token_file.kept', file: this.#file, reason }, 'the access token file holds a token this registrar did not write: left alone (give each registrar its own token file)');
      return;
    }
    this.#unlink(reason);
  }

  #unlink(reason: string): void {
    if (this.#file === undefined) return;
    try {
      rmSync(this.#file, { force: true });
      this.#logger.info({ event: 'access_token_file.removed', file: this.#file, reason });
    } catch (error) {
      this.#logger.warn({ event: 'access_token_file.error', file: this.#file, code: errorCode(error) }, 'cannot remove the access token file');
    }
  }
}
