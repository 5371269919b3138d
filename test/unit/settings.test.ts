/**
 * The settings table (src/settings/table.ts) and the two roads through it:
 * library config (`resolveConfig`) and command-line text (`readSettings`).
 * Every entry complete; one validator; library errors name the key, command
 * errors the variable; hostile values refused; no secret and no URL
 * credentials echoed; secrets from files and systemd credentials.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Command } from 'commander';
import { ConfigError, resolveConfig, type RegistrarConfig } from '../../src/config.js';
import { addSettings, readSettings, settingLine } from '../../src/cli/settings.js';
import { generateSecretKey } from '../../src/crypto.js';
import { PACKAGE_VERSION } from '../../src/version.js';
import {
  credentialOf,
  fileEnvOf,
  flagOf,
  isDerived,
  keysOfCommand,
  keysOfGroups,
  SETTING_KEYS,
  SETTINGS,
  specOf,
  type CommandName,
  type GroupKey,
} from '../../src/settings/table.js';
import { validateSettings, type SettingWarning } from '../../src/settings/validate.js';
import { tempDir } from '../support/index.js';

const PRIVHEX = generateSecretKey().exposeHex();
const REG_SECRET = 'reg-secret-do-not-leak-3f9a';

const CONFIG: RegistrarConfig = {
  nodeUrl: 'http://127.0.0.1:8080',
  nodeVersion: '1.0.0',
  regSecret: REG_SECRET,
  secp256k1Privhex: PRIVHEX,
};

const REQUIRED_FLAGS = ['--node-url', 'http://127.0.0.1:8080', '--node-version', '1.0.0', '--reg-secret', REG_SECRET, '--secp256k1-privhex', PRIVHEX];

/** Parse `args` as `name` would and read its settings (environment: `env` only for credentials). */
function read<C extends CommandName>(name: C, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const command = addSettings(new Command(name).exitOverride(), name);
  command.parse([...args], { from: 'user' });
  return readSettings(command, name, env);
}

const readRun = (args: readonly string[] = [], env?: NodeJS.ProcessEnv) => read('run', [...REQUIRED_FLAGS, ...args], env);

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError');
}

