/**
 * Small server helpers for the daemon: listen with clear errors, close
 * without waiting for idle keep-alive connections, check a data directory.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CliError, EXIT } from './settings.js';

/** Listen on host:port; a busy or forbidden port becomes a {@link CliError} (exit 3) naming the settings. */
export function listen(server: Server, host: string, port: number, what: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      const where = `${host}:${port}`;
      if (error.code === 'EADDRINUSE') reject(new CliError(EXIT.cannotStart, `${what}: ${where} is already in use`));
      else if (error.code === 'EACCES') reject(new CliError(EXIT.cannotStart, `${what}: not allowed to listen on ${where}`));
      else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') {
        reject(new CliError(EXIT.cannotStart, `${what}: address ${host} is not available on this machine`));
      } else reject(new CliError(EXIT.cannotStart, `${what}: cannot listen on ${where} (${error.code ?? 'error'})`));
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

/** Make sure the data directory exists and is writable; otherwise exit 3 naming `DATA_DIR`. */
export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new CliError(EXIT.cannotStart, `DATA_DIR: ${dir} is not usable (${code})`);
  }
}
