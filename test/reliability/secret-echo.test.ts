/**
 * A property (fast-check): whatever the registration secret (8 to 40
 * printable characters, `&<>"'%+/=`, spaces and any Unicode among them) and
 * however DDS's error answer echoes it — raw, JSON-escaped (`\u00XX`),
 * percent-encoded, as HTML entities, in base64 (standard or URL-safe, at any
 * alignment inside a longer base64 text), or a mix character by character —
 * the failure's message, the client's log and the registrar's
 * `registration.error` line hold none of those spellings.
 *
 * Over real HTTP: the real client (`createRegistrationClient`) and the real
 * registrar (`createRegistrar`) against the fake DDS, which reads the secret
 * from the request it received and echoes it. `FUZZ_SEED` replays a run.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { describe, it, type TestContext } from 'node:test';
import fc from 'fast-check';
import { generateSecretKey } from '../../src/crypto.js';
import { MemoryLogger } from '../../src/log.js';
import { isShortSecret } from '../../src/redact.js';
import { createRegistrationClient } from '../../src/register.js';
import { assertNoSecrets, startFakeDds, tempDir, type DdsRequest, type FakeDds } from '../support/index.js';
import { startRegistrar, waitForSnapshot } from '../machine/scenario-helpers.js';

const SEED = process.env['FUZZ_SEED'] === undefined ? undefined : Number(process.env['FUZZ_SEED']);
const seeded = SEED === undefined || !Number.isFinite(SEED) ? {} : { seed: SEED };

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');
const NOT_ALNUM = /[^A-Za-z0-9]/gu;

/** One character's spelling in each encoding a character-by-character mix may use. */
const CHAR_SPELLINGS: readonly ((ch: string) => string)[] = [
  (ch) => ch,
  (ch) => JSON.stringify(ch).slice(1, -1),
  (ch) => [...ch].map((c) => Array.from({ length: c.length }, (_, i) => `\\u${hex(c.charCodeAt(i), 4)}`).join('')).join(''),
  (ch) => encodeURIComponent(ch),
  (ch) => [...Buffer.from(ch, 'utf8')].map((b) => `%${hex(b, 2).toUpperCase()}`).join(''),
  (ch) => `&#${ch.codePointAt(0) ?? 0};`,
  (ch) => `&#x${hex(ch.codePointAt(0) ?? 0, 1)};`,
];

/** How DDS echoes the secret. */
type Echo =
  | { kind: 'raw' | 'json' | 'json-u' | 'percent' | 'percent-bytes' | 'html-named' | 'html-dec' | 'html-hex' }
  | { kind: 'base64' | 'base64url'; pad: number }
  | { kind: 'mixed'; picks: readonly number[] };

/** The secret spelled as `echo` says. */
function spell(secret: string, echo: Echo): string {
  switch (echo.kind) {
    case 'raw':
      return secret;
    case 'json':
      return JSON.stringify(secret).slice(1, -1);
    case 'json-u':
      return secret.replace(NOT_ALNUM, (c) => CHAR_SPELLINGS[2]!(c));
    case 'percent':
      return encodeURIComponent(secret);
    case 'percent-bytes':
      return [...Buffer.from(secret, 'utf8')].map((b) => `%${hex(b, 2)}`).join('');
    case 'html-named':
      return secret.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
    case 'html-dec':
      return secret.replace(NOT_ALNUM, (c) => CHAR_SPELLINGS[5]!(c));
    case 'html-hex':
      return secret.replace(NOT_ALNUM, (c) => CHAR_SPELLINGS[6]!(c));
    case 'base64':
    case 'base64url': {
      // Inside a longer base64 text: `pad` bytes before and after shift the secret's alignment.
      const bytes = Buffer.concat([Buffer.alloc(echo.pad, 0x41), Buffer.from(secret, 'utf8'), Buffer.alloc(3, 0x42)]);
      return bytes.toString(echo.kind === 'base64' ? 'base64' : 'base64url');
    }
    case 'mixed':
      return [...secret].map((ch, i) => CHAR_SPELLINGS[echo.picks[i % echo.picks.length]! % CHAR_SPELLINGS.length]!(ch)).join('');
  }
}

