/**
 * crypto — secp256k1 keys, the two signature helpers of the crate, the
 * RFC 3339 nanosecond timestamps that DDS expects (PROTOCOL.md §1.1–1.3), and
 * the wallet generation's address and EIP-191 signatures (§6.1–6.2).
 *
 * Built on the audited noble libraries. A {@link SecretKey} keeps its bytes in
 * a private field: it prints, serialises and inspects as `[SecretKey]`.
 */
import * as secp from '@noble/secp256k1';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { Concealed } from './concealed.js';

// noble-secp256k1 v3's synchronous API needs its hash hooks set once.
secp.hashes.sha256 = sha256;
secp.hashes.hmacSha256 = (key, msg) => hmac(sha256, key, msg) as Uint8Array<ArrayBuffer>;

/** A message to sign: a string (encoded as UTF-8) or raw bytes. */
export type Message = string | Uint8Array;

/** Why a private key was refused; the message names the problem, never the key. */
export type InvalidPrivateKeyReason = 'empty' | 'not-hex' | 'odd-length' | 'wrong-length' | 'out-of-range';

/** Thrown by {@link loadSecp256k1Privhex}. Its message never contains the input. */
export class InvalidPrivateKeyError extends Error {
  override readonly name = 'InvalidPrivateKeyError';
  readonly reason: InvalidPrivateKeyReason;
  constructor(reason: InvalidPrivateKeyReason, message: string) {
    super(`invalid secp256k1 private key: ${message}`);
    this.reason = reason;
  }
}

