/**
 * Two `run` processes of one node (same URL, key and data directory, as
 * replicas behind a load balancer): the file lock lets one registration
 * request out at a time, and both stop cleanly.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { assertNoSecrets, startFakeDds, tempDir } from '../support/index.js';
import { cliEnv, spawnCli } from './helpers.js';

test('two replicas sharing DATA_DIR never have two registration requests in flight', async (t) => {
  const dds = await startFakeDds(t);
  // A slow DDS widens the window in which a second request would overlap.
  dds.setResponder(() => ({ status: 200, body: '{}', delayMs: 400 }));
  const privhex = generateSecretKey().exposeHex();
  const regSecret = `reg-${randomBytes(16).toString('hex')}`;
  const dataDir = join(tempDir(t), 'data');
  const env = cliEnv({
    LOG_FORMAT: 'json',
    DDS_BASE_URL: dds.url,
    NODE_URL: 'https://node.example/replicated',
    REG_SECRET: regSecret,
    SECP256K1_PRIVHEX: privhex,
    REGISTER_INTERVAL_SECS: '2',
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir,
  });
  const a = spawnCli(t, ['run'], env);
  const b = spawnCli(t, ['run'], env);
  const settled = (c: typeof a) =>
    c.waitFor((l) => l['event'] === 'registration.success' || l['event'] === 'registration.skipped', { timeoutMs: 20_000, what: 'registered or skipped' });
  await Promise.all([settled(a), settled(b)]);
  assert.ok(dds.requests.length >= 1);
  assert.equal(dds.maxConcurrent, 1, 'one registration request at a time');
  const state = JSON.parse(readFileSync(join(dataDir, 'registration_state.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(state['status'], 'registered');

  const [ra, rb] = await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(rb.code, 0, rb.stderr);
  assert.equal(dds.maxConcurrent, 1);
  assert.equal(existsSync(join(dataDir, 'registration.lock')), false, 'lock directory removed');
  assertNoSecrets({ a: ra.stdout + ra.stderr, b: rb.stdout + rb.stderr }, [regSecret, privhex]);
});
