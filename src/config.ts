/**
 * config — the registrar's settings as library users give them, validated
 * through the settings table (src/settings/table.ts), with clear errors.
 *
 * Secrets (the registration secret, the private key) are split off from the
 * rest as soon as they are read, so the settings can be logged and handed to
 * the statechart while the secrets go only to the effects that need them.
 */
import type { RegistrarSettings, RegistrationProtocol } from '../machines/registrar.js';
import type { BackoffPolicyName } from './backoff.js';
import { isShortSecret } from './redact.js';
import { isDerived, keysOfGroups, specOf, SHORT_SECRET_CHARS, type DefaultsOf, type GroupKey, type SettingsInput } from './settings/table.js';
import { ConfigError, settingWarning, validateSettings, type SettingWarning } from './settings/validate.js';
import type { TrustProxy } from './trusted-sources.js';

export { ConfigError, type SettingWarning };

/**
 * The crate's `RegistrationConfig`, TypeScript-shaped: what `createRegistrar`
 * takes. Each key, its meaning and default are in the settings table (and in
 * docs/embedding.md, generated from it).
 */
export type RegistrarConfig = SettingsInput<GroupKey<'registrar'>>;

const REGISTRAR_KEYS = keysOfGroups('registrar');

/** Defaults of {@link RegistrarConfig} (those that are values, not derived from other settings). */
export const DEFAULTS = Object.freeze(
  Object.fromEntries(
    REGISTRAR_KEYS.flatMap((key) => {
      const value = specOf(key).default;
      return value === undefined || isDerived(value) ? [] : [[key, value]];
    }),
  ),
) as DefaultsOf<GroupKey<'registrar'>>;

/** Validated, normalised settings with no secrets: safe to log. */
export interface ResolvedSettings {
  /** The wire's generation (PROTOCOL.md §1–§3 or §6). */
  protocol: RegistrationProtocol;
  ddsBaseUrl: string;
  /** Required under `legacy`; absent under `siwe` unless given (then unused by DDS). */
  nodeUrl: string | undefined;
  nodeVersion: string;
  capabilities: string[];
  requestTimeoutMs: number;
  dataDir: string;
  lockStaleMs: number;
  /** The retry policy's name. */
  backoff: BackoffPolicyName;
  /** Who counts as DDS for the routes (setting `ddsTrustedSources`; empty: anyone). */
  trustedSources: readonly string[];
  /** Whether `X-Forwarded-For` names the client (setting `trustProxy`). */
  trustProxy: TrustProxy;
  /** Where the access token is written (setting `accessTokenFile`); undefined: nowhere. */
  accessTokenFile: string | undefined;
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
  /** Adjustments made (a clamped interval, a short secret…), for the caller to log. */
  warnings: SettingWarning[];
}

/**
 * Validate a {@link RegistrarConfig}: throws `ConfigError` for a missing or
 * invalid setting; clamps what the crate clamps (and says so in `warnings`).
 * The private key is only checked for presence here: the statechart validates
 * it (an invalid key ends in `failed`).
 */
export function resolveConfig(config: RegistrarConfig): ResolvedConfig {
  const warnings: SettingWarning[] = [];
  const v = validateSettings(REGISTRAR_KEYS, config, { warnings });
  if (!(v.lockStaleSecs > v.requestTimeoutSecs)) {
    const stale = specOf('lockStaleSecs').env;
    const timeout = specOf('requestTimeoutSecs').env;
    throw new ConfigError(
      'lockStaleSecs',
      `${v.lockStaleSecs} s must exceed requestTimeoutSecs (${timeout}, ${v.requestTimeoutSecs} s): a request must time out before another registrar may take the lock over; raise ${stale} or lower ${timeout}`,
    );
  }
  if (v.protocol === 'siwe' && v.capabilities.length === 0) {
    // Refused here, not at every attempt: DDS's wallet registration needs them, and a cooldown loop would hide it.
    throw new ConfigError('capabilities', `empty: under protocol siwe a registration needs at least one capability path`);
  }
  // Here, not in the table's validator: the command validates its settings before this, and warns once.
  if (isShortSecret(v.regSecret)) {
    warnings.push(settingWarning('regSecret', `shorter than ${SHORT_SECRET_CHARS} characters: easy to guess, hard to redact from logs reliably`, 'secret.short'));
  }
  return {
    settings: {
      protocol: v.protocol,
      ddsBaseUrl: v.ddsBaseUrl,
      nodeUrl: v.nodeUrl,
      nodeVersion: v.nodeVersion,
      capabilities: [...v.capabilities],
      requestTimeoutMs: Math.round(v.requestTimeoutSecs * 1000),
      dataDir: v.dataDir,
      lockStaleMs: Math.round(v.lockStaleSecs * 1000),
      backoff: v.backoff,
      trustedSources: v.ddsTrustedSources,
      trustProxy: v.trustProxy,
      accessTokenFile: v.protocol === 'siwe' && v.accessSession ? v.accessTokenFile : undefined,
      machine: {
        protocol: v.protocol,
        intervalMs: Math.round(v.registerIntervalSecs * 1000),
        maxRetry: v.maxRetry,
        callbackPolicy: v.callbackPolicy,
        callbackWindowMs: Math.round(v.callbackWindowSecs * 1000),
        session:
          v.protocol === 'siwe' && v.accessSession
            ? { safetyRatio: v.tokenSafetyRatio, jitterMs: v.tokenReauthJitterMs, maxRetries: v.tokenReauthMaxRetries }
            : null,
        retryAfterMaxMs: Math.round(v.retryAfterMaxSecs * 1000),
      },
    },
    secrets: { regSecret: v.regSecret, secp256k1Privhex: v.secp256k1Privhex },
    warnings,
  };
}
