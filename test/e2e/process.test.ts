/**
 * The daemon as a process on a bad day: a data directory that cannot be
 * created, no HOME and no passwd entry (systemd's `DynamicUser=`), signals
 * at every moment of start-up. Each case is a real child of the built CLI.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { assertBuilt, assertNoSecrets, BIN, exitWithin, REPO_ROOT, spawnChild, startFakeDds, tempDir, type LineChild } from '../support/index.js';
import { cliEnv, runCli } from './helpers.js';

const PRIVHEX = generateSecretKey().exposeHex();
const REG_SECRET = `reg-${randomBytes(16).toString('hex')}`;
/** A uid and gid no passwd or group entry names. */
const NOBODY_ID = 54_321;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A `run` environment against `ddsUrl` (default: nothing listens), on an ephemeral port. */
function runEnv(dataDir: string, ddsUrl = 'http://127.0.0.1:9', extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    LOG_FORMAT: 'json',
    DDS_BASE_URL: ddsUrl,
    NODE_URL: 'http://127.0.0.1:9/node',
    NODE_VERSION: '1.0.0',
    REG_SECRET,
    SECP256K1_PRIVHEX: PRIVHEX,
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir,
    ...extra,
  };
}

/** A stack trace's frame line (`    at f (file:1:2)`). */
const STACK_FRAME = /^\s+at .+[:(]/m;

describe('a data directory that cannot be created', { concurrency: 2, skip: existsSync('/proc/self') ? false : 'needs /proc' }, () => {
  for (const dir of ['/proc/posemesh-x', '/proc/posemesh-x/data']) {
    test(`DATA_DIR=${dir} → exit 3 within seconds, one line naming DATA_DIR`, async (t) => {
      const started = Date.now();
      const r = await runCli(t, ['run'], cliEnv(runEnv(dir)), 10_000);
      assert.equal(r.code, 3, r.stderr);
      assert.ok(Date.now() - started < 10_000);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] ?? '', /^posemesh-node-registration: DATA_DIR: .* is not usable \(ENOENT\)$/);
      assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
    });
  }
});

describe('no HOME and no passwd entry (systemd DynamicUser=)', { concurrency: 2, skip: isRoot ? false : 'needs root to run as a uid without a passwd entry' }, () => {
  /** The CLI as {@link NOBODY_ID} in `cwd`, with only PATH (as `env -i PATH=…`) and `extra`. */
  const bare = (t: TestContext, cwd: string, args: string[], extra: NodeJS.ProcessEnv = {}): LineChild => {
    assertBuilt();
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...extra };
    return spawnChild(t, { script: join(REPO_ROOT, BIN), args, env, uid: NOBODY_ID, gid: NOBODY_ID, cwd, name: `bare ${args[0] ?? ''}` });
  };
  /** A working directory the bare user may write to. */
  const openDir = (t: TestContext): string => {
    const dir = tempDir(t);
    chmodSync(dir, 0o777);
    return dir;
  };
  const noStack = (r: { stderr: string }): void => assert.doesNotMatch(r.stderr, STACK_FRAME, r.stderr);

  test('keygen and status: their usual answers, no stack trace', async (t) => {
    const dir = openDir(t);
    const keygen = await exitWithin(bare(t, dir, ['keygen']), 10_000);
    assert.equal(keygen.code, 0, keygen.stderr);
    assert.match(keygen.stdout, /^SECP256K1_PRIVHEX=[0-9a-f]{64}$/m);
    noStack(keygen);
    const status = await exitWithin(bare(t, dir, ['status'], { DATA_DIR: join(dir, 'data') }), 10_000);
    assert.equal(status.code, 1, status.stderr);
    assert.match(status.stdout, /^status: unknown/m);
    noStack(status);
  });

  test('run, dev and dds-sim start and stop gracefully (exit 0)', async (t) => {
    const dds = await startFakeDds(t);
    const dir = openDir(t);
    const children = [
      { child: bare(t, dir, ['run'], runEnv(join(dir, 'data'), dds.url)), ready: 'http.listening', field: 'event' },
      { child: bare(t, dir, ['dev']), ready: 'dev.node', field: 'name' },
      { child: bare(t, dir, ['dds-sim', '--port', '0'], { LOG_FORMAT: 'json' }), ready: 'dds_sim.ready', field: 'event' },
    ];
    for (const { child, ready, field } of children) await child.waitForEvent(ready, { field });
    for (const { child } of children) {
      const r = await child.stop('SIGTERM');
      assert.equal(r.code, 0, `${child.name}: ${r.stderr}`);
      noStack(r);
    }
  });
});
