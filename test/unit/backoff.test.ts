import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { waitFor } from 'xstate';
import {
  BACKOFF_POLICY_NAMES,
  createBackoffPolicy,
  crateBackoff,
  crateBackoffDelayMs,
  decorrelatedJitterBackoff,
  fullJitterBackoff,
  isBackoffPolicyName,
  JITTER_BASE_MS,
  JITTER_CAP_MS,
  type RandomSource,
} from '../../src/backoff.js';
import { ConfigError, resolveConfig, type RegistrarConfig } from '../../src/config.js';
import { Command } from 'commander';
import { addSettings, readSettings } from '../../src/cli/settings.js';
import { SETTINGS } from '../../src/settings/table.js';
import { silentLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import { createRegistrar } from '../../src/registrar.js';
import { seededRandom, tempDir } from '../support/index.js';
import { StateStore } from '../../src/state/index.js';


/** A random source that returns the given values in turn, then repeats the last. */
function sequence(...values: number[]): RandomSource {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)] as number;
}

const ATTEMPTS = 40;
const SERIES = 500;

describe('crate backoff (unchanged)', () => {
  it('is min(2^attempt, 60) s × [0.8, 1.2], exactly as crateBackoffDelayMs', () => {
    const random = seededRandom(1);
    const policy = crateBackoff(sequence(0, 0.5, 0.999999));
    assert.equal(policy(1), 1600);
    assert.equal(policy(2), 4000);
    assert.equal(policy(10), Math.round(60_000 * (0.8 + 0.4 * 0.999999)));
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      for (let k = 0; k < 50; k++) {
        const r = random();
        const ms = crateBackoff(() => r)(attempt);
        assert.equal(ms, crateBackoffDelayMs(attempt, r));
        const envelope = Math.min(2 ** attempt, 60) * 1000;
        assert.ok(ms >= envelope * 0.8 - 0.5 && ms <= envelope * 1.2 + 0.5, `attempt ${attempt}: ${ms}`);
      }
    }
  });

  it('is what createBackoffPolicy("crate") and the default give', () => {
    assert.equal(createBackoffPolicy('crate', () => 0.25)(3), crateBackoffDelayMs(3, 0.25));
    assert.equal(createBackoffPolicy(undefined, () => 0.25)(3), crateBackoffDelayMs(3, 0.25));
  });
});

describe('full jitter', () => {
  it('stays in [0, min(60 s, 1 s × 2^attempt)) over many attempts, and uses the whole range', () => {
    const policy = fullJitterBackoff(seededRandom(2));
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const upper = Math.min(JITTER_CAP_MS, JITTER_BASE_MS * 2 ** attempt);
      let lo = Infinity;
      let hi = -Infinity;
      for (let k = 0; k < 200; k++) {
        const ms = policy(attempt);
        assert.ok(ms >= 0 && ms < upper, `attempt ${attempt}: ${ms} not in [0, ${upper})`);
        lo = Math.min(lo, ms);
        hi = Math.max(hi, ms);
      }
      assert.ok(lo < upper * 0.1 && hi > upper * 0.9, `attempt ${attempt}: spread ${lo}…${hi} of ${upper}`);
    }
  });

  it('maps random 0 → 0 and random → 1 to the envelope; honours base and cap', () => {
    assert.equal(fullJitterBackoff(() => 0)(5), 0);
    assert.equal(fullJitterBackoff(() => 0.5)(1), 1000);
    assert.equal(fullJitterBackoff(() => 0.5, { baseMs: 100, capMs: 1000 })(20), 500);
    assert.throws(() => fullJitterBackoff(Math.random, { baseMs: 0 }), RangeError);
    assert.throws(() => fullJitterBackoff(Math.random, { baseMs: 10, capMs: 5 }), RangeError);
  });
});

describe('decorrelated jitter', () => {
  it('stays in [1 s, 60 s] and within 3 × the previous delay, over many series', () => {
    const policy = decorrelatedJitterBackoff(seededRandom(3));
    let sawCap = false;
    for (let s = 0; s < SERIES; s++) {
      let previous = JITTER_BASE_MS;
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        const ms = policy(attempt);
        assert.ok(ms >= JITTER_BASE_MS && ms <= JITTER_CAP_MS, `series ${s}, attempt ${attempt}: ${ms}`);
        assert.ok(ms <= Math.max(JITTER_BASE_MS, previous * 3) + 1e-9, `series ${s}, attempt ${attempt}: ${ms} > 3 × ${previous}`);
        if (ms === JITTER_CAP_MS) sawCap = true;
        previous = ms;
      }
    }
    assert.ok(sawCap, 'long series reach the cap');
  });

  it('restarts from the base at the first failure of a series (attempt 1)', () => {
    const policy = decorrelatedJitterBackoff(() => 0.999999);
    const first = policy(1);
    assert.ok(Math.abs(first - 3000) < 1, `${first}`);
    assert.ok(Math.abs(policy(2) - 9000) < 1);
    assert.ok(Math.abs(policy(3) - 27000) < 1);
    assert.equal(policy(4), JITTER_CAP_MS);
    assert.ok(Math.abs(policy(1) - 3000) < 1, 'a new series starts again from 1 s');
  });

  it('keeps its state per instance: two instances do not share their previous delay', () => {
    const a = decorrelatedJitterBackoff(() => 0.999999);
    const b = decorrelatedJitterBackoff(() => 0.999999);
    a(1);
    a(2);
    assert.ok(Math.abs(a(3) - 27000) < 1);
    assert.ok(Math.abs(b(2) - 3000) < 1, 'b starts from its own base, not from a’s 27 s');
    const c = createBackoffPolicy('decorrelated-jitter', () => 0.999999);
    const d = createBackoffPolicy('decorrelated-jitter', () => 0.999999);
    c(1);
    c(2);
    assert.ok(Math.abs(d(2) - 3000) < 1, 'createBackoffPolicy returns a fresh instance each call');
  });
});

