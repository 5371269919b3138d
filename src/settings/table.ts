/**
 * settings/table — every setting of the library and the command, once: its
 * config key (the table's key, what `createRegistrar` takes), environment
 * variable, kind (parser and validator), default, unit, one line of help,
 * whether it is secret, and which commands take it. The CLI's options and
 * `--help`, `resolveConfig`, the daemon and the configuration tables of
 * docs/operating.md and docs/embedding.md (scripts/gen-settings.ts) all come
 * from here; no other file under src/ names an environment variable.
 */
import { MAX_DELAY_MS, MIN_INTERVAL_MS, type CallbackPolicy, type RegistrationProtocol } from '../../machines/registrar.js';
import { BACKOFF_POLICY_NAMES, DEFAULT_BACKOFF_POLICY } from '../backoff.js';
import { DEFAULT_MAX_CONNECTIONS } from '../bounded-server.js';
import { loadSecp256k1Privhex } from '../crypto.js';
import type { LogFormat, LogLevel } from '../log.js';
import { DEFAULT_FORGET_AFTER_FAILED_PROBES } from '../sim/defaults.js';
import { MIN_REDACTED_FRAGMENT } from '../redact.js';
import { cidrProblem, type TrustProxy } from '../trusted-sources.js';
import { normalizeNodeVersion, PACKAGE_NAME, PACKAGE_VERSION } from '../version.js';
import { boolean, host, httpUrl, InvalidValue, list, MAX_INTEGER, number, oneOf, parsedBy, port, text, type Kind } from './kinds.js';

/** The commands that take settings. */
export type CommandName = 'run' | 'dev' | 'status' | 'dds-sim';

/** What a setting configures: the registrar (`RegistrarConfig`), the daemon's servers, its log, the DDS simulator. */
export type SettingGroup = 'registrar' | 'server' | 'logging' | 'simulator';

/** What `resolve` of a {@link DerivedDefault} sees. */
export interface DefaultContext {
  /** The settings validated so far (those above in the table). */
  readonly values: Readonly<Record<string, unknown>>;
  warn(reason: string, event?: string): void;
}

/** A default computed when the setting is resolved (e.g. one interval). */
export interface DerivedDefault {
  readonly derived: true;
  /** How `--help` and the docs describe it. */
  readonly text: string;
  resolve(context: DefaultContext): unknown;
}

/** A condition on the settings validated so far, and how `--help` and the docs say it. */
export interface RequiredWhen {
  /** E.g. `required under protocol legacy`. */
  readonly text: string;
  test(values: Readonly<Record<string, unknown>>): boolean;
}

/** One setting. */
export interface SettingSpec<T = unknown> {
  /** The environment variable; the flag is derived from it ({@link flagOf}) unless {@link flag} names it. */
  readonly env: string;
  /** The flag, when not the one derived from {@link env} (`REGISTRATION_PROTOCOL` → `--protocol`). */
  readonly flag?: string;
  readonly group: SettingGroup;
  readonly kind: Kind<T>;
  /** One line of help, for `--help` and the docs. */
  readonly help: string;
  /** More for the docs only. */
  readonly details?: string;
  readonly unit?: 's' | 'ms';
  /** No default: missing is an error. */
  readonly required?: true;
  /** Missing is an error only when the settings above in the table say so (`NODE_URL` under protocol `legacy`). */
  readonly requiredWhen?: RequiredWhen;
  readonly default?: T | DerivedDefault;
  /** Defaults of some commands, over {@link default} (e.g. `dev` runs at a 6 s interval). */
  readonly commandDefaults?: Partial<Record<CommandName, T | DerivedDefault>>;
  readonly commands: readonly CommandName[];
  /** Never echoed, never logged. */
  readonly secret?: true;
  /**
   * Also read from a file: `<ENV>_FILE` (Docker and Kubernetes secrets) or
   * the systemd credential `<env in lower case>` in `$CREDENTIALS_DIRECTORY`.
   */
  readonly fromFile?: true;
}

/** systemd's directory of a unit's credentials (`LoadCredential=`). */
export const CREDENTIALS_DIRECTORY_ENV = 'CREDENTIALS_DIRECTORY';

/**
 * The least lock staleness, ms. proper-lockfile's own floor is 2 s; the
 * holder refreshes the lock every half of the staleness, and 5 s leaves a
 * refresh 2.5 s of room against a stalled event loop or a slow disk.
 */
