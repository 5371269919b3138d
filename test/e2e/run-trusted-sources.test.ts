/**
 * `run` with `DDS_TRUSTED_SOURCES`, as a real child process against a bare
 * local DDS: the test calls back and probes from 127.0.0.1. Trusted sources
 * that leave 127.0.0.1 out: its callback is answered 403 `not a trusted
 * source` (the secret not taken, the window left open for DDS), its probes
 * 200 and recorded nowhere — the health check expires however often they
 * come. With 127.0.0.1 trusted, both are DDS's: the callback is accepted and
 * the probes keep the registration fresh.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { UNTRUSTED_SOURCE } from '../../src/http.js';
import { assertNoSecrets, callNodeBack, probeHealth, startFakeDds, startProber, tempDir } from '../support/index.js';
import { runEnv, spawnCli, type CliChild } from './helpers.js';

interface Node {
  child: CliChild;
  /** Where its routes listen. */
  url: string;
  secrets: string[];
}

/** `run` with `DDS_TRUSTED_SOURCES=trusted`, registered with a DDS that accepts it. */
async function startNode(t: TestContext, trusted: string): Promise<Node> {
  const dds = await startFakeDds(t);
  const key = generateSecretKey();
  const regSecret = `reg-${randomBytes(16).toString('hex')}`;
  const target = { ddsUrl: dds.url, regSecret, privhex: key.exposeHex(), dataDir: join(tempDir(t), 'data') };
  const child = spawnCli(t, ['run'], runEnv(target, { DDS_TRUSTED_SOURCES: trusted, REGISTER_INTERVAL_SECS: '2', CALLBACK_WINDOW_SECS: '30', LOG_LEVEL: 'debug' }));
  const { line } = await child.waitForEvent('http.listening');
  await child.waitForEvent('registration.success');
  return { child, url: String(line['url']), secrets: [regSecret, target.privhex] };
}

const callback = (secret: string) => ({ id: 'node-trusted-e2e', secret, organization_id: 'org-e2e', domains: [] });

describe('run with DDS_TRUSTED_SOURCES', { concurrency: 2 }, () => {
  it('127.0.0.1 not among them: its callback is refused (403) and its probes keep nothing fresh', async (t) => {
    const node = await startNode(t, '10.0.0.0/8, 192.0.2.7');
    const stranger = `stranger-${randomBytes(20).toString('hex')}`;

    const refused = await callNodeBack(node.url, callback(stranger));
    assert.equal(refused.status, 403);
    assert.equal(refused.body, UNTRUSTED_SOURCE);
    const { line } = await node.child.waitForEvent('registration.callback.refused');
    assert.equal(line['status'], 403);
    assert.equal(line['reason'], UNTRUSTED_SOURCE);
    assert.equal(node.child.events('registration.callback').length, 0, 'no secret taken');

    // Probes answered 200, recorded nowhere: the TTL runs out all the same and the node registers again.
    const probed = await probeHealth(node.url);
    assert.equal(probed.status, 200);
    const prober = startProber(t, node.url, 100);
    const { index: expiredAt } = await node.child.waitForEvent('healthcheck.expired', { timeoutMs: 15_000 });
    await node.child.waitFor((l) => l['event'] === 'registration.success', { from: expiredAt, what: 'a registration after the expiry' });
    await prober.stop();
    assert.ok(prober.count >= 5 && prober.failures === 0, `probes answered: ${prober.count}, failed: ${prober.failures}`);
    assert.equal(node.child.events('healthcheck.touch').filter((l) => l['source'] === 'probe').length, 0, 'no probe recorded');
    assert.ok(node.child.events('healthcheck.skip').some((l) => l['reason'] === UNTRUSTED_SOURCE && l['source'] === '127.0.0.1'));

    const result = await node.child.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);
    assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, [...node.secrets, stranger]);
  });

  it('127.0.0.1 among them: its callback is accepted and its probes are recorded', async (t) => {
    const node = await startNode(t, '10.0.0.0/8, 127.0.0.1');
    const nodeSecret = `node-secret-${randomBytes(20).toString('hex')}`;

    const accepted = await callNodeBack(node.url, callback(nodeSecret));
    assert.equal(accepted.status, 200, accepted.body);
    assert.deepEqual(JSON.parse(accepted.body), { ok: true });
    const { line } = await node.child.waitForEvent('registration.callback');
    assert.equal(line['node_id'], 'node-trusted-e2e');

    const probed = await probeHealth(node.url);
    assert.equal(probed.status, 200);
    const { line: touch } = await node.child.waitFor((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe', { what: 'a probe recorded' });
    assert.equal(touch['level'], 'info');
    assert.equal(node.child.events('registration.callback.refused').length, 0);

    const result = await node.child.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);
    assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, [...node.secrets, nodeSecret]);
  });
});
