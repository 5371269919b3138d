/**
 * settings/kinds — the kinds of value a setting holds. Each kind says how the
 * command line's text becomes a value (`parse`: syntax only), how any value,
 * from the CLI or from a library user, is validated (`check`: the one
 * validator, with the clamps the crate makes), and how a value is shown in
 * `--help` and the docs.
 *
 * Kinds throw {@link InvalidValue} with the bare reason; the caller names the
 * setting (src/settings/validate.ts) and decides whether the value may be
 * echoed.
 */
import { isIP } from 'node:net';

/** Why a value was refused: the bare reason, and the offending text when it may be echoed. */
export class InvalidValue extends Error {
  override readonly name = 'InvalidValue';
  /** The value as the user wrote it, for `(got "…")`; absent when nothing of it may be shown. */
  readonly shown: string | undefined;
  constructor(reason: string, shown?: string) {
    super(reason);
    this.shown = shown;
  }
}

/** Report an adjustment (`reason`, without the setting's name) under a log event. */
export type Warn = (reason: string, event?: string) => void;

/** How one kind of value is read, checked and shown. */
export interface Kind<T> {
  /** The value's placeholder in `--help` (`secs` → `<secs>`). */
  readonly arg: string;
  /** What a value must be, e.g. `an http(s) URL`. */
  readonly expected: string;
  /** A boolean switch: `--inspect` alone means true. */
  readonly switch?: true;
  /** The command line's text (trimmed, not empty) → a value of the right type. @throws InvalidValue */
  parse(text: string, warn: Warn): T;
  /** Any value → the validated value (clamped where the crate clamps). @throws InvalidValue */
  check(value: unknown, warn: Warn): T;
  /** A value as `--help` and the docs show it. */
  show(value: T): string;
}

/** The largest integer a setting takes (2^31 − 1: what every consumer, timers included, handles). */
export const MAX_INTEGER = 2 ** 31 - 1;

/** A value's text for `(got "…")`, when it is a primitive. */
function shownOf(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined;
}

/** Options of {@link number}. */
export interface NumberRules {
  min: number;
  max: number;
  /** Whole numbers only. */
  integer?: boolean;
  /** Values from `min` up to this are raised to it with a warning (the crate raises an interval of 0 to 1 s). */
  raiseTo?: number;
  /** Why, in the warning (e.g. `the least interval`). */
  raiseWhy?: string;
  arg?: string;
}

/** A finite number in [min, max]. The command line takes decimal digits only (no `0x`, `1e3`, `Infinity`). */
export function number(rules: NumberRules): Kind<number> {
  const { min, max, integer = false, raiseTo, raiseWhy } = rules;
  const expected = `${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`;
  return {
    arg: rules.arg ?? 'n',
    expected,
    parse(text) {
      if (!(integer ? /^[+-]?\d+$/ : /^[+-]?(\d+(\.\d*)?|\.\d+)$/).test(text)) throw new InvalidValue(`expected ${expected}`, text);
      return Number(text);
    },
    check(value, warn) {
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new InvalidValue(`expected ${expected}`, shownOf(value));
      if (integer && !Number.isInteger(value)) throw new InvalidValue(`expected a whole number from ${min} to ${max}`, shownOf(value));
      if (value < min) throw new InvalidValue(`must be at least ${min}`, shownOf(value));
      if (value > max) throw new InvalidValue(`must be at most ${max}`, shownOf(value));
      if (raiseTo !== undefined && value < raiseTo) {
        warn(`${value} raised to ${raiseTo}${raiseWhy ? ` (${raiseWhy})` : ''}`);
        return raiseTo;
      }
      return value;
    },
    show: (value) => String(value),
  };
}

/** A TCP port, 0 (any free one) to 65535. */
export const port: Kind<number> = number({ min: 0, max: 65535, integer: true, arg: 'port' });

/** Text that must not be blank. */
export function text(expected: string, arg: string): Kind<string> {
  return {
    arg,
    expected,
    parse: (t) => t,
    check(value) {
      if (typeof value !== 'string' || value.trim() === '') throw new InvalidValue(`expected ${expected}`, shownOf(value));
      if (value.includes('\0')) throw new InvalidValue('must not contain a NUL character');
      return value;
    },
    show: (value) => value,
  };
}

/**
 * An absolute http(s) URL without credentials, query or fragment: DDS and the
 * node append paths to it. Nothing of a refused URL is ever echoed (it may
 * hold a password).
 */
export const httpUrl: Kind<string> = {
  arg: 'url',
  expected: 'an http(s) URL',
  parse: (t) => t,
  check(value) {
    if (typeof value !== 'string' || value.trim() === '') throw new InvalidValue('expected an http(s) URL');
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new InvalidValue('not a valid URL (expected e.g. https://host:port)');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidValue('expected an http or https URL');
    if (url.username !== '' || url.password !== '') throw new InvalidValue('must not contain credentials (user:password@)');
    if (/[?#]/.test(value)) throw new InvalidValue('must not have a query (?…) or a fragment (#…)');
    return value;
  },
  show: (value) => value,
};

const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** An IP address (v4 or v6, without brackets) or a host name (RFC 1123). */
export const host: Kind<string> = {
  arg: 'addr',
  expected: 'an IP address or a host name',
  parse: (t) => t,
  check(value) {
    if (typeof value !== 'string') throw new InvalidValue('expected an IP address or a host name', shownOf(value));
    const name = value.endsWith('.') ? value.slice(0, -1) : value;
    const ok = isIP(value) !== 0 || (name.length > 0 && name.length <= 253 && name.split('.').every((label) => HOST_LABEL.test(label)));
    if (!ok) throw new InvalidValue('expected an IP address or a host name', value);
    return value;
  },
  show: (value) => value,
};

/** One of a few names; the command line's text is taken in any case. */
export function oneOf<const T extends string>(values: readonly T[], arg: string): Kind<T> {
  const expected = `one of ${values.join(', ')}`;
  const isOne = (value: unknown): value is T => typeof value === 'string' && (values as readonly string[]).includes(value);
  return {
    arg,
    expected,
    parse: (t) => t.toLowerCase() as T,
    check(value) {
      if (!isOne(value)) throw new InvalidValue(`expected ${expected}`, shownOf(value));
      return value;
    },
    show: (value) => value,
  };
}

/** On or off: `1/true/yes/on`, `0/false/no/off` on the command line (a flag alone is on). */
export const boolean: Kind<boolean> = {
  arg: 'on',
  expected: 'true or false',
  switch: true,
  parse(t) {
    const lower = t.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
    if (['0', 'false', 'no', 'off'].includes(lower)) return false;
    throw new InvalidValue('expected true or false (1/0, yes/no, on/off)', t);
  },
  check(value) {
    if (typeof value !== 'boolean') throw new InvalidValue('expected true or false', shownOf(value));
    return value;
  },
  show: (value) => (value ? 'on' : 'off'),
};

/** A list of strings; comma-separated on the command line. */
export function list(expected: string, arg: string): Kind<readonly string[]> {
  return {
    arg,
    expected,
    parse: (t) =>
      t
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== ''),
    check(value) {
      if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new InvalidValue(`expected ${expected}`);
      return Object.freeze([...(value as string[])]);
    },
    show: (value) => (value.length === 0 ? 'none' : value.join(',')),
  };
}

/** A kind whose command-line text goes through `parse` first (e.g. checked or normalised), then `kind`. */
export function parsedBy<T>(kind: Kind<T>, parse: (text: string, warn: Warn) => T): Kind<T> {
  return { ...kind, parse };
}
