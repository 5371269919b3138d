/**
 * TokenKeeper (src/token-keeper.ts): which token it hands out and when, the
 * token file (atomic, 0600, removed at expiry without a successor, on drop and
 * on close), and that the token shows nowhere — logs, inspect, JSON.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { inspect } from 'node:util';
import { SimulatedClock } from 'xstate';
import { MemoryLogger } from '../../src/log.js';
import { AccessToken } from '../../src/register-siwe.js';
import { TokenKeeper } from '../../src/token-keeper.js';
import { assertNoSecrets, tempDir } from '../support/index.js';
import { canMountTmpfs, fillDisk, mountTinyTmpfs, unmount } from '../reliability/fault-helpers.js';

const LIFETIME_MS = 60_000;

/** A keeper on a SimulatedClock writing `file` (default: `<temp>/token`), its logger and clock. */
function keeper(t: TestContext, file: string | null = join(tempDir(t), 'token')) {
  const clock = new SimulatedClock();
  clock.set(1_800_000_000_000);
  const logger = new MemoryLogger();
  const seen: string[] = [];
  const k = new TokenKeeper({ now: () => clock.now(), file: file ?? undefined, logger, clock, onToken: (token) => seen.push(token) });
  t.after(() => k.close());
  let n = 0;
  /** Keep a fresh token expiring in `ms`; its text. */
  const keep = (ms = LIFETIME_MS): string => {
    const text = `tok-${++n}-${'z'.repeat(24)}`;
    k.keep(new AccessToken(text), clock.now() + ms);
    return text;
  };
  return { k, clock, logger, seen, keep, file: file ?? '' };
}

const heldText = (k: TokenKeeper): string | undefined => k.current()?.token.expose();

describe('TokenKeeper: what it hands out', () => {
  it('current() gives the newest token only before it expires', (t) => {
    const { k, clock, keep } = keeper(t, null);
    assert.equal(k.current(), undefined);
    assert.equal(k.remainingMs(), null);
    const a = keep(1000);
    assert.equal(heldText(k), a);
    assert.equal(k.current()?.expiresAtMs, clock.now() + 1000);
    clock.increment(999);
    assert.equal(heldText(k), a, 'still valid 1 ms before its expiry');
    assert.equal(k.remainingMs(), 1);
    clock.increment(1);
    assert.equal(k.current(), undefined, 'not at its expiry');
    assert.equal(k.remainingMs(), null);
    const b = keep();
    assert.equal(heldText(k), b);
  });

  it('current() judges by now() alone: an expired token is not handed out while its timer is late', () => {
    let wall = 1_000;
    // A clock whose timers never fire: the expiry timer is late.
    const k = new TokenKeeper({ now: () => wall, logger: new MemoryLogger(), clock: { setTimeout: () => 0, clearTimeout: () => undefined } });
    k.keep(new AccessToken('late-timer-token-0123456789'), 2_000);
    wall = 1_999;
    assert.ok(k.current());
    wall = 2_000;
    assert.equal(k.current(), undefined);
    assert.equal(k.remainingMs(), null);
  });

  it('refuse() hides the token until the next keep(); remainingMs still counts it', (t) => {
    const { k, keep } = keeper(t, null);
    const changes: string[] = [];
    k.onChange(() => changes.push(heldText(k) ?? '-'));
    const a = keep();
    k.refuse();
    assert.equal(k.current(), undefined);
    assert.equal(k.remainingMs(), LIFETIME_MS, 'a refused token is still held (a failed refresh reports it)');
    k.refuse();
    const b = keep();
    assert.equal(heldText(k), b);
    assert.deepEqual(changes, [a, '-', b], 'one change each, none for a second refuse()');
  });

  it('tells onToken each token as it arrives (for the sanitizers)', (t) => {
    const { seen, keep } = keeper(t, null);
    const tokens = [keep(), keep()];
    assert.deepEqual(seen, tokens);
  });
});

describe('TokenKeeper: the token file', () => {
  it('is written atomically with mode 0600, holds the newest token, and leaves no temp file', (t) => {
    const { file, keep } = keeper(t);
    keep();
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const newest = keep();
    assert.equal(fs.readFileSync(file, 'utf8'), newest);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(join(file, '..')), ['token'], 'nothing beside the token file');
  });

  it('is removed when the token expires without a successor (SimulatedClock), not while a successor is valid', (t) => {
    const { k, clock, file, logger, keep } = keeper(t);
    keep(1000);
    clock.increment(500);
    const b = keep(1000);
    clock.increment(500);
    assert.equal(fs.readFileSync(file, 'utf8'), b, 'the first expiry passed: the successor stays');
    clock.increment(499);
    assert.ok(fs.existsSync(file));
    clock.increment(1);
    assert.equal(fs.existsSync(file), false, 'removed at the expiry');
    assert.equal(k.current(), undefined);
    assert.deepEqual(logger.events('access_token_file.removed').map((l) => l['reason']), ['expired']);
  });

  it('is removed by drop() and by close(), and each says why', (t) => {
    const { k, file, logger, keep } = keeper(t);
    keep();
    k.drop('forgotten');
    assert.equal(fs.existsSync(file), false);
    assert.equal(k.current(), undefined);
    keep();
    assert.ok(fs.existsSync(file));
    k.close();
    assert.equal(fs.existsSync(file), false);
    assert.deepEqual(logger.events('access_token_file.removed').map((l) => l['reason']), ['forgotten', 'stopped']);
  });

  it('a write error logs access_token_file.error with its code, never the token; the token is still handed out', (t) => {
    // Its directory is a regular file: no write can succeed (not even as root).
    const notADir = join(tempDir(t), 'plain-file');
    fs.writeFileSync(notADir, '');
    const { k, logger, keep } = keeper(t, join(notADir, 'token'));
    const token = keep();
    const errors = logger.events('access_token_file.error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.['code'], 'ENOTDIR');
    assert.equal(heldText(k), token, 'the file is a by-product: the embedders still get the token');
    assertNoSecrets([logger.dump()], [token]);
  });
});

