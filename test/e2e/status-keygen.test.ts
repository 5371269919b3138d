/**
 * `status` (the state file as a container health check: exit 0 only when
 * registered and fresh) and `keygen`, as real child processes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { generateSecretKey, loadSecp256k1Privhex, secp256k1PubkeyUncompressedHex } from '../../src/crypto.js';
import { assertNoSecrets, startFakeDds, tempDir } from '../support/index.js';
import { cliEnv, runCli, runEnv, spawnCli } from './helpers.js';
import type { StatusReport } from '../../src/cli/status-report.js';

type StatusJson = StatusReport;

function parseStatus(stdout: string): StatusJson {
  const lines = stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one JSON line expected, got: ${stdout}`);
  return JSON.parse(lines[0] as string) as StatusJson;
}

/** A data directory holding `state` as its state file (the crate's two-key format unless more is given). */
function dataDirWith(t: TestContext, state: Record<string, unknown> | string): string {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'registration_state.json'), typeof state === 'string' ? state : JSON.stringify(state));
  return dir;
}

const nowSecs = (): number => Math.floor(Date.now() / 1000);

describe('status', { concurrency: 4 }, () => {
  test('no state file → 1, and it says so: not `disconnected`', async (t) => {
    const dir = tempDir(t);
    const [text, json] = await Promise.all([
      runCli(t, ['status'], cliEnv({ DATA_DIR: dir })),
      runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dir })),
    ]);
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /^status: unknown — no state file at .*registration_state\.json$/m);
    assert.match(text.stdout, /no registrar has run with this DATA_DIR yet/);
    assert.doesNotMatch(text.stdout, /disconnected/);
    assert.equal(json.code, 1, json.stderr);
    const report = parseStatus(json.stdout);
    assert.equal(report.stateFile, 'missing');
    assert.equal(report.status, null);
    assert.equal(report.healthy, false);
    assert.equal(report.lastHealthcheck, null);
    assert.equal(report.path, join(dir, 'registration_state.json'));
  });

  test('missing DATA_DIR → 1, named as such, and nothing created', async (t) => {
    const dir = join(tempDir(t), 'does-not-exist');
    const [text, json] = await Promise.all([
      runCli(t, ['status'], cliEnv({ DATA_DIR: dir })),
      runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dir })),
    ]);
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /^status: unknown — no state file/m);
    assert.ok(text.stdout.includes(`the data directory ${dir} does not exist: is DATA_DIR (--data-dir) the one`), text.stdout);
    assert.equal(json.code, 1, json.stderr);
    const report = parseStatus(json.stdout);
    assert.equal(report.stateFile, 'no-data-dir');
    assert.equal(report.status, null);
    assert.equal(existsSync(dir), false, 'status must not create DATA_DIR');
  });

  test('a state file that says disconnected → 1, reported as present', async (t) => {
    const dir = dataDirWith(t, { status: 'disconnected', last_healthcheck: null });
    const r = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dir }));
    assert.equal(r.code, 1, r.stderr);
    const report = parseStatus(r.stdout);
    assert.equal(report.stateFile, 'present');
    assert.equal(report.status, 'disconnected');
  });

  test('registered with a fresh health check (crate format) → 0', async (t) => {
    const dir = dataDirWith(t, { status: 'registered', last_healthcheck: nowSecs() });
    const r = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dir, REGISTER_INTERVAL_SECS: '60' }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = parseStatus(r.stdout);
    assert.equal(report.status, 'registered');
    assert.equal(report.healthy, true);
    assert.equal(report.intervalSecs, 60);
    assert.ok(report.ageSecs !== null && report.ageSecs >= 0 && report.ageSecs < 60, `age ${String(report.ageSecs)}`);
  });

  test('registered with an old health check → 1 (stale); the flag beats the env for the interval', async (t) => {
    const dir = dataDirWith(t, { status: 'registered', last_healthcheck: nowSecs() - 600 });
    const [stale, lenient] = await Promise.all([
      runCli(t, ['status'], cliEnv({ DATA_DIR: dir, REGISTER_INTERVAL_SECS: '60' })),
      runCli(t, ['status', '--json', '--register-interval-secs', '3600'], cliEnv({ DATA_DIR: dir, REGISTER_INTERVAL_SECS: '60' })),
    ]);
    assert.equal(stale.code, 1, stale.stderr);
    assert.match(stale.stdout, /stale/);
    assert.equal(lenient.code, 0, lenient.stdout + lenient.stderr);
    assert.equal(parseStatus(lenient.stdout).intervalSecs, 3600);
  });

  test('registered without a health check → 1', async (t) => {
    const dir = dataDirWith(t, { status: 'registered', last_healthcheck: null });
    const r = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dir }));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(parseStatus(r.stdout).healthy, false);
  });

  test('registering (even with a fresh health check) → 1', async (t) => {
    const dir = dataDirWith(t, { status: 'registering', last_healthcheck: nowSecs() });
    const r = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dir }));
    assert.equal(r.code, 1, r.stderr);
    const report = parseStatus(r.stdout);
    assert.equal(report.status, 'registering');
    assert.equal(report.healthy, false);
  });

  test('a corrupt state file → 1, read as disconnected, no crash', async (t) => {
    const dir = dataDirWith(t, '{"status": "regist');
    const r = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dir }));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(parseStatus(r.stdout).status, 'disconnected');
    assert.equal(r.stderr, '');
  });

  test('0 while `run` is registered, 1 once it stopped', async (t) => {
    const dds = await startFakeDds(t);
    const dataDir = join(tempDir(t), 'data');
    mkdirSync(dataDir);
    const privhex = generateSecretKey().exposeHex();
    const regSecret = `reg-${randomBytes(16).toString('hex')}`;
    const node = spawnCli(
      t,
      ['run'],
      runEnv({ ddsUrl: dds.url, regSecret, privhex, dataDir }, { REGISTER_INTERVAL_SECS: '30' }),
    );
    await node.waitForEvent('registration.success');
    const running = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dataDir, REGISTER_INTERVAL_SECS: '30' }));
    assert.equal(running.code, 0, running.stdout + running.stderr);
    const report = parseStatus(running.stdout);
    assert.equal(report.status, 'registered');
    assert.equal(report.healthy, true);
    assert.ok(report.lastHealthcheck !== null && !Number.isNaN(Date.parse(report.lastHealthcheck)));

    const stopped = await node.stop('SIGTERM');
    assert.equal(stopped.code, 0, stopped.stderr);
    const after = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: dataDir, REGISTER_INTERVAL_SECS: '30' }));
    assert.equal(after.code, 1, after.stdout + after.stderr);
    assert.equal(parseStatus(after.stdout).status, 'disconnected');
    assertNoSecrets({ stdout: stopped.stdout, stderr: stopped.stderr, status: running.stdout + after.stdout }, [regSecret, privhex]);
  });
});

