/**
 * `run` seen from outside in two more ways: through the inspector relay
 * (INSPECT=1), whose WebSocket stream must carry no secret, and when it is
 * stopped while DDS holds its request open.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { generateSecretKey } from '../../src/crypto.js';
import { assertNoSecrets, freePort, sleep, startFakeDds, tempDir } from '../support/index.js';
import { runEnv, spawnCli } from './helpers.js';

describe('run, observed', { concurrency: 2 }, () => {
  test('INSPECT=1: the relay serves its page and streams the registrar, without a secret', async (t) => {
    const dds = await startFakeDds(t);
    const privhex = generateSecretKey().exposeHex();
    const regSecret = `reg-${randomBytes(16).toString('hex')}`;
    const nodeSecret = `node-secret-${randomBytes(24).toString('hex')}`;
    const inspectPort = await freePort();
    const child = spawnCli(
      t,
      ['run'],
      runEnv(
        { ddsUrl: dds.url, regSecret, privhex, dataDir: join(tempDir(t), 'data') },
        { LOG_LEVEL: 'debug', INSPECT: '1', INSPECT_PORT: String(inspectPort) },
      ),
    );
    const { line: ready } = await child.waitForEvent('inspector.ready');
    assert.equal(ready['url'], `http://127.0.0.1:${inspectPort}`);
    const { line: listening } = await child.waitForEvent('http.listening');
    const nodeUrl = String(listening['url']);

    const page = await fetch(`http://127.0.0.1:${inspectPort}/`, { headers: { connection: 'close' } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    await page.text();

    // Listen to the relay as the bridge page would (a Node client sends no Origin).
    const messages: string[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${inspectPort}`);
    t.after(() => ws.terminate());
    ws.on('message', (data: Buffer) => messages.push(data.toString('utf8')));
    ws.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });

    await child.waitForEvent('registration.success');
    const cb = await fetch(`${nodeUrl}/internal/v1/registrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ id: 'node-inspected', secret: nodeSecret, organization_id: 'org-e2e' }),
    });
    assert.equal(cb.status, 200, await cb.text());
    const probe = await fetch(`${nodeUrl}/health`, { headers: { 'user-agent': 'DDS v1.0.0', connection: 'close' } });
    assert.equal(probe.status, 200);
    await child.waitFor((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe', { what: 'probe touch' });
    // Give the inspector a moment to forward the last events.
    const deadline = Date.now() + 5000;
    while (!messages.some((m) => m.includes('HEALTHCHECK')) && Date.now() < deadline) await sleep(50);

    const result = await child.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);
    assert.ok(messages.length > 0, 'the relay forwarded the registrar');
    assert.ok(messages.some((m) => m.includes('SECRET_RECEIVED')), 'the callback went through the inspector');
    assert.ok(messages.some((m) => m.includes('HEALTHCHECK')), 'the probe went through the inspector');
    assertNoSecrets(
      { inspector: messages.join('\n'), stdout: result.stdout, stderr: result.stderr },
      [regSecret, privhex, nodeSecret],
    );
  });

  test('SIGTERM while DDS holds the registration request open → exit 0 promptly, lock released', async (t) => {
    const dds = await startFakeDds(t);
    dds.setResponder(() => 'hang');
    const privhex = generateSecretKey().exposeHex();
    const regSecret = `reg-${randomBytes(16).toString('hex')}`;
    const dataDir = join(tempDir(t), 'data');
    const child = spawnCli(
      t,
      ['run'],
      runEnv({ ddsUrl: dds.url, regSecret, privhex, dataDir }, { REQUEST_TIMEOUT_SECS: '60' }),
    );
    await dds.waitForRequests(1, 15_000);
    assert.equal(existsSync(join(dataDir, 'registration.lock')), true, 'lock held while the request is open');
    const startedStop = Date.now();
    const result = await child.stop('SIGTERM', 15_000);
    assert.equal(result.code, 0, result.stderr);
    // Not a timing claim: only that it did not wait for the 60 s request timeout.
    assert.ok(Date.now() - startedStop < 15_000);
    const state = JSON.parse(readFileSync(join(dataDir, 'registration_state.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(state['status'], 'disconnected');
    assert.equal(existsSync(join(dataDir, 'registration.lock')), false, 'lock directory removed');
    assert.equal(child.events('registration.success').length, 0);
    assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, [regSecret, privhex]);
  });
});
