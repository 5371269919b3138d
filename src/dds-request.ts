/**
 * dds-request — one JSON POST to DDS, the plumbing both protocol generations
 * share (PROTOCOL.md §1 and §6.3): the endpoint under a base URL, the got
 * request (no retries, no redirects followed, a whole-request timeout), the
 * status classes, `Retry-After`, the bounded body read, the scrubbed snippet
 * and a transport cause built from error codes only.
 *
 * Bodies sent to DDS carry secrets, so no `got` error ever leaves this module
 * (it holds the request options, body included): {@link postJson} resolves
 * with a small {@link DdsPostOutcome} and never rejects.
 *
 * @module
 */
import gotDefault from 'got';
// got is ESM-only: the attribute lets the CommonJS types (dist/cjs-types) load its types too.
import type { Got, Request as GotRequest } from 'got' with { 'resolution-mode': 'import' };
import type { IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import { minSpellingLength, redactText, secretMatcher } from './redact.js';
import type { FailureClass, FailureInfo, RegistrationFailure } from '../machines/registrar.js';

/** At most this many bytes of a response body are read; the rest is discarded. */
export const MAX_RESPONSE_BODY_BYTES = 64 * 1024;

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
 * `${base without trailing slashes}${path}`, a path prefix of the base kept
 * (`https://h/dds/` → `https://h/dds/internal/…`), userinfo kept (use
 * {@link redactUrl} to show it).
 *
 * @throws {InvalidUrlError} for an unparsable or non-http(s) URL, or one with a query or fragment.
 */
export function ddsEndpoint(ddsBaseUrl: string, path: string): string {
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
  return `${base.replace(/\/+$/, '')}${path}`;
}

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

/** `Retry-After` of an answer, in ms: read on 429 and 503 only, else null. */
export function retryAfterOf(status: number, headers: IncomingHttpHeaders): number | null {
  if (status !== 429 && status !== 503) return null;
  const header = headers['retry-after'];
  return parseRetryAfter(typeof header === 'string' ? header : undefined);
}

/** A failure's fields, `Retry-After` optional. */
export type FailureInit = Omit<FailureInfo, 'retryAfterMs'> & { retryAfterMs?: number | null };

/** A {@link RegistrationFailure} with its keys always in one order (`code` only when there is one). */
export function failure(init: FailureInit): RegistrationFailure {
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

/** The matchers of the few secret lists this process scrubs with (its configured secrets), compiled once. */
const scrubMatchers = new Map<string, RegExp | null>();

/**
 * Replace every spelling of each secret in a text by `[redacted]`: raw,
 * JSON-escaped, percent-encoded, HTML entities, base64 (see redact.ts; a
 * secret shorter than 8 characters only as a whole token).
 */
export function scrubSecrets(text: string, allSecrets: readonly string[]): string {
  // A secret longer than the text in every spelling cannot be in it: no matcher to compile (a fresh signature's would cost ~50 ms).
  const secrets = allSecrets.filter((secret) => minSpellingLength(secret) <= text.length);
  if (secrets.length === 0) return text;
  const key = secrets.join('\0');
  let matcher = scrubMatchers.get(key);
  if (matcher === undefined) {
    matcher = secretMatcher(secrets);
    if (scrubMatchers.size >= 8) scrubMatchers.delete(scrubMatchers.keys().next().value as string);
    scrubMatchers.set(key, matcher);
  }
  return redactText(text, matcher);
}

/** How long a snippet may be: in characters (code points; §1) or in UTF-8 bytes (§6.3). */
export type SnippetLimit = { chars: number } | { bytes: number };

/** The longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`, cut between two characters. */
export function cutUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return text.slice(0, end);
}

/**
 * The `body_snippet` of a failure message: the secrets scrubbed, cut to the
 * limit, line breaks turned into spaces.
 */
export function bodySnippet(text: string, secrets: readonly string[], limit: SnippetLimit): string {
  const scrubbed = scrubSecrets(text, secrets);
  let cut: string;
  if ('chars' in limit) {
    const chars = Array.from(scrubbed);
    cut = chars.length > limit.chars ? chars.slice(0, limit.chars).join('') : scrubbed;
  } else {
    cut = cutUtf8(scrubbed, limit.bytes);
  }
  // A cut can only shorten a match, never create one, but scrub once more for a secret made of line breaks.
  return scrubSecrets(cut.replace(/\r\n|\r|\n/g, ' '), secrets);
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

/** A transport failure, described from codes and names only. */
export interface TransportCause {
  /** e.g. `ETIMEDOUT`, `ECONNREFUSED`; undefined when the error had none. */
  code: string | undefined;
  /** e.g. `connect ECONNREFUSED 127.0.0.1:8787`, `timeout after 10000 ms`. */
  cause: string;
}

/**
 * A short cause for a transport failure, built only from the error's `code`,
 * `name` and its cause's `syscall`/`address`/`port`/`hostname` — never from a
 * message, options or body.
 */
export function describeTransportError(error: unknown, timeoutMs: number): TransportCause {
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

/** What came of reading a body: the bytes (at most the bound), and the error that cut it short, if any. */
interface BoundedBody {
  bytes: Buffer;
  /** The read ended early on an error (timeout, reset, abort); `bytes` is what came before. */
  error: unknown;
  /** More than the bound arrived (and was discarded). */
  truncated: boolean;
}

/** Read at most `limit` bytes of a stream; stops early on error (keeping what came). */
async function readBounded(stream: GotRequest, limit: number): Promise<BoundedBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  let error: unknown;
  try {
    for await (const chunk of stream as AsyncIterable<unknown>) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      const room = limit - size;
      chunks.push(buf.length > room ? buf.subarray(0, room) : buf);
      size += Math.min(buf.length, room);
      if (buf.length > room) truncated = true;
      if (size >= limit) break;
    }
  } catch (caught) {
    error = caught ?? new Error('read failed');
  }
  return { bytes: Buffer.concat(chunks), error, truncated };
}

/** Options of {@link postJson}. */
export interface DdsPostOptions {
  /** The full URL (userinfo included, as given). */
  target: string;
  /** The JSON text to send. */
  payload: string;
  /** Whole-request timeout, response body included. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Whatever its defaults, sent with no retries, no redirects followed and no HTTP-error throwing. */
  got?: Got | undefined;
  /** Read a 2xx answer's body too (default: a 2xx is not read, its connection closed at once). */
  readSuccessBody?: boolean;
}

/** An answer with a status line. */
export interface DdsAnswer {
  kind: 'answer';
  status: number;
  class: FailureClass | 'ok';
  headers: IncomingHttpHeaders;
  /** The body as read (bounded by {@link MAX_RESPONSE_BODY_BYTES}); empty for an unread 2xx. */
  body: Buffer;
  /** Reading the body failed part way (`describeTransportError` of it); undefined when it did not. */
  bodyError: TransportCause | undefined;
  /** More than {@link MAX_RESPONSE_BODY_BYTES} arrived. */
  bodyTruncated: boolean;
  /** Time from sending to the answer's status line. */
  durationMs: number;
}

/** What one POST came to. */
export type DdsPostOutcome = DdsAnswer | { kind: 'aborted' } | ({ kind: 'transport' } & TransportCause);

/** POST `payload` once. Resolves with the outcome, never rejects, never throws. */
export async function postJson(o: DdsPostOptions): Promise<DdsPostOutcome> {
  const { signal, timeoutMs } = o;
  if (signal?.aborted) return { kind: 'aborted' };
  let stream: GotRequest | undefined;
  try {
    const client = o.got ?? gotDefault;
    const started = performance.now();
    const request = client.stream(o.target, {
      method: 'POST',
      body: o.payload,
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
    const head = await new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
      request.once('response', (response: { statusCode: number; headers: IncomingHttpHeaders }) =>
        resolve({ status: response.statusCode, headers: response.headers }),
      );
      request.once('error', reject);
    });
    const durationMs = performance.now() - started;
    const cls = classifyStatus(head.status);
    const answer: DdsAnswer = {
      kind: 'answer',
      status: head.status,
      class: cls,
      headers: head.headers,
      body: Buffer.alloc(0),
      bodyError: undefined,
      bodyTruncated: false,
      durationMs,
    };
    if (cls === 'ok' && o.readSuccessBody !== true) {
      // Destroying the request also closes its connection: nothing stays open after STOP.
      request.destroy();
      return answer;
    }
    const read = await readBounded(request, MAX_RESPONSE_BODY_BYTES);
    request.destroy();
    if (signal?.aborted) return { kind: 'aborted' };
    answer.body = read.bytes;
    answer.bodyTruncated = read.truncated;
    if (read.error !== undefined) answer.bodyError = describeTransportError(read.error, timeoutMs);
    return answer;
  } catch (error) {
    try {
      stream?.destroy();
    } catch {
      // ignore
    }
    if (signal?.aborted || field(error, 'code') === 'ERR_ABORTED') return { kind: 'aborted' };
    return { kind: 'transport', ...describeTransportError(error, timeoutMs) };
  }
}

/** A body as text (invalid UTF-8 replaced, never thrown). */
export function decodeText(bytes: Buffer): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}
