/**
 * register — the DDS client: build the signed registration body and POST it
 * once (PROTOCOL.md §1).
 *
 * One call, one request, one small result value. Retrying, backing off and
 * logging the outcome belong to the statechart; this module only tells the
 * failures apart ({@link FailureClass}) and reads `Retry-After`.
 *
 * The request body carries the registration secret, so:
 * - redirects are never followed (the secret must not reach another origin);
 * - no `got` error ever leaves this module (it holds the request options,
 *   body included): every failure becomes a {@link RegistrationFailure} whose
 *   message is built from error codes and names only;
 * - an error body echoing the secret is scrubbed before it reaches a message;
 * - {@link createRegistrationClient} keeps the secret and the key in a
 *   closure: the client object prints and serialises without them.
 *
 * @module
 */
import gotDefault, { type Got, type Request as GotRequest } from 'got';
import type { IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  formatTimestampNow,
  secp256k1PubkeyUncompressedHex,
  signRecoverableKeccakHex,
  type SecretKey,
} from './crypto.js';
import { silentLogger, type Logger } from './log.js';
import { REDACTED } from './redact.js';
import type { FailureClass, FailureInfo, RegistrationFailure } from '../machines/registrar.js';

/** What replaces the registration secret should DDS echo it in a body. */
export { REDACTED };

/** The path DDS serves registrations on, appended to the base URL. */
export const REGISTRATION_PATH = '/internal/v1/nodes/register';

/** Default timeout of one registration request, in milliseconds. */
export const DEFAULT_REGISTRATION_TIMEOUT_MS = 10_000;

/** At most this many characters of an error body go into a failure message. */
export const BODY_SNIPPET_MAX_CHARS = 512;

/** At most this many bytes of a response body are read; the rest is discarded. */
export const MAX_RESPONSE_BODY_BYTES = 64 * 1024;


/**
 * The JSON body of `POST …/internal/v1/nodes/register`. On the wire its keys
 * appear in exactly this order (see {@link serializeRegistrationBody}).
 */
export interface RegistrationBody {
  /** The node's public URL, exactly as configured. */
  url: string;
  /** The node's version string. */
  version: string;
  /** The registration secret (the `regSecret` setting), verbatim. */
  registration_credentials: string;
  /** `r‖s‖v` Keccak signature over `url + timestamp`, 130 hex digits. */
  signature: string;
  /** RFC 3339 UTC, nine fractional digits, `Z`. */
  timestamp: string;
  /** Uncompressed secp256k1 public key, 130 hex digits. */
  public_key: string;
  /** Capability paths, e.g. `/reconstruction/global-refinement/v1`. */
  capabilities: string[];
}

/**
 * Thrown for a DDS base URL that cannot be used: unparsable, not http(s), or
 * with a query or fragment. The message never contains the URL's userinfo
 * (and, for an unparsable URL, none of the input at all).
 */
export class InvalidUrlError extends TypeError {
  override readonly name = 'InvalidUrlError';
  readonly code = 'ERR_INVALID_DDS_URL';
}

/**
 * A URL for display: the same URL with any `user:password@` removed.
 * Text that does not parse as a URL is returned as is.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (parsed.username === '' && parsed.password === '') return url;
  parsed.username = '';
  parsed.password = '';
  return parsed.href;
}

/**
 * The registration endpoint for a DDS base URL:
 * `${base without trailing slashes}/internal/v1/nodes/register`.
 * A path prefix is kept (`https://h/dds/` → `https://h/dds/internal/v1/nodes/register`).
 * The result keeps any userinfo of the base URL; use {@link redactUrl} to show it.
 *
 * @throws {InvalidUrlError} for an unparsable or non-http(s) URL, or one with a query or fragment.
 */
