/**
 * The CLI's exit statuses and its one-line errors: 2 for a missing or
 * invalid setting, 3 when it cannot start, 0 for `--help` and after a
 * graceful stop. Each case is a real child process; the cases share nothing,
 * so they run concurrently.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { assertNoSecrets, freePort, occupyPort, startFakeDds, tempDir } from '../support/index.js';
import { cliEnv, runCli, runEnv, spawnCli, type CliResult } from './helpers.js';

const PRIVHEX = generateSecretKey().exposeHex();
const REG_SECRET = `reg-${randomBytes(16).toString('hex')}`;

/** A complete, valid `run` environment (DDS unreachable on purpose: nothing here gets that far). */
function unreachableRunEnv(t: TestContext, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return runEnv({ ddsUrl: 'http://127.0.0.1:9', regSecret: REG_SECRET, privhex: PRIVHEX, dataDir: join(tempDir(t), 'data') }, extra);
}

/** Run `run` with {@link runEnv} + `extra`; whatever the outcome, its output holds neither secret. */
async function runRun(t: TestContext, args: readonly string[], extra: Record<string, string | undefined> = {}): Promise<CliResult> {
  const r = await runCli(t, args, unreachableRunEnv(t, extra));
  assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
  return r;
}

/** stderr as its non-empty lines. */
function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '');
}

