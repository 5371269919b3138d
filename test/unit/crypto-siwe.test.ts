import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  deriveEthAddress,
  eip191DigestHex,
  ethAddressFromPublicKey,
  generateSecretKey,
  isEthAddress,
  keccak256Hex,
  loadSecp256k1Privhex,
  recoverEip191Address,
  secp256k1PubkeyUncompressedHex,
  signEip191RecoverableHex,
  verifyEip191Signature,
} from '../../src/crypto.js';
import { composeSiweMessage, type SiweNonceFields } from '../../src/register-siwe.js';
import { assertVectorCounts, readProtocolVectors } from '../support/index.js';

interface SiweVectors {
  addresses: Array<{ privhex: string; public_key: string; address: string }>;
  eip191: Array<{ privhex: string; message: string; utf8_length: number; digest: string; signature: string }>;
  siwe_messages: Array<{ privhex: string; nonce_response: SiweNonceFields; address: string; message: string; signature: string }>;
}
const vectors = readProtocolVectors<SiweVectors>('siwe-vectors.json');
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

describe('wallet vectors (../shared/protocol/siwe-vectors.json)', () => {
  test('the file has vectors of every kind', () => assertVectorCounts(vectors, { addresses: 4, eip191: 12, siwe_messages: 8 }));

  for (const [i, v] of vectors.addresses.entries()) {
    test(`address vector ${i}: ${v.address}`, () => {
      const key = loadSecp256k1Privhex(v.privhex);
      assert.equal(secp256k1PubkeyUncompressedHex(key), v.public_key);
      assert.equal(deriveEthAddress(key), v.address);
      assert.equal(ethAddressFromPublicKey(v.public_key), v.address);
    });
  }

  for (const [i, v] of vectors.eip191.entries()) {
    test(`EIP-191 vector ${i}: ${JSON.stringify(v.message)}`, () => {
      const key = loadSecp256k1Privhex(v.privhex);
      assert.equal(Buffer.byteLength(v.message, 'utf8'), v.utf8_length);
      assert.equal(eip191DigestHex(v.message), v.digest);
      assert.equal(signEip191RecoverableHex(key, v.message), v.signature);
      assert.equal(signEip191RecoverableHex(key, new TextEncoder().encode(v.message)), v.signature);
      assert.equal(recoverEip191Address(v.signature, v.message), deriveEthAddress(key));
    });
  }

  for (const [i, v] of vectors.siwe_messages.entries()) {
    test(`SIWE message vector ${i}: composed verbatim and signed`, () => {
      const key = loadSecp256k1Privhex(v.privhex);
      assert.equal(deriveEthAddress(key), v.address);
      assert.equal(composeSiweMessage(v.nonce_response, v.address), v.message);
      assert.equal(signEip191RecoverableHex(key, v.message), v.signature);
      assert.ok(verifyEip191Signature(v.signature, v.message, v.address));
    });
  }
});

describe('EIP-191 behaviour', () => {
  test('the prefix counts UTF-8 bytes, not UTF-16 units', () => {
    const key = generateSecretKey();
    const message = 'bücher.example wants you to sign in 🦊';
    assert.notEqual(Buffer.byteLength(message), message.length);
    // Keccak-256("\x19Ethereum Signed Message:\n" + byte length + message), built by hand here.
    const bytes = Buffer.from(message, 'utf8');
    const manual = Buffer.concat([Buffer.from(`\x19Ethereum Signed Message:\n${bytes.length}`, 'utf8'), bytes]);
    const wrong = Buffer.concat([Buffer.from(`\x19Ethereum Signed Message:\n${message.length}`, 'utf8'), bytes]);
    assert.equal(eip191DigestHex(message), keccak256Hex(manual));
    assert.notEqual(eip191DigestHex(message), keccak256Hex(wrong));
    const sig = signEip191RecoverableHex(key, message);
    assert.ok(verifyEip191Signature(sig, message, deriveEthAddress(key)));
  });

  test('signatures are 0x, lowercase, low-S, v 27/28 last; recovery rejects every other shape', () => {
    const key = generateSecretKey();
    const address = deriveEthAddress(key);
    assert.ok(isEthAddress(address));
    const seenV = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const msg = `message ${i}`;
      const sig = signEip191RecoverableHex(key, msg);
      assert.match(sig, /^0x[0-9a-f]{128}(1b|1c)$/);
      assert.equal(sig.length, 132);
      seenV.add(sig.slice(130));
      const s = BigInt(`0x${sig.slice(66, 130)}`);
      assert.ok(s <= N / 2n, 'low-S');
      assert.ok(verifyEip191Signature(sig, msg, address));
      assert.ok(!verifyEip191Signature(sig, `${msg}.`, address), 'another message');
      const body = sig.slice(2, 130);
      const v = sig.slice(130);
      const otherV = v === '1b' ? '1c' : '1b';
      const highS = (N - s).toString(16).padStart(64, '0');
      for (const bad of [
        sig.slice(2), // no 0x
        `0X${body}${v}`,
        `0x${body.toUpperCase()}${v}`,
        `0x${body}${otherV}`, // wrong recovery id: another key
        `0x${body}0${v === '1b' ? '0' : '1'}`, // v as 0/1
        `0x${v}${body}`, // v first
        `0x${sig.slice(2, 66)}${highS}${otherV}`, // the high-S twin of the same signature
        `0x${'0'.repeat(64)}${sig.slice(66)}`, // r = 0
        `${sig}00`,
        sig.slice(0, -2),
      ]) {
        assert.ok(!verifyEip191Signature(bad, msg, address), bad);
      }
      assert.equal(recoverEip191Address(`0x${body}${otherV}`, msg) === address, false);
    }
    assert.deepEqual([...seenV].sort(), ['1b', '1c'], 'both recovery ids seen');
    assert.ok(!verifyEip191Signature(signEip191RecoverableHex(key, 'x'), 'x', address.toUpperCase().replace('0X', '0x')));
    assert.ok(!verifyEip191Signature(signEip191RecoverableHex(key, 'x'), 'x', deriveEthAddress(generateSecretKey())));
  });

  test('ethAddressFromPublicKey refuses anything but an uncompressed key', () => {
    const pub = secp256k1PubkeyUncompressedHex(generateSecretKey());
    assert.throws(() => ethAddressFromPublicKey(pub.slice(2)), TypeError);
    assert.throws(() => ethAddressFromPublicKey(`02${pub.slice(2, 66)}`), TypeError);
  });
});
