/**
 * Helpers of the route fuzzer (`fuzz.test.ts`):
 *
 * - {@link sendRaw}: one request over a raw `node:net` socket, bytes exactly
 *   as given (any method, target, header, framing or body), and a small
 *   HTTP/1.1 response reader that tells an answer from a timeout, a reset or
 *   a connection closed without an answer;
 * - {@link startFuzzServerChild}: this file run as a child process
 *   (`node --expose-gc --import tsx fuzz-helpers.ts`) serving the DDS routes
 *   the way the daemon does — `startDaemon` (express app, `routerDds` on a real
 *   registrar against a local test DDS, the daemon's 404, a node HTTP server
 *   with its header limits) and, beside it, a plain
 *   `createDdsRouter(defaultStoresSink(…))` app mounted the same way. The child
 *   logs JSON lines (the real pino logger, level debug) to a file, and answers
 *   `measure` over IPC with its heap after a forced GC and any property added
 *   to the built-in prototypes since it started.
 *
 * The server runs in a child so that "the process stays alive", "memory is
 * stable" (with a real `gc()`) and "no prototype pollution" are measured
 * where the bodies are parsed, not in the test process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setImmediate as immediate } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { nextMessage, REPO_ROOT } from '../support/child.js';

// ---------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------

/** A request as bytes: the head (request line and headers, without the blank line's end), then the body writes. */
export interface RawRequest {
  /** The request line and header lines, each ending in CRLF, followed by the final CRLF. */
  head: Buffer;
  /** Body writes, sent one after the other right after the head. */
  body: Buffer[];
  /** Half-close the socket after writing (`socket.end()`), possibly after {@link endAfterMs}. */
  end?: boolean;
  /** Wait this long after writing before half-closing (for a body shorter than announced). */
  endAfterMs?: number;
  /** `HEAD` requests have answers without a body. */
  isHead?: boolean;
  /** Give up after this long without a complete answer. */
  timeoutMs: number;
}

/** A parsed HTTP answer. */
export interface RawResponse {
  kind: 'response';
  status: number;
  /** Header names lower-cased; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
  /** Interim (1xx) statuses received first. */
  interim: number[];
  /** Whether the answer arrived only after the client half-closed. */
  afterEnd: boolean;
}

/** What became of a raw request. */
export type RawOutcome =
  | RawResponse
  | { kind: 'timeout'; bytes: number }
  | { kind: 'closed'; bytes: number }
  | { kind: 'reset'; code: string; bytes: number };

function decodeChunked(data: Buffer): Buffer | null {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', pos);
    if (eol < 0) return null;
    const size = Number.parseInt(data.subarray(pos, eol).toString('latin1').split(';')[0] ?? '', 16);
    if (!Number.isFinite(size)) return Buffer.alloc(0);
    if (size === 0) return Buffer.concat(parts);
    if (data.length < eol + 2 + size + 2) return null;
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
}

/**
 * Parse the first complete final answer in `data`, skipping 1xx answers.
 * `closed`: the connection ended, so a body without a length ends here.
 */
export function parseResponse(data: Buffer, isHead: boolean, closed: boolean): Omit<RawResponse, 'afterEnd'> | null {
  const interim: number[] = [];
  let rest = data;
  for (;;) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) return null;
    const lines = rest.subarray(0, headEnd).toString('latin1').split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!match) return null;
    const status = Number(match[1]);
    const after = rest.subarray(headEnd + 4);
    if (status >= 100 && status < 200) {
      interim.push(status);
      rest = after;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    if (isHead || status === 204 || status === 304) return { kind: 'response', status, headers, body: Buffer.alloc(0), interim };
    if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
      const body = decodeChunked(after);
      return body === null ? (closed ? { kind: 'response', status, headers, body: after, interim } : null) : { kind: 'response', status, headers, body, interim };
    }
    const length = headers['content-length'];
    if (length !== undefined) {
      const n = Number(length);
      if (after.length >= n) return { kind: 'response', status, headers, body: after.subarray(0, n), interim };
      return closed ? { kind: 'response', status, headers, body: after, interim } : null;
    }
    return closed ? { kind: 'response', status, headers, body: after, interim } : null;
  }
}