describe('exit statuses', { concurrency: 4 }, () => {
  test('missing NODE_URL → 2 with one stderr line naming it', async (t) => {
    const r = await runRun(t, ['run'], { NODE_URL: undefined });
    assert.equal(r.code, 2, r.stderr);
    const lines = stderrLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? '', /NODE_URL/);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
  });

  test('missing REG_SECRET → 2 naming it', async (t) => {
    const r = await runRun(t, ['run'], { REG_SECRET: undefined });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /REG_SECRET/);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [PRIVHEX]);
  });

  for (const [name, key, why] of [
    ['63 hex digits', PRIVHEX.slice(0, 63), /odd|length|64/i],
    ['not hex', 'zz' + PRIVHEX.slice(2), /hex/i],
    ['zero', '0'.repeat(64), /range|zero/i],
  ] as const) {
    test(`invalid SECP256K1_PRIVHEX (${name}) → 2, described, never echoed`, async (t) => {
      const r = await runRun(t, ['run'], { SECP256K1_PRIVHEX: key });
      assert.equal(r.code, 2, r.stderr);
      const lines = stderrLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] ?? '', /SECP256K1_PRIVHEX/);
      assert.match(lines[0] ?? '', why);
      assert.equal(r.stdout, '');
      if (name !== 'zero') assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [key, PRIVHEX, REG_SECRET]);
    });
  }

  test("REGISTER_INTERVAL_SECS='abc' → 2", async (t) => {
    const r = await runRun(t, ['run'], { REGISTER_INTERVAL_SECS: 'abc' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /REGISTER_INTERVAL_SECS/);
  });

  test("DDS_BASE_URL='ftp://x' → 2", async (t) => {
    const r = await runRun(t, ['run'], { DDS_BASE_URL: 'ftp://x' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /DDS_BASE_URL/);
  });

  test('DDS_BASE_URL with credentials → 2 without echoing them', async (t) => {
    const password = `pw-${randomBytes(12).toString('hex')}`;
    const r = await runRun(t, ['run'], { DDS_BASE_URL: `https://user:${password}@dds.example` });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /DDS_BASE_URL/);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [password]);
  });

  test('PORT out of range → 2', async (t) => {
    const r = await runRun(t, ['run'], { PORT: '70000' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /PORT/);
  });

  test('unknown option → 2', async (t) => {
    const r = await runRun(t, ['run', '--no-such-option']);
    assert.equal(r.code, 2, r.stderr);
  });

  test('port in use → 3', async (t) => {
    const port = await occupyPort(t);
    const r = await runRun(t, ['run'], { PORT: String(port) });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /PORT/);
    assert.match(r.stderr, new RegExp(String(port)));
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
  });

  test('DATA_DIR under a regular file → 3', async (t) => {
    const file = join(tempDir(t), 'a-file');
    writeFileSync(file, 'not a directory');
    const r = await runRun(t, ['run'], { DATA_DIR: join(file, 'data') });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /DATA_DIR/);
  });

  test('INSPECT=1 with INSPECT_PORT taken → 3', async (t) => {
    const port = await occupyPort(t);
    const r = await runRun(t, ['run'], { INSPECT: '1', INSPECT_PORT: String(port) });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /INSPECT_PORT/);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
  });

  test('the flag wins over the environment (env PORT busy, --port free)', async (t) => {
    const busy = await occupyPort(t);
    const free = await freePort();
    const child = spawnCli(t, ['run', '--port', String(free)], unreachableRunEnv(t, { PORT: String(busy) }));
    const { line } = await child.waitForEvent('http.listening');
    assert.equal(line['url'], `http://127.0.0.1:${free}`);
    await child.waitForEvent('registration.loop.start');
    const r = await child.stop('SIGTERM');
    assert.equal(r.code, 0, r.stderr);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
  });

  test('REGISTER_INTERVAL_SECS=0 runs with a warning (and a key given as "  0X<UPPER>  " works)', async (t) => {
    const dds = await startFakeDds(t);
    const child = spawnCli(
      t,
      ['run'],
      unreachableRunEnv(t, { REGISTER_INTERVAL_SECS: '0', DDS_BASE_URL: dds.url, SECP256K1_PRIVHEX: `  0X${PRIVHEX.toUpperCase()}  ` }),
    );
    const { line: warning } = await child.waitFor((l) => l['level'] === 'warn' && /REGISTER_INTERVAL_SECS/.test(JSON.stringify(l)), {
      what: 'a warning about REGISTER_INTERVAL_SECS',
    });
    assert.equal(warning['event'], 'config.adjusted');
    const { line: start } = await child.waitForEvent('registration.loop.start');
    assert.equal(start['interval_ms'], 1000);
    await child.waitForEvent('registration.success');
    const r = await child.stop('SIGTERM');
    assert.equal(r.code, 0, r.stderr);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
  });

  test('status with a bad REGISTER_INTERVAL_SECS → 2', async (t) => {
    const r = await runCli(t, ['status'], cliEnv({ DATA_DIR: tempDir(t), REGISTER_INTERVAL_SECS: 'abc' }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /REGISTER_INTERVAL_SECS/);
  });

  test('dds-sim with its port taken → 3; with a bad port → 2', async (t) => {
    const port = await occupyPort(t);
    const [busy, bad] = await Promise.all([
      runCli(t, ['dds-sim', '--port', String(port)], cliEnv({ LOG_FORMAT: 'json' })),
      runCli(t, ['dds-sim', '--port', 'eighty'], cliEnv({ LOG_FORMAT: 'json' })),
    ]);
    assert.equal(busy.code, 3, busy.stderr);
    assert.equal(bad.code, 2, bad.stderr);
  });

  test('dev with a bad REGISTER_INTERVAL_SECS or REGISTER_MAX_RETRY → 2', async (t) => {
    const [interval, retry] = await Promise.all([
      runCli(t, ['dev', '--json', '--register-interval-secs', 'abc'], cliEnv({ TMPDIR: tempDir(t) })),
      runCli(t, ['dev', '--json'], cliEnv({ REGISTER_MAX_RETRY: '1.5', TMPDIR: tempDir(t) })),
    ]);
    assert.equal(interval.code, 2, interval.stderr);
    assert.match(interval.stderr, /REGISTER_INTERVAL_SECS/);
    assert.equal(retry.code, 2, retry.stderr);
    assert.match(retry.stderr, /REGISTER_MAX_RETRY/);
  });

  test('an unusable --fail-status (a 2xx) is a bad setting → 2', async (t) => {
    const [dev, sim] = await Promise.all([
      runCli(t, ['dev', '--json', '--fail-status', '200', '--duration', '1'], cliEnv({ TMPDIR: tempDir(t) })),
      runCli(t, ['dds-sim', '--port', '0', '--fail-status', '200'], cliEnv({ LOG_FORMAT: 'json' })),
    ]);
    assert.equal(dev.code, 2, dev.stderr);
    assert.match(dev.stderr, /DDS_SIM_FAIL_STATUS: must be at least 300/);
    assert.equal(sim.code, 2, sim.stderr);
    assert.match(sim.stderr, /DDS_SIM_FAIL_STATUS: must be at least 300/);
  });

  test('dev with an unknown CALLBACK_POLICY → 2', async (t) => {
    const [dev, run] = await Promise.all([
      runCli(t, ['dev', '--json', '--callback-policy', 'bogus', '--duration', '0.5'], cliEnv({ TMPDIR: tempDir(t) })),
      runRun(t, ['run'], { CALLBACK_POLICY: 'bogus' }),
    ]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /CALLBACK_POLICY/);
    assert.equal(dev.code, 2, `dev exit ${dev.code}`);
    assert.match(dev.stderr, /CALLBACK_POLICY/);
  });
});