describe('the table', () => {
  it('has every entry complete: variable, group, kind, help, commands, a default or a reason to have none', () => {
    const envs = new Set<string>();
    for (const key of SETTING_KEYS) {
      const spec = specOf(key);
      assert.match(spec.env, /^[A-Z][A-Z0-9_]*[A-Z0-9]$/, key);
      assert.ok(!envs.has(spec.env), `${spec.env} twice`);
      envs.add(spec.env);
      assert.ok(spec.help.trim().length > 0 && !spec.help.includes('\n'), `${key}: one line of help`);
      assert.ok(spec.commands.length > 0, `${key}: no command takes it`);
      assert.ok(spec.kind.arg.length > 0 && spec.kind.expected.length > 0, key);
      assert.ok(!(spec.required && spec.default !== undefined), `${key}: required with a default`);
      // Every default is a valid value of its kind (derived ones once resolved).
      for (const fallback of [spec.default, ...Object.values(spec.commandDefaults ?? {})]) {
        if (fallback === undefined || isDerived(fallback)) continue;
        assert.deepEqual(spec.kind.check(fallback, () => assert.fail(`${key}: its default warns`)), fallback, key);
      }
      // Secrets never have a default to show.
      if (spec.secret) assert.equal(spec.default, undefined, key);
    }
  });

  it('derives each flag from its variable by one rule', () => {
    assert.equal(flagOf('DDS_BASE_URL'), '--dds-base-url');
    assert.equal(flagOf('SECP256K1_PRIVHEX'), '--secp256k1-privhex');
    assert.equal(flagOf('DDS_SIM_FAIL_STATUS'), '--fail-status');
    assert.equal(fileEnvOf(SETTINGS.regSecret), 'REG_SECRET_FILE');
    assert.equal(credentialOf(SETTINGS.regSecret), 'reg_secret');
  });

  it('gives no command two options with one flag', () => {
    for (const name of ['run', 'dev', 'status', 'dds-sim'] as const) {
      const command = addSettings(new Command(name), name);
      const flags = command.options.map((o) => o.long);
      assert.equal(new Set(flags).size, flags.length, `${name}: ${flags.join(' ')}`);
      assert.ok(keysOfCommand(name).length > 0);
    }
  });

  it('is the library config: RegistrarConfig has exactly the registrar group', () => {
    type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
    const keysMatch: Exact<keyof RegistrarConfig, GroupKey<'registrar'>> = true;
    assert.ok(keysMatch);
    assert.deepEqual(keysOfGroups('registrar'), [
      'protocol',
      'ddsBaseUrl',
      'nodeUrl',
      'nodeVersion',
      'regSecret',
      'secp256k1Privhex',
      'capabilities',
      'registerIntervalSecs',
      'maxRetry',
      'backoff',
      'retryAfterMaxSecs',
      'requestTimeoutSecs',
      'dataDir',
      'lockStaleSecs',
      'callbackPolicy',
      'callbackWindowSecs',
      'ddsTrustedSources',
      'trustProxy',
      'accessSession',
      'tokenSafetyRatio',
      'tokenReauthJitterMs',
      'tokenReauthMaxRetries',
      'accessTokenFile',
    ]);
  });

  it('has per-command defaults: dev runs at a 6 s interval and says so in --help', () => {
    assert.equal(readRun().values.registerIntervalSecs, 120);
    assert.equal(read('dev', []).values.registerIntervalSecs, 6);
    assert.equal(read('dev', []).values.simProbeIntervalSecs, 2);
    assert.equal(read('dds-sim', []).values.simProbeIntervalSecs, 3);
    assert.equal(read('dds-sim', []).values.logFormat, 'text');
    assert.equal(readRun().values.logFormat, 'json');
    const help = addSettings(new Command('dev'), 'dev').helpInformation().replace(/\s+/g, ' ');
    assert.match(help, /--register-interval-secs <secs> interval and health-check TTL; 0 is raised to 1 with a warning \(default: 6 s\)/);
    assert.doesNotMatch(help, /120/);
  });

  it('derives the callback window from the interval', () => {
    assert.equal(resolveConfig({ ...CONFIG, registerIntervalSecs: 7 }).settings.machine.callbackWindowMs, 7000);
    assert.equal(readRun(['--register-interval-secs', '9']).values.callbackWindowSecs, 9);
  });
});

