/**
 * The shared, encrypted node secret file (src/state/node-secret-file.ts) and
 * the store that reads it (NodeSecretStore.attach).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import { MemoryLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import {
  createNodeSecretFile,
  NODE_SECRET_FILE_NAME,
  type SharedNodeSecret,
} from '../../src/state/node-secret-file.js';
import { LeakScan, tempDir } from '../support/index.js';

const SECRET = 'node-secret-Qm3r8TtXw9-do-not-leak';
const VALUE: SharedNodeSecret = { secret: SECRET, nodeId: 'node-1', organizationId: 'org-1', receivedAt: 1_700_000_000_000 };

function keyBytes(): Uint8Array {
  return generateSecretKey().exposeBytes();
}

describe('node secret file', () => {
  it('round-trips, encrypted, mode 0600, with no trace of the secret or the key on disk', (t) => {
    const dir = tempDir(t);
    const key = keyBytes();
    const file = createNodeSecretFile(dir, key);
    assert.deepEqual(file.read(), { kind: 'none' });
    file.write(VALUE);
    assert.deepEqual(file.read(), { kind: 'ok', value: VALUE });
    assert.equal(fs.statSync(file.path).mode & 0o777, 0o600);
    const text = fs.readFileSync(file.path, 'utf8');
    const json = JSON.parse(text) as Record<string, unknown>;
    assert.equal(json['format'], 'posemesh-node-secret');
    assert.equal(json['version'], 1);
    const scan = new LeakScan([SECRET, Buffer.from(key).toString('hex')]);
    scan.check('file', text);
    // A fresh nonce each write: the same value encrypts differently.
    file.write(VALUE);
    assert.notEqual(fs.readFileSync(file.path, 'utf8'), text);
    assert.deepEqual(createNodeSecretFile(dir, key).read(), { kind: 'ok', value: VALUE }, 'another instance of the same key reads it');
  });

  it('a registrar of another key cannot read it (foreign), nor with the key id forged (corrupt)', (t) => {
    const dir = tempDir(t);
    const mine = createNodeSecretFile(dir, keyBytes());
    mine.write(VALUE);
    const theirs = createNodeSecretFile(dir, keyBytes());
    assert.equal(theirs.read().kind, 'foreign');
    // Forge the other key's id into the header: authentication still fails.
    const probe = join(tempDir(t), 'probe');
    fs.mkdirSync(probe);
    const theirKey = keyBytes();
    createNodeSecretFile(probe, theirKey).write(VALUE);
    const theirId = (JSON.parse(fs.readFileSync(join(probe, NODE_SECRET_FILE_NAME), 'utf8')) as Record<string, unknown>)['key_id'];
    const json = JSON.parse(fs.readFileSync(mine.path, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(mine.path, JSON.stringify({ ...json, key_id: theirId }));
    assert.equal(createNodeSecretFile(dir, theirKey).read().kind, 'corrupt');
  });

  it('a corrupt, truncated, tampered or other-version file is refused, never thrown', (t) => {
    const dir = tempDir(t);
    const file = createNodeSecretFile(dir, keyBytes());
    file.write(VALUE);
    const good = fs.readFileSync(file.path, 'utf8');
    const json = JSON.parse(good) as Record<string, unknown>;
    const cases: Array<[string, string, string]> = [
      ['garbage', 'not json at all', 'corrupt'],
      ['truncated', good.slice(0, Math.floor(good.length / 2)), 'corrupt'],
      ['empty', '', 'corrupt'],
      ['array', '[]', 'corrupt'],
      ['version 2', JSON.stringify({ ...json, version: 2 }), 'version'],
      ['tampered ciphertext', JSON.stringify({ ...json, ciphertext: Buffer.from('x'.repeat(40)).toString('base64') }), 'corrupt'],
      ['bad nonce', JSON.stringify({ ...json, nonce: 'AAAA' }), 'corrupt'],
      ['tag flipped', JSON.stringify({ ...json, tag: Buffer.alloc(16, 1).toString('base64') }), 'corrupt'],
    ];
    for (const [what, text, kind] of cases) {
      fs.writeFileSync(file.path, text);
      assert.equal(file.read().kind, kind, what);
    }
  });

  it('refuses a symlink or a FIFO at the path (read-error), never reading the target or hanging', (t) => {
    const dir = tempDir(t);
    const key = keyBytes();
    const elsewhere = join(tempDir(t), 'target.json');
    createNodeSecretFile(join(elsewhere, '..'), key).write(VALUE);
    fs.renameSync(join(elsewhere, '..', NODE_SECRET_FILE_NAME), elsewhere);
    const file = createNodeSecretFile(dir, key);
    fs.symlinkSync(elsewhere, file.path);
    const read = file.read();
    assert.equal(read.kind, 'read-error');
    assert.equal(read.kind === 'read-error' && read.code, 'ELOOP');
    fs.unlinkSync(file.path);
    fs.mkdirSync(file.path);
    assert.equal(file.read().kind, 'read-error', 'a directory');
    fs.rmdirSync(file.path);
    execFileSync('mkfifo', [file.path]);
    const fifo = file.read();
    assert.equal(fifo.kind === 'read-error' && fifo.code, 'EFTYPE', 'a FIFO: refused, not blocking');
  });
});

/** Two stores of one key sharing a fresh directory's file; `b` attached with `logger` and `onShared`, `detachB` undoes it. */
function siblingStores(t: TestContext, logger?: MemoryLogger, onShared?: (secret: string) => void) {
  const dir = tempDir(t);
  const key = keyBytes();
  const a = new NodeSecretStore();
  a.attach(createNodeSecretFile(dir, key));
  const b = new NodeSecretStore();
  const detachB = b.attach(createNodeSecretFile(dir, key), logger, onShared);
  return { a, b, detachB };
}

