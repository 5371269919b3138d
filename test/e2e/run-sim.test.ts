/**
 * Two real processes talking over HTTP: `dds-sim` (the DDS simulator) and
 * `run` (the registrar) pointed at it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { assertNoLongHex, assertNoSecrets, freePort, sleep, tempDir } from '../support/index.js';
import { cliEnv, runEnv, spawnCli } from './helpers.js';

test('run registers with dds-sim, takes its callback and stays registered while it probes', async (t) => {
  const regSecret = `reg-${randomBytes(16).toString('hex')}`;
  const privhex = generateSecretKey().exposeHex();

  // The simulator on an ephemeral port: its URL comes from the `dds_sim.listening` line.
  const sim = spawnCli(
    t,
    ['dds-sim', '--port', '0', '--probe-interval-secs', '0.25'],
    cliEnv({ LOG_FORMAT: 'json', DDS_SIM_EXPECTED_REG_SECRET: regSecret }),
  );
  const { line: listening } = await sim.waitForEvent('dds_sim.listening');
  const ddsUrl = listening['url'];
  assert.ok(typeof ddsUrl === 'string' && /^http:\/\/127\.0\.0\.1:\d+$/.test(ddsUrl), `url ${String(ddsUrl)}`);
  assert.notEqual(ddsUrl, 'http://127.0.0.1:0');

  const port = await freePort();
  const nodeUrl = `http://127.0.0.1:${port}`;
  const dataDir = join(tempDir(t), 'data');
  const node = spawnCli(t, ['run'], runEnv({ ddsUrl, regSecret, privhex, dataDir }, { NODE_URL: nodeUrl, REGISTER_INTERVAL_SECS: '2', PORT: String(port) }));

  const { index: successAt } = await node.waitForEvent('registration.success');
  const { line: accepted } = await sim.waitForEvent('dds_sim.registration.accepted');
  const { line: callback } = await node.waitForEvent('registration.callback');
  assert.equal(callback['node_id'], accepted['node_id']);
  assert.equal(callback['organization_id'], 'org-sim');
  assert.equal(callback['secret_len'], 64);
  const { line: sent } = await sim.waitFor((l) => l['event'] === 'dds_sim.callback.sent' && l['status'] === 200, { what: 'callback.sent 200' });
  assert.equal(sent['status'], 200);

  // Probes keep it registered for ~3 intervals (of 2 s): no second registration request.
  await node.waitFor((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe', { from: successAt, what: 'a probe' });
  await sleep(6000);
  const probes = node.json.filter((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe').length;
  assert.ok(probes >= 8, `probes recorded: ${probes}`);
  assert.equal(sim.events('dds_sim.registration.received').length, 1, 'one registration request (each logged once)');
  assert.equal(sim.events('dds_sim.registration.accepted').length, 1);
  assert.equal(node.events('registration.attempt').length, 1);
  assert.equal(node.events('healthcheck.expired').length, 0);
  const state = JSON.parse(readFileSync(join(dataDir, 'registration_state.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(state['status'], 'registered');

  const nodeResult = await node.stop('SIGTERM');
  assert.equal(nodeResult.code, 0, `node exit ${nodeResult.code}: ${nodeResult.stderr}`);
  const simResult = await sim.stop('SIGTERM');
  assert.equal(simResult.code, 0, `dds-sim exit ${simResult.code}: ${simResult.stderr}`);

  const outputs = { nodeStdout: nodeResult.stdout, nodeStderr: nodeResult.stderr, simStdout: simResult.stdout, simStderr: simResult.stderr };
  assertNoSecrets(outputs, [regSecret, privhex]);
  // The node secret is made by the simulator (64 hex digits): no long hex run anywhere.
  for (const [where, text] of Object.entries(outputs)) assertNoLongHex(where, text);
});

test('dds-sim logs where it listens once', async (t) => {
  const sim = spawnCli(t, ['dds-sim', '--port', '0'], cliEnv({ LOG_FORMAT: 'json' }));
  await sim.waitForEvent('dds_sim.listening');
  await sleep(300);
  const result = await sim.stop('SIGTERM');
  assert.equal(result.code, 0);
  assert.equal(sim.events('dds_sim.listening').length, 1);
});
