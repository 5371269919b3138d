/**
 * verify-registration — the checks DDS makes on `POST /internal/v1/nodes/register`
 * (PROTOCOL.md §1), for the embedded DDS simulator.
 *
 * The verdict's `reason` is a short, fixed phrase: it never echoes the body,
 * and in particular never the registration credentials.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { formatTimestampNanos, parseTimestampNanos, verifyRecoverableKeccakHex } from '../crypto.js';
import { REGISTRATION_KEYS, type RegistrationBody } from '../register.js';

export { REGISTRATION_KEYS };

/** A registration body that passed every check. */
export type VerifiedRegistrationBody = RegistrationBody;

/** Options of {@link verifyRegistrationRequest}. */
export interface VerifyRegistrationOptions {
  /** The current time in epoch milliseconds (default `Date.now()`). */
  now?: number;
  /** The largest accepted distance between `timestamp` and `now`, in ms (default 5 minutes). */
  maxSkewMs?: number;
  /** When set, `registration_credentials` must equal it (compared in constant time). */
  expectedRegSecret?: string;
}

/** The verdict of {@link verifyRegistrationRequest}. */
export type VerifyRegistrationResult =
  | { ok: true; body: VerifiedRegistrationBody }
  | { ok: false; reason: string };

/** Default accepted clock skew: five minutes. */
export const DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000;

const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;
const PUBLIC_KEY_RE = /^04[0-9a-f]{128}$/;
const SIGNATURE_RE = /^[0-9a-f]{128}0[01]$/;
const NANOS_PER_MS = 1_000_000n;

function reject(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** Constant-time string equality, whatever the lengths (both sides are hashed first). */
function secretsEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/**
 * Check a raw registration body the way DDS does: a JSON object with exactly
 * the seven keys in wire order, well-typed values, an http(s) `url`, a
 * nine-digit RFC 3339 UTC `timestamp` within ±`maxSkewMs` of `now`, an
 * uncompressed lowercase `public_key`, an `r‖s‖v` Keccak `signature` over
 * `url + timestamp` that verifies against it, and (when expected) the right
 * `registration_credentials`.
 */
export function verifyRegistrationRequest(
  rawBody: string,
  options: VerifyRegistrationOptions = {},
): VerifyRegistrationResult {
  const now = options.now ?? Date.now();
  const maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;

  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    return reject('body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return reject('body must be a JSON object');
  }
  const obj = parsed as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length !== REGISTRATION_KEYS.length || keys.some((k, i) => k !== REGISTRATION_KEYS[i])) {
    return reject(`keys must be exactly ${REGISTRATION_KEYS.join(', ')} in this order`);
  }

  for (const key of REGISTRATION_KEYS) {
    if (key === 'capabilities') continue;
    if (typeof obj[key] !== 'string') return reject(`${key} must be a string`);
  }
  const capabilities = obj.capabilities;
  if (!Array.isArray(capabilities) || !capabilities.every((c): c is string => typeof c === 'string')) {
    return reject('capabilities must be an array of strings');
  }
  const body: VerifiedRegistrationBody = {
    url: obj.url as string,
    version: obj.version as string,
    registration_credentials: obj.registration_credentials as string,
    signature: obj.signature as string,
    timestamp: obj.timestamp as string,
    public_key: obj.public_key as string,
    capabilities: [...capabilities],
  };

  if (!isHttpUrl(body.url)) return reject('url must be an http(s) URL');

  if (!TIMESTAMP_RE.test(body.timestamp)) {
    return reject('timestamp must be RFC 3339 UTC with nine fractional digits and Z');
  }
  const ts = parseTimestampNanos(body.timestamp);
  // The round trip rejects impossible dates (e.g. February 30th) that Date.parse would shift.
  if (ts === undefined || formatTimestampNanos(ts) !== body.timestamp) return reject('timestamp is not a valid time');

  if (!PUBLIC_KEY_RE.test(body.public_key)) {
    return reject('public_key must be 130 lowercase hex digits starting with 04');
  }
  if (!SIGNATURE_RE.test(body.signature)) {
    return reject('signature must be 130 lowercase hex digits r||s||v with v 00 or 01');
  }

  if (options.expectedRegSecret !== undefined && !secretsEqual(body.registration_credentials, options.expectedRegSecret)) {
    return reject('invalid registration credentials');
  }

  const skewNs = ts - BigInt(Math.round(now)) * NANOS_PER_MS;
  const maxSkewNs = BigInt(Math.max(0, Math.round(maxSkewMs))) * NANOS_PER_MS;
  if (skewNs > maxSkewNs || skewNs < -maxSkewNs) return reject('timestamp outside the allowed clock skew');

  if (!verifyRecoverableKeccakHex(body.signature, body.url + body.timestamp, body.public_key)) {
    return reject('signature does not verify');
  }
  return { ok: true, body };
}
