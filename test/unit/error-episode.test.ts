/**
 * Disk-error episodes (src/state/error-episode.ts): one line when an episode
 * starts, the failures after it counted silently, one `.recovered` line with
 * the count and the length when it is over — with hysteresis, so that writes
 * failing and succeeding by turns stay one episode. Then the state store,
 * whose writes fail for real (its path made a directory: EISDIR) by turns.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { MemoryLogger } from '../../src/log.js';
import { ErrorEpisode } from '../../src/state/error-episode.js';
import { StateStore } from '../../src/state/store.js';
import { tempDir } from '../support/index.js';

/** An episode on a clock the test moves, and a writer that fails when told to (the episode is told what it did). */
function episodeWith(quietMs: number) {
  const logger = new MemoryLogger();
  let now = 1_000_000;
  const episode = new ErrorEpisode({
    logger,
    event: 'disk.write',
    fields: { path: '/data/file' },
    messages: { error: 'cannot write', recovered: 'writable again' },
    now: () => now,
    quietMs,
  });
  const write = (fails: boolean, afterMs = 100): boolean => {
    now += afterMs;
    if (fails) episode.failed('ENOSPC');
    else episode.succeeded();
    return !fails;
  };
  return { logger, episode, write, lines: () => logger.lines.map((l) => l.event) };
}

describe('ErrorEpisode', () => {
  it('without hysteresis: one error line, the failures counted silently, one recovered line at the first success', () => {
    const { logger, episode, write, lines } = episodeWith(0);
    write(false);
    assert.deepEqual(lines(), [], 'a success outside an episode logs nothing');
    for (let i = 0; i < 5; i++) write(true, 1000);
    assert.deepEqual(lines(), ['disk.write.error']);
    assert.deepEqual(logger.lines[0], { event: 'disk.write.error', path: '/data/file', code: 'ENOSPC', level: 'error', msg: 'cannot write' });
    assert.equal(episode.failing, 'ENOSPC');
    write(false, 500);
    assert.equal(episode.failing, undefined);
    assert.equal(episode.active, false);
    assert.deepEqual(lines(), ['disk.write.error', 'disk.write.recovered']);
    assert.deepEqual(logger.lines[1], {
      event: 'disk.write.recovered',
      path: '/data/file',
      failures: 5,
      last_code: 'ENOSPC',
      episode_ms: 4500,
      level: 'info',
      msg: 'writable again',
    });
    write(false);
    write(true);
    assert.deepEqual(lines(), ['disk.write.error', 'disk.write.recovered', 'disk.write.error'], 'a new episode is logged again');
  });

  it('with hysteresis: writes failing and succeeding by turns are one episode, over after quietMs without a failure', () => {
    const { logger, episode, write, lines } = episodeWith(2000);
    // A nearly full disk: 20 cycles of a failed write, then a successful one, 100 ms apart.
    for (let i = 0; i < 20; i++) {
      write(true);
      write(false);
    }
    assert.deepEqual(lines(), ['disk.write.error'], 'one line for the whole episode');
    assert.equal(episode.active, true);
    assert.equal(episode.failing, undefined, 'the last write succeeded');
    // Space again: writes succeed; the episode is over once 2 s passed without a failure.
    for (let i = 0; i < 19; i++) write(false);
    assert.deepEqual(lines(), ['disk.write.error'], 'not over before quietMs');
    write(false);
    assert.deepEqual(lines(), ['disk.write.error', 'disk.write.recovered']);
    // From the first failure to the first success after the last one: 39 steps of 100 ms.
    assert.equal(logger.lines[1]?.failures, 20);
    assert.equal(logger.lines[1]?.episode_ms, 3900);
    assert.equal(episode.active, false);
  });
});

describe('StateStore: one line per disk-error episode', () => {
  it('writes failing by turns (the path a directory, then not) log one state.write.error and, after errorQuietMs, one state.write.recovered', (t) => {
    const dir = tempDir(t);
    const logger = new MemoryLogger();
    let now = 1_704_164_645_000;
    const store = new StateStore({ dir, logger, now: () => now, errorQuietMs: 10_000 });
    assert.equal(store.setStatus('registered'), true);
    const blocked = (yes: boolean): void => {
      fs.rmSync(store.path, { recursive: true, force: true });
      if (yes) fs.mkdirSync(store.path);
    };
    for (let cycle = 0; cycle < 10; cycle++) {
      now += 1000;
      blocked(true);
      assert.equal(store.touchHealthcheckNow(), false, `cycle ${cycle}: failed`);
      now += 1000;
      blocked(false);
      assert.equal(store.touchHealthcheckNow(), true, `cycle ${cycle}: written`);
      assert.equal(store.healthy, true, 'healthy while the last write succeeded');
    }
    const episodeLines = () => logger.lines.filter((l) => String(l.event).startsWith('state.write.'));
    assert.deepEqual(episodeLines().map((l) => l.event), ['state.write.error'], 'no flapping');
    for (let i = 0; i < 10; i++) {
      now += 1000;
      store.touchHealthcheckNow();
    }
    assert.deepEqual(episodeLines().map((l) => [l.event, l.failures, l.episode_ms]), [
      ['state.write.error', undefined, undefined],
      ['state.write.recovered', 10, 19_000],
    ]);
    assert.equal(episodeLines()[0]?.code, 'EISDIR');
  });
});
