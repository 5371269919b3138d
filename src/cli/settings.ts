/**
 * The daemon's settings: one table, each setting with an environment variable
 * and a flag named after it in kebab case (`DDS_BASE_URL` → `--dds-base-url`;
 * the flag wins). Parsing errors name the variable in one clear line and
 * never print a secret's value.
 */
import { Option, type Command } from 'commander';
import { loadSecp256k1Privhex } from '../crypto.js';
import { DEFAULTS, MIN_LOCK_STALE_SECS } from '../config.js';
import { BACKOFF_POLICY_NAMES, DEFAULT_BACKOFF_POLICY, type BackoffPolicyName } from '../backoff.js';
import type { CallbackPolicy } from '../../machines/registrar.js';
import { MAX_DELAY_MS } from '../../machines/registrar.js';
import type { LogFormat, LogLevel } from '../log.js';
import { normalizeNodeVersion, PACKAGE_VERSION } from '../version.js';

/** Exit statuses of the daemon. */
export const EXIT = {
  ok: 0,
  unexpected: 1,
  badSetting: 2,
  cannotStart: 3,
} as const;

/** An error that ends the program with a given exit status and one line on stderr. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** One setting of the table. */
export interface SettingSpec {
  /** Environment variable, e.g. `DDS_BASE_URL`. */
  env: string;
  /** Value placeholder in `--help`. */
  arg: string;
  description: string;
  /** Shown in `--help`; applied by the parser (not by commander, so the env var is seen). */
  defaultText?: string;
  /** A boolean switch (`--inspect`, `INSPECT=1`). */
  flag?: boolean;
  /** Never echo the value in errors. */
  secret?: boolean;
}

/** `DDS_BASE_URL` → `--dds-base-url`; the option's attribute name is camelCase. */
export function flagName(env: string): string {
  return `--${env.toLowerCase().replace(/_/g, '-')}`;
}

