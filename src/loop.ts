/**
 * runRegistrationLoop — the crate-shaped convenience: build a registrar from
 * the crate's `RegistrationConfig` fields, start it, and hand back a handle;
 * and {@link registrarDone}, the one reading of how a registrar ended.
 */
import { toPromise } from 'xstate';
import type { RegistrarConfig } from './config.js';
import { CodedError } from './errors.js';
import { createRegistrar, type Registrar, type RegistrarOptions } from './registrar.js';

/** The code of {@link DataDirectoryInUseError}. */
export const DATA_DIR_IN_USE = 'EDATADIRINUSE';

/** The registrar ended in `failed` (e.g. an invalid private key). */
export class RegistrarFailedError extends CodedError<string> {
  override readonly name: string = 'RegistrarFailedError';
}

/**
 * The registrar refused to start: a live registrar of another node (another
 * public key) uses its data directory. The message names both key prefixes
 * (8 hex digits) and the directory; the CLI exits 2.
 */
export class DataDirectoryInUseError extends RegistrarFailedError {
  override readonly name: string = 'DataDirectoryInUseError';
  constructor(message: string) {
    super(DATA_DIR_IN_USE, message);
  }
}

/**
 * Wait for a registrar to end: resolves once it has `stopped`, rejects with
 * {@link RegistrarFailedError} when it `failed` (the machine's `output` says
 * which). Never settles for an actor stopped with `.stop()` instead of `STOP`.
 */
export async function registrarDone(registrar: Registrar): Promise<void> {
  const output = await toPromise(registrar);
  if (output.outcome === 'failed') {
    if (output.error.code === DATA_DIR_IN_USE) throw new DataDirectoryInUseError(output.error.message);
    throw new RegistrarFailedError(output.error.code, output.error.message);
  }
}

/** A running registration loop. */
export interface RegistrationLoop {
  /** The running actor (subscribe to it, or mount `routerDds(loop.registrar)`). */
  readonly registrar: Registrar;
  /** Resolves when the loop has stopped; rejects with {@link RegistrarFailedError} when it failed. */
  readonly done: Promise<void>;
  /** Stop gracefully (lock released, `disconnected` persisted) and wait for it. */
  stop(): Promise<void>;
}

/**
 * Start a registrar and return its handle (the crate's
 * `run_registration_loop`, but stoppable and observable). The crate's
 * `reqwest::Client` is `options.got`.
 */
export function runRegistrationLoop(config: RegistrarConfig, options: RegistrarOptions = {}): RegistrationLoop {
  const registrar = createRegistrar(config, options);
  const done = registrarDone(registrar);
  registrar.start();
  return {
    registrar,
    done,
    stop: async () => {
      registrar.send({ type: 'STOP' });
      await done.catch(() => undefined);
    },
  };
}
