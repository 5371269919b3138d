/**
 * Signing: signatures per second of the project's helpers (@noble/secp256k1,
 * pure JavaScript) beside Node's OpenSSL ECDSA on the same key and messages,
 * the first signatures of a fresh process, and DDS's side: the simulator's
 * checks, legacy beside the wallet generation (docs/benchmarks.md §4).
 */
import * as nodeCrypto from 'node:crypto';
import type * as CryptoModule from '../src/crypto.js';
import { spawnChild } from '../test/support/child.js';
import { summarize } from '../test/support/stats.js';
import { now } from '../test/support/time.js';
import { benchOptions, figures, fmt, printTable, ratio, runBench } from './common.js';

/** Set in the children that time the first signatures. */
const FIRST_CALL_ENV = 'POSEMESH_BENCH_SIGNING_FIRST_CALL';
const NODE_URL = 'https://node-7f3a.posemesh.example:8080';
type Crypto = typeof CryptoModule;
// Imported on use: the first-call children time the import.
const loadCrypto = (): Promise<Crypto> => import('../src/crypto.js');

/** What a registration signs: the node URL and an RFC 3339 nanosecond timestamp (PROTOCOL.md §1.1), a different one each time. */
function messages(c: Crypto, count: number): string[] {
  const base = BigInt(Date.now()) * 1_000_000n;
  return Array.from({ length: count }, (_, i) => `${NODE_URL}${c.formatTimestampNanos(base + BigInt(i) * 120_000_000_123n)}`);
}

/** The same private key as a node:crypto key pair (JWK). */
function nativeKeys(c: Crypto, key: CryptoModule.SecretKey): { privateKey: nodeCrypto.KeyObject; publicKey: nodeCrypto.KeyObject } {
  const pub = Buffer.from(c.secp256k1PubkeyUncompressedHex(key), 'hex');
  const jwk = { kty: 'EC', crv: 'secp256k1', x: pub.subarray(1, 33).toString('base64url'), y: pub.subarray(33, 65).toString('base64url') };
  return {
    privateKey: nodeCrypto.createPrivateKey({ key: { ...jwk, d: Buffer.from(key.exposeBytes()).toString('base64url') }, format: 'jwk' }),
    publicKey: nodeCrypto.createPublicKey({ key: jwk, format: 'jwk' }),
  };
}

interface Signer {
  label: string;
  sign(msg: string): string;
  verify(msg: string, signatureHex: string): boolean;
}

/** OpenSSL's ECDSA over SHA-256 (it has no Keccak-256), as hex. */
function openssl(label: string, keys: { privateKey: nodeCrypto.KeyObject; publicKey: nodeCrypto.KeyObject }, dsaEncoding: 'ieee-p1363' | 'der'): Signer {
  return {
    label,
    sign: (msg) => nodeCrypto.sign('sha256', Buffer.from(msg), { key: keys.privateKey, dsaEncoding }).toString('hex'),
    verify: (msg, sig) => nodeCrypto.verify('sha256', Buffer.from(msg), { key: keys.publicKey, dsaEncoding }, Buffer.from(sig, 'hex')),
  };
}

function signers(c: Crypto): Signer[] {
  const key = c.generateSecretKey();
  const publicKeyHex = c.secp256k1PubkeyUncompressedHex(key);
  const native = nativeKeys(c, key);
  const p1363 = openssl('crypto.sign sha256, ieee-p1363 (OpenSSL, r‖s) — baseline', native, 'ieee-p1363');
  return [
    {
      label: 'signRecoverableKeccakHex (noble, Keccak-256, r‖s‖v)',
      sign: (msg) => c.signRecoverableKeccakHex(key, msg),
      verify: (msg, sig) => c.verifyRecoverableKeccakHex(sig, msg, publicKeyHex),
    },
    // A standard ECDSA signature by the same key: OpenSSL checks it.
    { label: 'signCompactHex (noble, SHA-256, r‖s)', sign: (msg) => c.signCompactHex(key, msg), verify: p1363.verify },
    p1363,
    openssl('crypto.sign sha256, DER (OpenSSL)', native, 'der'),
    // For scale: a curve OpenSSL has optimised code for (DDS's is secp256k1).
    openssl('crypto.sign sha256 on P-256 (not DDS’s curve)', nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }), 'ieee-p1363'),
  ];
}

/** Sign in doubling batches until `ms` have passed (the clock read every few ms); operations and elapsed ms. */
function timeFor(sign: (msg: string) => string, msgs: readonly string[], ms: number): { ops: number; ms: number } {
  let [batch, ops, sink] = [1, 0, 0];
  const t0 = now();
  while (now() - t0 < ms) {
    const b0 = now();
    for (let i = 0; i < batch; i++) sink += sign(msgs[(ops + i) % msgs.length] as string).length;
    ops += batch;
    if (now() - b0 < 2) batch *= 2;
  }
  if (sink === 0) throw new Error('no signature was made');
  return { ops, ms: now() - t0 };
}

