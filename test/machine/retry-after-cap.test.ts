/**
 * `Retry-After` is honoured up to a cap (setting `retryAfterMaxSecs`,
 * default one interval, at least 600 s): one answer asking for a day must
 * not silence the node for a day. The machine with faked effects on a
 * SimulatedClock, then the real registrar against a real local DDS.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RegistrarSettings, RegistrationOutcome } from '../../machines/registrar.js';
import { ConfigError, resolveConfig, type RegistrarConfig } from '../../src/config.js';
import { FakeRegistrar } from '../../src/testing/index.js';
import { okResponder, tempDir } from '../support/index.js';
import { PRIVATE_KEY_HEX, REG_SECRET, advance, simulatedClock, startDds, startRegistrar, waitForSnapshot } from './scenario-helpers.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const CAP_MS = 600_000;
const ENDPOINT = 'http://dds.test/internal/v1/nodes/register';
const SETTINGS: RegistrarSettings = { intervalMs: 10_000, maxRetry: -1, callbackPolicy: 'window', callbackWindowMs: 5_000, protocol: 'legacy', session: null, retryAfterMaxMs: CAP_MS };
const OK: RegistrationOutcome = { ok: true, status: 200, endpoint: ENDPOINT };

/** A registrar whose DDS answers `first`, then 200. */
async function failingOnce(first: RegistrationOutcome, settings = SETTINGS): Promise<FakeRegistrar> {
  const answers = [first];
  const fake = new FakeRegistrar(settings, {
    answers: {
      checkCredentials: () => ({ ok: true, publicKeyPrefix: '02abcdef' }),
      acquireLock: () => ({ kind: 'acquired', takeover: false }),
      readSharedState: () => ({ status: 'disconnected', healthcheckAgeMs: null, writtenByLiveSibling: false }),
      registerWithDds: () => answers.shift() ?? OK,
      shutdown: () => undefined,
    },
  });
  await fake.start();
  return fake;
}

function failure(cls: 'retryable' | 'slow', status: number, retryAfterMs: number): RegistrationOutcome {
  return { ok: false, class: cls, status, endpoint: ENDPOINT, retryAfterMs, message: `HTTP ${status}` };
}

/** The fields of the last line logged with `event`. */
function lastLine(fake: FakeRegistrar, event: string): Record<string, unknown> | undefined {
  return fake.logs.filter((l) => l.event === event).at(-1)?.fields;
}

/** Let `ms` pass and check that the machine waited exactly that long before its next request. */
async function nextRequestAfter(fake: FakeRegistrar, ms: number): Promise<void> {
  await fake.advance(ms - 1);
  assert.equal(fake.started.registerWithDds, 1, `no new request at ${ms - 1} ms`);
  await fake.advance(1);
  assert.equal(fake.started.registerWithDds, 2, `the new request at ${ms} ms`);
  assert.ok(fake.getSnapshot().matches('registered'), JSON.stringify(fake.getSnapshot().value));
}

describe('Retry-After capped by retryAfterMaxMs (machine, SimulatedClock)', () => {
  it('a 429 asking for a day retries after the cap, and the retry line says so', async () => {
    const fake = await failingOnce(failure('retryable', 429, DAY_MS));
    assert.ok(fake.getSnapshot().matches({ backoff: 'retrying' }));
    assert.deepEqual(lastLine(fake, 'registration.retry_scheduled'), { attempt: 1, wait_ms: CAP_MS, retry_after_capped_ms: CAP_MS });
    await nextRequestAfter(fake, CAP_MS);
    fake.stop();
  });

  it('a slow failure asking for a day cools down for the cap', async () => {
    const fake = await failingOnce(failure('slow', 400, DAY_MS));
    assert.ok(fake.getSnapshot().matches({ backoff: 'cooldown' }));
    assert.deepEqual(lastLine(fake, 'registration.cooldown'), { wait_ms: CAP_MS, retry_after_capped_ms: CAP_MS });
    await nextRequestAfter(fake, CAP_MS);
    fake.stop();
  });

  it('max_retry reached under a long Retry-After: the cooldown and its warning carry the cap', async () => {
    const fake = await failingOnce(failure('retryable', 503, DAY_MS), { ...SETTINGS, maxRetry: 1 });
    assert.ok(fake.getSnapshot().matches({ backoff: 'cooldown' }));
    assert.deepEqual(lastLine(fake, 'registration.max_retry_reached'), { max_retry: 1, wait_ms: CAP_MS, retry_after_capped_ms: CAP_MS });
    await nextRequestAfter(fake, CAP_MS);
    fake.stop();
  });

  it('a Retry-After within the cap is honoured as asked, and no cap is logged', async () => {
    const fake = await failingOnce(failure('retryable', 429, CAP_MS - 1000));
    assert.deepEqual(lastLine(fake, 'registration.retry_scheduled'), { attempt: 1, wait_ms: CAP_MS - 1000 });
    await nextRequestAfter(fake, CAP_MS - 1000);
    fake.stop();
  });
});

describe('retryAfterMaxSecs (setting)', () => {
  const config = (extra: Partial<RegistrarConfig>): RegistrarConfig => ({
    ddsBaseUrl: 'http://127.0.0.1:9',
    nodeUrl: 'http://127.0.0.1:8',
    nodeVersion: '1.2.3',
    regSecret: REG_SECRET,
    secp256k1Privhex: PRIVATE_KEY_HEX,
    ...extra,
  });

  it('defaults to one interval, at least 600 s', () => {
    assert.equal(resolveConfig(config({ registerIntervalSecs: 60 })).settings.machine.retryAfterMaxMs, 600_000);
    assert.equal(resolveConfig(config({ registerIntervalSecs: 1800 })).settings.machine.retryAfterMaxMs, 1_800_000);
    assert.equal(resolveConfig(config({ retryAfterMaxSecs: 30 })).settings.machine.retryAfterMaxMs, 30_000);
  });

  it('is refused below 1 s and above a day', () => {
    for (const retryAfterMaxSecs of [0, 0.5, 86_401, Number.NaN]) {
      assert.throws(() => resolveConfig(config({ retryAfterMaxSecs })), ConfigError, String(retryAfterMaxSecs));
    }
  });
});

describe('Retry-After capped (real registrar, real DDS over HTTP, SimulatedClock)', () => {
  it('Retry-After: 86400 from DDS: the next request goes out after the default cap (600 s at a 60 s interval)', async (t) => {
    const clock = simulatedClock();
    const dds = await startDds(t, () => ({ status: 429, headers: { 'retry-after': '86400' }, body: 'slow down' }));
    const r = startRegistrar(t, { dds, dataDir: tempDir(t), config: { registerIntervalSecs: 60 }, options: { clock, random: () => 0.5 } });
    let s = await waitForSnapshot(r.actor, (x) => x.matches({ backoff: 'retrying' }) && x.context.requests === 1);
    assert.equal(s.context.lastFailure?.retryAfterMs, DAY_MS, 'DDS asked for a day');
    const line = r.logger.events('registration.retry_scheduled').at(-1);
    assert.equal(line?.wait_ms, CAP_MS);
    assert.equal(line?.retry_after_capped_ms, CAP_MS);

    dds.setResponder(okResponder);
    await advance(clock, CAP_MS - 1);
    assert.equal(dds.requests.length, 1, 'no request before the cap');
    assert.ok(r.actor.getSnapshot().matches({ backoff: 'retrying' }));
    await advance(clock, 1);
    await dds.waitForRequests(2);
    s = await waitForSnapshot(r.actor, (x) => x.matches('registered'));
    assert.equal(s.context.registrations, 1);
  });
});
