import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { bodySnippet, scrubSecrets } from '../../src/dds-request.js';
import { createSecretScrubber, RECENT_SECRETS_KEPT, RECENT_TOKENS_KEPT } from '../../src/inspect.js';
import { createRedactor, minSpellingLength, MIN_REDACTED_FRAGMENT, REDACTED, secretMatcher, SECRET_FIELD_NAMES } from '../../src/redact.js';
import { assertNoSecrets, secretEncodings, writeFigure } from '../support/index.js';
import { createRateLimitedLog } from '../../src/log-rate-limit.js';
import { MemoryLogger } from '../../src/log.js';

const KEY = '4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318';
const REG = 'reg-secret-with.special*chars(1)';

test('redactor scrubs a hex key in every spelling, and secret-named fields', () => {
  const redact = createRedactor(() => [REG, `0x${KEY}`]);
  const mixed = KEY.split('').map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  const input = {
    a: `key ${KEY}`,
    b: [`0X${KEY.toUpperCase()}`, { c: `mixed ${mixed}` }],
    d: `reg ${REG} twice ${REG}`,
    secret: 'anything at all',
    nested: { registration_credentials: 'x', fine: 42 },
  };
  const out = redact(input);
  const text = JSON.stringify(out);
  assert.ok(!text.toLowerCase().includes(KEY), text);
  assert.ok(!text.includes(REG), text);
  assert.equal(out.secret, REDACTED);
  assert.equal(out.nested.registration_credentials, REDACTED);
  assert.equal(out.nested.fine, 42);
  assert.equal(out.d, `reg ${REDACTED} twice ${REDACTED}`);
  assert.equal(input.a, `key ${KEY}`, 'the input is not modified');
});

test('redactor survives cycles and deep values; a short secret only as a whole token', () => {
  const redact = createRedactor(() => ['ab'], 4);
  const cyc: Record<string, unknown> = { s: 'ab', t: 'tabby', u: 'x=ab&y' };
  cyc['self'] = cyc;
  const out = redact({ cyc, deep: { a: { b: { c: { d: { e: 1 } } } } } }) as Record<string, unknown>;
  const c = out['cyc'] as Record<string, unknown>;
  assert.equal(c['s'], REDACTED, 'the whole value');
  assert.equal(c['t'], 'tabby', 'never a fragment');
  assert.equal(c['u'], `x=${REDACTED}&y`, 'a whole token inside a text');
  assert.ok(JSON.stringify(out).includes('[…]'));
});

test('rate-limited log passes the first line per window and counts the rest', () => {
  let now = 0;
  const logger = new MemoryLogger();
  const log = createRateLimitedLog(logger, { windowMs: 1000, now: () => now });
  for (let i = 0; i < 5; i++) log('warn', { event: 'registration.conflict' }, 'conflict');
  log('warn', { event: 'other' });
  now = 1500;
  log('warn', { event: 'registration.conflict' }, 'conflict');
  const conflicts = logger.events('registration.conflict');
  assert.equal(conflicts.length, 2);
  assert.equal(conflicts[1]?.['suppressed'], 4);
  assert.equal(logger.events('other').length, 1);
});

/** A secret with every character an encoder treats specially. */
const SPECIAL = 'reg&sec<ret>"q\'/é+ z%x\\1';

