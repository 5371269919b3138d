/**
 * The tests' DDS: a real local HTTP server that records every request and
 * answers through a pluggable {@link Responder} — a plain answer (status,
 * headers, body, delay), `'hang'`, `'destroy'`, a trickling body, raw bytes,
 * or anything async. It counts the registrations in flight at once, and can
 * play DDS's side of the protocol: call a registering node back with a fresh
 * node secret ({@link callbackResponder}) and probe its `/health`
 * ({@link startProber}); the wallet generation's endpoints answer through
 * {@link siweResponder}. Where a test needs DDS's own checks, it runs the
 * real simulator (src/sim/dds-simulator.ts) instead.
 *
 * ```ts
 * const dds = await startFakeDds(t, { responder: statusResponder(409, 'already online') });
 * await dds.waitForRequests(1);
 * dds.setResponder(okResponder);
 * ```
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { CALLBACK_PATH, HEALTH_PATH } from '../../src/http.js';
import { REGISTRATION_PATH } from '../../src/register.js';
import { SIWE_NONCE_PATH, SIWE_REGISTRATION_PATH, SIWE_VERIFY_PATH, type SiweNonceFields } from '../../src/register-siwe.js';
import { onCleanup, type Cleanup } from './cleanup.js';
import { readBody, serverKit } from './http.js';
import { sleep } from './time.js';

/** One request the DDS received (recorded once its body has been read). */
export interface DdsRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  /** `rawBody` parsed as JSON, or undefined when it is not JSON. */
  body: unknown;
  /** `Date.now()` when the request arrived (its headers parsed). */
  receivedAt: number;
  /** The same moment on `performance.now()`'s clock (for benchmarks). */
  at: number;
  /** `Date.now()` when the answer was sent or the connection closed. */
  finishedAt?: number;
}

/** A complete answer, optionally delayed. */
export interface PlainAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Wait this long before answering. */
  delayMs?: number;
}

/** Headers at once, then a body that trickles: `chunk` every `everyMs` for `forMs`, then the end. */
export interface TrickleAnswer {
  status: number;
  headers?: Record<string, string>;
  trickle: { chunk: string; everyMs: number; forMs: number };
}

/** Bytes written straight to the socket (not necessarily HTTP), then the connection ends. */
export interface RawAnswer {
  raw: Buffer | string;
}

/**
 * What a {@link Responder} decides: an answer, `'hang'` (never answer: the
 * request stays open until the client gives up or the DDS closes) or
 * `'destroy'` (drop the connection without an answer).
 */
export type DdsAnswer = PlainAnswer | TrickleAnswer | RawAnswer | 'hang' | 'destroy';

/** Decides each answer; may be async (e.g. call the node back first). A responder that throws answers 500. */
export type Responder = (req: DdsRequest, dds: FakeDds) => DdsAnswer | Promise<DdsAnswer>;

/** A callback the DDS made to a node, and how the node answered. */
export interface CallbackRecord {
  nodeUrl: string;
  /** HTTP status, or `null` when the request failed (node gone). */
  status: number | null;
  /** The answer's body (for the secret scan). */
  body: string;
}

/** How to start a {@link FakeDds}. */
export interface FakeDdsOptions {
  /** The first responder (default {@link okResponder}). */
  responder?: Responder;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port (a fixed one to bring a DDS "back" where one was). */
  port?: number;
}

