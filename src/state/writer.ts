/**
 * state/writer — who writes the state file or holds the lock, and whether
 * that process (or registrar) is still running.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { errorCode } from './atomic-file.js';

/** A process (or one registrar of it) that writes the state file or holds the lock. */
export interface WriterInfo {
  /** Its process id (in its own PID namespace). */
  pid: number;
  /** The host it runs on (`os.hostname()`): informative only, containers share or fake it. */
  host: string;
  /**
   * When it started (ms since the Unix epoch): the process's start for
   * {@link thisProcessWriter}, the registrar's creation for {@link newWriterInfo}.
   * Tells it apart from a later process with the same pid.
   */
  startedAt: number;
  /** The registrar's random instance id (its record and heartbeat: ./instances.ts), when it has one. */
  instance?: string;
  /**
   * Its PID namespace (`readlink /proc/self/ns/pid`, e.g. `pid:[4026531836]`) and the
   * kernel's boot id: a pid means something to us only when both equal ours.
   */
  pidNs?: string;
  bootId?: string;
  /** Its process's start time in clock ticks since boot (`/proc/self/stat` field 22): tells a reused pid. */
  procStart?: number;
}

/** What makes a pid comparable: the PID namespace, the boot, and this process's start time. */
interface ProcessIdentity {
  pidNs?: string;
  bootId?: string;
  procStart?: number;
}

function readLinkOrUndefined(p: string): string | undefined {
  try {
    return fs.readlinkSync(p);
  } catch {
    return undefined;
  }
}

