/**
 * The benchmarks' one reader of /proc (Linux): a process's CPU time (every
 * thread's `schedstat`, or `stat` ticks where the kernel has no schedstat),
 * context switches and memory (`status`), read without waking the process.
 */
import * as fs from 'node:fs';

/** One thread's counters. */
export interface TaskCounters {
  /** CPU time, ms. */
  cpuMs: number;
  voluntary: number;
  nonvoluntary: number;
}

/** A process at one moment. */
export interface ProcSample {
  pid: number;
  tasks: Map<number, TaskCounters>;
  rssKiB: number;
  hwmKiB: number;
}

/** USER_HZ, the unit of `stat`'s utime and stime: 100 on every Linux we know of. */
const TICK_MS = 10;

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function field(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status);
  return m ? Number(m[1]) : NaN;
}

/** One thread's counters, or null when it is gone. */
export function readTask(pid: number, tid: number): TaskCounters | null {
  const dir = `/proc/${pid}/task/${tid}`;
  const stat = read(`${dir}/stat`);
  const status = read(`${dir}/status`);
  if (stat === null || status === null) return null;
  const ns = Number(read(`${dir}/schedstat`)?.split(' ')[0]);
  // stat's fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuMs = Number.isFinite(ns) ? ns / 1e6 : (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  return { cpuMs, voluntary: field(status, 'voluntary_ctxt_switches'), nonvoluntary: field(status, 'nonvoluntary_ctxt_switches') };
}

/** Every thread of `pid` and its memory; throws when the process is gone. */
export function sampleProc(pid: number): ProcSample {
  const status = read(`/proc/${pid}/status`);
  if (status === null) throw new Error(`process ${pid} is gone`);
  const tasks = new Map<number, TaskCounters>();
  for (const name of fs.readdirSync(`/proc/${pid}/task`)) {
    const task = readTask(pid, Number(name));
    if (task !== null) tasks.set(Number(name), task);
  }
  return { pid, tasks, rssKiB: field(status, 'VmRSS'), hwmKiB: field(status, 'VmHWM') };
}

/** CPU time (ms) every thread of `pid` has used so far; NaN when it cannot be read. */
export function cpuMsOf(pid: number): number {
  try {
    return [...sampleProc(pid).tasks.values()].reduce((sum, t) => sum + t.cpuMs, 0);
  } catch {
    return NaN;
  }
}

/** What a process did between two samples. */
export interface ProcDelta {
  cpuMs: number;
  /** Context switches of every thread. */
  switches: number;
  /** The main thread's voluntary switches: its event loop's wake-ups and its waits for the disk. */
  mainVoluntary: number;
  rssStartMiB: number;
  rssEndMiB: number;
  /** VmHWM at the end. */
  peakMiB: number;
}

export function procDelta(a: ProcSample, b: ProcSample): ProcDelta {
  let cpuMs = 0;
  let switches = 0;
  for (const [tid, end] of b.tasks) {
    // A thread born in between counts from zero (Node's threads live as long as the process).
    const start = a.tasks.get(tid) ?? { cpuMs: 0, voluntary: 0, nonvoluntary: 0 };
    cpuMs += end.cpuMs - start.cpuMs;
    switches += end.voluntary - start.voluntary + end.nonvoluntary - start.nonvoluntary;
  }
  const main = (s: ProcSample): number => s.tasks.get(s.pid)?.voluntary ?? NaN;
  return { cpuMs, switches, mainVoluntary: main(b) - main(a), rssStartMiB: a.rssKiB / 1024, rssEndMiB: b.rssKiB / 1024, peakMiB: b.hwmKiB / 1024 };
}