describe('one validator, one error', () => {
  it('names the config key to library users and the variable to command users, with the same reason', () => {
    const library = configError(() => resolveConfig({ ...CONFIG, registerIntervalSecs: 100_000 }));
    const cli = configError(() => readRun(['--register-interval-secs', '100000']));
    assert.equal(library.message, 'registerIntervalSecs: must be at most 86400 (got "100000")');
    assert.equal(library.setting, 'registerIntervalSecs');
    assert.equal(library.env, 'REGISTER_INTERVAL_SECS');
    assert.equal(settingLine(cli), 'REGISTER_INTERVAL_SECS: must be at most 86400 (got "100000")');
    assert.equal(cli.reason, library.reason);
  });

  it('clamps what the crate clamps, with a warning naming both', () => {
    const library = resolveConfig({ ...CONFIG, registerIntervalSecs: 0, lockStaleSecs: 2, requestTimeoutSecs: 4 });
    assert.equal(library.settings.machine.intervalMs, 1000);
    assert.equal(library.settings.lockStaleMs, 5000);
    assert.deepEqual(
      library.warnings.map((w) => [w.event, w.setting, w.env]),
      [
        ['config.adjusted', 'registerIntervalSecs', 'REGISTER_INTERVAL_SECS'],
        ['config.adjusted', 'lockStaleSecs', 'LOCK_STALE_SECS'],
      ],
    );
    const cli = readRun(['--register-interval-secs', '0']);
    assert.equal(cli.values.registerIntervalSecs, 1);
    assert.deepEqual(cli.warnings.filter((w) => w.event === 'config.adjusted').map(settingLine), [
      'REGISTER_INTERVAL_SECS: 0 raised to 1 (the least interval)',
    ]);
    // Validated values validate again without a warning: the command warns once.
    const again: SettingWarning[] = [];
    validateSettings(keysOfGroups('registrar'), cli.values, { warnings: again });
    assert.deepEqual(again, []);
  });

  it('warns of a registration secret shorter than 8 characters, without its value (secret.short)', () => {
    const { warnings } = resolveConfig({ ...CONFIG, regSecret: 's3cr3t' });
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.event, 'secret.short');
    assert.equal(warnings[0]?.env, 'REG_SECRET');
    assert.ok(!JSON.stringify(warnings).includes('s3cr3t'));
    assert.deepEqual(resolveConfig(CONFIG).warnings, []);
  });

  it('counts a short secret as redaction does: characters (code points) once trimmed', () => {
    // Eight UTF-16 units or more, but fewer than eight characters once trimmed: redacted only as a whole token.
    for (const regSecret of ['\u{10000}\u{10000}\u{10000}\u{10000}', ' 7 chars', 'six   \t\n']) {
      assert.deepEqual(resolveConfig({ ...CONFIG, regSecret }).warnings.map((w) => w.event), ['secret.short'], JSON.stringify(regSecret));
    }
    assert.deepEqual(resolveConfig({ ...CONFIG, regSecret: ' 8 chars!' }).warnings, []);
  });

  it('reports a missing required setting by name', () => {
    assert.equal(
      configError(() => resolveConfig({ ...CONFIG, nodeUrl: undefined })).message,
      'nodeUrl: missing (an http(s) URL; required under protocol `legacy`)',
    );
    // Under `siwe` the node has no URL DDS needs, but capabilities it does.
    assert.equal(resolveConfig({ ...CONFIG, nodeUrl: undefined, protocol: 'siwe', capabilities: ['/cap/v1'] }).settings.nodeUrl, undefined);
    assert.match(configError(() => resolveConfig({ ...CONFIG, protocol: 'siwe', capabilities: [] })).message, /^capabilities: empty: under protocol siwe/);
    const cli = configError(() => read('run', ['--node-url', 'http://x', '--secp256k1-privhex', PRIVHEX]));
    assert.equal(settingLine(cli), 'REG_SECRET: missing (the registration secret)');
  });
});

