/**
 * `startDaemon` with its routes off (setting `routes`): under `siwe` no
 * server at all — and a node URL derived from the listen URL (as `dev`
 * derives it) is not derived from anything; under `legacy` a ConfigError
 * naming DDS_ROUTES before anything starts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startDaemon } from '../../src/cli/daemon.js';
import { generateSecretKey } from '../../src/crypto.js';
import { MemoryLogger } from '../../src/log.js';
import { registrarResources } from '../../src/registrar.js';
import { ConfigError } from '../../src/settings/validate.js';
import { onCleanup, startSimulator, tempDir, testConfig } from '../support/index.js';

const settings = (ddsUrl: string, dataDir: string) => ({
  ...testConfig(ddsUrl, { regSecret: 'reg-secret-daemon-routes', privhex: generateSecretKey().exposeHex() }, { nodeUrl: undefined, dataDir, capabilities: ['/cap/v1'] }),
  host: '127.0.0.1',
  port: 0,
  routes: false,
});

describe('startDaemon: routes off', () => {
  it('under siwe: no server, no http.listening, a derived node URL left undefined; it registers all the same', async (t) => {
    const sim = await startSimulator(t, {});
    const logger = new MemoryLogger();
    const derived: string[] = [];
    const daemon = await startDaemon({
      settings: { ...settings(sim.url, join(tempDir(t), 'data')), protocol: 'siwe', accessSession: false, nodeUrl: (url) => (derived.push(url), url) },
      logger,
    });
    onCleanup(t, () => daemon.stop());
    assert.equal(daemon.server, null);
    assert.equal(daemon.url, null);
    assert.deepEqual(derived, [], 'nothing listens: no URL to derive the node URL from');
    assert.equal(registrarResources(daemon.registrar)?.settings.nodeUrl, undefined);
    await daemon.firstAttempt;
    assert.equal(sim.of('siwe.registered').length, 1);
    assert.equal(logger.lines.filter((l) => l['event'] === 'http.listening').length, 0);
    assert.equal(logger.lines.filter((l) => l['event'] === 'http.routes.off').length, 1);
    await daemon.stop();
  });

  it('under legacy: ConfigError naming DDS_ROUTES, before the data directory is made', async (t) => {
    const dataDir = join(tempDir(t), 'data');
    const started = startDaemon({ settings: { ...settings('http://127.0.0.1:9', dataDir), nodeUrl: 'http://127.0.0.1:9/node' }, logger: new MemoryLogger() });
    // Were it to start after all, it must not outlive the test.
    onCleanup(t, async () => (await started.catch(() => undefined))?.stop());
    await assert.rejects(
      started,
      (error: unknown) => error instanceof ConfigError && error.setting === 'routes' && error.env === 'DDS_ROUTES' && /REGISTRATION_PROTOCOL=siwe/.test(error.reason),
    );
    assert.equal(existsSync(dataDir), false);
  });
});
