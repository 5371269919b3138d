/**
 * dds-simulator — a small embedded stand-in for DDS, the posemesh Domain
 * Discovery Service, for development and tests.
 *
 * It answers `POST /internal/v1/nodes/register` after checking the request
 * the way DDS does ({@link verifyRegistrationRequest}), then calls the node
 * back on `POST {url}/internal/v1/registrations` with an id and a fresh
 * secret, and probes `GET {url}/health` with a `DDS v<version>` User-Agent
 * every `probeIntervalMs` (PROTOCOL.md §1–2), until a node has failed
 * `forgetAfterFailedProbes` probes in a row: it is then forgotten (one
 * line), as a node that went away, until it registers again. It speaks the
 * wallet generation too (§6, {@link SiweAuthority}): nonces,
 * `register-wallet`, and `verify` with tokens of `tokenLifetimeMs`;
 * {@link DdsSimulator.forget} (or the `forgetOnVerify` fault) makes it forget
 * a wallet, whose next `verify` gets 403. Faults (failing statuses, latency,
 * paused probes) can be switched on and off while it runs.
 *
 * The secrets it receives or hands out (registration credentials, node
 * secrets, signatures, access tokens) never reach its log lines, its events
 * or its HTTP answers (a token only in the `verify` answer that issues it).
 *
 * @example
 * ```ts
 * const sim = new DdsSimulator({ expectedRegSecret: 'reg-secret', probeIntervalMs: 1000 });
 * const { url } = await sim.start();
 * sim.on((e) => console.log(e.type));
 * sim.setFaults({ failStatus: 503, failCount: 2, retryAfterSecs: 1 });
 * // ... point a registrar at `url` ...
 * await sim.stop();
 * ```
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CodedError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { REGISTRATION_PATH } from '../register.js';
import { SIWE_NONCE_PATH, SIWE_REGISTRATION_PATH, SIWE_VERIFY_PATH } from '../register-siwe.js';
import { DEFAULT_FORGET_AFTER_FAILED_PROBES } from './defaults.js';
import { SiweAuthority, type SiweWallet } from './siwe-authority.js';
import { verifyRegistrationRequest } from './verify-registration.js';

export type { SiweWallet };
export { DEFAULT_FORGET_AFTER_FAILED_PROBES };

/** Faults the simulator can inject; every field can be changed while it runs. */
export interface DdsSimulatorFaults {
  /** Answer every registration (`register` and `register-wallet`) with this status (e.g. 500, 409, 429, 307); `null` = off. */
  failStatus?: number | null;
  /** Only fail the next N registrations with `failStatus`, then recover; `null` = forever while `failStatus` is set. */
  failCount?: number | null;
  /** 0..1: a random fraction of registrations is answered with `failStatus ?? 500`. */
  failureRate?: number;
  /** Delay, in ms, before answering a (valid) registration. */
  latencyMs?: number;
  /** `Retry-After` header (seconds) on 429 and 503 answers; `null` = none. */
  retryAfterSecs?: number | null;
  /** Stop sending health probes (resuming sends one to every node at once). */
  pauseProbes?: boolean;
  /** Answer every SIWE nonce request with this status; `null` = off. */
  nonceFailStatus?: number | null;
  /** Answer every `verify` with this status; `null` = off. */
  verifyFailStatus?: number | null;
  /** Forget the node at each valid `verify` and answer 403 (a DDS that no longer knows it, every time). */
  forgetOnVerify?: boolean;
}