describe('hostile values are refused, naming the setting', () => {
  const cases: Array<[flag: string, text: string, env: string, reason: RegExp]> = [
    ['--dds-base-url', 'https://dds.example/?x=1', 'DDS_BASE_URL', /query .* fragment/],
    ['--dds-base-url', 'https://dds.example/#top', 'DDS_BASE_URL', /query .* fragment/],
    ['--node-url', 'http://node.example/?', 'NODE_URL', /query .* fragment/],
    ['--node-url', 'ftp://node.example', 'NODE_URL', /http or https/],
    ['--dds-base-url', 'dds.example', 'DDS_BASE_URL', /not a valid URL/],
    ['--register-max-retry', '99999999999999999999', 'REGISTER_MAX_RETRY', /at most 2147483647/],
    ['--register-max-retry', '2147483648', 'REGISTER_MAX_RETRY', /at most 2147483647/],
    ['--register-max-retry', '-2', 'REGISTER_MAX_RETRY', /at least -1/],
    ['--register-max-retry', '1.5', 'REGISTER_MAX_RETRY', /whole number/],
    ['--register-interval-secs', '0x10', 'REGISTER_INTERVAL_SECS', /expected a number/],
    ['--register-interval-secs', '1e3', 'REGISTER_INTERVAL_SECS', /expected a number/],
    ['--register-interval-secs', 'Infinity', 'REGISTER_INTERVAL_SECS', /expected a number/],
    ['--register-interval-secs', '-1', 'REGISTER_INTERVAL_SECS', /at least 0/],
    ['--request-timeout-secs', '0', 'REQUEST_TIMEOUT_SECS', /at least 0.001/],
    ['--callback-window-secs', '86401', 'CALLBACK_WINDOW_SECS', /at most 86400/],
    ['--port', '65536', 'PORT', /at most 65535/],
    ['--port', '80.5', 'PORT', /whole number/],
    ['--inspect-port', '-1', 'INSPECT_PORT', /whole number|at least 0/],
    ['--host', 'not a host', 'HOST', /IP address or a host name/],
    ['--host', 'a_b.example', 'HOST', /IP address or a host name/],
    ['--host', '[::1]', 'HOST', /IP address or a host name/],
    ['--host', `${'a'.repeat(64)}.example`, 'HOST', /IP address or a host name/],
    ['--callback-policy', 'sometimes', 'CALLBACK_POLICY', /one of window, always/],
    ['--register-backoff', 'exponential', 'REGISTER_BACKOFF', /one of crate/],
    ['--log-level', 'trace', 'LOG_LEVEL', /one of debug/],
    ['--inspect', 'maybe', 'INSPECT', /true or false/],
    ['--secp256k1-privhex', 'zz', 'SECP256K1_PRIVHEX', /not hex/],
    ['--dds-trusted-sources', '10.0.0.0/33', 'DDS_TRUSTED_SOURCES', /prefix length must be 0…32/],
    ['--dds-trusted-sources', '10.0.0.1,dds.example', 'DDS_TRUSTED_SOURCES', /not an address or CIDR range: "dds.example"/],
    ['--dds-trusted-sources', 'loopback', 'DDS_TRUSTED_SOURCES', /not an address or CIDR range/],
    ['--dds-trusted-sources', '::1/129', 'DDS_TRUSTED_SOURCES', /prefix length must be 0…128/],
    ['--trust-proxy', 'loopback,10.0.0.0/99', 'TRUST_PROXY', /prefix length/],
    ['--trust-proxy', '65', 'TRUST_PROXY', /0…64/],
  ];
  for (const [flag, text, env, reason] of cases) {
    it(`${flag} ${JSON.stringify(text.slice(0, 30))} → ${env}`, () => {
      const error = configError(() => readRun([flag, text]));
      assert.equal(error.env, env);
      assert.match(error.reason, reason);
      assert.ok(!settingLine(error).includes('\n'));
    });
  }

  it('reads the trusted sources and TRUST_PROXY (true, hops, addresses and names)', () => {
    assert.deepEqual(resolveConfig({ ...CONFIG, ddsTrustedSources: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] }).settings.trustedSources, ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7']);
    assert.deepEqual(resolveConfig(CONFIG).settings.trustedSources, [], 'off by default');
    assert.equal(resolveConfig(CONFIG).settings.trustProxy, false, 'off by default');
    for (const [text, value] of [['true', true], ['off', false], ['2', 2], ['loopback, 10.0.0.0/8', ['loopback', '10.0.0.0/8']]] as const) {
      const { values } = readRun(['--trust-proxy', text]);
      assert.deepEqual(values.trustProxy, value, text);
    }
  });

  it('accepts well-formed hosts and the edges of each range', () => {
    const v = readRun(['--host', '::1', '--port', '65535', '--register-max-retry', '2147483647', '--inspect', 'off']).values;
    assert.deepEqual([v.host, v.port, v.maxRetry, v.inspect], ['::1', 65535, 2147483647, false]);
    assert.equal(readRun(['--host', 'node-1.example.com.']).values.host, 'node-1.example.com.');
    assert.equal(readRun(['--inspect']).values.inspect, true);
  });

  it('refuses the simulator settings of dds-sim and dev by their variables', () => {
    assert.equal(configError(() => read('dds-sim', ['--fail-status', '200'])).env, 'DDS_SIM_FAIL_STATUS');
    assert.equal(configError(() => read('dev', ['--failure-rate', '2'])).env, 'DDS_SIM_FAILURE_RATE');
    assert.equal(configError(() => read('dds-sim', ['--port', 'eighty'])).env, 'DDS_SIM_PORT');
  });
});

