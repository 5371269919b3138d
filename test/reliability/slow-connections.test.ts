/**
 * 2,000 slow connections (a socket opened, half a request head sent, never
 * finished) against a registrar limited to 1,024 file descriptors: DDS's
 * probes must still be answered. Each slow connection the daemon closes to
 * make room is opened again at once, so the flood never lets up.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { describe, test } from 'node:test';
import { now, probeHealth, sleep, spawnChild, startFakeDds, tempDir, type Cleanup } from '../support/index.js';
import { onCleanup } from '../support/cleanup.js';
import { newCredentials, recordFigure, registrarEnv, scaled } from './common.js';

const SLOW_CONNECTIONS = 2000;
const DESCRIPTOR_LIMIT = 1024;
const PROBES = scaled(40);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasPrlimit = spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status === 0;
const skip = !isRoot ? 'needs root to lower the daemon\'s descriptor limit with prlimit' : !hasPrlimit ? 'needs prlimit (util-linux)' : false;

/** A flood's connections so far: open now, opened in all, closed by the server. */
interface FloodCounts {
  open: number;
  opened: number;
  closedByServer: number;
}

/** Keep `count` slow connections open to host:port until stopped: each one closed is opened again. */
function startFlood(t: Cleanup, port: number, count: number): { stop(): void; readonly counts: Readonly<FloodCounts> } {
  let stopped = false;
  const counts: FloodCounts = { open: 0, opened: 0, closedByServer: 0 };
  const sockets = new Set<net.Socket>();
  const connect = (): void => {
    if (stopped) return;
    const socket = net.connect({ host: '127.0.0.1', port });
    sockets.add(socket);
    counts.opened += 1;
    socket.on('connect', () => {
      counts.open += 1;
      // Half a request head, never finished.
      socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: DD');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      if (socket.connecting === false && counts.open > 0) counts.open -= 1;
      if (stopped) return;
      counts.closedByServer += 1;
      // Again, a little later: the flood keeps its size without spinning.
      setTimeout(connect, 5);
    });
  };
  for (let i = 0; i < count; i += 1) connect();
  const stop = (): void => {
    stopped = true;
    for (const s of sockets) s.destroy();
  };
  onCleanup(t, stop);
  return { stop, counts };
}

describe('slow connections under a descriptor limit', { skip }, () => {
  test(`${SLOW_CONNECTIONS} slow connections, ulimit -n ${DESCRIPTOR_LIMIT}: DDS's probes are answered`, { timeout: 120_000 }, async (t) => {
    const dds = await startFakeDds(t);
    const creds = newCredentials();
    const env = registrarEnv({
      DDS_BASE_URL: dds.url,
      NODE_URL: 'http://127.0.0.1:9/node',
      REG_SECRET: creds.regSecret,
      SECP256K1_PRIVHEX: creds.envPrivhex,
      DATA_DIR: tempDir(t),
      REGISTER_INTERVAL_SECS: '60',
    });
    const child = spawnChild(t, {
      args: ['run'],
      env,
      name: 'flooded',
      wrapper: ['prlimit', `--nofile=${DESCRIPTOR_LIMIT}:${DESCRIPTOR_LIMIT}`, '--'],
    });
    const url = (await child.waitForEvent('http.listening')).line['url'] as string;
    await child.waitForEvent('registration.success');
    const port = Number(new URL(url).port);

    const flood = startFlood(t, port, SLOW_CONNECTIONS);
    // Let the flood reach its size.
    const deadline = Date.now() + 15_000;
    while (flood.counts.opened < SLOW_CONNECTIONS && Date.now() < deadline) await sleep(50);
    await sleep(500);

    let answered = 0;
    let slowestMs = 0;
    const failures: string[] = [];
    for (let i = 0; i < PROBES; i += 1) {
      const started = now();
      try {
        const answer = await probeHealth(url, 'DDS v1.0.0', 5000);
        if (answer.status === 200) answered += 1;
        else failures.push(String(answer.status));
      } catch (error) {
        failures.push((error as NodeJS.ErrnoException).code ?? 'error');
      }
      slowestMs = Math.max(slowestMs, now() - started);
      await sleep(20);
    }
    const openDuring = flood.counts.open;
    const evicted = flood.counts.closedByServer;
    flood.stop();
    recordFigure('connections.slow_flood', {
      slow_connections: SLOW_CONNECTIONS,
      descriptor_limit: DESCRIPTOR_LIMIT,
      probes: PROBES,
      answered,
      slowest_probe_ms: Math.round(slowestMs),
      slow_connections_opened: flood.counts.opened,
      closed_by_the_daemon: evicted,
      open_at_the_end: openDuring,
    });
    assert.deepEqual(failures, [], `${answered} of ${PROBES} probes answered under the flood`);
    assert.ok(evicted > 0, 'the daemon closed slow connections to make room');
    const exit = await child.stop('SIGTERM');
    assert.deepEqual([exit.code, exit.signal], [0, null], exit.stderr);
  });
});
