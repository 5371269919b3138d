/**
 * redact — the last line of defence against a secret reaching an outside
 * observer (the inspector, a log sink, a quoted DDS answer): replaces every
 * known secret value, wherever it sits in a value and however it is spelled,
 * by `[redacted]`, and drops fields whose names say they hold secrets.
 *
 * Spellings: raw; JSON-escaped (`\"`, `\u0026`, any case of hex);
 * percent-encoded (UTF-8, `+` for a space); HTML entities (`&amp;`, `&#38;`,
 * `&#x26;`); any mix of these, character by character; and base64 (standard
 * and URL-safe, at each of the three alignments inside a longer base64 text).
 * A hex secret (a private key) also matches in any case, with or without `0x`.
 *
 * Redaction never replaces a fragment shorter than {@link MIN_REDACTED_FRAGMENT}
 * characters: a shorter secret is replaced only where it stands as a whole
 * token (a registration secret `s` must not turn `https://dds…` into `http[redacted]://dd…`).
 *
 * Cost: each secret's pattern is compiled once; one combined pattern scans a
 * text in one pass, so redaction costs the same however many secrets were
 * ever seen — what is kept (see inspect.ts) is the configured secrets and the
 * last few node secrets.
 */
import { Buffer } from 'node:buffer';

/** What replaces a secret. */
export const REDACTED = '[redacted]';

/** The shortest fragment redaction replaces inside other text; a shorter secret only as a whole token. */
export const MIN_REDACTED_FRAGMENT = 8;

/**
 * Whether redaction takes `secret` only as a whole token: fewer than
 * {@link MIN_REDACTED_FRAGMENT} characters (code points) once trimmed, as
 * {@link secretPatternSource} counts them. The command warns of such a secret.
 */
export function isShortSecret(secret: string): boolean {
  return Array.from(secret.trim()).length < MIN_REDACTED_FRAGMENT;
}

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
  'nodeSecret',
  'node_secret',
  'access_token',
  'accessToken',
  'token',
]);

/** What a token is made of: a short secret is redacted only with none of these on either side. */
const TOKEN_CHAR = '[A-Za-z0-9_-]';

const HTML_NAMED: Readonly<Record<string, readonly string[]>> = {
  '&': ['amp'],
  '<': ['lt'],
  '>': ['gt'],
  '"': ['quot'],
  "'": ['apos', '#39'],
};

const JSON_SHORT: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '/': '\\/',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function escapeRegExp(t: string): string {
  return t.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** A regexp source matching `hex` in any case (`2f` → `2[fF]`). */
function anyCaseHex(hex: string): string {
  return hex.replace(/[a-f]/gi, (c) => `[${c.toLowerCase()}${c.toUpperCase()}]`);
}

/** Every spelling of one character (a code point) in the encodings above, as a regexp source. */
function charPattern(ch: string, anyCase: boolean): string {
  const cp = ch.codePointAt(0) ?? 0;
  const alts: string[] = [];
  const lower = ch.toLowerCase();
  const upper = ch.toUpperCase();
  if (anyCase && lower !== upper && lower.length === 1 && upper.length === 1) alts.push(`[${escapeRegExp(lower)}${escapeRegExp(upper)}]`);
  else alts.push(escapeRegExp(ch));
  // JSON: \uXXXX per UTF-16 unit (Go writes \u0026 for &), and the short escapes.
  const units = Array.from({ length: ch.length }, (_, i) => ch.charCodeAt(i).toString(16).padStart(4, '0'));
  alts.push(units.map((u) => `\\\\u${anyCaseHex(u)}`).join(''));
  const short = JSON_SHORT[ch];
  if (short !== undefined) alts.push(escapeRegExp(short));
  // Percent-encoding of the UTF-8 bytes; `+` for a space (forms).
  alts.push([...Buffer.from(ch, 'utf8')].map((b) => `%${anyCaseHex(b.toString(16).padStart(2, '0'))}`).join(''));
  if (ch === ' ') alts.push('\\+');
  // HTML: decimal and hex character references (leading zeros allowed), and the named ones.
  alts.push(`&#0*${cp};`, `&#[xX]0*${anyCaseHex(cp.toString(16))};`);
  for (const name of HTML_NAMED[ch] ?? []) alts.push(`&${name};`);
  return `(?:${alts.join('|')})`;
}

/**
 * The base64 spellings of `bytes` inside a longer base64 text: at each of the
 * three alignments, the characters that depend on the secret's bytes alone;
 * standard and URL-safe alphabets.
 */
function base64Spellings(bytes: Buffer): string[] {
  const out = new Set<string>();
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    const inner = b64.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + bytes.length)) / 6));
    if (inner.length < MIN_REDACTED_FRAGMENT) continue;
    out.add(inner);
    out.add(inner.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...out];
}

/**
 * The regexp source matching every spelling of one secret, or `null` for a
 * secret that is empty after trimming. A hex secret (`0x` optional) matches
 * its bare digits in any case; a secret shorter than
 * {@link MIN_REDACTED_FRAGMENT} characters matches only as a whole token.
 */
