/**
 * Registrars of one node co-own its registration; registrars of two nodes
 * never share a data directory (issue 11, items 2 and 4). Real `run`
 * children, a fake DDS, and the `status` CLI as the container health check.
 *
 * - two nodes (two keys) on one directory: the second refuses to start,
 *   exit 2, naming both key prefixes and the directory — from the same PID
 *   namespace at once, from another one (`unshare`, root) by the heartbeat;
 *   a stale record of another node is replaced with a warning;
 * - rolling restart: A registered, B skipped; A stops gracefully and leaves
 *   `registered`; `status` stays 0 while B runs and is probed; B stops last
 *   and writes `disconnected`;
 * - A (the one that registered) is SIGKILLed: B stays registered while DDS
 *   probes and registers itself once the probes stop.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { loadSecp256k1Privhex, secp256k1PubkeyUncompressedHex } from '../../src/crypto.js';
import { assertNoSecrets, callbackResponder, exitWithin, now, sleep, spawnChild, startFakeDds, startProber, type Cleanup } from '../support/index.js';
import { listenUrlOf, livenessEnv, newCredentials, outputsOf, readStateJson, recordFigure, registrarEnv, sharedDataDir, type Credentials } from './common.js';
import { noUnshare, UNSHARE } from './pidns.js';

const STALE_SECS = 5;

function keyPrefixOf(creds: Credentials): string {
  return secp256k1PubkeyUncompressedHex(loadSecp256k1Privhex(creds.privhex)).slice(0, 8);
}

/** `status` on `dataDir`, as a container health check runs it: its exit status. */
async function statusExit(t: Cleanup, dataDir: string, intervalSecs: number): Promise<number | null> {
  const child = spawnChild(t, {
    args: ['status'],
    env: registrarEnv({ DATA_DIR: dataDir, REGISTER_INTERVAL_SECS: String(intervalSecs) }),
    name: 'status',
  });
  return (await exitWithin(child, 20_000)).code;
}

/** A DDS that calls back, and registrars of one node (one key) on one directory that register every `intervalSecs`. */
async function oneNode(t: Cleanup, intervalSecs: number) {
  const dds = await startFakeDds(t, { responder: callbackResponder() });
  const shared = sharedDataDir(t, dds, livenessEnv(STALE_SECS, { REGISTER_INTERVAL_SECS: String(intervalSecs), CALLBACK_WINDOW_SECS: '30' }));
  const creds = newCredentials();
  return { dds, dataDir: shared.dataDir, creds, spawn: (name: string) => shared.spawn(name, creds) };
}

