/**
 * sign-worker — the worker thread behind {@link startWarmSigner}
 * (src/warm-signer.ts): it derives the public key and signs registration
 * messages with the key it was started with, so that the main thread's
 * first registration does not wait for noble's one-time table of multiples
 * of G (~45 ms).
 *
 * Protocol: `workerData` is `{ privhex }`; the worker posts
 * `{ type: 'ready', publicKeyHex }` (or `{ type: 'failed' }`), then answers
 * each `{ id, message }` with `{ id, signature }` (or `{ id, failed: true }`).
 * It never logs, and never sends the key back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadSecp256k1Privhex, secp256k1PubkeyUncompressedHex, signRecoverableKeccakHex, type SecretKey } from './crypto.js';

/** A message the worker posts. */
export type SignWorkerReply =
  | { type: 'ready'; publicKeyHex: string }
  | { type: 'failed' }
  | { id: number; signature: string }
  | { id: number; failed: true };

/** A request the worker answers. */
export interface SignWorkerRequest {
  id: number;
  message: string;
}

function start(): void {
  const port = parentPort;
  if (port === null) return;
  let key: SecretKey;
  try {
    key = loadSecp256k1Privhex(String((workerData as { privhex?: unknown } | null)?.privhex ?? ''));
    // Deriving the public key builds the table every later signature uses.
    port.postMessage({ type: 'ready', publicKeyHex: secp256k1PubkeyUncompressedHex(key) } satisfies SignWorkerReply);
  } catch {
    port.postMessage({ type: 'failed' } satisfies SignWorkerReply);
    return;
  }
  port.on('message', (request: SignWorkerRequest) => {
    try {
      port.postMessage({ id: request.id, signature: signRecoverableKeccakHex(key, request.message) } satisfies SignWorkerReply);
    } catch {
      port.postMessage({ id: request.id, failed: true } satisfies SignWorkerReply);
    }
  });
}

start();
