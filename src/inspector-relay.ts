/**
 * inspector-relay — a loopback-only stand-in for `@statelyai/inspect/server`:
 * an HTTP server that serves the live view (`/`, self-contained: works with
 * no internet) and the Stately bridge page (`/stately`: the Stately
 * inspector in an iframe) and, on the same port, a WebSocket relay between
 * the app's inspector (`createSanitizingInspector({ url: relay.wsUrl })`)
 * and those pages.
 *
 * Unlike the original it listens on a loopback address only, reports a busy
 * port as an {@link InspectorRelayError} instead of crashing, never opens a
 * browser, refuses WebSocket upgrades from foreign web pages (`Origin`) and
 * foreign host names (`Host`, against DNS rebinding), limits message sizes,
 * and closes without leaving a handle behind.
 *
 * ```ts
 * const relay = await startInspectorRelay({ port: 8090 });
 * const inspector = createSanitizingInspector({ url: relay.wsUrl });
 * const registrar = createRegistrar(config, { inspect: inspector });
 * console.log(`open ${relay.httpUrl}`);
 * // …
 * inspector.stop();
 * await relay.close();
 * ```
 *
 * @module
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { createBoundedServer } from './bounded-server.js';
import { CodedError } from './errors.js';
import { clip, sendText } from './http-text.js';
import type { HtmlPage } from './inspector-pages/html.js';
import { livePage, STATELY_PAGE_PATH } from './inspector-pages/live-page.js';
import { statelyBridgePage } from './inspector-pages/stately-bridge.js';
import { silentLogger, type Logger } from './log.js';
import { SETTINGS } from './settings/table.js';

/** The default port (the settings table's). */
export const DEFAULT_INSPECTOR_PORT: number = SETTINGS.inspectPort.default;
/** The default host: IPv4 loopback. */
export const DEFAULT_INSPECTOR_HOST = '127.0.0.1';
/** The Stately inspector page shown in the bridge page's iframe (`/stately`). */
export const DEFAULT_INSPECTOR_URL = 'https://stately.ai/inspect';
/** How many messages a newly connected client is replayed (the original's 200). */
export const DEFAULT_INSPECTOR_BUFFER_SIZE = 200;
/** The largest WebSocket message accepted, in bytes (1 MiB). A larger one closes its connection (1009). */
export const MAX_INSPECTOR_MESSAGE_BYTES = 1024 * 1024;

/** The most bytes the replay buffer holds; the oldest messages go first. */
const MAX_BUFFER_BYTES = 16 * 1024 * 1024;
/** A client with more than this queued and unsent is too slow to keep. */
const MAX_CLIENT_BACKLOG_BYTES = 32 * 1024 * 1024;
/** How many root actors' `@xstate.actor` messages are kept beside the replay buffer. */
const MAX_KEPT_ROOT_ACTORS = 4;
/** The longest `Origin`/`Host` value quoted in a log line. */
const LOG_TEXT_MAX = 200;

/** Options of {@link startInspectorRelay}. */
export interface InspectorRelayOptions {
  /**
   * Where to listen (default `127.0.0.1`). Only loopback addresses are
   * accepted: `127.0.0.0/8`, `::1` and `localhost` (which means `127.0.0.1`).
   * Anything else rejects with code `ENOTLOOPBACK`.
   */
  host?: string;
  /** The port (default {@link DEFAULT_INSPECTOR_PORT}); `0` picks a free one. */
  port?: number;
  /** The inspector page framed by the bridge page (default {@link DEFAULT_INSPECTOR_URL}). */
  inspectorUrl?: string;
  /** How many messages are kept for clients that connect later (default 200; 0 keeps none). */
  bufferSize?: number;
  /** Where the relay logs (default: nowhere). */
  logger?: Logger;
  /** The most connections open at once, WebSocket clients included (default {@link DEFAULT_RELAY_MAX_CONNECTIONS}; see src/bounded-server.ts). */
  maxConnections?: number;
}