function readTextOrUndefined(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Field 22 (starttime) of `/proc/<pid>/stat`, or undefined (no such process, not Linux). */
export function procStartTime(pid: number | 'self'): number | undefined {
  const stat = readTextOrUndefined(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // "pid (comm) S ppid …": comm may hold spaces and parentheses; field 3 follows the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[22 - 3]);
  return Number.isSafeInteger(ticks) ? ticks : undefined;
}

function readProcessIdentity(): ProcessIdentity {
  const id: ProcessIdentity = {};
  const pidNs = readLinkOrUndefined('/proc/self/ns/pid');
  const bootId = readTextOrUndefined('/proc/sys/kernel/random/boot_id');
  const procStart = procStartTime('self');
  if (pidNs !== undefined) id.pidNs = pidNs;
  if (bootId !== undefined && bootId !== '') id.bootId = bootId;
  if (procStart !== undefined) id.procStart = procStart;
  return id;
}

const STARTED_AT = Math.round(Date.now() - process.uptime() * 1000);
/** Read at the first use, not at import: importing the format modules does no I/O. */
let identity: ProcessIdentity | undefined;
function processIdentity(): ProcessIdentity {
  identity ??= readProcessIdentity();
  return identity;
}

/** This process: its pid, `os.hostname()`, its start time (rounded to a ms) and its PID namespace. */
export function thisProcessWriter(): WriterInfo {
  return { pid: process.pid, host: os.hostname(), startedAt: STARTED_AT, ...processIdentity() };
}

let lastIssuedStartedAt = STARTED_AT;

/** A random instance id: 16 hex digits. */
export function newInstanceId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * A writer identity for one registrar of this process: this pid and host,
 * a random instance id, and a `startedAt` (its creation time) that no other
 * writer of this process has, so that two registrars sharing a process and a
 * data directory are told apart. Announce it with {@link registerLiveWriter}
 * while the registrar runs.
 */
export function newWriterInfo(): WriterInfo {
  lastIssuedStartedAt = Math.max(Date.now(), lastIssuedStartedAt + 1);
  return { pid: process.pid, host: os.hostname(), startedAt: lastIssuedStartedAt, instance: newInstanceId(), ...processIdentity() };
}

/** Writers of this process that are running (see {@link registerLiveWriter}), with a count of registrations. */
const liveWriters = new Map<string, number>();

function writerKey(w: WriterInfo): string {
  return w.instance ?? `${w.pid}\u0000${w.host}\u0000${w.startedAt}`;
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

/** Whether `a` and `b` name the same writer: pid, host and start time, and the instance id when either has one. */
export function sameWriter(a: WriterInfo, b: WriterInfo): boolean {
  return a.pid === b.pid && a.host === b.host && a.startedAt === b.startedAt && a.instance === b.instance;
}

/** Whether a pid of `w` names a process we can see: same boot, same PID namespace (both known), same host name. */
export function sameProcessSpace(w: WriterInfo, here: WriterInfo = thisProcessWriter()): boolean {
  return w.pidNs !== undefined && w.bootId !== undefined && w.pidNs === here.pidNs && w.bootId === here.bootId && w.host === here.host;
}

/**
 * Whether the process (or registrar) `w` names is **provably** gone — the
 * fast verdict, which never rests on a pid we cannot interpret.
 *
 * Only when `w` lives in our PID namespace on our boot ({@link sameProcessSpace}):
 * - its pid is ours: gone unless it is `here`, this process, or a registrar of
 *   this process registered with {@link registerLiveWriter} (an instance of ours
 *   that stopped, or an earlier process that had our pid, is gone);
 * - otherwise gone when no such process exists, it is a zombie, or its start
 *   time (`/proc/<pid>/stat` field 22) differs from `w.procStart` (the pid was reused).
 *
 * Anywhere else (another container, another host, a record without the
 * namespace) nothing is proven: liveness is then the heartbeat's (./liveness.ts).
 */
export function isProvablyGone(w: WriterInfo, here: WriterInfo = thisProcessWriter()): boolean {
  if (!sameProcessSpace(w, here)) return false;
  if (!Number.isSafeInteger(w.pid) || w.pid <= 0) return true;
  if (w.pid === here.pid) {
    if (sameWriter(w, here) || liveWriters.has(writerKey(w))) return false;
    const me = thisProcessWriter();
    return !(w.instance === undefined && sameWriter(w, me));
  }
  try {
    process.kill(w.pid, 0);
  } catch (err) {
    if (errorCode(err) !== 'EPERM') return true;
  }
  if (isZombie(w.pid)) return true;
  const start = procStartTime(w.pid);
  return w.procStart !== undefined && start !== undefined && start !== w.procStart;
}

/**
 * Whether the process `w` names is **provably** running: another process of
 * our PID namespace and boot whose start time is the one on record. (A
 * SIGSTOPped process runs, for this question.)
 */
export function isProvablyAlive(w: WriterInfo, here: WriterInfo = thisProcessWriter()): boolean {
  if (!sameProcessSpace(w, here) || w.pid === here.pid || w.procStart === undefined) return false;
  if (!Number.isSafeInteger(w.pid) || w.pid <= 0) return false;
  try {
    process.kill(w.pid, 0);
  } catch (err) {
    if (errorCode(err) !== 'EPERM') return false;
  }
  return !isZombie(w.pid) && procStartTime(w.pid) === w.procStart;
}

/** The opposite of {@link isProvablyGone}: alive as far as pids can tell (the heartbeat may still say dead). */
export function isWriterAlive(w: WriterInfo, here: WriterInfo = thisProcessWriter()): boolean {
  return !isProvablyGone(w, here);
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

/** `w` as the files write it (snake_case keys; the optional ones only when known). */
export function writerToJson(w: WriterInfo): Record<string, string | number> {
  const out: Record<string, string | number> = { pid: w.pid, host: w.host, started_at: w.startedAt };
  if (w.instance !== undefined) out['instance'] = w.instance;
  if (w.pidNs !== undefined) out['pid_ns'] = w.pidNs;
  if (w.bootId !== undefined) out['boot_id'] = w.bootId;
  if (w.procStart !== undefined) out['proc_start'] = w.procStart;
  return out;
}

/** A writer from the files' JSON, or `null` when the required keys are missing or wrong (optional ones are dropped when wrong). */
export function writerFromJson(v: unknown): WriterInfo | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const r = v as Record<string, unknown>;
  const { pid, host, started_at: startedAt } = r;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  if (typeof host !== 'string' || typeof startedAt !== 'number' || !Number.isFinite(startedAt)) return null;
  const w: WriterInfo = { pid, host, startedAt };
  const short = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 128;
  if (short(r['instance'])) w.instance = r['instance'];
  if (short(r['pid_ns'])) w.pidNs = r['pid_ns'];
  if (short(r['boot_id'])) w.bootId = r['boot_id'];
  const ps = r['proc_start'];
  if (typeof ps === 'number' && Number.isSafeInteger(ps) && ps >= 0) w.procStart = ps;
  return w;
}