describe('NodeSecretStore with a shared file', () => {
  it('a sibling store of the same key reads what the other stored, at once', (t) => {
    const logger = new MemoryLogger();
    const told: string[] = [];
    const { a, b } = siblingStores(t, logger, (secret) => told.push(secret));
    assert.equal(b.read(), undefined);
    a.write(SECRET, { nodeId: 'node-1', organizationId: 'org-1' });
    assert.equal(b.read(), SECRET);
    assert.equal(b.identity()?.nodeId, 'node-1');
    assert.equal(logger.events('persist.secret.shared').length, 1);
    assert.deepEqual(told, [SECRET], 'the sanitizers hear of a secret taken from the file');
    // A newer one from b reaches a.
    b.write('second-secret-value', { nodeId: 'node-1', organizationId: null });
    assert.equal(a.read(), 'second-secret-value');
    const scan = new LeakScan([SECRET, 'second-secret-value']);
    scan.check('log', logger.dump());
    scan.check('json', JSON.stringify(b));
  });

  it('a store attached later takes what is on file; a store of another key ignores it, logged once', (t) => {
    const dir = tempDir(t);
    const a = new NodeSecretStore();
    a.attach(createNodeSecretFile(dir, keyBytes()));
    a.write(SECRET, { nodeId: 'node-1', organizationId: null });
    const logger = new MemoryLogger();
    const other = new NodeSecretStore();
    other.attach(createNodeSecretFile(dir, keyBytes()), logger);
    assert.equal(other.read(), undefined);
    assert.equal(other.read(), undefined);
    const ignored = logger.events('persist.secret.file.ignored');
    assert.equal(ignored.length, 1, 'logged once');
    assert.equal(ignored[0]?.kind, 'foreign');
    assert.ok(!logger.dump().includes(SECRET));
  });

  it('a corrupt or symlinked file is logged once and ignored; the secret in memory stays', (t) => {
    const dir = tempDir(t);
    const key = keyBytes();
    const logger = new MemoryLogger();
    const store = new NodeSecretStore();
    const file = createNodeSecretFile(dir, key);
    store.attach(file, logger);
    store.write(SECRET, { nodeId: 'node-1', organizationId: null });
    fs.writeFileSync(file.path, '{"format":"posemesh-node-secret","version":1');
    assert.equal(store.read(), SECRET);
    assert.equal(store.read(), SECRET);
    assert.equal(logger.events('persist.secret.file.ignored').length, 1);
    fs.rmSync(file.path);
    fs.symlinkSync('/etc/hostname', file.path);
    assert.equal(store.read(), SECRET);
    const errors = logger.events('state.read.error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 'ELOOP');
  });

  it('detaching keeps the secret last read and stops sharing', (t) => {
    const { a, b, detachB } = siblingStores(t);
    a.write(SECRET);
    assert.equal(b.read(), SECRET);
    detachB();
    a.write('later-secret-value');
    assert.equal(b.read(), SECRET);
  });
});
