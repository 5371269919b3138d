/**
 * The end of a command that logs: what the log still holds is written for a
 * bounded time, then the process may end even if its stdout is never read.
 */
import type { ProcessLogger } from '../log.js';

/** How long the log's last lines may take to be written at exit. */
export const LOG_FLUSH_AT_EXIT_MS = 2000;

/**
 * Wait (at most {@link LOG_FLUSH_AT_EXIT_MS}) for `logger` to write what it
 * holds. When the reader of stdout has stalled, a write is still pending and
 * would keep the event loop, and the process, alive forever: the process
 * then exits with its exit status once the command has set it.
 */
export async function flushLogsAtExit(logger: ProcessLogger): Promise<void> {
  if (await logger.flush(LOG_FLUSH_AT_EXIT_MS)) return;
  // Unref'd: it fires only if something (the stalled write) still holds the loop; by then bin.ts set the exit status.
  setTimeout(() => process.exit(), 100).unref();
}
