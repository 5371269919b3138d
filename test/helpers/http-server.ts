/**
 * The bookkeeping the tests' own HTTP servers share (the test DDS of
 * dds-server.ts, the fault DDS of the reliability suite): record requests and
 * wait for a number of them, run delayed answers on timers that are cleared
 * at close, count connections, and close hard (every connection destroyed,
 * hanging ones included).
 */
import type http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

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
  /** Resolves with the first `n` requests once that many were recorded; rejects after `timeoutMs`. */
  waitForRequests(n: number, timeoutMs: number): Promise<R[]>;
  /** Listen on `host`:`port` (0: any free port). */
  listen(port: number, host: string): Promise<AddressInfo>;
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
    waitForRequests(n, timeoutMs) {
      if (requests.length >= n) return Promise.resolve(requests.slice(0, n));
      return new Promise((resolve, reject) => {
        const wake = (): void => {
          if (requests.length < n) return;
          cleanup();
          resolve(requests.slice(0, n));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${label}: expected ${n} request(s) within ${timeoutMs} ms, got ${requests.length}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        waiters.add(wake);
      });
    },
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close() {
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
