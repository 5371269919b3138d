/**
 * The state file under protocol `siwe` (PROTOCOL.md §6.6): the store stamps
 * `protocol` and the access session's expiry (never the token), keeps the
 * crate's keys and unknown keys as they were, and a legacy store drops what a
 * siwe writer left; `status`'s report judges siwe by the registration and the
 * token (no probe TTL), legacy as before.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { readStatusReport, sessionText } from '../../src/cli/status-report.js';
import { StateStore } from '../../src/state/store.js';
import type { WriterInfo } from '../../src/state/writer.js';
import { tempDir } from '../support/index.js';

const WRITER: WriterInfo = { pid: 4242, host: 'test-host', startedAt: 1_700_000_000_000 };
const NOW = 1_704_164_645_000;
/** WRITER's key in the session's holders (it has no instance id). */
const HOLDER = 'test-host:4242:1700000000000';

function fileOf(store: StateStore): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(store.path, 'utf8')) as Record<string, unknown>;
}

describe('StateStore under protocol siwe', () => {
  it('stamps protocol and session on every write, the crate keys first and untouched, unknown keys kept', (t) => {
    const dir = tempDir(t);
    const store = new StateStore({ dir, writer: WRITER, now: () => NOW, protocol: 'siwe', session: true });
    fs.writeFileSync(store.path, '{"status":"registered","last_healthcheck":1704164000,"note":"x"}');
    assert.equal(store.setStatus('registering'), true);
    let json = fileOf(store);
    assert.deepEqual(Object.keys(json), ['status', 'last_healthcheck', 'last_healthcheck_ms', 'writer', 'protocol', 'session', 'note']);
    assert.equal(json['last_healthcheck'], 1704164000);
    assert.equal(json['protocol'], 'siwe');
    assert.deepEqual(json['session'], { access_expires_at_ms: null, holders: {} }, 'no token until this registrar signs in');

    assert.equal(store.setSession(NOW + 60_000), true);
    assert.deepEqual(fileOf(store)['session'], { access_expires_at_ms: NOW + 60_000, holders: { [HOLDER]: NOW + 60_000 } });
    assert.equal(store.setStatus('registered'), true);
    assert.equal(store.touchHealthcheckNow(), true);
    json = fileOf(store);
    assert.equal(json['status'], 'registered');
    assert.deepEqual(json['session'], { access_expires_at_ms: NOW + 60_000, holders: { [HOLDER]: NOW + 60_000 } }, 'kept through status and probe writes');
    assert.equal(json['note'], 'x');
    assert.deepEqual(store.read().session, { accessExpiresAtMs: NOW + 60_000, holders: { [HOLDER]: NOW + 60_000 } });
    assert.equal(store.read().protocol, 'siwe');

    store.setSession(null);
    assert.deepEqual(fileOf(store)['session'], { access_expires_at_ms: null, holders: {} });
  });

  it('registrars sharing the directory keep their own entries: one that stops leaves its sibling\'s token on record', (t) => {
    const dir = tempDir(t);
    let now = NOW;
    const a = new StateStore({ dir, writer: { ...WRITER, instance: 'aaaa' }, now: () => now, protocol: 'siwe', session: true });
    const b = new StateStore({ dir, writer: { ...WRITER, pid: 4343, instance: 'bbbb' }, now: () => now, protocol: 'siwe', session: true });
    a.setStatus('registered');
    a.setSession(NOW + 10_000);
    b.setSession(NOW + 20_000);
    assert.deepEqual(a.read().session, { accessExpiresAtMs: NOW + 20_000, holders: { aaaa: NOW + 10_000, bbbb: NOW + 20_000 } });
    const ino = fs.statSync(a.path).ino;
    assert.equal(a.setStatus('registered'), true);
    assert.equal(fs.statSync(a.path).ino, ino, 'nothing new to say (the holders in another order): not rewritten');
    b.setSession(null); // b stops
    assert.deepEqual(a.read().session, { accessExpiresAtMs: NOW + 10_000, holders: { aaaa: NOW + 10_000 } });
    b.setSession(NOW + 30_000);
    now = NOW + 15_000; // a's token expired (a died without a word): pruned at the next write
    b.touchHealthcheckNow();
    assert.deepEqual(a.read().session, { accessExpiresAtMs: NOW + 30_000, holders: { bbbb: NOW + 30_000 } });
  });

  it('without the session only protocol is written; a legacy store writes neither and drops both', (t) => {
    const dir = tempDir(t);
    const siwe = new StateStore({ dir, writer: WRITER, protocol: 'siwe', session: false });
    assert.equal(siwe.setSession(NOW), true, 'ignored without a session');
    siwe.setStatus('registered');
    assert.equal(fileOf(siwe)['protocol'], 'siwe');
    assert.equal('session' in fileOf(siwe), false);

    fs.writeFileSync(siwe.path, JSON.stringify({ status: 'registered', last_healthcheck: 1, protocol: 'siwe', session: { access_expires_at_ms: NOW } }));
    const legacy = new StateStore({ dir, writer: WRITER });
    legacy.setStatus('registered');
    assert.deepEqual(Object.keys(fileOf(legacy)), ['status', 'last_healthcheck', 'last_healthcheck_ms', 'writer']);
  });

  it('reads a malformed session as holding no token', (t) => {
    const dir = tempDir(t);
    const store = new StateStore({ dir });
    fs.writeFileSync(store.path, JSON.stringify({ status: 'registered', last_healthcheck: null, protocol: 'siwe', session: { access_expires_at_ms: 'soon' } }));
    assert.deepEqual(store.read().session, { accessExpiresAtMs: null, holders: {} });
    fs.writeFileSync(store.path, JSON.stringify({ status: 'registered', last_healthcheck: null, protocol: 'SIWE' }));
    assert.equal(store.read().protocol, undefined, 'anything but siwe is legacy');
  });
});

