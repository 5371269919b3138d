/**
 * register-siwe — the wallet generation's DDS client (PROTOCOL.md §6): one
 * registration attempt (nonce → SIWE message → EIP-191 signature →
 * `register-wallet`, §6.3) and one sign-in for the access session (nonce →
 * message → signature → `verify` → access token, §6.5).
 *
 * Same contract as src/register.ts: one small result value, never a
 * rejection, the failure classes of {@link classifyStatus}, no redirects
 * followed, nothing secret in a failure or a log line. The secrets here are
 * the registration secret, the key, the signatures (scrubbed should DDS echo
 * them) and the access token, which only ever leaves as an
 * {@link AccessToken} (it prints as `[AccessToken]`).
 *
 * @module
 */
// got is ESM-only: the attribute lets the CommonJS types (dist/cjs-types) load its types too.
import { performance } from 'node:perf_hooks';
import { Concealed } from './concealed.js';
import { deriveEthAddress, secp256k1PubkeyUncompressedHex, signEip191RecoverableHex } from './crypto.js';
import {
  bodySnippet,
  ddsEndpoint,
  decodeText,
  failure,
  postJson,
  redactUrl,
  retryAfterOf,
  scrubSecrets,
  type DdsAnswer,
  type DdsPostOutcome,
  type SnippetLimit,
} from './dds-request.js';
import { silentLogger } from './log.js';
import { DEFAULT_REGISTRATION_TIMEOUT_MS, type DdsClientOptions, type RegistrationClient, type RegistrationResult } from './register.js';
import type { RegistrationFailure } from '../machines/registrar.js';

/** Where a wallet asks for a nonce. */
export const SIWE_NONCE_PATH = '/internal/v1/auth/siwe/request';
/** Where a wallet registers. */
export const SIWE_REGISTRATION_PATH = '/internal/v1/nodes/register-wallet';
/** Where a registered wallet signs in for an access token. */
export const SIWE_VERIFY_PATH = '/internal/v1/auth/siwe/verify';

/** The keys of a `register-wallet` body, in the order the wire requires. */
export const SIWE_REGISTRATION_KEYS = ['message', 'signature', 'registration_credentials', 'capabilities', 'version'] as const;
/** The keys of a `verify` body, in the order the wire requires. */
export const SIWE_VERIFY_KEYS = ['address', 'message', 'signature'] as const;

/** Error bodies go into a failure message up to this many bytes of UTF-8 (§6.3; §1 counts characters). */
export const SIWE_SNIPPET_MAX_BYTES = 512;
const SNIPPET_LIMIT: SnippetLimit = { bytes: SIWE_SNIPPET_MAX_BYTES };

/** The fields of a nonce answer the message is made of, copied verbatim. */
export interface SiweNonceFields {
  nonce: string;
  domain: string;
  uri: string;
  version: string;
  /** Any integer, negative included, printed in decimal. */
  chainId: number;
  issuedAt: string;
}

/** The JSON body of `POST …/register-wallet`; on the wire its keys appear in {@link SIWE_REGISTRATION_KEYS} order. */
export interface SiweRegistrationBody {
  /** The SIWE message ({@link composeSiweMessage}). */
  message: string;
  /** `signEip191RecoverableHex(key, message)`. */
  signature: string;
  /** The registration secret (setting `regSecret`), verbatim. */
  registration_credentials: string;
  capabilities: string[];
  version: string;
}

/** The JSON body of `POST …/auth/siwe/verify`; keys in {@link SIWE_VERIFY_KEYS} order. */
export interface SiweVerifyBody {
  address: string;
  message: string;
  signature: string;
}

/**
 * The SIWE message (EIP-4361 without Statement or Expiration): every field
 * verbatim, only the address local, lines joined by `\n`, no trailing newline.
 */
export function composeSiweMessage(fields: SiweNonceFields, address: string): string {
  return [
    `${fields.domain} wants you to sign in with your Ethereum account:`,
    address,
    '',
    `URI: ${fields.uri}`,
    `Version: ${fields.version}`,
    `Chain ID: ${fields.chainId}`,
    `Nonce: ${fields.nonce}`,
    `Issued At: ${fields.issuedAt}`,
  ].join('\n');
}

