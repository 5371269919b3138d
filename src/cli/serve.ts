/**
 * Small server helpers for the daemon: listen with clear errors, close
 * without waiting for idle keep-alive connections, check a data directory,
 * the routes' server (every server's bounds: src/bounded-server.ts).
 */
import { accessSync, constants, statSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Handler } from 'express';
import type { AddressInfo } from 'node:net';
import { createBoundedServer, type BoundedServer } from '../bounded-server.js';
import { SETTINGS } from '../settings/table.js';
import { makeDirSync } from '../state/atomic-file.js';
import { CliError, EXIT } from './settings.js';

/** The settings a listen error names: the port's for a busy or forbidden port, the host's for a missing address. */
export interface ListenNames {
  host: string;
  port: string;
}

/** A listen error as one line naming the setting at fault. */
export function listenErrorLine(code: string | undefined, host: string, port: number, names: ListenNames): string {
  const where = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${names.port}: ${where} is already in use`;
    case 'EACCES':
      return `${names.port}: not allowed to listen on ${where}`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${names.host}: address ${host} is not available on this machine`;
    default:
      return `${names.port}: cannot listen on ${where} (${code ?? 'error'})`;
  }
}

/** Listen on host:port; a failure becomes a {@link CliError} (exit 3) naming the setting. */
export function listen(server: Server, host: string, port: number, names: ListenNames): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      reject(new CliError(EXIT.cannotStart, listenErrorLine(error.code, host, port, names)));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** Close a server: stop accepting, drop idle keep-alive sockets, wait for the rest briefly. */
export function closeServer(server: Server, graceMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Make sure the data directory exists and is writable; otherwise exit 3 naming the setting. */
export function ensureDataDir(dir: string): void {
  try {
    makeDirSync(dir);
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new CliError(EXIT.cannotStart, `${SETTINGS.dataDir.env}: ${dir} is not usable (${code})`);
  }
}

/** The daemon's plain-text 404. */
export function notFound(res: ServerResponse): void {
  if (res.headersSent) return;
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end('not found');
}

/** The daemon's HTTP server and the loading of its routes. */
export interface RoutesServer {
  readonly server: BoundedServer;
  /**
   * Load express and the routes now (idempotent). Requests that arrive
   * before call it themselves and wait for it.
   */
  load(): Promise<void>;
}

type AppHandle = (req: IncomingMessage, res: ServerResponse, done: () => void) => void;

/**
 * The HTTP server the daemon serves the DDS routes with: express without
 * `X-Powered-By`, a plain-text 404 for everything else, the bounds of
 * {@link createBoundedServer} (at most `maxConnections` at once).
 *
 * It listens at once, but express and the routes (`loadRoutes`) are loaded
 * on the first request or {@link RoutesServer.load}, whichever comes first:
 * a registrar's first registration request does not wait for them (see
 * docs/benchmarks.md, "Cold start"). A request that arrives earlier waits.
 */
export function createRoutesServer(loadRoutes: () => Promise<Handler>, maxConnections?: number): RoutesServer {
  let handle: AppHandle | undefined;
  let loading: Promise<AppHandle> | undefined;
  const load = (): Promise<AppHandle> => {
    loading ??= (async () => {
      const [{ default: express }, routes] = await Promise.all([import('express'), loadRoutes()]);
      const app = express();
      app.disable('x-powered-by');
      app.set('etag', false); // DDS never revalidates: no hash of every answer
      app.use(routes);
      app.use((_req, res) => notFound(res));
      handle = app as unknown as AppHandle;
      return handle;
    })();
    return loading;
  };
  // express skips every middleware for a request target without a path (`GET http://`) and would
  // answer with its own HTML page: end such requests with the same plain-text 404.
  const serve = (h: AppHandle, req: IncomingMessage, res: ServerResponse): void => h(req, res, () => notFound(res));
  const server = createBoundedServer((req, res) => {
    if (handle !== undefined) {
      serve(handle, req, res);
      return;
    }
    load().then(
      (h) => serve(h, req, res),
      () => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('internal error');
      },
    );
  }, maxConnections === undefined ? {} : { maxConnections });
  return { server, load: () => load().then(() => undefined) };
}
