/**
 * Temporary directories for tests and benchmarks: made fresh, removed at cleanup.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onCleanup, type Cleanup } from './cleanup.js';

/**
 * A fresh temporary directory (`<tmpdir>/<prefix>XXXXXX`), removed at cleanup
 * (after whatever was set up later, see cleanup.ts) with a few retries; when
 * it still cannot be removed then, it is removed at process exit instead.
 */
export function tempDir(t: Cleanup, prefix = 'posemesh-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onCleanup(t, () => {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch {
      process.once('exit', () => {
        try {
          fs.rmSync(dir, { recursive: true, force: true });
        } catch {
          // nothing more to do
        }
      });
    }
  });
  return dir;
}
