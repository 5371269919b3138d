/**
 * The warm signer (src/warm-signer.ts), as built: its worker is the compiled
 * dist/src/sign-worker.js (npm test builds first).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  InvalidPrivateKeyError,
  generateSecretKey,
  secp256k1PubkeyUncompressedHex,
  signRecoverableKeccakHex,
  verifyRecoverableKeccakHex,
} from '../../src/crypto.js';
import { startWarmSigner } from '../../dist/src/warm-signer.js'; // as built: the worker is dist/src/sign-worker.js

const messages = Array.from({ length: 8 }, (_, i) => `https://node-${i}.example.com2026-11-27T14:0${i}:05.006007008Z`);

describe('startWarmSigner', () => {
  it('signs in the worker exactly as this thread would, then on this thread once warmed', async () => {
    const key = generateSecretKey();
    const signer = startWarmSigner(key.exposeHex());
    try {
      assert.equal(await signer.publicKeyHex, secp256k1PubkeyUncompressedHex(key));
      assert.equal(signer.inWorker, true);
      const inWorker = await Promise.all(messages.map((m) => signer.sign(m)));
      assert.deepEqual(inWorker, messages.map((m) => signRecoverableKeccakHex(key, m)));
      for (const [i, m] of messages.entries()) assert.ok(verifyRecoverableKeccakHex(inWorker[i] as string, m, secp256k1PubkeyUncompressedHex(key)));
      signer.warm();
      assert.equal(signer.inWorker, false);
      assert.equal(await signer.sign(messages[0] as string), signRecoverableKeccakHex(key, messages[0] as string));
      signer.warm(); // idempotent
    } finally {
      signer.close();
    }
  });

  it('answers requests still in flight when it is warmed or closed', async () => {
    const key = generateSecretKey();
    const signer = startWarmSigner(key.exposeHex());
    const inFlight = messages.map((m) => signer.sign(m));
    signer.close();
    assert.deepEqual(await Promise.all(inFlight), messages.map((m) => signRecoverableKeccakHex(key, m)));
    assert.equal(signer.inWorker, false);
    assert.equal(await signer.sign('after close'), signRecoverableKeccakHex(key, 'after close'));
    signer.close();
  });

  it('signs on this thread when the sources run without a built worker (through tsx)', async () => {
    const { startWarmSigner: fromSources } = await import('../../src/warm-signer.js');
    const key = generateSecretKey();
    const signer = fromSources(key.exposeHex());
    assert.equal(signer.inWorker, false);
    assert.equal(await signer.sign(messages[1] as string), signRecoverableKeccakHex(key, messages[1] as string));
    assert.equal(await signer.publicKeyHex, secp256k1PubkeyUncompressedHex(key));
    signer.close();
  });

  it('refuses a bad key as loadSecp256k1Privhex does, without showing it', () => {
    const bad = 'ff'.repeat(32); // above the curve order
    assert.throws(
      () => startWarmSigner(bad),
      // dist's class, not the sources' one: compared by name
      (error: unknown) => error instanceof Error && error.name === InvalidPrivateKeyError.name && !error.message.includes(bad),
    );
  });
});
