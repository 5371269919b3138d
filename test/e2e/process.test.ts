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
import { assertBuilt, assertNoSecrets, BIN, exitWithin, now, REPO_ROOT, sleep, spawnChild, startFakeDds, tempDir, waitUntil, writeFigure, type LineChild } from '../support/index.js';
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

describe('signals from the first instant', { concurrency: 3 }, () => {
  test('SIGTERM at any moment of start-up → a graceful stop, exit 0', { timeout: 120_000 }, async (t) => {
    const dds = await startFakeDds(t);
    // Before the launcher's first line, any Node process dies of a SIGTERM (Node resets every
    // signal's disposition as it boots, then compiles the launcher): the moments count from that
    // first line, where the launcher installs its handler — a preload announces it on stderr.
    const preload = join(REPO_ROOT, 'test/fixtures/announce-start.cjs');
    const results: { delayMs: number; exit: string; bootMs: number }[] = [];
    for (const delayMs of [0, 5, 20, 50, 100, 200, 400]) {
      const env = cliEnv({ ...runEnv(join(tempDir(t), 'data'), dds.url), NODE_OPTIONS: `--require ${preload}` });
      const child = spawnChild(t, { args: ['run'], env, name: `run (SIGTERM at ${delayMs} ms)` });
      await waitUntil(() => child.stderr().includes('sigterm-handled') || child.hasExited, "the launcher's first line", 15_000, 1);
      // Installed by the launcher itself (its first statement), not later by the command it loads.
      assert.match(child.stderr(), /^sigterm-handled by \S*\/dist\/src\/cli\/launch\.cjs$/m);
      const bootMs = now() - child.spawnedAt;
      await sleep(delayMs);
      child.proc.kill('SIGTERM');
      const r = await exitWithin(child, 15_000);
      results.push({ delayMs, exit: r.signal ?? String(r.code), bootMs: Math.round(bootMs) });
      assert.doesNotMatch(r.stderr, STACK_FRAME, r.stderr);
    }
    writeFigure('reliability', 'signals.sigterm_during_startup', results);
    assert.deepEqual(
      results.map((r) => `${r.delayMs} ms: ${r.exit}`),
      results.map((r) => `${r.delayMs} ms: 0`),
    );
  });

  test('SIGUSR1 never opens the debugger: one status line, during start-up as after', { timeout: 60_000 }, async (t) => {
    const dds = await startFakeDds(t);
    const child = spawnChild(t, { args: ['run'], env: cliEnv(runEnv(join(tempDir(t), 'data'), dds.url)), name: 'run (SIGUSR1)' });
    // Once during start-up (its first line: Node's own boot is over), once registered.
    await child.waitFor(() => true);
    child.proc.kill('SIGUSR1');
    await child.waitForEvent('registration.success');
    child.proc.kill('SIGUSR1');
    await waitUntil(() => child.events('process.status').length >= 2, 'two process.status lines', 10_000);
    const status = child.events('process.status').at(-1) ?? {};
    assert.match(String(status['state']), /^registered/);
    assert.equal(status['lock'], 'free');
    assert.equal(status['last_failure'], null);
    const r = await child.stop('SIGTERM');
    assert.deepEqual([r.code, r.signal], [0, null]);
    assert.doesNotMatch(r.stderr, /Debugger listening/);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
  });
});
