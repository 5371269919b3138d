/**
 * Helpers of the fault matrix (`faults.test.ts`): a local DDS that can
 * misbehave in every way the matrix needs (refuse, hang, trickle a body,
 * reset, redirect, answer garbage) and counts its server-side connections,
 * the node's own callback server (`routerDds`), and small process-level
 * probes (crashes, timers).
 *
 * Scale, figures and the secret scan come from `common.ts`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import express from 'express';
import type { Registrar } from '../../src/registrar.js';
import { routerDds } from '../../src/router-dds.js';
import { readBody } from '../helpers/http-body.js';
import { serverKit } from '../helpers/http-server.js';

// ---------------------------------------------------------------------------
// The misbehaving DDS
// ---------------------------------------------------------------------------

/** One request the fault DDS received (recorded once its body has been read). */
export interface FaultRequest {
  method: string;
  path: string;
  rawBody: string;
  /** `rawBody` as JSON, or undefined. */
  body: unknown;
  /** `Date.now()` when the request's body had arrived. */
  receivedAt: number;
  /** `Date.now()` when the answer ended or the connection closed. */
  finishedAt?: number;
}

/** A complete answer, optionally delayed. */
export interface PlainAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  delayMs?: number;
}

/** Headers at once, then a body that trickles: `chunk` every `everyMs` for `forMs`, then the end. */
export interface TrickleAnswer {
  status: number;
  headers?: Record<string, string>;
  trickle: { chunk: string; everyMs: number; forMs: number };
}

/** Bytes written straight to the socket (not necessarily HTTP), then the connection ends. */
export interface RawAnswer {
  raw: Buffer | string;
}

/** What a {@link FaultResponder} decides: an answer, `'hang'` (never answer) or `'destroy'` (reset the connection). */
export type FaultAnswer = PlainAnswer | TrickleAnswer | RawAnswer | 'hang' | 'destroy';

/** Decides each answer; may be async (e.g. call the node back first). */
export type FaultResponder = (req: FaultRequest) => FaultAnswer | Promise<FaultAnswer>;

/** A running fault DDS. */
export interface FaultDds {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Every request, in order of arrival of its complete body. */
  readonly requests: FaultRequest[];
  /** Open server-side connections right now. */
  readonly openConnections: number;
  /** Connections accepted so far. */
  readonly acceptedConnections: number;
  setResponder(r: FaultResponder): void;
  /** Resolve once `n` requests have arrived (rejects after `timeoutMs`). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /** Stop listening, end every connection and every pending timer. */
  close(): Promise<void>;
}

/** 200 with `{}`. */
export const ok: FaultResponder = () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}' });

/** Start a fault DDS on 127.0.0.1 (`port` 0 = any free port). */
export async function startFaultDds(options: { port?: number; responder?: FaultResponder } = {}): Promise<FaultDds> {
  let responder: FaultResponder = options.responder ?? ok;
  const later = (fn: () => void, ms: number): void => kit.later(fn, ms);

  const server = http.createServer((req, res) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    void readBody(req).then(({ rawBody, body }) => {
      const recorded: FaultRequest = { method: req.method ?? '', path: req.url ?? '', rawBody, body, receivedAt: Date.now() };
      const finish = (): void => {
        recorded.finishedAt ??= Date.now();
      };
      res.on('finish', finish);
      res.on('close', finish);
      kit.record(recorded);

      void (async () => {
        let answer: FaultAnswer;
        try {
          answer = await responder(recorded);
        } catch {
          answer = { status: 500, body: 'test responder threw' };
        }
        if (kit.closed || res.destroyed) return;
        if (answer === 'hang') return;
        if (answer === 'destroy') {
          req.socket.destroy();
          return;
        }
        if ('raw' in answer) {
          req.socket.end(answer.raw);
          return;
        }
        if ('trickle' in answer) {
          const { chunk, everyMs, forMs } = answer.trickle;
          res.writeHead(answer.status, answer.headers ?? {});
          res.flushHeaders();
          const until = Date.now() + forMs;
          const step = (): void => {
            if (kit.closed || res.destroyed) return;
            if (Date.now() >= until) {
              res.end();
              return;
            }
            res.write(chunk);
            later(step, everyMs);
          };
          step();
          return;
        }
        const a = answer;
        const send = (): void => {
          if (kit.closed || res.destroyed) return;
          res.writeHead(a.status, a.headers ?? {});
          res.end(a.body ?? '');
        };
        if (a.delayMs !== undefined && a.delayMs > 0) later(send, a.delayMs);
        else send();
      })();
    }, () => undefined);
  });
  const kit = serverKit<FaultRequest>(server, 'fault DDS');
  const { port } = await kit.listen(options.port ?? 0, '127.0.0.1');

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: kit.requests,
    get openConnections() {
      return kit.openConnections;
    },
    get acceptedConnections() {
      return kit.acceptedConnections;
    },
    setResponder(r) {
      responder = r;
    },
    waitForRequests(n, timeoutMs = 10_000) {
      return kit.waitForRequests(n, timeoutMs).then(() => undefined);
    },
    close: () => kit.close(),
  };
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------
// The node's callback server, and DDS calling it back
// ---------------------------------------------------------------------------

