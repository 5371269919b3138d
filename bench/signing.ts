/**
 * Signing benchmark: signatures per second of the project's two helpers
 * (`signRecoverableKeccakHex`: what the registration request carries, and
 * `signCompactHex`), pure JavaScript on @noble/secp256k1, beside Node's native
 * OpenSSL ECDSA on secp256k1 (`node:crypto`), same key, same messages.
 *
 *   node --import tsx bench/signing.ts [--quick] [--seconds S] [--runs N]
 *
 * - The key is fresh (`generateSecretKey()`); the native key is the same
 *   private key, imported as a JWK. Messages are what a registration signs:
 *   the node URL followed by an RFC 3339 nanosecond timestamp (PROTOCOL.md §1.1),
 *   64 different ones in turn.
 * - Native signs SHA-256 (`crypto.sign('sha256', …)`): OpenSSL has no
 *   Keccak-256, so the Keccak helper is compared with native SHA-256 signing.
 *   Native output is converted to hex like ours; `ieee-p1363` gives the compact
 *   64-byte `r‖s`; the DER default is shown too. OpenSSL's nonce is random and
 *   it does not normalise S; noble's is RFC 6979 and low-S. For scale, OpenSSL
 *   on P-256 (a curve it optimises; not the one DDS uses) is shown as well.
 * - Each contender is warmed up, then timed in batches for S seconds (default
 *   2, `--quick` 0.3), split over five rounds in rotating order; ops/s =
 *   operations / time. Every contender's signatures are verified once
 *   (noble's Keccak one by `verifyRecoverableKeccakHex`, the SHA-256 ones by
 *   OpenSSL's `crypto.verify`), so a broken benchmark cannot look fast.
 * - First call: noble builds a table of multiples of G on first use. N fresh
 *   child processes (default 5, `--quick` 2) each time their first signatures
 *   (import of src/crypto.ts, 1st, 2nd and a warm median), noble and native.
 *
 * - The simulator's checks (DDS's side): requests per second through the
 *   simulator's verification, pre-signed outside the timing — a legacy
 *   registration (`verifyRegistrationRequest`: verify and recover) beside the
 *   wallet generation's registration (nonce + `register-wallet`) and sign-in
 *   (nonce + `verify`), `SiweAuthority` in process, rounds interleaved.
 *
 * No goal is set by the issue for signing; a registration signs once per
 * request (once an interval). Prints tables with the ratios noble/native and
 * records the figures with `recordBench`; asserts nothing about speed.
 */
import { spawn } from 'node:child_process';
import * as nodeCrypto from 'node:crypto';
import * as path from 'node:path';
import type * as CryptoNamespace from '../src/crypto.js';
import type { SecretKey } from '../src/crypto.js';
import { REPO_ROOT } from '../test/support/child.js';
import { writeFigure } from '../test/support/figures.js';
import { round, summarize } from '../test/support/stats.js';
import { now } from '../test/support/time.js';
import { fmt, parseBenchArgs, positiveNumber, printMachine, printTable, ratio, runBench } from './common.js';

const USAGE = `
bench/signing.ts — secp256k1 signing: the project's helpers (noble, pure JS) vs node:crypto (OpenSSL).

  node --import tsx bench/signing.ts [--quick] [--seconds S] [--runs N]

  --seconds S   timed seconds per contender (default 2; --quick: 0.3)
  --runs N      fresh child processes timing the first signatures (default 5; --quick: 2)
  --quick       smoke-sized run
`;

const BENCH = 'signing';
/** Set in the child processes that time the first call. */
const FIRST_CALL_ENV = 'POSEMESH_BENCH_SIGNING_FIRST_CALL';
const NODE_URL = 'https://node-7f3a.posemesh.example:8080';
const MESSAGE_COUNT = 64;

/**
 * The project's crypto module, imported on use: the first-call children time
 * that import, so nothing here may import it statically.
 */
type CryptoModule = typeof CryptoNamespace;
const loadCrypto = (): Promise<CryptoModule> => import('../src/crypto.js');