/** The body DDS answers: its error text quoting the credentials it got, spelled as `echo` says. */
function echoBody(req: DdsRequest, echo: Echo, wrap: number): string {
  const secret = String((req.body as { registration_credentials?: unknown } | null)?.registration_credentials ?? '');
  const spelled = spell(secret, echo);
  return [
    `{"error":"invalid registration_credentials: ${spelled}"}`,
    `<html><body><p>bad credentials ${spelled}</p></body></html>`,
    `credentials=${spelled}&retry=false`,
    `token ${spelled}`,
  ][wrap % 4]!;
}

const printable = fc.oneof(
  { arbitrary: fc.constantFrom(...'&<>"\'%+/= \\'), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }), weight: 2 },
);
/** A registration secret: 8 to 40 printable characters, not a short one (those are redacted only as whole tokens, with a warning). */
const secretArb = fc
  .array(printable, { minLength: 8, maxLength: 40 })
  .map((chars) => chars.join(''))
  .filter((s) => !/\p{Cc}|\p{Cs}/u.test(s) && !isShortSecret(s));

const echoArb: fc.Arbitrary<Echo> = fc.oneof(
  fc.constantFrom<Echo>(
    { kind: 'raw' },
    { kind: 'json' },
    { kind: 'json-u' },
    { kind: 'percent' },
    { kind: 'percent-bytes' },
    { kind: 'html-named' },
    { kind: 'html-dec' },
    { kind: 'html-hex' },
  ),
  fc.record({ kind: fc.constantFrom('base64' as const, 'base64url' as const), pad: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ kind: fc.constant('mixed' as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }) }),
);

const caseArb = fc.record({ secret: secretArb, echo: echoArb, wrap: fc.nat(), status: fc.constantFrom(400, 401, 403, 500, 503) });

type Case = { secret: string; echo: Echo; wrap: number; status: number };

/** Assert that no spelling of the secret — the one DDS used, and every uniform one — is in `texts`. */
function assertNoEcho(c: Case, texts: Record<string, string>): void {
  const spelled = spell(c.secret, c.echo);
  for (const [where, text] of Object.entries(texts)) {
    assert.ok(!text.includes(c.secret), `${where}: the raw secret`);
    if (c.echo.kind !== 'base64' && c.echo.kind !== 'base64url') assert.ok(!text.includes(spelled), `${where}: the secret as DDS spelled it (${c.echo.kind})`);
  }
  assertNoSecrets(texts, [c.secret]);
}

describe('a DDS error echoing the registration secret, in any encoding (fast-check)', () => {
  let current: Case | undefined;
  /** The fake DDS, answering the current case (the secret read from the request it got). */
  const startEchoingDds = (t: TestContext): Promise<FakeDds> =>
    startFakeDds(t, {
      responder: (req) => (current === undefined ? { status: 500 } : { status: current.status, headers: { 'content-type': 'text/plain' }, body: echoBody(req, current.echo, current.wrap) }),
    });

  it('the client: the failure message and its log hold no spelling of it (100 runs)', async (t) => {
    const dds = await startEchoingDds(t);
    const key = generateSecretKey();
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        current = c;
        const logger = new MemoryLogger();
        const client = createRegistrationClient({ ddsBaseUrl: dds.url, nodeUrl: 'https://node.example.test', nodeVersion: '1.2.3', regSecret: c.secret, key, capabilities: ['/a'], timeoutMs: 5000, logger });
        const result = await client.register();
        assert.equal(result.ok, false);
        assert.ok(!result.ok && result.status === c.status, `answered ${c.status}: ${JSON.stringify(result)}`);
        assertNoEcho(c, { message: result.ok ? '' : result.message, log: JSON.stringify(logger.lines) });
      }),
      { numRuns: 100, ...seeded },
    );
  });

  it('the registrar: registration.error, every log line and the snapshot hold no spelling of it (25 runs)', async (t) => {
    const dds = await startEchoingDds(t);
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        current = c;
        const r = startRegistrar(t, { dds, dataDir: tempDir(t), config: { regSecret: c.secret }, label: 'secret-echo' });
        try {
          const s = await waitForSnapshot(r.actor, (x) => x.matches('backoff'));
          const line = r.logger.events('registration.error').at(-1) ?? r.logger.events('registration.conflict').at(-1);
          assert.ok(line !== undefined && String(line.error).includes('body_snippet'), 'the failure is logged, with its snippet');
          assertNoEcho(c, { line: JSON.stringify(line), log: JSON.stringify(r.logger.lines), snapshot: JSON.stringify(s) });
        } finally {
          await r.stop();
        }
      }),
      { numRuns: 25, ...seeded },
    );
  });
});