describe('hostile settings: exit 2 and one line naming the setting', { concurrency: 4 }, () => {
  for (const [name, value] of [
    ['DDS_BASE_URL', 'https://dds.example/?x=1'],
    ['DDS_BASE_URL', 'https://dds.example/#x'],
    ['NODE_URL', 'http://127.0.0.1:9/node?x'],
    ['REGISTER_MAX_RETRY', '99999999999999999999'],
    ['REGISTER_INTERVAL_SECS', '1e3'],
    ['HOST', 'not a host!'],
    ['PORT', '8080.5'],
    ['INSPECT', 'maybe'],
    ['LOG_LEVEL', 'verbose'],
  ] as const) {
    test(`${name}=${JSON.stringify(value)} → 2`, async (t) => {
      const r = await runRun(t, ['run'], { [name]: value });
      assert.equal(r.code, 2, r.stderr);
      const lines = stderrLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] ?? '', new RegExp(`^posemesh-node-registration: ${name}: `));
    });
  }

  test('a well-formed HOST this machine lacks → 3 naming HOST (not PORT)', async (t) => {
    const r = await runRun(t, ['run'], { HOST: '192.0.2.1' });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /HOST: address 192\.0\.2\.1 is not available on this machine/);
  });

  test('an unparsable DDS_BASE_URL with a password → 2, nothing of it echoed', async (t) => {
    const password = `pw-${randomBytes(12).toString('hex')}`;
    const r = await runRun(t, ['run'], { DDS_BASE_URL: `http://user:${password}@[dds.example` });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /DDS_BASE_URL: not a valid URL/);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [password, 'dds.example']);
  });

  test('a mistyped option is named without its value', async (t) => {
    const [sub, top] = await Promise.all([
      runRun(t, ['run', `--regsecret=${REG_SECRET}`]),
      runRun(t, [`--reg-secret=${REG_SECRET}`, 'run']),
    ]);
    for (const r of [sub, top]) {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /unknown option '--reg-?secret'/);
      assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET]);
    }
    const command = await runCli(t, [REG_SECRET], cliEnv());
    assert.equal(command.code, 2, command.stderr);
    assertNoSecrets({ stdout: command.stdout, stderr: command.stderr }, [REG_SECRET]);
  });

  test('REG_SECRET and REG_SECRET_FILE both set → 2 naming both', async (t) => {
    const file = join(tempDir(t), 'reg_secret');
    writeFileSync(file, REG_SECRET, { mode: 0o600 });
    const r = await runRun(t, ['run'], { REG_SECRET_FILE: file });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /REG_SECRET: set both REG_SECRET and REG_SECRET_FILE/);
  });
});

describe('secrets from files', { concurrency: 2 }, () => {
  /** Run `run` against a local DDS until it registered; the log lines it wrote on the way. */
  async function registerWith(t: TestContext, extra: Record<string, string | undefined>): Promise<Array<Record<string, unknown>>> {
    const dds = await startFakeDds(t);
    const child = spawnCli(t, ['run'], unreachableRunEnv(t, { DDS_BASE_URL: dds.url, REG_SECRET: undefined, SECP256K1_PRIVHEX: undefined, ...extra }));
    await child.waitForEvent('registration.success');
    const r = await child.stop('SIGTERM');
    assert.equal(r.code, 0, r.stderr);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [REG_SECRET, PRIVHEX]);
    assert.equal((dds.registrations().at(-1)?.body as Record<string, unknown> | undefined)?.['registration_credentials'], REG_SECRET);
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  test('REG_SECRET_FILE and SECP256K1_PRIVHEX_FILE (Docker, Kubernetes): registered; a world-readable one warned of', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'reg_secret'), `${REG_SECRET}\n`);
    chmodSync(join(dir, 'reg_secret'), 0o600);
    writeFileSync(join(dir, 'privhex'), `${PRIVHEX}\n`);
    chmodSync(join(dir, 'privhex'), 0o644);
    const lines = await registerWith(t, { REG_SECRET_FILE: join(dir, 'reg_secret'), SECP256K1_PRIVHEX_FILE: join(dir, 'privhex') });
    const warned = lines.filter((l) => l['event'] === 'secret.file.permissions');
    assert.deepEqual(warned.map((l) => l['env']), ['SECP256K1_PRIVHEX_FILE']);
  });

  test('systemd credentials ($CREDENTIALS_DIRECTORY/reg_secret, …/secp256k1_privhex): registered', async (t) => {
    const dir = join(tempDir(t), 'credentials');
    mkdirSync(dir);
    writeFileSync(join(dir, 'reg_secret'), REG_SECRET, { mode: 0o400 });
    writeFileSync(join(dir, 'secp256k1_privhex'), PRIVHEX, { mode: 0o400 });
    const lines = await registerWith(t, { CREDENTIALS_DIRECTORY: dir });
    assert.deepEqual(lines.filter((l) => String(l['event']).startsWith('secret.')), []);
  });

  test('a REG_SECRET shorter than 8 characters runs, with a warning that does not hold it', async (t) => {
    const short = 'Zq7#kW';
    const dds = await startFakeDds(t);
    const child = spawnCli(t, ['run'], unreachableRunEnv(t, { DDS_BASE_URL: dds.url, REG_SECRET: short }));
    const { line } = await child.waitForEvent('secret.short');
    assert.equal(line['env'], 'REG_SECRET');
    await child.waitForEvent('registration.success');
    const r = await child.stop('SIGTERM');
    assert.equal(r.code, 0, r.stderr);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [short, PRIVHEX]);
  });
});

