/**
 * The command's settings, from the settings table (src/settings/table.ts):
 * each setting a command takes becomes an option with its environment
 * variable (the flag wins); a secret may also come from a file (`<ENV>_FILE`)
 * or a systemd credential. The text is parsed by the setting's kind, then
 * validated as library config is: a refusal is a `ConfigError`, which the
 * program prints as `ENV: reason` and exits 2.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import {
  credentialOf,
  CREDENTIALS_DIRECTORY_ENV,
  fileEnvOf,
  flagOf,
  flagOfSpec,
  keysOfCommand,
  showDefault,
  specOf,
  type CommandName,
  type CommandSettings,
  type SettingKey,
  type SettingSpec,
} from '../settings/table.js';
import type { Kind } from '../settings/kinds.js';
import { ConfigError, refusal, settingWarning, validateSettings, type SettingWarning } from '../settings/validate.js';
import type { Logger } from '../log.js';

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

/** A setting's refusal or warning as the command shows it: by its environment variable. */
export function settingLine(item: ConfigError | SettingWarning): string {
  return `${item.env}: ${item.reason}`;
}

/** Log the warnings of reading the settings (never a value of a secret: warnings hold none). */
export function logSettingWarnings(logger: Logger, warnings: readonly SettingWarning[]): void {
  for (const w of warnings) logger.warn({ event: w.event, setting: w.setting, env: w.env, warning: settingLine(w) });
}

/** The options of one command's settings, by key. */
interface SettingOptions {
  value: Option;
  /** `--<flag>-file`, for a secret read from a file. */
  file?: Option;
}

const optionsByCommand = new WeakMap<Command, Map<SettingKey, SettingOptions>>();

function describe(spec: SettingSpec, command: CommandName): string {
  const fallback = showDefault(spec, command);
  const note = fallback !== undefined ? `default: ${fallback}` : spec.required ? 'required' : spec.requiredWhen?.text;
  return `${spec.help}${note === undefined ? '' : ` (${note})`}`;
}

/** What `--help` says after the options: precedence, and where secrets are safe. */
function helpAfter(specs: readonly SettingSpec[]): string {
  const lines = ['', 'Every option can also be set by the environment variable shown; the flag wins.'];
  const secrets = specs.filter((s) => s.secret);
  if (secrets.length > 0) {
    lines.push(
      `Secrets (${secrets.map((s) => s.env).join(', ')}): a flag's value is visible to every local user`,
      'in /proc/<pid>/cmdline; prefer the environment or a file.',
    );
    const files = secrets.filter((s) => s.fromFile);
    if (files.length > 0) {
      lines.push(
        `From a file: ${files.map(fileEnvOf).join(', ')} (e.g. Docker or Kubernetes secrets),`,
        `or the systemd credentials ${files.map(credentialOf).join(', ')} (LoadCredential=, in $${CREDENTIALS_DIRECTORY_ENV}).`,
      );
    }
  }
  return lines.join('\n');
}

/** Add the settings `name` takes to `command`, as options with their environment variables. */
export function addSettings(command: Command, name: CommandName): Command {
  const options = new Map<SettingKey, SettingOptions>();
  const specs: SettingSpec[] = [];
  for (const key of keysOfCommand(name)) {
    const spec = specOf(key);
    specs.push(spec);
    const placeholder = spec.kind.switch ? `[${spec.kind.arg}]` : `<${spec.kind.arg}>`;
    const value = new Option(`${flagOfSpec(spec)} ${placeholder}`, describe(spec, name)).env(spec.env);
    command.addOption(value);
    let file: Option | undefined;
    if (spec.fromFile) {
      const env = fileEnvOf(spec);
      file = new Option(`${flagOf(env)} <path>`, `read ${spec.env} from this file`).env(env);
      command.addOption(file);
    }
    options.set(key, { value, file });
  }
  optionsByCommand.set(command, options);
  return command.addHelpText('after', helpAfter(specs));
}

/** An option's value as text: trimmed, blank as unset, a switch given alone as `true`. */
function textOf(value: unknown): string | undefined {
  if (value === true) return 'true';
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  return text === '' ? undefined : text;
}