/** A few browsers and the app's inspector: the relay's default connection cap. */
export const DEFAULT_RELAY_MAX_CONNECTIONS = 32;

/** A running relay. */
export interface InspectorRelay {
  /** The port it listens on (the chosen one when started with port 0). */
  readonly port: number;
  /** The live view to open in a browser, e.g. `http://127.0.0.1:8090` (the Stately bridge page is at `/stately`). */
  readonly httpUrl: string;
  /** Where the app's inspector connects, e.g. `ws://127.0.0.1:8090`. */
  readonly wsUrl: string;
  /**
   * Disconnect every client and stop listening. Resolves once the server is
   * closed; no handle is left behind. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/** Why the relay could not start. */
export type InspectorRelayErrorCode =
  /** The port is taken (another relay, or any other program). */
  | 'EADDRINUSE'
  /** Not allowed to listen on that port (e.g. below 1024 without privileges). */
  | 'EACCES'
  /** The host is a loopback address this machine does not have (e.g. `::1` without IPv6). */
  | 'EADDRNOTAVAIL'
  /** The host is not a loopback address. */
  | 'ENOTLOOPBACK'
  /** An invalid option (port, inspector URL, buffer size). */
  | 'EINVAL'
  /** Any other failure to listen. */
  | 'ELISTEN';

/** The relay could not start. The message says what to change; it never wraps a library error. */
export class InspectorRelayError extends CodedError<InspectorRelayErrorCode> {
  override readonly name = 'InspectorRelayError';
}

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * The address to listen on for `host`, or `undefined` when it is not a
 * loopback address. `localhost` becomes `127.0.0.1` (it is not resolved:
 * some systems map it to `::1` first); IPv6 may be written in brackets.
 */
export function loopbackAddress(host: string): string | undefined {
  const h = host.trim().toLowerCase();
  if (h === 'localhost') return DEFAULT_INSPECTOR_HOST;
  const bare = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
  const family = net.isIP(bare);
  if (family === 4) return loopback.check(bare, 'ipv4') ? bare : undefined;
  if (family === 6) return loopback.check(bare, 'ipv6') ? bare : undefined;
  return undefined;
}

/** The pages by path, and which `Host`/`Origin` values belong to the relay. */
interface RelaySite {
  readonly pages: ReadonlyMap<string, HtmlPage>;
  readonly hosts: ReadonlySet<string>;
  readonly origins: ReadonlySet<string>;
}

/**
 * The session of a root actor's `@xstate.actor` message (one without a
 * parent: the machine's definition a page needs to draw it), else undefined.
 * Only a message that names the type is parsed.
 */
function rootActorSession(msg: string): string | undefined {
  if (!msg.includes('"@xstate.actor"')) return undefined;
  try {
    const m = JSON.parse(msg) as { type?: unknown; parentId?: unknown; sessionId?: unknown };
    return m.type === '@xstate.actor' && (m.parentId === undefined || m.parentId === null) && typeof m.sessionId === 'string'
      ? m.sessionId
      : undefined;
  } catch {
    return undefined;
  }
}

/** Refuse an upgrade with a plain HTTP answer, then drop the socket. */
function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      '\r\n' +
      body,
  );
}

function listenError(code: string | undefined, host: string, port: number): InspectorRelayError {
  const where = `inspector port ${port} on ${host}`;
  switch (code) {
    case 'EADDRINUSE':
      return new InspectorRelayError('EADDRINUSE', `${where} is already in use`);
    case 'EACCES':
      return new InspectorRelayError('EACCES', `${where}: permission denied`);
    case 'EADDRNOTAVAIL':
      return new InspectorRelayError('EADDRNOTAVAIL', `${where}: address ${host} is not available on this machine`);
    default:
      return new InspectorRelayError('ELISTEN', `${where}: could not listen (${code ?? 'unknown error'})`);
  }
}