/** Every encoding of `secret` a DDS answer (or a proxy in front of it) might quote it in. */
function encodings(secret: string): Record<string, string> {
  const goJson = secret.replace(/[^A-Za-z0-9]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const bytes = Buffer.from(secret, 'utf8');
  return {
    raw: secret,
    json: JSON.stringify(secret).slice(1, -1),
    'json \\u00XX (Go)': goJson,
    'json \\u00XX upper-case hex': goJson.replace(/\\u([0-9a-f]{4})/g, (_, h: string) => `\\u${h.toUpperCase()}`),
    'percent (encodeURIComponent)': encodeURIComponent(secret),
    'percent, every byte': [...bytes].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join(''),
    'form (+ for space)': encodeURIComponent(secret).replace(/%20/g, '+'),
    'html named': secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;'),
    'html decimal': [...secret].map((c) => `&#${c.codePointAt(0) ?? 0};`).join(''),
    'html hex': [...secret].map((c) => `&#x${(c.codePointAt(0) ?? 0).toString(16)};`).join(''),
    'base64 (aligned)': bytes.toString('base64'),
    'base64 (offset 1)': Buffer.concat([Buffer.from('x'), bytes]).toString('base64'),
    'base64 (offset 2)': Buffer.concat([Buffer.from('xy'), bytes]).toString('base64'),
    'base64url': bytes.toString('base64url'),
    'mixed (half JSON, half percent)': [...secret].map((c, i) => (i % 2 ? encodeURIComponent(c) : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)).join(''),
  };
}

test('no encoding of a secret survives redaction: raw, JSON-escaped, percent, HTML entities, base64', () => {
  const redact = createRedactor(() => [SPECIAL]);
  for (const [name, encoded] of Object.entries(encodings(SPECIAL))) {
    const text = `upstream said: {"echo":"${encoded}"} end`;
    const out = redact(text);
    assert.ok(out.includes(REDACTED), `${name}: redacted (${out})`);
    assert.ok(!out.includes(encoded) || encoded.length < MIN_REDACTED_FRAGMENT, `${name}: nothing left`);
    assert.match(out, /^upstream said: /, `${name}: the rest is kept`);
    assertNoSecrets({ [name]: out }, [SPECIAL]);
    // The project's own scrub of DDS's answers (body_snippet) too.
    const scrubbed = scrubSecrets(text, [SPECIAL]);
    assert.ok(scrubbed.includes(REDACTED), `${name}: scrubbed`);
    assertNoSecrets({ [`snippet ${name}`]: bodySnippet(text, [SPECIAL], { chars: 512 }) }, [SPECIAL]);
  }
  // The scan knows the encodings too: it would have seen them.
  for (const form of secretEncodings(SPECIAL)) assert.throws(() => assertNoSecrets({ t: `x${form}y` }, [SPECIAL]));
});

test('a short secret never garbles other text: redacted only as a whole token, in any encoding', () => {
  const url = 'https://dds.auki.network/internal/v1/nodes/register';
  for (const short of ['s', 'dd', 'ds', 'ter', 'nodes/r']) {
    assert.ok(short.length < MIN_REDACTED_FRAGMENT);
    const redact = createRedactor(() => [short]);
    assert.equal(redact(`POST ${url} failed`), `POST ${url} failed`, `${short}: fragments are never replaced`);
    assert.equal(scrubSecrets(`${url} status 500`, [short]), `${url} status 500`);
    assert.equal(redact(`secret=${short}&x=1`), `secret=${REDACTED}&x=1`);
    assert.equal(redact(short), REDACTED);
  }
  // Where it stands as a whole token, it is the secret: replaced.
  assert.equal(createRedactor(() => ['auki'])(url), `https://dds.${REDACTED}.network/internal/v1/nodes/register`);
  // A whole token in an encoding: `s&` as `s%26` is still a token.
  assert.equal(createRedactor(() => ['s&'])('v=s%26;'), `v=${REDACTED};`);
});

test('secret-named fields include the access token', () => {
  for (const k of ['access_token', 'accessToken', 'token', 'node_secret']) assert.ok(SECRET_FIELD_NAMES.has(k), k);
  const out = createRedactor(() => [])({ access_token: 'tok-1234567890', accessToken: 'tok', expiresAt: 5 });
  assert.deepEqual(out, { access_token: REDACTED, accessToken: REDACTED, expiresAt: 5 });
});

test("the inspector's scrubber keeps the configured secrets and the last few node secrets: its cost stays flat", () => {
  const configured = ['reg-secret-0123456789', `0x${KEY}`];
  const scrubber = createSecretScrubber(configured);
  const nodeSecrets = Array.from({ length: 2000 }, (_, i) => `node-secret-${i.toString().padStart(6, '0')}-abcdef`);
  /** A callback's worth of inspection messages: a snapshot and an event, with every kind of secret quoted. */
  const message = (current: string): unknown => ({
    type: '@xstate.snapshot',
    snapshot: { value: { registered: { health: 'fresh' } }, context: { note: `cb ${current} reg ${configured[0]} key ${KEY}` } },
    event: { type: 'SECRET_RECEIVED', nodeId: 'node-1', secretLength: current.length, text: encodeURIComponent(current) },
  });
  const timePerCallback = (seen: number): number => {
    const rounds = 200;
    const current = nodeSecrets[seen - 1] as string;
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) scrubber.redact(message(current));
    return (performance.now() - t0) / rounds;
  };
  scrubber.add(nodeSecrets.slice(0, 100));
  const at100 = timePerCallback(100);
  scrubber.add(nodeSecrets.slice(100));
  const at2000 = timePerCallback(2000);
  writeFigure('unit', 'redaction.per_callback_ms', { secretsSeen100: Number(at100.toFixed(4)), secretsSeen2000: Number(at2000.toFixed(4)), kept: configured.length + RECENT_SECRETS_KEPT });

  // What is kept: the configured ones for good, and the last few node secrets.
  const text = JSON.stringify(scrubber.redact({ all: [...configured, KEY.toUpperCase(), ...nodeSecrets.slice(-RECENT_SECRETS_KEPT)].join(' ') }));
  assertNoSecrets({ kept: text }, [...configured, ...nodeSecrets.slice(-RECENT_SECRETS_KEPT)]);
  assert.ok(scrubber.redact(nodeSecrets[0]) === nodeSecrets[0], 'a node secret replaced 2,000 times ago is no longer searched for');
  // Configured secrets added later (as createRegistrar does) are never forgotten.
  const later = createSecretScrubber();
  later.add(['configured-later-0123456789'], 'configured');
  later.add(nodeSecrets.slice(0, 50));
  assert.equal(later.redact('configured-later-0123456789'), REDACTED);
});

