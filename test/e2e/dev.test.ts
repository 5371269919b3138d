/**
 * `dev`: the embedded DDS simulator and a registrar, in one process, shown
 * as JSON lines (`{time, kind, name, text, …}`). Short settings make the
 * whole lifecycle — register, callback, probes, a probe pause, a
 * re-registration — fit in a few seconds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readdirSync } from 'node:fs';
import { assertNoLongHex, tempDir, type JsonLine } from '../support/index.js';
import { cliEnv, runCli, spawnCli } from './helpers.js';

/** What `dev` left in its TMPDIR besides tsx's cache. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((name) => !name.startsWith('tsx-'));
}

const named = (name: string) => (l: JsonLine): boolean => l['name'] === name;
const isRegisteredState = (l: JsonLine): boolean => l['kind'] === 'state' && typeof l['name'] === 'string' && l['name'].startsWith('registered');

describe('dev', { concurrency: 2 }, () => {
  test('--duration: registers, is called back and probed, re-registers after a probe pause, exits 0 by itself', async (t) => {
    // Its own TMPDIR, to see that dev removes the data directory it makes there.
    const tmp = tempDir(t);
    const child = spawnCli(
      t,
      [
        'dev',
        '--json',
        '--duration', '8',
        '--register-interval-secs', '1',
        '--probe-interval-secs', '0.25',
        '--pause-probes-at', '3',
        '--pause-probes-for', '3',
      ],
      cliEnv({ TMPDIR: tmp }),
    );
    const result = await child.exited;
    assert.equal(result.signal, null);
    assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
    assert.equal(result.stderr, '');
    // Every stdout line is a JSON object with the view's fields.
    const lines = result.stdout.split('\n').filter((l) => l !== '');
    assert.equal(child.json.length, lines.length, 'every line is JSON');
    for (const l of child.json) {
      assert.ok(typeof l['time'] === 'string' && typeof l['kind'] === 'string' && typeof l['name'] === 'string' && typeof l['text'] === 'string');
    }

    const json = child.json;
    const registeredAt = json.findIndex(isRegisteredState);
    assert.ok(registeredAt >= 0, 'a registered state');
    assert.ok(json.some((l) => l['name'] === 'callback.sent' && l['status'] === 200), 'callback.sent 200');
    assert.ok(json.some((l) => l['name'] === 'probe.sent' && l['status'] === 200), 'probe.sent 200');
    assert.ok(json.some((l) => l['name'] === 'registration.callback'), 'the registrar accepted the callback');

    // The pause, then the stale health check and a second accepted registration after it.
    const pauseAt = json.findIndex((l) => l['name'] === 'dev.scenario' && /pauses/.test(String(l['text'])));
    assert.ok(pauseAt > registeredAt, 'the probe pause comes after the registration');
    const expiredAt = json.findIndex((l, i) => i > pauseAt && l['name'] === 'healthcheck.expired');
    assert.ok(expiredAt > pauseAt, 'the health check expires during the pause');
    const accepted = json.filter(named('registration.accepted'));
    assert.ok(accepted.length >= 2, `registration.accepted ×${accepted.length}`);
    assert.ok(json.findIndex((l, i) => i > expiredAt && l['name'] === 'registration.accepted') > expiredAt, 'a re-registration after the expiry');
    assert.ok(json.findIndex((l, i) => i > expiredAt && isRegisteredState(l)) > expiredAt, 'registered again');

    const last = json[json.length - 1];
    assert.equal(last?.['name'], 'dev.done');
    assert.match(String(last?.['text']), /stopped in state stopped/);
    // dev makes its own key, registration secret and node secrets (all long hex): none is shown.
    assertNoLongHex('stdout', result.stdout);
    assert.deepEqual(leftovers(tmp), [], 'dev removed its temporary data directory');
  });

  test('an invalid fault flag → 2, and no temporary directory left behind', async (t) => {
    const tmp = tempDir(t);
    const r = await runCli(t, ['dev', '--json', '--fail-count', 'x'], cliEnv({ TMPDIR: tmp }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /DDS_SIM_FAIL_COUNT: expected a whole number/);
    assert.deepEqual(leftovers(tmp), []);
  });

  test('--fail-status 500 --fail-count 2: backs off twice, then registers; SIGTERM → 0', async (t) => {
    const child = spawnCli(
      t,
      ['dev', '--json', '--fail-status', '500', '--fail-count', '2', '--register-interval-secs', '2', '--pause-probes-at', '0', '--probe-interval-secs', '0.5'],
      cliEnv({ TMPDIR: tempDir(t) }),
    );
    const { index: firstRetry, line: retry1 } = await child.waitFor(named('registration.retry_scheduled'), { what: 'first retry_scheduled' });
    assert.equal(retry1['kind'], 'registrar');
    const { index: secondRetry } = await child.waitFor(named('registration.retry_scheduled'), { from: firstRetry + 1, timeoutMs: 15_000, what: 'second retry_scheduled' });
    const { index: registered } = await child.waitFor(isRegisteredState, { from: secondRetry + 1, timeoutMs: 20_000, what: 'registered' });
    const json = child.json.slice(0, registered + 1);
    assert.equal(json.filter(named('registration.fault')).length, 2);
    assert.ok(json.filter((l) => l['name'] === 'registration.fault').every((l) => l['status'] === 500));
    assert.ok(json.filter(named('registration.error')).length >= 1);
    assert.deepEqual(
      json.filter(named('registration.retry_scheduled')).map((l) => /retry (\d+)/.exec(String(l['text']))?.[1]),
      ['1', '2'],
    );
    assert.equal(json.filter(named('registration.accepted')).length, 1);

    const result = await child.stop('SIGTERM');
    assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
    assert.equal(child.json[child.json.length - 1]?.['name'], 'dev.done');
    assertNoLongHex('stdout', result.stdout);
    assertNoLongHex('stderr', result.stderr);
  });
});
