/**
 * config — the registrar's settings, validated once, with clear errors.
 *
 * Secrets (the registration secret, the private key) are split off from the
 * rest as soon as they are read, so the settings can be logged and handed to
 * the statechart while the secrets go only to the effects that need them.
 */
import { MAX_DELAY_MS, MIN_INTERVAL_MS, type CallbackPolicy, type RegistrarSettings } from '../machines/registrar.js';
import { BACKOFF_POLICY_NAMES, DEFAULT_BACKOFF_POLICY, isBackoffPolicyName, type BackoffPolicyName } from './backoff.js';

/** The crate's `RegistrationConfig`, TypeScript-shaped. */
export interface RegistrarConfig {
  /** DDS base URL. Default `https://dds.auki.network`. */
  ddsBaseUrl?: string;
  /** This node's public URL, sent to DDS exactly as given. */
  nodeUrl: string;
  /** The version string sent to DDS (the library sends whatever it is given). */
  nodeVersion: string;
  /** Registration credentials (`REG_SECRET`). */
  regSecret: string;
  /** The node's secp256k1 private key, 64 hex digits (`SECP256K1_PRIVHEX`). */
  secp256k1Privhex: string;
  /** Capability paths, e.g. `/reconstruction/global-refinement/v1`. */
  capabilities?: readonly string[];
  /** Interval and health-check TTL in seconds (default 120; 0 is raised to 1 with a warning). */
  registerIntervalSecs?: number;
  /** Retryable failures before a one-interval cooldown; −1 (default) = unlimited. */
  maxRetry?: number;
  /** DDS request timeout in seconds (default 10). */
  requestTimeoutSecs?: number;
  /** Directory of the state file and the lock (default `data`). */
  dataDir?: string;
  /** Lock staleness in seconds (default 10; at least 5). */
  lockStaleSecs?: number;
  /** Callback admission: `window` (default) or `always` (the crate's behaviour). */
  callbackPolicy?: CallbackPolicy;
  /** How long after a successful answer callbacks are accepted, seconds (default: one interval). */
  callbackWindowSecs?: number;
  /**
   * The retry policy after a retryable failure (default `crate`, the crate's);
   * `full-jitter` or `decorrelated-jitter` spread a fleet's retries wider (see
   * `src/backoff.ts`). The `backoffPolicy` option of `createRegistrar` wins.
   */
  backoff?: BackoffPolicyName;
}

/** Defaults of {@link RegistrarConfig}. */
export const DEFAULTS = {
  ddsBaseUrl: 'https://dds.auki.network',
  registerIntervalSecs: 120,
  maxRetry: -1,
  requestTimeoutSecs: 10,
  dataDir: 'data',
  lockStaleSecs: 10,
  callbackPolicy: 'window' as CallbackPolicy,
  backoff: DEFAULT_BACKOFF_POLICY,
} as const;

/** The smallest lock staleness proper-lockfile accepts, seconds. */
export const MIN_LOCK_STALE_SECS = 5;

/** A setting is missing or invalid. `setting` names the config key; the message never holds a secret value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly setting: keyof RegistrarConfig;
  constructor(setting: keyof RegistrarConfig, message: string) {
    super(`${setting}: ${message}`);
    this.setting = setting;
  }
}

/** Validated, normalised settings with no secrets: safe to log. */
export interface ResolvedSettings {
  ddsBaseUrl: string;
  nodeUrl: string;
  nodeVersion: string;
  capabilities: string[];
  requestTimeoutMs: number;
  dataDir: string;
  lockStaleMs: number;
  /** The retry policy's name. */
  backoff: BackoffPolicyName;
  machine: RegistrarSettings;
}

/** The two secrets, kept apart from everything else. */
export interface RegistrarSecrets {
  readonly regSecret: string;
  readonly secp256k1Privhex: string;
}

/** What {@link resolveConfig} returns. */
export interface ResolvedConfig {
  settings: ResolvedSettings;
  secrets: RegistrarSecrets;
  /** Adjustments made (a clamped interval, …), for the caller to log. */
  warnings: string[];
}

function httpUrl(setting: 'ddsBaseUrl' | 'nodeUrl', value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(setting, 'missing (expected an http(s) URL)');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(setting, 'not a valid URL (expected e.g. https://host:port)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(setting, `unsupported scheme "${url.protocol.replace(/:$/, '')}" (expected http or https)`);
  }
  if (url.username || url.password) throw new ConfigError(setting, 'must not contain credentials (user:password@)');
  return value;
}

function requiredString(setting: keyof RegistrarConfig, value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(setting, `missing (${what})`);
  return value;
}

function number(setting: keyof RegistrarConfig, value: unknown, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(setting, 'not a finite number');
  return value;
}

