/**
 * Registrar identities of this process for the state tests: what a running
 * registrar registers (src/state/writer.ts), undone when the test ends.
 */
import { newWriterInfo, registerLiveWriter, type WriterInfo } from '../../src/state/writer.js';
import { onCleanup, type Cleanup } from './cleanup.js';

/** A fresh writer, registered as a live registrar of this process, and how it stops (idempotent; at cleanup anyway). */
export function liveWriter(t: Cleanup): [writer: WriterInfo, stop: () => void] {
  const writer = newWriterInfo();
  const stop = registerLiveWriter(writer);
  onCleanup(t, stop);
  return [writer, stop];
}