describe('nothing secret is echoed', () => {
  it('neither the password of a URL (parsable or not) nor anything of a refused URL', () => {
    const password = 'pw-9c1e77a0';
    for (const url of [`https://user:${password}@dds.example`, `http://user:${password}@[dds`, `http://user:${password}@dds/?q`]) {
      for (const error of [configError(() => readRun(['--dds-base-url', url])), configError(() => resolveConfig({ ...CONFIG, ddsBaseUrl: url }))]) {
        assert.ok(!error.message.includes(password) && !error.message.includes('@dds'), error.message);
      }
    }
  });

  it('nor a secret, whatever is wrong with it', () => {
    const key = `${PRIVHEX.slice(0, 60)}zz`;
    const error = configError(() => readRun(['--secp256k1-privhex', key]));
    assert.ok(!error.message.includes(key) && !error.message.includes(PRIVHEX.slice(0, 16)));
    const nul = configError(() => resolveConfig({ ...CONFIG, regSecret: `${REG_SECRET}\0` }));
    assert.ok(!nul.message.includes(REG_SECRET));
    const wrongType = configError(() => resolveConfig({ ...CONFIG, regSecret: 12345678 as never }));
    assert.ok(!wrongType.message.includes('12345678'), wrongType.message);
  });

  it('warns when a secret comes as a flag (visible in /proc/<pid>/cmdline)', () => {
    const { warnings } = readRun();
    assert.deepEqual(warnings.map((w) => [w.event, w.env]), [
      ['secret.flag', 'REG_SECRET'],
      ['secret.flag', 'SECP256K1_PRIVHEX'],
    ]);
    assert.ok(!JSON.stringify(warnings).includes(REG_SECRET));
  });
});

describe('secrets from files and systemd credentials', () => {
  const nodeUrl = ['--node-url', 'http://127.0.0.1:8080', '--node-version', '1.0.0'];

  function secretFile(t: TestContext, name: string, content: string, mode = 0o600): string {
    const file = join(tempDir(t), name);
    writeFileSync(file, content);
    chmodSync(file, mode);
    return file;
  }

  it('reads <ENV>_FILE, trimming the trailing newline, and warns only when group or others may read it', (t) => {
    const secretPath = secretFile(t, 'reg_secret', `${REG_SECRET}\n`);
    const keyPath = secretFile(t, 'privhex', `${PRIVHEX}\r\n`, 0o644);
    const { values, warnings } = read('run', [...nodeUrl, '--reg-secret-file', secretPath, '--secp256k1-privhex-file', keyPath]);
    assert.equal(values.regSecret, REG_SECRET);
    assert.equal(values.secp256k1Privhex, PRIVHEX);
    assert.deepEqual(warnings.map((w) => [w.event, w.env]), [['secret.file.permissions', 'SECP256K1_PRIVHEX_FILE']]);
    assert.match(settingLine(warnings[0] as SettingWarning), /readable by group or others \(mode 0644\)/);
    assert.ok(!JSON.stringify(warnings).includes(PRIVHEX));
  });

  it('refuses a value and its file both set, naming both; an unreadable or empty file, naming the file variable', (t) => {
    const path = secretFile(t, 'reg_secret', REG_SECRET);
    const both = configError(() => read('run', [...REQUIRED_FLAGS, '--reg-secret-file', path]));
    assert.equal(settingLine(both), 'REG_SECRET: set both REG_SECRET and REG_SECRET_FILE: use one');
    const missing = configError(() => read('run', [...nodeUrl, '--secp256k1-privhex', PRIVHEX, '--reg-secret-file', join(path, 'nope')]));
    assert.equal(missing.env, 'REG_SECRET_FILE');
    assert.match(missing.reason, /cannot read .* \(ENOTDIR\)/);
    const empty = configError(() => read('run', [...nodeUrl, '--secp256k1-privhex', PRIVHEX, '--reg-secret-file', secretFile(t, 'empty', '\n')]));
    assert.match(settingLine(empty), /^REG_SECRET_FILE: .* is empty$/);
    const badKey = configError(() => read('run', [...nodeUrl, '--reg-secret', REG_SECRET, '--secp256k1-privhex-file', secretFile(t, 'k', 'zz')]));
    assert.equal(badKey.env, 'SECP256K1_PRIVHEX_FILE');
    assert.ok(!badKey.message.includes('zz"'));
  });

  it('reads systemd credentials when neither the value nor its file is given', (t) => {
    const dir = join(tempDir(t), 'credentials');
    mkdirSync(dir);
    writeFileSync(join(dir, 'reg_secret'), `${REG_SECRET}-cred\n`, { mode: 0o400 });
    writeFileSync(join(dir, 'secp256k1_privhex'), PRIVHEX, { mode: 0o400 });
    const env = { CREDENTIALS_DIRECTORY: dir };
    const fromCredentials = read('run', nodeUrl, env);
    assert.equal(fromCredentials.values.regSecret, `${REG_SECRET}-cred`);
    assert.equal(fromCredentials.values.secp256k1Privhex, PRIVHEX);
    assert.deepEqual(fromCredentials.warnings, []);
    // The flag (or the variable) wins over the credential; so does a _FILE.
    assert.equal(read('run', [...nodeUrl, '--reg-secret', REG_SECRET], env).values.regSecret, REG_SECRET);
    const file = secretFile(t, 'file', `${REG_SECRET}-file`);
    assert.equal(read('run', [...nodeUrl, '--reg-secret-file', file], env).values.regSecret, `${REG_SECRET}-file`);
    // A directory without this credential is no error: the unit may load others only.
    assert.equal(configError(() => read('run', nodeUrl, { CREDENTIALS_DIRECTORY: tempDir(t) })).env, 'REG_SECRET');
  });

  it('takes the flag over the environment variable', (t) => {
    const saved = process.env['REGISTER_INTERVAL_SECS'];
    process.env['REGISTER_INTERVAL_SECS'] = '30';
    t.after(() => {
      if (saved === undefined) delete process.env['REGISTER_INTERVAL_SECS'];
      else process.env['REGISTER_INTERVAL_SECS'] = saved;
    });
    assert.equal(readRun().values.registerIntervalSecs, 30);
    assert.equal(readRun(['--register-interval-secs', '40']).values.registerIntervalSecs, 40);
  });
});

