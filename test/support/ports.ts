/**
 * TCP ports for tests: one nothing listens on, or one something holds.
 */
import net from 'node:net';
import { onCleanup, type Cleanup } from './cleanup.js';

function listenOnAnyPort(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** A port on `host` that nothing listens on (it was free a moment ago: listened on, then closed). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  const port = await listenOnAnyPort(server, host);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A port on `host` held until cleanup by a server that drops every connection. */
export async function occupyPort(t: Cleanup, host = '127.0.0.1'): Promise<number> {
  const server = net.createServer((socket) => socket.destroy());
  const port = await listenOnAnyPort(server, host);
  onCleanup(t, () => new Promise<void>((resolve) => server.close(() => resolve())));
  return port;
}
