/**
 * Child-process entry of `bench/routes.ts` — not a benchmark by itself.
 *
 * Serves the DDS callback routes in a process of its own, so that the load
 * generator (autocannon, in the parent) does not share its event loop:
 *
 * - `ours`: the daemon exactly as `run` starts it (`startDaemon`:
 *   `createRoutesServer` + `routerDds(registrar, {logger})` + a real
 *   `createRegistrar`), registered against a local DDS stand-in, with the
 *   production logger (pino, JSON, level `info`) writing to a file (or
 *   /dev/null). Interval,
 *   health-check TTL and callback window are one hour, with the default
 *   callback policy `window`: the registrar stays `registered` with its
 *   callback window open for the whole benchmark, so every callback is
 *   admitted through the real path (`snapshot.can(SECRET_RECEIVED)`, the
 *   secret store, the actor).
 * - `bare`: a bare `node:http` server answering the same two routes the same
 *   way (same status codes and bodies; the POST's JSON body is parsed and
 *   checked for `id` and `secret`).
 *
 *   node --import tsx bench/routes-server.ts '{"mode":"ours","dataDir":"/tmp/x"}'   (forked, with IPC)
 *
 * IPC: sends `{type:'ready', url}` once listening (and, for `ours`,
 * registered); answers `{type:'stats'}` with a {@link ServerStats} and
 * `{type:'cpu'}` with a {@link CpuReport}; stops and
 * exits on `{type:'stop'}` or when the parent goes away. Prints nothing.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { waitFor } from 'xstate';
import { startDaemon, type Daemon } from '../src/cli/daemon.js';
import { generateSecretKey } from '../src/crypto.js';
import { CALLBACK_PATH, DDS_USER_AGENT_PREFIX, HEALTH_PATH, MAX_SECRET_BYTES } from '../src/http.js';
import { createLogger } from '../src/log.js';
import { readNodeSecret } from '../src/persist.js';
import { CleanupStack } from '../test/support/cleanup.js';
import { startFakeDds } from '../test/support/fake-dds.js';

/** Which server to run. */
export type ServerMode = 'ours' | 'bare';

/** The child's argument (JSON, argv[2]). */
export interface ServerChildConfig {
  mode: ServerMode;
  /** A directory the child may use (the state file, the lock, the log file); the parent removes it. */
  dataDir: string;
  /** For `ours`: where the log goes — a file in `dataDir` (default) or `/dev/null`. */
  log?: LogSink;
}

/** Where the `ours` server's log lines go. */
export type LogSink = 'file' | 'null';

/** What the child reports on `{type:'stats'}`. */
export interface ServerStats {
  type: 'stats';
  /** Callbacks accepted (for `ours`: the registrar's own count, `context.callbacks`). */
  callbacks: number;
  /** DDS probes seen (for `ours`: the registrar's own count, `context.probes`). */
  probes: number;
  /** For `ours`: whether the registrar is still `registered` (always true for `bare`). */
  registered: boolean;
  /** For `ours` with the log in a file: log lines written so far (0 for `bare`; `null` when logging to /dev/null). */
  logLines: number | null;
  /** The process's resident set and used heap, MiB. */
  rssMiB: number;
  heapUsedMiB: number;
  /** Whether a node secret is held (the callbacks reached the store). */
  secretHeld: boolean;
}

/** Messages from the parent. */
export type ParentMessage = { type: 'stats' } | { type: 'cpu' } | { type: 'stop' };
/** Messages to the parent. */
export type ChildMessage = { type: 'ready'; url: string } | ServerStats | CpuReport;

/** The answer to `{type:'cpu'}`: CPU time (user + system) this process has used, µs. Cheap, so it can bracket a run. */
export interface CpuReport {
  type: 'cpu';
  micros: number;
}

/** The settings of a callback-window registrar that stays registered for an hour. */
const ONE_HOUR_SECS = 3600;
const BODY_LIMIT_BYTES = 64 * 1024;

interface RunningServer {
  url: string;
  stats(): ServerStats;
  stop(): Promise<void>;
}

function send(message: ChildMessage): void {
  process.send?.(message);
}

function memory(): { rssMiB: number; heapUsedMiB: number } {
  const m = process.memoryUsage();
  return { rssMiB: Math.round((m.rss / 2 ** 20) * 10) / 10, heapUsedMiB: Math.round((m.heapUsed / 2 ** 20) * 10) / 10 };
}

function countLines(file: string): number {
  let n = 0;
  const text = fs.readFileSync(file, 'utf8');
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n += 1;
  return n;
}