describe('policy names', () => {
  it('knows crate, full-jitter and decorrelated-jitter; rejects others', () => {
    assert.deepEqual([...BACKOFF_POLICY_NAMES], ['crate', 'full-jitter', 'decorrelated-jitter']);
    for (const name of BACKOFF_POLICY_NAMES) {
      assert.ok(isBackoffPolicyName(name));
      assert.equal(typeof createBackoffPolicy(name)(1), 'number');
    }
    assert.ok(!isBackoffPolicyName('Crate'));
    assert.ok(!isBackoffPolicyName(undefined));
    assert.throws(() => createBackoffPolicy('bogus' as never), RangeError);
  });
});

const BASE_CONFIG: RegistrarConfig = {
  ddsBaseUrl: 'http://127.0.0.1:1',
  nodeUrl: 'http://127.0.0.1:8080',
  nodeVersion: '1.0.0',
  regSecret: 'reg-secret-do-not-leak',
  secp256k1Privhex: '11'.repeat(32),
};

describe('the backoff setting: config', () => {
  it('defaults to crate and accepts every policy name', () => {
    assert.equal(resolveConfig(BASE_CONFIG).settings.backoff, 'crate');
    for (const name of BACKOFF_POLICY_NAMES) assert.equal(resolveConfig({ ...BASE_CONFIG, backoff: name }).settings.backoff, name);
  });

  it('rejects an unknown policy with a ConfigError naming the setting and the choices', () => {
    for (const bad of ['bogus', 'Crate', '', 42, null]) {
      if (bad === null) {
        // null counts as unset, like the other optional settings
        assert.equal(resolveConfig({ ...BASE_CONFIG, backoff: null as never }).settings.backoff, 'crate');
        continue;
      }
      assert.throws(
        () => resolveConfig({ ...BASE_CONFIG, backoff: bad as never }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.setting, 'backoff');
          assert.match(error.message, /^backoff: expected one of crate, full-jitter, decorrelated-jitter( \(got .*\))?$/);
          return true;
        },
      );
    }
    assert.equal(SETTINGS.backoff.env, 'REGISTER_BACKOFF');
  });
});

describe('the backoff setting: REGISTER_BACKOFF / --register-backoff', () => {
  const required = ['--node-url', 'http://127.0.0.1:8080', '--reg-secret', 'reg-secret-do-not-leak', '--secp256k1-privhex', '11'.repeat(32)];
  const read = (...args: string[]) => {
    const command = addSettings(new Command('run').exitOverride(), 'run');
    command.parse([...required, ...args], { from: 'user' });
    return readSettings(command, 'run', {}).values;
  };

  it('is a run setting, defaults to crate, is case-insensitive', () => {
    assert.ok(SETTINGS.backoff.commands.includes('run'));
    assert.equal(read().backoff, 'crate');
    assert.equal(read('--register-backoff', 'Decorrelated-Jitter').backoff, 'decorrelated-jitter');
    assert.equal(read('--register-backoff', ' full-jitter ').backoff, 'full-jitter');
  });

  it('refuses an unknown value with a ConfigError naming the variable and the choices', () => {
    assert.throws(
      () => read('--register-backoff', 'exponential'),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.env, 'REGISTER_BACKOFF');
        assert.equal(error.reason, 'expected one of crate, full-jitter, decorrelated-jitter (got "exponential")');
        return true;
      },
    );
  });
});

describe('createRegistrar picks the named policy, one instance per registrar', () => {
  it('full-jitter with random 0.5 waits half the envelope; crate waits the envelope', async (t) => {
    const dir = tempDir(t, 'posemesh-backoff-');
    const delays: Record<string, number> = {};
    for (const backoff of ['crate', 'full-jitter'] as const) {
      const registrar = createRegistrar(
        { ...BASE_CONFIG, backoff, dataDir: path.join(dir, backoff) },
        {
          logger: silentLogger,
          lock: null,
          random: () => 0.5,
          secrets: new NodeSecretStore(),
          stateStore: new StateStore({ dir: path.join(dir, backoff) }),
        },
      );
      registrar.start();
      // 127.0.0.1:1 refuses the connection: a retryable failure.
      const snapshot = await waitFor(registrar, (s) => s.matches({ backoff: 'retrying' }), { timeout: 10_000 });
      delays[backoff] = snapshot.context.policyDelayMs;
      registrar.send({ type: 'STOP' });
      await waitFor(registrar, (s) => s.status === 'done', { timeout: 10_000 });
    }
    assert.equal(delays['crate'], 2000);
    assert.equal(delays['full-jitter'], 1000);
  });
});
