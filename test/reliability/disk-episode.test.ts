/**
 * A full disk is one episode in the log (issue 12): on a real tiny tmpfs,
 * the state file's writes failing (ENOSPC) and succeeding by turns give one
 * `state.write.error` and, once writes went `errorQuietMs` without a failure,
 * one `state.write.recovered` with the count and the length; a registrar on
 * a full disk says it once, not once per failed write or per minute.
 * Mounting needs root: without it, each test says so and skips.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { MemoryLogger, type CapturedLogLine } from '../../src/log.js';
import { StateStore } from '../../src/state/store.js';
import { okResponder, tempDir, waitUntil } from '../support/index.js';
import { startDds, startRegistrar, waitForSnapshot } from '../machine/scenario-helpers.js';
import { canMountTmpfs, fillDisk, mountTinyTmpfs, unmount } from './fault-helpers.js';

const FILLER = 'filler';

/** A 64 KiB tmpfs in a temp directory, unmounted after the test; null (and the test skipped) without root. */
function tinyDisk(t: TestContext): string | null {
  if (!canMountTmpfs()) {
    t.skip('mounting a tmpfs needs root (and Linux): skipped');
    return null;
  }
  const dir = path.join(tempDir(t), 'mnt');
  fs.mkdirSync(dir);
  assert.ok(mountTinyTmpfs(dir, 64), 'mounted a 64 KiB tmpfs');
  t.after(() => unmount(dir));
  return dir;
}

/** The lines whose event starts with `prefix`. */
const linesOf = (lines: readonly CapturedLogLine[], prefix: string) => lines.filter((l) => l.event.startsWith(prefix));

describe('disk-error episodes on a real full disk', () => {
  it('ENOSPC and space by turns: one state.write.error, then one state.write.recovered with the count and the length', (t) => {
    const dir = tinyDisk(t);
    if (dir === null) return;
    const logger = new MemoryLogger();
    let now = 1_704_164_645_000;
    const store = new StateStore({ dir, logger, now: () => now, errorQuietMs: 10_000 });
    assert.equal(store.setStatus('registered'), true);
    for (let cycle = 0; cycle < 8; cycle++) {
      now += 1000;
      assert.ok(fillDisk(dir, FILLER) > 0);
      assert.equal(store.touchHealthcheckNow(), false, `cycle ${cycle}: the full disk refuses the write`);
      now += 1000;
      fs.rmSync(path.join(dir, FILLER));
      assert.equal(store.touchHealthcheckNow(), true, `cycle ${cycle}: space again`);
    }
    assert.deepEqual(linesOf(logger.lines, 'state.write.').map((l) => [l.event, l.code]), [['state.write.error', 'ENOSPC']], 'no flapping');
    for (let i = 0; i < 10; i++) {
      now += 1000;
      assert.equal(store.touchHealthcheckNow(), true);
    }
    const recovered = linesOf(logger.lines, 'state.write.recovered');
    assert.deepEqual(recovered.map((l) => [l.failures, l.episode_ms, l.last_code]), [[8, 15_000, 'ENOSPC']]);
    assert.equal(store.read().status, 'registered');
  });

  it('a registrar on a full disk: one state.write.error for the whole episode, no per-write warnings, state.write.recovered after space returns', async (t) => {
    const dir = tinyDisk(t);
    if (dir === null) return;
    const dds = await startDds(t, okResponder);
    const r = startRegistrar(t, { dds, dataDir: dir, config: { registerIntervalSecs: 1 } });
    await waitForSnapshot(r.actor, (s) => s.matches('registered'));
    await waitUntil(() => !fs.existsSync(path.join(dir, 'registration.lock')), 'the lock released');
    assert.ok(fillDisk(dir, FILLER) > 0);
    const from = r.logger.lines.length;
    const before = r.actor.getSnapshot().context.registrations;
    // Three intervals of re-registrations (no probes): each writes registering, registered and a health check.
    await waitForSnapshot(r.actor, (s) => s.context.registrations >= before + 3, 15_000);
    const during = r.logger.lines.slice(from);
    assert.deepEqual(linesOf(during, 'state.write.').map((l) => l.event), ['state.write.error'], 'one line for the episode');
    for (const name of ['status.transition.error', 'healthcheck.touch.error']) {
      assert.equal(linesOf(during, name).length, 0, `${name}: the store's episode line says it`);
    }
    fs.rmSync(path.join(dir, FILLER));
    // Over once writes went two intervals without a failure.
    await waitUntil(() => linesOf(r.logger.lines, 'state.write.recovered').length > 0, 'state.write.recovered', 15_000);
    const [line] = linesOf(r.logger.lines, 'state.write.recovered');
    assert.ok(Number(line?.failures) >= 3, `failures counted: ${String(line?.failures)}`);
    assert.ok(Number(line?.episode_ms) >= 2000, `episode_ms: ${String(line?.episode_ms)}`);
    assert.equal(linesOf(r.logger.lines, 'state.write.error').length, 1);
    await r.stop();
  });
});