/**
 * Send `req` on a fresh connection to `port` on 127.0.0.1 and read the
 * first final answer. Never rejects: failures are outcomes.
 */
export function sendRaw(port: number, req: RawRequest): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let received = 0;
    let ended = false;
    let settled = false;
    let endTimer: NodeJS.Timeout | undefined;
    const settle = (outcome: RawOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(endTimer);
      socket.destroy();
      resolve(outcome);
    };
    const attempt = (closed: boolean): boolean => {
      const parsed = parseResponse(Buffer.concat(chunks), req.isHead === true, closed);
      if (parsed === null) return false;
      settle({ ...parsed, afterEnd: ended });
      return true;
    };
    const timer = setTimeout(() => settle({ kind: 'timeout', bytes: received }), req.timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      attempt(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!attempt(true)) settle({ kind: 'reset', code: err.code ?? 'error', bytes: received });
    });
    socket.on('close', () => {
      if (!attempt(true)) settle({ kind: 'closed', bytes: received });
    });
    socket.on('connect', () => {
      socket.write(req.head);
      for (const part of req.body) if (!socket.destroyed) socket.write(part);
      if (req.end === true) {
        const halfClose = (): void => {
          ended = true;
          if (!socket.destroyed) socket.end();
        };
        if (req.endAfterMs !== undefined && req.endAfterMs > 0) endTimer = setTimeout(halfClose, req.endAfterMs);
        else halfClose();
      }
    });
  });
}

// ---------------------------------------------------------------------------
// The child: the routes as the daemon serves them
// ---------------------------------------------------------------------------

/** Where the child serves. */
export interface FuzzServerUrls {
  /** `startDaemon`: routerDds on a real registrar (policy `window`). */
  registrar: number;
  /** createDdsRouter(defaultStoresSink(…)) mounted as the daemon mounts its routes. */
  plain: number;
}

/** What the child reports on `measure`. */
export interface FuzzServerMeasure {
  /** `process.memoryUsage().heapUsed` after two forced GCs, bytes. */
  heapUsed: number;
  rss: number;
  /** `Object.prototype.x`, `Array.prototype.x`… added since the child started (should be none). */
  prototypeChanges: string[];
  /** Whether `({}).polluted` (or a few other names a fuzz body tries) resolves through the prototype. */
  inherited: string[];
  /** The registrar's top-level state and counters. */
  registrar: { state: string; status: string; requests: number; registrations: number; callbacks: number; probes: number };
  /** Whether the plain store holds a secret (its length only). */
  plainSecretLength: number | null;
}

type ChildMessage =
  | { type: 'ready'; ports: FuzzServerUrls }
  | { type: 'measure'; measure: FuzzServerMeasure }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

/** The names a fuzz body tries to plant on `Object.prototype`. */
export const POLLUTION_NAMES = ['polluted', 'isAdmin', 'accepted', 'ok', 'toJSON', 'then', 'status'] as const;

