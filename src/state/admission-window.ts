/**
 * state/admission-window — the callback admission window of the node as a
 * whole, shared by its registrars through the data directory.
 *
 * DDS calls back the node's URL, which may reach a replica that did not send
 * the request (replicas behind one `nodeUrl`). So each registrar announces
 * its own window in a small file of its own, `callback-window.<instance>.json`
 * (`{version, instance, opened_at, open_until, window_ms}`): opened for the
 * request timeout when its request goes out, for the callback window after a
 * successful answer, removed when its attempt failed or it stops. A callback
 * reaching any registrar of the node is admitted while another's window is
 * open ({@link SharedAdmissionWindow.othersOpen}); its own window the
 * registrar's statechart judges itself.
 *
 * One file per registrar: no read-modify-write between processes, and a
 * crashed registrar's file simply runs out.
 *
 * Others' times are judged, not trusted: a window is open while the wall
 * clock is before `open_until` *and* less than its length (at most
 * `maxOpenMs`) has passed on this process's monotonic clock since this
 * process first saw it. A file stamped by a clock far ahead therefore never
 * opens the window longer than one window length; a wall clock stepped
 * forward here only closes it early.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseJsonObject, readRegularFileSync, writeFileAtomicSync } from './atomic-file.js';

const PREFIX = 'callback-window.';
const SUFFIX = '.json';
const VERSION = 1;
const MAX_FILE_BYTES = 4096;
/** An expired file older than this (past its `open_until`) is removed by whoever opens a window next. */
const SWEEP_AFTER_MS = 60_000;

/** Options of {@link SharedAdmissionWindow}. */
export interface SharedAdmissionWindowOptions {
  /** The data directory. */
  dir: string;
  /** The longest a window of another registrar is believed open, ms (request timeout or callback window, whichever is longer). */
  maxOpenMs: number;
  /** Wall clock, ms since the epoch (default `Date.now`). */
  now?: () => number;
  /** Monotonic clock, ms (default `performance.now`). */
  monotonic?: () => number;
}

interface WindowRecord {
  instance: string;
  openedAt: number;
  openUntil: number;
  windowMs: number;
}

function parseRecord(text: string): WindowRecord | undefined {
  const r = parseJsonObject(text);
  if (r === undefined) return undefined;
  const { version, instance, opened_at: openedAt, open_until: openUntil, window_ms: windowMs } = r;
  if (version !== VERSION || typeof instance !== 'string') return undefined;
  for (const n of [openedAt, openUntil, windowMs]) if (typeof n !== 'number' || !Number.isFinite(n)) return undefined;
  return { instance, openedAt: openedAt as number, openUntil: openUntil as number, windowMs: windowMs as number };
}

/** One registrar's view of the node's shared callback window. */
export class SharedAdmissionWindow {
  /** This registrar's random instance id (its file's name). */
  readonly instance: string;
  readonly #dir: string;
  readonly #file: string;
  readonly #maxOpenMs: number;
  readonly #now: () => number;
  readonly #mono: () => number;
  /** When (monotonic) this process first saw each record of another registrar. */
  #firstSeen = new Map<string, number>();

  constructor(options: SharedAdmissionWindowOptions) {
    this.instance = randomBytes(8).toString('hex');
    this.#dir = path.resolve(options.dir);
    this.#file = path.join(this.#dir, `${PREFIX}${this.instance}${SUFFIX}`);
    this.#maxOpenMs = Math.max(0, options.maxOpenMs);
    this.#now = options.now ?? Date.now;
    this.#mono = options.monotonic ?? (() => performance.now());
  }

  /** Announce this registrar's window open for `ms` from now (0 or less: {@link close}). Never throws: a disk fault only keeps siblings from admitting. */
  open(ms: number): void {
    if (!(ms > 0)) {
      this.close();
      return;
    }
    const at = this.#now();
    try {
      writeFileAtomicSync(
        this.#file,
        `${JSON.stringify({ version: VERSION, instance: this.instance, opened_at: at, open_until: at + ms, window_ms: ms })}\n`,
        // Transient: a power loss that loses it loses a window, nothing more.
        { durable: false },
      );
    } catch {
      // best effort (see above)
    }
    this.#sweep(at);
  }

  /** Withdraw this registrar's window. Never throws. */
  close(): void {
    try {
      fs.rmSync(this.#file, { force: true });
    } catch {
      // a file left behind runs out by itself
    }
  }

  /** Whether another registrar of the node (sharing the directory) has its window open now. Never throws. */
  othersOpen(): boolean {
    const now = this.#now();
    const mono = this.#mono();
    const seen = new Map<string, number>();
    let open = false;
    for (const name of this.#names()) {
      if (name === path.basename(this.#file)) continue;
      const record = this.#read(path.join(this.#dir, name));
      if (record === undefined) continue;
      const key = `${record.instance}:${record.openedAt}:${record.openUntil}`;
      const first = this.#firstSeen.get(key) ?? mono;
      seen.set(key, first);
      const length = Math.min(record.windowMs, this.#maxOpenMs);
      if (now < record.openUntil && mono - first < length) open = true;
    }
    this.#firstSeen = seen;
    return open;
  }

  #names(): string[] {
    try {
      return fs.readdirSync(this.#dir).filter((n) => n.startsWith(PREFIX) && n.endsWith(SUFFIX));
    } catch {
      return [];
    }
  }

  #read(file: string): WindowRecord | undefined {
    try {
      return parseRecord(readRegularFileSync(file, MAX_FILE_BYTES).toString('utf8'));
    } catch {
      // not a regular file, or gone meanwhile: no window
      return undefined;
    }
  }

  /** Remove others' files long past their end (left by registrars that crashed). */
  #sweep(now: number): void {
    for (const name of this.#names()) {
      const file = path.join(this.#dir, name);
      if (file === this.#file) continue;
      const record = this.#read(file);
      if (record !== undefined && record.openUntil + SWEEP_AFTER_MS < now) {
        try {
          fs.rmSync(file, { force: true });
        } catch {
          // another sibling swept it
        }
      }
    }
  }
}