/** Each signer's signatures must verify, and not for another message: a broken benchmark cannot look fast. */
function verifyAll(list: readonly Signer[], msgs: readonly string[]): void {
  for (const s of list) {
    const sig = s.sign(msgs[0] as string);
    if (!s.verify(msgs[0] as string, sig) || s.verify(`${msgs[0]}x`, sig)) throw new Error(`${s.label}: its signatures do not verify`);
  }
}

/** In a fresh process: ms to import src/crypto.ts, then the 1st, 2nd and a warm (median) signature, noble and OpenSSL. */
async function firstCalls(): Promise<void> {
  const timed = (fn: () => unknown): number => {
    const t = now();
    fn();
    return now() - t;
  };
  const t0 = now();
  const c = await loadCrypto();
  const importMs = now() - t0;
  const key = c.generateSecretKey();
  const msgs = messages(c, 24);
  const series = (sign: (msg: string) => unknown) => {
    const [first, second, ...rest] = msgs.map((m) => timed(() => sign(m)));
    return { first, second, warm: summarize(rest).p50 };
  };
  const noble = series((m) => c.signRecoverableKeccakHex(key, m));
  const { privateKey } = nativeKeys(c, key);
  const native = series((m) => nodeCrypto.sign('sha256', Buffer.from(m), { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  console.log(JSON.stringify({ event: 'first-calls', importMs, noble, native }));
}

/**
 * DDS's side: requests per second (and per CPU second: on shared cores the
 * wall-clock rate measures the neighbours too) through the simulator's
 * checks, pre-signed outside the timing, interleaved rounds — a legacy
 * registration beside the wallet generation's registration and sign-in.
 */
async function simulatorChecks(c: Crypto, perRound: number, record: (name: string, value: unknown) => void): Promise<void> {
  const [{ verifyRegistrationRequest }, { buildRegistrationRequest, serializeRegistrationBody }, siwe, { SiweAuthority }] = await Promise.all([
    import('../src/sim/verify-registration.js'),
    import('../src/register.js'),
    import('../src/register-siwe.js'),
    import('../src/sim/siwe-authority.js'),
  ]);
  const key = c.generateSecretKey();
  const wallet = c.deriveEthAddress(key);
  const authority = new SiweAuthority({ domain: '127.0.0.1:8787', uri: 'http://127.0.0.1:8787', expectedRegSecret: 'reg-secret' });
  const walletBody = JSON.stringify({ wallet });
  /** A signed SIWE message for a fresh nonce (issuing the nonce is timed apart, in `check`). */
  const signed = (): { message: string; signature: string } => {
    const nonce = authority.issueNonce(walletBody);
    if (!nonce.ok) throw new Error(nonce.reason);
    const message = siwe.composeSiweMessage(nonce.fields, wallet);
    return { message, signature: c.signEip191RecoverableHex(key, message) };
  };
  const legacy = (): string => serializeRegistrationBody(buildRegistrationRequest({ nodeUrl: NODE_URL, nodeVersion: '1.0.0', regSecret: 'reg-secret', key }));
  const kinds: { key: string; name: string; make(): string; check(body: string): boolean }[] = [
    {
      key: 'legacy',
      name: 'legacy registration (verifyRegistrationRequest) — baseline',
      make: legacy,
      check: (body) => verifyRegistrationRequest(body, { expectedRegSecret: 'reg-secret' }).ok,
    },
    {
      key: 'siweRegistration',
      name: 'SIWE registration (nonce + register-wallet)',
      make: () => siwe.serializeSiweRegistrationBody({ ...signed(), registration_credentials: 'reg-secret', capabilities: ['/cap/v1'], version: '1.0.0' }),
      check: (body) => authority.issueNonce(walletBody).ok && authority.registerWallet(body).ok,
    },
    {
      key: 'siweSignIn',
      name: 'SIWE sign-in (nonce + verify)',
      make: () => siwe.serializeSiweVerifyBody({ address: wallet, ...signed() }),
      check: (body) => authority.issueNonce(walletBody).ok && authority.verify(body).ok,
    },
  ];
  const totals = kinds.map(() => ({ ops: 0, ms: 0, cpuUs: 0 }));
  for (let round = 0; round < 3; round++) {
    for (let j = 0; j < kinds.length; j++) {
      const i = (j + round) % kinds.length;
      const kind = kinds[i] as (typeof kinds)[number];
      const bodies = Array.from({ length: perRound }, () => kind.make());
      const [t0, cpu0] = [now(), process.cpuUsage()];
      for (const body of bodies) if (!kind.check(body)) throw new Error(`${kind.name}: a valid request was refused`);
      const cpu = process.cpuUsage(cpu0);
      const total = totals[i] as { ops: number; ms: number; cpuUs: number };
      total.ms += now() - t0;
      total.cpuUs += cpu.user + cpu.system;
      total.ops += bodies.length;
    }
  }
  // A replayed request must be refused (single-use nonces), or the figures mean nothing.
  const replay = siwe.serializeSiweVerifyBody({ address: wallet, ...signed() });
  if (!authority.verify(replay).ok || authority.verify(replay).ok) throw new Error('a replayed sign-in was accepted');
  const perCpuSec = totals.map((t) => (t.ops / t.cpuUs) * 1e6);
  printTable(
    `Simulator checks per second (pre-signed requests, in process, 3 interleaved rounds of ${perRound}); ratio = ÷ legacy, per CPU second`,
    ['request', 'req/s', 'req per CPU s', 'CPU µs/req', 'ratio'],
    kinds.map((k, i) => {
      const [wall, cpu] = [((totals[i]?.ops ?? 0) / (totals[i]?.ms ?? NaN)) * 1000, perCpuSec[i] as number];
      record(`simulator.${k.key}`, { reqPerSec: wall, reqPerCpuSec: cpu, ratioToLegacyCpu: ratio(cpu, perCpuSec[0] as number) });
      return [k.name, fmt(wall, 0), fmt(cpu, 0), fmt(1e6 / cpu, 0), fmt(ratio(cpu, perCpuSec[0] as number))];
    }),
  );
}

interface Series {
  first: number;
  second: number;
  warm: number;
}

async function main(): Promise<void> {
  const opts = benchOptions('signing', 'secp256k1 signing: the project’s helpers (noble, pure JS) beside node:crypto (OpenSSL).', {
    seconds: { default: 2, quick: 0.3, help: 'timed seconds per signer' },
    runs: { default: 5, quick: 2, help: 'fresh processes timing the first signatures' },
  });
  runBench('signing', async (cleanup) => {
    console.log(`@noble/secp256k1 vs OpenSSL ${process.versions.openssl}; ${opts.seconds} s per signer, ${opts.runs} fresh processes for the first signatures`);
    // First, before this process heats the machine.
    const first: { importMs: number; noble: Series; native: Series }[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const child = spawnChild(cleanup, {
        script: 'bench/signing.ts',
        env: { ...process.env, [FIRST_CALL_ENV]: '1' },
        name: 'first-call',
        waitTimeoutMs: 60_000,
      });
      first.push((await child.waitForEvent('first-calls')).line as unknown as (typeof first)[number]);
    }
    const c = await loadCrypto();
    const msgs = messages(c, 64);
    const list = signers(c);
    verifyAll(list, msgs);
    for (const s of list) timeFor(s.sign, msgs, Math.min(300, opts.seconds * 250));
    const totals = list.map(() => ({ ops: 0, ms: 0 }));
    // Five rounds in rotating order: a change in the machine's load hits every signer alike.
    for (let round = 0; round < 5; round++) {
      for (let j = 0; j < list.length; j++) {
        const i = (j + round) % list.length;
        const r = timeFor((list[i] as Signer).sign, msgs, (opts.seconds * 1000) / 5);
        (totals[i] as { ops: number }).ops += r.ops;
        (totals[i] as { ms: number }).ms += r.ms;
      }
    }
    verifyAll(list, msgs);
    const perSec = totals.map((t) => (t.ops / t.ms) * 1000);
    const base = perSec[list.findIndex((s) => s.label.endsWith('baseline'))] as number;
    const record = figures('signing', opts.quick);
    printTable(
      'Signatures per second (same key, registration messages); ratio = ops/s ÷ OpenSSL ieee-p1363',
      ['signer', 'ops/s', 'µs/op', '÷ OpenSSL'],
      list.map((s, i) => {
        const ops = perSec[i] as number;
        record(s.label, { opsPerSec: ops, usPerOp: 1e6 / ops, ratio: ratio(ops, base) });
        return [s.label, fmt(ops, 0), fmt(1e6 / ops, 1), fmt(ratio(ops, base))];
      }),
    );
    const median = (pick: (r: (typeof first)[number]) => number): number => summarize(first.map(pick)).p50;
    const row = (label: string, side: 'noble' | 'native'): string[] => {
      const [a, b, w] = [median((r) => r[side].first), median((r) => r[side].second), median((r) => r[side].warm)];
      record(`first-calls.${side}`, { firstMs: a, secondMs: b, warmMs: w, importMs: median((r) => r.importMs) });
      return [label, fmt(a), fmt(b), fmt(w), fmt(a / w, 0)];
    };
    printTable(
      `First signatures of a fresh process (ms, median of ${opts.runs} processes)`,
      ['signer', '1st', '2nd', 'warm', '1st ÷ warm'],
      [row('noble signRecoverableKeccakHex', 'noble'), row('OpenSSL p1363', 'native')],
    );
    await simulatorChecks(c, opts.quick ? 30 : 200, record);
    console.log(`\nimport of src/crypto.ts: ${fmt(median((r) => r.importMs))} ms. Every signer's signatures were verified, before and after timing.`);
  });
}

if (process.env[FIRST_CALL_ENV] === '1') void firstCalls();
else void main();
