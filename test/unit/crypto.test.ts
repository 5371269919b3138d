import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  formatTimestampNanos,
  formatTimestampNow,
  generateSecretKey,
  InvalidPrivateKeyError,
  keccak256Hex,
  loadSecp256k1Privhex,
  nowEpochNanos,
  parseTimestampNanos,
  secp256k1PubkeyUncompressedHex,
  signCompactHex,
  signRecoverableKeccakHex,
  verifyRecoverableKeccakHex,
} from '../../src/crypto.js';
import { assertVectorCounts, readProtocolVectors } from '../support/index.js';

interface Vectors {
  signing: Array<{
    privhex: string;
    public_key: string;
    url: string;
    timestamp: string;
    message: string;
    keccak256: string;
    signature_keccak_recoverable: string;
    signature_sha256_compact: string;
  }>;
  invalid_keys: Array<{ privhex: string; why: string }>;
  timestamps: Array<{ epoch_ns: string; text: string }>;
}
const vectors = readProtocolVectors<Vectors>('vectors.json');

describe('crypto vectors (../shared/protocol/vectors.json)', () => {
  test('the file has vectors of every kind', () => assertVectorCounts(vectors, { signing: 10, invalid_keys: 5, timestamps: 3 }));

  for (const [i, v] of vectors.signing.entries()) {
    test(`signing vector ${i}: public key, keccak, recoverable and compact signatures`, () => {
      const key = loadSecp256k1Privhex(v.privhex);
      assert.equal(secp256k1PubkeyUncompressedHex(key), v.public_key);
      assert.equal(v.message, v.url + v.timestamp);
      assert.equal(keccak256Hex(v.message), v.keccak256);
      assert.equal(signRecoverableKeccakHex(key, v.url + v.timestamp), v.signature_keccak_recoverable);
      assert.equal(signRecoverableKeccakHex(key, new TextEncoder().encode(v.message)), v.signature_keccak_recoverable);
      assert.equal(signCompactHex(key, v.message), v.signature_sha256_compact);
      assert.ok(verifyRecoverableKeccakHex(v.signature_keccak_recoverable, v.message, v.public_key));
    });
  }

  for (const v of vectors.invalid_keys) {
    test(`invalid key refused: ${v.why}`, () => {
      assert.throws(
        () => loadSecp256k1Privhex(v.privhex),
        (error: unknown) => {
          assert.ok(error instanceof InvalidPrivateKeyError);
          const bare = v.privhex.replace(/^0x/, '');
          if (bare.length >= 8) assert.ok(!error.message.includes(bare), 'the message must not echo the key');
          assert.match(error.message, /invalid secp256k1 private key: /);
          return true;
        },
      );
    });
  }

  for (const v of vectors.timestamps) {
    test(`timestamp ${v.epoch_ns} → ${v.text}`, () => {
      assert.equal(formatTimestampNanos(BigInt(v.epoch_ns)), v.text);
      assert.equal(parseTimestampNanos(v.text), BigInt(v.epoch_ns));
    });
  }
});

describe('crypto behaviour', () => {
  test('error messages say what is wrong', () => {
    const reasons = (hex: string) => {
      try {
        loadSecp256k1Privhex(hex);
        return 'accepted';
      } catch (e) {
        return (e as InvalidPrivateKeyError).reason;
      }
    };
    assert.equal(reasons(''), 'empty');
    assert.equal(reasons('  '), 'empty');
    assert.equal(reasons('xyz'), 'not-hex');
    assert.equal(reasons('abc'), 'odd-length');
    assert.equal(reasons('ab'.repeat(31)), 'wrong-length');
    assert.equal(reasons('00'.repeat(32)), 'out-of-range');
    assert.equal(reasons(`  0x${'11'.repeat(32)}\n`), 'accepted');
    assert.equal(reasons(`0X${'AB'.repeat(32)}`), 'accepted');
  });

  test('a SecretKey never prints its bytes', () => {
    const hex = '4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318';
    const key = loadSecp256k1Privhex(hex);
    for (const text of [String(key), JSON.stringify({ key }), inspect(key), inspect({ key }, { depth: 5 }), `${key}`]) {
      assert.ok(!text.includes(hex), text);
      assert.ok(!text.toLowerCase().includes(hex.slice(0, 16)));
    }
    assert.equal(key.exposeHex(), hex);
  });

  test('generated keys are valid and distinct', () => {
    const a = generateSecretKey();
    const b = generateSecretKey();
    assert.notEqual(a.exposeHex(), b.exposeHex());
    assert.match(secp256k1PubkeyUncompressedHex(a), /^04[0-9a-f]{128}$/);
    assert.equal(loadSecp256k1Privhex(a.exposeHex()).exposeHex(), a.exposeHex());
  });

  test('signatures are low-S with v last, and verification rejects tampering', () => {
    const key = generateSecretKey();
    const pub = secp256k1PubkeyUncompressedHex(key);
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    for (let i = 0; i < 20; i++) {
      const msg = `https://node.example/${i}2024-01-02T03:04:05.000000000Z`;
      const sig = signRecoverableKeccakHex(key, msg);
      assert.match(sig, /^[0-9a-f]{128}0[01]$/);
      assert.ok(BigInt(`0x${sig.slice(64, 128)}`) <= n / 2n, 'low-S');
      assert.ok(verifyRecoverableKeccakHex(sig, msg, pub));
      assert.ok(!verifyRecoverableKeccakHex(sig, `${msg}x`, pub));
      const flippedV = sig.slice(0, 128) + (sig.endsWith('00') ? '01' : '00');
      assert.ok(!verifyRecoverableKeccakHex(flippedV, msg, pub));
      assert.ok(!verifyRecoverableKeccakHex(`${sig.slice(0, 128)}1b`, msg, pub));
    }
  });

  test('formatTimestampNanos takes a Date and always prints nine digits', () => {
    assert.equal(formatTimestampNanos(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6))), '2024-01-02T03:04:05.006000000Z');
    assert.match(formatTimestampNow(), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/);
    assert.throws(() => formatTimestampNanos(new Date(Number.NaN)), RangeError);
  });

  test('now has sub-millisecond digits and tracks the wall clock', () => {
    const samples = new Set<bigint>();
    for (let i = 0; i < 50; i++) samples.add(nowEpochNanos() % 1_000_000n);
    assert.ok([...samples].some((s) => s !== 0n), 'some sample has digits below the millisecond');
    const drift = Number(nowEpochNanos() / 1_000_000n) - Date.now();
    assert.ok(Math.abs(drift) <= 5, `drift ${drift} ms`);
  });
});