describe('the node version (PROTOCOL.md §4)', () => {
  it('is sent as given by the library, normalised by the command with a warning for anything else', () => {
    assert.equal(resolveConfig({ ...CONFIG, nodeVersion: 'not semver' }).settings.nodeVersion, 'not semver');
    const args = REQUIRED_FLAGS.slice(0, 2).concat(REQUIRED_FLAGS.slice(4));
    assert.equal(read('run', [...args, '--node-version', 'v2.1.0']).values.nodeVersion, '2.1.0');
    const fallback = read('run', [...args, '--node-version', 'banana']);
    assert.notEqual(fallback.values.nodeVersion, 'banana');
    assert.ok(fallback.warnings.some((w) => w.event === 'config.node_version' && w.env === 'NODE_VERSION'));
    const unset = read('run', args);
    assert.ok(unset.warnings.some((w) => w.event === 'config.node_version' && /not set/.test(w.reason)));
  });

  it("the fallback's warning says what DDS is sent instead and how to send the node's own version", () => {
    const args = REQUIRED_FLAGS.slice(0, 2).concat(REQUIRED_FLAGS.slice(4));
    for (const given of [[], ['--node-version', 'banana']]) {
      const { values, warnings } = read('run', [...args, ...given]);
      const w = warnings.find((x) => x.event === 'config.node_version');
      assert.ok(w !== undefined, given.join(' '));
      assert.equal(values.nodeVersion, PACKAGE_VERSION);
      assert.ok(w.reason.includes(`sending ${PACKAGE_VERSION} instead — the version of posemesh-node-registration itself, not your node's`), w.reason);
      assert.ok(w.reason.endsWith("set NODE_VERSION (or --node-version) to your node's version"), w.reason);
    }
  });

  it('exposes the value defaults as DEFAULTS', async () => {
    const { DEFAULTS } = await import('../../src/config.js');
    assert.equal(DEFAULTS.registerIntervalSecs, 120);
    assert.equal(DEFAULTS.ddsBaseUrl, 'https://dds.auki.network');
    assert.ok(!('callbackWindowSecs' in DEFAULTS));
  });
});
