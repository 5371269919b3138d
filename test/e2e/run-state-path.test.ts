/**
 * What sits at the state-file path, with the real CLI: a FIFO there must not
 * block `run`'s event loop (it would stop answering DDS's probes); it is a
 * read error, and the first write replaces it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { assertNoSecrets, freePort, startFakeDds, startProber, tempDir, waitUntil } from '../support/index.js';
import { cliEnv, spawnCli } from './helpers.js';

test('run with a FIFO at the state-file path registers, keeps answering /health, and replaces the FIFO', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  mkdirSync(dataDir, { recursive: true });
  const statePath = join(dataDir, 'registration_state.json');
  try {
    execFileSync('mkfifo', [statePath]);
  } catch {
    t.skip('mkfifo is not available: cannot make a FIFO');
    return;
  }
  const dds = await startFakeDds(t);
  const regSecret = `reg-${randomBytes(16).toString('hex')}`;
  const privhex = generateSecretKey().exposeHex();
  const port = await freePort();
  const nodeUrl = `http://127.0.0.1:${port}`;
  const env = { LOG_FORMAT: 'json', DDS_BASE_URL: dds.url, NODE_URL: nodeUrl, REG_SECRET: regSecret, SECP256K1_PRIVHEX: privhex };
  const node = spawnCli(t, ['run'], cliEnv({ ...env, HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir }));

  // On a build that reads the FIFO, the event loop blocks here: nothing is logged, nothing answers.
  await node.waitForEvent('registration.success');
  const readErrors = node.events('state.read.error');
  assert.equal(readErrors.length, 1, 'logged once');
  assert.equal(readErrors[0]?.['path'], statePath);
  assert.equal(readErrors[0]?.['code'], 'EFTYPE');
  assert.equal(readErrors[0]?.['reason'], 'not a regular file (a FIFO)');

  // DDS's probes: each one records a health check, i.e. reads the state file again.
  const prober = startProber(t, nodeUrl, 100);
  // A count, not a rate: a loaded machine answers slower, a blocked event loop never.
  await waitUntil(() => prober.count >= 5, 'five probes answered', 30_000);
  await prober.stop();
  assert.equal(prober.failures, 0);

  assert.equal(lstatSync(statePath).isFile(), true, 'the FIFO was replaced by the state file');
  assert.equal((JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>)['status'], 'registered');

  const nodeResult = await node.stop('SIGTERM');
  assert.equal(nodeResult.code, 0, `node exit ${nodeResult.code}: ${nodeResult.stderr}`);
  assertNoSecrets({ nodeStdout: nodeResult.stdout, nodeStderr: nodeResult.stderr }, [regSecret, privhex]);
});
