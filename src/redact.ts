/**
 * redact — the last line of defence against a secret reaching an outside
 * observer (the inspector, a log sink): replaces every known secret value,
 * wherever it sits in a value, by `[redacted]`, and drops fields whose names
 * say they hold secrets.
 */

/** What replaces a secret. */
export const REDACTED = '[redacted]';

/** Field names whose values are never passed on. */
export const SECRET_FIELD_NAMES: ReadonlySet<string> = new Set([
  'secret',
  'regSecret',
  'reg_secret',
  'registration_credentials',
  'secp256k1Privhex',
  'privhex',
  'privateKey',
  'private_key',
]);

/**
 * The patterns to look for, for one secret: the value itself, and for a
 * hex secret (a private key) its bare digits in any case, so `0x…`, upper-
 * and mixed-case spellings are all caught.
 */
export function secretPatterns(secret: string): RegExp[] {
  const s = secret.trim();
  if (s.length < 4) return []; // too short to search for without redacting everything
  const escape = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const bare = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
  if (bare.length >= 4 && /^[0-9a-fA-F]+$/.test(bare)) return [new RegExp(escape(bare), 'gi')];
  return [new RegExp(escape(s), 'g')];
}

/** A function that redacts a value given the secrets known right now. */
export type Redactor = <T>(value: T) => T;

/**
 * Build a redactor. `secrets` is called on every use, so secrets that appear
 * later (the node secret DDS hands over) are covered too.
 */
export function createRedactor(secrets: () => Iterable<string>, maxDepth = 32): Redactor {
  const redact = (value: unknown, needles: RegExp[], depth: number, seen: WeakSet<object>): unknown => {
    if (typeof value === 'string') {
      let out = value;
      for (const n of needles) out = out.replace(n, REDACTED);
      return out;
    }
    if (value === null || typeof value !== 'object') return value;
    if (depth >= maxDepth || seen.has(value)) return '[…]';
    seen.add(value);
    if (Array.isArray(value)) return value.map((v) => redact(v, needles, depth + 1, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_FIELD_NAMES.has(k) ? REDACTED : redact(v, needles, depth + 1, seen);
    }
    return out;
  };
  return <T>(value: T): T => {
    const needles = [...secrets()].flatMap(secretPatterns);
    return redact(value, needles, 0, new WeakSet()) as T;
  };
}
