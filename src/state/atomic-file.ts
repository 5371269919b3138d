/**
 * state/atomic-file — the data directory's file I/O: atomic, durable writes
 * and reads that touch regular files only.
 *
 * - A write goes to a temp file beside the target, is fsynced, renamed over
 *   the target, then the directory is fsynced: a reader sees the old file or
 *   the new one, never half of one, even when the writer is SIGKILLed. The
 *   rename replaces whatever was at the path (a symlink is replaced, never
 *   written through).
 * - A read opens with `O_NOFOLLOW | O_NONBLOCK` and goes on only when `fstat`
 *   says regular file: a symlink, a FIFO, a socket or a directory at the path
 *   is an error, never a hang and never a read of someone else's file.
 *
 * Synchronous on purpose: the statechart calls the store from actions, which
 * must be synchronous and ordered.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The `code` of a Node system error (or of an {@link UnsafeFileError}), or `EUNKNOWN`. */
export function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return 'EUNKNOWN';
}

/** Why a read or write failed, in a few words for a log line: an {@link UnsafeFileError}'s reason, else the error's message. */
export function errorReason(err: unknown): string {
  if (err instanceof UnsafeFileError) return err.reason;
  return err instanceof Error ? err.message : errorCode(err);
}

/**
 * {@link readRegularFileSync} found something at the path it will not read.
 * `code`: `ELOOP` a symbolic link, `EFTYPE` not a regular file, `EFBIG` larger than allowed.
 */
export class UnsafeFileError extends Error {
  override readonly name = 'UnsafeFileError';
  readonly code: 'ELOOP' | 'EFTYPE' | 'EFBIG';
  /** The path refused. */
  readonly path: string;
  /** Why, in a few words (`a symbolic link, not followed`, `not a regular file (a FIFO)`, …). */
  readonly reason: string;

  constructor(code: 'ELOOP' | 'EFTYPE' | 'EFBIG', file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.code = code;
    this.path = file;
    this.reason = reason;
  }
}

// Windows has neither flag (0: no effect); the daemon's platforms have both.
const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'of an unknown type';
}

/**
 * The content of the regular file at `file`, at most `maxBytes` long.
 * Never follows a symlink at `file` itself (its directories may be links),
 * never blocks on a FIFO or a device.
 *
 * @throws UnsafeFileError for a symlink, anything but a regular file, or a file over `maxBytes`.
 * @throws the `fs` error otherwise (`ENOENT` when nothing is there).
 */
export function readRegularFileSync(file: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, READ_FLAGS);
  } catch (err) {
    if (errorCode(err) === 'ELOOP' && isSymlink(file)) throw new UnsafeFileError('ELOOP', file, 'a symbolic link, not followed');
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new UnsafeFileError('EFTYPE', file, `not a regular file (${kindOf(st)})`);
    const tooLarge = (): UnsafeFileError => new UnsafeFileError('EFBIG', file, `larger than ${maxBytes} bytes`);
    if (st.size > maxBytes) throw tooLarge();
    // Read to the end rather than trust the size: a writer that ignores the atomic rename may still be appending.
    const chunks: Buffer[] = [];
    let total = 0;
    let want = st.size + 1; // one byte more than expected: a file that grew shows at once
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(want, maxBytes - total + 1));
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw tooLarge();
      chunks.push(chunk.subarray(0, n));
      want = Math.max(total, 4096);
    }
    return Buffer.concat(chunks, total);
  } finally {
    fs.closeSync(fd);
  }
}

function isSymlink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
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
 * `mkdir -p` that always ends: creates `dir` and its missing ancestors one
 * at a time (mode for each), at most one attempt per path component. Node's
 * own `mkdirSync(…, { recursive: true })` loops forever, at 100% CPU, where
 * every `mkdir` answers ENOENT although the parent exists (under `/proc`,
 * `/sys`): this throws that ENOENT instead.
 */
export function makeDirSync(dir: string, mode = 0o700): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      if (fs.statSync(d).isDirectory()) break;
      throw Object.assign(new Error(`not a directory: ${d}`), { code: 'ENOTDIR' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (err) {
      // Made meanwhile by someone else (a sibling replica): fine when it is a directory.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(d).isDirectory()) throw err;
    }
  }
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
  makeDirSync(dir);
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

/** A small JSON file's content when it is a JSON object; anything else (garbage, an array, a number) is `undefined`. */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const json: unknown = JSON.parse(text);
    return typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
