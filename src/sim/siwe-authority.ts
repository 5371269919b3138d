/**
 * siwe-authority — DDS's side of the wallet generation (PROTOCOL.md §6), for
 * the embedded simulator: nonces bound to a wallet, single use and expiring;
 * `register-wallet` and `verify` checked against the nonce's fields byte for
 * byte and against the wallet's EIP-191 signature; tokens with a lifetime;
 * and a registry of the wallets DDS knows (and can forget).
 *
 * No HTTP here: each call takes the raw body and returns a verdict whose
 * `reason` is a short fixed phrase, never an echo of the body — in
 * particular never the credentials, the signature or a token.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isEthAddress, verifyEip191Signature } from '../crypto.js';
import { composeSiweMessage, SIWE_REGISTRATION_KEYS, SIWE_VERIFY_KEYS, type SiweNonceFields } from '../register-siwe.js';

/** Options of {@link SiweAuthority}. */
export interface SiweAuthorityOptions {
  /** The `domain` of every nonce (e.g. `127.0.0.1:8787`). */
  domain: string;
  /** The `uri` of every nonce (e.g. `http://127.0.0.1:8787`). */
  uri: string;
  /** The `chainId` of every nonce (default 8453, Base). */
  chainId?: number;
  /** How long a nonce can be used, ms (default 5 minutes). */
  nonceLifetimeMs?: number;
  /** The lifetime of an access token, ms (default 1 hour). */
  tokenLifetimeMs?: number;
  /** When set, `register-wallet` must carry exactly these credentials. */
  expectedRegSecret?: string | undefined;
  /** The clock (default `Date.now`). */
  now?: () => number;
}

/** A wallet DDS knows (no secrets). */
export interface SiweWallet {
  wallet: string;
  version: string;
  capabilities: string[];
  /** Epoch ms of the last accepted registration. */
  registeredAt: number;
  /** Successful sign-ins since that registration. */
  signIns: number;
  /** Expiry of the newest token issued, epoch ms, or null. */
  tokenExpiresAt: number | null;
}

/** A refusal: the HTTP status and a fixed phrase. */
export interface SiweRefusal {
  ok: false;
  status: number;
  reason: string;
  /** The wallet this `verify` made DDS forget (the `forget` option). */
  forgotten?: string;
}

/** The verdicts of the three calls. */
export type NonceVerdict = { ok: true; wallet: string; fields: SiweNonceFields; expiresAt: number } | SiweRefusal;
export type WalletRegistrationVerdict = { ok: true; wallet: SiweWallet } | SiweRefusal;
/** `answer` is the JSON text of the 200 answer: it holds the token, and goes nowhere else. */
export type VerifyVerdict = { ok: true; wallet: string; signIns: number; answer: string; expiresAt: number; lifetimeMs: number } | SiweRefusal;

export const DEFAULT_NONCE_LIFETIME_MS = 5 * 60 * 1000;
export const DEFAULT_TOKEN_LIFETIME_MS = 60 * 60 * 1000;
export const DEFAULT_CHAIN_ID = 8453;
/** The most nonces kept at once; beyond, the oldest are dropped (a flood must not grow memory). */
export const MAX_OPEN_NONCES = 10_000;

interface NonceRecord extends SiweNonceFields {
  wallet: string;
  expiresAt: number;
}

const SIGNATURE_RE = /^0x[0-9a-f]{130}$/;
// The message's lines, named for the reasons (the address line is the wallet's).
const LINE_NAMES = ['domain', 'address', 'blank line', 'uri', 'version', 'chainId', 'nonce', 'issuedAt'] as const;

function refuse(status: number, reason: string): SiweRefusal {
  return { ok: false, status, reason };
}

/** Constant-time string equality, whatever the lengths (both sides are hashed first). */
function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a, 'utf8').digest(), createHash('sha256').update(b, 'utf8').digest());
}