describe('--help', { concurrency: 4 }, () => {
  const cases: Record<string, string[]> = {
    run: [
      'DDS_BASE_URL',
      'NODE_URL',
      'NODE_VERSION',
      'REG_SECRET',
      'SECP256K1_PRIVHEX',
      'CAPABILITIES',
      'REGISTER_INTERVAL_SECS',
      'REGISTER_MAX_RETRY',
      'REQUEST_TIMEOUT_SECS',
      'LOCK_STALE_SECS',
      'CALLBACK_POLICY',
      'CALLBACK_WINDOW_SECS',
      'HOST',
      'PORT',
      'DATA_DIR',
      'LOG_FORMAT',
      'LOG_LEVEL',
      'INSPECT',
      'INSPECT_PORT',
    ],
    dev: ['REGISTER_INTERVAL_SECS', 'REGISTER_MAX_RETRY', 'CALLBACK_POLICY', 'INSPECT', 'INSPECT_PORT', 'DDS_SIM_FAIL_STATUS', 'DDS_SIM_FAIL_COUNT'],
    'dds-sim': ['DDS_SIM_HOST', 'DDS_SIM_PORT', 'DDS_SIM_PROBE_INTERVAL_SECS', 'DDS_SIM_EXPECTED_REG_SECRET', 'LOG_FORMAT', 'LOG_LEVEL', 'DDS_SIM_FAIL_STATUS'],
    status: ['DATA_DIR', 'REGISTER_INTERVAL_SECS'],
    keygen: [],
  };
  for (const [sub, names] of Object.entries(cases)) {
    test(`${sub} --help → 0 and lists its environment variables`, async (t) => {
      const r = await runCli(t, [sub, '--help'], cliEnv());
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`Usage: posemesh-node-registration ${sub}`));
      for (const name of names) assert.match(r.stdout, new RegExp(`\\b${name}\\b`), `${sub} --help lacks ${name}`);
    });
  }

  test('dev --help shows its own defaults (a 6 s interval); run --help warns about secret flags', async (t) => {
    const [dev, run] = await Promise.all([runCli(t, ['dev', '--help'], cliEnv()), runCli(t, ['run', '--help'], cliEnv())]);
    const flat = (text: string): string => text.replace(/\s+/g, ' ');
    assert.match(flat(dev.stdout), /--register-interval-secs <secs> .*\(default: 6 s\) \(env: REGISTER_INTERVAL_SECS\)/);
    assert.match(flat(dev.stdout), /--probe-interval-secs <secs> .*\(default: 2 s\) \(env: DDS_SIM_PROBE_INTERVAL_SECS\)/);
    assert.match(flat(run.stdout), /\(default: 120 s\) \(env: REGISTER_INTERVAL_SECS\)/);
    assert.match(flat(run.stdout), /visible to every local user in \/proc\/<pid>\/cmdline/);
    assert.match(flat(run.stdout), /REG_SECRET_FILE, SECP256K1_PRIVHEX_FILE/);
  });

  test('--version → 0 and prints the version', async (t) => {
    const r = await runCli(t, ['--version'], cliEnv());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+/);
  });
});