export const MIN_LOCK_STALE_MS = 5000;

/** A configured secret shorter than this (characters, once trimmed) is accepted with a warning: too short to redact from logs reliably. */
export const SHORT_SECRET_CHARS = MIN_REDACTED_FRAGMENT;

/** The two generations of the wire (PROTOCOL.md §1–§3 and §6). */
export const REGISTRATION_PROTOCOLS = ['legacy', 'siwe'] as const satisfies readonly RegistrationProtocol[];

const underLegacy: RequiredWhen = {
  text: 'required under protocol `legacy`',
  test: (values) => values['protocol'] !== 'siwe',
};

/** The callback admission policies (see `CallbackPolicy`). */
export const CALLBACK_POLICIES = ['window', 'always'] as const satisfies readonly CallbackPolicy[];
const LOG_FORMATS = ['json', 'text'] as const satisfies readonly LogFormat[];
const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const satisfies readonly LogLevel[];

/** Every wait is capped at 24 h (the machine's `MAX_DELAY_MS`), and so is every duration setting. */
const MAX_SECS = MAX_DELAY_MS / 1000;

const seconds = (min: number, more: Omit<Parameters<typeof number>[0], 'min' | 'max'> = {}): Kind<number> =>
  number({ min, max: MAX_SECS, arg: 'secs', ...more });

/** The node key: the command line checks it at once (exit 2); a library user's invalid key ends the actor in `failed`. */
const privateKey = parsedBy(text('the node key, 64 hex digits', 'hex'), (t) => {
  try {
    loadSecp256k1Privhex(t);
  } catch (error) {
    // The message describes the problem (length, not hex, out of range), never the key.
    throw new InvalidValue(error instanceof Error ? error.message : 'invalid key');
  }
  return t;
});

const NODE_VERSION_ENV = 'NODE_VERSION';

/** The command's fallback warning, saying what DDS is sent instead and how to send the node's own version. */
function versionFallback(warning: string): string {
  return `${warning} — the version of ${PACKAGE_NAME} itself, not your node's: set ${NODE_VERSION_ENV} (or ${flagOf(NODE_VERSION_ENV)}) to your node's version`;
}

/** PROTOCOL.md §4: the command normalises the version as the compute node does; the library sends it as given. */
const nodeVersion = parsedBy(text('a version string', 'semver'), (t, warn) => {
  const { version, warning } = normalizeNodeVersion(t, PACKAGE_VERSION);
  if (warning !== null) warn(versionFallback(warning), 'config.node_version');
  return version;
});

const packageVersion: DerivedDefault = {
  derived: true,
  text: 'the package version',
  resolve: ({ warn }) => {
    const { version, warning } = normalizeNodeVersion(undefined, PACKAGE_VERSION);
    if (warning !== null) warn(versionFallback(warning), 'config.node_version');
    return version;
  },
};

/** A list of addresses and CIDR ranges (with `names`, also express's `loopback`, `linklocal`, `uniquelocal`). */
function addressList(names: boolean): Kind<readonly string[]> {
  const base = list(names ? 'addresses, CIDR ranges or loopback/linklocal/uniquelocal, comma-separated' : 'addresses or CIDR ranges, comma-separated', 'cidrs');
  return {
    ...base,
    check(value, warn) {
      const items = base.check(value, warn);
      for (const item of items) {
        const problem = cidrProblem(item, { names });
        if (problem !== null) throw new InvalidValue(`${problem}: ${JSON.stringify(item)}`);
      }
      return items;
    },
  };
}

/** express's `trust proxy`: `true`/`false`, a number of hops, or the proxies' addresses. */
const trustProxyKind: Kind<TrustProxy> = {
  arg: 'proxies',
  expected: 'true, false, a number of hops, or the proxies\' addresses/CIDR ranges',
  parse(t, warn) {
    const lower = t.toLowerCase();
    if (['true', 'yes', 'on'].includes(lower)) return true;
    if (['false', 'no', 'off'].includes(lower)) return false;
    if (/^\d+$/.test(t)) return Number(t);
    return addressList(true).parse(t, warn);
  },
  check(value, warn) {
    if (typeof value === 'boolean') return value;
    if (typeof value === 'number') {
      if (!Number.isInteger(value) || value < 0 || value > 64) throw new InvalidValue('a number of hops must be 0…64', String(value));
      return value;
    }
    return addressList(true).check(value, warn);
  },
  show: (value) => (typeof value === 'boolean' || typeof value === 'number' ? String(value) : value.join(',')),
};

