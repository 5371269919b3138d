/**
 * The DDS side of `bench/fleet.ts`, run as a child process (forked with an
 * IPC channel) so that the simulator's CPU — above all its signature check —
 * is not the fleet's.
 *
 * It runs the real `DdsSimulator` (`src/sim/dds-simulator.ts`) and counts, in
 * 100 ms buckets of wall-clock time, every HTTP request and connection that
 * reaches it (before the simulator reads or verifies anything: arrivals, not
 * completions) and every registration it accepts. An outage is a real one:
 * `stop` closes the listening socket and every open connection (clients get
 * ECONNREFUSED / ECONNRESET); `start` listens again on the same port with a
 * fresh simulator (DDS "restarted": it has forgotten the nodes until they
 * register again).
 *
 * Protocol (parent → child): `{cmd:'start', port, expectedRegSecret}`,
 * `{cmd:'stop'}`, `{cmd:'stats', fromMs, toMs}`, `{cmd:'exit'}`; the child
 * answers each with one message (see {@link ChildMessage}). The registration
 * secret arrives over IPC, never on the command line, and is never printed.
 *
 * Not a benchmark itself (`scripts/run-bench.mjs` skips `*-helpers.ts`).
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { DdsSimulator } from '../src/sim/dds-simulator.js';

/** Width of the counting buckets, ms. */
export const BUCKET_MS = 100;

/** What the parent sends. */
export type ParentMessage =
  | { cmd: 'start'; port: number; expectedRegSecret: string; probeIntervalMs: number }
  | { cmd: 'stop' }
  | { cmd: 'stats'; fromMs: number; toMs: number }
  | { cmd: 'exit' };

/** Counts of one window, in {@link BUCKET_MS} buckets starting at `fromMs` (wall clock). */
export interface DdsWindowStats {
  fromMs: number;
  bucketMs: number;
  /** HTTP requests received, per bucket. */
  requests: number[];
  /** TCP connections accepted, per bucket. */
  connections: number[];
  /** Registrations accepted (verified, answered 200), per bucket. */
  accepted: number[];
  /** Registrations rejected (400/413/415), in the window. */
  rejected: number;
  /** Callbacks that failed, in the window. */
  callbackErrors: number;
  /** The child's CPU time (user + system) so far, µs: diff two answers for a window's. */
  cpuUs: number;
  /** Event-loop active and idle time so far, ms (from `performance.eventLoopUtilization()`). */
  loopActiveMs: number;
  loopIdleMs: number;
}

/** What the child answers. */
export type ChildMessage =
  | { type: 'ready' }
  | { type: 'started'; port: number; url: string }
  | { type: 'start-failed'; message: string }
  | { type: 'stopped' }
  | { type: 'stats'; stats: DdsWindowStats };

class Counter {
  readonly #buckets = new Map<number, number>();
  add(atMs: number): void {
    const k = Math.floor(atMs / BUCKET_MS);
    this.#buckets.set(k, (this.#buckets.get(k) ?? 0) + 1);
  }
  window(fromMs: number, toMs: number): number[] {
    const first = Math.floor(fromMs / BUCKET_MS);
    const last = Math.floor(toMs / BUCKET_MS);
    const out: number[] = [];
    for (let k = first; k <= last; k++) out.push(this.#buckets.get(k) ?? 0);
    return out;
  }
}

const requests = new Counter();
const connections = new Counter();
const accepted = new Counter();
const rejectedAt: number[] = [];
const callbackErrorsAt: number[] = [];

/**
 * Count arrivals at the simulator's own server: it is created with
 * `http.createServer` inside `DdsSimulator`, so wrap that function (this
 * process runs nothing else).
 */
function instrumentHttpServers(): void {
  const original = http.createServer.bind(http) as (...args: unknown[]) => http.Server;
  (http as unknown as { createServer: (...args: unknown[]) => http.Server }).createServer = (...args: unknown[]) => {
    const server = original(...args);
    server.on('request', () => requests.add(Date.now()));
    server.on('connection', () => connections.add(Date.now()));
    return server;
  };
}

function send(message: ChildMessage): void {
  process.send?.(message);
}

function countIn(times: readonly number[], fromMs: number, toMs: number): number {
  return times.filter((t) => t >= fromMs && t <= toMs).length;
}

function windowStats(fromMs: number, toMs: number): DdsWindowStats {
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  return {
    fromMs: Math.floor(fromMs / BUCKET_MS) * BUCKET_MS,
    bucketMs: BUCKET_MS,
    requests: requests.window(fromMs, toMs),
    connections: connections.window(fromMs, toMs),
    accepted: accepted.window(fromMs, toMs),
    rejected: countIn(rejectedAt, fromMs, toMs),
    callbackErrors: countIn(callbackErrorsAt, fromMs, toMs),
    cpuUs: cpu.user + cpu.system,
    loopActiveMs: elu.active,
    loopIdleMs: elu.idle,
  };
}

async function startSimulator(message: Extract<ParentMessage, { cmd: 'start' }>): Promise<DdsSimulator> {
  // A port just closed may linger for a moment: try a few times.
  for (let attempt = 0; ; attempt++) {
    const sim = new DdsSimulator({
      host: '127.0.0.1',
      port: message.port,
      expectedRegSecret: message.expectedRegSecret,
      probeIntervalMs: message.probeIntervalMs,
    });
    sim.on((event) => {
      if (event.type === 'registration.accepted') accepted.add(Date.now());
      else if (event.type === 'registration.rejected') rejectedAt.push(Date.now());
      else if (event.type === 'callback.sent' && (event.status === null || event.status >= 300)) callbackErrorsAt.push(Date.now());
    });
    try {
      await sim.start();
      return sim;
    } catch (error) {
      await sim.stop();
      if (attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The child's main loop: serve the parent's commands one at a time. */
function runChild(): void {
  instrumentHttpServers();
  let sim: DdsSimulator | null = null;
  let queue: Promise<void> = Promise.resolve();
  const handle = async (message: ParentMessage): Promise<void> => {
    switch (message.cmd) {
      case 'start':
        try {
          sim = await startSimulator(message);
          const url = sim.url;
          send({ type: 'started', port: Number(new URL(url).port), url });
        } catch (error) {
          send({ type: 'start-failed', message: error instanceof Error ? error.message : String(error) });
        }
        return;
      case 'stop':
        await sim?.stop();
        sim = null;
        send({ type: 'stopped' });
        return;
      case 'stats':
        send({ type: 'stats', stats: windowStats(message.fromMs, message.toMs) });
        return;
      case 'exit':
        await sim?.stop();
        process.exit(0);
    }
  };
  process.on('message', (message: ParentMessage) => {
    queue = queue.then(() => handle(message));
  });
  // The parent is gone: nothing left to serve.
  process.on('disconnect', () => {
    void sim?.stop().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
  send({ type: 'ready' });
}

if (process.argv.includes('--fleet-dds-child')) runChild();