describe('keygen', { concurrency: 2 }, () => {
  test('prints SECP256K1_PRIVHEX and the matching PUBLIC_KEY', async (t) => {
    const r = await runCli(t, ['keygen'], cliEnv());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const m = /^SECP256K1_PRIVHEX=([0-9a-f]{64})\nPUBLIC_KEY=(04[0-9a-f]{128})\n$/.exec(r.stdout);
    assert.ok(m, `unexpected output shape (${r.stdout.length} chars)`);
    const [, privhex, publicKey] = m;
    const key = loadSecp256k1Privhex(privhex as string);
    assert.equal(secp256k1PubkeyUncompressedHex(key), publicKey);
  });

  test('--json prints one object with a loadable key; two runs differ', async (t) => {
    const [a, b] = await Promise.all([runCli(t, ['keygen', '--json'], cliEnv()), runCli(t, ['keygen', '--json'], cliEnv())]);
    const keys = [a, b].map((r) => {
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1);
      const obj = JSON.parse(lines[0] as string) as Record<string, unknown>;
      assert.deepEqual(Object.keys(obj).sort(), ['public_key', 'secp256k1_privhex']);
      const privhex = obj['secp256k1_privhex'];
      const publicKey = obj['public_key'];
      assert.ok(typeof privhex === 'string' && /^[0-9a-f]{64}$/.test(privhex));
      assert.ok(typeof publicKey === 'string' && /^04[0-9a-f]{128}$/.test(publicKey));
      assert.equal(secp256k1PubkeyUncompressedHex(loadSecp256k1Privhex(privhex)), publicKey);
      return privhex;
    });
    assert.notEqual(keys[0], keys[1]);
  });
});
