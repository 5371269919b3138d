/**
 * Temporary directories for tests: made fresh, removed at cleanup.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Cleanup } from './child.js';

/**
 * A fresh temporary directory (`<tmpdir>/<prefix>XXXXXX`), removed at cleanup
 * with a few retries. When it cannot be removed then (a child still writing
 * into it: `node:test` runs `after` hooks in the order they were added), it is
 * removed at process exit instead.
 */
export function tempDir(t: Cleanup, prefix = 'posemesh-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => {
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
