/**
 * The plain-text answers of src/http-text.ts, byte for byte on a raw socket
 * (only the Date header masked): the DDS routes as the daemon serves them,
 * and the inspector relay. Both answer through the one `sendText`.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { closeServer, createRoutesServer } from '../../src/cli/serve.js';
import { clip } from '../../src/http-text.js';
import { createDdsRouter, type DdsSink } from '../../src/http.js';
import { startInspectorRelay } from '../../src/inspector-relay.js';

/** Send `request` raw on a new connection; the whole answer, its Date header masked. */
function exchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1').replace(/\r\nDate: [^\r]*\r\n/, '\r\nDate: X\r\n')));
    socket.on('error', reject);
  });
}

const refusing: DdsSink = {
  onCallback: (p) => (p.id === 'boom' ? Promise.reject(new Error('disk')) : { accepted: false, reason: 'nope' }),
  onHealthProbe: () => true,
};

function post(body: string, type = 'application/json'): string {
  return `POST /internal/v1/registrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

function answer(head: string, body: string): string {
  return `${head}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nDate: X\r\nConnection: close\r\n\r\n${body}`;
}

async function routesPort(t: TestContext): Promise<number> {
  const routes = createRoutesServer(() => Promise.resolve(createDdsRouter(refusing)));
  await new Promise<void>((resolve) => routes.server.listen(0, '127.0.0.1', resolve));
  t.after(() => closeServer(routes.server));
  return (routes.server.address() as AddressInfo).port;
}

describe('sendText', () => {
  it('the DDS routes as the daemon serves them: the same bytes as express res.type(text/plain).send gave', async (t) => {
    const port = await routesPort(t);
    const cases: Array<[string, string]> = [
      ['PUT /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', answer('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD', 'method not allowed')],
      [post('{}', 'text/plain'), answer('HTTP/1.1 415 Unsupported Media Type', 'expected Content-Type: application/json')],
      [post('{}'), answer('HTTP/1.1 422 Unprocessable Entity', 'invalid body: id must be a string')],
      [post('{"id":"a","secret":"s"}'), answer('HTTP/1.1 403 Forbidden', 'nope')],
      [post('{"id":"boom","secret":"s"}'), answer('HTTP/1.1 409 Conflict', 'persist failed')],
      [post('{bad'), answer('HTTP/1.1 400 Bad Request', 'invalid JSON')],
    ];
    for (const [request, expected] of cases) assert.equal(await exchange(port, request), expected, request.split('\r\n', 1)[0]);
    // HEAD: the length of what a GET would carry, no body.
    const head = await exchange(port, 'HEAD /internal/v1/registrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(head, answer('HTTP/1.1 405 Method Not Allowed\r\nAllow: POST', 'method not allowed').replace(/method not allowed$/, ''));
  });

  it('the inspector relay: the same headers, its texts end with a newline', async (t) => {
    const relay = await startInspectorRelay({ port: 0 });
    t.after(() => relay.close());
    const host = `127.0.0.1:${relay.port}`;
    assert.equal(await exchange(relay.port, 'GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n'), answer('HTTP/1.1 421 Misdirected Request', 'unknown host\n'));
    assert.equal(await exchange(relay.port, `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), answer('HTTP/1.1 404 Not Found', 'not found\n'));
    assert.equal(
      await exchange(relay.port, `POST / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
      answer('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD', 'method not allowed\n'),
    );
  });
});

describe('clip', () => {
  it('keeps text up to max, cuts longer text with an ellipsis', () => {
    assert.equal(clip('abc', 3), 'abc');
    assert.equal(clip('abcd', 3), 'abc…');
    assert.equal(clip('', 0), '');
  });
});