/** A running child server. */
export interface FuzzServerChild {
  readonly ports: FuzzServerUrls;
  readonly proc: ChildProcess;
  /** The JSON log file the child's logger writes. */
  readonly logFile: string;
  readonly alive: boolean;
  stdout(): string;
  stderr(): string;
  measure(): Promise<FuzzServerMeasure>;
  /** Ask the child to stop its servers and exit; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/** Environment variables that carry the settings to the child. */
const ENV = {
  logFile: 'FUZZ_LOG_FILE',
  dataDir: 'FUZZ_DATA_DIR',
  regSecret: 'FUZZ_REG_SECRET',
  privhex: 'FUZZ_PRIVHEX',
} as const;

const THIS_FILE = fileURLToPath(import.meta.url);

/**
 * Spawn this file as the fuzz server (with `--expose-gc`) and wait until it
 * listens. The credentials travel in the environment, never on the command line.
 */
export async function startFuzzServerChild(options: {
  dir: string;
  regSecret: string;
  privhex: string;
  readyTimeoutMs?: number;
}): Promise<FuzzServerChild> {
  const logFile = path.join(options.dir, 'fuzz-server.log.jsonl');
  const dataDir = path.join(options.dir, 'data');
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
  Object.assign(env, {
    [ENV.logFile]: logFile,
    [ENV.dataDir]: dataDir,
    [ENV.regSecret]: options.regSecret,
    [ENV.privhex]: options.privhex,
  });
  const proc = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', THIS_FILE], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  let err = '';
  let alive = true;
  proc.stdout?.setEncoding('utf8');
  proc.stderr?.setEncoding('utf8');
  proc.stdout?.on('data', (c: string) => (out += c));
  proc.stderr?.on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => {
      alive = false;
      resolve(code);
    });
  });
  proc.once('error', () => undefined);

  const waitMessage = <T extends ChildMessage['type']>(type: T, timeoutMs: number): Promise<Extract<ChildMessage, { type: T }>> =>
    nextMessage(
      proc,
      (raw) => {
        const msg = raw as ChildMessage;
        if (msg.type === 'error') throw new Error(`fuzz server: ${msg.message}`);
        return msg.type === type ? (msg as Extract<ChildMessage, { type: T }>) : undefined;
      },
      { what: `fuzz server, waiting for "${type}"`, timeoutMs, context: () => `stderr: ${err.slice(-3000)}` },
    );

  let ready: Extract<ChildMessage, { type: 'ready' }>;
  try {
    ready = await waitMessage('ready', options.readyTimeoutMs ?? 30_000);
  } catch (error) {
    proc.kill('SIGKILL');
    throw error;
  }
  return {
    ports: ready.ports,
    proc,
    logFile,
    get alive() {
      return alive;
    },
    stdout: () => out,
    stderr: () => err,
    async measure() {
      const reply = waitMessage('measure', 30_000);
      proc.send({ cmd: 'measure' });
      return (await reply).measure;
    },
    async stop() {
      if (!alive) return proc.exitCode;
      proc.send({ cmd: 'stop' });
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The child's side: start both servers, then serve IPC commands until `stop`. */
async function runFuzzServer(): Promise<void> {
  const send = (msg: ChildMessage): void => {
    process.send?.(msg);
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  const protoNames = (): Record<string, string[]> => ({
    Object: Object.getOwnPropertyNames(Object.prototype),
    Array: Object.getOwnPropertyNames(Array.prototype),
    Function: Object.getOwnPropertyNames(Function.prototype),
    String: Object.getOwnPropertyNames(String.prototype),
  });
  const protoBefore = protoNames();

  const [{ createRoutesServer }, { createLogger }, { NodeSecretStore }, { StateStore }, { createDdsRouter, defaultStoresSink }, { startDaemon }, { CleanupStack }, { startFakeDds }] =
    await Promise.all([
      import('../../src/cli/serve.js'),
      import('../../src/log.js'),
      import('../../src/persist.js'),
      import('../../src/state/index.js'),
      import('../../src/http.js'),
      import('../../src/cli/daemon.js'),
      import('../support/cleanup.js'),
      import('../support/fake-dds.js'),
    ]);

  const logFile = process.env[ENV.logFile] ?? path.join(os.tmpdir(), `fuzz-server-${process.pid}.log`);
  const dataDir = process.env[ENV.dataDir] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-data-'));
  fs.mkdirSync(dataDir, { recursive: true });
  const fd = fs.openSync(logFile, 'a');
  const logger = createLogger({ destination: fd, level: 'debug' });

  // The local DDS: answers every registration 200 after a short delay, so the
  // registrar keeps passing through `registering` (callbacks admitted) and
  // `registered` with its window open and closed.
  const cleanup = new CleanupStack();
  const dds = await startFakeDds(cleanup, { responder: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}', delayMs: 150 }) });

  const registrarSecrets = new NodeSecretStore({ logger });
  const daemon = await startDaemon({
    settings: {
      ddsBaseUrl: dds.url,
      nodeUrl: 'http://127.0.0.1:9/fuzzed-node',
      nodeVersion: '1.2.3',
      regSecret: process.env[ENV.regSecret] ?? 'reg-secret-missing',
      secp256k1Privhex: process.env[ENV.privhex] ?? '',
      capabilities: ['/fuzz/v1'],
      registerIntervalSecs: 3,
      maxRetry: -1,
      requestTimeoutSecs: 5,
      lockStaleSecs: 10,
      callbackPolicy: 'window',
      callbackWindowSecs: 1,
      dataDir: path.join(dataDir, 'registrar'),
      host: '127.0.0.1',
      port: 0,
    },
    logger,
    registrarOptions: { secrets: registrarSecrets },
  });

  // The plain routes (the crate's behaviour), mounted exactly as the daemon mounts its own.
  const plainSecrets = new NodeSecretStore({ logger });
  const plainDir = path.join(dataDir, 'plain');
  fs.mkdirSync(plainDir, { recursive: true });
  const { server: plain } = createRoutesServer(async () =>
    createDdsRouter(defaultStoresSink({ secrets: plainSecrets, state: new StateStore({ dir: plainDir, logger }), logger }), { logger }),
  );
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));

  const measure = async (): Promise<FuzzServerMeasure> => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await immediate();
    }
    const after = protoNames();
    const prototypeChanges: string[] = [];
    for (const [name, before] of Object.entries(protoBefore)) {
      const now = after[name] ?? [];
      for (const key of now) if (!before.includes(key)) prototypeChanges.push(`${name}.prototype.${key}`);
      for (const key of before) if (!now.includes(key)) prototypeChanges.push(`${name}.prototype.${key} (removed)`);
    }
    const probe: Record<string, unknown> = {};
    const inherited = POLLUTION_NAMES.filter((name) => name in probe);
    const snap = daemon.registrar.getSnapshot();
    const value = snap.value;
    const memory = process.memoryUsage();
    return {
      heapUsed: memory.heapUsed,
      rss: memory.rss,
      prototypeChanges,
      inherited,
      registrar: {
        state: typeof value === 'string' ? value : (Object.keys(value)[0] ?? ''),
        status: snap.status,
        requests: snap.context.requests,
        registrations: snap.context.registrations,
        callbacks: snap.context.callbacks,
        probes: snap.context.probes,
      },
      plainSecretLength: plainSecrets.read()?.length ?? null,
    };
  };

  const stop = async (): Promise<void> => {
    await daemon.stop();
    await new Promise<void>((resolve) => {
      plain.close(() => resolve());
      plain.closeAllConnections();
    });
    await cleanup.run();
    fs.closeSync(fd);
  };

  process.on('message', (raw: unknown) => {
    const cmd = (raw as { cmd?: unknown }).cmd;
    if (cmd === 'measure') {
      measure().then(
        (m) => send({ type: 'measure', measure: m }),
        (error: unknown) => send({ type: 'error', message: error instanceof Error ? error.name : 'measure failed' }),
      );
    } else if (cmd === 'stop') {
      stop().then(
        () => {
          send({ type: 'stopped' });
          process.disconnect?.();
          process.exitCode = 0;
        },
        () => {
          process.exitCode = 1;
          process.disconnect?.();
        },
      );
    }
  });
  process.on('disconnect', () => {
    // The parent went away without `stop`: do not linger.
    setTimeout(() => process.exit(process.exitCode ?? 0), 3_000).unref();
  });

  send({
    type: 'ready',
    ports: { registrar: Number(new URL(daemon.url).port), plain: (plain.address() as AddressInfo).port },
  });
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === THIS_FILE;
if (isMain) {
  runFuzzServer().catch((error: unknown) => {
    process.send?.({ type: 'error', message: error instanceof Error ? `${error.name}: ${error.message}` : 'start failed' });
    process.exitCode = 1;
  });
}