/** `routerDds(registrar)` on a real express server on 127.0.0.1; the registrar is attached later. */
export interface NodeServer {
  url: string;
  /** Mount the routes of `registrar` (until then every request is answered 503). */
  attach(registrar: Registrar): void;
  close(): Promise<void>;
}

/** Start the node's server before the registrar exists (its URL is part of the registrar's config). */
export async function startNodeServer(): Promise<NodeServer> {
  let router: express.Router | undefined;
  const app = express();
  app.use((req, res, next) => {
    if (router === undefined) {
      res.status(503).type('text/plain').send('not ready');
      return;
    }
    router(req, res, next);
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    attach(registrar) {
      router = routerDds(registrar);
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** One callback DDS made to the node, and the node's answer. */
export interface CallbackRecord {
  secret: string;
  status: number;
  answer: string;
}

/**
 * POST `{id, secret, organization_id}` to `<nodeUrl>/internal/v1/registrations`
 * as DDS does, on a fresh connection (no agent: nothing stays open).
 */
export function callNodeBack(nodeUrl: string, payload: { id: string; secret: string; organization_id: string }): Promise<{ status: number; answer: string }> {
  const target = new URL('internal/v1/registrations', nodeUrl.endsWith('/') ? nodeUrl : `${nodeUrl}/`);
  const data = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const req = http.request(
      target,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), connection: 'close' },
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, answer: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('callback timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

// ---------------------------------------------------------------------------
// Process-level probes
// ---------------------------------------------------------------------------

/** Ref'd timers alive right now (`Timeout` entries of `process.getActiveResourcesInfo()`). */
export function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Collects `uncaughtException` and `unhandledRejection` while installed. */
export interface CrashWatch {
  /** What was caught, as `kind: name` (no messages: they could hold anything). */
  readonly caught: string[];
  uninstall(): void;
}

/** Listen for crashes of the process (call `uninstall` when done). */
export function watchCrashes(): CrashWatch {
  const caught: string[] = [];
  const describe = (kind: string, err: unknown): string =>
    `${kind}: ${err instanceof Error ? `${err.name} ${(err as { code?: unknown }).code ?? ''}` : typeof err}`;
  const onException = (err: unknown): void => {
    caught.push(describe('uncaughtException', err));
  };
  const onRejection = (err: unknown): void => {
    caught.push(describe('unhandledRejection', err));
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return {
    caught,
    uninstall() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    },
  };
}

// ---------------------------------------------------------------------------
// A full disk: a tiny tmpfs (needs root and permission to mount)
// ---------------------------------------------------------------------------

/** Mount a tmpfs of `sizeKiB` on `dir` (which must exist). Returns false when mounting is not permitted here. */
export function mountTinyTmpfs(dir: string, sizeKiB = 64): boolean {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir], { stdio: 'ignore' });
  return r.status === 0;
}

/** Unmount `dir` (lazily when busy). Never throws. */
export function unmount(dir: string): void {
  const r = spawnSync('umount', [dir], { stdio: 'ignore' });
  if (r.status !== 0) spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
}

/** Whether this machine lets the tests mount a tmpfs (probed once, mounted and unmounted at once). */
export function canMountTmpfs(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'pnr-mount-probe-'));
  try {
    if (!mountTinyTmpfs(probe, 16)) return false;
    unmount(probe);
    return true;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/** Fill the file system of `dir` with `<dir>/<name>` until it is full (ENOSPC). Returns the bytes written. */
export function fillDisk(dir: string, name = 'filler'): number {
  const fd = fs.openSync(path.join(dir, name), 'w');
  const chunk = Buffer.alloc(4096, 0x61);
  let written = 0;
  try {
    for (;;) {
      try {
        written += fs.writeSync(fd, chunk);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'ENOSPC') break;
        throw err;
      }
    }
    // Partial blocks: fill byte by byte until nothing more fits.
    for (;;) {
      try {
        written += fs.writeSync(fd, chunk, 0, 1);
      } catch {
        break;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return written;
}
