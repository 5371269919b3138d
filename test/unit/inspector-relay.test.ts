import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import vm from 'node:vm';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { waitFor } from 'xstate';
import { generateSecretKey } from '../../src/crypto.js';
import { createSanitizingInspector } from '../../src/inspect.js';
import { TIMERS_MESSAGE_TYPE, type RunningTimer } from '../../src/inspect-stream.js';
import { registrarMachine } from '../../machines/registrar.js';
import {
  InspectorRelayError,
  MAX_INSPECTOR_MESSAGE_BYTES,
  loopbackAddress,
  startInspectorRelay,
  type InspectorRelay,
  type InspectorRelayOptions,
} from '../../src/inspector-relay.js';
import { MemoryLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import { REDACTED } from '../../src/redact.js';
import { createRegistrar } from '../../src/registrar.js';
import { assertNoSecrets, LeakScan, startFakeDds, startNodeServer, tempDir, testConfig, waitUntil } from '../support/index.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RELAY_MODULE = pathToFileURL(fileURLToPath(new URL('../../src/inspector-relay.ts', import.meta.url))).href;

// ---------------------------------------------------------------------------
// helpers

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A plain HTTP request (node:http, so the Host header can be set). */
function request(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every client opened by a test, terminated after the file. */
const clients = new Set<WebSocket>();
after(() => {
  for (const c of clients) c.terminate();
});

/** An open client and what it has received since it connected. */
interface Client {
  ws: WebSocket;
  messages: string[];
  /** Resolves with the first `n` messages once that many have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<string[]>;
}

type ConnectResult = ({ ok: true } & Client) | { ok: false; status: number; body: string };

/**
 * Open a WebSocket; resolves with the client, or with the HTTP status of a
 * refused upgrade. Messages are collected from the start (the relay replays
 * its buffer right after the handshake, possibly before `open` is seen).
 */
function connect(url: string, options: { origin?: string; headers?: Record<string, string> } = {}): Promise<ConnectResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      ...(options.origin === undefined ? {} : { origin: options.origin }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      handshakeTimeout: 10_000,
    });
    clients.add(ws);
    const messages: string[] = [];
    const waiters = new Set<() => void>();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      assert.equal(isBinary, false, 'the relay forwards text frames');
      messages.push(data.toString('utf8'));
      for (const w of [...waiters]) w();
    });
    const waitFor = (n: number, timeoutMs = 10_000): Promise<string[]> =>
      new Promise((res, rej) => {
        const check = (): void => {
          if (messages.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          res(messages.slice(0, n));
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`expected ${n} message(s) within ${timeoutMs} ms, got ${messages.length}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    ws.once('open', () => resolve({ ok: true, ws, messages, waitFor }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        ws.terminate();
        resolve({ ok: false, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    ws.once('error', reject);
  });
}

async function open(url: string, options: { origin?: string } = {}): Promise<Client> {
  const r = await connect(url, options);
  if (!r.ok) throw new Error(`upgrade refused: ${r.status} ${r.body}`);
  return r;
}

function closed(ws: WebSocket, timeoutMs = 10_000): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
    ws.once('close', (code: number) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

async function startRelay(t: { after(fn: () => unknown): void }, options: InspectorRelayOptions = {}): Promise<InspectorRelay> {
  const relay = await startInspectorRelay({ port: 0, ...options });
  t.after(() => relay.close());
  return relay;
}

async function rejection(promise: Promise<unknown>): Promise<InspectorRelayError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof InspectorRelayError, `expected an InspectorRelayError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

// ---------------------------------------------------------------------------

/** A page's CSP directives, and the check that its one script and one style are allowed by their hashes and nothing else runs. */
function assertStrictPage(res: Answer): Map<string, readonly string[]> {
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/html; charset=utf-8$/);
  const csp = String(res.headers['content-security-policy']);
  const directives = new Map(csp.split(';').map((d) => {
    const [name = '', ...values] = d.trim().split(/\s+/);
    return [name, values] as const;
  }));
  assert.deepEqual(directives.get('default-src'), ["'none'"]);
  assert.deepEqual(directives.get('frame-ancestors'), ["'none'"]);
  const script = /<script>([\s\S]*?)<\/script>/.exec(res.body)?.[1];
  const style = /<style>([\s\S]*?)<\/style>/.exec(res.body)?.[1];
  assert.ok(script !== undefined && style !== undefined);
  const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
  assert.deepEqual(directives.get('script-src'), [hash(script)]);
  assert.deepEqual(directives.get('style-src'), [hash(style)]);
  assert.equal((res.body.match(/<script/g) ?? []).length, 1);
  assert.equal(res.headers['x-frame-options'], 'DENY');
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  assert.equal(res.headers['cache-control'], 'no-store');
  return directives;
}

describe('startInspectorRelay: the pages', { timeout: 60_000 }, () => {
  it('serves the live view on GET /: self-contained, connecting to its own ws URL, under a strict CSP', async (t) => {
    const relay = await startRelay(t);
    assert.ok(relay.port > 0);
    assert.equal(relay.httpUrl, `http://127.0.0.1:${relay.port}`);
    assert.equal(relay.wsUrl, `ws://127.0.0.1:${relay.port}`);

    const res = await request(`${relay.httpUrl}/`);
    const directives = assertStrictPage(res);
    assert.ok(res.body.includes(`"wsUrl":"ws://127.0.0.1:${relay.port}"`), 'connects to the relay itself');
    assert.ok(res.body.includes('"timersType":"@posemesh.timers"'));
    assert.deepEqual(directives.get('connect-src'), ["'self'", relay.wsUrl]);
    // Nothing from elsewhere: no frame, no image, no font, no other script, style or link.
    assert.equal(directives.get('frame-src'), undefined);
    assert.ok(!/<(iframe|img|link|object|embed)\b/i.test(res.body));
    assert.ok(!/\bsrc=|@import|url\(/i.test(res.body), 'no external resource');
    assert.ok(!/https?:\/\//.test(res.body), 'no URL to anywhere');
    assert.ok(res.body.includes('<a id="stately" href="/stately"'), 'the Stately inspector one click away');
    // The page script parses (it is a string here, run by the browser tests).
    const script = /<script>([\s\S]*?)<\/script>/.exec(res.body)?.[1] ?? '';
    assert.doesNotThrow(() => new vm.Script(script));
  });

  it('serves the Stately bridge page on GET /stately, framing stately.ai, forwarding the inspector\'s messages only', async (t) => {
    const relay = await startRelay(t);
    const res = await request(`${relay.httpUrl}/stately`);
    const directives = assertStrictPage(res);
    assert.ok(res.body.includes(`new WebSocket("ws://127.0.0.1:${relay.port}")`), 'connects to the relay itself');
    assert.ok(!res.body.includes('localhost:8080'), 'not the original port');
    assert.ok(res.body.includes('<iframe id="inspector" title="Stately Inspector" src="https://stately.ai/inspect"></iframe>'));
    assert.ok(res.body.includes("'@statelyai.connected'"), 'forwards after the inspector says it is connected');
    assert.ok(res.body.includes("data.type.startsWith('@xstate.')"), 'not the live view\'s own messages');
    assert.deepEqual(directives.get('frame-src'), ['https://stately.ai']);
    assert.deepEqual(directives.get('connect-src'), ["'self'", relay.wsUrl]);
  });

  it('frames a custom inspector URL, escaped, and allows only its origin', async (t) => {
    const relay = await startRelay(t, { inspectorUrl: 'https://inspector.example:8443/path?a=1&b="x"' });
    const res = await request(`${relay.httpUrl}/stately`);
    assert.equal(res.status, 200);
    assert.ok(res.body.includes('src="https://inspector.example:8443/path?a=1&amp;b=%22x%22"'), res.body);
    assert.match(String(res.headers['content-security-policy']), /frame-src https:\/\/inspector\.example:8443;/);
    assert.ok(res.body.includes('const inspectorOrigin = "https://inspector.example:8443";'));
  });

  it('answers 404 for other paths, 405 for other methods, 421 for a foreign Host', async (t) => {
    const relay = await startRelay(t);
    for (const path of ['/favicon.ico', '/index.html', '/ws', '//', '/stately/', '/stately/x']) {
      const res = await request(`${relay.httpUrl}${path}`);
      assert.equal(res.status, 404, path);
      assert.ok(!res.body.includes('<iframe') && !res.body.includes('<script'));
    }
    for (const path of ['/', '/stately']) {
      const post = await request(`${relay.httpUrl}${path}`, { method: 'POST' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.allow, 'GET, HEAD');
      const head = await request(`${relay.httpUrl}${path}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
    }
    // DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own host name.
    const rebound = await request(`${relay.httpUrl}/`, { headers: { host: `evil.example:${relay.port}` } });
    assert.equal(rebound.status, 421);
    const viaLocalhost = await request(`${relay.httpUrl}/`, { headers: { host: `localhost:${relay.port}` } });
    assert.equal(viaLocalhost.status, 200);
  });
});

describe('startInspectorRelay: WebSocket admission', { timeout: 60_000 }, () => {
  it('accepts Node clients (no Origin) and the bridge page (its own origin)', async (t) => {
    const relay = await startRelay(t);
    const node = await open(relay.wsUrl);
    const page = await open(relay.wsUrl, { origin: relay.httpUrl });
    const pageViaLocalhost = await open(relay.wsUrl, { origin: `http://localhost:${relay.port}` });
    for (const c of [node, page, pageViaLocalhost]) assert.equal(c.ws.readyState, WebSocket.OPEN);
  });

  it('refuses a foreign Origin with 403 and logs it', async (t) => {
    const logger = new MemoryLogger();
    const relay = await startRelay(t, { logger });
    const app = await open(relay.wsUrl);
    app.ws.send('{"type":"@xstate.snapshot","live":"state"}');
    const origins = [
      'https://evil.example',
      `http://127.0.0.1:${relay.port + 1 > 65535 ? 1 : relay.port + 1}`,
      `https://127.0.0.1:${relay.port}`,
      'null',
    ];
    for (const origin of origins) {
      const r = await connect(relay.wsUrl, { origin });
      assert.equal(r.ok, false, origin);
      assert.equal(r.ok ? 0 : r.status, 403, origin);
    }
    const refused = logger.events('inspector.relay.refused');
    assert.equal(refused.length, origins.length);
    assert.equal(refused[0]?.reason, 'origin');
    assert.equal(refused[0]?.origin, 'https://evil.example');
  });

  it('refuses a foreign Host (DNS rebinding) and other paths', async (t) => {
    const relay = await startRelay(t);
    const rebound = await connect(relay.wsUrl, { headers: { host: `evil.example:${relay.port}` } });
    assert.deepEqual(rebound.ok ? 'open' : rebound.status, 403);
    const otherPath = await connect(`${relay.wsUrl}/other`);
    assert.deepEqual(otherPath.ok ? 'open' : otherPath.status, 404);
  });
});

describe('startInspectorRelay: relaying', { timeout: 60_000 }, () => {
  it('forwards each message to every other client, never back to its sender', async (t) => {
    const relay = await startRelay(t);
    const app = await open(relay.wsUrl);
    const b1 = await open(relay.wsUrl, { origin: relay.httpUrl });
    const b2 = await open(relay.wsUrl);
    app.ws.send('{"n":1}');
    app.ws.send('{"n":2}');
    assert.deepEqual(await b1.waitFor(2), ['{"n":1}', '{"n":2}']);
    assert.deepEqual(await b2.waitFor(2), ['{"n":1}', '{"n":2}']);
    // A round trip through another client proves the app's own messages were not echoed.
    const b3 = await open(relay.wsUrl);
    b3.ws.send('{"from":"b3"}');
    assert.deepEqual(await app.waitFor(1), ['{"from":"b3"}']);
    assert.deepEqual(app.messages, ['{"from":"b3"}']);
  });

  it('replays the last bufferSize messages to a client that connects later', async (t) => {
    const relay = await startRelay(t, { bufferSize: 3 });
    const app = await open(relay.wsUrl);
    const watcher = await open(relay.wsUrl);
    for (let i = 1; i <= 5; i++) app.ws.send(`{"n":${i}}`);
    await watcher.waitFor(5); // all five went through the relay
    const late = await open(relay.wsUrl, { origin: relay.httpUrl });
    assert.deepEqual(await late.waitFor(3), ['{"n":3}', '{"n":4}', '{"n":5}']);
    app.ws.send('{"n":6}');
    assert.deepEqual(await late.waitFor(4), ['{"n":3}', '{"n":4}', '{"n":5}', '{"n":6}']);
  });

  it("keeps each root actor's @xstate.actor message however many follow, and replays it first", async (t) => {
    const relay = await startRelay(t, { bufferSize: 3 });
    const app = await open(relay.wsUrl);
    const watcher = await open(relay.wsUrl);
    const root = JSON.stringify({ _version: '0.7.2', definition: '{"id":"m"}', sessionId: 'x:0', type: '@xstate.actor' });
    const child = JSON.stringify({ parentId: 'x:0', sessionId: 'x:1', type: '@xstate.actor' });
    const notAnActor = '{"text":"\\"@xstate.actor\\"","type":"@xstate.event"}';
    app.ws.send(root);
    app.ws.send(child);
    app.ws.send(notAnActor);
    for (let i = 1; i <= 5; i++) app.ws.send(`{"n":${i}}`);
    await watcher.waitFor(8);
    const late = await open(relay.wsUrl, { origin: relay.httpUrl });
    assert.deepEqual(await late.waitFor(4), [root, '{"n":3}', '{"n":4}', '{"n":5}']);
    // A new actor message of the same session replaces the kept one.
    const again = root.replace('"m"', '"m2"');
    app.ws.send(again);
    await watcher.waitFor(9);
    const later = await open(relay.wsUrl);
    assert.deepEqual(await later.waitFor(4), [again, '{"n":3}', '{"n":4}', '{"n":5}']);
  });

  it('keeps nothing with bufferSize 0', async (t) => {
    const relay = await startRelay(t, { bufferSize: 0 });
    const app = await open(relay.wsUrl);
    const watcher = await open(relay.wsUrl);
    app.ws.send('{"n":1}');
    await watcher.waitFor(1);
    const late = await open(relay.wsUrl);
    app.ws.send('{"n":2}');
    assert.deepEqual(await late.waitFor(1), ['{"n":2}']);
  });

  it('closes a connection that sends a message above 1 MiB (1009) and keeps serving the others', async (t) => {
    const relay = await startRelay(t);
    const big = await open(relay.wsUrl);
    const watcher = await open(relay.wsUrl);
    const gone = closed(big.ws);
    big.ws.send('x'.repeat(MAX_INSPECTOR_MESSAGE_BYTES + 1));
    assert.equal(await gone, 1009);
    const app = await open(relay.wsUrl);
    app.ws.send('{"ok":true}');
    assert.deepEqual(await watcher.waitFor(1), ['{"ok":true}']);
    assert.ok(!watcher.messages.some((m) => m.startsWith('xxx')), 'the oversized message was not relayed');
  });
});

describe('startInspectorRelay: start-up errors', { timeout: 60_000 }, () => {
  it('rejects a busy port with EADDRINUSE and a clear message, without crashing the running relay', async (t) => {
    const first = await startRelay(t);
    const err = await rejection(startInspectorRelay({ port: first.port }));
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.message, `inspector port ${first.port} on 127.0.0.1 is already in use`);
    assert.equal(err.name, 'InspectorRelayError');
    // The first one still works.
    assert.equal((await request(`${first.httpUrl}/`)).status, 200);
  });

  it('refuses non-loopback hosts with ENOTLOOPBACK', async () => {
    for (const host of ['0.0.0.0', '::', '[::]', '192.168.1.10', '10.0.0.1', '128.0.0.1', 'example.com', '', 'localhost.evil.example']) {
      const err = await rejection(startInspectorRelay({ host, port: 0 }));
      assert.equal(err.code, 'ENOTLOOPBACK', host);
      assert.match(err.message, /not a loopback address/);
    }
  });

  it('rejects invalid options with EINVAL', async () => {
    for (const options of [{ port: -1 }, { port: 65536 }, { port: 1.5 }, { inspectorUrl: 'not a url' }, { inspectorUrl: 'javascript:alert(1)' }, { bufferSize: -1 }]) {
      const err = await rejection(startInspectorRelay(options));
      assert.equal(err.code, 'EINVAL', JSON.stringify(options));
    }
  });

  it('accepts loopback spellings: localhost means 127.0.0.1', async (t) => {
    assert.equal(loopbackAddress('localhost'), '127.0.0.1');
    assert.equal(loopbackAddress('LOCALHOST'), '127.0.0.1');
    assert.equal(loopbackAddress('127.0.0.1'), '127.0.0.1');
    assert.equal(loopbackAddress('127.1.2.3'), '127.1.2.3');
    assert.equal(loopbackAddress('::1'), '::1');
    assert.equal(loopbackAddress('[::1]'), '::1');
    assert.equal(loopbackAddress('0.0.0.0'), undefined);
    assert.equal(loopbackAddress('::'), undefined);
    const relay = await startRelay(t, { host: 'localhost' });
    assert.equal(relay.httpUrl, `http://127.0.0.1:${relay.port}`);
    assert.equal((await request(`${relay.httpUrl}/`)).status, 200);
  });
});

describe('startInspectorRelay: close()', { timeout: 60_000 }, () => {
  it('disconnects clients, stops listening, and is idempotent', async () => {
    const logger = new MemoryLogger();
    const relay = await startInspectorRelay({ port: 0, logger });
    const { ws } = await open(relay.wsUrl);
    const gone = closed(ws);
    const first = relay.close();
    assert.equal(relay.close(), first, 'the same promise');
    await first;
    await gone;
    await relay.close();
    await assert.rejects(request(`${relay.httpUrl}/`), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
    assert.equal(logger.events('inspector.relay.closed').length, 1);
  });

  it('leaves no handle behind: a process that used it exits by itself', async () => {
    const code = `
import { startInspectorRelay } from ${JSON.stringify(RELAY_MODULE)};
import { WebSocket } from 'ws';
const relay = await startInspectorRelay({ port: 0 });
const app = new WebSocket(relay.wsUrl);
const page = new WebSocket(relay.wsUrl, { origin: relay.httpUrl });
await Promise.all([app, page].map((ws) => new Promise((resolve) => ws.once('open', resolve))));
await new Promise((resolve) => { page.once('message', resolve); app.send('{"hello":1}'); });
const half = new WebSocket(relay.wsUrl); // still connecting when the relay closes
half.on('error', () => {});
await relay.close();
console.log('closed');
`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errText = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (errText += c.toString()));
    const exitCode = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 30_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(out.trim(), 'closed', errText);
    assert.equal(exitCode, 0, `the process did not exit on its own: ${errText}`);
  });
});

describe('createSanitizingInspector: redact', { timeout: 60_000 }, () => {
  it('scrubs known secrets (and key variants) from an inspection event, and fields named like secrets', (t) => {
    const regSecret = 'reg-secret-5b0c1e7f0a9d4c2b8e6f3a1d7c9b2e4f';
    const privhex = 'e331b6d69882b4ed5bb7f55b585d7d0f7dc3aeca4a3deee8d16bde3eca51aace';
    const nodeSecret = 'node-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0';
    const inspector = createSanitizingInspector({ url: 'ws://127.0.0.1:1', autoStart: false, secrets: [regSecret] });
    t.after(() => inspector.stop());
    inspector.addSecrets([privhex, nodeSecret]);
    const event = {
      type: '@xstate.snapshot',
      sessionId: 'x:0',
      snapshot: {
        value: { registered: { health: 'fresh' } },
        context: {
          note: `token=${regSecret};`,
          key: `0x${privhex.toUpperCase()}`,
          nested: [{ deep: { text: `got ${nodeSecret} back` } }],
          secret: 'anything at all',
          regSecret: 12345,
          secretLength: nodeSecret.length,
        },
      },
      event: { type: 'SECRET_RECEIVED', nodeId: 'node-1', secretLength: nodeSecret.length },
      definition: JSON.stringify({ id: 'registrar', leaked: privhex }),
    };
    const original = JSON.stringify(event);
    const out = inspector.redact(event);
    const text = JSON.stringify(out);
    for (const s of [regSecret, privhex, privhex.toUpperCase(), `0x${privhex}`, nodeSecret, 'anything at all']) {
      assert.ok(!text.includes(s), `leaked ${s.slice(0, 12)}…`);
    }
    assert.equal(out.snapshot.context.note, `token=${REDACTED};`);
    assert.equal(out.snapshot.context.key, REDACTED, "the 0x goes with the key");
    assert.equal(out.snapshot.context.secret, REDACTED);
    assert.equal(out.snapshot.context.regSecret, REDACTED);
    assert.equal(out.snapshot.context.nested[0]?.deep.text, `got ${REDACTED} back`);
    // What is not secret passes unchanged, and the input is not mutated.
    assert.deepEqual(out.snapshot.value, { registered: { health: 'fresh' } });
    assert.deepEqual(out.event, event.event);
    assert.equal(out.snapshot.context.secretLength, nodeSecret.length);
    assert.equal(JSON.stringify(event), original);
  });
});

describe('createSanitizingInspector: the stream under many secrets', { timeout: 60_000 }, () => {
  it('2,000 node secrets one after the other: no message leaks the current one (in any encoding) or a configured one', (t) => {
    const regSecret = 'reg-secret-5b0c1e7f0a9d4c2b8e6f3a1d7c9b2e4f';
    const privhex = 'e331b6d69882b4ed5bb7f55b585d7d0f7dc3aeca4a3deee8d16bde3eca51aace';
    const inspector = createSanitizingInspector({ url: 'ws://127.0.0.1:1', autoStart: false, secrets: [] });
    t.after(() => inspector.stop());
    inspector.addSecrets([regSecret, privhex], 'configured');
    const scan = new LeakScan([regSecret, privhex]);
    for (let i = 0; i < 2000; i++) {
      const nodeSecret = `node-secret-${i}-${'0f1e2d3c4b5a6978'.repeat(2)}&<"x">`;
      inspector.addSecrets([nodeSecret]);
      scan.addSecret(nodeSecret);
      const quoted = [nodeSecret, JSON.stringify(nodeSecret), encodeURIComponent(nodeSecret), Buffer.from(nodeSecret).toString('base64')].join(' ');
      const message = inspector.redact({
        type: '@xstate.snapshot',
        sessionId: 'x:0',
        snapshot: { value: 'registering', context: { lastFailure: { message: `DDS said ${quoted}; reg ${regSecret} key 0x${privhex}` } } },
        event: { type: 'SECRET_RECEIVED', nodeId: `node-${i}`, secretLength: nodeSecret.length, repeat: false },
      });
      if (i % 50 === 0 || i >= 1990) scan.check(`message ${i}`, JSON.stringify(message));
    }
    assert.deepEqual(scan.findings(), []);
  });
});

/** Poll `check` until it holds (or fail after `timeoutMs`). */
/** The parts of a Stately inspection message this test looks at. */
interface InspectionMessage {
  type?: string;
  parentId?: string;
  definition?: string;
  snapshot?: { value?: unknown; status?: string };
  event?: { type?: string; secretLength?: unknown };
  timers?: RunningTimer[];
}

describe('end to end: registrar → sanitizing inspector → relay → browser', { timeout: 120_000 }, () => {
  it('shows the registrar going through its states, and never a secret', async (t) => {
    const relay = await startRelay(t);
    const browser = await open(relay.wsUrl, { origin: relay.httpUrl });

    const dds = await startFakeDds(t);
    const dataDir = tempDir(t, 'inspector-relay-');

    const regSecret = `reg-secret-${randomBytes(32).toString('base64url')}`;
    const privhex = generateSecretKey().exposeHex();
    const nodeSecret = `node-secret-${randomBytes(32).toString('hex')}`;

    const inspector = createSanitizingInspector({ url: relay.wsUrl });
    t.after(() => inspector.stop());
    const logger = new MemoryLogger();
    const config = testConfig(dds.url, { regSecret, privhex }, { nodeUrl: 'http://127.0.0.1:1', registerIntervalSecs: 1, dataDir });
    const registrar = createRegistrar(config, { inspect: inspector, logger, secrets: new NodeSecretStore() });
    t.after(() => {
      if (registrar.getSnapshot().status === 'active') registrar.stop();
    });

    // DDS's side: the callback routes, mounted on an app of the node.
    const node = await startNodeServer(t, registrar);

    registrar.start();
    await waitFor(registrar, (s) => s.matches('registered'), { timeout: 30_000 });
    assert.ok(dds.requests.length >= 1, 'the registrar called the test DDS');

    // The callback is admitted while a request is in flight or the window is open;
    // with a 1 s interval the registrar cycles, so retry a refusal (403) until admitted.
    const deadline = Date.now() + 30_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) {
      ({ status } = await node.callback({ id: 'node-1', secret: nodeSecret, organization_id: 'org-1' }));
      if (status === 403) await new Promise((r) => setTimeout(r, 20));
      else assert.equal(status, 200, `callback answered ${status}`);
    }
    assert.equal(status, 200, 'the callback was admitted');

    registrar.send({ type: 'STOP' });
    await waitFor(registrar, (s) => s.status === 'done', { timeout: 30_000 });
    assert.equal(registrar.getSnapshot().value, 'stopped');

    const parsed = (): InspectionMessage[] => browser.messages.map((m) => JSON.parse(m) as InspectionMessage);
    const snapshotValues = (): unknown[] =>
      parsed()
        .filter((m) => m.type === '@xstate.snapshot')
        .map((m) => m.snapshot?.value);
    // The inspector sends asynchronously: wait until the final state has reached the browser.
    await waitUntil(() => snapshotValues().includes('stopped'), 'the stopped snapshot in the browser', 20_000, 25);

    const values = snapshotValues();
    assert.ok(values.includes('registering'), `states seen: ${JSON.stringify(values)}`);
    assert.ok(
      values.some((v) => typeof v === 'object' && v !== null && 'registered' in v),
      `states seen: ${JSON.stringify(values)}`,
    );
    // For the live view: the machine's definition with its states in declaration order, and its timers.
    const actor = parsed().find((m) => m.type === '@xstate.actor' && m.parentId === undefined);
    const definition = JSON.parse(actor?.definition ?? '{}') as { states?: Record<string, unknown> };
    assert.deepEqual(Object.keys(definition.states ?? {}), Object.keys(registrarMachine.root.states));
    const timers = parsed().filter((m) => m.type === TIMERS_MESSAGE_TYPE).flatMap((m) => m.timers ?? []);
    assert.ok(
      timers.some((x) => x.delay === 'healthTtl' && x.state === 'registered.health.fresh' && x.ms === 1000),
      `timers seen: ${JSON.stringify(timers.slice(0, 5))}`,
    );

    const callbackEvents = parsed().filter((m) => m.type === '@xstate.event' && m.event?.type === 'SECRET_RECEIVED');
    assert.ok(callbackEvents.length >= 1, 'the admitted callback reached the inspector');
    assert.equal(callbackEvents[0]?.event?.secretLength, nodeSecret.length);

    // No secret, in any spelling, in anything the browser received (nor in the logs).
    assertNoSecrets({ 'what the browser received': browser.messages.join('\n'), log: logger.dump() }, [regSecret, privhex, nodeSecret]);

    inspector.stop();
    await relay.close();
    await closed(browser.ws);
  });
});
