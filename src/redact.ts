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

/** The variants of a secret worth looking for (a private key with and without `0x`, any case). */
export function secretVariants(secret: string): string[] {
  const s = secret.trim();
  if (s.length < 4) return []; // too short to search for without redacting everything
  const out = new Set([s]);
  const bare = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
  if (/^[0-9a-fA-F]+$/.test(bare)) {
    out.add(bare.toLowerCase());
    out.add(bare.toUpperCase());
    out.add(`0x${bare.toLowerCase()}`);
  }
  return [...out];
}

/** A function that redacts a value given the secrets known right now. */
export type Redactor = <T>(value: T) => T;

/**
 * Build a redactor. `secrets` is called on every use, so secrets that appear
 * later (the node secret DDS hands over) are covered too.
 */
export function createRedactor(secrets: () => Iterable<string>, maxDepth = 32): Redactor {
  const redact = (value: unknown, needles: string[], depth: number, seen: WeakSet<object>): unknown => {
    if (typeof value === 'string') {
      let out = value;
      for (const n of needles) if (out.includes(n)) out = out.split(n).join(REDACTED);
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
    const needles = [...secrets()].flatMap(secretVariants);
    return redact(value, needles, 0, new WeakSet()) as T;
  };
}