/**
 * Validate a {@link RegistrarConfig}: throws {@link ConfigError} for a missing
 * or invalid setting; clamps what the crate clamps (and says so in `warnings`).
 * The private key is only checked for presence here: the statechart validates
 * it (an invalid key ends in `failed`).
 */
export function resolveConfig(config: RegistrarConfig): ResolvedConfig {
  const warnings: string[] = [];
  const ddsBaseUrl = httpUrl('ddsBaseUrl', config.ddsBaseUrl ?? DEFAULTS.ddsBaseUrl);
  const nodeUrl = httpUrl('nodeUrl', config.nodeUrl);
  const nodeVersion = requiredString('nodeVersion', config.nodeVersion, 'the version string sent to DDS');
  const regSecret = requiredString('regSecret', config.regSecret, 'the registration secret');
  const secp256k1Privhex = requiredString('secp256k1Privhex', config.secp256k1Privhex, 'the node key, 64 hex digits');

  const capabilities = config.capabilities ?? [];
  if (!Array.isArray(capabilities) || !capabilities.every((c) => typeof c === 'string')) {
    throw new ConfigError('capabilities', 'expected an array of strings');
  }

  const maxIntervalSecs = MAX_DELAY_MS / 1000;
  let intervalSecs = number('registerIntervalSecs', config.registerIntervalSecs, DEFAULTS.registerIntervalSecs);
  if (intervalSecs < MIN_INTERVAL_MS / 1000) {
    warnings.push(`registerIntervalSecs ${intervalSecs} raised to ${MIN_INTERVAL_MS / 1000}`);
    intervalSecs = MIN_INTERVAL_MS / 1000;
  } else if (intervalSecs > maxIntervalSecs) {
    warnings.push(`registerIntervalSecs ${intervalSecs} capped at ${maxIntervalSecs}`);
    intervalSecs = maxIntervalSecs;
  }

  const maxRetry = number('maxRetry', config.maxRetry, DEFAULTS.maxRetry);
  if (!Number.isInteger(maxRetry) || maxRetry < -1) throw new ConfigError('maxRetry', 'expected a whole number ≥ −1 (−1 = unlimited)');

  const timeoutSecs = number('requestTimeoutSecs', config.requestTimeoutSecs, DEFAULTS.requestTimeoutSecs);
  if (timeoutSecs <= 0 || timeoutSecs > maxIntervalSecs) {
    throw new ConfigError('requestTimeoutSecs', `expected a number of seconds above 0 and at most ${maxIntervalSecs}`);
  }

  let lockStaleSecs = number('lockStaleSecs', config.lockStaleSecs, DEFAULTS.lockStaleSecs);
  if (lockStaleSecs < MIN_LOCK_STALE_SECS) {
    warnings.push(`lockStaleSecs ${lockStaleSecs} raised to ${MIN_LOCK_STALE_SECS} (proper-lockfile's minimum)`);
    lockStaleSecs = MIN_LOCK_STALE_SECS;
  } else if (lockStaleSecs > maxIntervalSecs) {
    throw new ConfigError('lockStaleSecs', `expected at most ${maxIntervalSecs} seconds`);
  }

  const callbackPolicy = config.callbackPolicy ?? DEFAULTS.callbackPolicy;
  if (callbackPolicy !== 'window' && callbackPolicy !== 'always') {
    throw new ConfigError('callbackPolicy', 'expected "window" or "always"');
  }
  let windowSecs = number('callbackWindowSecs', config.callbackWindowSecs, intervalSecs);
  if (windowSecs < 0) throw new ConfigError('callbackWindowSecs', 'expected a number of seconds ≥ 0');
  if (windowSecs > maxIntervalSecs) {
    warnings.push(`callbackWindowSecs ${windowSecs} capped at ${maxIntervalSecs}`);
    windowSecs = maxIntervalSecs;
  }

  const backoff = config.backoff ?? DEFAULTS.backoff;
  if (!isBackoffPolicyName(backoff)) {
    throw new ConfigError('backoff', `expected one of ${BACKOFF_POLICY_NAMES.map((n) => `"${n}"`).join(', ')}`);
  }

  const dataDir = config.dataDir ?? DEFAULTS.dataDir;
  if (typeof dataDir !== 'string' || dataDir.trim() === '') throw new ConfigError('dataDir', 'expected a directory path');

  return {
    settings: {
      ddsBaseUrl,
      nodeUrl,
      nodeVersion,
      capabilities: [...capabilities],
      requestTimeoutMs: Math.round(timeoutSecs * 1000),
      dataDir,
      lockStaleMs: Math.round(lockStaleSecs * 1000),
      backoff,
      machine: {
        intervalMs: Math.round(intervalSecs * 1000),
        maxRetry,
        callbackPolicy,
        callbackWindowMs: Math.round(windowSecs * 1000),
      },
    },
    secrets: { regSecret, secp256k1Privhex },
    warnings,
  };
}