export function registrationEndpoint(ddsBaseUrl: string): string {
  if (typeof ddsBaseUrl !== 'string') throw new InvalidUrlError('invalid DDS base URL: expected a string');
  const base = ddsBaseUrl.trim();
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch {
    throw new InvalidUrlError('invalid DDS base URL: not a parsable absolute URL (expected http:// or https://)');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InvalidUrlError(
      `invalid DDS base URL: scheme must be http or https, got ${JSON.stringify(parsed.protocol.slice(0, -1))}`,
    );
  }
  if (parsed.search !== '' || parsed.hash !== '' || /[?#]/.test(base)) {
    throw new InvalidUrlError('invalid DDS base URL: must not have a query (?…) or a fragment (#…)');
  }
  return `${base.replace(/\/+$/, '')}${REGISTRATION_PATH}`;
}

/** Options of {@link buildRegistrationRequest}. */
export interface BuildRegistrationRequestOptions {
  /** The node's public URL, sent and signed exactly as given. */
  nodeUrl: string;
  /** The node's version string, sent as given. */
  nodeVersion: string;
  /** The registration secret (the `regSecret` setting). */
  regSecret: string;
  /** The node's secp256k1 key. */
  key: SecretKey;
  /** Capability paths (default none). */
  capabilities?: readonly string[];
  /** The signing time (default: now, {@link formatTimestampNow}). */
  timestamp?: string;
  /** `key`'s public key, when the caller has it already (default: derived from `key`: one point multiplication). */
  publicKeyHex?: string;
  /** `signRecoverableKeccakHex(key, nodeUrl + timestamp)` made elsewhere (default: made here). */
  signature?: string;
}

/**
 * Build and sign a registration body: `signature` is
 * `signRecoverableKeccakHex(key, url + timestamp)`.
 */
export function buildRegistrationRequest(o: BuildRegistrationRequestOptions): RegistrationBody {
  const timestamp = o.timestamp ?? formatTimestampNow();
  return {
    url: o.nodeUrl,
    version: o.nodeVersion,
    registration_credentials: o.regSecret,
    signature: o.signature ?? signRecoverableKeccakHex(o.key, o.nodeUrl + timestamp),
    timestamp,
    public_key: o.publicKeyHex ?? secp256k1PubkeyUncompressedHex(o.key),
    capabilities: [...(o.capabilities ?? [])],
  };
}

/** The seven keys of a registration body, in the order the wire requires. */
export const REGISTRATION_KEYS = [
  'url',
  'version',
  'registration_credentials',
  'signature',
  'timestamp',
  'public_key',
  'capabilities',
] as const satisfies ReadonlyArray<keyof RegistrationBody>;

/** The body as JSON text, keys in the wire order whatever the object's own order. */
export function serializeRegistrationBody(body: RegistrationBody): string {
  return JSON.stringify(Object.fromEntries(REGISTRATION_KEYS.map((k) => [k, body[k]])));
}

/** A 2xx answer. */
export interface RegistrationSuccess {
  ok: true;
  status: number;
  /** The endpoint, userinfo removed. */
  endpoint: string;
  /** Time from sending to the answer's status line. */
  durationMs: number;
}

/** The outcome of one attempt. */
export type RegistrationResult = RegistrationSuccess | RegistrationFailure;

/**
 * Classify an HTTP status: any 2xx is `ok`; 409 `conflict`; 408, 429 and 5xx
 * `retryable`; everything else (3xx, other 4xx) `slow`.
 */
export function classifyStatus(status: number): FailureClass | 'ok' {
  if (status >= 200 && status <= 299) return 'ok';
  if (status === 409) return 'conflict';
  if (status === 408 || status === 429 || (status >= 500 && status <= 599)) return 'retryable';
  return 'slow';
}

const HTTP_DATE_START = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s/i;

/**
 * Parse a `Retry-After` header: delta-seconds (`120`) or an HTTP-date
 * (`Wed, 21 Oct 2015 07:28:00 GMT`), into milliseconds from `now`
 * (default `Date.now()`). A date in the past gives 0; an absent or invalid
 * header gives null.
 */
export function parseRetryAfter(header: string | undefined, now: number = Date.now()): number | null {
  if (typeof header !== 'string') return null;
  const value = header.trim();
  if (value === '') return null;
  if (/^\d+$/.test(value)) {
    const ms = Number(value) * 1000;
    return Number.isFinite(ms) ? ms : null;
  }
  if (!HTTP_DATE_START.test(value)) return null;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

/** Options of {@link registerOnce}. */
export interface RegisterOnceOptions {
  /** DDS base URL; the endpoint is derived with {@link registrationEndpoint}. */
  ddsBaseUrl: string;
  /** The signed body (see {@link buildRegistrationRequest}). */
  body: RegistrationBody;
  /** Whole-request timeout, response body included (default 10 000 ms). */
  timeoutMs?: number;
  /** Aborts the request; the result is then a `retryable` failure with code `ABORTED`. */
  signal?: AbortSignal;
  /**
   * A custom got instance. Whatever its defaults, the request is sent with
   * no retries, no redirects followed and no HTTP-error throwing.
   */
  got?: Got;
  /** Receives one `registration.attempt` line per call (default: silent). */
  logger?: Logger;
}

/** A failure's fields, `Retry-After` optional. */
type FailureInit = Omit<FailureInfo, 'retryAfterMs'> & { retryAfterMs?: number | null };

function failure(init: FailureInit): RegistrationFailure {
  const result: RegistrationFailure = {
    ok: false,
    class: init.class,
    status: init.status,
    endpoint: init.endpoint,
    retryAfterMs: init.retryAfterMs ?? null,
    message: init.message,
  };
  if (init.code !== undefined) result.code = init.code;
  return result;
}

/** Replace every occurrence of the secret (raw or JSON-escaped) in a text. */
function scrub(text: string, secret: string): string {
  if (secret === '') return text;
  let out = text.split(secret).join(REDACTED);
  const escaped = JSON.stringify(secret).slice(1, -1);
  if (escaped !== secret) out = out.split(escaped).join(REDACTED);
  return out;
}

/**
 * The `body_snippet` of a failure message: the secret scrubbed, at most
 * {@link BODY_SNIPPET_MAX_CHARS} characters, line breaks turned into spaces.
 */
export function bodySnippet(text: string, secret: string): string {
  const scrubbed = scrub(text, secret);
  const chars = Array.from(scrubbed);
  const cut = chars.length > BODY_SNIPPET_MAX_CHARS ? chars.slice(0, BODY_SNIPPET_MAX_CHARS).join('') : scrubbed;
  // A cut can only shorten a match, never create one, but scrub once more for a secret made of line breaks.
  return scrub(cut.replace(/\r\n|\r|\n/g, ' '), secret);
}

/** `registration failed: status <code>, endpoint <url>, body_snippet: <text>`. */
export function statusFailureMessage(status: number, endpoint: string, snippet: string): string {
  return `registration failed: status ${status}, endpoint ${endpoint}, body_snippet: ${snippet}`;
}

const CODE_PATTERN = /^[A-Za-z0-9_]{1,64}$/;
const ADDRESS_PATTERN = /^[0-9A-Za-z.:%]{1,64}$/;
const HOSTNAME_PATTERN = /^[A-Za-z0-9.-]{1,253}$/;

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

function stringField(value: unknown, key: string, pattern: RegExp): string | undefined {
  const v = field(value, key);
  return typeof v === 'string' && pattern.test(v) ? v : undefined;
}

const CODE_PHRASES: Readonly<Record<string, string>> = {
  ECONNRESET: 'connection reset (ECONNRESET)',
  EPIPE: 'connection closed while sending (EPIPE)',
  ERR_GOT_REQUEST_ERROR: 'request error',
  ERR_READING_RESPONSE_STREAM: 'error reading the response',
  ERR_BODY_PARSE_FAILURE: 'error reading the response',
};

/**
 * A short cause for a transport failure, built only from the error's `code`,
 * `name` and its cause's `syscall`/`address`/`port`/`hostname` — never from a
 * message, options or body.
 */
function describeTransportError(error: unknown, timeoutMs: number): { code: string | undefined; cause: string } {
  const name = stringField(error, 'name', CODE_PATTERN);
  const code = stringField(error, 'code', CODE_PATTERN);
  if (name === 'TimeoutError' || code === 'ETIMEDOUT') {
    return { code: 'ETIMEDOUT', cause: `timeout after ${timeoutMs} ms` };
  }
  const inner = field(error, 'cause');
  const innerCode = stringField(inner, 'code', CODE_PATTERN);
  const effectiveCode = code !== undefined && code !== 'ERR_GOT_REQUEST_ERROR' ? code : (innerCode ?? code);
  const syscall = stringField(inner, 'syscall', CODE_PATTERN) ?? stringField(error, 'syscall', CODE_PATTERN);
  if (syscall !== undefined && effectiveCode !== undefined) {
    const address = stringField(inner, 'address', ADDRESS_PATTERN);
    const port = field(inner, 'port');
    const hostname = stringField(inner, 'hostname', HOSTNAME_PATTERN);
    let target = '';
    if (address !== undefined) {
      target = typeof port === 'number' && Number.isInteger(port) ? ` ${address}:${port}` : ` ${address}`;
    } else if (hostname !== undefined) {
      target = ` ${hostname}`;
    }
    return { code: effectiveCode, cause: `${syscall} ${effectiveCode}${target}` };
  }
  if (effectiveCode !== undefined) {
    return { code: effectiveCode, cause: CODE_PHRASES[effectiveCode] ?? effectiveCode };
  }
  return { code: undefined, cause: name ?? 'unknown error' };
}

function abortedFailure(endpoint: string): RegistrationFailure {
  return failure({
    class: 'retryable',
    status: null,
    endpoint,
    message: `POST ${endpoint} failed: aborted`,
    code: 'ABORTED',
  });
}

/** Read at most `limit` bytes of a stream; stops early on error (keeping what came). */
async function readBounded(stream: GotRequest, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<unknown>) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      const room = limit - size;
      chunks.push(buf.length > room ? buf.subarray(0, room) : buf);
      size += Math.min(buf.length, room);
      if (size >= limit) break;
    }
  } catch {
    // A timeout, reset or abort while reading: keep the part that arrived.
  }
  return Buffer.concat(chunks);
}

interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
}

/**
 * POST the body once. Resolves with the outcome, never rejects, never throws:
 * transport errors, timeouts and aborts become `retryable` failures.
 */
export async function registerOnce(o: RegisterOnceOptions): Promise<RegistrationResult> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_REGISTRATION_TIMEOUT_MS;
  const logger = o.logger ?? silentLogger;
  let target: string;
  let endpoint: string;
  try {
    target = registrationEndpoint(o.ddsBaseUrl);
    endpoint = redactUrl(target);
  } catch (error) {
    return failure({
      class: 'slow',
      status: null,
      endpoint: '',
      message: error instanceof InvalidUrlError ? error.message : 'invalid DDS base URL',
      code: 'ERR_INVALID_DDS_URL',
    });
  }
  const secret = typeof o.body?.registration_credentials === 'string' ? o.body.registration_credentials : '';
  const signal = o.signal;
  if (signal?.aborted) return abortedFailure(endpoint);

  try {
    logger.info(
      {
        event: 'registration.attempt',
        endpoint,
        version: o.body.version,
        public_key_prefix: String(o.body.public_key).slice(0, 16),
        capabilities: [...o.body.capabilities],
      },
      `POST ${endpoint}`,
    );
  } catch {
    // A failing logger must not fail the attempt.
  }

  let stream: GotRequest | undefined;
  try {
    const payload = serializeRegistrationBody(o.body);
    const client = o.got ?? gotDefault;
    const started = performance.now();
    const request = client.stream(target, {
      method: 'POST',
      body: payload,
      headers: { 'content-type': 'application/json' },
      timeout: { request: timeoutMs },
      retry: { limit: 0 },
      followRedirect: false,
      throwHttpErrors: false,
      ...(signal ? { signal } : {}),
    });
    stream = request;
    // Keep a listener for the stream's whole life: a late error must never go unhandled.
    request.on('error', () => undefined);
    const answer = await new Promise<RawAnswer>((resolve, reject) => {
      request.once('response', (response: { statusCode: number; headers: IncomingHttpHeaders }) =>
        resolve({ status: response.statusCode, headers: response.headers }),
      );
      request.once('error', reject);
    });
    const durationMs = performance.now() - started;
    const cls = classifyStatus(answer.status);
    if (cls === 'ok') {
      // The answer's body is not needed; destroying the request also closes its connection, so that
      // nothing stays open after STOP (a registration comes once an interval: nothing to reuse).
      request.destroy();
      return { ok: true, status: answer.status, endpoint, durationMs };
    }
    const raw = await readBounded(request, MAX_RESPONSE_BODY_BYTES);
    request.destroy();
    if (signal?.aborted) return abortedFailure(endpoint);
    const text = new TextDecoder('utf-8', { fatal: false }).decode(raw);
    const retryAfterHeader = answer.headers['retry-after'];
    const retryAfterMs =
      answer.status === 429 || answer.status === 503
        ? parseRetryAfter(typeof retryAfterHeader === 'string' ? retryAfterHeader : undefined)
        : null;
    return failure({
      class: cls,
      status: answer.status,
      endpoint,
      retryAfterMs,
      message: statusFailureMessage(answer.status, endpoint, bodySnippet(text, secret)),
    });
  } catch (error) {
    try {
      stream?.destroy();
    } catch {
      // ignore
    }
    if (signal?.aborted || field(error, 'code') === 'ERR_ABORTED') return abortedFailure(endpoint);
    const { code, cause } = describeTransportError(error, timeoutMs);
    return failure({
      class: 'retryable',
      status: null,
      endpoint,
      message: scrub(`POST ${endpoint} failed: ${cause}`, secret),
      ...(code === undefined ? {} : { code }),
    });
  }
}

