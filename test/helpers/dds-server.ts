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
import { readBody } from './http-body.js';
import { serverKit } from './http-server.js';

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
  let inFlight = 0;

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

    void readBody(req).then(({ rawBody, body }) => {
      recorded = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        rawBody,
        body,
        receivedAt,
      };
      if (done) recorded.finishedAt = Date.now();
      kit.record(recorded);

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
        if (res.destroyed || kit.closed) return;
        res.writeHead(a.status, a.headers ?? {});
        res.end(a.body ?? '');
      };
      if (answer.delayMs !== undefined && answer.delayMs > 0) {
        const a = answer;
        kit.later(() => send(a), answer.delayMs);
      } else {
        send(answer);
      }
    }, () => undefined);
  });
  const kit = serverKit<RecordedRequest>(server, 'test DDS server');
  const address = await kit.listen(0, host);
  const hostForUrl = address.family === 'IPv6' || host.includes(':') ? `[${address.address}]` : address.address;

  return {
    url: `http://${hostForUrl}:${address.port}`,
    requests: kit.requests,
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
      return kit.waitForRequests(n, timeoutMs);
    },
    close: () => kit.close(),
  };
}
