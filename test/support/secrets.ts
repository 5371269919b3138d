/**
 * The secret scanner of the test suites: proves that no secret (registration
 * secret, private key, node secret) reached a log, an error, an answer or a
 * child's output. Failures name where and which secret (by index and length),
 * never the secret itself. {@link LeakScan} collects texts and secrets over
 * many tests for one scan at the end.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';

/** Texts to scan: named (`{ stdout: …, stderr: … }`), or a list (named `text #<i>`). */
export type ScannedTexts = Record<string, string> | readonly string[];

/** How to compare. */
export interface ScanOptions {
  /**
   * `true`: look for each secret exactly as given (case-sensitive, no other
   * spellings). Default `false`: look for every {@link secretForms} spelling,
   * case-insensitively.
   */
  exact?: boolean;
}

/** The base64 text that depends on `bytes` alone inside a longer base64 text, at each of the three alignments. */
function base64Inner(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    const inner = b64.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + bytes.length)) / 6));
    out.push(inner, inner.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

/**
 * The encodings a secret may take in a text it was quoted into: JSON-escaped
 * (the short escapes, and `\u00XX` for every character but letters and
 * digits, as Go's encoder writes `&`, `<`, `>`), percent-encoded (as
 * `encodeURIComponent` does, and every byte), HTML entities (named, decimal,
 * hex) and base64 (standard and URL-safe, at the three alignments).
 */
export function secretEncodings(secret: string): string[] {
  const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  const notAlnum = /[^A-Za-z0-9]/g;
  const forms = [
    JSON.stringify(secret).slice(1, -1),
    secret.replace(notAlnum, (c) => `\\u${hex(c.charCodeAt(0), 4)}`),
    encodeURIComponent(secret),
    [...Buffer.from(secret, 'utf8')].map((b) => `%${hex(b, 2)}`).join(''),
    secret.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c),
    secret.replace(notAlnum, (c) => `&#${c.codePointAt(0) ?? 0};`),
    secret.replace(notAlnum, (c) => `&#x${hex(c.codePointAt(0) ?? 0, 1)};`),
    ...base64Inner(Buffer.from(secret, 'utf8')),
  ];
  return [...new Set(forms)].filter((f) => f !== secret);
}

/**
 * The spellings under which a secret might show up, lower-cased for a
 * case-insensitive comparison: as is, for hex keys without a `0x` prefix
 * (which also finds it with one), and each {@link secretEncodings} of those.
 * Forms shorter than 8 characters are left out.
 */
export function secretForms(secret: string): string[] {
  const bare = secret.replace(/^0x/i, '');
  const plain = [secret, bare];
  return [...new Set([...plain, ...plain.flatMap(secretEncodings)].map((s) => s.toLowerCase()))].filter((s) => s.length >= 8);
}

function entriesOf(texts: ScannedTexts): [string, string][] {
  return Array.isArray(texts)
    ? (texts as readonly string[]).map((text, i): [string, string] => [`text #${i}`, text])
    : Object.entries(texts as Record<string, string>);
}

/** Where a secret was found: one message per (text, secret) pair, empty when nothing leaked. */
export function findSecrets(texts: ScannedTexts, secrets: Iterable<string>, options: ScanOptions = {}): string[] {
  const list = [...secrets];
  const found: string[] = [];
  for (const [where, text] of entriesOf(texts)) {
    const haystack = options.exact === true ? text : text.toLowerCase();
    list.forEach((secret, i) => {
      const forms = options.exact === true ? [secret] : secretForms(secret);
      if (forms.some((form) => haystack.includes(form))) found.push(`secret #${i} (${secret.length} chars) leaked into ${where}`);
    });
  }
  return found;
}

/**
 * Assert that no secret (in any of its {@link secretForms}, any case, unless
 * `exact`) appears in any of `texts`; there must be at least one secret.
 *
 * @returns the number of (text, secret) pairs checked.
 */
export function assertNoSecrets(texts: ScannedTexts, secrets: Iterable<string>, options: ScanOptions = {}): number {
  const list = [...secrets];
  assert.ok(list.length > 0, 'assertNoSecrets: no secrets to look for');
  const found = findSecrets(texts, list, options);
  assert.ok(found.length === 0, found.join('\n'));
  return entriesOf(texts).length * list.length;
}

/**
 * Assert that no run of `minLength` or more hex digits appears in `text`:
 * for outputs where the secrets are made by the child itself (a node secret
 * from the simulator, `dev`'s own key and registration secret), which are all
 * long hex strings, while nothing that may be shown (ids are UUIDs, public key
 * prefixes are short) is.
 */
export function assertNoLongHex(where: string, text: string, minLength = 40): void {
  const m = new RegExp(`[0-9a-fA-F]{${minLength},}`).exec(text);
  assert.ok(m === null, `${where} holds a run of ${m?.[0].length ?? 0} hex digits (a secret?) at offset ${m?.index ?? -1}`);
}

/** Where a text came from, and the text. */
export interface ScannedText {
  where: string;
  text: string;
}

/**
 * A registry of everything a suite saw that must hold no secret, and of the
 * secrets (more are added as they are handed out), scanned at once at the end
 * with {@link findings}: a secret handed out late is looked for in early texts too.
 */
export class LeakScan {
  readonly texts: ScannedText[] = [];
  readonly secrets: Set<string>;
  readonly #options: ScanOptions;

  constructor(secrets: Iterable<string> = [], options: ScanOptions = {}) {
    this.secrets = new Set(secrets);
    this.#options = options;
  }

  add(where: string, text: string): void {
    this.texts.push({ where, text });
  }

  addSecret(secret: string): void {
    this.secrets.add(secret);
  }

  /** {@link add} `text`, and assert at once that it holds none of the secrets known so far. */
  check(where: string, text: string): void {
    this.add(where, text);
    assertNoSecrets({ [where]: text }, this.secrets, this.#options);
  }

  /** Where a secret was found (empty when none leaked). */
  findings(): string[] {
    return this.texts.flatMap(({ where, text }) => findSecrets({ [where]: text }, this.secrets, this.#options));
  }
}
