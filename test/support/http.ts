/**
 * The tests' own HTTP servers: read a request's body, listen on 127.0.0.1
 * and close hard at cleanup ({@link listen}), and the bookkeeping of the fake
 * DDS ({@link serverKit}: record requests and wait for them, timers cleared
 * at close, connections counted and destroyed).
 */
import type http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { onCleanup, type Cleanup } from './cleanup.js';

/** A request body, read to its end. */
export interface ReadBody {
  /** The body as UTF-8 text. */
  rawBody: string;
  /** `rawBody` parsed as JSON, or `undefined` when it is not JSON. */
  body: unknown;
}

/** `text` parsed as JSON, or `undefined` when it does not parse. */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Read `req`'s body to its end. Rejects when the request fails; stays pending
 * when the client goes away before the end (nothing then is recorded).
 */
export function readBody(req: IncomingMessage): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', reject);
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      resolve({ rawBody, body: parseJsonOrUndefined(rawBody) });
    });
  });
}

/** Where a server listens. */
export interface Listening {
  /** `http://<host>:<port>` (IPv6 hosts in brackets), no trailing slash. */
  url: string;
  port: number;
}

function urlOf(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

function listenOn(server: http.Server, port: number, host: string): Promise<Listening> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      resolve({ url: urlOf(address), port: address.port });
    });
  });
}

/** Close `server` and every connection it has, idle or not. */
export function closeHard(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

/** Listen on `host` (default 127.0.0.1), any free port unless `port`; closed hard at cleanup. */
export async function listen(t: Cleanup, server: http.Server, host = '127.0.0.1', port = 0): Promise<Listening> {
  const listening = await listenOn(server, port, host);
  onCleanup(t, () => (server.listening ? closeHard(server) : undefined));
  return listening;
}

/** A server's recorder, timers and connections; see {@link serverKit}. */
export interface ServerKit<R> {
  /** Every request {@link record}ed, in order. */
  readonly requests: R[];
  /** Whether {@link close} was called. */
  readonly closed: boolean;
  /** Open connections right now. */
  readonly openConnections: number;
  /** Connections accepted so far. */
  readonly acceptedConnections: number;
  /** Add a request to {@link requests} and wake the waiters. */
  record(req: R): void;
  /** Run `fn` in `ms`, unless the server is closed first. */
  later(fn: () => void, ms: number): void;
  /** Resolves with what `pick` finds in the requests once it finds something; rejects after `timeoutMs`, naming `what`. */
  waitFor<T>(pick: (requests: readonly R[]) => T | undefined, timeoutMs: number, what: string): Promise<T>;
  /** Resolves with the first `n` requests once that many were recorded; rejects after `timeoutMs`. */
  waitForRequests(n: number, timeoutMs: number): Promise<R[]>;
  /** Listen on `host`:`port` (0: any free port). */
  listen(port: number, host: string): Promise<Listening>;
  /** Stop listening, clear the timers and destroy every connection. */
  close(): Promise<void>;
}

/**
 * Track `server`'s connections (a client error destroys its socket) and give
 * it a request recorder; `label` names the server in messages.
 */
export function serverKit<R>(server: http.Server, label: string): ServerKit<R> {
  const requests: R[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();
  let accepted = 0;
  let closed = false;

  server.on('connection', (socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  const waitFor = <T>(pick: (requests: readonly R[]) => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const wake = (): void => {
        const found = pick(requests);
        if (found === undefined) return;
        cleanup();
        resolve(found);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${label}: ${what} within ${timeoutMs} ms, got ${requests.length} request(s)`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(wake);
      };
      waiters.add(wake);
      wake();
    });

  return {
    requests,
    get closed() {
      return closed;
    },
    get openConnections() {
      return sockets.size;
    },
    get acceptedConnections() {
      return accepted;
    },
    record(req) {
      requests.push(req);
      for (const wake of [...waiters]) wake();
    },
    later(fn, ms) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fn();
      }, ms);
      timers.add(timer);
    },
    waitFor,
    waitForRequests(n, timeoutMs) {
      return waitFor((all) => (all.length >= n ? all.slice(0, n) : undefined), timeoutMs, `expected ${n} request(s)`);
    },
    listen: (port, host) => listenOn(server, port, host),
    async close() {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const stopped = closeHard(server);
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