describe('status report under protocol siwe', () => {
  const write = (dir: string, state: Record<string, unknown>): void => fs.writeFileSync(`${dir}/registration_state.json`, JSON.stringify(state));

  it('registered with a valid token: healthy with no probe at all; the report says the expiry', (t) => {
    const dir = tempDir(t);
    write(dir, { status: 'registered', last_healthcheck: null, protocol: 'siwe', session: { access_expires_at_ms: NOW + 42_000 } });
    const report = readStatusReport(dir, 5, NOW);
    assert.equal(report.healthy, true);
    assert.equal(report.protocol, 'siwe');
    assert.deepEqual(report.session, { tokenExpiresAt: new Date(NOW + 42_000).toISOString(), tokenExpiresInSecs: 42 });
    assert.match(sessionText(report), /^token expires in 42 s \(at 2024-01-02T03:04:47\.000Z\)$/);
  });

  it('registered with no token, or an expired one: not healthy, "no token"', (t) => {
    const dir = tempDir(t);
    for (const at of [null, NOW, NOW - 1]) {
      write(dir, { status: 'registered', last_healthcheck: null, protocol: 'siwe', session: { access_expires_at_ms: at } });
      const report = readStatusReport(dir, 5, NOW);
      assert.equal(report.healthy, false, String(at));
      assert.equal(sessionText(report), 'no token');
    }
  });

  it('the session off: registered is enough; not registered never is', (t) => {
    const dir = tempDir(t);
    write(dir, { status: 'registered', last_healthcheck: 1, protocol: 'siwe' });
    const report = readStatusReport(dir, 5, NOW);
    assert.equal(report.healthy, true, 'a probe years old does not matter under siwe');
    assert.equal(report.session, null);
    write(dir, { status: 'disconnected', last_healthcheck: null, protocol: 'siwe', session: { access_expires_at_ms: NOW + 1000 } });
    assert.equal(readStatusReport(dir, 5, NOW).healthy, false);
  });

  it('legacy unchanged: the probe TTL decides, no session reported', (t) => {
    const dir = tempDir(t);
    write(dir, { status: 'registered', last_healthcheck: NOW / 1000 - 60 });
    const report = readStatusReport(dir, 5, NOW);
    assert.equal(report.protocol, 'legacy');
    assert.equal(report.healthy, false);
    assert.equal(report.session, null);
    assert.equal(readStatusReport(dir, 120, NOW).healthy, true);
  });
});