/** The callback window's default, s: short (a stranger's chances grow with it), never past the interval's TTL. */
export const DEFAULT_CALLBACK_WINDOW_SECS = 10;
const callbackWindowDefault: DerivedDefault = {
  derived: true,
  text: `${DEFAULT_CALLBACK_WINDOW_SECS} s, or one interval when shorter`,
  resolve: ({ values }) => Math.min(DEFAULT_CALLBACK_WINDOW_SECS, Number(values['registerIntervalSecs'])),
};

/**
 * The lock's staleness must exceed the request timeout: a holder's request
 * has then timed out on its own clock before anyone may take the lock over
 * (docs/reliability.md). By default it is the timeout plus this much, and
 * at least {@link DEFAULT_LOCK_STALE_SECS}.
 */
export const LOCK_STALE_MARGIN_SECS = 5;
/** The least default lock staleness, s. */
export const DEFAULT_LOCK_STALE_SECS = 10;

const staleAfterTimeout: DerivedDefault = {
  derived: true,
  text: `the request timeout + ${LOCK_STALE_MARGIN_SECS} s, at least ${DEFAULT_LOCK_STALE_SECS} s`,
  resolve: ({ values }) => {
    const timeout = values['requestTimeoutSecs'];
    return Math.max(DEFAULT_LOCK_STALE_SECS, (typeof timeout === 'number' ? timeout : 0) + LOCK_STALE_MARGIN_SECS);
  },
};

/** The least default cap on `Retry-After`, s: a DDS may ask for some minutes, never silence the node for a day. */
export const DEFAULT_RETRY_AFTER_MAX_SECS = 600;

const retryAfterMaxDefault: DerivedDefault = {
  derived: true,
  text: `one interval, at least ${DEFAULT_RETRY_AFTER_MAX_SECS} s`,
  resolve: ({ values }) => Math.max(DEFAULT_RETRY_AFTER_MAX_SECS, Number(values['registerIntervalSecs'])),
};


/** The table. Its order is the docs' and `--help`'s, and the order of resolution (derived defaults look up). */
/** A setting of the simulator: group `simulator`, offered by `dds-sim` and `dev` unless it names its commands. */
function simulator<const S extends Omit<SettingSpec, 'group' | 'commands'> & { readonly commands?: readonly CommandName[] }>(
  spec: S,
): Omit<S, 'commands'> & { readonly group: 'simulator'; readonly commands: S extends { readonly commands: infer C } ? C : readonly ['dds-sim', 'dev'] } {
  return { commands: ['dds-sim', 'dev'], ...spec, group: 'simulator' } as never;
}