test('minSpellingLength: no spelling of a secret is shorter (a shorter text is not scanned for it)', () => {
  const secrets = ['0x' + 'ab'.repeat(65), 'AB'.repeat(32), 'reg-secret-wallet-do-not-leak', 'short', 'ünïcödé-sécret-☃-long', 'abcdefgh', '0x1234'];
  for (const secret of secrets) {
    const least = minSpellingLength(secret);
    const matcher = secretMatcher([secret]);
    assert.ok(matcher !== null);
    // Every encoding the scans know, and each of them cut one character short of the least.
    for (const form of secretEncodings(secret)) {
      matcher.lastIndex = 0;
      const found = [...form.matchAll(matcher)].map((m) => m[0].length);
      for (const length of found) assert.ok(length >= least, `${JSON.stringify(secret)}: a spelling of ${length} < ${least}`);
    }
  }
  // A 130-digit signature: its shortest spelling is its 65 bytes in base64 (86 characters), so a 30-byte body is not scanned.
  const signature = '0x' + 'c3'.repeat(65);
  assert.equal(minSpellingLength(signature), 86);
  assert.equal(scrubSecrets('{"error":"nonce already used"}', [signature]), '{"error":"nonce already used"}');
  // And a body that does hold it is still scrubbed, in base64 too.
  const b64 = Buffer.from(signature.slice(2), 'hex').toString('base64');
  assert.ok(!scrubSecrets(`{"echo":"${b64}"}`, [signature]).includes(b64.slice(4, 80)));
  assert.equal(minSpellingLength('   '), Infinity);
});

test('the scrubber keeps access tokens apart: refreshes never push a node secret out', () => {
  const scrubber = createSecretScrubber(['configured-registration-secret']);
  const nodeSecret = 'node-secret-handed-over-by-dds-0001';
  scrubber.add([nodeSecret], 'recent');
  const tokens = Array.from({ length: 10 }, (_, i) => `access-token-${i}-${'q'.repeat(24)}`);
  for (const token of tokens) scrubber.add([token], 'token');
  const text = JSON.stringify(scrubber.redact({ all: [nodeSecret, ...tokens.slice(-RECENT_TOKENS_KEPT)].join(' ') }));
  assertNoSecrets([text], [nodeSecret, ...tokens.slice(-RECENT_TOKENS_KEPT)]);
});
