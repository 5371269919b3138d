/**
 * state — the registration state file and the cross-process registration
 * lock, plus the crate's free functions on a default store.
 *
 * - ./writer.ts: who writes or holds, and whether it still runs
 * - ./atomic-file.ts: atomic writes, regular-file-only reads
 * - ./state-file.ts: the file's format
 * - ./store.ts: {@link StateStore}
 * - ./lock.ts: {@link RegistrationLock}
 * - ./liveness.ts: heartbeats judged on our monotonic clock
 * - ./instances.ts: {@link InstanceRegistry}, who shares the directory and is alive
 *
 * @module
 */
import { StateStore } from './store.js';
import type { RegistrationState, RegistrationStatus } from './state-file.js';

export { StateStore, type StateStoreOptions } from './store.js';
export {
  REGISTRATION_STATUSES,
  defaultRegistrationState,
  type RegistrationState,
  type RegistrationStatus,
} from './state-file.js';
export {
  InstanceRegistry,
  keyPrefix,
  type InstanceConflict,
  type InstanceRegistryOptions,
  type InstanceView,
  type NodeIdentity,
} from './instances.js';
export { HeartbeatWatch } from './liveness.js';
export {
  isProvablyAlive,
  isProvablyGone,
  isWriterAlive,
  newWriterInfo,
  registerLiveWriter,
  sameWriter,
  thisProcessWriter,
  type WriterInfo,
} from './writer.js';
export {
  MIN_LOCK_STALE_MS,
  RegistrationLock,
  type LockAttempt,
  type LockConfirmation,
  type LockHolder,
  type RegistrationLockOptions,
} from './lock.js';

let defaultStore: StateStore | undefined;

/**
 * The process-wide store of `data/registration_state.json`, made on the first
 * call: `data` is resolved against the working directory of that moment, not
 * of the import.
 */
export function defaultStateStore(): StateStore {
  defaultStore ??= new StateStore();
  return defaultStore;
}

/** Crate-shaped: the state in {@link defaultStateStore}'s file. */
export function readState(): RegistrationState {
  return defaultStateStore().read();
}

/** Crate-shaped: replace the state in {@link defaultStateStore}'s file; `false` on a disk error. */
export function writeState(state: RegistrationState): boolean {
  return defaultStateStore().write(state);
}

/** Crate-shaped: set the status in {@link defaultStateStore}'s file; `false` on a disk error. */
export function setStatus(status: RegistrationStatus): boolean {
  return defaultStateStore().setStatus(status);
}

/** Crate-shaped: record a DDS health check now in {@link defaultStateStore}'s file; `false` on a disk error. */
export function touchHealthcheckNow(): boolean {
  return defaultStateStore().touchHealthcheckNow();
}