/** The body as an object with exactly `keys`, in that order; or the refusal. */
function objectWithKeys(raw: string, keys: readonly string[]): { ok: true; obj: Record<string, unknown> } | SiweRefusal {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return refuse(400, 'body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return refuse(400, 'body must be a JSON object');
  const obj = parsed as Record<string, unknown>;
  const got = Object.keys(obj);
  if (got.length !== keys.length || got.some((k, i) => k !== keys[i])) return refuse(400, `keys must be exactly ${keys.join(', ')} in this order`);
  return { ok: true, obj };
}

/**
 * Nonces, wallets and tokens of one simulated DDS. Every method is
 * synchronous and answers from memory.
 */
export class SiweAuthority {
  readonly #domain: string;
  readonly #uri: string;
  readonly #chainId: number;
  readonly #nonceLifetimeMs: number;
  readonly #tokenLifetimeMs: number;
  readonly #expectedRegSecret: string | undefined;
  readonly #now: () => number;
  readonly #nonces = new Map<string, NonceRecord>();
  readonly #wallets = new Map<string, SiweWallet>();

  constructor(o: SiweAuthorityOptions) {
    this.#domain = o.domain;
    this.#uri = o.uri;
    this.#chainId = o.chainId ?? DEFAULT_CHAIN_ID;
    this.#nonceLifetimeMs = o.nonceLifetimeMs ?? DEFAULT_NONCE_LIFETIME_MS;
    this.#tokenLifetimeMs = o.tokenLifetimeMs ?? DEFAULT_TOKEN_LIFETIME_MS;
    this.#expectedRegSecret = o.expectedRegSecret;
    this.#now = o.now ?? Date.now;
    if (!Number.isSafeInteger(this.#chainId)) throw new RangeError('chainId must be an integer');
    if (!(this.#nonceLifetimeMs > 0)) throw new RangeError('nonceLifetimeMs must be positive');
    if (!(this.#tokenLifetimeMs > 0)) throw new RangeError('tokenLifetimeMs must be positive');
  }

  /** A snapshot of the wallets DDS knows. */
  get wallets(): ReadonlyMap<string, SiweWallet> {
    return new Map([...this.#wallets].map(([k, w]) => [k, { ...w, capabilities: [...w.capabilities] }]));
  }

  /** Nonces issued and not yet used or expired (for tests and the dev view). */
  get openNonces(): number {
    this.#sweep();
    return this.#nonces.size;
  }

  /** `POST …/auth/siwe/request` `{"wallet": …}`: a fresh nonce bound to the wallet. */
  issueNonce(raw: string): NonceVerdict {
    const body = objectWithKeys(raw, ['wallet']);
    if (!body.ok) return body;
    const wallet = body.obj.wallet;
    if (!isEthAddress(wallet)) return refuse(400, 'wallet must be 0x and 40 lowercase hex digits');
    this.#sweep();
    while (this.#nonces.size >= MAX_OPEN_NONCES) {
      const oldest = this.#nonces.keys().next().value;
      if (oldest === undefined) break;
      this.#nonces.delete(oldest);
    }
    const now = this.#now();
    const record: NonceRecord = {
      nonce: randomBytes(8).toString('hex'),
      domain: this.#domain,
      uri: this.#uri,
      version: '1',
      chainId: this.#chainId,
      issuedAt: new Date(now).toISOString(),
      wallet,
      expiresAt: now + this.#nonceLifetimeMs,
    };
    this.#nonces.set(record.nonce, record);
    const { nonce, domain, uri, version, chainId, issuedAt } = record;
    return { ok: true, wallet, fields: { nonce, domain, uri, version, chainId, issuedAt }, expiresAt: record.expiresAt };
  }

  /** {@link checkWalletRegistration}, then {@link admit} when it passes. */
  registerWallet(raw: string): WalletRegistrationVerdict {
    const verdict = this.checkWalletRegistration(raw);
    return verdict.ok ? { ok: true, wallet: this.admit(verdict.wallet) } : verdict;
  }

  /**
   * Check `POST …/nodes/register-wallet`: the keys in order, the credentials,
   * the message against its nonce (used up), the signature against the
   * nonce's wallet. Knows nobody yet: {@link admit} the wallet it returns.
   */
  checkWalletRegistration(raw: string): WalletRegistrationVerdict {
    const body = objectWithKeys(raw, SIWE_REGISTRATION_KEYS);
    if (!body.ok) return body;
    const { message, signature, registration_credentials: credentials, capabilities, version } = body.obj;
    for (const [key, value] of [['message', message], ['signature', signature], ['registration_credentials', credentials], ['version', version]] as const) {
      if (typeof value !== 'string') return refuse(400, `${key} must be a string`);
    }
    if (!Array.isArray(capabilities) || !capabilities.every((c): c is string => typeof c === 'string')) {
      return refuse(400, 'capabilities must be an array of strings');
    }
    if (capabilities.length === 0) return refuse(400, 'capabilities must not be empty');
    if (this.#expectedRegSecret !== undefined && !secretsEqual(credentials as string, this.#expectedRegSecret)) {
      return refuse(401, 'invalid registration credentials');
    }
    const signed = this.#checkSigned(message as string, signature as string);
    if (!signed.ok) return signed;
    const wallet: SiweWallet = {
      wallet: signed.wallet,
      version: version as string,
      capabilities: [...capabilities],
      registeredAt: this.#now(),
      signIns: 0,
      tokenExpiresAt: null,
    };
    return { ok: true, wallet };
  }

  /** Know `wallet` from now on (a registration accepted). Returns a copy of the entry. */
  admit(wallet: SiweWallet): SiweWallet {
    const entry = { ...wallet, capabilities: [...wallet.capabilities], registeredAt: this.#now(), signIns: 0, tokenExpiresAt: null };
    this.#wallets.set(entry.wallet, entry);
    return { ...entry, capabilities: [...entry.capabilities] };
  }

  /**
   * `POST …/auth/siwe/verify`: the message and signature as for a
   * registration, `address` the nonce's wallet; a wallet DDS does not know
   * gets 403; with `forget`, so does a known one, which DDS then forgets.
   * The answer (JSON text) holds the token.
   */
  verify(raw: string, options: { forget?: boolean } = {}): VerifyVerdict {
    const body = objectWithKeys(raw, SIWE_VERIFY_KEYS);
    if (!body.ok) return body;
    const { address, message, signature } = body.obj;
    for (const [key, value] of [['address', address], ['message', message], ['signature', signature]] as const) {
      if (typeof value !== 'string') return refuse(400, `${key} must be a string`);
    }
    if (!isEthAddress(address)) return refuse(400, 'address must be 0x and 40 lowercase hex digits');
    const signed = this.#checkSigned(message as string, signature as string);
    if (!signed.ok) return signed;
    if (signed.wallet !== address) return refuse(401, "address is not the nonce's wallet");
    const entry = this.#wallets.get(address);
    if (entry === undefined) return refuse(403, 'node not registered');
    if (options.forget === true) {
      this.#wallets.delete(address);
      return { ...refuse(403, 'node not registered (forgotten)'), forgotten: address };
    }
    const now = this.#now();
    const expiresAt = now + this.#tokenLifetimeMs;
    entry.signIns += 1;
    entry.tokenExpiresAt = expiresAt;
    const answer = JSON.stringify({
      access_token: randomBytes(32).toString('hex'),
      access_expires_at: new Date(expiresAt).toISOString(),
      token_type: 'Bearer',
    });
    return { ok: true, wallet: address, signIns: entry.signIns, answer, expiresAt, lifetimeMs: this.#tokenLifetimeMs };
  }

  /** Forget one wallet, or every one: its next `verify` gets 403. Returns the wallets forgotten. */
  forget(wallet?: string): string[] {
    const gone = wallet === undefined ? [...this.#wallets.keys()] : this.#wallets.has(wallet) ? [wallet] : [];
    for (const w of gone) this.#wallets.delete(w);
    return gone;
  }

  /** The nonce named in the message, used up; the message equal to the one made of it; the wallet's signature. */
  #checkSigned(message: string, signature: string): { ok: true; wallet: string } | SiweRefusal {
    if (!SIGNATURE_RE.test(signature)) return refuse(400, 'signature must be 0x and 130 lowercase hex digits');
    const lines = message.split('\n');
    const nonceLine = lines[6] ?? '';
    const nonce = nonceLine.startsWith('Nonce: ') ? nonceLine.slice('Nonce: '.length) : undefined;
    const record = nonce === undefined ? undefined : this.#nonces.get(nonce);
    if (record === undefined) return refuse(401, 'unknown or used nonce');
    this.#nonces.delete(record.nonce); // single use, whatever comes next
    if (this.#now() >= record.expiresAt) return refuse(401, 'nonce expired');
    const expected = composeSiweMessage(record, record.wallet);
    if (message !== expected) {
      const want = expected.split('\n');
      const i = want.findIndex((line, j) => line !== lines[j]);
      const what = i >= 0 ? LINE_NAMES[i] : 'line count';
      return refuse(401, `message ${what} does not match the nonce`);
    }
    if (!verifyEip191Signature(signature, message, record.wallet)) return refuse(401, 'signature does not verify');
    return { ok: true, wallet: record.wallet };
  }

  /** Drop expired nonces: oldest first (one lifetime for all), so the first live one ends the sweep. */
  #sweep(): void {
    const now = this.#now();
    for (const [nonce, record] of this.#nonces) {
      if (now < record.expiresAt) break;
      this.#nonces.delete(nonce);
    }
  }
}