/** The body as JSON text, keys in the wire order whatever the object's own order. */
export function serializeSiweRegistrationBody(body: SiweRegistrationBody): string {
  return JSON.stringify(Object.fromEntries(SIWE_REGISTRATION_KEYS.map((k) => [k, body[k]])));
}

/** The body as JSON text, keys in the wire order. */
export function serializeSiweVerifyBody(body: SiweVerifyBody): string {
  return JSON.stringify(Object.fromEntries(SIWE_VERIFY_KEYS.map((k) => [k, body[k]])));
}

/** Why a nonce answer cannot be used: not the JSON it should be (`decode`), or a field missing. */
export type SiweNonceProblem = { ok: false; problem: 'decode'; detail: string } | { ok: false; problem: 'missing'; message: string };

// The crate's names for the missing fields, in the order it checks them.
const NONCE_TEXT_FIELDS = ['nonce', 'domain', 'uri', 'version', 'issuedAt'] as const;
const MISSING_ORDER = [
  ['domain', 'domain'],
  ['uri', 'uri'],
  ['version', 'version'],
  ['chainId', 'chain id'],
  ['issuedAt', 'issued_at'],
] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Read a nonce answer (§6.3 step 1, §6.6): a JSON object whose `nonce`,
 * `domain`, `uri`, `version`, `issuedAt` are strings and `chainId` an integer
 * (null counts as absent; other keys are ignored). A wrong type is a decode
 * problem; then an empty or absent `nonce` is `siwe nonce missing in
 * response`; then any other absent field is `compose SIWE message failed:
 * siwe <field> missing` (an empty string is present, and copied).
 */
export function readSiweNonceResponse(json: unknown): { ok: true; fields: SiweNonceFields } | SiweNonceProblem {
  if (!isObject(json)) return { ok: false, problem: 'decode', detail: 'expected a JSON object' };
  const present = (key: string): boolean => json[key] !== undefined && json[key] !== null;
  for (const key of NONCE_TEXT_FIELDS) {
    if (present(key) && typeof json[key] !== 'string') return { ok: false, problem: 'decode', detail: `${key} is not a string` };
  }
  // Only safe integers can be printed back exactly as DDS sent them.
  if (present('chainId') && !Number.isSafeInteger(json.chainId)) {
    return { ok: false, problem: 'decode', detail: 'chainId is not an integer' };
  }
  if (!present('nonce') || json.nonce === '') return { ok: false, problem: 'missing', message: 'siwe nonce missing in response' };
  for (const [key, name] of MISSING_ORDER) {
    if (!present(key)) return { ok: false, problem: 'missing', message: `compose SIWE message failed: siwe ${name} missing` };
  }
  // Every field was checked above: present, and of its type.
  const { nonce, domain, uri, version, chainId, issuedAt } = json as unknown as SiweNonceFields;
  return { ok: true, fields: { nonce, domain, uri, version, chainId, issuedAt } };
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parse an RFC 3339 date-time (any fraction, `Z` or an offset) into epoch ms (fraction truncated); undefined when it is not one. */
export function parseRfc3339Ms(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(2000, mo, 0)).getUTCDate() - (mo === 2 && !isLeapYear(y) ? 1 : 0);
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) return undefined;
  const offsetH = m[10] === undefined ? 0 : Number(m[10]);
  const offsetM = m[11] === undefined ? 0 : Number(m[11]);
  if (offsetH > 23 || offsetM > 59) return undefined;
  const date = new Date(Date.UTC(2000, mo - 1, d, h, mi, s));
  date.setUTCFullYear(y);
  const fractionMs = Number(`${m[7] ?? ''}000`.slice(0, 3));
  const offsetMs = (m[9] === '-' ? -1 : 1) * (offsetH * 60 + offsetM) * 60_000;
  return date.getTime() + fractionMs - offsetMs;
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** A bearer token from `verify`. It prints, serialises and inspects as `[AccessToken]`. */
export class AccessToken extends Concealed {
  readonly #value: string;
  /** @internal made by {@link SiweRegistrationClient.signIn}. */
  constructor(value: string) {
    super('[AccessToken]');
    if (typeof value !== 'string' || value === '') throw new TypeError('an access token is a non-empty string');
    this.#value = value;
  }
  /** The token itself, for an `Authorization: Bearer` header or the token file. Handle with care. */
  expose(): string {
    return this.#value;
  }
}

