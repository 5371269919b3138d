/**
 * settings/validate — the one validator: library config and command-line
 * input (once parsed into typed values) go through the same checks, and a
 * refusal is one {@link ConfigError} carrying both names of the setting.
 */
import { InvalidValue } from './kinds.js';
import { defaultOf, isDerived, specOf, type CommandName, type SettingKey, type SettingsOf } from './table.js';

const MAX_ECHO_CHARS = 40;

/** `(got "…")` for a refused value that may be shown: clipped, quoted, on one line. */
function echo(shown: string | undefined, secret: boolean): string {
  if (secret || shown === undefined) return '';
  const chars = Array.from(shown);
  return ` (got ${JSON.stringify(chars.length > MAX_ECHO_CHARS ? `${chars.slice(0, MAX_ECHO_CHARS).join('')}…` : shown)})`;
}

/**
 * A setting is missing or invalid. `message` names the config key
 * (`registerIntervalSecs: must be …`), as library users know it; the command
 * shows `env` and `reason` instead, naming the environment variable.
 * Never holds a secret, nor anything of a refused URL.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The config key. */
  readonly setting: SettingKey;
  /** The environment variable (or `<ENV>_FILE` when the file was the problem). */
  readonly env: string;
  /** Why, without the setting's name. */
  readonly reason: string;
  constructor(setting: SettingKey, reason: string, env: string = specOf(setting).env) {
    super(`${setting}: ${reason}`);
    this.setting = setting;
    this.env = env;
    this.reason = reason;
  }
}

/** An adjustment a caller should log (a clamped value, a fallback, a short secret…). Never holds a secret. */
export interface SettingWarning {
  /** The log event, e.g. `config.adjusted`. */
  readonly event: string;
  readonly setting: SettingKey;
  readonly env: string;
  /** What was done, without the setting's name. */
  readonly reason: string;
}

/** A warning about `setting`. */
export function settingWarning(setting: SettingKey, reason: string, event = 'config.adjusted', env = specOf(setting).env): SettingWarning {
  return { event, setting, env, reason };
}

/** Turn a kind's refusal into a {@link ConfigError} naming `key` (and `env`, where the value came from); anything else is rethrown. */
export function refusal(key: SettingKey, error: unknown, env?: string, typed?: string): never {
  if (error instanceof InvalidValue) {
    const shown = error.shown === undefined ? undefined : (typed ?? error.shown);
    throw new ConfigError(key, `${error.message}${echo(shown, specOf(key).secret === true)}`, env);
  }
  throw error;
}

/** Options of {@link validateSettings}. */
export interface ValidateOptions {
  /** Apply this command's defaults (`dev`: a 6 s interval). */
  command?: CommandName;
  /** Where adjustments go. */
  warnings?: SettingWarning[];
  /** The text each value was parsed from, and where it came from: what a refusal echoes and names. */
  sources?: Readonly<Partial<Record<SettingKey, { text: string; env: string }>>>;
}

/**
 * Validate the settings `keys` of `input` (unset — `undefined` or `null` —
 * takes the default), in the table's order.
 *
 * @throws {ConfigError} for the first missing or invalid one.
 */
export function validateSettings<K extends SettingKey>(
  keys: readonly K[],
  input: Readonly<Partial<Record<SettingKey, unknown>>>,
  options: ValidateOptions = {},
): SettingsOf<K> {
  const values: Record<string, unknown> = {};
  for (const key of keys) {
    const spec = specOf(key);
    const warn = (reason: string, event?: string): void => {
      options.warnings?.push(settingWarning(key, reason, event));
    };
    let value: unknown = input[key] ?? undefined;
    if (value === undefined) {
      const fallback = defaultOf(spec, options.command);
      if (fallback === undefined) {
        if (spec.required) throw new ConfigError(key, `missing (${spec.kind.expected})`);
        if (spec.requiredWhen?.test(values)) throw new ConfigError(key, `missing (${spec.kind.expected}; ${spec.requiredWhen.text})`);
        continue;
      }
      value = isDerived(fallback) ? fallback.resolve({ values, warn }) : fallback;
    }
    try {
      values[key] = spec.kind.check(value, warn);
    } catch (error) {
      const source = options.sources?.[key];
      refusal(key, error, source?.env, source?.text);
    }
  }
  return values as SettingsOf<K>;
}