export function secretPatternSource(secret: string): string | null {
  const s = secret.trim();
  if (s === '') return null;
  const bare = /^0[xX][0-9a-fA-F]+$/.test(s) ? s.slice(2) : s;
  const hex = bare.length >= MIN_REDACTED_FRAGMENT && /^[0-9a-fA-F]+$/.test(bare);
  const text = hex ? bare : s;
  const chars = Array.from(text);
  // A hex secret takes its `0x` with it, so `0x…` becomes `[redacted]`, not `0x[redacted]`.
  const spelled = (hex ? '(?:0[xX])?' : '') + chars.map((c) => charPattern(c, hex)).join('');
  if (chars.length < MIN_REDACTED_FRAGMENT) return `(?<!${TOKEN_CHAR})${spelled}(?!${TOKEN_CHAR})`;
  const b64 = [
    ...base64Spellings(Buffer.from(text, 'utf8')),
    ...(hex ? base64Spellings(Buffer.from(text.toLowerCase(), 'utf8')) : []),
    ...(hex ? base64Spellings(Buffer.from(text.toUpperCase(), 'utf8')) : []),
    ...(hex && text.length % 2 === 0 ? base64Spellings(Buffer.from(text, 'hex')) : []),
  ];
  return [spelled, ...new Set(b64)].map((p) => (p === spelled ? p : escapeRegExp(p))).join('|');
}

/**
 * The length of the shortest text {@link secretPatternSource} matches for
 * `secret` (Infinity for none): a text shorter than this cannot hold it, so
 * a matcher need not be compiled for it (a fresh signature's costs ~50 ms).
 */
export function minSpellingLength(secret: string): number {
  const s = secret.trim();
  if (s === '') return Infinity;
  const bare = /^0[xX][0-9a-fA-F]+$/.test(s) ? s.slice(2) : s;
  const hex = bare.length >= MIN_REDACTED_FRAGMENT && /^[0-9a-fA-F]+$/.test(bare);
  const text = hex ? bare : s;
  // Each character is spelled by one character at the least (a code point may be two UTF-16 units).
  const spelled = Array.from(text).length;
  if (spelled < MIN_REDACTED_FRAGMENT) return spelled;
  const b64 = hex && text.length % 2 === 0 ? base64Spellings(Buffer.from(text, 'hex')) : base64Spellings(Buffer.from(text, 'utf8'));
  return Math.min(spelled, ...b64.map((b) => b.length));
}

/**
 * A matcher of every spelling of every secret given, compiled once. Each
 * secret's source is cached by the matcher set that built it (see
 * {@link createRedactor}); this one compiles from scratch.
 */
export function secretMatcher(secrets: Iterable<string>): RegExp | null {
  const sources = [...new Set([...secrets].map(secretPatternSource).filter((p): p is string => p !== null))];
  return sources.length === 0 ? null : new RegExp(sources.map((p) => `(?:${p})`).join('|'), 'g');
}

/** `text` with every spelling of every secret replaced by {@link REDACTED}. */
export function redactText(text: string, matcher: RegExp | null): string {
  if (matcher === null) return text;
  matcher.lastIndex = 0;
  return text.replace(matcher, REDACTED);
}

/** A function that redacts a value given the secrets known right now. */
export type Redactor = <T>(value: T) => T;

/**
 * Build a redactor. `secrets` is called on every use, so secrets that appear
 * later (the node secret DDS hands over) are covered too; the combined
 * pattern is compiled again only when the list changes, each secret's part
 * only once.
 */
export function createRedactor(secrets: () => Iterable<string>, maxDepth = 32): Redactor {
  const sources = new Map<string, string | null>();
  let lastList: string[] = [];
  let matcher: RegExp | null = null;
  const current = (): RegExp | null => {
    const list = [...new Set(secrets())];
    if (list.length === lastList.length && list.every((s, i) => s === lastList[i])) return matcher;
    for (const s of list) if (!sources.has(s)) sources.set(s, secretPatternSource(s));
    for (const s of sources.keys()) if (!list.includes(s)) sources.delete(s);
    const parts = [...new Set(list.map((s) => sources.get(s)).filter((p): p is string => typeof p === 'string'))];
    matcher = parts.length === 0 ? null : new RegExp(parts.map((p) => `(?:${p})`).join('|'), 'g');
    lastList = list;
    return matcher;
  };
  const redact = (value: unknown, needle: RegExp | null, depth: number, seen: WeakSet<object>): unknown => {
    if (typeof value === 'string') return redactText(value, needle);
    if (value === null || typeof value !== 'object') return value;
    if (depth >= maxDepth || seen.has(value)) return '[…]';
    seen.add(value);
    if (Array.isArray(value)) return value.map((v) => redact(v, needle, depth + 1, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_FIELD_NAMES.has(k) ? REDACTED : redact(v, needle, depth + 1, seen);
    }
    return out;
  };
  return <T>(value: T): T => redact(value, current(), 0, new WeakSet()) as T;
}