/** Options of {@link createRegistrationClient}. */
export interface RegistrationClientOptions {
  ddsBaseUrl: string;
  nodeUrl: string;
  nodeVersion: string;
  regSecret: string;
  key: SecretKey;
  capabilities?: readonly string[];
  timeoutMs?: number;
  got?: Got;
  logger?: Logger;
  /** `key`'s public key, when known already (default: derived from `key`). */
  publicKeyHex?: string;
  /**
   * Signs `nodeUrl + timestamp` as `signRecoverableKeccakHex(key, …)` does,
   * elsewhere (e.g. a worker thread: src/warm-signer.ts). Default: here.
   */
  sign?: (message: string) => Promise<string>;
}

/**
 * A registration client that already knows the credentials. It prints,
 * serialises and inspects without the secret or the key.
 */
export interface RegistrationClient {
  /** The endpoint, userinfo removed. */
  readonly endpoint: string;
  /** The uncompressed public key, 130 hex digits. */
  readonly publicKeyHex: string;
  readonly capabilities: readonly string[];
  /** Sign a fresh body (timestamp now) and POST it once. Never rejects. */
  register(signal?: AbortSignal): Promise<RegistrationResult>;
}

/**
 * Capture the secret and the key in a closure and return a client that
 * registers with them. Validates the DDS URL at once.
 *
 * @throws {InvalidUrlError} for an unusable DDS base URL.
 */
