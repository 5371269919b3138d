/**
 * state/writer — who writes the state file or holds the lock, and whether
 * that process (or registrar) is still running.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { errorCode } from './atomic-file.js';

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
    return sameWriter(w, thisProcessWriter());
  }
  if (!Number.isSafeInteger(w.pid) || w.pid <= 0) return false;
  try {
    process.kill(w.pid, 0);
  } catch (err) {
    return errorCode(err) === 'EPERM';
  }
  return !isZombie(w.pid);
}

/** On Linux, whether `pid` has exited but is not reaped yet (`kill(pid, 0)` still succeeds for it). */
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