/** Options of {@link DdsSimulator}. */
export interface DdsSimulatorOptions {
  /** Interface to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port to listen on (default 0: an ephemeral port). */
  port?: number;
  /** Time between two health probes of one node, in ms (default 3000). */
  probeIntervalMs?: number;
  /**
   * Forget a node (no more probes) after this many failed probes in a row —
   * no answer, or not 200 — until it registers again; 0 = never
   * (default {@link DEFAULT_FORGET_AFTER_FAILED_PROBES}).
   */
  forgetAfterFailedProbes?: number;
  /** Delay between answering a registration and calling the node back, in ms (default 50). */
  callbackDelayMs?: number;
  /** Timeout of each callback and probe request, in ms (default 5000). */
  requestTimeoutMs?: number;
  /** When set, registrations must carry exactly these credentials. */
  expectedRegSecret?: string;
  /** Accepted clock skew of the registration timestamp, in ms (default 5 minutes). */
  maxSkewMs?: number;
  /** Faults active from the start. */
  faults?: DdsSimulatorFaults;
  /** The DDS version in the probe User-Agent `DDS v<version>` (default `0.0.0-sim`). */
  version?: string;
  /** Where `dds_sim.*` lines go (default: nowhere). */
  logger?: Logger;
  /** Random source in [0, 1) for `failureRate` (default `Math.random`). */
  random?: () => number;
  /** Lifetime of the access tokens `verify` issues, in ms (default 1 hour). */
  tokenLifetimeMs?: number;
  /** How long a SIWE nonce can be used, in ms (default 5 minutes). */
  nonceLifetimeMs?: number;
  /** The `chainId` of the nonces (default 8453). */
  chainId?: number;
  /** The `domain` of the nonces (default the listening `host:port`). */
  siweDomain?: string;
  /** The `uri` of the nonces (default the listening URL). */
  siweUri?: string;
}

/** The wallet generation's three calls. */
export type SiweCall = 'nonce' | 'registration' | 'verify';

/** What the simulator reports to its listeners. Events never carry secrets. */
export type DdsSimulatorEvent =
  | { type: 'registration.received'; nodeUrl: string; publicKeyPrefix: string; version: string; capabilities: string[] }
  | { type: 'registration.rejected'; status: number; reason: string }
  | { type: 'registration.accepted'; nodeUrl: string; nodeId: string }
  | { type: 'registration.fault'; status: number }
  | { type: 'callback.sent'; nodeUrl: string; nodeId: string; status: number | null; error?: string }
  | { type: 'probe.sent'; nodeUrl: string; status: number | null; error?: string }
  | { type: 'node.forgotten'; nodeUrl: string; nodeId: string; failedProbes: number }
  | { type: 'faults.changed'; faults: DdsSimulatorFaults }
  | { type: 'siwe.nonce.issued'; wallet: string; expiresAt: number }
  | { type: 'siwe.registered'; wallet: string; version: string; capabilities: string[] }
  | { type: 'siwe.signed_in'; wallet: string; signIns: number }
  | { type: 'siwe.token.issued'; wallet: string; expiresAt: number; lifetimeMs: number }
  | { type: 'siwe.forgotten'; wallet: string; reason: 'forget' | 'fault' }
  | { type: 'siwe.rejected'; call: SiweCall; status: number; reason: string }
  | { type: 'siwe.fault'; call: SiweCall; status: number };

/** A listener of {@link DdsSimulator.on}. */
export type DdsSimulatorListener = (event: DdsSimulatorEvent) => void;

/** A registered node as the simulator knows it (no secrets). */
export interface DdsSimulatorNode {
  nodeId: string;
  nodeUrl: string;
  publicKey: string;
  /** Epoch ms of the last accepted registration. */
  registeredAt: number;
  /** Epoch ms of the last probe sent, or `null`. */
  lastProbeAt: number | null;
  /** Number of probes sent so far. */
  probes: number;
  /** Failed probes in a row (no answer, or not 200) since the last good one. */
  failedProbes: number;
}

/** Thrown by {@link DdsSimulator.start} when the server cannot listen; `code` is Node's (e.g. `EADDRINUSE`). */
export class DdsSimulatorListenError extends CodedError<string | undefined> {
  override readonly name = 'DdsSimulatorListenError';
}

/** The largest registration body accepted (64 KiB); larger ones get 413. */
export const MAX_REGISTRATION_BODY_BYTES = 64 * 1024;
/** Organisation id handed to nodes in the callback. */
export const SIM_ORGANIZATION_ID = 'org-sim';

/** The paths the simulator serves, and which call each is. */
const CALLS: ReadonlyMap<string, SiweCall | 'legacy'> = new Map([
  [REGISTRATION_PATH, 'legacy'],
  [SIWE_NONCE_PATH, 'nonce'],
  [SIWE_REGISTRATION_PATH, 'registration'],
  [SIWE_VERIFY_PATH, 'verify'],
]);

