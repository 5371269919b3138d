/**
 * `run --metrics`: the Prometheus endpoint of a real registrar process
 * against the DDS simulator (in this process, so that the test can pause
 * its probes), scraped as Prometheus would; and, without `--metrics`, no
 * endpoint and prom-client never loaded.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { METRIC_PREFIX } from '../../src/metrics.js';
import { DdsSimulator } from '../../src/sim/dds-simulator.js';
import { assertNoLongHex, assertNoSecrets, freePort, onCleanup, REPO_ROOT, tempDir, type Cleanup } from '../support/index.js';
import { parseScrape, sampleValue, type PrometheusFamily } from '../support/prometheus.js';
import { cliEnv, spawnCli, type CliChild } from './helpers.js';

const INTERVAL_SECS = 2;
const RECORDER = join(REPO_ROOT, 'test/fixtures/record-requires.cjs');

async function startSimulator(t: Cleanup, regSecret: string): Promise<{ sim: DdsSimulator; url: string }> {
  // The first registration is answered 503 (retryable), every later one accepted.
  const sim = new DdsSimulator({ probeIntervalMs: 250, expectedRegSecret: regSecret, faults: { failStatus: 503, failCount: 1 } });
  const { url } = await sim.start();
  onCleanup(t, () => sim.stop());
  return { sim, url };
}

/** `run` with `env`, its routes on a free port (the simulator calls back and probes there), recording whether it loads prom-client into `recordFile`. */
async function spawnRun(t: Cleanup, args: string[], env: Record<string, string>, recordFile: string): Promise<CliChild> {
  const port = await freePort();
  return spawnCli(
    t,
    ['run', ...args],
    cliEnv({
      LOG_FORMAT: 'json',
      NODE_URL: `http://127.0.0.1:${port}`,
      REGISTER_INTERVAL_SECS: String(INTERVAL_SECS),
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: join(tempDir(t), 'data'),
      NODE_OPTIONS: `--require ${RECORDER}`,
      RECORD_REQUIRES_FILE: recordFile,
      ...env,
    }),
  );
}