export const SETTINGS = {
  protocol: {
    env: 'REGISTRATION_PROTOCOL',
    flag: '--protocol',
    group: 'registrar',
    kind: oneOf(REGISTRATION_PROTOCOLS, 'protocol'),
    help: 'how the node registers: legacy (its URL, signed; crate 0.1.2) or siwe (its wallet, Sign-In with Ethereum; crate 0.2)',
    details:
      '`legacy`: DDS calls the node back and probes `/health`; the registration lasts while it is probed. `siwe`: no `NODE_URL` and no inbound routes needed; once registered the registrar parks until re-armed (the access session\'s 403/404, or `REARM`). See [protocol.md](protocol.md).',
    default: 'legacy',
    commands: ['run', 'dev'],
  },
  ddsBaseUrl: {
    env: 'DDS_BASE_URL',
    group: 'registrar',
    kind: httpUrl,
    help: 'DDS base URL',
    default: 'https://dds.auki.network',
    commands: ['run'],
  },
  nodeUrl: {
    env: 'NODE_URL',
    group: 'registrar',
    kind: httpUrl,
    help: "this node's public URL, sent to DDS exactly as given",
    requiredWhen: underLegacy,
    commands: ['run'],
  },
  nodeVersion: {
    env: NODE_VERSION_ENV,
    group: 'registrar',
    kind: nodeVersion,
    help: "your node's version, sent to DDS",
    details:
      `The library sends it as given; the command sends a valid semver as is and drops a leading \`v\`. Unset or not a semver, the command sends this package's own version instead (${PACKAGE_NAME}'s, not your node's) and warns (\`config.node_version\`): set it.`,
    required: true,
    commandDefaults: { run: packageVersion },
    commands: ['run'],
  },
  regSecret: {
    env: 'REG_SECRET',
    group: 'registrar',
    kind: text('the registration secret', 'secret'),
    help: 'registration credentials',
    details: `Shorter than ${SHORT_SECRET_CHARS} characters: accepted with a warning (\`secret.short\`).`,
    required: true,
    secret: true,
    fromFile: true,
    commands: ['run'],
  },
  secp256k1Privhex: {
    env: 'SECP256K1_PRIVHEX',
    group: 'registrar',
    kind: privateKey,
    help: 'node private key, 64 hex digits (0x and surrounding blanks allowed)',
    details: 'The command refuses an invalid key at once (exit 2); a library registrar with one ends in `failed`.',
    required: true,
    secret: true,
    fromFile: true,
    commands: ['run'],
  },
  capabilities: {
    env: 'CAPABILITIES',
    group: 'registrar',
    kind: list('a list of capability paths', 'paths'),
    help: 'capability paths, comma-separated on the command line',
    details: 'Under protocol `siwe` at least one is required (refused at start, exit 2): DDS refuses a wallet registration without them.',
    default: [] as readonly string[],
    commands: ['run'],
  },
  registerIntervalSecs: {
    env: 'REGISTER_INTERVAL_SECS',
    group: 'registrar',
    kind: seconds(0, { raiseTo: MIN_INTERVAL_MS / 1000, raiseWhy: 'the least interval' }),
    help: 'interval and health-check TTL; 0 is raised to 1 with a warning',
    unit: 's',
    default: 120,
    commandDefaults: { dev: 6 },
    commands: ['run', 'dev', 'status'],
  },
  maxRetry: {
    env: 'REGISTER_MAX_RETRY',
    group: 'registrar',
    kind: number({ min: -1, max: MAX_INTEGER, integer: true }),
    help: 'retryable failures before a one-interval cooldown; -1 = unlimited',
    default: -1,
    commands: ['run', 'dev'],
  },
  backoff: {
    env: 'REGISTER_BACKOFF',
    group: 'registrar',
    kind: oneOf(BACKOFF_POLICY_NAMES, 'policy'),
    help: `retry policy after a retryable failure: ${BACKOFF_POLICY_NAMES.join(', ')}`,
    details:
      '`crate`: min(2^attempt, 60) s × [0.8, 1.2]; `full-jitter`: U[0, min(60 s, 2^attempt s)]; `decorrelated-jitter`: min(60 s, U[1 s, 3 × the previous delay]); a longer `Retry-After` always wins. The jitter policies spread a fleet\'s retries after a DDS outage (see [benchmarks.md](benchmarks.md), fleet and herd).',
    default: DEFAULT_BACKOFF_POLICY,
    commands: ['run'],
  },
  retryAfterMaxSecs: {
    env: 'RETRY_AFTER_MAX_SECS',
    group: 'registrar',
    kind: seconds(1),
    help: 'the longest Retry-After honoured (a longer one waits this long)',
    details:
      'A 429 or 503 asking for longer waits only this long (the backoff line says `retry_after_capped_ms`): one answer from DDS, or from anyone in the path, must not silence the node for a day.',
    unit: 's',
    default: retryAfterMaxDefault,
    commands: ['run', 'dev'],
  },
  requestTimeoutSecs: {
    env: 'REQUEST_TIMEOUT_SECS',
    group: 'registrar',
    kind: seconds(0.001),
    help: 'DDS request timeout',
    unit: 's',
    default: 10,
    commands: ['run'],
  },
  dataDir: {
    env: 'DATA_DIR',
    group: 'registrar',
    kind: text('a directory path', 'dir'),
    help: 'directory of the state file (registration_state.json) and the lock (registration.lock)',
    default: 'data',
    commands: ['run', 'status'],
  },
  lockStaleSecs: {
    env: 'LOCK_STALE_SECS',
    group: 'registrar',
    kind: seconds(0, { raiseTo: MIN_LOCK_STALE_MS / 1000, raiseWhy: 'the least staleness' }),
    help: `lock staleness; the holder refreshes the lock every half of it; below ${MIN_LOCK_STALE_MS / 1000} raised with a warning`,
    details:
      'Must exceed the request timeout (`REQUEST_TIMEOUT_SECS`): a holder\'s request has then timed out on its own clock before another registrar may take the lock over; a staleness at or below the timeout is refused (exit 2).',
    unit: 's',
    default: staleAfterTimeout,
    commands: ['run'],
  },
  callbackPolicy: {
    env: 'CALLBACK_POLICY',
    group: 'registrar',
    kind: oneOf(CALLBACK_POLICIES, 'policy'),
    help: 'callback admission: window (only around a registration) or always (the crate)',
    details:
      '`window`: callbacks are accepted only while a registration is in flight and for a window after a successful one; `always`: the crate\'s behaviour.',
    default: 'window',
    commands: ['run', 'dev'],
  },
  callbackWindowSecs: {
    env: 'CALLBACK_WINDOW_SECS',
    group: 'registrar',
    kind: seconds(0),
    help: 'how long after a successful registration a callback is accepted (the first one accepted closes the window)',
    details:
      'The window also closes at the first callback accepted during the request or in it: a later one is answered 409 `secret already received`, except a byte-identical repeat (DDS retrying). Short by default: whoever calls back first inside it is taken for DDS.',
    unit: 's',
    default: callbackWindowDefault,
    commands: ['run'],
  },
  ddsTrustedSources: {
    env: 'DDS_TRUSTED_SOURCES',
    group: 'registrar',
    kind: addressList(false),
    help: 'who counts as DDS for the callback routes: addresses or CIDR ranges (default: anyone)',
    details:
      'A callback from elsewhere gets 403 `not a trusted source`; a probe from elsewhere gets 200 and records nothing. Off (the crate\'s behaviour), anyone who reaches the routes can hand the node a secret inside the callback window, and keep the node "registered" with `User-Agent: DDS v…` after DDS stopped probing it.',
    default: [] as readonly string[],
    commands: ['run', 'dev'],
  },
  trustProxy: {
    env: 'TRUST_PROXY',
    group: 'registrar',
    kind: trustProxyKind,
    help: "whether X-Forwarded-For names the client (express's trust proxy: true, a number of hops, or the proxies' addresses)",
    details:
      'Off by default: the socket\'s peer is the client. Turn it on only behind a proxy that overwrites `X-Forwarded-For`: otherwise anyone can claim a trusted address.',
    default: false as TrustProxy,
    commands: ['run', 'dev'],
  },
  accessSession: {
    env: 'ACCESS_SESSION',
    group: 'registrar',
    kind: boolean,
    help: 'under protocol siwe, keep a SIWE access token for other posemesh services (sign in, refresh)',
    details: 'Ignored under `legacy`. Off, the registrar registers and parks; `accessToken()` rejects.',
    default: true,
    commands: ['run', 'dev'],
  },
  tokenSafetyRatio: {
    env: 'TOKEN_SAFETY_RATIO',
    group: 'registrar',
    kind: number({ min: 0.05, max: 1, arg: 'ratio' }),
    help: 'refresh the access token at this fraction of its lifetime',
    default: 0.75,
    commands: ['run', 'dev'],
  },
  tokenReauthJitterMs: {
    env: 'TOKEN_REAUTH_JITTER_MS',
    group: 'registrar',
    kind: number({ min: 0, max: 600_000, integer: true, arg: 'ms' }),
    help: 'spread of the refresh time (±) and the most a failed sign-in waits before its retry',
    unit: 'ms',
    default: 500,
    commands: ['run', 'dev'],
  },
  tokenReauthMaxRetries: {
    env: 'TOKEN_REAUTH_MAX_RETRIES',
    group: 'registrar',
    kind: number({ min: 0, max: 1000, integer: true }),
    help: 'retries of a failed sign-in before the session waits one interval (keeping a token that has not expired)',
    default: 3,
    commands: ['run', 'dev'],
  },
  accessTokenFile: {
    env: 'ACCESS_TOKEN_FILE',
    group: 'registrar',
    kind: text('a file path', 'path'),
    help: 'write the access token here (mode 0600, atomically) at every sign-in and refresh; removed on stop and at expiry',
    details:
      'For a node in another process or language (the sidecar pattern): it reads the file when it needs the token. The file always holds the newest token that has not expired.',
    commands: ['run', 'dev'],
  },
  routes: {
    env: 'DDS_ROUTES',
    group: 'server',
    kind: boolean,
    help: 'serve the DDS routes (the callback and /health) on HOST:PORT',
    details: 'Under `siwe` DDS needs neither: turn them off and the daemon opens no inbound port. Under `legacy` they are required.',
    default: true,
    commands: ['run'],
  },
  host: {
    env: 'HOST',
    group: 'server',
    kind: host,
    help: 'where the DDS callback routes listen',
    default: '0.0.0.0',
    commands: ['run'],
  },
  port: {
    env: 'PORT',
    group: 'server',
    kind: port,
    help: 'port of the DDS callback routes',
    default: 8080,
    commands: ['run'],
  },
  maxConnections: {
    env: 'MAX_CONNECTIONS',
    group: 'server',
    kind: number({ min: 8, max: 65536, integer: true }),
    help: 'most connections the DDS routes keep open; at the cap the oldest one not in a request makes room',
    details:
      'Lowered to fit the file-descriptor limit (half of `ulimit -n`, less 64). At the cap, a new connection closes the oldest one that is still sending its headers or idle between keep-alive requests, so slow or half-open connections never lock DDS\'s probes out; headers must arrive within 5 s, a whole request within 10 s.',
    default: DEFAULT_MAX_CONNECTIONS,
    commands: ['run'],
  },
  inspect: {
    env: 'INSPECT',
    group: 'server',
    kind: boolean,
    help: 'serve the live view (and the Stately inspector bridge) on 127.0.0.1',
    default: false,
    commands: ['run', 'dev'],
  },
  inspectPort: {
    env: 'INSPECT_PORT',
    group: 'server',
    kind: port,
    help: 'port of the inspector relay',
    default: 8090,
    commands: ['run', 'dev'],
  },
  metrics: {
    env: 'METRICS',
    group: 'server',
    kind: boolean,
    help: 'serve Prometheus metrics (GET /metrics) on their own port',
    details: 'prom-client is loaded only when this is on. See [operating.md](operating.md#metrics).',
    default: false,
    commands: ['run', 'dev'],
  },
  metricsHost: {
    env: 'METRICS_HOST',
    group: 'server',
    kind: host,
    help: 'where the metrics endpoint listens',
    default: '127.0.0.1',
    commands: ['run', 'dev'],
  },
  metricsPort: {
    env: 'METRICS_PORT',
    group: 'server',
    kind: port,
    help: 'port of the metrics endpoint',
    default: 9477,
    commands: ['run', 'dev'],
  },
  logFormat: {
    env: 'LOG_FORMAT',
    group: 'logging',
    kind: oneOf(LOG_FORMATS, 'format'),
    help: 'log lines as json or text',
    default: 'json',
    commandDefaults: { 'dds-sim': 'text' },
    commands: ['run', 'dds-sim'],
  },
  logLevel: {
    env: 'LOG_LEVEL',
    group: 'logging',
    kind: oneOf(LOG_LEVELS, 'level'),
    help: `the least level logged: ${LOG_LEVELS.join(', ')}`,
    default: 'info',
    commands: ['run', 'dds-sim'],
  },
  logBufferKib: {
    env: 'LOG_BUFFER_KIB',
    group: 'logging',
    kind: number({ min: 16, max: 1024 * 1024, integer: true, arg: 'kib' }),
    help: 'KiB of log lines kept for a slow reader of stdout; beyond, lines are dropped and counted (log.dropped)',
    details:
      'The daemon never waits for whoever reads its stdout: what the reader has not taken yet waits in memory up to this size, then lines are dropped; once the reader catches up, one `log.dropped` line gives the count (and the metric `log_lines_dropped_total`). At exit, what is left is flushed for at most 2 s.',
    default: 1024,
    commands: ['run', 'dds-sim'],
  },
  simHost: simulator({
    env: 'DDS_SIM_HOST',
    kind: host,
    help: 'interface the simulator listens on',
    default: '127.0.0.1',
    commands: ['dds-sim'],
  }),
  simPort: simulator({
    env: 'DDS_SIM_PORT',
    kind: port,
    help: 'port the simulator listens on',
    default: 8787,
    commands: ['dds-sim'],
  }),
  simProbeIntervalSecs: simulator({
    env: 'DDS_SIM_PROBE_INTERVAL_SECS',
    kind: seconds(0.05),
    help: "time between the simulator's health probes of a node",
    unit: 's',
    default: 3,
    commandDefaults: { dev: 2 },
  }),
  simForgetAfterFailedProbes: simulator({
    env: 'DDS_SIM_FORGET_AFTER_FAILED_PROBES',
    kind: number({ min: 0, max: MAX_INTEGER, integer: true }),
    help: 'forget a node after this many failed health probes in a row (until it registers again); 0 = never',
    default: DEFAULT_FORGET_AFTER_FAILED_PROBES,
    commands: ['dds-sim'],
  }),
  simExpectedRegSecret: simulator({
    env: 'DDS_SIM_EXPECTED_REG_SECRET',
    kind: text('the registration secret', 'secret'),
    help: 'refuse registrations without these credentials (default: accept any)',
    secret: true,
    commands: ['dds-sim'],
  }),
  failStatus: simulator({
    env: 'DDS_SIM_FAIL_STATUS',
    kind: number({ min: 300, max: 599, integer: true, arg: 'status' }),
    help: 'answer registrations with this HTTP status (e.g. 500, 409, 429)',
  }),
  failCount: simulator({
    env: 'DDS_SIM_FAIL_COUNT',
    kind: number({ min: 0, max: MAX_INTEGER, integer: true }),
    help: 'only fail the first n registrations, then recover (default: all)',
  }),
  failureRate: simulator({
    env: 'DDS_SIM_FAILURE_RATE',
    kind: number({ min: 0, max: 1, arg: '0..1' }),
    help: 'fail this fraction of registrations at random',
  }),
  latencyMs: simulator({
    env: 'DDS_SIM_LATENCY_MS',
    kind: number({ min: 0, max: 600_000, arg: 'ms' }),
    help: 'delay every registration answer',
    unit: 'ms',
  }),
  retryAfterSecs: simulator({
    env: 'DDS_SIM_RETRY_AFTER_SECS',
    kind: number({ min: 0, max: MAX_SECS, integer: true, arg: 'secs' }),
    help: 'Retry-After on 429 and 503 answers',
    unit: 's',
  }),
  pauseProbes: simulator({
    env: 'DDS_SIM_PAUSE_PROBES',
    kind: boolean,
    help: 'send no health probes',
    default: false,
  }),
  simTokenLifetimeSecs: simulator({
    env: 'DDS_SIM_TOKEN_LIFETIME_SECS',
    kind: seconds(1),
    help: 'lifetime of the access tokens the simulator issues at a SIWE sign-in',
    unit: 's',
    default: 3600,
    commandDefaults: { dev: 4 },
  }),
  simNonceLifetimeSecs: simulator({
    env: 'DDS_SIM_NONCE_LIFETIME_SECS',
    kind: seconds(0.05),
    help: 'how long a SIWE nonce can be used (once)',
    unit: 's',
    default: 300,
  }),
  simChainId: simulator({
    env: 'DDS_SIM_CHAIN_ID',
    kind: number({ min: -MAX_INTEGER, max: MAX_INTEGER, integer: true, arg: 'id' }),
    help: 'the chain id of the SIWE nonces',
    default: 8453,
    commands: ['dds-sim'],
  }),
  nonceFailStatus: simulator({
    env: 'DDS_SIM_NONCE_FAIL_STATUS',
    kind: number({ min: 300, max: 599, integer: true, arg: 'status' }),
    help: 'answer SIWE nonce requests with this HTTP status',
  }),
  verifyFailStatus: simulator({
    env: 'DDS_SIM_VERIFY_FAIL_STATUS',
    kind: number({ min: 300, max: 599, integer: true, arg: 'status' }),
    help: 'answer SIWE sign-ins (verify) with this HTTP status',
  }),
  forgetOnVerify: simulator({
    env: 'DDS_SIM_FORGET_ON_VERIFY',
    kind: boolean,
    help: 'forget the node at each SIWE sign-in and answer 403 (DDS no longer knows it)',
    default: false,
  }),
} as const satisfies Record<string, SettingSpec>;