describe('registrars sharing a data directory', () => {
  for (const where of ['same', 'other'] as const) {
    test(`a registrar of another node is refused (${where} PID namespace): exit 2 naming both keys and the directory`, { timeout: 60_000 }, async (t) => {
      const missing = where === 'other' ? noUnshare() : undefined;
      if (missing !== undefined) return t.skip(missing);
      const dds = await startFakeDds(t, { responder: callbackResponder() });
      const { dataDir, spawn } = sharedDataDir(t, dds, livenessEnv(STALE_SECS));
      const first = newCredentials();
      const second = newCredentials();
      const a = spawn('node-a', first);
      await a.waitForEvent('registration.success', { timeoutMs: 30_000 });
      const started = now();
      const b = spawn('node-b', second, where === 'other' ? { wrapper: UNSHARE } : {});
      const exit = await Promise.race([b.exited, sleep(30_000).then(() => null)]);
      const ms = Math.round(now() - started);
      assert.deepEqual(exit, { code: 2, signal: null }, `node-b did not exit 2: ${b.stderr().slice(-2000)}`);
      const message = b.stderr();
      assert.ok(message.includes(keyPrefixOf(first)), `names the live node's key prefix: ${message}`);
      assert.ok(message.includes(keyPrefixOf(second)), `names its own key prefix: ${message}`);
      assert.ok(message.includes(dataDir), `names the directory: ${message}`);
      assert.equal(dds.registrations().filter((r) => JSON.stringify(r.body).includes('node-b.reliability')).length, 0, 'node-b sent nothing');
      assert.equal(a.hasExited, false);
      assert.equal(readStateJson(dataDir)?.['status'], 'registered', 'node-a is untouched');
      assert.deepEqual(await a.stop('SIGTERM', 20_000), { code: 0, signal: null });
      assertNoSecrets(outputsOf([a, b]), [first.regSecret, first.privhex, second.regSecret, second.privhex, ...dds.nodeSecrets]);
      recordFigure(`siblings.other_node_refused_ms.${where}_pidns`, ms);
      t.diagnostic(`another node refused in ${ms} ms (${where} PID namespace)`);
    });
  }

  test('a stale record of another node is replaced with a warning', { timeout: 60_000 }, async (t) => {
    const dds = await startFakeDds(t, { responder: callbackResponder() });
    const { dataDir, spawn } = sharedDataDir(t, dds, livenessEnv(STALE_SECS));
    fs.mkdirSync(path.join(dataDir, 'instances'), { recursive: true });
    const stale = path.join(dataDir, 'instances', '0123456789abcdef.json');
    // A registrar of another key, in a PID namespace we cannot see, whose heartbeat stopped.
    fs.writeFileSync(
      stale,
      `${JSON.stringify({ version: 1, pid: 1, host: 'gone', started_at: 0, instance: '0123456789abcdef', pid_ns: 'pid:[1]', boot_id: 'x', node: { public_key: `04deadbeef${'0'.repeat(120)}`, url: 'http://other.example' } })}\n`,
    );
    const creds = newCredentials();
    const c = spawn('heir', creds);
    const warning = await c.waitForEvent('instances.replaced', { timeoutMs: 30_000 });
    assert.equal(warning.line['level'], 'warn');
    assert.equal(warning.line['theirs'], '04deadbe');
    assert.equal(warning.line['ours'], keyPrefixOf(creds));
    await c.waitForEvent('registration.success', { timeoutMs: 30_000 });
    assert.equal(fs.existsSync(stale), false, 'the stale record is gone');
    assert.deepEqual(await c.stop('SIGTERM', 20_000), { code: 0, signal: null });
  });

  test('rolling restart: the registrar that skipped co-owns the registration; the last to stop writes disconnected', { timeout: 90_000 }, async (t) => {
    const INTERVAL = 4;
    const { dds, dataDir, creds, spawn } = await oneNode(t, INTERVAL);
    const a = spawn('old');
    const aUrl = await listenUrlOf(a);
    const probeA = startProber(t, aUrl, 500);
    await a.waitForEvent('registration.success', { timeoutMs: 30_000 });
    const b = spawn('new');
    const bUrl = await listenUrlOf(b);
    await b.waitForEvent('registration.skipped', { timeoutMs: 30_000 });
    const requestsBefore = dds.registrations().length;

    // The old one goes: the probes now reach the new one only.
    const probeB = startProber(t, bUrl, 500);
    await probeA.stop();
    assert.deepEqual(await a.stop('SIGTERM', 20_000), { code: 0, signal: null });
    const kept = a.events('status.kept');
    assert.equal(kept.length, 1, `the old one left the status alone: ${a.stdout().slice(-1500)}`);
    assert.equal(readStateJson(dataDir)?.['status'], 'registered');

    // For longer than an interval, while the new one runs and is probed, the health check passes.
    const until = now() + (INTERVAL + 2) * 1000;
    let checks = 0;
    while (now() < until) {
      assert.equal(await statusExit(t, dataDir, INTERVAL), 0, `status failed while the new registrar runs: ${JSON.stringify(readStateJson(dataDir))}`);
      checks += 1;
      await sleep(1000);
    }
    assert.equal(dds.registrations().length, requestsBefore, 'the new one did not need to register');

    // The last one stops: disconnected, and the health check fails.
    await probeB.stop();
    assert.deepEqual(await b.stop('SIGTERM', 20_000), { code: 0, signal: null });
    assert.equal(readStateJson(dataDir)?.['status'], 'disconnected');
    assert.equal(await statusExit(t, dataDir, INTERVAL), 1);
    assertNoSecrets(outputsOf([a, b]), [creds.regSecret, creds.privhex, ...dds.nodeSecrets]);
    recordFigure('siblings.rolling_restart.status_checks_passed', checks);
  });

  test('when the registrar that registered dies, the survivor stays registered while probed and registers when the probes stop', { timeout: 90_000 }, async (t) => {
    const INTERVAL = 3;
    const { dds, dataDir, spawn } = await oneNode(t, INTERVAL);
    const a = spawn('first');
    await a.waitForEvent('registration.success', { timeoutMs: 30_000 });
    const b = spawn('survivor');
    const bUrl = await listenUrlOf(b);
    await b.waitForEvent('registration.skipped', { timeoutMs: 30_000 });
    const prober = startProber(t, bUrl, 500);
    await a.kill();
    const before = dds.registrations().length;
    await sleep((INTERVAL * 2 + 1) * 1000);
    assert.equal(dds.registrations().length, before, 'probed: the survivor keeps the registration without a request');
    assert.equal(b.events('healthcheck.expired').length, 0);
    assert.equal(readStateJson(dataDir)?.['status'], 'registered');
    assert.equal(await statusExit(t, dataDir, INTERVAL), 0);

    // DDS stops probing: after the TTL the survivor registers itself.
    await prober.stop();
    const stoppedAt = now();
    const success = await b.waitFor((l) => l['event'] === 'registration.success', { timeoutMs: (INTERVAL * 3 + 5) * 1000 });
    const ms = Math.round(success.at - stoppedAt);
    assert.ok(b.events('healthcheck.expired').length >= 1);
    assert.ok(dds.registrations().some((r) => JSON.stringify(r.body).includes('survivor')), 'the survivor sent its own registration');
    assert.deepEqual(await b.stop('SIGTERM', 20_000), { code: 0, signal: null });
    assert.equal(readStateJson(dataDir)?.['status'], 'disconnected');
    recordFigure('siblings.survivor_reregistered_after_probes_stop_ms', ms);
    t.diagnostic(`survivor re-registered ${ms} ms after the probes stopped (interval ${INTERVAL} s)`);
  });
});