/** A running fake DDS; closed at cleanup. */
export interface FakeDds {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Every request, in order of arrival of its complete body. */
  readonly requests: readonly DdsRequest[];
  /** The registration requests (POST …/internal/v1/nodes/register) so far. */
  registrations(): DdsRequest[];
  /** The most registration requests that were in flight at once. */
  readonly maxConcurrent: number;
  /** Open server-side connections right now. */
  readonly openConnections: number;
  /** Connections accepted so far. */
  readonly acceptedConnections: number;
  setResponder(responder: Responder): void;
  /** Called (synchronously) for each registration request as it is recorded, before the responder. */
  onRegistration(hook: ((req: DdsRequest, nodeUrl: string) => void) | undefined): void;
  /** Resolves with the first `n` requests once that many have arrived (default timeout 10 s). */
  waitForRequests(n: number, timeoutMs?: number): Promise<DdsRequest[]>;
  /** Resolves with what `pick` finds in the requests, once it finds something (default timeout 10 s). */
  waitFor<T>(pick: (requests: readonly DdsRequest[]) => T | undefined, timeoutMs?: number, what?: string): Promise<T>;
  /** Tell the DDS where the node registering as `nodeUrl` listens, so that it can call it back. */
  setListenUrl(nodeUrl: string, listenUrl: string): void;
  listenUrlOf(nodeUrl: string): string | undefined;
  /** Call the node registered as `nodeUrl` back now with a fresh node secret; resolves with its answer's status. */
  callBack(nodeUrl: string): Promise<number | null>;
  /** Every node secret handed out so far. */
  readonly nodeSecrets: readonly string[];
  /** Every callback made, with its answer. */
  readonly callbacks: readonly CallbackRecord[];
  /** Wait until every callback started so far has been answered. */
  settle(): Promise<void>;
  /** Stop listening and destroy every connection, hanging ones included (idempotent). */
  close(): Promise<void>;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** 200 with `{}`: DDS accepting a registration. */
export const okResponder: Responder = () => ({ status: 200, headers: JSON_HEADERS, body: '{}' });

/** Never answer. */
export const hangResponder: Responder = () => 'hang';

/** Drop the connection without an answer. */
export const destroyResponder: Responder = () => 'destroy';

/** Answer `status` with `body` (text) and `headers`. */
export function statusResponder(status: number, body = '', headers: Record<string, string> = {}): Responder {
  return () => ({ status, headers, body });
}

/** Whether `req` is a registration (POST to the registration path, under any base path). */
export function isRegistration(req: DdsRequest): boolean {
  return req.method === 'POST' && (req.path.split('?')[0] ?? '').endsWith(REGISTRATION_PATH);
}

/** The `url` of a registration body (the registering node's NODE_URL), or `''`. */
export function nodeUrlOf(req: DdsRequest): string {
  const body = req.body;
  if (body !== null && typeof body === 'object' && 'url' in body && typeof body.url === 'string') return body.url;
  return '';
}

/**
 * DDS as it behaves: answer each registration 200 `{}` after `delayMs`, and —
 * while the request is in flight — call the registering node back with a
 * fresh id and node secret when the DDS knows where it listens
 * ({@link FakeDds.setListenUrl}). Anything else: 404.
 */
export function callbackResponder(options: { delayMs?: number | ((req: DdsRequest) => number) } = {}): Responder {
  const { delayMs = 0 } = options;
  return (req, dds) => {
    if (!isRegistration(req)) return { status: 404, body: 'not found' };
    const nodeUrl = nodeUrlOf(req);
    if (dds.listenUrlOf(nodeUrl) !== undefined) void dds.callBack(nodeUrl);
    return { status: 200, headers: JSON_HEADERS, body: '{}', delayMs: Math.max(0, typeof delayMs === 'function' ? delayMs(req) : delayMs) };
  };
}

/** Which of the wallet generation's three calls `req` is (under any base path), or undefined. */
export function siweCallOf(req: DdsRequest): 'nonce' | 'registration' | 'verify' | undefined {
  if (req.method !== 'POST') return undefined;
  const path = req.path.split('?')[0] ?? '';
  if (path.endsWith(SIWE_NONCE_PATH)) return 'nonce';
  if (path.endsWith(SIWE_REGISTRATION_PATH)) return 'registration';
  if (path.endsWith(SIWE_VERIFY_PATH)) return 'verify';
  return undefined;
}

/** Nonce fields a DDS might hand out (from siwe-vectors.json's first message). */
export const SIWE_NONCE_FIELDS: SiweNonceFields = {
  nonce: '3f9a1c2e7b4d',
  domain: 'dds.auki.network',
  uri: 'https://dds.auki.network',
  version: '1',
  chainId: 1,
  issuedAt: '2026-03-25T01:28:35.123Z',
};

/** A 200 JSON answer with `body` serialised as given (any shape, for the client's decoding). */
export function jsonAnswer(body: unknown, status = 200): PlainAnswer {
  return { status, headers: JSON_HEADERS, body: JSON.stringify(body) };
}

/** A `verify` answer: `access_token` and `access_expires_at` `lifetimeMs` from now. */
export function tokenAnswer(token: string, lifetimeMs = 60_000): PlainAnswer {
  return jsonAnswer({ access_token: token, access_expires_at: new Date(Date.now() + lifetimeMs).toISOString() });
}

/** A handler of one SIWE call. */
export type SiweHandler = (req: DdsRequest, dds: FakeDds) => DdsAnswer | Promise<DdsAnswer>;

/**
 * DDS's wallet endpoints, each answered by its handler (defaults: the nonce
 * of {@link SIWE_NONCE_FIELDS}, 200 `{}` for a registration, a fresh
 * one-minute token for `verify`); anything else: 404. It checks nothing:
 * where a test needs DDS's own checks, it runs the simulator.
 */
export function siweResponder(handlers: { nonce?: SiweHandler; registration?: SiweHandler; verify?: SiweHandler } = {}): Responder {
  return (req, dds) => {
    switch (siweCallOf(req)) {
      case 'nonce':
        return handlers.nonce ? handlers.nonce(req, dds) : jsonAnswer(SIWE_NONCE_FIELDS);
      case 'registration':
        return handlers.registration ? handlers.registration(req, dds) : { status: 200, headers: JSON_HEADERS, body: '{}' };
      case 'verify':
        return handlers.verify ? handlers.verify(req, dds) : tokenAnswer(randomBytes(24).toString('hex'));
      default:
        return { status: 404, body: 'not found' };
    }
  };
}

/** A registration request held until the test answers it. */
export interface HeldRequest {
  readonly request: DdsRequest;
  /** Answer it now: `status` with `body` (default `{}`) as JSON; later calls do nothing. */
  answer(status: number, body?: string): void;
}

/** Registrations held for the test to answer; see {@link holdRegistrations}. */
export interface HeldRegistrations {
  readonly responder: Responder;
  /** The next held request, in arrival order (rejects after `timeoutMs`, default 15 s). */
  next(timeoutMs?: number): Promise<HeldRequest>;
}

/** A responder that holds every registration until the test answers it ("while the request is in flight" as a fact); anything else: 404. */
export function holdRegistrations(): HeldRegistrations {
  const queue: HeldRequest[] = [];
  const waiters: ((held: HeldRequest) => void)[] = [];
  return {
    responder: (request) => {
      if (!isRegistration(request)) return { status: 404 };
      return new Promise<DdsAnswer>((resolve) => {
        const held: HeldRequest = {
          request,
          answer: (status, body = '{}') => resolve({ status, headers: JSON_HEADERS, body }),
        };
        const waiter = waiters.shift();
        if (waiter) waiter(held);
        else queue.push(held);
      });
    },
    next(timeoutMs = 15_000) {
      const queued = queue.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const wake = (held: HeldRequest): void => {
          clearTimeout(timer);
          resolve(held);
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(wake);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`fake DDS: no registration request within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(wake);
      });
    },
  };
}

/** An HTTP answer, body as text. */
export interface HttpAnswer {
  status: number;
  body: string;
}

function request(url: URL, options: http.RequestOptions, data: string | undefined, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    // No agent: a fresh connection that closes after the answer, as DDS's own would.
    const req = http.request(url, { ...options, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${url.pathname}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

function under(baseUrl: string, pathname: string): URL {
  return new URL(pathname.slice(1), baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
}

/** POST `payload` as JSON to `<nodeUrl>/internal/v1/registrations`, as DDS calls a node back. */
export function callNodeBack(nodeUrl: string, payload: Record<string, unknown>, timeoutMs = 5000): Promise<HttpAnswer> {
  const data = JSON.stringify(payload);
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), connection: 'close' };
  return request(under(nodeUrl, CALLBACK_PATH), { method: 'POST', headers }, data, timeoutMs);
}

/** `GET <nodeUrl>/health` as DDS probes a node (User-Agent `DDS v…`). */
export function probeHealth(nodeUrl: string, userAgent = 'DDS v1.0.0', timeoutMs = 5000): Promise<HttpAnswer> {
  return request(under(nodeUrl, HEALTH_PATH), { method: 'GET', headers: { 'user-agent': userAgent, connection: 'close' } }, undefined, timeoutMs);
}

/** A DDS probing a node's `/health` every `everyMs` until stopped (at the latest at cleanup). */
export function startProber(
  t: Cleanup,
  nodeUrl: string,
  everyMs: number,
  userAgent = 'DDS v1.0.0',
): { stop(): Promise<void>; readonly count: number; readonly failures: number } {
  let stopped = false;
  let count = 0;
  let failures = 0;
  const loop = (async () => {
    while (!stopped) {
      try {
        const answer = await probeHealth(nodeUrl, userAgent);
        if (answer.status === 200) count += 1;
        else failures += 1;
      } catch {
        failures += 1;
      }
      if (!stopped) await sleep(everyMs);
    }
  })();
  const stop = async (): Promise<void> => {
    stopped = true;
    await loop;
  };
  onCleanup(t, stop);
  return {
    stop,
    get count() {
      return count;
    },
    get failures() {
      return failures;
    },
  };
}

/** Requests whose [receivedAt, finishedAt] intervals overlap, as pairs of indices (after sorting by arrival). */
export function overlappingPairs(requests: readonly DdsRequest[]): [number, number][] {
  const sorted = [...requests].sort((a, b) => a.receivedAt - b.receivedAt);
  const pairs: [number, number][] = [];
  let latestEnd = -Infinity;
  let latestIdx = -1;
  sorted.forEach((r, i) => {
    if (r.receivedAt < latestEnd) pairs.push([latestIdx, i]);
    const end = r.finishedAt ?? Infinity;
    if (end > latestEnd) {
      latestEnd = end;
      latestIdx = i;
    }
  });
  return pairs;
}

/** Start a fake DDS (see {@link FakeDdsOptions}); it is closed at cleanup. */
export async function startFakeDds(t: Cleanup, options: FakeDdsOptions = {}): Promise<FakeDds> {
  let responder: Responder = options.responder ?? okResponder;
  let registrationHook: ((req: DdsRequest, nodeUrl: string) => void) | undefined;
  let inFlight = 0;
  let maxConcurrent = 0;
  const listenUrls = new Map<string, string>();
  const nodeSecrets: string[] = [];
  const callbacks: CallbackRecord[] = [];
  const pending = new Set<Promise<void>>();

  const answer = async (req: http.IncomingMessage, res: http.ServerResponse, recorded: DdsRequest): Promise<void> => {
    let decided: DdsAnswer;
    try {
      decided = await responder(recorded, dds);
    } catch {
      decided = { status: 500, body: 'test responder threw' };
    }
    if (kit.closed || res.destroyed || decided === 'hang') return;
    if (decided === 'destroy') {
      req.socket.destroy();
      return;
    }
    if ('raw' in decided) {
      req.socket.end(decided.raw);
      return;
    }
    if ('trickle' in decided) {
      const { chunk, everyMs, forMs } = decided.trickle;
      res.writeHead(decided.status, decided.headers ?? {});
      res.flushHeaders();
      const until = Date.now() + forMs;
      const step = (): void => {
        if (kit.closed || res.destroyed) return;
        if (Date.now() >= until) {
          res.end();
          return;
        }
        res.write(chunk);
        kit.later(step, everyMs);
      };
      step();
      return;
    }
    const plain = decided;
    const send = (): void => {
      if (kit.closed || res.destroyed) return;
      res.writeHead(plain.status, plain.headers ?? {});
      res.end(plain.body ?? '');
    };
    if (plain.delayMs !== undefined && plain.delayMs > 0) kit.later(send, plain.delayMs);
    else send();
  };

  const server = http.createServer((req, res) => {
    const receivedAt = Date.now();
    const at = performance.now();
    const countsAsRegistration = req.method === 'POST' && (req.url ?? '').split('?')[0]?.endsWith(REGISTRATION_PATH) === true;
    let done = false;
    let recorded: DdsRequest | undefined;
    if (countsAsRegistration) {
      inFlight += 1;
      maxConcurrent = Math.max(maxConcurrent, inFlight);
    }
    const finish = (): void => {
      if (done) return;
      done = true;
      if (countsAsRegistration) inFlight -= 1;
      if (recorded) recorded.finishedAt = Date.now();
    };
    res.on('finish', finish);
    res.on('close', finish);
    req.on('error', () => undefined);
    res.on('error', () => undefined);

    void readBody(req).then(({ rawBody, body }) => {
      recorded = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, rawBody, body, receivedAt, at };
      if (done) recorded.finishedAt = Date.now();
      kit.record(recorded);
      if (countsAsRegistration) {
        try {
          registrationHook?.(recorded, nodeUrlOf(recorded));
        } catch {
          // a test hook must not break the server
        }
      }
      return answer(req, res, recorded);
    }, () => undefined);
  });
  const kit = serverKit<DdsRequest>(server, 'fake DDS');
  const { url, port } = await kit.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  onCleanup(t, () => kit.close());

  const callBack = (nodeUrl: string, listenUrl: string): Promise<number | null> => {
    const secret = randomBytes(32).toString('hex');
    nodeSecrets.push(secret);
    const made = (async () => {
      let status: number | null = null;
      let body = '';
      try {
        ({ status, body } = await callNodeBack(listenUrl, { id: randomUUID(), secret, organization_id: 'org-fake-dds' }, 10_000));
      } catch {
        // the node is gone (killed): nothing to record but the attempt
      }
      callbacks.push({ nodeUrl, status, body });
      return status;
    })();
    const settled = made.then(() => undefined);
    pending.add(settled);
    void settled.finally(() => pending.delete(settled));
    return made;
  };

  const dds: FakeDds = {
    url,
    port,
    requests: kit.requests,
    registrations: () => kit.requests.filter(isRegistration),
    get maxConcurrent() {
      return maxConcurrent;
    },
    get openConnections() {
      return kit.openConnections;
    },
    get acceptedConnections() {
      return kit.acceptedConnections;
    },
    setResponder(r) {
      responder = r;
    },
    onRegistration(hook) {
      registrationHook = hook;
    },
    waitForRequests: (n, timeoutMs = 10_000) => kit.waitForRequests(n, timeoutMs),
    waitFor: (pick, timeoutMs = 10_000, what = 'a matching request') => kit.waitFor(pick, timeoutMs, what),
    setListenUrl(nodeUrl, listenUrl) {
      listenUrls.set(nodeUrl, listenUrl);
    },
    listenUrlOf: (nodeUrl) => listenUrls.get(nodeUrl),
    callBack(nodeUrl) {
      const listenUrl = listenUrls.get(nodeUrl);
      if (listenUrl === undefined) return Promise.reject(new Error(`no listen URL known for ${nodeUrl}`));
      return callBack(nodeUrl, listenUrl);
    },
    nodeSecrets,
    callbacks,
    async settle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    close: () => kit.close(),
  };
  return dds;
}