/** A secret's file (`<ENV>_FILE`, a credential): its content, trimmed; a warning when others may read it. */
function readSecretFile(key: SettingKey, path: string, env: string, warnings: SettingWarning[]): string {
  let content: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    content = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(key, `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, env);
  }
  if ((mode & 0o044) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    warnings.push(settingWarning(key, `${path} is readable by group or others (mode ${octal}): chmod 600 it`, 'secret.file.permissions', env));
  }
  const text = content.trim();
  if (text === '') throw new ConfigError(key, `${path} is empty`, env);
  return text;
}

/** Where a setting's text comes from: the flag or the variable, else its file, else its systemd credential. */
function sourceText(
  command: Command,
  key: SettingKey,
  options: SettingOptions,
  warnings: SettingWarning[],
  env: NodeJS.ProcessEnv,
): { text: string; env: string } | undefined {
  const spec = specOf(key);
  const direct = textOf(command.getOptionValue(options.value.attributeName()));
  const path = options.file ? textOf(command.getOptionValue(options.file.attributeName())) : undefined;
  const fileEnv = fileEnvOf(spec);
  if (direct !== undefined && path !== undefined) throw new ConfigError(key, `set both ${spec.env} and ${fileEnv}: use one`);
  if (direct !== undefined) {
    if (spec.secret && command.getOptionValueSource(options.value.attributeName()) === 'cli') {
      warnings.push(settingWarning(key, `given as a flag: visible to every local user in /proc/<pid>/cmdline; prefer ${spec.fromFile ? fileEnv : 'the environment'}`, 'secret.flag'));
    }
    return { text: direct, env: spec.env };
  }
  if (path !== undefined) return { text: readSecretFile(key, path, fileEnv, warnings), env: fileEnv };
  const credentials = env[CREDENTIALS_DIRECTORY_ENV];
  if (spec.fromFile && credentials) {
    const credential = join(credentials, credentialOf(spec));
    let present = false;
    try {
      present = statSync(credential).isFile();
    } catch {
      // Not this credential: the unit may load others only.
    }
    if (present) return { text: readSecretFile(key, credential, spec.env, warnings), env: spec.env };
  }
  return undefined;
}

/** What {@link readSettings} returns. */
export interface ReadSettings<C extends CommandName> {
  values: CommandSettings<C>;
  /** For the caller to log once its logger exists ({@link logSettingWarnings}). */
  warnings: SettingWarning[];
}

/**
 * Read, parse and validate the settings `name` takes from `command` (after
 * commander parsed it) and its secret files.
 *
 * @throws {ConfigError} for a missing or invalid setting (exit 2).
 */
export function readSettings<C extends CommandName>(command: Command, name: C, env: NodeJS.ProcessEnv = process.env): ReadSettings<C> {
  const options = optionsByCommand.get(command);
  if (options === undefined) throw new Error(`addSettings(command, '${name}') first`);
  const warnings: SettingWarning[] = [];
  const input: Partial<Record<SettingKey, unknown>> = {};
  const sources: Partial<Record<SettingKey, { text: string; env: string }>> = {};
  for (const key of keysOfCommand(name)) {
    const source = sourceText(command, key, options.get(key) as SettingOptions, warnings, env);
    if (source === undefined) continue;
    sources[key] = source;
    try {
      input[key] = specOf(key).kind.parse(source.text, (reason, event) => warnings.push(settingWarning(key, reason, event, source.env)));
    } catch (error) {
      refusal(key, error, source.env, source.text);
    }
  }
  const values = validateSettings(keysOfCommand(name), input, { command: name, warnings, sources }) as CommandSettings<C>;
  return { values, warnings };
}

/** A command's own option that is not a setting (e.g. `dev --duration`), read with a setting's kind. @throws {CliError} (exit 2) */
export function readOption<T>(kind: Kind<T>, value: unknown, flag: string, fallback: T): T {
  const text = textOf(value);
  if (text === undefined) return fallback;
  try {
    return kind.check(kind.parse(text, () => undefined), () => undefined);
  } catch (error) {
    throw new CliError(EXIT.badSetting, `${flag}: ${error instanceof Error ? error.message : 'invalid'}`);
  }
}
