/**
 * The node-wide callback window file (src/state/admission-window.ts): others'
 * windows are judged by the wall clock and by this process's monotonic clock.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SharedAdmissionWindow } from '../../src/state/admission-window.js';
import { tempDir } from '../support/index.js';

function clocks(start = 1_700_000_000_000) {
  const c = { wall: start, mono: 0 };
  return { c, now: () => c.wall, monotonic: () => c.mono };
}

describe('SharedAdmissionWindow', () => {
  it("sees another registrar's window while it is open, never its own", (t) => {
    const dir = tempDir(t);
    const { c, now, monotonic } = clocks();
    const a = new SharedAdmissionWindow({ dir, maxOpenMs: 10_000, now, monotonic });
    const b = new SharedAdmissionWindow({ dir, maxOpenMs: 10_000, now, monotonic });
    assert.equal(b.othersOpen(), false);
    a.open(5000);
    assert.equal(a.othersOpen(), false, 'its own window is the statechart’s business');
    assert.equal(b.othersOpen(), true);
    c.wall += 4000;
    c.mono += 4000;
    assert.equal(b.othersOpen(), true);
    c.wall += 1000;
    c.mono += 1000;
    assert.equal(b.othersOpen(), false, 'ran out');
    a.open(5000);
    assert.equal(b.othersOpen(), true);
    a.close();
    assert.equal(b.othersOpen(), false, 'withdrawn');
    a.open(0);
    assert.equal(b.othersOpen(), false, 'zero length: closed');
  });

  it('a window stamped by a clock far ahead stays open at most its length on the monotonic clock', (t) => {
    const dir = tempDir(t);
    const ahead = clocks(1_700_000_000_000 + 3_600_000);
    const here = clocks();
    const a = new SharedAdmissionWindow({ dir, maxOpenMs: 10_000, now: ahead.now, monotonic: ahead.monotonic });
    const b = new SharedAdmissionWindow({ dir, maxOpenMs: 10_000, now: here.now, monotonic: here.monotonic });
    a.open(5000);
    assert.equal(b.othersOpen(), true);
    here.c.mono += 4999;
    assert.equal(b.othersOpen(), true);
    here.c.mono += 1;
    assert.equal(b.othersOpen(), false, 'an hour of wall time ahead does not keep it open');
  });

  it('a forged length is capped at maxOpenMs; a symlink or junk file is no window', (t) => {
    const dir = tempDir(t);
    const { c, now, monotonic } = clocks();
    const b = new SharedAdmissionWindow({ dir, maxOpenMs: 2000, now, monotonic });
    fs.writeFileSync(
      join(dir, 'callback-window.forged.json'),
      JSON.stringify({ version: 1, instance: 'forged', opened_at: c.wall, open_until: c.wall + 86_400_000, window_ms: 86_400_000 }),
    );
    assert.equal(b.othersOpen(), true);
    c.mono += 2000;
    assert.equal(b.othersOpen(), false);
    fs.rmSync(join(dir, 'callback-window.forged.json'));
    const target = join(tempDir(t), 'x.json');
    fs.writeFileSync(target, JSON.stringify({ version: 1, instance: 'link', opened_at: c.wall, open_until: c.wall + 1000, window_ms: 1000 }));
    fs.symlinkSync(target, join(dir, 'callback-window.link.json'));
    fs.writeFileSync(join(dir, 'callback-window.junk.json'), 'junk');
    assert.equal(b.othersOpen(), false);
  });
});