// Node's timers overflow above 2^31-1 ms; cap every delay well below.
const MAX_DELAY_MS = 24 * 60 * 60 * 1000;

interface NodeRecord extends DdsSimulatorNode {
  probeTimer: NodeJS.Timeout | null;
  probing: boolean;
}

interface PendingSleep {
  timer: NodeJS.Timeout;
  resolve: () => void;
}

function clampDelay(ms: number | undefined, fallback: number): number {
  if (ms === undefined || !Number.isFinite(ms)) return fallback;
  return Math.min(Math.max(0, Math.round(ms)), MAX_DELAY_MS);
}

function stripTrailingSlashes(url: string): string {
  return url.replace(/\/+$/, '');
}

/** A stable, v4-formatted UUID derived from the node's public key and URL. */
function deriveNodeId(publicKey: string, url: string): string {
  const b = createHash('sha256').update(`dds-sim node id\0${publicKey}\0${url}`, 'utf8').digest().subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A short, secret-free description of a failed request (fetch hides the cause's code). */
function describeRequestError(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return 'timeout';
    if (err.name === 'AbortError') return 'aborted';
    const cause = (err as { cause?: unknown }).cause;
    if (typeof cause === 'object' && cause !== null) {
      const code = (cause as { code?: unknown }).code;
      if (typeof code === 'string') return code;
    }
    return err.name;
  }
  return 'error';
}

function validateFaults(f: Partial<DdsSimulatorFaults>): void {
  const { failStatus, failCount, failureRate, latencyMs, retryAfterSecs, nonceFailStatus, verifyFailStatus } = f;
  for (const [name, status] of [['failStatus', failStatus], ['nonceFailStatus', nonceFailStatus], ['verifyFailStatus', verifyFailStatus]] as const) {
    if (status != null && (!Number.isInteger(status) || status < 300 || status > 599)) {
      throw new RangeError(`${name} must be an integer status between 300 and 599, or null`);
    }
  }
  if (failCount != null && (!Number.isInteger(failCount) || failCount < 0)) {
    throw new RangeError('failCount must be a non-negative integer, or null');
  }
  if (failureRate !== undefined && !(failureRate >= 0 && failureRate <= 1)) {
    throw new RangeError('failureRate must be between 0 and 1');
  }
  if (latencyMs !== undefined && !(latencyMs >= 0 && latencyMs <= MAX_DELAY_MS)) {
    throw new RangeError(`latencyMs must be between 0 and ${MAX_DELAY_MS}`);
  }
  if (retryAfterSecs != null && (!Number.isInteger(retryAfterSecs) || retryAfterSecs < 0)) {
    throw new RangeError('retryAfterSecs must be a non-negative integer, or null');
  }
}

/**
 * An embedded DDS: an HTTP server for registrations, the callback that hands
 * each node its id and secret, and a health probe loop per node.
 *
 * Single use: {@link start} once, {@link stop} once (further calls are no-ops).
 */
export class DdsSimulator {
  readonly #host: string;
  readonly #port: number;
  readonly #probeIntervalMs: number;
  readonly #forgetAfterFailedProbes: number;
  readonly #callbackDelayMs: number;
  readonly #requestTimeoutMs: number;
  readonly #expectedRegSecret: string | undefined;
  readonly #maxSkewMs: number | undefined;
  readonly #version: string;
  readonly #log: Logger;
  readonly #random: () => number;
  readonly #tokenLifetimeMs: number;
  readonly #nonceLifetimeMs: number;
  readonly #chainId: number | undefined;
  readonly #siweDomain: string | undefined;
  readonly #siweUri: string | undefined;
  #siwe: SiweAuthority | null = null;

  #faults: DdsSimulatorFaults;
  readonly #listeners = new Set<DdsSimulatorListener>();
  readonly #nodes = new Map<string, NodeRecord>();
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #sleeps = new Set<PendingSleep>();
  readonly #abort = new AbortController();
  #server: http.Server | null = null;
  #url: string | null = null;
  #starting: Promise<{ url: string; port: number }> | null = null;
  #stopping: Promise<void> | null = null;

  constructor(options: DdsSimulatorOptions = {}) {
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
    this.#probeIntervalMs = Math.max(1, clampDelay(options.probeIntervalMs, 3000));
    const forgetAfter = options.forgetAfterFailedProbes ?? DEFAULT_FORGET_AFTER_FAILED_PROBES;
    if (!Number.isInteger(forgetAfter) || forgetAfter < 0) throw new RangeError('forgetAfterFailedProbes must be a non-negative integer');
    this.#forgetAfterFailedProbes = forgetAfter;
    this.#callbackDelayMs = clampDelay(options.callbackDelayMs, 50);
    this.#requestTimeoutMs = Math.max(1, clampDelay(options.requestTimeoutMs, 5000));
    this.#expectedRegSecret = options.expectedRegSecret;
    this.#maxSkewMs = options.maxSkewMs;
    this.#version = options.version ?? '0.0.0-sim';
    this.#log = options.logger ?? silentLogger;
    this.#random = options.random ?? Math.random;
    this.#tokenLifetimeMs = Math.max(1, clampDelay(options.tokenLifetimeMs, 60 * 60 * 1000));
    this.#nonceLifetimeMs = Math.max(1, clampDelay(options.nonceLifetimeMs, 5 * 60 * 1000));
    if (options.chainId !== undefined && !Number.isSafeInteger(options.chainId)) throw new RangeError('chainId must be an integer');
    this.#chainId = options.chainId;
    this.#siweDomain = options.siweDomain;
    this.#siweUri = options.siweUri;
    const faults = { ...(options.faults ?? {}) };
    validateFaults(faults);
    this.#faults = faults;
  }

  /** The base URL DDS clients should use, e.g. `http://127.0.0.1:43125`. Throws before {@link start}. */
  get url(): string {
    if (this.#url === null) throw new Error('DdsSimulator is not started');
    return this.#url;
  }

  /** A copy of the active faults. */
  get faults(): DdsSimulatorFaults {
    return { ...this.#faults };
  }

  /** A snapshot of the registered nodes, keyed by node id. Holds no secrets. */
  get nodes(): ReadonlyMap<string, DdsSimulatorNode> {
    const out = new Map<string, DdsSimulatorNode>();
    for (const [id, n] of this.#nodes) {
      out.set(id, {
        nodeId: n.nodeId,
        nodeUrl: n.nodeUrl,
        publicKey: n.publicKey,
        registeredAt: n.registeredAt,
        lastProbeAt: n.lastProbeAt,
        probes: n.probes,
        failedProbes: n.failedProbes,
      });
    }
    return out;
  }

  /** A snapshot of the wallets registered through the wallet generation, keyed by address. Holds no secrets. */
  get wallets(): ReadonlyMap<string, SiweWallet> {
    return this.#siwe?.wallets ?? new Map();
  }

  /**
   * Forget a wallet (or every wallet): DDS no longer knows the node, its next
   * `verify` gets 403 until it registers again. Returns the wallets forgotten.
   */
  forget(wallet?: string): string[] {
    const gone = this.#siwe?.forget(wallet) ?? [];
    for (const w of gone) this.#forgotten(w, 'forget');
    return gone;
  }

  /** Subscribe to events; returns the function that unsubscribes. */
  on(listener: DdsSimulatorListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Change some faults (the fields given replace the active ones).
   *
   * @throws {RangeError} when a value is out of range; nothing changes then.
   */
  setFaults(f: Partial<DdsSimulatorFaults>): void {
    validateFaults(f);
    const wasPaused = this.#faults.pauseProbes === true;
    this.#faults = { ...this.#faults, ...f };
    const paused = this.#faults.pauseProbes === true;
    this.#log.info({ event: 'dds_sim.faults.changed', faults: this.faults });
    this.#emit({ type: 'faults.changed', faults: this.faults });
    if (paused && !wasPaused) {
      for (const node of this.#nodes.values()) this.#cancelProbe(node);
    } else if (!paused && wasPaused) {
      for (const node of this.#nodes.values()) this.#scheduleProbe(node, 0);
    }
  }

  /**
   * Listen. Resolves with the base URL and port.
   *
   * @throws {DdsSimulatorListenError} when the address is unusable (`code` `EADDRINUSE` when the port is taken).
   */
  start(): Promise<{ url: string; port: number }> {
    if (this.#stopping) return Promise.reject(new Error('DdsSimulator is stopped'));
    this.#starting ??= this.#listen();
    return this.#starting;
  }

  /** Stop probing, cancel pending callbacks and requests, close the server and its sockets. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  #listen(): Promise<{ url: string; port: number }> {
    const server = http.createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        // #handle answers its own errors; this only guards against a socket that died meanwhile.
        if (!res.headersSent && !res.destroyed) this.#answer(res, 500, 'internal error');
      });
    });
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('clientError', (_err, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    this.#server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.removeListener('listening', onListening);
        this.#server = null;
        const where = `${this.#host}:${this.#port}`;
        const what = err.code === 'EADDRINUSE' ? 'address already in use' : (err.code ?? 'listen failed');
        this.#log.error({ event: 'dds_sim.listen.error', host: this.#host, port: this.#port, code: err.code });
        reject(new DdsSimulatorListenError(err.code, `DDS simulator cannot listen on ${where}: ${what}`));
      };
      const onListening = (): void => {
        server.removeListener('error', onError);
        const { port } = server.address() as AddressInfo;
        const host = this.#host.includes(':') ? `[${this.#host}]` : this.#host;
        this.#url = `http://${host}:${port}`;
        this.#siwe = new SiweAuthority({
          domain: this.#siweDomain ?? `${host}:${port}`,
          uri: this.#siweUri ?? this.#url,
          nonceLifetimeMs: this.#nonceLifetimeMs,
          tokenLifetimeMs: this.#tokenLifetimeMs,
          expectedRegSecret: this.#expectedRegSecret,
          ...(this.#chainId === undefined ? {} : { chainId: this.#chainId }),
        });
        this.#log.info({ event: 'dds_sim.listening', url: this.#url, probe_interval_ms: this.#probeIntervalMs });
        resolve({ url: this.#url, port });
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this.#port, this.#host);
    });
  }

  async #shutdown(): Promise<void> {
    this.#abort.abort();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const sleep of this.#sleeps) {
      clearTimeout(sleep.timer);
      sleep.resolve();
    }
    this.#sleeps.clear();
    for (const node of this.#nodes.values()) this.#cancelProbe(node);
    // Let a pending start() settle before closing what it opened.
    if (this.#starting) await this.#starting.catch(() => undefined);
    const server = this.#server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of this.#sockets) socket.destroy();
        this.#sockets.clear();
      });
      this.#server = null;
      this.#log.info({ event: 'dds_sim.stopped' });
    }
  }

  get #stopped(): boolean {
    return this.#stopping !== null;
  }

  #emit(event: DdsSimulatorEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch {
        this.#log.warn({ event: 'dds_sim.listener.error', type: event.type });
      }
    }
  }

  #answer(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
    res.end(text);
  }

  /** Refuse a request of `call` (`legacy`: `POST …/nodes/register`) with a fixed phrase. */
  #reject(res: http.ServerResponse, call: SiweCall | 'legacy', status: number, reason: string, headers: Record<string, string> = {}): void {
    if (call === 'legacy') {
      this.#log.warn({ event: 'dds_sim.registration.rejected', status, reason });
      this.#emit({ type: 'registration.rejected', status, reason });
    } else {
      this.#log.warn({ event: 'dds_sim.siwe.rejected', call, status, reason });
      this.#emit({ type: 'siwe.rejected', call, status, reason });
    }
    this.#answer(res, status, reason, headers);
  }

  /** A simulated failure: `Retry-After` on 429/503 when set, a `Location` on 3xx. */
  #faultAnswer(res: http.ServerResponse, status: number): void {
    const headers: Record<string, string> = {};
    const retryAfter = this.#faults.retryAfterSecs;
    if ((status === 429 || status === 503) && retryAfter != null) headers['retry-after'] = String(retryAfter);
    if (status >= 300 && status < 400) headers.location = '/internal/v1/nodes/register-moved';
    this.#answer(res, status, `simulated failure (status ${status})`, headers);
  }

  #siweFault(res: http.ServerResponse, call: SiweCall, status: number): void {
    this.#log.info({ event: 'dds_sim.siwe.fault', call, status });
    this.#emit({ type: 'siwe.fault', call, status });
    this.#faultAnswer(res, status);
  }

  #forgotten(wallet: string, reason: 'forget' | 'fault'): void {
    this.#log.info({ event: 'dds_sim.siwe.forgotten', wallet, reason });
    this.#emit({ type: 'siwe.forgotten', wallet, reason });
  }

  /** Sleep that {@link stop} cuts short. */
  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const entry: PendingSleep = {
        resolve,
        timer: setTimeout(() => {
          this.#sleeps.delete(entry);
          resolve();
        }, ms),
      };
      entry.timer.unref();
      this.#sleeps.add(entry);
    });
  }

  /** A one-shot timer that {@link stop} cancels. */
  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.#timers.add(timer);
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://sim.invalid').pathname;
    const call = CALLS.get(path);
    if (call === undefined) return this.#answer(res, 404, 'not found');
    if (req.method !== 'POST') return this.#answer(res, 405, 'method not allowed', { allow: 'POST' });

    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (mediaType !== 'application/json') return this.#reject(res, call, 415, 'content-type must be application/json');

    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_REGISTRATION_BODY_BYTES) {
      return this.#reject(res, call, 413, 'body too large', { connection: 'close' });
    }
    const raw = await this.#readBody(req);
    if (raw === 'too-large') return this.#reject(res, call, 413, 'body too large', { connection: 'close' });
    if (raw === 'aborted') return;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      return this.#reject(res, call, 400, 'body is not valid UTF-8');
    }
    if (call === 'legacy') return this.#legacyRegistration(res, text);
    const siwe = this.#siwe;
    if (siwe === null || this.#stopped) return this.#answer(res, 503, 'not ready');
    if (call === 'nonce') return this.#siweNonce(res, text, siwe);
    if (call === 'registration') return this.#siweRegistration(res, text, siwe);
    return this.#siweVerify(res, text, siwe);
  }

  #siweNonce(res: http.ServerResponse, text: string, siwe: SiweAuthority): void {
    const failStatus = this.#faults.nonceFailStatus;
    if (failStatus != null) return this.#siweFault(res, 'nonce', failStatus);
    const verdict = siwe.issueNonce(text);
    if (!verdict.ok) return this.#reject(res, 'nonce', verdict.status, verdict.reason);
    this.#log.info({ event: 'dds_sim.siwe.nonce.issued', wallet: verdict.wallet, expires_at: new Date(verdict.expiresAt).toISOString() });
    this.#emit({ type: 'siwe.nonce.issued', wallet: verdict.wallet, expiresAt: verdict.expiresAt });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(verdict.fields));
  }

  async #siweRegistration(res: http.ServerResponse, text: string, siwe: SiweAuthority): Promise<void> {
    const verdict = siwe.checkWalletRegistration(text);
    if (!verdict.ok) return this.#reject(res, 'registration', verdict.status, verdict.reason);
    await this.#sleep(clampDelay(this.#faults.latencyMs, 0));
    if (this.#stopped) return;
    const faultStatus = this.#drawFault();
    if (faultStatus !== null) return this.#siweFault(res, 'registration', faultStatus);
    const { wallet, version, capabilities } = siwe.admit(verdict.wallet);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
    this.#log.info({ event: 'dds_sim.siwe.registered', wallet, version, capabilities });
    this.#emit({ type: 'siwe.registered', wallet, version, capabilities: [...capabilities] });
  }

  #siweVerify(res: http.ServerResponse, text: string, siwe: SiweAuthority): void {
    const failStatus = this.#faults.verifyFailStatus;
    if (failStatus != null) return this.#siweFault(res, 'verify', failStatus);
    const verdict = siwe.verify(text, { forget: this.#faults.forgetOnVerify === true });
    if (!verdict.ok) {
      if (verdict.forgotten !== undefined) this.#forgotten(verdict.forgotten, 'fault');
      return this.#reject(res, 'verify', verdict.status, verdict.reason);
    }
    const { wallet, expiresAt, lifetimeMs, signIns } = verdict;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(verdict.answer);
    this.#log.info({ event: 'dds_sim.siwe.signed_in', wallet, sign_ins: signIns, token_expires_at: new Date(expiresAt).toISOString(), token_lifetime_ms: lifetimeMs });
    this.#emit({ type: 'siwe.signed_in', wallet, signIns });
    this.#emit({ type: 'siwe.token.issued', wallet, expiresAt, lifetimeMs });
  }

  async #legacyRegistration(res: http.ServerResponse, text: string): Promise<void> {
    const verdict = verifyRegistrationRequest(text, {
      expectedRegSecret: this.#expectedRegSecret,
      ...(this.#maxSkewMs === undefined ? {} : { maxSkewMs: this.#maxSkewMs }),
    });
    if (!verdict.ok) return this.#reject(res, 'legacy', 400, verdict.reason);
    const { url: nodeUrl, public_key: publicKey, version, capabilities } = verdict.body;
    const publicKeyPrefix = publicKey.slice(0, 12);
    this.#log.info({
      event: 'dds_sim.registration.received',
      node_url: nodeUrl,
      public_key_prefix: publicKeyPrefix,
      version,
      capabilities,
    });
    this.#emit({ type: 'registration.received', nodeUrl, publicKeyPrefix, version, capabilities: [...capabilities] });

    await this.#sleep(clampDelay(this.#faults.latencyMs, 0));
    if (this.#stopped) return;

    const faultStatus = this.#drawFault();
    if (faultStatus !== null) {
      this.#log.info({ event: 'dds_sim.registration.fault', status: faultStatus, node_url: nodeUrl });
      this.#emit({ type: 'registration.fault', status: faultStatus });
      return this.#faultAnswer(res, faultStatus);
    }

    const node = this.#upsertNode(nodeUrl, publicKey);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
    this.#log.info({ event: 'dds_sim.registration.accepted', node_url: nodeUrl, node_id: node.nodeId });
    this.#emit({ type: 'registration.accepted', nodeUrl, nodeId: node.nodeId });
    this.#later(this.#callbackDelayMs, () => {
      void this.#callback(node);
    });
  }

  /** Read the body up to the limit; drains (without keeping) whatever lies beyond it. */
  #readBody(req: http.IncomingMessage): Promise<Buffer | 'too-large' | 'aborted'> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (value: Buffer | 'too-large' | 'aborted'): void => {
        if (done) return;
        done = true;
        resolve(value);
      };
      req.on('data', (chunk: Buffer) => {
        if (done) return;
        size += chunk.length;
        if (size > MAX_REGISTRATION_BODY_BYTES) {
          chunks.length = 0;
          finish('too-large');
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => finish(Buffer.concat(chunks)));
      req.on('error', () => finish('aborted'));
      req.on('close', () => finish(req.complete ? Buffer.concat(chunks) : 'aborted'));
    });
  }

  /** The status of a simulated failure for this registration, or `null` to accept it. */
  #drawFault(): number | null {
    const { failStatus, failCount, failureRate } = this.#faults;
    if (failStatus != null && (failCount == null || failCount > 0)) {
      if (failCount != null) {
        this.#faults = { ...this.#faults, failCount: failCount - 1 };
        this.#emit({ type: 'faults.changed', faults: this.faults });
      }
      return failStatus;
    }
    if (failureRate !== undefined && failureRate > 0 && this.#random() < failureRate) return failStatus ?? 500;
    return null;
  }

  #upsertNode(nodeUrl: string, publicKey: string): NodeRecord {
    const nodeId = deriveNodeId(publicKey, nodeUrl);
    const now = Date.now();
    const existing = this.#nodes.get(nodeId);
    if (existing) {
      existing.registeredAt = now;
      // It just spoke to us: a fresh count.
      existing.failedProbes = 0;
      return existing;
    }
    const node: NodeRecord = {
      nodeId,
      nodeUrl,
      publicKey,
      registeredAt: now,
      lastProbeAt: null,
      probes: 0,
      failedProbes: 0,
      probeTimer: null,
      probing: false,
    };
    this.#nodes.set(nodeId, node);
    return node;
  }

  /** One call to a node as DDS makes it: the status, or why there was none. The body is never read. */
  async #callNode(endpoint: string, init: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number | null; error?: string }> {
    try {
      // `Connection: close`: no pooled socket outlives the request (and keeps the process alive).
      const res = await fetch(endpoint, {
        ...init,
        headers: { ...init.headers, connection: 'close', 'user-agent': `DDS v${this.#version}` },
        redirect: 'manual',
        signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#requestTimeoutMs)]),
      });
      await res.body?.cancel().catch(() => undefined);
      return { status: res.status };
    } catch (err) {
      return { status: null, error: describeRequestError(err) };
    }
  }

  async #callback(node: NodeRecord): Promise<void> {
    if (this.#stopped) return;
    const endpoint = `${stripTrailingSlashes(node.nodeUrl)}/internal/v1/registrations`;
    const secret = randomBytes(32).toString('hex');
    const payload = JSON.stringify({
      id: node.nodeId,
      secret,
      organization_id: SIM_ORGANIZATION_ID,
      lighthouses_in_domains: [],
      domains: [],
    });
    const { status, error } = await this.#callNode(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
    if (this.#stopped) return;
    const fields = { node_url: node.nodeUrl, node_id: node.nodeId, status, secret_len: secret.length };
    if (error === undefined && status !== null && status >= 200 && status < 300) {
      this.#log.info({ event: 'dds_sim.callback.sent', ...fields });
    } else {
      this.#log.warn({ event: 'dds_sim.callback.error', ...fields, ...(error === undefined ? {} : { error }) });
    }
    this.#emit({
      type: 'callback.sent',
      nodeUrl: node.nodeUrl,
      nodeId: node.nodeId,
      status,
      ...(error === undefined ? {} : { error }),
    });
    // One probe loop per node: a re-registration keeps the running one.
    if (node.probeTimer === null && !node.probing) this.#scheduleProbe(node, this.#probeIntervalMs);
  }

  #cancelProbe(node: NodeRecord): void {
    if (node.probeTimer !== null) {
      clearTimeout(node.probeTimer);
      node.probeTimer = null;
    }
  }

  /** Arm the node's probe timer (replacing a pending one); the probe in flight, if any, re-arms it when done. */
  #scheduleProbe(node: NodeRecord, delayMs: number): void {
    if (this.#stopped || this.#faults.pauseProbes === true) return;
    this.#cancelProbe(node);
    if (node.probing) return;
    node.probeTimer = setTimeout(() => {
      node.probeTimer = null;
      void this.#probe(node);
    }, delayMs);
    node.probeTimer.unref();
  }

  async #probe(node: NodeRecord): Promise<void> {
    if (this.#stopped || this.#faults.pauseProbes === true || node.probing) return;
    node.probing = true;
    const endpoint = `${stripTrailingSlashes(node.nodeUrl)}/health`;
    const { status, error } = await this.#callNode(endpoint, {});
    node.probing = false;
    if (this.#stopped) return;
    node.probes += 1;
    node.lastProbeAt = Date.now();
    const ok = error === undefined && status === 200;
    node.failedProbes = ok ? 0 : node.failedProbes + 1;
    const fields = { node_url: node.nodeUrl, node_id: node.nodeId, status };
    if (ok) this.#log.debug({ event: 'dds_sim.probe.sent', ...fields });
    else this.#log.warn({ event: 'dds_sim.probe.error', ...fields, failed_probes: node.failedProbes, ...(error === undefined ? {} : { error }) });
    this.#emit({ type: 'probe.sent', nodeUrl: node.nodeUrl, status, ...(error === undefined ? {} : { error }) });
    if (this.#forgetAfterFailedProbes > 0 && node.failedProbes >= this.#forgetAfterFailedProbes) this.#forgetSilentNode(node);
    else this.#scheduleProbe(node, this.#probeIntervalMs);
  }

  /** Drop a node that stopped answering: no more probes until it registers again. */
  #forgetSilentNode(node: NodeRecord): void {
    this.#cancelProbe(node);
    if (this.#nodes.get(node.nodeId) === node) this.#nodes.delete(node.nodeId);
    this.#log.info(
      { event: 'dds_sim.node.forgotten', node_url: node.nodeUrl, node_id: node.nodeId, failed_probes: node.failedProbes },
      `forgetting ${node.nodeUrl}: ${node.failedProbes} failed probes in a row; it is probed again once it registers`,
    );
    this.#emit({ type: 'node.forgotten', nodeUrl: node.nodeUrl, nodeId: node.nodeId, failedProbes: node.failedProbes });
  }
}