/** A successful sign-in. */
export interface SignInSuccess {
  ok: true;
  token: AccessToken;
  /** When the token expires, epoch ms. */
  expiresAtMs: number;
  /** `expiresAtMs` − the time the answer arrived (> 0). */
  lifetimeMs: number;
  /** The verify endpoint, userinfo removed. */
  endpoint: string;
  /** From sending the nonce request to the verify answer's arrival. */
  durationMs: number;
}

/** A failed sign-in: a registration failure's fields, which request failed, and whether DDS forgot the node. */
export type SignInFailure = RegistrationFailure & {
  /** The request that failed (`nonce` also for a nonce answer that cannot be used). */
  step: 'nonce' | 'verify';
  /** `verify` answered 403 or 404: DDS no longer knows the node, the registration must be re-armed (§6.6). */
  forgotten: boolean;
};

/** The outcome of one sign-in. */
export type SignInResult = SignInSuccess | SignInFailure;

/** Options of {@link createSiweRegistrationClient}. */
export interface SiweRegistrationClientOptions extends DdsClientOptions {
  /** The clock a token's lifetime is measured on (default `Date.now`). */
  now?: () => number;
}

/** The three endpoints, userinfo removed. */
export interface SiweEndpoints {
  nonce: string;
  registration: string;
  verify: string;
}

/**
 * A wallet-generation client that already knows the credentials; the same
 * contract as {@link RegistrationClient} (`endpoint` is the registration
 * endpoint) plus the wallet and the sign-in. It prints, serialises and
 * inspects without the secret or the key.
 */
export interface SiweRegistrationClient extends RegistrationClient {
  /** The key's address, `0x` + 40 lowercase hex digits. */
  readonly wallet: string;
  readonly endpoints: SiweEndpoints;
  /** Nonce, message, signature, `register-wallet` (`beforeSend` asked right before it, as in {@link RegistrationClient}). Never rejects. */
  register(signal?: AbortSignal, beforeSend?: () => Promise<string | undefined>): Promise<RegistrationResult>;
  /** Nonce, message, signature, `verify` → an access token. Never rejects. */
  signIn(signal?: AbortSignal): Promise<SignInResult>;
}

/** Which request a message is about, and its texts (§6.3). */
interface Step {
  target: string;
  endpoint: string;
  /** `request SIWE nonce failed: status …` */
  statusText: (status: number, snippet: string) => string;
  /** `request SIWE nonce failed: endpoint …, error: …` */
  transportText: (cause: string) => string;
  /** `decode SIWE nonce response failed: endpoint …, error: …` */
  decodeText: (cause: string) => string;
}

function step(target: string, statusPrefix: string, transportPrefix: string, decodePrefix: string): Step {
  const endpoint = redactUrl(target);
  return {
    target,
    endpoint,
    statusText: (status, snippet) => `${statusPrefix}: status ${status}, endpoint ${endpoint}, body_snippet: ${snippet}`,
    transportText: (cause) => `${transportPrefix}: endpoint ${endpoint}, error: ${cause}`,
    decodeText: (cause) => `${decodePrefix}: endpoint ${endpoint}, error: ${cause}`,
  };
}

/** A non-answer (abort, transport error) or a non-2xx answer as a failure; `undefined` for a 2xx. */
function failureOf(s: Step, outcome: DdsPostOutcome, secrets: readonly string[]): RegistrationFailure | undefined {
  if (outcome.kind === 'aborted') {
    return failure({ class: 'retryable', status: null, endpoint: s.endpoint, message: s.transportText('aborted'), code: 'ABORTED' });
  }
  if (outcome.kind === 'transport') {
    return failure({
      class: 'retryable',
      status: null,
      endpoint: s.endpoint,
      message: scrubSecrets(s.transportText(outcome.cause), secrets),
      ...(outcome.code === undefined ? {} : { code: outcome.code }),
    });
  }
  if (outcome.class === 'ok') return undefined;
  return failure({
    class: outcome.class,
    status: outcome.status,
    endpoint: s.endpoint,
    retryAfterMs: retryAfterOf(outcome.status, outcome.headers),
    message: s.statusText(outcome.status, bodySnippet(decodeText(outcome.body), secrets, SNIPPET_LIMIT)),
  });
}

