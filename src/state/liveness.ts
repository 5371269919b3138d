/**
 * state/liveness — judging another registrar's heartbeat without trusting
 * its clock or ours.
 *
 * A heartbeat is a file (or directory) whose mtime its owner changes at
 * least every `staleMs / 2`. We never compare that mtime with our wall
 * clock: a clock stepped forward would make a live owner look dead, one
 * stepped back (or an mtime in the future) would keep a dead one alive. We
 * only note *when, on our monotonic clock*, we saw the file's version
 * (inode and mtime) change; a heartbeat not seen to change for `staleMs` is
 * stale. The price: a heartbeat seen for the first time is given the benefit
 * of the doubt for one `staleMs` — unless a pid proves its owner gone
 * (./writer.ts, `isProvablyGone`).
 *
 * @module
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';

/** What a file's heartbeat looks like now: its version, or `null` when it is gone. */
export function heartbeatVersion(p: string): string | null {
  try {
    const st = fs.lstatSync(p, { bigint: true });
    return `${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return null;
  }
}

interface Seen {
  version: string;
  /** When (monotonic ms) the version was first seen. */
  since: number;
}

/**
 * Watches heartbeats by path: {@link HeartbeatWatch.silentForMs} says for
 * how long (on the monotonic clock) the heartbeat has not been seen to change.
 */
export class HeartbeatWatch {
  readonly #seen = new Map<string, Seen>();
  readonly #now: () => number;

  /** @param now the monotonic clock, ms (default `performance.now`). */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /**
   * How long the heartbeat at `p` has not been seen to change, ms: 0 when it
   * changed since the last look (or is seen for the first time); `null` when
   * there is no file.
   */
  silentForMs(p: string, version: string | null = heartbeatVersion(p)): number | null {
    const t = this.#now();
    if (version === null) {
      this.#seen.delete(p);
      return null;
    }
    const seen = this.#seen.get(p);
    if (seen === undefined || seen.version !== version) {
      this.#seen.set(p, { version, since: t });
      return 0;
    }
    return t - seen.since;
  }

  /** Whether the heartbeat at `p` has been silent for `staleMs` or longer (a missing file is not stale: it is gone). */
  isStale(p: string, staleMs: number, version?: string | null): boolean {
    const silent = this.silentForMs(p, version === undefined ? heartbeatVersion(p) : version);
    return silent !== null && silent >= staleMs;
  }

  /** Forget `p` (it was removed). */
  forget(p: string): void {
    this.#seen.delete(p);
  }
}
