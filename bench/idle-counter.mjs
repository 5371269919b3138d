/**
 * Preload of the idle-cost benchmark (bench/idle.ts), given to a child with
 * `NODE_OPTIONS=--import=<this file>` and `IDLE_COUNTER_OUT=<path prefix>`.
 *
 * It counts, with an async_hooks hook, every callback the event loop runs
 * (`before`, by resource type: Timeout, Immediate, TCPWRAP, PROMISE, …), and
 * apart the top-level ones (not nested in another callback: each is one entry
 * of the event loop into JavaScript), and remembers where each Timeout and
 * Immediate was created (its duration, whether it repeats, the first frame of
 * its creation stack and the first frame of the project's code under it), so
 * that every timer callback can be attributed to its origin.
 *
 * Timer keys are `type \t ms \t repeat(0|1) \t first frame \t project frame \t callers`.
 *
 * It adds no wake-up of its own: no timer, no interval, no I/O. It writes a
 * snapshot (`<prefix>-<n>.json`, written whole then renamed) only when it
 * receives SIGUSR2, and a last one (`<prefix>-exit.json`) at exit. The signal
 * itself is one SIGNALWRAP callback, which the benchmark leaves out.
 */
import { createHook } from 'node:async_hooks';
import * as fs from 'node:fs';
import { URL, fileURLToPath } from 'node:url';

const OUT = process.env.IDLE_COUNTER_OUT;
const SELF = import.meta.url;
/** The repository's root, with a trailing slash. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Stack frames that say nothing about who armed a timer. */
const BORING = /^\s*at (?:.*\()?(?:node:internal\/timers|node:timers|node:internal\/async_hooks)/;
/** A frame of the project's own code: compiled, bundled, or its sources through a source map. */
const PROJECT = /\/(?:dist\/)?(?:src|machines)\/[\w./-]+:\d+:\d+/;

/** `before` callbacks by resource type. */
const fired = Object.create(null);
/** Top-level `before` callbacks (not nested in another) by resource type. */
const topLevel = Object.create(null);
let depth = 0;
/** Resources created, by type. */
const created = Object.create(null);
/** Timer callbacks by origin key. */
const firedByOrigin = Object.create(null);
/** Timers created, by origin key. */
const createdByOrigin = Object.create(null);
/** Live timers (Timeout, Immediate): asyncId → type and origin key. */
const timers = new Map();
/** Other live resources: asyncId → type. */
const typeOf = new Map();
let snapshots = 0;

/** A frame, its location relative to the repository. */
function frameText(line) {
  return line.trim().replace(/^at /, '').split(`file://${ROOT}`).join('').split(ROOT).join('');
}

/** A frame's function name, without its location. */
function frameName(line) {
  const m = /^\s*at (?:async )?(.*?) \(/.exec(line);
  return m ? m[1] : '<anonymous>';
}

/**
 * Where a timer was armed: the first interesting frame, the first frame of
 * the project's own code under it ('' if none), and the names of the next
 * callers (which survive bundling: the CLI is one esbuild bundle, names kept).
 */
function originOf() {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const frames = stack.split('\n').slice(1).filter((l) => !l.includes(SELF) && !BORING.test(l));
  const first = frames[0] === undefined ? '(unknown)' : frameText(frames[0]);
  const project = frames.find((l) => PROJECT.test(l) && !l.includes('node_modules'));
  const callers = frames.slice(1, 7).map(frameName).join(' ← ');
  return `${first}\t${project === undefined ? '' : frameText(project)}\t${callers}`;
}

function bump(table, key) {
  table[key] = (table[key] ?? 0) + 1;
}

createHook({
  init(asyncId, type, _triggerAsyncId, resource) {
    bump(created, type);
    if (type !== 'Timeout' && type !== 'Immediate') {
      typeOf.set(asyncId, type);
      return;
    }
    const ms = type === 'Timeout' ? resource._idleTimeout : 0;
    const repeat = type === 'Timeout' && resource._repeat != null ? 1 : 0;
    const key = `${type}\t${ms}\t${repeat}\t${originOf()}`;
    bump(createdByOrigin, key);
    timers.set(asyncId, { type, key });
  },
  before(asyncId) {
    const timer = timers.get(asyncId);
    const type = timer?.type ?? typeOf.get(asyncId) ?? 'unknown';
    bump(fired, type);
    if (depth === 0) bump(topLevel, type);
    depth += 1;
    if (timer !== undefined) bump(firedByOrigin, timer.key);
  },
  after() {
    depth = Math.max(0, depth - 1);
  },
  destroy(asyncId) {
    timers.delete(asyncId);
    typeOf.delete(asyncId);
  },
}).enable();

function snapshot(name) {
  if (OUT === undefined) return;
  const liveByOrigin = Object.create(null);
  for (const { key } of timers.values()) bump(liveByOrigin, key);
  const data = {
    pid: process.pid,
    at: Date.now(),
    cpu: process.cpuUsage(),
    memory: process.memoryUsage(),
    fired,
    topLevel,
    created,
    firedByOrigin,
    createdByOrigin,
    liveByOrigin,
    activeResources: process.getActiveResourcesInfo(),
  };
  const target = `${OUT}-${name}.json`;
  const temp = `${target}.tmp`;
  fs.writeFileSync(temp, JSON.stringify(data));
  fs.renameSync(temp, target);
}

process.on('SIGUSR2', () => {
  snapshots += 1;
  snapshot(String(snapshots));
});
process.on('exit', () => {
  try {
    snapshot('exit');
  } catch {
    // best effort
  }
});
