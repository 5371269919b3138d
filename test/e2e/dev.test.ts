/**
 * `dev`: the embedded DDS simulator and a registrar, in one process, shown
 * as JSON lines (`{time, kind, name, text, …}`). Short settings make the
 * whole lifecycle — register, callback, probes, a probe pause, a
 * re-registration — fit in a few seconds; under `--protocol siwe` the
 * wallet's story: nonce, registered, signed in, refreshed, forgotten by DDS,
 * re-armed, registered and signed in again.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertNoLongHex, assertNoSecrets, tempDir, type JsonLine } from '../support/index.js';
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

  test('an invalid --forget-at-sign-in → 2', async (t) => {
    const r = await runCli(t, ['dev', '--json', '--protocol', 'siwe', '--forget-at-sign-in', 'x'], cliEnv({ TMPDIR: tempDir(t) }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--forget-at-sign-in: expected a whole number from 0 to 1000/);
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

  test('--protocol siwe: nonce, registered, signed in, refreshed, forgotten, re-armed, registered and signed in again; no token shown; SIGTERM → 0', async (t) => {
    const tmp = tempDir(t);
    const tokenFile = join(tempDir(t), 'token');
    // The dev defaults alone (a 4 s token, forgotten at the 2nd sign-in) tell the story.
    const child = spawnCli(t, ['dev', '--json', '--protocol', 'siwe', '--access-token-file', tokenFile], cliEnv({ TMPDIR: tmp }));
    const tokens: string[] = [];
    const signedIn = async (from: number, what: string): Promise<number> => {
      const { index } = await child.waitFor(named('session.signed_in'), { from, what });
      if (existsSync(tokenFile)) tokens.push(readFileSync(tokenFile, 'utf8'));
      return index;
    };
    const step = async (predicate: (l: JsonLine) => boolean, from: number, what: string): Promise<number> => (await child.waitFor(predicate, { from, what })).index;
    const isState = (part: string) => (l: JsonLine): boolean => l['kind'] === 'state' && String(l['name']).includes(part);

    const nonce = await step(named('siwe.nonce.issued'), 0, 'a nonce');
    const registered = await step(named('siwe.registered'), nonce + 1, 'the wallet registered');
    const parked = await step(isState('health: parked'), registered + 1, 'registered, parked');
    const first = await signedIn(parked + 1, 'signed in');
    const refreshing = await step(isState('session: signingIn.refreshing'), first + 1, 'refreshing');
    await signedIn(refreshing + 1, 'token refreshed');
    const forgotten = await step(named('siwe.forgotten'), refreshing + 1, 'DDS forgets the node');
    const refused = await step((l) => l['name'] === 'siwe.rejected' && l['call'] === 'verify' && l['status'] === 403, forgotten + 1, 'verify 403');
    const rearm = await step(named('registration.rearm'), refused + 1, 'the re-arm');
    const rearming = await step(isState('rearming'), rearm + 1, 'rearming');
    const again = await step(named('siwe.registered'), rearming + 1, 'registered again');
    await signedIn(again + 1, 'signed in again');

    // In words: the session's states and the re-arm.
    const json = child.json;
    assert.match(String(json[parked]?.['text']), /session: signingIn\.first\) — signing in/);
    assert.match(String(json[refreshing]?.['text']), /refreshing the access token/);
    assert.match(String(json[rearm]?.['text']), /DDS forgot the node.*re-arming registration/);
    assert.match(String(json[rearming]?.['text']), /re-arming/);
    assert.match(String(json[first]?.['text']), /signed in \(sign-in 1\): access token until/);
    assert.equal(json.filter(named('dev.scenario')).length, 1, 'forgotten once');
    assert.equal(json.filter(named('probe.sent')).length, 0, 'no probes under siwe');

    const result = await child.stop('SIGTERM');
    assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
    assert.equal(child.json[child.json.length - 1]?.['name'], 'dev.done');
    assert.equal(tokens.length, 3, 'a token at each sign-in');
    assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, tokens);
    // Wallets are 40 hex digits; the key, the registration secret, tokens and signatures are longer.
    assertNoLongHex('stdout', result.stdout, 41);
    assertNoLongHex('stderr', result.stderr, 41);
    assert.deepEqual(leftovers(tmp), [], 'dev removed its temporary data directory');
  });
});
