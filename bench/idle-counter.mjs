/**
 * Preload of bench/idle.ts (`NODE_OPTIONS=--import=<this>`, `IDLE_COUNTER_OUT=<prefix>`):
 * an async_hooks hook counting every callback the event loop runs, by
 * resource type, apart the top-level ones (each one entry of the loop into
 * JavaScript), and every timer by where it was armed — key
 * `type \t ms \t repeat(0|1) \t first frame outside the timer code \t callers`.
 * It arms no timer and does no I/O of its own: on SIGUSR2 it writes a
 * snapshot, `<prefix>-<n>.json` (whole, then renamed).
 */
import { createHook } from 'node:async_hooks';
import * as fs from 'node:fs';
import { URL, fileURLToPath } from 'node:url';

const OUT = process.env.IDLE_COUNTER_OUT;
const SELF = import.meta.url;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Frames that say nothing about who armed a timer. */
const BORING = /^\s*at (?:.*\()?(?:node:internal\/timers|node:timers|node:internal\/async_hooks)/;

const table = () => Object.create(null);
const counts = { fired: table(), topLevel: table(), armed: table(), firedByOrigin: table() };
/** Live timers: asyncId → origin key; other live resources: asyncId → type. */
const timers = new Map();
const types = new Map();
let depth = 0;
let snapshots = 0;
const bump = (t, key) => void (t[key] = (t[key] ?? 0) + 1);

/** Where a timer was armed: the first interesting frame (relative to the repository) and the next callers' names (which survive bundling). */
function origin() {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const frames = (new Error().stack ?? '')
    .split('\n')
    .slice(1)
    .filter((l) => !l.includes(SELF) && !BORING.test(l));
  Error.stackTraceLimit = limit;
  const where = (frames[0] ?? '(unknown)').trim().replace(/^at /, '').replaceAll(`file://${ROOT}`, '').replaceAll(ROOT, '');
  const callers = frames.slice(1, 7).map((l) => /^\s*at (?:async )?(.*?) \(/.exec(l)?.[1] ?? '<anonymous>');
  return `${where}\t${callers.join(' ← ')}`;
}

createHook({
  init(asyncId, type, _trigger, resource) {
    if (type !== 'Timeout' && type !== 'Immediate') return void types.set(asyncId, type);
    const ms = type === 'Timeout' ? resource._idleTimeout : 0;
    const key = `${type}\t${ms}\t${type === 'Timeout' && resource._repeat != null ? 1 : 0}\t${origin()}`;
    bump(counts.armed, key);
    timers.set(asyncId, key);
  },
  before(asyncId) {
    const key = timers.get(asyncId);
    const type = key?.split('\t')[0] ?? types.get(asyncId) ?? 'unknown';
    bump(counts.fired, type);
    if (depth === 0) bump(counts.topLevel, type);
    depth += 1;
    if (key !== undefined) bump(counts.firedByOrigin, key);
  },
  after() {
    depth = Math.max(0, depth - 1);
  },
  destroy(asyncId) {
    timers.delete(asyncId);
    types.delete(asyncId);
  },
}).enable();

process.on('SIGUSR2', () => {
  const live = table();
  for (const key of timers.values()) bump(live, key);
  const target = `${OUT}-${++snapshots}.json`;
  fs.writeFileSync(`${target}.tmp`, JSON.stringify({ cpu: process.cpuUsage(), ...counts, live, active: process.getActiveResourcesInfo() }));
  fs.renameSync(`${target}.tmp`, target);
});