describe('TokenKeeper: the file is only ever its own token, and only while valid', () => {
  it('removes a file left by a registrar that did not stop (a crash, SIGKILL) as it starts', (t) => {
    const file = join(tempDir(t), 'token');
    fs.writeFileSync(file, 'tok-of-a-dead-registrar-zzzzzzzzzzzzzzzz', { mode: 0o600 });
    const { logger } = keeper(t, file);
    assert.equal(fs.existsSync(file), false, 'nobody vouches for a leftover token');
    assert.deepEqual(logger.events('access_token_file.removed').map((l) => l['reason']), ['leftover']);
  });

  it('a staged token is handed out only once committed, and never after close()', (t) => {
    const { k, file, clock } = keeper(t);
    k.stage(new AccessToken(`tok-staged-${'z'.repeat(24)}`), clock.now() + LIFETIME_MS);
    assert.equal(k.current(), undefined, 'staged: not yet');
    assert.equal(fs.existsSync(file), false);
    k.commitStaged();
    assert.equal(heldText(k), `tok-staged-${'z'.repeat(24)}`);
    k.stage(new AccessToken(`tok-late-${'z'.repeat(24)}`), clock.now() + LIFETIME_MS);
    k.close();
    k.commitStaged();
    assert.equal(k.current(), undefined);
  });

  it('ignores a token kept after close() (a sign-in answered while stopping): not handed out, no file', (t) => {
    const { k, file, keep } = keeper(t);
    k.close();
    keep();
    assert.equal(k.current(), undefined);
    assert.equal(fs.existsSync(file), false);
  });

  it('leaves a file that holds another registrar\'s token (a shared ACCESS_TOKEN_FILE) when it stops, with a warning', (t) => {
    const { k, file, logger, keep } = keeper(t);
    keep();
    fs.writeFileSync(file, 'tok-of-a-sibling-zzzzzzzzzzzzzzzzzzzzzzzz');
    k.close();
    assert.equal(fs.readFileSync(file, 'utf8'), 'tok-of-a-sibling-zzzzzzzzzzzzzzzzzzzzzzzz');
    assert.equal(logger.events('access_token_file.kept').length, 1);
  });

  it('refuse(token) refuses only the token held (a 401 for a token already replaced refuses nothing)', (t) => {
    const { k, keep } = keeper(t);
    const old = keep();
    const now = keep();
    k.refuse(new AccessToken(old));
    assert.equal(heldText(k), now);
    k.refuse(new AccessToken(now));
    assert.equal(k.current(), undefined);
  });

  it('after a failed write (disk full) the older token stays in the file until its own expiry, then the file goes', (t) => {
    if (!canMountTmpfs()) return t.skip('a full disk needs a tiny tmpfs, and mounting one needs root: skipped');
    const dir = tempDir(t);
    assert.ok(mountTinyTmpfs(dir, 64));
    t.after(() => unmount(dir));
    const { k, clock, logger, keep, file } = keeper(t, join(dir, 'token'));
    const a = keep(10_000);
    fillDisk(dir);
    clock.increment(7_500);
    const b = keep(10_000);
    assert.equal(logger.events('access_token_file.error').length, 1, 'the write of the successor failed');
    assert.equal(fs.readFileSync(file, 'utf8'), a, 'the older token, still valid, stays for the sidecar');
    clock.increment(2_500);
    assert.equal(fs.existsSync(file), false, 'removed at its own expiry: the file never holds an expired token');
    assert.equal(heldText(k), b, 'embedders still get the successor');
  });
});

describe('TokenKeeper: the token shows nowhere', () => {
  it('not in util.inspect or JSON of the keeper or of what it hands out, nor in its log', (t) => {
    const { k, logger, keep } = keeper(t);
    const token = keep();
    k.refuse();
    const second = keep();
    const held = k.current();
    assert.ok(held);
    const texts = [inspect(k, { depth: 10, showHidden: true }), JSON.stringify(k), inspect(held, { depth: 10 }), JSON.stringify(held), String(held.token), logger.dump()];
    assertNoSecrets(texts, [token, second]);
  });
});
