/**
 * state/atomic-file — the data directory's file I/O: atomic, durable writes.
 *
 * A write goes to a temp file beside the target, is fsynced, renamed over
 * the target, then the directory is fsynced: a reader sees the old file or
 * the new one, never half of one, even when the writer is SIGKILLed. The
 * rename replaces whatever was at the path (a symlink is replaced, never
 * written through).
 *
 * Synchronous on purpose: the statechart calls the store from actions, which
 * must be synchronous and ordered.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The `code` of a Node system error, or `EUNKNOWN`. */
export function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return 'EUNKNOWN';
}

const TEMP_SUFFIX = '.tmp';

function tempPrefix(target: string): string {
  return `.${path.basename(target)}.`;
}

/** Options of {@link writeFileAtomicSync}. */
export interface AtomicWriteOptions {
  /** The file's mode (default 0600). */
  mode?: number;
  /**
   * fsync the file before the rename and the directory after it, so that
   * the write survives a power loss (default true). Without, the write is
   * still atomic and survives a crash of the process (the page cache does),
   * and costs no disk wait.
   */
  durable?: boolean;
}

/**
 * Write `data` to `target` atomically (and, by default, durably): a uniquely
 * named temp file beside it, fsync, rename over `target`, fsync the
 * directory. Creates the directory (mode 0700) if it is missing. On failure
 * the temp file is removed and the error thrown; `target` is then untouched.
 */
export function writeFileAtomicSync(target: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const { mode = 0o600, durable = true } = options;
  const dir = path.dirname(target);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = path.join(dir, `${tempPrefix(target)}${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  let fd: number | undefined;
  let created = false;
  try {
    fd = fs.openSync(temp, 'wx', mode);
    created = true;
    fs.fchmodSync(fd, mode); // the umask may have narrowed it; make it exact
    fs.writeFileSync(fd, data);
    if (durable) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, target);
    created = false;
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error matters
      }
    }
    if (created) {
      try {
        fs.unlinkSync(temp);
      } catch {
        // nothing more to do: stale temp files are swept later
      }
    }
    throw err;
  }
  if (durable) fsyncDirectory(dir);
}

/** Make a rename in `dir` durable. Best effort: some systems cannot fsync a directory. */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // the rename is done and visible; only its durability is not confirmed
  } finally {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // ignore
      }
    }
  }
}

/**
 * Remove temp files of `target` (as {@link writeFileAtomicSync} names them)
 * older than `maxAgeMs`: left by a writer that was killed mid-write.
 * Best effort, never throws.
 */
export function sweepStaleTempFiles(target: string, maxAgeMs = 60_000): void {
  const dir = path.dirname(target);
  const prefix = tempPrefix(target);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const cutoff = Date.now() - maxAgeMs;
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(TEMP_SUFFIX)) continue;
    const file = path.join(dir, name);
    try {
      const st = fs.lstatSync(file);
      if (st.isFile() && st.mtimeMs < cutoff) fs.unlinkSync(file);
    } catch {
      // gone already, or not ours to remove
    }
  }
}