function parseOptions(options: InspectorRelayOptions): { address: string; port: number; inspectorUrl: URL; bufferSize: number } {
  const host = options.host ?? DEFAULT_INSPECTOR_HOST;
  if (typeof host !== 'string') throw new InspectorRelayError('EINVAL', 'inspector host must be a string');
  const address = loopbackAddress(host);
  if (address === undefined) {
    throw new InspectorRelayError(
      'ENOTLOOPBACK',
      `inspector host "${clip(host, LOG_TEXT_MAX)}" is not a loopback address: the inspector shows the node's live state, so it listens on 127.0.0.1, ::1 or localhost only`,
    );
  }
  const port = options.port ?? DEFAULT_INSPECTOR_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InspectorRelayError('EINVAL', `inspector port must be an integer from 0 to 65535, got ${String(port)}`);
  }
  let inspectorUrl: URL;
  try {
    inspectorUrl = new URL(options.inspectorUrl ?? DEFAULT_INSPECTOR_URL);
  } catch {
    throw new InspectorRelayError('EINVAL', 'inspector URL is not a valid URL');
  }
  if (inspectorUrl.protocol !== 'https:' && inspectorUrl.protocol !== 'http:') {
    throw new InspectorRelayError('EINVAL', 'inspector URL must be an http(s) URL');
  }
  const bufferSize = options.bufferSize ?? DEFAULT_INSPECTOR_BUFFER_SIZE;
  if (!Number.isSafeInteger(bufferSize) || bufferSize < 0) {
    throw new InspectorRelayError('EINVAL', `inspector buffer size must be a non-negative integer, got ${String(bufferSize)}`);
  }
  return { address, port, inspectorUrl, bufferSize };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

/**
 * Start the relay. Resolves once it listens; rejects with an
 * {@link InspectorRelayError} (never crashes the process) when the host is not
 * a loopback address, an option is invalid, or the port cannot be used.
 *
 * - `GET /` (and `HEAD`) serves the live view, `GET /stately` the Stately
 *   bridge page; other paths answer 404, other methods 405.
 * - A WebSocket upgrade on `/` is accepted when it has no `Origin` (a Node
 *   client such as the app's inspector) or the relay's own origin (its
 *   pages), and a `Host` naming the relay; other upgrades are answered 403.
 * - Every message a client sends is kept (the last `bufferSize`) and
 *   forwarded to every other open client; a client that connects is first
 *   sent the kept messages. A root actor's `@xstate.actor` message (the
 *   machine's definition) is kept apart, however many messages follow it,
 *   and sent first. Messages above 1 MiB close their connection.
 */
