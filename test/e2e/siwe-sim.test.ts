/**
 * `dds-sim` speaks the wallet generation, configured by its settings: the
 * library's SIWE client registers with the simulator in a child process and
 * signs in; the token's lifetime, the nonces' chain id and the forgotten node
 * come from `DDS_SIM_*` variables.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import got from 'got';
import { generateSecretKey } from '../../src/crypto.js';
import { createSiweRegistrationClient } from '../../src/register-siwe.js';
import { assertNoLongHex, assertNoSecrets } from '../support/index.js';
import { cliEnv, spawnCli, type CliChild } from './helpers.js';

async function simUrl(sim: CliChild): Promise<string> {
  const { line } = await sim.waitForEvent('dds_sim.listening');
  const url = line['url'];
  assert.ok(typeof url === 'string' && /^http:\/\/127\.0\.0\.1:\d+$/.test(url), `url ${String(url)}`);
  return url;
}

test('dds-sim: nonces of DDS_SIM_CHAIN_ID, tokens of DDS_SIM_TOKEN_LIFETIME_SECS, DDS_SIM_FORGET_ON_VERIFY', async (t) => {
  const regSecret = `reg-${randomBytes(16).toString('hex')}`;
  const key = generateSecretKey();
  const messages: string[] = [];
  const recording = got.extend({
    hooks: {
      beforeRequest: [
        (options) => {
          const body = JSON.parse(String(options.body)) as { message?: string; signature?: string };
          if (body.message !== undefined) messages.push(body.message);
        },
      ],
    },
  });
  const env = { LOG_FORMAT: 'json', DDS_SIM_EXPECTED_REG_SECRET: regSecret, DDS_SIM_TOKEN_LIFETIME_SECS: '7', DDS_SIM_CHAIN_ID: '-3' };
  const sim = spawnCli(t, ['dds-sim', '--port', '0'], cliEnv(env));
  const client = (ddsBaseUrl: string) =>
    createSiweRegistrationClient({ ddsBaseUrl, nodeVersion: '2.0.0', regSecret, key, capabilities: ['/cap/v1'], got: recording });

  const c = client(await simUrl(sim));
  assert.equal((await c.register()).ok, true);
  const signedIn = await c.signIn();
  assert.ok(signedIn.ok, JSON.stringify(signedIn));
  assert.ok(signedIn.lifetimeMs > 5000 && signedIn.lifetimeMs <= 7000, String(signedIn.lifetimeMs));
  assert.ok(messages.every((m) => m.includes('\nChain ID: -3\n')), messages.join('\n---\n'));
  await sim.waitForEvent('dds_sim.siwe.signed_in');
  const first = await sim.stop('SIGTERM');
  assert.equal(first.code, 0, first.stderr);

  const forgetful = spawnCli(t, ['dds-sim', '--port', '0', '--forget-on-verify'], cliEnv(env));
  const f = client(await simUrl(forgetful));
  assert.equal((await f.register()).ok, true);
  const refused = await f.signIn();
  assert.ok(!refused.ok);
  assert.equal(refused.status, 403);
  assert.equal(refused.forgotten, true);
  await forgetful.waitForEvent('dds_sim.siwe.forgotten');
  const second = await forgetful.stop('SIGTERM');
  assert.equal(second.code, 0, second.stderr);

  const outputs = { first: first.stdout + first.stderr, second: second.stdout + second.stderr };
  assertNoSecrets(outputs, [regSecret, key.exposeHex(), signedIn.token.expose()]);
  // Signatures and tokens are long hex: none in the simulator's output.
  for (const [where, text] of Object.entries(outputs)) assertNoLongHex(where, text, 60);
});
