/**
 * The installed command's launcher (src/cli/launch.cts): it loads the CLI
 * bundle with a V8 code cache kept in a private directory. The cache may only
 * make a start faster, never different, and never comes from a directory
 * others can write to.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { PACKAGE_VERSION } from '../../src/version.js';
import { tempDir } from '../support/index.js';
import { cliEnv, runCli } from './helpers.js';

const onNode20 = typeof (Module as { enableCompileCache?: unknown }).enableCompileCache !== 'function';

function cacheFiles(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.v8cache')).sort() : [];
}

async function version(t: TestContext, cacheDir: string): Promise<void> {
  const result = await runCli(t, ['--version'], cliEnv({ POSEMESH_COMPILE_CACHE_DIR: cacheDir }));
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), PACKAGE_VERSION);
}

describe('launcher: code cache', { skip: onNode20 ? false : "Node's own compile cache is used on Node ≥ 22.1" }, () => {
  it('writes one cache per command, private, and starts from it next time without rewriting it', async (t) => {
    const cache = path.join(tempDir(t, 'pnr-cache-'), 'cache');
    await version(t, cache);
    const [file, ...more] = cacheFiles(cache);
    assert.ok(file !== undefined && more.length === 0, `one cache file, got ${cacheFiles(cache).join(', ')}`);
    assert.match(file, /^cli-other-v\d+/);
    assert.equal(fs.statSync(cache).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(cache, file)).mode & 0o777, 0o600);
    const before = fs.statSync(path.join(cache, file));

    await version(t, cache);
    const after = fs.statSync(path.join(cache, file));
    assert.equal(after.ino, before.ino, 'an accepted cache is not rewritten');

    const data = tempDir(t, 'pnr-data-');
    const status = await runCli(t, ['status', '--data-dir', data], cliEnv({ POSEMESH_COMPILE_CACHE_DIR: cache }));
    assert.equal(status.code, 1, 'never registered: not healthy');
    assert.ok(cacheFiles(cache).some((f) => f.startsWith('cli-status-')), cacheFiles(cache).join(', '));
  });

  it('a corrupted cache is rejected by V8, the start is the same, and the cache is rewritten', async (t) => {
    const cache = path.join(tempDir(t, 'pnr-cache-'), 'cache');
    await version(t, cache);
    const [file] = cacheFiles(cache);
    assert.ok(file !== undefined);
    fs.writeFileSync(path.join(cache, file), Buffer.alloc(4096, 0x5a));
    await version(t, cache);
    assert.notDeepEqual(fs.readFileSync(path.join(cache, file)), Buffer.alloc(4096, 0x5a));
  });

  it('ignores a directory others can write to (a code cache is code)', async (t) => {
    const cache = tempDir(t, 'pnr-cache-');
    fs.chmodSync(cache, 0o777);
    await version(t, cache);
    assert.deepEqual(cacheFiles(cache), []);
  });

  it('POSEMESH_COMPILE_CACHE_DIR=off writes nothing anywhere', async (t) => {
    const home = tempDir(t, 'pnr-home-');
    const result = await runCli(t, ['--version'], { ...cliEnv({ POSEMESH_COMPILE_CACHE_DIR: 'off' }), HOME: home, XDG_CACHE_HOME: path.join(home, 'xdg') });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(fs.readdirSync(home), []);
  });

  it('by default, uses $XDG_CACHE_HOME/posemesh-node-registration', async (t) => {
    const home = tempDir(t, 'pnr-home-');
    const result = await runCli(t, ['--version'], { ...cliEnv(), HOME: home, XDG_CACHE_HOME: path.join(home, 'xdg') });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(cacheFiles(path.join(home, 'xdg', 'posemesh-node-registration')).length, 1);
  });
});
