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
 * - no `got` error ever leaves src/dds-request.ts (the request plumbing it
 *   shares with the wallet generation): every failure becomes a
 *   {@link RegistrationFailure} whose message is built from error codes and
 *   names only;
 * - an error body echoing the secret is scrubbed before it reaches a message;
 * - {@link createRegistrationClient} keeps the secret and the key in a
 *   closure: the client object prints and serialises without them.
 *
 * @module
 */
// got is ESM-only: the attribute lets the CommonJS types (dist/cjs-types) load its types too.
import type { Got } from 'got' with { 'resolution-mode': 'import' };
import {
  formatTimestampNow,
  secp256k1PubkeyUncompressedHex,
  signRecoverableKeccakHex,
  type SecretKey,
} from './crypto.js';
import {
  bodySnippet as snippetOf,
  classifyStatus,
  ddsEndpoint,
  decodeText,
  describeTransportError,
  failure,
  InvalidUrlError,
  MAX_RESPONSE_BODY_BYTES,
  parseRetryAfter,
  postJson,
  redactUrl,
  retryAfterOf,
  scrubSecrets,
} from './dds-request.js';
import { silentLogger, type Logger } from './log.js';
import { REDACTED } from './redact.js';
import type { RegistrationFailure } from '../machines/registrar.js';

/** What replaces the registration secret should DDS echo it in a body. */
export { REDACTED };
export { classifyStatus, InvalidUrlError, MAX_RESPONSE_BODY_BYTES, parseRetryAfter, redactUrl };

/** The path DDS serves registrations on, appended to the base URL. */
export const REGISTRATION_PATH = '/internal/v1/nodes/register';

/** Default timeout of one registration request, in milliseconds. */
export const DEFAULT_REGISTRATION_TIMEOUT_MS = 10_000;

/** At most this many characters of an error body go into a failure message. */
export const BODY_SNIPPET_MAX_CHARS = 512;

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
 * The registration endpoint for a DDS base URL:
 * `${base without trailing slashes}/internal/v1/nodes/register`.
 * A path prefix is kept (`https://h/dds/` → `https://h/dds/internal/v1/nodes/register`).
 * The result keeps any userinfo of the base URL; use {@link redactUrl} to show it.
 *
 * @throws {InvalidUrlError} for an unparsable or non-http(s) URL, or one with a query or fragment.
 */
export function registrationEndpoint(ddsBaseUrl: string): string {
  return ddsEndpoint(ddsBaseUrl, REGISTRATION_PATH);
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

/**
 * The `body_snippet` of a failure message: the secret scrubbed, at most
 * {@link BODY_SNIPPET_MAX_CHARS} characters, line breaks turned into spaces.
 */
export function bodySnippet(text: string, secret: string): string {
  return snippetOf(text, [secret], { chars: BODY_SNIPPET_MAX_CHARS });
}

/** `registration failed: status <code>, endpoint <url>, body_snippet: <text>`. */
export function statusFailureMessage(status: number, endpoint: string, snippet: string): string {
  return `registration failed: status ${status}, endpoint ${endpoint}, body_snippet: ${snippet}`;
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

  let payload: string;
  try {
    payload = serializeRegistrationBody(o.body);
  } catch (error) {
    const { code, cause } = describeTransportError(error, timeoutMs);
    return transportFailure(endpoint, cause, code, secret);
  }
  const outcome = await postJson({ target, payload, timeoutMs, signal, got: o.got });
  if (outcome.kind === 'aborted') return abortedFailure(endpoint);
  if (outcome.kind === 'transport') return transportFailure(endpoint, outcome.cause, outcome.code, secret);
  if (outcome.class === 'ok') return { ok: true, status: outcome.status, endpoint, durationMs: outcome.durationMs };
  return failure({
    class: outcome.class,
    status: outcome.status,
    endpoint,
    retryAfterMs: retryAfterOf(outcome.status, outcome.headers),
    message: statusFailureMessage(outcome.status, endpoint, bodySnippet(decodeText(outcome.body), secret)),
  });
}

function transportFailure(endpoint: string, cause: string, code: string | undefined, secret: string): RegistrationFailure {
  return failure({
    class: 'retryable',
    status: null,
    endpoint,
    message: scrubSecrets(`POST ${endpoint} failed: ${cause}`, [secret]),
    ...(code === undefined ? {} : { code }),
  });
}

/** What both generations' clients are given (§1 and §6 of the protocol). */
export interface DdsClientOptions {
  ddsBaseUrl: string;
  nodeVersion: string;
  regSecret: string;
  key: SecretKey;
  /** Must not be empty for a registration (a `slow` failure before any request). */
  capabilities?: readonly string[];
  /** Timeout of each request, response body included (default 10 000 ms). */
  timeoutMs?: number;
  /** A custom got instance (sent with no retries, no redirects followed, whatever its defaults). */
  got?: Got;
  /** One `registration.attempt` line per registration (default: silent). */
  logger?: Logger;
}

/** Options of {@link createRegistrationClient}. */
export interface RegistrationClientOptions extends DdsClientOptions {
  nodeUrl: string;
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
  /**
   * Sign a fresh body (timestamp now) and POST it once. Never rejects.
   * `beforeSend`, when given, is asked right before the POST: a reason
   * (a string) means "do not send" — the result is then a `retryable`
   * failure with code `ENOTSENT` (the registrar confirms its lock there).
   */
  register(signal?: AbortSignal, beforeSend?: () => Promise<string | undefined>): Promise<RegistrationResult>;
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
  const register = async (signal?: AbortSignal, beforeSend?: () => Promise<string | undefined>): Promise<RegistrationResult> => {
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
    const refusal = beforeSend === undefined ? undefined : await beforeSend();
    if (refusal !== undefined) {
      return failure({ class: 'retryable', status: null, endpoint, message: `POST ${endpoint} not sent: ${refusal}`, code: 'ENOTSENT' });
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