export function createRegistrationClient(o: RegistrationClientOptions): RegistrationClient {
  const endpoint = redactUrl(registrationEndpoint(o.ddsBaseUrl));
  const { ddsBaseUrl, nodeUrl, nodeVersion, regSecret, key, timeoutMs, got, logger } = o;
  const capabilities = Object.freeze([...(o.capabilities ?? [])]);
  const publicKeyHex = o.publicKeyHex ?? secp256k1PubkeyUncompressedHex(key);
  const sign = o.sign;
  const register = async (signal?: AbortSignal): Promise<RegistrationResult> => {
    let body: RegistrationBody;
    try {
      const timestamp = formatTimestampNow();
      const signature = sign === undefined ? undefined : await sign(nodeUrl + timestamp);
      body = buildRegistrationRequest({
        nodeUrl,
        nodeVersion,
        regSecret,
        key,
        capabilities,
        publicKeyHex,
        timestamp,
        ...(signature === undefined ? {} : { signature }),
      });
    } catch {
      return failure({ class: 'slow', status: null, endpoint, message: 'could not build the registration request' });
    }
    return registerOnce({
      ddsBaseUrl,
      body,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(signal === undefined ? {} : { signal }),
      ...(got === undefined ? {} : { got }),
      ...(logger === undefined ? {} : { logger }),
    });
  };
  return Object.freeze({ endpoint, publicKeyHex, capabilities, register });
}