/** A 2xx answer's body as JSON, or the decode failure. */
function jsonOf(s: Step, answer: DdsAnswer): { ok: true; json: unknown } | { ok: false; failure: RegistrationFailure } {
  const decodeFailure = (cause: string, code?: string): { ok: false; failure: RegistrationFailure } => ({
    ok: false,
    failure: failure({
      class: 'retryable',
      status: answer.status,
      endpoint: s.endpoint,
      message: s.decodeText(cause),
      code: code ?? 'ERR_BODY_PARSE_FAILURE',
    }),
  });
  if (answer.bodyError !== undefined) return decodeFailure(`reading the body: ${answer.bodyError.cause}`, answer.bodyError.code);
  if (answer.bodyTruncated) return decodeFailure('body larger than 64 KiB');
  try {
    return { ok: true, json: JSON.parse(decodeText(answer.body)) as unknown };
  } catch {
    return decodeFailure('not valid JSON');
  }
}

function retryable(endpoint: string, status: number | null, message: string): RegistrationFailure {
  return failure({ class: 'retryable', status, endpoint, message });
}

/**
 * Capture the secret and the key in a closure and return a client that
 * registers and signs in with them. Validates the DDS URL at once.
 *
 * @throws {InvalidUrlError} for an unusable DDS base URL.
 */
