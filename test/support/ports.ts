/**
 * TCP ports for tests: one nothing listens on, or one something holds; the ones a process listens on.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
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

/**
 * The TCP ports process `pid` listens on (IPv4 and IPv6), read from /proc:
 * its socket inodes matched with the LISTEN rows of /proc/net/tcp{,6}.
 * `undefined` where /proc cannot tell (not Linux, or another user's process).
 */
export function listeningTcpPorts(pid: number): number[] | undefined {
  let inodes: Set<string>;
  try {
    inodes = new Set(
      readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
        try {
          return [/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? ''];
        } catch {
          return []; // closed meanwhile
        }
      }),
    );
  } catch {
    return undefined;
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // no IPv6 in this kernel
    }
    for (const row of text.split('\n').slice(1)) {
      const cols = row.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; column 10 is the inode.
      if (cols[3] === '0A' && inodes.has(cols[9] ?? '')) ports.add(parseInt(cols[1]?.split(':')[1] ?? '', 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}
