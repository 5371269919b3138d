/**
 * The baseline of bench/staleness.ts, run as its child: the Rust crate's
 * `run_registration_loop` (0.1.2, PROTOCOL.md §3) line for line, with
 * unlimited retries — sleep, read the in-memory state, act. Its request is
 * not signed (the crate's Rust signing is a fraction of a millisecond).
 *
 *   node --import tsx bench/staleness-crate.ts '{"intervalSecs":1,"ddsBaseUrl":"…","nodeUrl":"…"}'
 *
 * Prints JSON lines (`event`, `t_ms`: epoch ms, sub-ms resolution) as ours logs them; exits on SIGTERM.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { REGISTRATION_PATH } from '../src/register.js';
import { sleep } from '../test/support/time.js';

const config = JSON.parse(process.argv[2] ?? '{}') as { intervalSecs: number; ddsBaseUrl: string; nodeUrl: string };
const ttlMs = Math.max(1, config.intervalSecs) * 1000;

/** `Utc::now()`: 0.1.2 keeps the state in memory as a `DateTime<Utc>` and compares `Duration`s, at full precision. */
const wallMs = (): number => performance.timeOrigin + performance.now();
const log = (event: string, fields: Record<string, unknown> = {}): void =>
  void process.stdout.write(`${JSON.stringify({ event, ...fields, t_ms: wallMs() })}\n`);

const state: { status: 'disconnected' | 'registering' | 'registered'; lastHealthcheck: number | null } = { status: 'disconnected', lastHealthcheck: null };

// The crate's router: `GET /health` from a `DDS v…` caller touches the health check.
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && (req.url ?? '').split('?')[0] === '/health') {
    if ((req.headers['user-agent'] ?? '').startsWith('DDS v')) {
      state.lastHealthcheck = wallMs();
      log('healthcheck.touch');
    }
    res.writeHead(200).end();
  } else res.writeHead(404).end();
});

const agent = new http.Agent({ keepAlive: true });

/** `register_once`: one POST, success on 2xx. */
function registerOnce(): Promise<boolean> {
  const body = JSON.stringify({
    url: config.nodeUrl,
    version: '1.2.3',
    registration_credentials: 'bench-unsigned',
    signature: '',
    timestamp: new Date().toISOString(),
    public_key: '',
    capabilities: [],
  });
  log('registration.attempt');
  return new Promise((resolve) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = http.request(`${config.ddsBaseUrl.replace(/\/+$/, '')}${REGISTRATION_PATH}`, { method: 'POST', agent, headers, timeout: 10_000 }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    });
    req.on('timeout', () => req.destroy(new Error('timeout'))).on('error', () => resolve(false));
    req.end(body);
  });
}

async function runRegistrationLoop(): Promise<never> {
  let attempt = 0;
  let nextSleepMs = 1000;
  for (;;) {
    await sleep(nextSleepMs);
    if (state.status === 'registered') {
      // Stale at the first look after the TTL (looks are T apart); the request one second later.
      const elapsed = state.lastHealthcheck === null ? Infinity : wallMs() - state.lastHealthcheck;
      if (elapsed > ttlMs) {
        log('healthcheck.expired');
        state.status = 'registering';
        nextSleepMs = 1000;
      } else nextSleepMs = ttlMs;
      continue;
    }
    // The crate's lock is process memory: always free in one process.
    state.status = 'registering';
    attempt += 1;
    if (await registerOnce()) {
      state.status = 'registered';
      state.lastHealthcheck = wallMs();
      log('registration.success');
      attempt = 0;
      nextSleepMs = ttlMs;
    } else {
      log('registration.error', { attempt });
      nextSleepMs = Math.min(2 ** attempt, 60) * 1000 * (0.8 + 0.4 * Math.random());
    }
  }
}

process.once('SIGTERM', () => process.exit(0));
server.listen(0, '127.0.0.1', () => {
  log('http.listening', { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  void runRegistrationLoop();
});
