/**
 * state/liveness and state/instances: heartbeats judged on the observer's
 * monotonic clock, pid verdicts only inside our PID namespace, instance
 * records of one data directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { MemoryLogger } from '../../src/log.js';
import { InstanceRegistry } from '../../src/state/instances.js';
import { HeartbeatWatch } from '../../src/state/liveness.js';
import { isProvablyAlive, isProvablyGone, newWriterInfo, thisProcessWriter, writerFromJson, writerToJson } from '../../src/state/writer.js';
import { liveWriter, tempDir } from '../support/index.js';

describe('HeartbeatWatch', () => {
  it('counts silence on its own clock, whatever the mtime says', (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'beat');
    fs.writeFileSync(file, '');
    let clock = 0;
    const watch = new HeartbeatWatch(() => clock);
    // An mtime a day ahead: still just a version.
    const ahead = new Date(Date.now() + 86_400_000);
    fs.utimesSync(file, ahead, ahead);
    assert.equal(watch.silentForMs(file), 0, 'first look');
    clock = 4999;
    assert.equal(watch.isStale(file, 5000), false);
    clock = 5000;
    assert.equal(watch.isStale(file, 5000), true, 'not seen to change for the staleness');
    // A beat (any new mtime, even an older one) is a change.
    const past = new Date(Date.now() - 3_600_000);
    fs.utimesSync(file, past, past);
    assert.equal(watch.silentForMs(file), 0);
    clock = 9000;
    assert.equal(watch.isStale(file, 5000), false);
    fs.rmSync(file);
    assert.equal(watch.silentForMs(file), null, 'gone');
    assert.equal(watch.isStale(file, 5000), false);
  });
});

describe('writer identity', () => {
  it('carries the PID namespace, boot and start time, through the files’ JSON', () => {
    const me = thisProcessWriter();
    assert.match(me.pidNs ?? '', /^pid:\[\d+\]$/);
    assert.ok((me.bootId ?? '').length > 0);
    assert.ok(Number.isSafeInteger(me.procStart));
    const w = newWriterInfo();
    assert.match(w.instance ?? '', /^[0-9a-f]{16}$/);
    assert.deepEqual(writerFromJson(JSON.parse(JSON.stringify(writerToJson(w)))), w);
  });

  it('proves a process alive or gone only in our PID namespace', async () => {
    const me = thisProcessWriter();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'ignore' });
    const pid = child.pid;
    assert.ok(pid);
    await new Promise((r) => setTimeout(r, 100));
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const procStart = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const running = { ...me, pid, procStart };
    assert.equal(isProvablyAlive(running), true);
    assert.equal(isProvablyGone(running), false);
    assert.equal(isProvablyGone({ ...running, procStart: procStart + 1 }), true, 'pid reused: another start time');
    assert.equal(isProvablyAlive({ ...running, pidNs: 'pid:[1]' }), false, 'another namespace proves nothing');
    assert.equal(isProvablyGone({ ...running, pidNs: 'pid:[1]' }), false);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(isProvablyGone(running), true);
    assert.equal(isProvablyGone({ ...running, pidNs: undefined }), false, 'no namespace on record');
  });
});

describe('InstanceRegistry', () => {
  it('writes a record, counts live siblings of the node, removes the record at stop', async (t) => {
    const dataDir = tempDir(t);
    const node = { publicKey: `04${'ab'.repeat(64)}`, url: 'http://n.example' };
    const [selfA] = liveWriter(t);
    const [selfB] = liveWriter(t);
    const a = new InstanceRegistry({ dataDir, self: selfA, staleMs: 5000 });
    const b = new InstanceRegistry({ dataDir, self: selfB, staleMs: 5000 });
    t.after(() => {
      a.stop();
      b.stop();
    });
    assert.equal(await a.claim(node), null);
    assert.equal(await b.claim(node), null);
    const record = JSON.parse(fs.readFileSync(a.path, 'utf8')) as Record<string, unknown>;
    assert.equal(record['instance'], selfA.instance);
    assert.deepEqual(record['node'], { public_key: node.publicKey, url: node.url });
    assert.equal((fs.statSync(a.path).mode & 0o777).toString(8), '600');
    assert.equal(a.liveSiblings(), 1);
    assert.equal(a.isLive(selfB), true);
    b.stop();
    assert.equal(fs.existsSync(b.path), false);
    assert.equal(a.liveSiblings(), 0);
    assert.equal(a.isLive(selfB), false, 'no record: gone');
  });

  it('refuses a live registrar of another key at once when a pid proves it, and replaces a dead one with a warning', async (t) => {
    const dataDir = tempDir(t);
    const logger = new MemoryLogger();
    const [other, off] = liveWriter(t);
    const theirs = new InstanceRegistry({ dataDir, self: other, staleMs: 5000 });
    t.after(() => theirs.stop());
    await theirs.claim({ publicKey: `04${'cd'.repeat(64)}`, url: 'http://them.example' });
    // Of this process: alive by the registry of live writers, and its heartbeat changes.
    const ours = new InstanceRegistry({ dataDir, self: newWriterInfo(), staleMs: 5000, logger });
    t.after(() => ours.stop());
    const started = performance.now();
    const conflict = await ours.claim({ publicKey: `04${'ef'.repeat(64)}`, url: 'http://us.example' });
    assert.ok(conflict, 'refused');
    assert.equal(conflict.theirs.publicKey.slice(0, 8), '04cdcdcd');
    assert.equal(fs.existsSync(ours.path), false, 'our record is removed again');
    assert.ok(performance.now() - started < 6000);

    // Their registrar stops without removing its record (its heartbeat stops with it).
    off();
    const left = fs.readFileSync(theirs.path);
    theirs.stop();
    fs.writeFileSync(theirs.path, left);
    const heir = new InstanceRegistry({ dataDir, self: newWriterInfo(), staleMs: 5000, logger });
    t.after(() => heir.stop());
    assert.equal(await heir.claim({ publicKey: `04${'ef'.repeat(64)}`, url: 'http://us.example' }), null);
    assert.equal(logger.events('instances.replaced').length, 1);
    assert.equal(logger.events('instances.replaced')[0]?.theirs, '04cdcdcd');
    assert.equal(fs.existsSync(theirs.path), false);
  });
});
