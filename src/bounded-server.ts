/**
 * bounded-server — the one HTTP server constructor of every server the
 * package runs (the DDS routes, the inspector relay, the metrics endpoint):
 * small headers, tight header and request timeouts, and a connection cap
 * that keeps room for DDS.
 *
 * The cap is what keeps a flood of slow connections (a socket opened, half
 * a header sent, never finished) from using every file descriptor: past
 * the descriptor limit the kernel's accept fails and DDS's probe is reset.
 * At the cap a newcomer is not refused: the oldest connection that is not in
 * the middle of a request and has sent something (half a request head, or an
 * idle keep-alive connection) is closed to make room — or one that has sent
 * nothing for a second. A prober that
 * sends its request at once (DDS) is therefore served however many slow
 * connections there are. Only when none can go and the descriptors but a
 * reserve are in use is the newcomer closed.
 */
import { readFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';

/** Options of {@link createBoundedServer}. */
export interface BoundedServerOptions {
  /** The most connections open at once (default {@link DEFAULT_MAX_CONNECTIONS}), lowered to fit the descriptor limit. */
  maxConnections?: number;
  /** Time to send a request's headers, ms (default 5 s). */
  headersTimeoutMs?: number;
  /** Time to send a whole request, ms (default 10 s: a callback's body is at most 64 KiB). */
  requestTimeoutMs?: number;
}

/** The routes' default cap. */
export const DEFAULT_MAX_CONNECTIONS = 256;
/** Descriptors kept for everything else (files, the lock, DDS requests, the other servers). */
const RESERVED_DESCRIPTORS = 64;
/** A new connection's time to send its first bytes before it may be closed to make room (its headers timeout still applies). */
const GRACE_MS = 1000;
/** How often Node checks the header and request timeouts (its default is 30 s, which would triple a 5 s timeout). */
const TIMEOUT_CHECK_MS = 1000;

/** The soft limit of open file descriptors (`RLIMIT_NOFILE`), from /proc on Linux; undefined elsewhere. */
export function fileDescriptorLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line?.[1] === undefined || line[1] === 'unlimited' ? undefined : Number(line[1]);
  } catch {
    return undefined;
  }
}

/**
 * `requested`, lowered so that one server at its cap leaves half of the
 * descriptors (less a reserve) for the rest of the process; at least 8.
 */
export function connectionCap(requested: number, limit: number | undefined = fileDescriptorLimit()): number {
  if (limit === undefined) return requested;
  return Math.max(8, Math.min(requested, Math.floor((limit - RESERVED_DESCRIPTORS) / 2)));
}

/** The most connections ever open at once (when none can be closed): the descriptors but the reserve; four times the cap when the limit is unknown. */
function hardCeiling(cap: number, limit: number | undefined = fileDescriptorLimit()): number {
  return limit === undefined ? cap * 4 : Math.max(cap, limit - RESERVED_DESCRIPTORS);
}

/** A server's connection accounting: what {@link createBoundedServer} adds to a Node server. */
export interface BoundedServer extends Server {
  /** Its cap, after {@link connectionCap}. */
  readonly connectionCap: number;
  /** Idle or slow connections closed to make room, and newcomers closed at once at the ceiling. */
  readonly evictions: { readonly idle: number; readonly refused: number };
}

/**
 * An HTTP server with the bounds every server of the package keeps: headers
 * at most 16 KiB sent within {@link BoundedServerOptions.headersTimeoutMs},
 * a whole request within {@link BoundedServerOptions.requestTimeoutMs}, idle
 * keep-alive connections closed after 5 s, and the connection cap described
 * above.
 */
export function createBoundedServer(listener: RequestListener, options: BoundedServerOptions = {}): BoundedServer {
  const { headersTimeoutMs = 5_000, requestTimeoutMs = 10_000 } = options;
  const cap = connectionCap(options.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  const server = createServer(
    {
      maxHeaderSize: 16 * 1024,
      headersTimeout: headersTimeoutMs,
      requestTimeout: Math.max(requestTimeoutMs, headersTimeoutMs),
      connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, headersTimeoutMs),
    },
    listener,
  );
  server.keepAliveTimeout = 5_000;
  const evictions = { idle: 0, refused: 0 };
  /** Past this, a newcomer is closed at once: the descriptors must never run out. */
  const ceiling = hardCeiling(cap);
  /** Open connections, oldest first: when accepted, and whether a request (or an upgrade) is in progress on it. */
  const open = new Map<Socket, { at: number; busy: boolean }>();
  /**
   * The connection to close to make room: the oldest that is not in a request and has sent
   * something (half a request head, or an idle keep-alive connection); else the oldest that has
   * sent nothing for GRACE_MS. Never one accepted just now whose bytes have not been read yet: a
   * prober's complete request head may be waiting in the kernel.
   */
  const victim = (now: number): Socket | undefined => {
    let silent: Socket | undefined;
    for (const [socket, state] of open) {
      if (state.busy) continue;
      if (socket.bytesRead > 0) return socket;
      if (silent === undefined && now - state.at >= GRACE_MS) silent = socket;
    }
    return silent;
  };
  server.on('connection', (socket: Socket) => {
    if (open.size >= cap) {
      const old = victim(Date.now());
      if (old !== undefined) {
        evictions.idle += 1;
        open.delete(old);
        old.destroy();
      } else if (open.size >= ceiling) {
        evictions.refused += 1;
        socket.destroy();
        return;
      }
    }
    open.set(socket, { at: Date.now(), busy: false });
    socket.once('close', () => open.delete(socket));
  });
  server.on('request', (req, res) => {
    const state = open.get(req.socket);
    if (state === undefined) return;
    state.busy = true;
    // Evictable again once answered (an idle keep-alive connection keeps its age: it goes first).
    res.once('close', () => (state.busy = false));
  });
  // A WebSocket (the inspector relay's clients) is a request that lasts.
  server.on('upgrade', (_req, socket: Socket) => {
    const state = open.get(socket);
    if (state !== undefined) state.busy = true;
  });
  return Object.assign(server, { connectionCap: cap, evictions });
}
