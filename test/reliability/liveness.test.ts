/**
 * Liveness without pids (issue 11): registrars that share a data directory
 * judge each other by heartbeats seen to change on their own monotonic clock,
 * and by a pid only inside one PID namespace.
 *
 * - replicas in separate PID namespaces (`unshare --pid --fork --mount-proc`,
 *   as root) never overlap their registration requests at the DDS;
 * - a SIGKILLed holder is taken over at once in the same namespace, after the
 *   staleness from another one (figures);
 * - a replica whose wall clock runs 2 h ahead (libfaketime) takes nothing over;
 * - a lock and a mutex whose mtimes lie a day ahead block no longer than the
 *   staleness.
 *
 * Without `unshare` (or root) or libfaketime, those tests print why and skip.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { assertNoSecrets, callbackResponder, nodeUrlOf, now, overlappingPairs, round, sleep, startFakeDds } from '../support/index.js';
import { livenessEnv, newCredentials, outputsOf, recordFigure, scaled, sharedDataDir } from './common.js';
import { noUnshare, stopInner, UNSHARE } from './pidns.js';

const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

function noFaketime(): string | undefined {
  return fs.existsSync(FAKETIME_LIB) ? undefined : `libfaketime is not installed (${FAKETIME_LIB}; Debian package faketime)`;
}

const STALE_SECS = 5;

describe('liveness without pids', () => {
  const unshareMissing = noUnshare();

  test(`replicas in separate PID namespaces never overlap their registrations (${scaled(20)} requests)`, { timeout: 180_000 }, async (t) => {
    if (unshareMissing !== undefined) return t.skip(unshareMissing);
    const creds = newCredentials();
    const dds = await startFakeDds(t, { responder: callbackResponder({ delayMs: () => 100 + Math.floor(Math.random() * 100) }) });
    const { dataDir, spawn } = sharedDataDir(t, dds, livenessEnv(STALE_SECS, { CALLBACK_WINDOW_SECS: '30' }));
    const children = [0, 1].map((i) => spawn(`ns-${i}`, creds, { wrapper: UNSHARE }));
    await Promise.all(children.map((c) => c.waitForEvent('http.listening', { timeoutMs: 60_000 })));
    const target = scaled(20);
    const started = now();
    while (dds.registrations().length < target) {
      const dead = children.find((c) => c.hasExited);
      assert.equal(dead, undefined, `${dead?.name} exited: ${dead?.stderr().slice(-2000)}`);
      assert.ok(now() - started < 150_000, `only ${dds.registrations().length} registrations`);
      await sleep(50);
    }
    const requests = dds.registrations();
    const overlaps = overlappingPairs(requests);
    assert.equal(dds.maxConcurrent, 1, `max ${dds.maxConcurrent} registrations in flight at once`);
    assert.deepEqual(overlaps, [], 'registration requests overlapped');
    const takeovers = children.flatMap((c) => c.events('lock.takeover').map((l) => l.line['reason']));
    assert.deepEqual(takeovers, [], 'a live holder in another PID namespace was taken over');
    const busy = children.reduce((n, c) => n + c.events('lock.busy').length + c.events('registration.skipped').length, 0);
    assert.ok(busy > 0, 'the replicas never met: the test proves nothing');
    // Each sees itself as pid 1: the pid says nothing across namespaces.
    for (const c of children) assert.equal(c.events('registration.loop.start').length, 1);
    for (const c of children) assert.equal(await stopInner(c), 0, c.stderr().slice(-2000));
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'instances')), [], 'graceful stops removed their records');
    assertNoSecrets(outputsOf(children), [creds.regSecret, creds.privhex, ...dds.nodeSecrets]);
    recordFigure('liveness.pidns.requests', requests.length);
    recordFigure('liveness.pidns.overlaps', overlaps.length);
    recordFigure('liveness.pidns.max_concurrent', dds.maxConcurrent);
    t.diagnostic(`2 PID namespaces: ${requests.length} requests in ${round((now() - started) / 1000, 1)} s, ${overlaps.length} overlaps, busy/skipped ${busy}`);
  });

  for (const where of ['same', 'other'] as const) {
    test(`a SIGKILLed holder is taken over from the ${where} PID namespace`, { timeout: 120_000 }, async (t) => {
      if (where === 'other' && unshareMissing !== undefined) return t.skip(unshareMissing);
      const creds = newCredentials();
      // The first request hangs 30 s: its sender holds the lock when it is killed.
      let first = true;
      const dds = await startFakeDds(t, {
        responder: callbackResponder({
          delayMs: () => {
            const d = first ? 30_000 : 100;
            first = false;
            return d;
          },
        }),
      });
      const { spawn } = sharedDataDir(t, dds, livenessEnv(STALE_SECS, { CALLBACK_WINDOW_SECS: '30' }));
      const a = spawn('holder', creds);
      await dds.waitForRequests(1, 30_000);
      const b = spawn('successor', creds, where === 'other' ? { wrapper: UNSHARE } : {});
      await b.waitForEvent('lock.busy', { timeoutMs: 30_000 });
      const killedAt = now();
      await a.kill();
      const acquired = await b.waitFor((l) => l['event'] === 'lock.acquired' && l['takeover'] === true, { timeoutMs: 30_000 });
      const ms = Math.round(acquired.at - killedAt);
      const takeover = b.events('lock.takeover')[0]?.line;
      if (where === 'same') {
        assert.equal(takeover?.['reason'], 'holder_dead');
        assert.ok(ms <= 2000, `took ${ms} ms to take over in the same namespace`);
      } else {
        // No pid proves anything from there: the heartbeat's silence does, after the staleness.
        assert.equal(takeover?.['reason'], 'stale');
        assert.ok(ms >= STALE_SECS * 1000 - 1500 && ms <= STALE_SECS * 1000 + 4000, `took ${ms} ms from another namespace`);
      }
      await b.waitForEvent('registration.success', { timeoutMs: 10_000 });
      recordFigure(`liveness.takeover_ms.${where}_pidns`, ms);
      t.diagnostic(`SIGKILL → takeover from the ${where} PID namespace: ${ms} ms (staleness ${STALE_SECS} s)`);
    });
  }

  test('a replica whose wall clock runs 2 h ahead takes no live lock over', { timeout: 120_000 }, async (t) => {
    const missing = noFaketime();
    if (missing !== undefined) return t.skip(missing);
    const creds = newCredentials();
    // The plain replica's requests are slow: it holds the lock (refreshing it with its own clock) while the
    // fast-clock one comes to look, which sees that mtime 2 h in the past.
    const dds = await startFakeDds(t, {
      responder: callbackResponder({ delayMs: (req) => (nodeUrlOf(req).includes('plain') ? 1500 : 100 + Math.floor(Math.random() * 100)) }),
    });
    const { spawn } = sharedDataDir(t, dds, livenessEnv(STALE_SECS, { CALLBACK_WINDOW_SECS: '30' }));
    const plain = spawn('plain', creds);
    await dds.waitForRequests(1, 30_000);
    const ahead = spawn('ahead', creds, { env: { LD_PRELOAD: FAKETIME_LIB, FAKETIME: '+2h', FAKETIME_DONT_RESET: '1' } });
    await Promise.all([plain, ahead].map((c) => c.waitForEvent('http.listening', { timeoutMs: 60_000 })));
    const target = scaled(10);
    const started = now();
    while (dds.registrations().length < target) {
      for (const c of [plain, ahead]) assert.equal(c.hasExited, false, `${c.name} exited: ${c.stderr().slice(-2000)}`);
      assert.ok(now() - started < 90_000, `only ${dds.registrations().length} registrations`);
      await sleep(50);
    }
    const requests = dds.registrations();
    const overlaps = overlappingPairs(requests);
    assert.deepEqual(overlaps, [], 'registration requests overlapped');
    assert.equal(dds.maxConcurrent, 1);
    const takeovers = [plain, ahead].flatMap((c) => c.events('lock.takeover').map((l) => `${c.name}: ${String(l.line['reason'])}`));
    assert.deepEqual(takeovers, [], 'a clock stepped forward made a live holder look stale');
    const fromAhead = requests.filter((r) => nodeUrlOf(r).includes('ahead')).length;
    const met = ahead.events('lock.busy').length;
    assert.ok(met > 0, 'the replica with the fast clock never met a held lock: the test proves nothing');
    for (const c of [plain, ahead]) assert.deepEqual(await c.stop('SIGTERM', 20_000), { code: 0, signal: null });
    recordFigure('liveness.clock_ahead.requests', requests.length);
    recordFigure('liveness.clock_ahead.overlaps', overlaps.length);
    t.diagnostic(`FAKETIME=+2h beside a plain replica: ${requests.length} requests (${fromAhead} from the fast clock, which met a held lock ${met} times), ${overlaps.length} overlaps`);
  });

  test('a lock and a mutex whose mtimes lie a day ahead block no longer than the staleness', { timeout: 60_000 }, async (t) => {
    const creds = newCredentials();
    const dds = await startFakeDds(t, { responder: callbackResponder() });
    const { dataDir, spawn } = sharedDataDir(t, dds, livenessEnv(STALE_SECS));
    const lock = path.join(dataDir, 'registration.lock');
    fs.mkdirSync(lock, { recursive: true });
    fs.mkdirSync(`${lock}.mutex`);
    // A holder in a PID namespace we cannot see: no pid proves it gone.
    fs.writeFileSync(
      `${lock}.holder.json`,
      `${JSON.stringify({ pid: 1, host: 'container', started_at: 0, instance: 'ffeeddccbbaa0099', pid_ns: 'pid:[1]', boot_id: 'x', acquired_at: 0, token: 't' })}\n`,
    );
    const ahead = new Date(Date.now() + 24 * 3600_000);
    for (const p of [lock, `${lock}.mutex`]) fs.utimesSync(p, ahead, ahead);
    const c = spawn('future', creds);
    const up = await c.waitForEvent('http.listening', { timeoutMs: 30_000 });
    const ok = await c.waitForEvent('registration.success', { timeoutMs: 30_000 });
    const ms = Math.round(ok.at - up.at);
    // The mutex's 2 s, then the lock's staleness seen from its first look, then one interval of retry.
    assert.ok(ms <= STALE_SECS * 1000 + 2000 + 3000, `registered ${ms} ms after start`);
    assert.equal(c.events('lock.takeover')[0]?.line['reason'], 'stale');
    assert.equal(c.events('lock.mutex.broken').length, 1);
    assert.deepEqual(await c.stop('SIGTERM', 20_000), { code: 0, signal: null });
    recordFigure('liveness.future_mtime.registered_after_ms', ms);
    t.diagnostic(`lock + mutex a day ahead: registered ${ms} ms after start (staleness ${STALE_SECS} s)`);
  });
});
