/**
 * The baseline of `bench/staleness.ts`: the Rust crate's registration loop
 * (`posemesh-node-registration` 0.1.2, `register::run_registration_loop`,
 * PROTOCOL.md §3), modelled faithfully in a small Node program that the
 * benchmark runs as a child process:
 *
 *   node --import tsx bench/staleness-helpers.ts '{"intervalSecs":1,"ddsBaseUrl":"http://127.0.0.1:…","nodeUrl":"http://…"}'
 *
 * The model, line for line with the crate's loop:
 * - `next_sleep` starts at 1 s; the loop is `sleep(next_sleep)`, then read the state:
 *   - `disconnected` / `registering`: take the lock (the crate's lock is
 *     process memory: always free here), set `registering`, sign and POST once;
 *     on success set `registered`, touch `last_healthcheck` "now", and
 *     `next_sleep = T`; on failure back off (min(2^attempt, 60) s × [0.8, 1.2]).
 *   - `registered`: `elapsed = now − last_healthcheck`; when `elapsed > T` log
 *     `healthcheck.expired`, set `registering` and `next_sleep = 1 s`;
 *     otherwise `next_sleep = T`.
 *   So staleness is noticed at the first tick after the TTL ran out (ticks are
 *   T apart, phased on the last registration), and the request goes out one
 *   more second later.
 * - `GET /health` with a `User-Agent` starting `DDS v` touches `last_healthcheck`
 *   (always 200, empty body), as the crate's router does.
 * - `last_healthcheck` is kept at full precision: in 0.1.2 the state lives in
 *   process memory as a `DateTime<Utc>` (the whole-seconds `ts_seconds` format
 *   applies only when it is serialised to a file, which 0.1.2 never does), and
 *   the loop compares `Duration`s, not seconds.
 * - The request body has the wire's keys but is **not signed** (`signature`
 *   and `public_key` are empty): the crate's Rust signing costs a fraction of a
 *   millisecond, nothing beside the loop's one-second sleep.
 *
 * It prints JSON lines on stdout (`event`, plus `t_ms`: epoch milliseconds at
 * sub-millisecond resolution): `http.listening` (with `url`),
 * `registration.loop.start`, `healthcheck.touch`, `healthcheck.expired`,
 * `registration.attempt`, `registration.success`, `registration.error`.
 * It exits on SIGTERM / SIGINT. Not a benchmark itself (`-helpers` files are
 * skipped by scripts/run-bench.mjs).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { REGISTRATION_PATH as REGISTER_PATH } from '../src/register.js';
import { sleep } from '../test/support/time.js';

/** What the model needs to run. */
interface CrateModelConfig {
  intervalSecs: number;
  ddsBaseUrl: string;
  nodeUrl: string;
}

type Status = 'disconnected' | 'registering' | 'registered';

/** The crate's in-memory `RegistrationState`. */
interface CrateState {
  status: Status;
  /** Epoch ms at sub-ms resolution (the crate's `Utc::now()`), or null. */
  lastHealthcheck: number | null;
}


/** `Utc::now()`: epoch milliseconds at sub-millisecond resolution. */
function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

function log(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...fields, t_ms: wallMs() })}\n`);
}

function parseConfig(raw: string | undefined): CrateModelConfig {
  const c = JSON.parse(raw ?? '') as Partial<CrateModelConfig>;
  if (typeof c.intervalSecs !== 'number' || typeof c.ddsBaseUrl !== 'string' || typeof c.nodeUrl !== 'string') {
    throw new Error('usage: staleness-helpers.ts \'{"intervalSecs":n,"ddsBaseUrl":"…","nodeUrl":"…"}\'');
  }
  return { intervalSecs: Math.max(1, c.intervalSecs), ddsBaseUrl: c.ddsBaseUrl, nodeUrl: c.nodeUrl };
}

/** The crate's router: `GET /health` touches the health check for a `DDS v…` caller. */
function serveHealth(state: CrateState): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === '/health') {
      if ((req.headers['user-agent'] ?? '').startsWith('DDS v')) {
        state.lastHealthcheck = wallMs();
        log({ event: 'healthcheck.touch' });
      }
      res.writeHead(200).end();
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** The crate's `register_once`: one POST, success on 2xx (unsigned body, see the header). */
function registerOnce(config: CrateModelConfig, agent: http.Agent): Promise<boolean> {
  const body = JSON.stringify({
    url: config.nodeUrl,
    version: '1.2.3',
    registration_credentials: 'bench-unsigned',
    signature: '',
    timestamp: new Date().toISOString(),
    public_key: '',
    capabilities: [],
  });
  const target = new URL(`${config.ddsBaseUrl.replace(/\/+$/, '')}${REGISTER_PATH}`);
  log({ event: 'registration.attempt' });
  return new Promise((resolve) => {
    const req = http.request(
      target,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 10_000 },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end(body);
  });
}

/** The crate's backoff base: min(2^attempt, 60) s (0 for attempt ≤ 0). */
function timerIntervalSecs(attempt: number): number {
  return attempt <= 0 ? 0 : Math.min(2 ** attempt, 60);
}

/** `run_registration_loop` with max_retry = −1 (unlimited), as configured by default. */
async function runRegistrationLoop(config: CrateModelConfig, state: CrateState): Promise<never> {
  const ttlMs = config.intervalSecs * 1000;
  const agent = new http.Agent({ keepAlive: true });
  let attempt = 0;
  let nextSleepMs = 1000;
  log({ event: 'registration.loop.start', healthcheck_ttl_sec: config.intervalSecs });
  for (;;) {
    await sleep(nextSleepMs);
    switch (state.status) {
      case 'disconnected':
      case 'registering': {
        // LockGuard::try_acquire: the crate's lock is process memory, free in a single process.
        state.status = 'registering';
        attempt += 1;
        const ok = await registerOnce(config, agent);
        if (ok) {
          state.status = 'registered';
          state.lastHealthcheck = wallMs();
          log({ event: 'registration.success' });
          attempt = 0;
          nextSleepMs = ttlMs;
        } else {
          log({ event: 'registration.error', attempt });
          nextSleepMs = timerIntervalSecs(attempt) * 1000 * (0.8 + 0.4 * Math.random());
        }
        break;
      }
      case 'registered': {
        const elapsed = state.lastHealthcheck === null ? Infinity : wallMs() - state.lastHealthcheck;
        if (elapsed > ttlMs) {
          log({ event: 'healthcheck.expired', elapsed_since_healthcheck_ms: elapsed });
          state.status = 'registering';
          nextSleepMs = 1000;
        } else {
          nextSleepMs = ttlMs;
        }
        break;
      }
    }
  }
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv[2]);
  const state: CrateState = { status: 'disconnected', lastHealthcheck: null };
  const server = await serveHealth(state);
  const { port } = server.address() as AddressInfo;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(0));
  log({ event: 'http.listening', url: `http://127.0.0.1:${port}` });
  await runRegistrationLoop(config, state);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