/** The messages a registration signs: URL + timestamp (PROTOCOL.md §1.1), one per request. */
function registrationMessages(c: CryptoModule, count: number): string[] {
  const base = BigInt(Date.now()) * 1_000_000n;
  return Array.from({ length: count }, (_, i) => `${NODE_URL}${c.formatTimestampNanos(base + BigInt(i) * 120_000_000_123n)}`);
}

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/** The same private key as a node:crypto key pair (JWK import). */
function nativeKeys(c: CryptoModule, key: SecretKey): { privateKey: nodeCrypto.KeyObject; publicKey: nodeCrypto.KeyObject } {
  const pub = Buffer.from(c.secp256k1PubkeyUncompressedHex(key), 'hex');
  const jwk = { kty: 'EC', crv: 'secp256k1', x: base64url(pub.subarray(1, 33)), y: base64url(pub.subarray(33, 65)) };
  const privateKey = nodeCrypto.createPrivateKey({ key: { ...jwk, d: base64url(key.exposeBytes()) }, format: 'jwk' });
  const publicKey = nodeCrypto.createPublicKey({ key: jwk, format: 'jwk' });
  return { privateKey, publicKey };
}

/** One thing to time: sign a message (returning hex), and check a signature it made. */
interface Contender {
  key: string;
  label: string;
  sign(msg: string): string;
  verify(msg: string, signatureHex: string): boolean;
}