function attributeName(env: string): string {
  return env.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The settings of `run` (and, where they apply, of `dev` and `status`). */
export const RUN_SETTINGS = {
  DDS_BASE_URL: { env: 'DDS_BASE_URL', arg: 'url', description: 'DDS base URL', defaultText: DEFAULTS.ddsBaseUrl },
  NODE_URL: { env: 'NODE_URL', arg: 'url', description: "this node's public URL (required)" },
  NODE_VERSION: { env: 'NODE_VERSION', arg: 'semver', description: 'version sent to DDS', defaultText: PACKAGE_VERSION },
  REG_SECRET: { env: 'REG_SECRET', arg: 'secret', description: 'registration credentials (required)', secret: true },
  SECP256K1_PRIVHEX: { env: 'SECP256K1_PRIVHEX', arg: 'hex', description: 'node private key, 64 hex digits (required)', secret: true },
  CAPABILITIES: { env: 'CAPABILITIES', arg: 'paths', description: 'comma-separated capability paths', defaultText: 'none' },
  REGISTER_INTERVAL_SECS: { env: 'REGISTER_INTERVAL_SECS', arg: 'secs', description: 'interval and health-check TTL', defaultText: '120' },
  REGISTER_MAX_RETRY: { env: 'REGISTER_MAX_RETRY', arg: 'n', description: 'retryable failures before a cooldown, -1 = unlimited', defaultText: '-1' },
  REGISTER_BACKOFF: { env: 'REGISTER_BACKOFF', arg: 'policy', description: `retry policy: ${BACKOFF_POLICY_NAMES.join(', ')}`, defaultText: DEFAULT_BACKOFF_POLICY },
  REQUEST_TIMEOUT_SECS: { env: 'REQUEST_TIMEOUT_SECS', arg: 'secs', description: 'DDS request timeout', defaultText: '10' },
  LOCK_STALE_SECS: { env: 'LOCK_STALE_SECS', arg: 'secs', description: `lock staleness (>= ${MIN_LOCK_STALE_SECS})`, defaultText: '10' },
  CALLBACK_POLICY: { env: 'CALLBACK_POLICY', arg: 'policy', description: 'callback admission: window or always', defaultText: 'window' },
  CALLBACK_WINDOW_SECS: { env: 'CALLBACK_WINDOW_SECS', arg: 'secs', description: 'how long after a registration callbacks are accepted', defaultText: 'one interval' },
  HOST: { env: 'HOST', arg: 'addr', description: 'where the callback routes listen', defaultText: '0.0.0.0' },
  PORT: { env: 'PORT', arg: 'port', description: 'port of the callback routes', defaultText: '8080' },
  DATA_DIR: { env: 'DATA_DIR', arg: 'dir', description: 'state file and lock directory', defaultText: './data' },
  LOG_FORMAT: { env: 'LOG_FORMAT', arg: 'format', description: 'json or text', defaultText: 'json' },
  LOG_LEVEL: { env: 'LOG_LEVEL', arg: 'level', description: 'debug, info, warn or error', defaultText: 'info' },
  INSPECT: { env: 'INSPECT', arg: '', description: 'serve the Stately inspector relay on 127.0.0.1', flag: true },
  INSPECT_PORT: { env: 'INSPECT_PORT', arg: 'port', description: 'port of the inspector relay', defaultText: '8090' },
} as const satisfies Record<string, SettingSpec>;

/** A setting's name. */
export type RunSettingName = keyof typeof RUN_SETTINGS;

/** Add the named settings to a command as options with their environment variables. */
export function addSettingOptions(command: Command, names: readonly RunSettingName[]): Command {
  for (const name of names) {
    const spec: SettingSpec = RUN_SETTINGS[name];
    const option = spec.flag
      ? new Option(`${flagName(spec.env)} [on]`, `${spec.description} (true/false)`).env(spec.env)
      : new Option(`${flagName(spec.env)} <${spec.arg}>`, spec.description + (spec.defaultText ? ` (default: ${spec.defaultText})` : '')).env(spec.env);
    command.addOption(option);
  }
  return command;
}

/** Raw option values as commander hands them over (flag or env). */
export type RawOptions = Record<string, string | boolean | undefined>;

function raw(options: RawOptions, name: RunSettingName): string | undefined {
  const v = options[attributeName(RUN_SETTINGS[name].env)];
  if (v === undefined || v === false) return undefined;
  if (v === true) return 'true';
  const s = v.trim();
  return s === '' ? undefined : s;
}

function bad(name: RunSettingName, why: string): CliError {
  return new CliError(EXIT.badSetting, `${RUN_SETTINGS[name].env}: ${why}`);
}

function required(options: RawOptions, name: RunSettingName): string {
  const v = raw(options, name);
  if (v === undefined) {
    throw bad(name, `missing — set ${RUN_SETTINGS[name].env} or ${flagName(RUN_SETTINGS[name].env)}`);
  }
  return v;
}

function shown(name: RunSettingName, value: string): string {
  const spec: SettingSpec = RUN_SETTINGS[name];
  return spec.secret ? '' : ` (got "${value.length > 80 ? `${value.slice(0, 80)}…` : value}")`;
}

function numberSetting(
  options: RawOptions,
  name: RunSettingName,
  fallback: number,
  check: { min?: number; max?: number; integer?: boolean } = {},
): number {
  const v = raw(options, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^-?\d+(\.\d+)?$/.test(v) || !Number.isFinite(n)) throw bad(name, `expected a number${shown(name, v)}`);
  if (check.integer && !Number.isInteger(n)) throw bad(name, `expected a whole number${shown(name, v)}`);
  if (check.min !== undefined && n < check.min) throw bad(name, `must be at least ${check.min}${shown(name, v)}`);
  if (check.max !== undefined && n > check.max) throw bad(name, `must be at most ${check.max}${shown(name, v)}`);
  return n;
}

function urlSetting(options: RawOptions, name: RunSettingName, fallback?: string): string {
  const v = fallback === undefined ? required(options, name) : (raw(options, name) ?? fallback);
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw bad(name, `not a valid URL${shown(name, v)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(name, `expected an http or https URL${shown(name, v)}`);
  if (url.username || url.password) throw bad(name, 'must not contain credentials (user:password@)');
  return v;
}

function portSetting(options: RawOptions, name: RunSettingName, fallback: number): number {
  return numberSetting(options, name, fallback, { min: 0, max: 65535, integer: true });
}

function enumSetting<T extends string>(options: RawOptions, name: RunSettingName, values: readonly T[], fallback: T): T {
  const v = raw(options, name);
  if (v === undefined) return fallback;
  const lower = v.toLowerCase();
  if (!(values as readonly string[]).includes(lower)) throw bad(name, `expected one of ${values.join(', ')}${shown(name, v)}`);
  return lower as T;
}

function boolSetting(options: RawOptions, name: RunSettingName): boolean {
  const v = raw(options, name);
  if (v === undefined) return false;
  const lower = v.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
  if (['0', 'false', 'no', 'off'].includes(lower)) return false;
  throw bad(name, `expected true or false${shown(name, v)}`);
}

/** Logging settings. */
export interface LogSettings {
  logFormat: LogFormat;
  logLevel: LogLevel;
}

/** Parse `LOG_FORMAT` and `LOG_LEVEL`. */
export function parseLogSettings(options: RawOptions, defaultFormat: LogFormat = 'json'): LogSettings {
  return {
    logFormat: enumSetting(options, 'LOG_FORMAT', ['json', 'text'] as const, defaultFormat),
    logLevel: enumSetting(options, 'LOG_LEVEL', ['debug', 'info', 'warn', 'error'] as const, 'info'),
  };
}

/** The registrar's settings as the daemon reads them. */
export interface RegistrationSettings {
  ddsBaseUrl: string;
  nodeUrl: string;
  nodeVersion: string;
  /** The warning when NODE_VERSION was replaced by the package version. */
  nodeVersionWarning: string | null;
  regSecret: string;
  secp256k1Privhex: string;
  capabilities: string[];
  registerIntervalSecs: number;
  /** The warning when the interval was raised to 1 s. */
  intervalWarning: string | null;
  maxRetry: number;
  /** The retry policy (absent: the default, the crate's). */
  backoff?: BackoffPolicyName;
  requestTimeoutSecs: number;
  lockStaleSecs: number;
  callbackPolicy: CallbackPolicy;
  callbackWindowSecs: number;
  dataDir: string;
}

/** Everything `run` needs. */
export interface RunSettings extends RegistrationSettings, LogSettings {
  host: string;
  port: number;
  inspect: boolean;
  inspectPort: number;
}

/** Parse `REGISTER_INTERVAL_SECS` (0 is raised to 1 with a warning; capped well below the timer limit). */
export function parseInterval(options: RawOptions, fallback = 120): { secs: number; warning: string | null } {
  const secs = numberSetting(options, 'REGISTER_INTERVAL_SECS', fallback, { min: 0, max: MAX_DELAY_MS / 1000 });
  if (secs < 1) return { secs: 1, warning: `REGISTER_INTERVAL_SECS ${secs} raised to 1` };
  return { secs, warning: null };
}

/** Parse the registration settings shared by `run` (and `dev`, which supplies its own URLs and key). */
export function parseRegistrationSettings(options: RawOptions, defaults: { intervalSecs?: number } = {}): RegistrationSettings {
  const nodeUrl = urlSetting(options, 'NODE_URL');
  const ddsBaseUrl = urlSetting(options, 'DDS_BASE_URL', DEFAULTS.ddsBaseUrl);
  const regSecret = required(options, 'REG_SECRET');
  const secp256k1Privhex = required(options, 'SECP256K1_PRIVHEX');
  try {
    loadSecp256k1Privhex(secp256k1Privhex);
  } catch (error) {
    // The error describes the problem (length, not hex, out of range), never the key.
    throw bad('SECP256K1_PRIVHEX', error instanceof Error ? error.message : 'invalid key');
  }
  const version = normalizeNodeVersion(raw(options, 'NODE_VERSION'), PACKAGE_VERSION);
  const capabilities = (raw(options, 'CAPABILITIES') ?? '')
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  const interval = parseInterval(options, defaults.intervalSecs ?? DEFAULTS.registerIntervalSecs);
  const maxRetry = numberSetting(options, 'REGISTER_MAX_RETRY', DEFAULTS.maxRetry, { min: -1, integer: true });
  const backoff = parseBackoff(options);
  const requestTimeoutSecs = numberSetting(options, 'REQUEST_TIMEOUT_SECS', DEFAULTS.requestTimeoutSecs, {
    min: 0.001,
    max: MAX_DELAY_MS / 1000,
  });
  const lockStaleSecs = numberSetting(options, 'LOCK_STALE_SECS', DEFAULTS.lockStaleSecs, {
    min: MIN_LOCK_STALE_SECS,
    max: MAX_DELAY_MS / 1000,
  });
  const callbackPolicy = enumSetting(options, 'CALLBACK_POLICY', ['window', 'always'] as const, 'window');
  const callbackWindowSecs = numberSetting(options, 'CALLBACK_WINDOW_SECS', interval.secs, {
    min: 0,
    max: MAX_DELAY_MS / 1000,
  });
  return {
    ddsBaseUrl,
    nodeUrl,
    nodeVersion: version.version,
    nodeVersionWarning: version.warning,
    regSecret,
    secp256k1Privhex,
    capabilities,
    registerIntervalSecs: interval.secs,
    intervalWarning: interval.warning,
    maxRetry,
    backoff,
    requestTimeoutSecs,
    lockStaleSecs,
    callbackPolicy,
    callbackWindowSecs,
    dataDir: raw(options, 'DATA_DIR') ?? './data',
  };
}

/** Parse everything `run` needs. @throws {CliError} with exit status 2. */
export function parseRunSettings(options: RawOptions): RunSettings {
  return {
    ...parseRegistrationSettings(options),
    ...parseLogSettings(options),
    host: raw(options, 'HOST') ?? '0.0.0.0',
    port: portSetting(options, 'PORT', 8080),
    inspect: boolSetting(options, 'INSPECT'),
    inspectPort: portSetting(options, 'INSPECT_PORT', 8090),
  };
}

/** Parse `DATA_DIR` and `REGISTER_INTERVAL_SECS` for `status`. */
export function parseStatusSettings(options: RawOptions): { dataDir: string; intervalSecs: number } {
  return { dataDir: raw(options, 'DATA_DIR') ?? './data', intervalSecs: parseInterval(options).secs };
}

/** Parse `CALLBACK_POLICY` (for `dev`). */
export function parseCallbackPolicy(options: RawOptions): CallbackPolicy {
  return enumSetting(options, 'CALLBACK_POLICY', ['window', 'always'] as const, 'window');
}

/** Parse `REGISTER_BACKOFF` (case-insensitive). @throws {CliError} with exit status 2 naming it. */
export function parseBackoff(options: RawOptions): BackoffPolicyName {
  return enumSetting(options, 'REGISTER_BACKOFF', BACKOFF_POLICY_NAMES, DEFAULT_BACKOFF_POLICY);
}

/** Parse `REGISTER_MAX_RETRY` (for `dev`). */
export function parseMaxRetry(options: RawOptions): number {
  return numberSetting(options, 'REGISTER_MAX_RETRY', DEFAULTS.maxRetry, { min: -1, integer: true });
}

/** Parse the inspector settings (for `dev`). */
export function parseInspectSettings(options: RawOptions): { inspect: boolean; inspectPort: number } {
  return { inspect: boolSetting(options, 'INSPECT'), inspectPort: portSetting(options, 'INSPECT_PORT', 8090) };
}