describe('run, scraped', { concurrency: 2 }, () => {
  test('--metrics: the scrape parses and follows attempts, states, probes and callbacks, without a secret', async (t) => {
    const regSecret = `reg-${randomBytes(16).toString('hex')}`;
    const privhex = generateSecretKey().exposeHex();
    const { sim, url: ddsUrl } = await startSimulator(t, regSecret);
    const recordFile = join(tempDir(t), 'requires.txt');
    const metricsPort = await freePort();
    const node = await spawnRun(t, ['--metrics'], { DDS_BASE_URL: ddsUrl, REG_SECRET: regSecret, SECP256K1_PRIVHEX: privhex, METRICS_PORT: String(metricsPort) }, recordFile);

    const { line: listening } = await node.waitForEvent('metrics.listening');
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    assert.equal(listening['url'], metricsUrl);
    const scrapes: string[] = [];
    const scrape = async (): Promise<PrometheusFamily[]> => {
      const answer = await fetch(metricsUrl, { headers: { connection: 'close' } });
      assert.equal(answer.status, 200);
      const text = await answer.text();
      scrapes.push(text);
      return parseScrape(text);
    };
    const value = (families: PrometheusFamily[], name: string, labels: Record<string, string> = {}): number | undefined =>
      sampleValue(families, `${METRIC_PREFIX}${name}`, labels);

    // A 503, a retry, a success, then the simulator's callback.
    const { index: successAt } = await node.waitForEvent('registration.success');
    await node.waitForEvent('registration.callback');
    const { line: http } = await node.waitForEvent('http.listening');
    let families = await scrape();
    assert.equal(value(families, 'registration_attempts_total', { outcome: 'failure', class: 'retryable' }), 1);
    assert.equal(value(families, 'registration_attempts_total', { outcome: 'success' }), 1);
    assert.equal(value(families, 'registration_attempts_total', { outcome: 'failure', class: 'conflict' }), 0);
    assert.equal(value(families, 'state', { state: 'registered' }), 1);
    assert.equal(value(families, 'state', { state: 'backoff' }), 0);
    assert.equal(value(families, 'state_entered_total', { state: 'backoff' }), 1);
    assert.equal(value(families, 'callbacks_total', { result: 'accepted' }), 1);
    assert.equal(value(families, 'lock_takeovers_total'), 0);

    // A callback the routes refuse, counted by its reason.
    const refused = await fetch(`${String(http['url'])}/internal/v1/registrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: '{"id":',
    });
    assert.equal(refused.status, 400);
    await refused.text();

    // Probes: counted, and their age stays below the interval.
    await node.waitFor((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe', { from: successAt, what: 'a probe' });
    families = await scrape();
    assert.equal(value(families, 'callbacks_total', { result: 'refused', reason: 'invalid JSON' }), 1);
    assert.ok((value(families, 'dds_probes_total') ?? 0) >= 1);
    const probedAge = value(families, 'dds_probe_age_seconds');
    assert.ok(probedAge !== undefined && probedAge < INTERVAL_SECS, `age while probed: ${probedAge}`);

    // No probes for an interval: the health check goes stale, the node registers again, the age grew.
    sim.setFaults({ pauseProbes: true });
    const { index: expiredAt } = await node.waitForEvent('healthcheck.expired');
    const { index: againAt } = await node.waitFor((l) => l['event'] === 'registration.success', { from: expiredAt, what: 'a new registration' });
    families = await scrape();
    assert.equal(value(families, 'registration_attempts_total', { outcome: 'success' }), 2);
    assert.equal(value(families, 'state_entered_total', { state: 'healthCheckStale' }), 1);
    assert.equal(value(families, 'state', { state: 'registered' }), 1);
    const staleAge = value(families, 'dds_probe_age_seconds') ?? 0;
    assert.ok(staleAge >= INTERVAL_SECS, `age after an interval without probes: ${staleAge}`);

    // Probes again: the age starts over.
    sim.setFaults({ pauseProbes: false });
    await node.waitFor((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe', { from: againAt, what: 'a probe after the pause' });
    families = await scrape();
    const resetAge = value(families, 'dds_probe_age_seconds') ?? Infinity;
    assert.ok(resetAge < staleAge && resetAge < INTERVAL_SECS, `age after the probes resumed: ${resetAge} (was ${staleAge})`);

    const result = await node.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);
    assert.ok(readFileSync(recordFile, 'utf8').includes('prom-client'), 'prom-client was loaded (the recorder works)');
    const texts = { scrapes: scrapes.join('\n'), stdout: result.stdout, stderr: result.stderr };
    assertNoSecrets(texts, [regSecret, privhex]);
    // The node secrets are the simulator's 64 hex digits: no long hex run in a scrape.
    assertNoLongHex('scrapes', texts.scrapes);
  });

  test('without --metrics: no endpoint, and prom-client is never loaded', async (t) => {
    const regSecret = `reg-${randomBytes(16).toString('hex')}`;
    const { url: ddsUrl } = await startSimulator(t, regSecret);
    const recordFile = join(tempDir(t), 'requires.txt');
    const metricsPort = await freePort();
    const node = await spawnRun(
      t,
      [],
      { DDS_BASE_URL: ddsUrl, REG_SECRET: regSecret, SECP256K1_PRIVHEX: generateSecretKey().exposeHex(), METRICS_PORT: String(metricsPort) },
      recordFile,
    );
    await node.waitForEvent('registration.success');
    await node.waitForEvent('registration.callback');
    await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`), (error: Error) => {
      assert.equal((error.cause as NodeJS.ErrnoException | undefined)?.code, 'ECONNREFUSED');
      return true;
    });
    const result = await node.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(node.events('metrics.listening').length, 0);
    assert.equal(existsSync(recordFile) ? readFileSync(recordFile, 'utf8') : '', '', 'prom-client was not loaded');
  });
});