function contenders(c: CryptoModule, key: SecretKey): { noble: Contender[]; native: Contender[] } {
  const publicKeyHex = c.secp256k1PubkeyUncompressedHex(key);
  const { privateKey, publicKey } = nativeKeys(c, key);
  const verifySha256 = (dsaEncoding: 'ieee-p1363' | 'der') => (msg: string, signatureHex: string) =>
    nodeCrypto.verify('sha256', Buffer.from(msg, 'utf8'), { key: publicKey, dsaEncoding }, Buffer.from(signatureHex, 'hex'));
  return {
    noble: [
      {
        key: 'noble.keccakRecoverable',
        label: 'signRecoverableKeccakHex (noble, Keccak-256, r‖s‖v)',
        sign: (msg) => c.signRecoverableKeccakHex(key, msg),
        verify: (msg, sig) => c.verifyRecoverableKeccakHex(sig, msg, publicKeyHex),
      },
      {
        key: 'noble.sha256Compact',
        label: 'signCompactHex (noble, SHA-256, r‖s)',
        sign: (msg) => c.signCompactHex(key, msg),
        // Checked by OpenSSL: a standard ECDSA signature by the same key.
        verify: verifySha256('ieee-p1363'),
      },
    ],
    native: [
      {
        key: 'native.sha256P1363',
        label: "crypto.sign sha256, ieee-p1363 (OpenSSL, r‖s)",
        sign: (msg) => nodeCrypto.sign('sha256', Buffer.from(msg, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('hex'),
        verify: verifySha256('ieee-p1363'),
      },
      {
        key: 'native.sha256Der',
        label: 'crypto.sign sha256, DER (OpenSSL default)',
        sign: (msg) => nodeCrypto.sign('sha256', Buffer.from(msg, 'utf8'), privateKey).toString('hex'),
        verify: verifySha256('der'),
      },
      p256Reference(),
    ],
  };
}

/**
 * For scale only: OpenSSL on P-256, a curve it has optimised code for (DDS
 * needs secp256k1, for which OpenSSL 3 uses its generic code).
 */
function p256Reference(): Contender {
  const { privateKey, publicKey } = nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    key: 'native.p256Reference',
    label: 'crypto.sign sha256, p1363 on P-256 (reference: not the curve DDS uses)',
    sign: (msg) => nodeCrypto.sign('sha256', Buffer.from(msg, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('hex'),
    verify: (msg, sig) =>
      nodeCrypto.verify('sha256', Buffer.from(msg, 'utf8'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'hex')),
  };
}

/** Run `fn` over the messages in batches until `ms` have passed; operations and elapsed ms. */
function timeFor(fn: (msg: string) => string, messages: readonly string[], ms: number): { ops: number; ms: number } {
  let batch = 1;
  let ops = 0;
  let sink = 0;
  const t0 = now();
  let elapsed = 0;
  while (elapsed < ms) {
    const b0 = now();
    for (let i = 0; i < batch; i++) sink += fn(messages[(ops + i) % messages.length] as string).length;
    ops += batch;
    const took = now() - b0;
    // Batches of a few ms: the clock is read rarely, and the loop still ends close to `ms`.
    if (took < 2) batch *= 2;
    elapsed = now() - t0;
  }
  if (sink === 0) throw new Error('no signature was produced');
  return { ops, ms: elapsed };
}

interface Throughput {
  contender: Contender;
  ops: number;
  ms: number;
  opsPerSec: number;
  usPerOp: number;
}

function measureAll(list: readonly Contender[], messages: readonly string[], seconds: number): Throughput[] {
  const totals = new Map<string, { ops: number; ms: number }>(list.map((c) => [c.key, { ops: 0, ms: 0 }]));
  // Warm-up: JIT, and noble's precomputed table.
  for (const c of list) timeFor(c.sign, messages, Math.min(300, seconds * 250));
  const ROUNDS = 5;
  for (let round = 0; round < ROUNDS; round++) {
    const order = list.map((_, i) => list[(i + round) % list.length] as Contender);
    for (const c of order) {
      const r = timeFor(c.sign, messages, (seconds * 1000) / ROUNDS);
      const t = totals.get(c.key) as { ops: number; ms: number };
      t.ops += r.ops;
      t.ms += r.ms;
    }
  }
  return list.map((contender) => {
    const t = totals.get(contender.key) as { ops: number; ms: number };
    return { contender, ops: t.ops, ms: t.ms, opsPerSec: (t.ops / t.ms) * 1000, usPerOp: (t.ms * 1000) / t.ops };
  });
}

/** Sign two messages with each contender and check the signatures; throws when one does not verify. */
function verifyAll(list: readonly Contender[], messages: readonly string[]): void {
  for (const c of list) {
    for (const msg of [messages[0] as string, messages[messages.length - 1] as string]) {
      const sig = c.sign(msg);
      if (!c.verify(msg, sig)) throw new Error(`${c.label}: a signature it made does not verify`);
      if (c.verify(`${msg}x`, sig)) throw new Error(`${c.label}: a signature verifies for another message`);
    }
  }
}

// ---- first call, in fresh child processes ----

/** What one child measured, ms. */
interface FirstCall {
  importMs: number;
  nobleFirstMs: number;
  nobleSecondMs: number;
  nobleWarmMs: number;
  nativeKeyImportMs: number;
  nativeFirstMs: number;
  nativeSecondMs: number;
  nativeWarmMs: number;
}

function median(values: readonly number[]): number {
  return summarize(values).p50;
}

/** The child's side: time the first signatures of a fresh process. Prints one JSON line. */
async function firstCallChild(): Promise<void> {
  const t0 = now();
  const crypto = await loadCrypto();
  const importMs = now() - t0;
  const key = crypto.generateSecretKey();
  const messages = registrationMessages(crypto, 24);
  const timeOne = (fn: (msg: string) => unknown, msg: string): number => {
    const a = now();
    fn(msg);
    return now() - a;
  };
  const nobleSign = (msg: string): string => crypto.signRecoverableKeccakHex(key, msg);
  const nobleFirstMs = timeOne(nobleSign, messages[0] as string);
  const nobleSecondMs = timeOne(nobleSign, messages[1] as string);
  const nobleWarmMs = median(messages.slice(2).map((m) => timeOne(nobleSign, m)));

  const k0 = now();
  const { privateKey } = nativeKeys(crypto, key);
  const nativeKeyImportMs = now() - k0;
  const nativeSign = (msg: string): Buffer => nodeCrypto.sign('sha256', Buffer.from(msg, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const nativeFirstMs = timeOne(nativeSign, messages[0] as string);
  const nativeSecondMs = timeOne(nativeSign, messages[1] as string);
  const nativeWarmMs = median(messages.slice(2).map((m) => timeOne(nativeSign, m)));
  const result: FirstCall = { importMs, nobleFirstMs, nobleSecondMs, nobleWarmMs, nativeKeyImportMs, nativeFirstMs, nativeSecondMs, nativeWarmMs };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runFirstCallChild(): Promise<FirstCall> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'signing.ts')], {
      cwd: REPO_ROOT,
      env: { ...process.env, [FIRST_CALL_ENV]: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${String(code)}`);
        resolve(JSON.parse(line) as FirstCall);
      } catch (error) {
        reject(new Error(`first-call child failed (${error instanceof Error ? error.message : String(error)}): ${err.slice(-2000)}`));
      }
    });
  });
}

// ---- the simulator's checks: legacy beside the wallet generation ----

/** Requests per second the simulator's checks sustain, each kind beside the legacy registration. */
async function simulatorChecks(c: CryptoModule, perRound: number, quick: boolean): Promise<void> {
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
  /** A signed SIWE message for a fresh nonce (the nonce issue itself is timed apart). */
  const signedMessage = (): { message: string; signature: string } => {
    const nonce = authority.issueNonce(walletBody);
    if (!nonce.ok) throw new Error(nonce.reason);
    const message = siwe.composeSiweMessage(nonce.fields, wallet);
    return { message, signature: c.signEip191RecoverableHex(key, message) };
  };
  type Kind = { name: string; prepare(): string[]; check(body: string): boolean };
  const kinds: Kind[] = [
    {
      name: 'legacy registration (verifyRegistrationRequest)',
      prepare: () => Array.from({ length: perRound }, () => serializeRegistrationBody(buildRegistrationRequest({ nodeUrl: NODE_URL, nodeVersion: '1.0.0', regSecret: 'reg-secret', key }))),
      check: (body) => verifyRegistrationRequest(body, { expectedRegSecret: 'reg-secret' }).ok,
    },
    {
      name: 'SIWE registration (nonce + register-wallet)',
      prepare: () =>
        Array.from({ length: perRound }, () => siwe.serializeSiweRegistrationBody({ ...signedMessage(), registration_credentials: 'reg-secret', capabilities: ['/cap/v1'], version: '1.0.0' })),
      check: (body) => authority.issueNonce(walletBody).ok && authority.registerWallet(body).ok,
    },
    {
      name: 'SIWE sign-in (nonce + verify)',
      prepare: () => Array.from({ length: perRound }, () => siwe.serializeSiweVerifyBody({ address: wallet, ...signedMessage() })),
      check: (body) => authority.issueNonce(walletBody).ok && authority.verify(body).ok,
    },
  ];
  const totals = kinds.map(() => ({ ops: 0, ms: 0, cpuUs: 0 }));
  const ROUNDS = 3;
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < kinds.length; j++) {
      const i = (j + round) % kinds.length;
      const kind = kinds[i] as Kind;
      const bodies = kind.prepare();
      const t0 = now();
      const cpu0 = process.cpuUsage();
      for (const body of bodies) if (!kind.check(body)) throw new Error(`${kind.name}: a valid request was refused`);
      const cpu = process.cpuUsage(cpu0);
      const total = totals[i] as { ops: number; ms: number; cpuUs: number };
      total.ms += now() - t0;
      total.cpuUs += cpu.user + cpu.system;
      total.ops += bodies.length;
    }
  }
  // A replayed request must be refused (single-use nonces), or the figures mean nothing.
  const replay = kinds[2]?.prepare()[0] as string;
  if (!authority.verify(replay).ok || authority.verify(replay).ok) throw new Error('a replayed sign-in was accepted');
  const rates = totals.map((t) => (t.ops / t.ms) * 1000);
  // Per CPU second as well: on shared cores the wall-clock rate measures the neighbours too.
  const cpuRates = totals.map((t) => (t.ops / t.cpuUs) * 1e6);
  printTable(
    `Simulator checks per second (pre-signed requests, in process, ${ROUNDS} interleaved rounds of ${perRound}); ratio = ÷ legacy`,
    ['request', 'req/s', 'req per CPU s', 'CPU µs/req', 'ratio (CPU)'],
    kinds.map((k, i) => [k.name, fmt(rates[i] as number, 0), fmt(cpuRates[i] as number, 0), fmt(1e6 / (cpuRates[i] as number), 0), fmt(ratio(cpuRates[i] as number, cpuRates[0] as number))]),
  );
  kinds.forEach((_, i) =>
    writeFigure(
      BENCH,
      `simulator.${['legacy', 'siweRegistration', 'siweSignIn'][i]}`,
      { reqPerSec: round(rates[i] as number, 0), reqPerCpuSec: round(cpuRates[i] as number, 0), ratioToLegacyCpu: ratio(cpuRates[i] as number, cpuRates[0] as number) },
      { quick },
    ),
  );
}

// ---- the benchmark ----

function printThroughput(noble: readonly Throughput[], native: readonly Throughput[]): void {
  const reference = native[0] as Throughput;
  printTable(
    `Signatures per second (same key, registration messages); ratio = ops/s ÷ OpenSSL ieee-p1363`,
    ['signer', 'ops/s', 'µs/op', 'ratio'],
    [...noble, ...native].map((t) => [t.contender.label, fmt(t.opsPerSec, 0), fmt(t.usPerOp, 1), fmt(ratio(t.opsPerSec, reference.opsPerSec))]),
  );
}

function printFirstCalls(runs: readonly FirstCall[]): Record<string, number> {
  const m = (pick: (r: FirstCall) => number): number => median(runs.map(pick));
  const f = {
    importMs: m((r) => r.importMs),
    nobleFirstMs: m((r) => r.nobleFirstMs),
    nobleSecondMs: m((r) => r.nobleSecondMs),
    nobleWarmMs: m((r) => r.nobleWarmMs),
    nativeKeyImportMs: m((r) => r.nativeKeyImportMs),
    nativeFirstMs: m((r) => r.nativeFirstMs),
    nativeSecondMs: m((r) => r.nativeSecondMs),
    nativeWarmMs: m((r) => r.nativeWarmMs),
  };
  printTable(
    `First signatures of a fresh process (median of ${runs.length} processes), ms`,
    ['signer', '1st', '2nd', 'warm (median)', '1st ÷ warm', 'also'],
    [
      ['signRecoverableKeccakHex (noble)', fmt(f.nobleFirstMs), fmt(f.nobleSecondMs), fmt(f.nobleWarmMs, 3), fmt(ratio(f.nobleFirstMs, f.nobleWarmMs), 0), `import src/crypto.ts ${fmt(f.importMs)}`],
      ['crypto.sign sha256 p1363 (OpenSSL)', fmt(f.nativeFirstMs), fmt(f.nativeSecondMs), fmt(f.nativeWarmMs, 3), fmt(ratio(f.nativeFirstMs, f.nativeWarmMs), 0), `JWK key import ${fmt(f.nativeKeyImportMs)}`],
    ],
  );
  const rounded: Record<string, number> = {};
  for (const [k, v] of Object.entries(f)) rounded[k] = round(v, 3);
  return rounded;
}

async function main(): Promise<void> {
  if (process.env[FIRST_CALL_ENV] === '1') {
    await firstCallChild();
    return;
  }
  const args = parseBenchArgs(USAGE, ['seconds', 'runs']);
  const seconds = positiveNumber(args.options['seconds'], args.quick ? 0.3 : 2, 'seconds');
  const runs = Math.round(positiveNumber(args.options['runs'], args.quick ? 2 : 5, 'runs'));
  printMachine('signing');
  console.log(`@noble/secp256k1 (pure JS) vs node:crypto (OpenSSL ${process.versions.openssl}); ${seconds} s per signer; ${runs} fresh processes for the first call.`);

  // First calls first: children started before this process's own work heats the machine.
  const firstCalls: FirstCall[] = [];
  for (let i = 0; i < runs; i++) firstCalls.push(await runFirstCallChild());

  const crypto = await loadCrypto();
  const key = crypto.generateSecretKey();
  const messages = registrationMessages(crypto, MESSAGE_COUNT);
  const { noble, native } = contenders(crypto, key);
  verifyAll([...noble, ...native], messages);
  // One measurement over all signers, rounds interleaved: a change in the machine's load hits them alike.
  const results = measureAll([...noble, ...native], messages, seconds);
  const nobleResults = results.slice(0, noble.length);
  const nativeResults = results.slice(noble.length);
  verifyAll([...noble, ...native], messages);

  printThroughput(nobleResults, nativeResults);
  const first = printFirstCalls(firstCalls);
  await simulatorChecks(crypto, args.quick ? 30 : 200, args.quick);
  console.log('\nOpenSSL has no Keccak-256: the Keccak helper is set beside native SHA-256 signing. Every signer\'s signatures were verified.');

  const reference = nativeResults[0] as Throughput;
  for (const t of [...nobleResults, ...nativeResults]) {
    writeFigure(
      BENCH,
      t.contender.key,
      { opsPerSec: round(t.opsPerSec, 0), usPerOp: round(t.usPerOp, 2), ops: t.ops, ratioToNativeP1363: ratio(t.opsPerSec, reference.opsPerSec) },
      { quick: args.quick },
    );
  }
  writeFigure(BENCH, 'firstCall', { runs, ...first }, { quick: args.quick });
}

runBench(main);