export function createSiweRegistrationClient(o: SiweRegistrationClientOptions): SiweRegistrationClient {
  const nonceStep = step(
    ddsEndpoint(o.ddsBaseUrl, SIWE_NONCE_PATH),
    'request SIWE nonce failed',
    'request SIWE nonce failed',
    'decode SIWE nonce response failed',
  );
  const registrationStep = step(
    ddsEndpoint(o.ddsBaseUrl, SIWE_REGISTRATION_PATH),
    'registration failed',
    'registration request failed',
    'decode registration response failed',
  );
  const verifyStep = step(
    ddsEndpoint(o.ddsBaseUrl, SIWE_VERIFY_PATH),
    'SIWE verify failed',
    'SIWE verify request failed',
    'decode SIWE verify response failed',
  );
  const { nodeVersion, regSecret, key, got } = o;
  const timeoutMs = o.timeoutMs ?? DEFAULT_REGISTRATION_TIMEOUT_MS;
  const logger = o.logger ?? silentLogger;
  const now = o.now ?? Date.now;
  const capabilities = Object.freeze([...(o.capabilities ?? [])]);
  const wallet = deriveEthAddress(key);
  const walletPrefix = wallet.slice(0, 10);
  const publicKeyHex = secp256k1PubkeyUncompressedHex(key);
  const endpoints: SiweEndpoints = Object.freeze({
    nonce: nonceStep.endpoint,
    registration: registrationStep.endpoint,
    verify: verifyStep.endpoint,
  });

  const log = (level: 'info', fields: { event: string; [k: string]: unknown }, msg: string): void => {
    try {
      logger[level](fields, msg);
    } catch {
      // A failing logger must not fail the attempt.
    }
  };

  const post = (s: Step, payload: string, signal: AbortSignal | undefined, readSuccessBody = false): Promise<DdsPostOutcome> =>
    postJson({ target: s.target, payload, timeoutMs, signal, got, readSuccessBody });

  /** Step 1 and 2: a nonce, and the message made of it. */
  const nonceAndMessage = async (signal: AbortSignal | undefined): Promise<{ ok: true; message: string } | { ok: false; failure: RegistrationFailure }> => {
    const outcome = await post(nonceStep, JSON.stringify({ wallet }), signal, true);
    const failed = failureOf(nonceStep, outcome, [regSecret]);
    if (failed !== undefined) return { ok: false, failure: failed };
    const answer = outcome as DdsAnswer;
    const parsed = jsonOf(nonceStep, answer);
    if (!parsed.ok) return parsed;
    const read = readSiweNonceResponse(parsed.json);
    if (!read.ok) {
      const message = read.problem === 'decode' ? nonceStep.decodeText(read.detail) : read.message;
      return { ok: false, failure: retryable(nonceStep.endpoint, answer.status, message) };
    }
    return { ok: true, message: composeSiweMessage(read.fields, wallet) };
  };

  const register = async (signal?: AbortSignal, beforeSend?: () => Promise<string | undefined>): Promise<RegistrationResult> => {
    if (capabilities.length === 0) {
      return failure({ class: 'slow', status: null, endpoint: registrationStep.endpoint, message: 'capabilities must be non-empty for DDS registration' });
    }
    log(
      'info',
      { event: 'registration.attempt', protocol: 'siwe', endpoint: registrationStep.endpoint, wallet_prefix: walletPrefix, version: nodeVersion, capabilities: [...capabilities] },
      'Registering node with DDS (SIWE)',
    );
    const started = performance.now();
    const prepared = await nonceAndMessage(signal);
    if (!prepared.ok) return prepared.failure;
    const signature = signEip191RecoverableHex(key, prepared.message);
    const payload = serializeSiweRegistrationBody({
      message: prepared.message,
      signature,
      registration_credentials: regSecret,
      capabilities: [...capabilities],
      version: nodeVersion,
    });
    const refusal = beforeSend === undefined ? undefined : await beforeSend();
    if (refusal !== undefined) {
      return failure({ class: 'retryable', status: null, endpoint: registrationStep.endpoint, message: registrationStep.transportText(`not sent: ${refusal}`), code: 'ENOTSENT' });
    }
    const outcome = await post(registrationStep, payload, signal);
    const failed = failureOf(registrationStep, outcome, [regSecret, signature]);
    if (failed !== undefined) return failed;
    return { ok: true, status: (outcome as DdsAnswer).status, endpoint: registrationStep.endpoint, durationMs: performance.now() - started };
  };

  const signIn = async (signal?: AbortSignal): Promise<SignInResult> => {
    log('info', { event: 'sign_in.attempt', endpoint: verifyStep.endpoint, wallet_prefix: walletPrefix }, 'Signing in to DDS (SIWE)');
    const started = performance.now();
    const prepared = await nonceAndMessage(signal);
    if (!prepared.ok) return { ...prepared.failure, step: 'nonce', forgotten: false };
    const signature = signEip191RecoverableHex(key, prepared.message);
    const outcome = await post(verifyStep, serializeSiweVerifyBody({ address: wallet, message: prepared.message, signature }), signal, true);
    const arrivedAt = now();
    const failed = failureOf(verifyStep, outcome, [regSecret, signature]);
    if (failed !== undefined) {
      return { ...failed, step: 'verify', forgotten: failed.status === 403 || failed.status === 404 };
    }
    const answer = outcome as DdsAnswer;
    const verifyFailure = (message: string): SignInFailure => ({ ...retryable(verifyStep.endpoint, answer.status, message), step: 'verify', forgotten: false });
    const parsed = jsonOf(verifyStep, answer);
    if (!parsed.ok) return { ...parsed.failure, step: 'verify', forgotten: false };
    const json = parsed.json;
    if (!isObject(json)) return verifyFailure(verifyStep.decodeText('expected a JSON object'));
    const token = json.access_token;
    if (token !== undefined && token !== null && typeof token !== 'string') return verifyFailure(verifyStep.decodeText('access_token is not a string'));
    if (typeof token !== 'string' || token === '') return verifyFailure('siwe access token missing in response');
    // access_expires_at when present (even unparsable); expires_at only when it is absent (§6.6).
    const expiryKey = json.access_expires_at !== undefined && json.access_expires_at !== null ? 'access_expires_at' : 'expires_at';
    const expiry = json[expiryKey];
    if (expiry === undefined || expiry === null) return verifyFailure('siwe access token expiry missing in response');
    if (typeof expiry !== 'string') return verifyFailure(verifyStep.decodeText(`${expiryKey} is not a string`));
    const expiresAtMs = parseRfc3339Ms(expiry);
    if (expiresAtMs === undefined) return verifyFailure(`siwe access token expiry unparsable: ${expiryKey} is not an RFC 3339 time`);
    const lifetimeMs = expiresAtMs - arrivedAt;
    if (lifetimeMs <= 0) {
      return verifyFailure(`siwe access token already expired: ${expiryKey} ${new Date(expiresAtMs).toISOString()} is ${-lifetimeMs} ms before its arrival`);
    }
    return {
      ok: true,
      token: new AccessToken(token),
      expiresAtMs,
      lifetimeMs,
      endpoint: verifyStep.endpoint,
      durationMs: performance.now() - started,
    };
  };

  return Object.freeze({ endpoint: registrationStep.endpoint, endpoints, wallet, publicKeyHex, capabilities, register, signIn });
}
