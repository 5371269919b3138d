/**
 * The DDS of bench/fleet.ts, forked with an IPC channel so that the
 * simulator's CPU — its signature checks above all — is not the fleet's: the
 * real `DdsSimulator`, its HTTP requests counted on arrival (before it reads
 * or verifies anything) in 100 ms buckets of wall-clock time. `stop` is a real
 * outage (the port closed, every connection dropped); `start` listens again
 * on the same port with a fresh simulator. The registration secret arrives
 * over IPC, never on the command line. {@link forkDds} starts it (bench/fleet.ts,
 * bench/session.ts).
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DdsSimulator } from '../src/sim/dds-simulator.js';
import { nextMessage, REPO_ROOT } from '../test/support/child.js';
import type { CleanupStack } from '../test/support/cleanup.js';
import { sleep } from '../test/support/time.js';

export const BUCKET_MS = 100;

/** What the parent sends; the child answers each with one {@link DdsReply}. */
export type DdsCommand = { cmd: 'start'; port: number; regSecret: string } | { cmd: 'stop' } | { cmd: 'stats'; fromMs: number; toMs: number } | { cmd: 'exit' };

/** Requests per bucket from `fromMs` to `toMs`; the child's CPU (µs) and event-loop active/idle time (ms) so far: diff two for a window's. */
export interface DdsStats {
  requests: number[];
  cpuUs: number;
  loopActiveMs: number;
  loopIdleMs: number;
}

export type DdsReply = { type: 'started'; url: string; port: number } | { type: 'stopped' } | { type: 'stats'; stats: DdsStats };

const buckets = new Map<number, number>();
const original = http.createServer.bind(http) as (...args: unknown[]) => http.Server;
// The simulator makes its server with http.createServer: count what reaches it (in the child only: it runs nothing else).
if (process.send !== undefined) {
  (http as unknown as { createServer: typeof original }).createServer = (...args) =>
    original(...args).on('request', () => {
      const k = Math.floor(Date.now() / BUCKET_MS);
      buckets.set(k, (buckets.get(k) ?? 0) + 1);
    });
}

async function startSimulator(port: number, regSecret: string): Promise<DdsSimulator> {
  // A port just closed may linger for a moment.
  for (let attempt = 0; ; attempt++) {
    // It never probes by itself (a day): the fleet sends its probes.
    const sim = new DdsSimulator({ host: '127.0.0.1', port, expectedRegSecret: regSecret, probeIntervalMs: 86_400_000 });
    try {
      await sim.start();
      return sim;
    } catch (error) {
      await sim.stop();
      if (attempt >= 20) throw error;
      await sleep(50);
    }
  }
}

if (process.send !== undefined) {
  let sim: DdsSimulator | null = null;
  let queue = Promise.resolve();
  const reply = (m: DdsReply): void => void process.send?.(m);
  const handle = async (m: DdsCommand): Promise<void> => {
    if (m.cmd === 'start') {
      sim = await startSimulator(m.port, m.regSecret);
      reply({ type: 'started', url: sim.url, port: Number(new URL(sim.url).port) });
    } else if (m.cmd === 'stop') {
      await sim?.stop();
      sim = null;
      reply({ type: 'stopped' });
    } else if (m.cmd === 'stats') {
      const requests: number[] = [];
      for (let k = Math.floor(m.fromMs / BUCKET_MS); k <= Math.floor(m.toMs / BUCKET_MS); k++) requests.push(buckets.get(k) ?? 0);
      const { user, system } = process.cpuUsage();
      const { active, idle } = performance.eventLoopUtilization();
      reply({ type: 'stats', stats: { requests, cpuUs: user + system, loopActiveMs: active, loopIdleMs: idle } });
    } else {
      await sim?.stop();
      process.exit(0);
    }
  };
  process.on('message', (m: DdsCommand) => void (queue = queue.then(() => handle(m))));
  // The parent is gone: nothing left to serve.
  process.on('disconnect', () => process.exit(0));
}

/** The DDS child: one command at a time, one reply each. */
export async function forkDds(cleanup: CleanupStack) {
  const child = fork(path.join(REPO_ROOT, 'bench', 'fleet-dds.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup.after(() => (child.exitCode === null ? child.kill('SIGKILL') : undefined));
  let port = 0;
  const ask = <T extends DdsReply['type']>(command: DdsCommand, type: T): Promise<Extract<DdsReply, { type: T }>> => {
    const reply = nextMessage(child, (m) => ((m as DdsReply).type === type ? (m as Extract<DdsReply, { type: T }>) : undefined), {
      what: `DDS child, ${command.cmd}`,
      timeoutMs: 60_000,
    });
    child.send(command);
    return reply;
  };
  return {
    /** Start (or restart on the same port) the simulator; its URL. */
    start: async (regSecret: string): Promise<string> => {
      const m = await ask({ cmd: 'start', port, regSecret }, 'started');
      port = m.port;
      return m.url;
    },
    stop: () => ask({ cmd: 'stop' }, 'stopped'),
    stats: async (fromMs = Date.now(), toMs = fromMs): Promise<DdsStats> => (await ask({ cmd: 'stats', fromMs, toMs }, 'stats')).stats,
  };
}