const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** An opaque, validated secp256k1 private key. Its bytes never print. */
export class SecretKey extends Concealed {
  readonly #bytes: Uint8Array;
  /** @internal use {@link loadSecp256k1Privhex} or {@link generateSecretKey}. */
  constructor(bytes: Uint8Array) {
    super('[SecretKey]');
    if (bytes.length !== 32) throw new InvalidPrivateKeyError('wrong-length', `expected 32 bytes, got ${bytes.length}`);
    this.#bytes = Uint8Array.from(bytes);
  }
  /** A copy of the 32 key bytes. Handle with care. */
  exposeBytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
  /** The key as 64 lowercase hex digits (for `keygen`). Handle with care. */
  exposeHex(): string {
    return bytesToHex(this.#bytes);
  }
}

/**
 * Parse the node key (the `secp256k1Privhex` setting): surrounding whitespace is trimmed, a `0x`/`0X`
 * prefix is accepted, and exactly 32 bytes forming a valid scalar
 * (1 ≤ k < n) are required.
 *
 * @throws {InvalidPrivateKeyError} describing what is wrong, never echoing the input.
 */
export function loadSecp256k1Privhex(hex: string): SecretKey {
  if (typeof hex !== 'string') throw new InvalidPrivateKeyError('empty', 'expected a hex string');
  let s = hex.trim();
  if (s.startsWith('0x') || s.startsWith('0X')) s = s.slice(2);
  if (s.length === 0) throw new InvalidPrivateKeyError('empty', 'empty (expected 64 hex digits)');
  if (!/^[0-9a-fA-F]*$/.test(s)) throw new InvalidPrivateKeyError('not-hex', 'not hex (expected 64 hex digits, 0-9 a-f)');
  if (s.length % 2 !== 0) {
    throw new InvalidPrivateKeyError('odd-length', `odd number of hex digits (${s.length}; expected 64)`);
  }
  if (s.length !== 64) {
    throw new InvalidPrivateKeyError('wrong-length', `wrong length: ${s.length / 2} bytes (expected 32)`);
  }
  const k = BigInt(`0x${s}`);
  if (k === 0n) throw new InvalidPrivateKeyError('out-of-range', 'out of range: zero is not a valid scalar');
  if (k >= CURVE_ORDER) {
    throw new InvalidPrivateKeyError('out-of-range', 'out of range: must be below the secp256k1 curve order');
  }
  return new SecretKey(secp.etc.hexToBytes(s.toLowerCase()));
}

/** A fresh random private key (for `keygen` and the dev simulator). */
export function generateSecretKey(): SecretKey {
  return new SecretKey(secp.utils.randomSecretKey());
}

/** The uncompressed public key `04‖X‖Y` as 130 lowercase hex digits. */
export function secp256k1PubkeyUncompressedHex(key: SecretKey): string {
  return bytesToHex(secp.getPublicKey(key.exposeBytes(), false));
}

function toBytes(msg: Message): Uint8Array {
  return typeof msg === 'string' ? utf8ToBytes(msg) : msg;
}

/** Keccak-256 (Ethereum's, not SHA3-256) of a message, as lowercase hex. */
export function keccak256Hex(msg: Message): string {
  return bytesToHex(keccak_256(toBytes(msg)));
}

/**
 * ECDSA over Keccak-256(msg), RFC 6979 nonce, low-S, encoded `r‖s‖v`
 * (65 bytes, 130 hex digits, recovery id 0/1 **last**). This is what DDS checks.
 */
export function signRecoverableKeccakHex(key: SecretKey, msg: Message): string {
  const digest = keccak_256(toBytes(msg));
  // noble's 'recovered' format is v‖r‖s: move the recovery byte to the end.
  const vrs = secp.sign(digest, key.exposeBytes(), { prehash: false, lowS: true, format: 'recovered' });
  const rsv = new Uint8Array(65);
  rsv.set(vrs.subarray(1, 65), 0);
  rsv[64] = vrs[0] ?? 0;
  return bytesToHex(rsv);
}

/** ECDSA over SHA-256(msg), RFC 6979 nonce, low-S, compact `r‖s` (128 hex digits). */
export function signCompactHex(key: SecretKey, msg: Message): string {
  const digest = sha256(toBytes(msg));
  return bytesToHex(secp.sign(digest, key.exposeBytes(), { prehash: false, lowS: true, format: 'compact' }));
}

/**
 * Verify an `r‖s‖v` Keccak signature against an uncompressed public key hex
 * (what DDS, and the dev simulator, do). Returns false for any malformed input.
 */
export function verifyRecoverableKeccakHex(signatureHex: string, msg: Message, publicKeyHex: string): boolean {
  try {
    if (!/^[0-9a-f]{130}$/.test(signatureHex)) return false;
    const sig = secp.etc.hexToBytes(signatureHex);
    const v = sig[64];
    if (v !== 0 && v !== 1) return false;
    const digest = keccak_256(toBytes(msg));
    const pub = secp.etc.hexToBytes(publicKeyHex);
    if (!secp.verify(sig.subarray(0, 64), digest, pub, { prehash: false, lowS: true })) return false;
    const vrs = new Uint8Array(65);
    vrs[0] = v;
    vrs.set(sig.subarray(0, 64), 1);
    const recovered = secp.recoverPublicKey(vrs, digest, { prehash: false });
    return bytesToHex(secp.Point.fromBytes(recovered).toBytes(false)) === publicKeyHex.toLowerCase();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// The wallet generation (PROTOCOL.md §6.1–6.2)
// ---------------------------------------------------------------------------

const HALF_CURVE_ORDER = CURVE_ORDER >> 1n;
const EIP191_PREFIX = '\x19Ethereum Signed Message:\n';
const EIP191_SIGNATURE_PATTERN = /^0x[0-9a-f]{128}(?:1b|1c)$/;
const ETH_ADDRESS_PATTERN = /^0x[0-9a-f]{40}$/;

/** The address of an uncompressed public key (`04‖X‖Y`, bytes or hex): the last 20 bytes of Keccak-256(X‖Y). */
export function ethAddressFromPublicKey(publicKey: Uint8Array | string): string {
  const bytes = typeof publicKey === 'string' ? secp.etc.hexToBytes(publicKey.toLowerCase()) : publicKey;
  if (bytes.length !== 65 || bytes[0] !== 4) throw new TypeError('expected an uncompressed secp256k1 public key (65 bytes, 04‖X‖Y)');
  return `0x${bytesToHex(keccak_256(bytes.subarray(1)).subarray(12))}`;
}

/** The key's Ethereum address: `0x` + 40 lowercase hex digits (no EIP-55 checksum, as the crate). */
export function deriveEthAddress(key: SecretKey): string {
  return ethAddressFromPublicKey(secp.getPublicKey(key.exposeBytes(), false));
}

/** Whether `text` is an address as {@link deriveEthAddress} prints it (`0x`, 40 lowercase hex digits). */
export function isEthAddress(text: unknown): text is string {
  return typeof text === 'string' && ETH_ADDRESS_PATTERN.test(text);
}

/** The EIP-191 `personal_sign` digest: Keccak-256 of `"\x19Ethereum Signed Message:\n" + UTF-8 byte length + message`. */
export function eip191Digest(message: Message): Uint8Array {
  const body = toBytes(message);
  const prefix = utf8ToBytes(`${EIP191_PREFIX}${body.length}`);
  const all = new Uint8Array(prefix.length + body.length);
  all.set(prefix, 0);
  all.set(body, prefix.length);
  return keccak_256(all);
}

/** {@link eip191Digest} as 64 lowercase hex digits. */
export function eip191DigestHex(message: Message): string {
  return bytesToHex(eip191Digest(message));
}

/**
 * EIP-191 `personal_sign`: ECDSA over {@link eip191Digest}, RFC 6979, low-S,
 * `0x` + `r‖s‖v` with v = 27/28 (132 lowercase characters).
 */
export function signEip191RecoverableHex(key: SecretKey, message: Message): string {
  const vrs = secp.sign(eip191Digest(message), key.exposeBytes(), { prehash: false, lowS: true, format: 'recovered' });
  return `0x${bytesToHex(vrs.subarray(1, 65))}${((vrs[0] ?? 0) + 27).toString(16)}`;
}

/**
 * The address that made an EIP-191 signature of `message`, or undefined when
 * the signature is not exactly what {@link signEip191RecoverableHex} makes
 * (`0x`, 130 lowercase hex digits, v 1b/1c, 0 < r, 0 < s ≤ n/2) or recovers no key.
 */
export function recoverEip191Address(signature: string, message: Message): string | undefined {
  if (typeof signature !== 'string' || !EIP191_SIGNATURE_PATTERN.test(signature)) return undefined;
  const r = BigInt(`0x${signature.slice(2, 66)}`);
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  if (r === 0n || r >= CURVE_ORDER || s === 0n || s > HALF_CURVE_ORDER) return undefined;
  try {
    const vrs = new Uint8Array(65);
    vrs[0] = Number.parseInt(signature.slice(130), 16) - 27;
    vrs.set(secp.etc.hexToBytes(signature.slice(2, 130)), 1);
    const recovered = secp.recoverPublicKey(vrs, eip191Digest(message), { prehash: false });
    return ethAddressFromPublicKey(secp.Point.fromBytes(recovered).toBytes(false));
  } catch {
    return undefined;
  }
}

/** Whether `signature` is a well-formed EIP-191 signature of `message` by `address` (lowercase, as the crate prints it). */
export function verifyEip191Signature(signature: string, message: Message, address: string): boolean {
  return isEthAddress(address) && recoverEip191Address(signature, message) === address;
}

const NANOS_PER_MS = 1_000_000n;
const NANOS_PER_SEC = 1_000_000_000n;

/**
 * Format a time as RFC 3339 UTC with a `Z` and always nine fractional digits,
 * e.g. `2024-01-02T03:04:05.006007008Z`. Takes a `Date` or epoch nanoseconds.
 */
export function formatTimestampNanos(value: Date | bigint): string {
  const ns = typeof value === 'bigint' ? value : BigInt(value.getTime()) * NANOS_PER_MS;
  if (typeof value !== 'bigint' && Number.isNaN(value.getTime())) throw new RangeError('invalid Date');
  let secs = ns / NANOS_PER_SEC;
  let frac = ns % NANOS_PER_SEC;
  if (frac < 0n) {
    frac += NANOS_PER_SEC;
    secs -= 1n;
  }
  const iso = new Date(Number(secs) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return `${iso.slice(0, 19)}.${frac.toString().padStart(9, '0')}Z`;
}

// A wall clock with sub-millisecond digits: Date.now() anchored to the
// monotonic high-resolution clock, re-anchored when the two drift apart
// (NTP steps) by more than a millisecond.
let anchorEpochNs = BigInt(Date.now()) * NANOS_PER_MS;
let anchorHr = process.hrtime.bigint();

/** The current time in epoch nanoseconds, with sub-millisecond digits. */
export function nowEpochNanos(): bigint {
  const candidate = anchorEpochNs + (process.hrtime.bigint() - anchorHr);
  const wallNs = BigInt(Date.now()) * NANOS_PER_MS;
  const drift = candidate - wallNs;
  if (drift > 2n * NANOS_PER_MS || drift < -NANOS_PER_MS) {
    anchorEpochNs = wallNs;
    anchorHr = process.hrtime.bigint();
    return wallNs;
  }
  return candidate;
}

/** {@link formatTimestampNanos} of now, with sub-millisecond digits. */
export function formatTimestampNow(): string {
  return formatTimestampNanos(nowEpochNanos());
}

/** Parse an RFC 3339 timestamp with up to nine fractional digits into epoch nanoseconds. */
export function parseTimestampNanos(text: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * NANOS_PER_MS + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
}
