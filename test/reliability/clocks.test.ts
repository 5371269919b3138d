/**
 * Clocks: a probe time in the state file that lies in the future (the wall
 * clock was stepped back after it was written, or its writer's clock is
 * ahead) never keeps the health check fresh.
 *
 * 1. The judge: such a time counts as fresh for one interval on the
 *    monotonic clock after it was first read, then as stale.
 * 2. A running registrar whose state file's last probe is an hour ahead
 *    (what stepping the clock back an hour after the probe leaves) still
 *    re-registers once the TTL has passed.
 * 3. `status` reports such a file as stale, with the reason (JSON field and
 *    message), exit 1.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { readStatusReport } from '../../src/cli/status-report.js';
import { MemoryLogger } from '../../src/log.js';
import { createRegistrar } from '../../src/registrar.js';
import { HealthcheckAgeJudge } from '../../src/state/state-file.js';
import { exitWithin, isRegistration, okResponder, spawnChild, startFakeDds, tempDir, testConfig, waitUntil } from '../support/index.js';
import { newCredentials, registrarEnv } from './common.js';

const HOUR = 3_600_000;

describe('a probe time in the future', { timeout: 60_000 }, () => {
  it('is fresh for at most one interval on the monotonic clock after it was first read', () => {
    let mono = 0;
    const judge = new HealthcheckAgeJudge(() => mono);
    const wall = 1_700_000_000_000;
    const ahead = { lastHealthcheck: Math.floor((wall + HOUR) / 1000), lastHealthcheckMs: wall + HOUR };
    assert.equal(judge.ageMs(ahead, wall), 0, 'first read');
    mono += 4000;
    assert.equal(judge.ageMs(ahead, wall + 4000), 4000, 'aged on the monotonic clock, not the wall clock');
    // A newer future time starts its own count.
    const later = { lastHealthcheck: ahead.lastHealthcheck + 1, lastHealthcheckMs: ahead.lastHealthcheckMs + 1000 };
    assert.equal(judge.ageMs(later, wall + 4000), 0);
    // A past time ages by the wall clock as always; a little ahead (rounding) is not "the future".
    assert.equal(judge.ageMs({ lastHealthcheck: null, lastHealthcheckMs: wall - 2500 }, wall), 2500);
    assert.equal(judge.ageMs({ lastHealthcheck: null, lastHealthcheckMs: wall + 500 }, wall), 0);
    assert.equal(judge.ageMs({ lastHealthcheck: null, lastHealthcheckMs: null }, wall), null);
  });

  it('a registrar whose state file says it was probed an hour ahead still re-registers when the TTL passes', async (t) => {
    const dds = await startFakeDds(t, { responder: okResponder });
    const creds = newCredentials();
    const dataDir = path.join(tempDir(t), 'data');
    const logger = new MemoryLogger();
    const registrar = createRegistrar(testConfig(dds.url, creds, { nodeUrl: 'http://127.0.0.1:9/clock-stepped-back', registerIntervalSecs: 1, dataDir }), { logger });
    t.after(() => registrar.stop());
    registrar.start();
    const registrations = (): number => dds.requests.filter(isRegistration).length;
    await waitUntil(() => registrar.getSnapshot().matches('registered'), 'registered');
    // What the file holds once the wall clock is stepped back an hour after the last probe.
    const file = path.join(dataDir, 'registration_state.json');
    const state = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    const ahead = Date.now() + HOUR;
    fs.writeFileSync(file, JSON.stringify({ ...state, last_healthcheck: Math.floor(ahead / 1000), last_healthcheck_ms: ahead }));
    const before = registrations();
    // One interval to the TTL, one more at most for the future time read then: generous bounds.
    await waitUntil(() => registrations() > before, 're-registration after the TTL', 15_000);
    assert.ok(logger.events('healthcheck.expired').length >= 1, 'the health check was declared stale');
  });

  it('status calls it stale, with the reason (JSON and text), exit 1', async (t) => {
    const dir = tempDir(t);
    const ahead = Date.now() + HOUR;
    fs.writeFileSync(
      path.join(dir, 'registration_state.json'),
      JSON.stringify({ status: 'registered', last_healthcheck: Math.floor(ahead / 1000), last_healthcheck_ms: ahead }),
    );
    const report = readStatusReport(dir, 120);
    assert.equal(report.healthy, false);
    assert.equal(report.staleReason, 'future-timestamp');
    assert.ok(report.futureBySecs !== null && report.futureBySecs > 3500, String(report.futureBySecs));
    // A probe 9 s ago is fresh, one a second "ahead" (rounding) too.
    fs.writeFileSync(path.join(dir, 'registration_state.json'), JSON.stringify({ status: 'registered', last_healthcheck_ms: Date.now() - 9000, last_healthcheck: Math.floor((Date.now() - 9000) / 1000) }));
    assert.equal(readStatusReport(dir, 120).healthy, true);
    assert.equal(readStatusReport(dir, 120).staleReason, null);
    fs.writeFileSync(
      path.join(dir, 'registration_state.json'),
      JSON.stringify({ status: 'registered', last_healthcheck: Math.floor(ahead / 1000), last_healthcheck_ms: ahead }),
    );
    const env = registrarEnv({ DATA_DIR: dir });
    const json = await exitWithin(spawnChild(t, { name: 'status-json', args: ['status', '--json'], env }), 20_000);
    assert.equal(json.code, 1, json.stderr);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.equal(parsed['staleReason'], 'future-timestamp');
    assert.equal(parsed['healthy'], false);
    const text = await exitWithin(spawnChild(t, { name: 'status-text', args: ['status'], env }), 20_000);
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /in the future/);
    assert.match(text.stdout, /stale/);
    assert.match(text.stdout, /clock was stepped back/);
  });
});
