import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedactor, REDACTED } from '../../src/redact.js';
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

test('redactor survives cycles and deep values, and ignores too-short secrets', () => {
  const redact = createRedactor(() => ['ab'], 4);
  const cyc: Record<string, unknown> = { s: 'ab' };
  cyc['self'] = cyc;
  const out = redact({ cyc, deep: { a: { b: { c: { d: { e: 1 } } } } } }) as Record<string, unknown>;
  assert.equal((out['cyc'] as Record<string, unknown>)['s'], 'ab');
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
