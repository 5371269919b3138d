/**
 * Helpers of the fault matrix (`faults.test.ts`) beside test/support (whose
 * fake DDS misbehaves as the matrix needs, and whose node server DDS calls
 * back): process-level probes (crashes, timers) and a full disk.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// ---------------------------------------------------------------------------
// Process-level probes
// ---------------------------------------------------------------------------

/** Ref'd timers alive right now (`Timeout` entries of `process.getActiveResourcesInfo()`). */
export function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Collects `uncaughtException` and `unhandledRejection` while installed. */
export interface CrashWatch {
  /** What was caught, as `kind: name` (no messages: they could hold anything). */
  readonly caught: string[];
  uninstall(): void;
}

/** Listen for crashes of the process (call `uninstall` when done). */
export function watchCrashes(): CrashWatch {
  const caught: string[] = [];
  const describe = (kind: string, err: unknown): string =>
    `${kind}: ${err instanceof Error ? `${err.name} ${(err as { code?: unknown }).code ?? ''}` : typeof err}`;
  const onException = (err: unknown): void => {
    caught.push(describe('uncaughtException', err));
  };
  const onRejection = (err: unknown): void => {
    caught.push(describe('unhandledRejection', err));
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return {
    caught,
    uninstall() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    },
  };
}

// ---------------------------------------------------------------------------
// A full disk: a tiny tmpfs (needs root and permission to mount)
// ---------------------------------------------------------------------------

/** Mount a tmpfs of `sizeKiB` on `dir` (which must exist). Returns false when mounting is not permitted here. */
export function mountTinyTmpfs(dir: string, sizeKiB = 64): boolean {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir], { stdio: 'ignore' });
  return r.status === 0;
}

/** Unmount `dir` (lazily when busy). Never throws. */
export function unmount(dir: string): void {
  const r = spawnSync('umount', [dir], { stdio: 'ignore' });
  if (r.status !== 0) spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
}

/** Whether this machine lets the tests mount a tmpfs (probed once, mounted and unmounted at once). */
export function canMountTmpfs(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'pnr-mount-probe-'));
  try {
    if (!mountTinyTmpfs(probe, 16)) return false;
    unmount(probe);
    return true;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/** Fill the file system of `dir` with `<dir>/<name>` until it is full (ENOSPC). Returns the bytes written. */
export function fillDisk(dir: string, name = 'filler'): number {
  const fd = fs.openSync(path.join(dir, name), 'w');
  const chunk = Buffer.alloc(4096, 0x61);
  let written = 0;
  try {
    for (;;) {
      try {
        written += fs.writeSync(fd, chunk);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'ENOSPC') break;
        throw err;
      }
    }
    // Partial blocks: fill byte by byte until nothing more fits.
    for (;;) {
      try {
        written += fs.writeSync(fd, chunk, 0, 1);
      } catch {
        break;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return written;
}