// ---------------------------------------------------------------------------
// Types derived from the table
// ---------------------------------------------------------------------------

type Table = typeof SETTINGS;

/** A setting's config key. */
export type SettingKey = keyof Table;

/** The type of a setting's validated value. */
export type SettingValue<K extends SettingKey> = Table[K]['kind'] extends Kind<infer T> ? T : never;

/** The keys of a group's settings. */
export type GroupKey<G extends SettingGroup> = { [K in SettingKey]: Table[K]['group'] extends G ? K : never }[SettingKey];

/** The keys of a command's settings. */
export type CommandKey<C extends CommandName> = { [K in SettingKey]: C extends Table[K]['commands'][number] ? K : never }[SettingKey];

type RequiredKey = { [K in SettingKey]: Table[K] extends { required: true } ? K : never }[SettingKey];
type DefaultedKey = { [K in SettingKey]: Table[K] extends { default: unknown } ? K : never }[SettingKey];

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** Settings as given (a library user's config): the required ones, and any others. */
export type SettingsInput<K extends SettingKey> = Simplify<
  { [P in K & RequiredKey]: SettingValue<P> } & { [P in Exclude<K, RequiredKey>]?: SettingValue<P> | undefined }
>;

/** Settings as validated: defaults applied; only those without a default may be absent. */
export type SettingsOf<K extends SettingKey> = Simplify<
  { [P in K & (RequiredKey | DefaultedKey)]: SettingValue<P> } & {
    [P in Exclude<K, RequiredKey | DefaultedKey>]?: SettingValue<P> | undefined;
  }
>;

/** The defaults of `K` that are values (not derived from other settings). */
export type DefaultsOf<K extends SettingKey> = {
  readonly [P in K as Table[P] extends { default: infer D } ? (D extends DerivedDefault ? never : P) : never]: SettingValue<P>;
};

/** The settings a command takes, validated. */
export type CommandSettings<C extends CommandName> = SettingsOf<CommandKey<C>>;

// ---------------------------------------------------------------------------
// Reading the table
// ---------------------------------------------------------------------------

/** Every key, in the table's order. */
export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

/** A setting's spec, seen through the common interface. */
export function specOf(key: SettingKey): SettingSpec {
  return SETTINGS[key] as SettingSpec;
}

/** The keys of the settings of `groups`, in the table's order. */
export function keysOfGroups<G extends SettingGroup>(...groups: G[]): GroupKey<G>[] {
  return SETTING_KEYS.filter((key) => (groups as SettingGroup[]).includes(specOf(key).group)) as GroupKey<G>[];
}

/** The keys of the settings `command` takes, in the table's order. */
export function keysOfCommand<C extends CommandName>(command: C): CommandKey<C>[] {
  return SETTING_KEYS.filter((key) => specOf(key).commands.includes(command)) as CommandKey<C>[];
}

/** The simulator's own settings drop this from their flags (`DDS_SIM_FAIL_STATUS` → `--fail-status`). */
const SIMULATOR_ENV_PREFIX = 'DDS_SIM_';

/** A setting's flag: its own, or the one of its environment variable. */
export function flagOfSpec(spec: Pick<SettingSpec, 'env' | 'flag'>): string {
  return spec.flag ?? flagOf(spec.env);
}

/** The flag of an environment variable: kebab case, `DDS_BASE_URL` → `--dds-base-url` (the simulator's without `DDS_SIM_`). */
export function flagOf(env: string): string {
  const name = env.startsWith(SIMULATOR_ENV_PREFIX) ? env.slice(SIMULATOR_ENV_PREFIX.length) : env;
  return `--${name.toLowerCase().replace(/_/g, '-')}`;
}

/** The variable naming a file that holds a secret (Docker and Kubernetes secrets). */
export function fileEnvOf(spec: SettingSpec): string {
  return `${spec.env}_FILE`;
}

/** The systemd credential holding a secret (`LoadCredential=<name>:<path>`). */
export function credentialOf(spec: SettingSpec): string {
  return spec.env.toLowerCase();
}

/** Whether a default is computed at resolution. */
export function isDerived(value: unknown): value is DerivedDefault {
  return typeof value === 'object' && value !== null && (value as { derived?: unknown }).derived === true;
}

/** The default of a setting in a command (or for the library, without one). */
export function defaultOf(spec: SettingSpec, command?: CommandName): unknown {
  return (command === undefined ? undefined : spec.commandDefaults?.[command]) ?? spec.default;
}

/** A default as `--help` and the docs show it: `120 s`, `one interval`, or undefined when there is none. */
export function showDefault(spec: SettingSpec, command?: CommandName): string | undefined {
  const value = defaultOf(spec, command);
  if (value === undefined) return undefined;
  if (isDerived(value)) return value.text;
  return `${spec.kind.show(value)}${spec.unit ? ` ${spec.unit}` : ''}`;
}