/** `ours`: the daemon as `run` starts it, registered against a local DDS stand-in. */
async function startOurs(dataDir: string, log: LogSink): Promise<RunningServer> {
  const ddsCleanup = new CleanupStack();
  const dds = await startFakeDds(ddsCleanup);
  const logFile = log === 'file' ? path.join(dataDir, 'daemon.log') : null;
  const logFd = fs.openSync(logFile ?? '/dev/null', 'a');
  const logger = createLogger({ format: 'json', level: 'info', destination: logFd });
  let daemon: Daemon;
  try {
    daemon = await startDaemon({
      settings: {
        ddsBaseUrl: dds.url,
        nodeUrl: (listenUrl) => listenUrl,
        nodeVersion: '0.0.0-bench',
        regSecret: randomBytes(24).toString('base64url'),
        secp256k1Privhex: generateSecretKey().exposeHex(),
        capabilities: ['/reconstruction/global-refinement/v1'],
        registerIntervalSecs: ONE_HOUR_SECS,
        maxRetry: -1,
        requestTimeoutSecs: 10,
        lockStaleSecs: 10,
        callbackPolicy: 'window',
        callbackWindowSecs: ONE_HOUR_SECS,
        dataDir: path.join(dataDir, 'data'),
        host: '127.0.0.1',
        port: 0,
      },
      logger,
    });
    await waitFor(daemon.registrar, (s) => s.matches('registered'), { timeout: 30_000 });
  } catch (error) {
    await ddsCleanup.run();
    fs.closeSync(logFd);
    throw error;
  }
  const d = daemon;
  return {
    url: d.url,
    stats() {
      const snapshot = d.registrar.getSnapshot();
      return {
        type: 'stats',
        callbacks: snapshot.context.callbacks,
        probes: snapshot.context.probes,
        registered: snapshot.matches('registered'),
        logLines: logFile === null ? null : countLines(logFile),
        ...memory(),
        secretHeld: readNodeSecret() !== undefined,
      };
    },
    async stop() {
      await d.stop();
      await ddsCleanup.run();
      fs.closeSync(logFd);
    },
  };
}

/** The held node secret of the bare server (as the real one keeps it in memory). */
let bareSecret: string | undefined;

function answerText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(text);
}

const OK_BODY = '{"ok":true}';

/** The bare server's POST handler: same checks (415, 413, 400, 422, 403) and the same 200 `{"ok":true}`. */
function bareCallback(req: http.IncomingMessage, res: http.ServerResponse, counts: { callbacks: number }): void {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    answerText(res, 415, 'expected Content-Type: application/json');
    req.resume();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > BODY_LIMIT_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on('end', () => {
    if (tooLarge) return answerText(res, 413, 'body too large');
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return answerText(res, 400, 'invalid JSON');
    }
    const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    const id = fields['id'];
    const secret = fields['secret'];
    if (typeof id !== 'string' || id.trim() === '') return answerText(res, 422, 'missing id');
    if (typeof secret !== 'string' || secret.trim() === '') return answerText(res, 422, 'missing secret');
    if (Buffer.byteLength(secret, 'utf8') > MAX_SECRET_BYTES) return answerText(res, 403, 'secret too large');
    bareSecret = secret;
    counts.callbacks += 1;
    res.writeHead(200, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(OK_BODY),
      'Cache-Control': 'no-store',
    });
    res.end(OK_BODY);
  });
  req.on('error', () => undefined);
}

/** `bare`: `node:http` alone, answering the two routes as the real ones do. */
async function startBare(): Promise<RunningServer> {
  const counts = { callbacks: 0, probes: 0 };
  const server = http.createServer((req, res) => {
    const pathname = (req.url ?? '').split('?', 1)[0];
    if (pathname === HEALTH_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
      if ((req.headers['user-agent'] ?? '').startsWith(DDS_USER_AGENT_PREFIX)) counts.probes += 1;
      res.writeHead(200, { 'Cache-Control': 'no-store', 'Content-Length': 0 });
      res.end();
    } else if (pathname === CALLBACK_PATH && req.method === 'POST') {
      bareCallback(req, res, counts);
    } else {
      answerText(res, 404, 'not found');
      req.resume();
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => ({
      type: 'stats',
      callbacks: counts.callbacks,
      probes: counts.probes,
      registered: true,
      logLines: 0,
      ...memory(),
      secretHeld: bareSecret !== undefined,
    }),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function parseConfig(raw: string | undefined): ServerChildConfig {
  const parsed = JSON.parse(raw ?? '{}') as Partial<ServerChildConfig>;
  if ((parsed.mode !== 'ours' && parsed.mode !== 'bare') || typeof parsed.dataDir !== 'string') {
    throw new Error('expected {"mode":"ours"|"bare","dataDir":"…","log"?:"file"|"null"} as the first argument');
  }
  return { mode: parsed.mode, dataDir: parsed.dataDir, log: parsed.log === 'null' ? 'null' : 'file' };
}

async function main(): Promise<void> {
  if (process.send === undefined) {
    console.log('bench/routes-server.ts is the server child of bench/routes.ts, not a benchmark: run bench/routes.ts.');
    return;
  }
  const config = parseConfig(process.argv[2]);
  const server = config.mode === 'ours' ? await startOurs(config.dataDir, config.log ?? 'file') : await startBare();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= server.stop().finally(() => {
      if (process.connected) process.disconnect?.();
      process.exit(0);
    });
    return stopping;
  };
  process.on('disconnect', () => void stop());
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'cpu') {
      const { user, system } = process.cpuUsage();
      send({ type: 'cpu', micros: user + system });
    } else if (message.type === 'stats') send(server.stats());
    else if (message.type === 'stop') void stop();
  });
  send({ type: 'ready', url: server.url });
}

main().catch((error: unknown) => {
  console.error(`routes-server: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
