/**
 * warm-signer — sign the first registrations in a worker thread while this
 * thread starts up.
 *
 * noble builds a table of multiples of G the first time a process uses its
 * key (~45 ms of one core, the largest single cost of a cold start: see
 * docs/benchmarks.md). `startWarmSigner` starts a worker that builds it on
 * the other core while this thread loads its modules; until {@link
 * WarmSigner.warm} is called, signatures are made there. `warm()` builds the
 * table here (once the start-up is over) and ends the worker.
 *
 * The signatures are the very ones this thread would make (RFC 6979:
 * deterministic). The key is handed to the worker (in this process) and
 * dies with it. Should the worker fail, signing falls back to this thread.
 * The CLI's `run` uses it; a library user can pass one to `createRegistrar`
 * as `options.signer`.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { loadSecp256k1Privhex, secp256k1PubkeyUncompressedHex, signRecoverableKeccakHex, type SecretKey } from './crypto.js';
import type { SignWorkerReply, SignWorkerRequest } from './sign-worker.js';

/** What signs a registration: the public key, and `signRecoverableKeccakHex` over a message. */
export interface RegistrationSigner {
  /** The key's public key (uncompressed, hex). */
  readonly publicKeyHex: Promise<string>;
  /** `signRecoverableKeccakHex(key, message)`. */
  sign(message: string): Promise<string>;
}

/** A {@link RegistrationSigner} that signs in a worker thread until warmed. */
export interface WarmSigner extends RegistrationSigner {
  /** Whether signatures are still made in the worker. */
  readonly inWorker: boolean;
  /** Sign on this thread from now on (builds noble's table here, ~45 ms) and end the worker. Idempotent; nothing after close(). */
  warm(): void;
  /** End the worker (signing goes on, on this thread). Idempotent. */
  close(): void;
}

/**
 * The worker's entry point beside this module, as built (`dist/src/`, or
 * `dist/src/cli/` beside the CLI bundle); undefined when there is none (the
 * sources run through a TypeScript loader): then everything is signed here.
 */
function workerEntry(): string | undefined {
  const file = fileURLToPath(new URL('./sign-worker.js', import.meta.url));
  return existsSync(file) ? file : undefined;
}

/**
 * Start a worker that signs with `privhex` (64 hex digits, the
 * `secp256k1Privhex` setting). @throws InvalidPrivateKeyError for a bad key, as
 * `loadSecp256k1Privhex` does (nothing is started then).
 */
export function startWarmSigner(privhex: string): WarmSigner {
  const key: SecretKey = loadSecp256k1Privhex(privhex);
  let worker: Worker | undefined;
  let warmed = false;
  /** close() was called: nothing is worth warming any more. */
  let closed = false;
  let nextId = 1;
  const pending = new Map<number, { resolve: (signature: string) => void; message: string }>();

  const signHere = (message: string): string => signRecoverableKeccakHex(key, message);
  /** Sign here whatever the worker left unanswered. */
  const drainHere = (): void => {
    for (const [id, p] of pending) {
      pending.delete(id);
      p.resolve(signHere(p.message));
    }
  };
  const end = (): void => {
    const w = worker;
    worker = undefined;
    if (w !== undefined) void w.terminate().catch(() => undefined);
    drainHere();
  };

  let resolveKey!: (hex: string) => void;
  const publicKeyHex = new Promise<string>((resolve) => (resolveKey = resolve));
  try {
    const file = workerEntry();
    if (file === undefined) throw new Error('no worker entry');
    worker = new Worker(file, { workerData: { privhex: key.exposeHex() }, stdout: false, stderr: false });
    // A worker must never keep the process alive, nor crash it.
    worker.unref();
    worker.on('message', (reply: SignWorkerReply) => {
      if ('type' in reply) {
        if (reply.type === 'ready') resolveKey(reply.publicKeyHex);
        else {
          end();
          resolveKey(secp256k1PubkeyUncompressedHex(key));
        }
        return;
      }
      const p = pending.get(reply.id);
      if (p === undefined) return;
      pending.delete(reply.id);
      p.resolve('signature' in reply ? reply.signature : signHere(p.message));
    });
    worker.on('error', () => {
      end();
      resolveKey(secp256k1PubkeyUncompressedHex(key));
    });
    worker.on('exit', () => {
      if (worker !== undefined) {
        worker = undefined;
        drainHere();
        resolveKey(secp256k1PubkeyUncompressedHex(key));
      }
    });
  } catch {
    worker = undefined;
    resolveKey(secp256k1PubkeyUncompressedHex(key));
  }

  return {
    publicKeyHex,
    get inWorker() {
      return !warmed && worker !== undefined;
    },
    sign(message) {
      if (warmed || worker === undefined) return Promise.resolve(signHere(message));
      const id = nextId++;
      return new Promise<string>((resolve) => {
        pending.set(id, { resolve, message });
        worker?.postMessage({ id, message } satisfies SignWorkerRequest);
      });
    },
    warm() {
      if (warmed || closed) return;
      secp256k1PubkeyUncompressedHex(key); // builds the table on this thread
      warmed = true;
      end();
    },
    close() {
      closed = true;
      end();
    },
  };
}
