/**
 * A real local HTTP server standing in for DDS in tests: it records every
 * request and answers through a replaceable {@link Responder}.
 *
 * ```ts
 * const dds = await startTestDdsServer();
 * t.after(() => dds.close());
 * dds.setResponder(() => ({ status: 409, body: 'already online' }));
 * ```
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request the server received (recorded once its body has been read). */
export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  /** `rawBody` parsed as JSON, or undefined when it is not JSON. */
  body: unknown;
  /** `Date.now()` when the request arrived. */
  receivedAt: number;
  /** `Date.now()` when the answer was sent or the connection closed. */
  finishedAt?: number;
}

/** An answer to send. */
export interface ResponderAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering. */
  delayMs?: number;
}

/**
 * Decides the answer: a {@link ResponderAnswer}, `'hang'` (never answer; the
 * request stays open until the client gives up or the server closes) or
 * `'destroy'` (drop the connection without an answer).
 */
export type Responder = (req: RecordedRequest) => ResponderAnswer | 'hang' | 'destroy';

/** A running test DDS server. */
export interface TestDdsServer {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  /** Every request received, in arrival order of their complete bodies. */
  requests: RecordedRequest[];
  /** The most registration requests (`…/internal/v1/nodes/register`) that were in flight at once. */
  maxConcurrent: number;
  setResponder(r: Responder): void;
  /** Resolves with the first `n` requests once that many have been received (default timeout 10 s). */
  waitForRequests(n: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Stop listening and destroy every open connection, hanging ones included. */
  close(): Promise<void>;
}

/** The default answer: 200 with `{}`. */
export const okResponder: Responder = () => ({
  status: 200,
  headers: { 'content-type': 'application/json' },
  body: '{}',
});

const REGISTER_PATH_SUFFIX = '/internal/v1/nodes/register';

/** Start a test DDS server on `host` (default 127.0.0.1), on a free port. */
export async function startTestDdsServer(
  options: { responder?: Responder; host?: string } = {},
): Promise<TestDdsServer> {
  const host = options.host ?? '127.0.0.1';
  let responder: Responder = options.responder ?? okResponder;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();
  let inFlight = 0;
  let closed = false;

  const state = { maxConcurrent: 0 };

  const server = http.createServer((req, res) => {
    const receivedAt = Date.now();
    const isRegister = (req.url ?? '').split('?')[0]?.endsWith(REGISTER_PATH_SUFFIX) ?? false;
    let done = false;
    let recorded: RecordedRequest | undefined;
    if (isRegister) {
      inFlight += 1;
      state.maxConcurrent = Math.max(state.maxConcurrent, inFlight);
    }
    const finish = (): void => {
      if (done) return;
      done = true;
      if (isRegister) inFlight -= 1;
      if (recorded) recorded.finishedAt = Date.now();
    };
    res.on('finish', finish);
    res.on('close', finish);
    req.on('error', () => undefined);
    res.on('error', () => undefined);

    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = undefined;
      }
      recorded = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        rawBody,
        body,
        receivedAt,
      };
      if (done) recorded.finishedAt = Date.now();
      requests.push(recorded);
      for (const wake of [...waiters]) wake();

      let answer: ReturnType<Responder>;
      try {
        answer = responder(recorded);
      } catch {
        answer = { status: 500, body: 'test responder threw' };
      }
      if (answer === 'hang') return;
      if (answer === 'destroy') {
        req.socket.destroy();
        return;
      }
      const send = (a: ResponderAnswer): void => {
        if (res.destroyed || closed) return;
        res.writeHead(a.status, a.headers ?? {});
        res.end(a.body ?? '');
      };
      if (answer.delayMs !== undefined && answer.delayMs > 0) {
        const a = answer;
        const timer = setTimeout(() => {
          timers.delete(timer);
          send(a);
        }, answer.delayMs);
        timers.add(timer);
      } else {
        send(answer);
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' || host.includes(':') ? `[${address.address}]` : address.address;

  return {
    url: `http://${hostForUrl}:${address.port}`,
    requests,
    get maxConcurrent() {
      return state.maxConcurrent;
    },
    set maxConcurrent(value: number) {
      state.maxConcurrent = value;
    },
    setResponder(r: Responder) {
      responder = r;
    },
    waitForRequests(n: number, timeoutMs = 10_000): Promise<RecordedRequest[]> {
      if (requests.length >= n) return Promise.resolve(requests.slice(0, n));
      return new Promise((resolve, reject) => {
        const wake = (): void => {
          if (requests.length < n) return;
          cleanup();
          resolve(requests.slice(0, n));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`test DDS server: expected ${n} request(s) within ${timeoutMs} ms, got ${requests.length}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        waiters.add(wake);
      });
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