export async function startInspectorRelay(options: InspectorRelayOptions = {}): Promise<InspectorRelay> {
  const { address, port: requestedPort, inspectorUrl, bufferSize } = parseOptions(options);
  const logger = options.logger ?? silentLogger;

  const sockets = new Set<Socket>();
  const buffer: string[] = [];
  let bufferBytes = 0;
  /** Each root actor's `@xstate.actor` message by session, oldest first: replayed before the buffer. */
  const rootActors = new Map<string, string>();
  // Known once listening (the pages name the actual port).
  const ready: { site?: RelaySite } = {};
  let closing: Promise<void> | undefined;

  const server = createBoundedServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    const site = ready.site;
    if (site === undefined) {
      sendText(res, 503, 'starting\n');
      return;
    }
    if (!site.hosts.has((req.headers.host ?? '').toLowerCase())) {
      logger.warn({ event: 'inspector.relay.refused', reason: 'host', host: clip(req.headers.host ?? '', LOG_TEXT_MAX) });
      sendText(res, 421, 'unknown host\n');
      return;
    }
    const page = path === undefined ? undefined : site.pages.get(path);
    if (page === undefined) {
      sendText(res, 404, 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    res.writeHead(200, { ...page.headers, 'Content-Length': String(Buffer.byteLength(page.html)) });
    res.end(req.method === 'HEAD' ? undefined : page.html);
  }, { maxConnections: options.maxConnections ?? DEFAULT_RELAY_MAX_CONNECTIONS });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_INSPECTOR_MESSAGE_BYTES, clientTracking: true });

  const keep = (msg: string): void => {
    if (bufferSize === 0) return;
    const root = rootActorSession(msg);
    if (root !== undefined) {
      rootActors.delete(root);
      rootActors.set(root, msg);
      for (const old of rootActors.keys()) {
        if (rootActors.size <= MAX_KEPT_ROOT_ACTORS) break;
        rootActors.delete(old);
      }
      return;
    }
    buffer.push(msg);
    bufferBytes += Buffer.byteLength(msg);
    while (buffer.length > bufferSize || (bufferBytes > MAX_BUFFER_BYTES && buffer.length > 0)) {
      bufferBytes -= Buffer.byteLength(buffer.shift() ?? '');
    }
  };

  const deliver = (client: WebSocket, msg: string): void => {
    if (client.readyState !== WebSocket.OPEN) return;
    if (client.bufferedAmount > MAX_CLIENT_BACKLOG_BYTES) {
      logger.warn({ event: 'inspector.relay.client.dropped', reason: 'too slow' });
      client.terminate();
      return;
    }
    client.send(msg);
  };

  wss.on('connection', (ws: WebSocket) => {
    logger.debug({ event: 'inspector.relay.client.connected', clients: wss.clients.size });
    ws.on('error', () => {
      // A protocol error or an oversized message: ws closes the connection itself.
      logger.debug({ event: 'inspector.relay.client.error' });
    });
    ws.on('close', (code: number) => {
      logger.debug({ event: 'inspector.relay.client.closed', code, clients: wss.clients.size });
    });
    for (const msg of rootActors.values()) deliver(ws, msg);
    for (const msg of buffer) deliver(ws, msg);
    ws.on('message', (data: RawData) => {
      const msg = rawText(data);
      keep(msg);
      for (const client of wss.clients) if (client !== ws) deliver(client, msg);
    });
  });

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const site = ready.site;
    if (site === undefined || closing !== undefined) {
      refuseUpgrade(socket, 503, 'not accepting connections');
      return;
    }
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== '/') {
      refuseUpgrade(socket, 404, 'not found');
      return;
    }
    const host = (req.headers.host ?? '').toLowerCase();
    if (!site.hosts.has(host)) {
      logger.warn({ event: 'inspector.relay.refused', reason: 'host', host: clip(host, LOG_TEXT_MAX) });
      refuseUpgrade(socket, 403, 'unknown host');
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !site.origins.has(origin.toLowerCase())) {
      logger.warn({ event: 'inspector.relay.refused', reason: 'origin', origin: clip(origin, LOG_TEXT_MAX) });
      refuseUpgrade(socket, 403, 'origin not allowed');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      reject(listenError(err.code, address, requestedPort));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: address, port: requestedPort, exclusive: true });
  }).catch((err: unknown) => {
    wss.close();
    throw err;
  });
  // From now on a server error is logged, never thrown.
  server.on('error', (err: NodeJS.ErrnoException) => logger.error({ event: 'inspector.relay.error', code: err.code ?? null }));

  const { port } = server.address() as AddressInfo;
  const hostForUrl = net.isIPv6(address) ? `[${address}]` : address;
  const httpUrl = `http://${hostForUrl}:${port}`;
  const wsUrl = `ws://${hostForUrl}:${port}`;
  const hosts = [`${hostForUrl}:${port}`, `localhost:${port}`];
  ready.site = {
    pages: new Map([
      ['/', livePage(wsUrl)],
      [STATELY_PAGE_PATH, statelyBridgePage(wsUrl, inspectorUrl)],
    ]),
    hosts: new Set(hosts),
    origins: new Set(hosts.map((h) => `http://${h}`)),
  };
  logger.info({ event: 'inspector.relay.listening', url: httpUrl, ws_url: wsUrl, inspector: inspectorUrl.origin });

  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.close(() => {
        logger.info({ event: 'inspector.relay.closed', port });
        resolve();
      });
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      buffer.length = 0;
      bufferBytes = 0;
      rootActors.clear();
    });
    return closing;
  };

  return { port, httpUrl, wsUrl, close };
}
