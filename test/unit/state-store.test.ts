import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MemoryLogger } from '../../src/log.js';
import { MAX_STATE_FILE_BYTES, StateStore } from '../../src/state/store.js';
import { parseStateText, type RegistrationState } from '../../src/state/state-file.js';
import { isWriterAlive, newWriterInfo, registerLiveWriter, sameWriter, thisProcessWriter, type WriterInfo } from '../../src/state/writer.js';
import { tempDir } from '../support/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WRITER_FIXTURE = path.join(here, '..', 'fixtures', 'state-writer.ts');
const READ_FIXTURE = path.join(here, '..', 'fixtures', 'state-read-child.ts');
const DEFAULT_STORE_FIXTURE = path.join(here, '..', 'fixtures', 'default-store-child.ts');

const FAKE_WRITER: WriterInfo = { pid: 4242, host: 'test-host', startedAt: 1_700_000_000_000 };

function storeIn(dir: string, logger = new MemoryLogger(), now?: () => number): { store: StateStore; logger: MemoryLogger } {
  return { store: new StateStore({ dir, logger, writer: FAKE_WRITER, ...(now ? { now } : {}) }), logger };
}

function tempFilesIn(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'));
}

describe('StateStore: format', () => {
  it('reads a missing file as disconnected with no health check, without logging', (t) => {
    const { store, logger } = storeIn(tempDir(t));
    assert.deepEqual(store.read(), { status: 'disconnected', lastHealthcheck: null, lastHealthcheckMs: null, writer: null });
    assert.equal(logger.lines.length, 0);
    assert.equal(store.healthy, true);
  });

  it('round-trips a state, writing the crate keys first', (t) => {
    const dir = tempDir(t);
    const { store } = storeIn(dir);
    const state: RegistrationState = {
      status: 'registered',
      lastHealthcheck: 1704164645,
      lastHealthcheckMs: 1704164645123,
      writer: FAKE_WRITER,
    };
    assert.equal(store.write(state), true);
    assert.deepEqual(store.read(), state);
    assert.equal(store.path, path.join(dir, 'registration_state.json'));
    const text = fs.readFileSync(store.path, 'utf8');
    assert.ok(text.startsWith('{"status":"registered","last_healthcheck":1704164645,'), text);
    assert.deepEqual(JSON.parse(text), {
      status: 'registered',
      last_healthcheck: 1704164645,
      last_healthcheck_ms: 1704164645123,
      writer: { pid: 4242, host: 'test-host', started_at: 1_700_000_000_000 },
    });
    // a second store (another process, as far as the file is concerned) reads the same
    assert.deepEqual(new StateStore({ dir }).read(), state);
  });

  it('reads a file written by the crate (two keys only)', (t) => {
    const dir = tempDir(t);
    const { store, logger } = storeIn(dir);
    fs.writeFileSync(store.path, '{"status": "registered", "last_healthcheck": 1704164645}');
    assert.deepEqual(store.read(), {
      status: 'registered',
      lastHealthcheck: 1704164645,
      lastHealthcheckMs: 1704164645000,
      writer: null,
    });
    fs.writeFileSync(store.path, '{"status":"registering","last_healthcheck":null}');
    assert.deepEqual(store.read(), { status: 'registering', lastHealthcheck: null, lastHealthcheckMs: null, writer: null });
    assert.equal(logger.lines.length, 0);
  });

  it('returns registered with a null health check as it is', (t) => {
    const { store, logger } = storeIn(tempDir(t));
    fs.writeFileSync(store.path, '{"status":"registered","last_healthcheck":null}');
    assert.equal(store.read().status, 'registered');
    assert.equal(store.read().lastHealthcheck, null);
    assert.equal(logger.events('status.unknown').length, 0);
  });

  it('ignores a finer time that disagrees with last_healthcheck (rewritten by the crate)', (t) => {
    const { store } = storeIn(tempDir(t));
    fs.writeFileSync(store.path, '{"status":"registered","last_healthcheck":1704164700,"last_healthcheck_ms":1704164645123}');
    assert.equal(store.read().lastHealthcheckMs, 1704164700000);
  });

  it('ignores unknown keys on read and keeps them through setStatus and touchHealthcheckNow', (t) => {
    const dir = tempDir(t);
    const { store, logger } = storeIn(dir, new MemoryLogger(), () => 1704164999456);
    fs.writeFileSync(store.path, '{"status":"registering","last_healthcheck":1704164645,"future_key":{"a":[1,2]},"note":"x"}');
    assert.deepEqual(store.read(), { status: 'registering', lastHealthcheck: 1704164645, lastHealthcheckMs: 1704164645000, writer: null });

    assert.equal(store.setStatus('registered'), true);
    let json = JSON.parse(fs.readFileSync(store.path, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(json.future_key, { a: [1, 2] });
    assert.equal(json.note, 'x');
    assert.equal(json.status, 'registered');
    assert.equal(json.last_healthcheck, 1704164645, 'setStatus keeps the health check');
    assert.deepEqual(json.writer, { pid: 4242, host: 'test-host', started_at: 1_700_000_000_000 });

    assert.equal(store.touchHealthcheckNow(), true);
    json = JSON.parse(fs.readFileSync(store.path, 'utf8')) as Record<string, unknown>;
    assert.equal(json.status, 'registered', 'touch keeps the status');
    assert.equal(json.last_healthcheck, 1704164999);
    assert.equal(json.last_healthcheck_ms, 1704164999456);
    assert.deepEqual(json.future_key, { a: [1, 2] });

    // write() replaces the whole content
    store.write({ status: 'disconnected', lastHealthcheck: null, lastHealthcheckMs: null, writer: null });
    json = JSON.parse(fs.readFileSync(store.path, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), ['status', 'last_healthcheck', 'last_healthcheck_ms', 'writer']);
    assert.equal(logger.lines.length, 0);
  });

  it('keeps an unknown key named __proto__ as plain data', (t) => {
    const { store } = storeIn(tempDir(t));
    fs.writeFileSync(store.path, '{"status":"registered","last_healthcheck":1,"__proto__":{"status":"bogus"}}');
    assert.equal(store.read().status, 'registered');
    assert.equal(store.setStatus('registering'), true);
    const text = fs.readFileSync(store.path, 'utf8');
    assert.ok(text.includes('"__proto__":{"status":"bogus"}'), text);
    assert.equal(store.read().status, 'registering');
  });

  it('writes the file with mode 0600 and creates the directory with mode 0700', (t) => {
    const dir = path.join(tempDir(t), 'nested', 'data');
    const { store } = storeIn(dir);
    assert.equal(store.setStatus('registering'), true);
    assert.equal(fs.statSync(store.path).mode & 0o777, 0o600);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(tempFilesIn(dir), []);
  });

  it('sweeps temp files left by a killed writer once they are over a minute old', (t) => {
    const dir = tempDir(t);
    const { store } = storeIn(dir);
    const old = path.join(dir, '.registration_state.json.999.aaaaaaaaaaaa.tmp');
    const fresh = path.join(dir, '.registration_state.json.999.bbbbbbbbbbbb.tmp');
    const foreign = path.join(dir, '.other.json.999.cccccccccccc.tmp');
    for (const f of [old, fresh, foreign]) fs.writeFileSync(f, '{"status":"regis');
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    fs.utimesSync(old, twoMinutesAgo, twoMinutesAgo);
    fs.utimesSync(foreign, twoMinutesAgo, twoMinutesAgo);
    // leftovers never confuse a read
    assert.equal(store.read().status, 'disconnected');
    assert.equal(store.setStatus('registered'), true);
    assert.equal(fs.existsSync(old), false, 'the old temp file is swept');
    assert.equal(fs.existsSync(fresh), true, 'a young one may belong to a live writer');
    assert.equal(fs.existsSync(foreign), true, 'other files are not ours');
    assert.equal(store.read().status, 'registered');
  });

  it('validates what it is asked to write', (t) => {
    const { store } = storeIn(tempDir(t));
    assert.throws(() => store.write({ status: 'bogus' as 'registered', lastHealthcheck: null, lastHealthcheckMs: null, writer: null }), RangeError);
    assert.throws(() => store.setStatus('bogus' as 'registered'), RangeError);
    assert.throws(() => store.write({ status: 'registered', lastHealthcheck: Number.NaN, lastHealthcheckMs: null, writer: null }), RangeError);
  });
});

describe('StateStore: invalid files', () => {
  const cases: Array<[string, string, string, number | null]> = [
    ['corrupt JSON', '{"status":"registered","last_hea', 'invalid JSON', null],
    ['an empty file', '', 'invalid JSON', null],
    ['a non-object', '["registered"]', 'not a JSON object', null],
    ['null', 'null', 'not a JSON object', null],
    ['an unknown status', '{"status":"bogus","last_healthcheck":1704164645}', 'unknown status "bogus"', 1704164645],
    ['a missing status', '{"last_healthcheck":1704164645}', 'missing status', 1704164645],
    ['a non-numeric health check', '{"status":"registered","last_healthcheck":"soon"}', 'last_healthcheck is not a number', null],
  ];
  for (const [name, text, reason, hc] of cases) {
    it(`reads ${name} as disconnected and logs status.unknown once`, (t) => {
      const { store, logger } = storeIn(tempDir(t));
      fs.writeFileSync(store.path, text);
      for (let i = 0; i < 4; i++) {
        const s = store.read();
        assert.equal(s.status, 'disconnected');
        assert.equal(s.lastHealthcheck, hc);
      }
      const lines = logger.events('status.unknown');
      assert.equal(lines.length, 1);
      assert.equal(lines[0]?.level, 'warn');
      assert.equal(lines[0]?.reason, reason);
      assert.equal(lines[0]?.path, store.path);
    });
  }

  it('starts a new episode after a valid file, and setStatus repairs the file', (t) => {
    const { store, logger } = storeIn(tempDir(t));
    fs.writeFileSync(store.path, 'garbage');
    store.read();
    store.read();
    assert.equal(store.setStatus('registering'), true);
    assert.equal(store.read().status, 'registering');
    fs.writeFileSync(store.path, 'garbage again');
    store.read();
    store.read();
    assert.equal(logger.events('status.unknown').length, 2);
  });

  it('parses without throwing whatever the text', () => {
    for (const text of ['', '1', '"x"', 'true', '{}', '{"status":{}}', '{"__proto__":{"status":"registered"}}', '\u0000']) {
      const r = parseStateText(text);
      assert.equal(r.state.status, 'disconnected');
      assert.ok(r.problem);
    }
  });
});

describe('StateStore: disk faults', () => {
  it('a directory that cannot be created: write returns false, logs once, keeps the state in memory, recovers', (t) => {
    const root = tempDir(t);
    const blocker = path.join(root, 'blocker');
    fs.writeFileSync(blocker, 'a regular file where a directory should be');
    const dir = path.join(blocker, 'data');
    const { store, logger } = storeIn(dir, new MemoryLogger(), () => 1704164645000);

    assert.equal(store.setStatus('registering'), false);
    assert.equal(store.healthy, false);
    assert.equal(store.setStatus('registered'), false);
    assert.equal(store.touchHealthcheckNow(), false);
    const errors = logger.events('state.write.error');
    assert.equal(errors.length, 1, 'logged once per episode');
    assert.equal(errors[0]?.path, store.path);
    assert.ok(['ENOTDIR', 'EEXIST'].includes(String(errors[0]?.code)), String(errors[0]?.code));
    // what we meant to write
    assert.deepEqual(store.read(), { status: 'registered', lastHealthcheck: 1704164645, lastHealthcheckMs: 1704164645000, writer: FAKE_WRITER });
    assert.equal(logger.events('state.read.error').length, 1, 'the read error is logged once too');
    store.read();
    assert.equal(logger.events('state.read.error').length, 1);

    fs.rmSync(blocker);
    assert.equal(store.setStatus('registered'), true);
    assert.equal(store.healthy, true);
    assert.equal(logger.events('state.write.recovered').length, 1);
    assert.equal(logger.events('state.write.error').length, 1);
    assert.deepEqual(new StateStore({ dir }).read().status, 'registered');
  });

  it('the state path is a directory: write returns false, leaves no temp file, read falls back to memory', (t) => {
    const dir = tempDir(t);
    const { store, logger } = storeIn(dir);
    assert.equal(store.setStatus('registering'), true);
    fs.rmSync(store.path);
    fs.mkdirSync(store.path);

    assert.equal(store.setStatus('registered'), false);
    assert.equal(store.setStatus('registered'), false);
    assert.deepEqual(tempFilesIn(dir), [], 'no temp file left behind');
    assert.equal(logger.events('state.write.error').length, 1);
    assert.equal(logger.events('state.write.error')[0]?.code, 'EISDIR');
    assert.equal(store.read().status, 'registered');
    assert.equal(store.read().status, 'registered');
    assert.equal(logger.events('state.read.error').length, 1);
    assert.equal(store.healthy, false);

    fs.rmdirSync(store.path);
    // a missing file during a write-error episode still reads as what we meant to write
    assert.equal(store.read().status, 'registered');
    assert.equal(store.touchHealthcheckNow(), true);
    assert.equal(store.healthy, true);
    assert.equal(logger.events('state.write.recovered').length, 1);
    assert.equal(new StateStore({ dir }).read().status, 'registered');

    // a second episode is logged again
    fs.rmSync(store.path);
    fs.mkdirSync(store.path);
    assert.equal(store.setStatus('disconnected'), false);
    assert.equal(logger.events('state.write.error').length, 2);
  });

  it('after recovery, a deleted file reads as the default again', (t) => {
    const { store } = storeIn(tempDir(t));
    assert.equal(store.setStatus('registered'), true);
    fs.rmSync(store.path);
    assert.equal(store.read().status, 'disconnected');
  });
});

describe('StateStore: regular files only', () => {
  it('does not follow a symlink at the path: the target is neither read nor written, the link is replaced', (t) => {
    const dir = tempDir(t);
    const { store, logger } = storeIn(dir);
    const foreign = path.join(tempDir(t), 'someone-elses.json');
    const foreignText = '{"status":"registered","last_healthcheck":1704164645,"api_token":"not-ours"}\n';
    fs.writeFileSync(foreign, foreignText);
    fs.symlinkSync(foreign, store.path);

    assert.deepEqual(store.read(), { status: 'disconnected', lastHealthcheck: null, lastHealthcheckMs: null, writer: null });
    const errors = logger.events('state.read.error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.path, store.path);
    assert.equal(errors[0]?.code, 'ELOOP');
    assert.equal(errors[0]?.reason, 'a symbolic link, not followed');
    assert.equal(store.healthy, false);

    assert.equal(store.setStatus('registering'), true);
    assert.equal(fs.readFileSync(foreign, 'utf8'), foreignText, 'the target is untouched');
    assert.equal(fs.lstatSync(store.path).isFile(), true, 'the link was replaced by a regular file');
    const json = JSON.parse(fs.readFileSync(store.path, 'utf8')) as Record<string, unknown>;
    assert.equal(json.status, 'registering');
    assert.equal(json.api_token, undefined, "the target's keys were not copied");
    assert.equal(json.last_healthcheck, null);
    assert.equal(store.read().status, 'registering');
    assert.equal(logger.events('state.read.recovered').length, 1);
    assert.equal(store.healthy, true);
  });

  it('a symlink to a directory, a directory: read errors, never a read of what they point to', (t) => {
    const dir = tempDir(t);
    const { store, logger } = storeIn(dir);
    fs.symlinkSync(tempDir(t), store.path);
    assert.equal(store.read().status, 'disconnected');
    assert.equal(logger.events('state.read.error')[0]?.code, 'ELOOP');
    fs.rmSync(store.path);
    fs.mkdirSync(store.path);
    const fresh = storeIn(dir);
    assert.equal(fresh.store.read().status, 'disconnected');
    assert.equal(fresh.logger.events('state.read.error')[0]?.code, 'EFTYPE');
    assert.equal(fresh.logger.events('state.read.error')[0]?.reason, 'not a regular file (a directory)');
  });

  it('refuses a file larger than MAX_STATE_FILE_BYTES, reads one just under it', (t) => {
    const { store, logger } = storeIn(tempDir(t));
    const text = (size: number): string => {
      const head = '{"status":"registered","last_healthcheck":1,"pad":"';
      return `${head}${'x'.repeat(size - head.length - 2)}"}`;
    };
    fs.writeFileSync(store.path, text(MAX_STATE_FILE_BYTES));
    assert.equal(store.read().status, 'registered');
    fs.writeFileSync(store.path, text(MAX_STATE_FILE_BYTES + 1));
    assert.equal(store.read().status, 'registered', 'the last state read');
    assert.equal(logger.events('state.read.error')[0]?.code, 'EFBIG');
  });

  it('a FIFO at the path: the read returns at once with a read error, the write replaces it', { timeout: 30_000 }, async (t) => {
    const dir = tempDir(t);
    const fifo = path.join(dir, 'registration_state.json');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      t.skip('mkfifo is not available: cannot make a FIFO');
      return;
    }
    // In a child: on a build that blocks on the FIFO, the child hangs (and is killed), not this test.
    const child = spawn(process.execPath, ['--import', 'tsx', READ_FIXTURE, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = once(child, 'exit');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = (await exited) as [number | null, string | null];
    clearTimeout(timer);
    assert.equal(signal, null, `the child hung on the FIFO and was killed (stderr: ${err})`);
    assert.equal(code, 0, err);
    const result = JSON.parse(out) as { before: string; wrote: boolean; after: string; lines: Array<Record<string, unknown>> };
    assert.equal(result.before, 'disconnected');
    assert.equal(result.wrote, true);
    assert.equal(result.after, 'registering');
    const errors = result.lines.filter((l) => l.event === 'state.read.error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.path, fifo);
    assert.equal(errors[0]?.code, 'EFTYPE');
    assert.equal(errors[0]?.reason, 'not a regular file (a FIFO)');
    assert.equal(fs.lstatSync(fifo).isFile(), true, 'the FIFO was replaced by the state file');
  });
});

describe('StateStore: writers', () => {
  it('describes this process', () => {
    const w = thisProcessWriter();
    assert.equal(w.pid, process.pid);
    assert.equal(w.host, os.hostname());
    assert.ok(Math.abs(w.startedAt - (Date.now() - process.uptime() * 1000)) < 2000);
    assert.deepEqual(thisProcessWriter(), w, 'stable');
  });

  it('tells live writers from gone ones', async () => {
    const me = thisProcessWriter();
    assert.equal(isWriterAlive(me), true);
    assert.equal(isWriterAlive({ ...me, startedAt: me.startedAt - 60_000 }), false, 'an earlier process with our pid');
    assert.equal(isWriterAlive({ ...me, host: 'elsewhere.example' }), true, 'another host: cannot tell');
    assert.equal(isWriterAlive({ pid: 1, host: me.host, startedAt: 0 }), true, 'pid 1 exists');

    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    const pid = child.pid;
    assert.ok(pid);
    await once(child, 'exit');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(isWriterAlive({ ...me, pid, startedAt: 0 }), false, 'an exited child of our PID namespace');
    assert.equal(isWriterAlive({ pid, host: me.host, startedAt: 0 }), true, 'no PID namespace on record: a pid proves nothing');
    assert.equal(isWriterAlive({ ...me, pid, startedAt: 0, pidNs: 'pid:[1]' }), true, 'another PID namespace: a pid proves nothing');
    assert.equal(isWriterAlive({ ...me, pid: 1, procStart: (me.procStart ?? 0) + 12345 }), false, 'pid 1, reused: its start time differs');
  });
});

describe('StateStore: writers of one process', () => {
  it('issues a distinct identity per registrar, alive while registered', () => {
    const a = newWriterInfo();
    const b = newWriterInfo();
    assert.equal(a.pid, process.pid);
    assert.equal(a.host, os.hostname());
    assert.notEqual(a.startedAt, b.startedAt);
    assert.equal(sameWriter(a, { ...a }), true);
    assert.equal(sameWriter(a, b), false);
    assert.equal(sameWriter(a, { ...a, host: 'elsewhere.example' }), false);

    assert.equal(isWriterAlive(a, b), false, 'not registered yet: counts as gone');
    assert.equal(isWriterAlive(a, a), true, 'itself');
    const unregisterA = registerLiveWriter(a);
    const unregisterA2 = registerLiveWriter(a);
    assert.equal(isWriterAlive(a, b), true);
    assert.equal(isWriterAlive(a), true, 'seen from the process default too');
    unregisterA();
    unregisterA(); // idempotent
    assert.equal(isWriterAlive(a, b), true, 'still registered once');
    unregisterA2();
    assert.equal(isWriterAlive(a, b), false, 'a stopped registrar counts as gone');
    assert.equal(isWriterAlive(thisProcessWriter(), b), true, 'the process itself is alive');
  });
});

describe('StateStore: crate-shaped functions', () => {
  it('use a default store made at the first call, in ./data of the working directory of that moment', async (t) => {
    const importedIn = tempDir(t);
    const usedIn = fs.realpathSync(tempDir(t));
    // tsx by its URL: the child starts outside the repository
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), DEFAULT_STORE_FIXTURE, usedIn], {
      cwd: importedIn,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, err);
    const expected = path.join(usedIn, 'data', 'registration_state.json');
    assert.deepEqual(JSON.parse(out), { wrote: true, status: 'registered' });
    assert.equal(JSON.parse(fs.readFileSync(expected, 'utf8')).status, 'registered');
    assert.deepEqual(fs.readdirSync(importedIn), [], 'nothing resolved or created where the package was imported');
  });
});

describe('StateStore: atomicity under SIGKILL', () => {
  it('a reader always sees a whole file while a writer is killed mid-write again and again', { timeout: 120_000 }, async (t) => {
    const dir = tempDir(t);
    const logger = new MemoryLogger();
    const reader = new StateStore({ dir, logger });
    // a large unknown key makes every write large; writers keep it
    const padding = 'x'.repeat(256 * 1024);
    fs.writeFileSync(reader.path, JSON.stringify({ status: 'disconnected', last_healthcheck: null, padding }));

    const children = new Set<ChildProcess>();
    t.after(() => {
      for (const c of children) c.kill('SIGKILL');
    });

    const seen = new Set<string>();
    let reads = 0;
    const check = (): void => {
      const text = fs.readFileSync(reader.path, 'utf8');
      const json = JSON.parse(text) as { padding?: string; status?: string; last_healthcheck_ms?: number | null };
      assert.equal(json.padding, padding, 'the unknown key survives every write');
      const s = reader.read();
      seen.add(`${s.status}/${String(s.lastHealthcheckMs)}`);
      reads++;
    };

    const KILLS = 3;
    for (let k = 0; k < KILLS; k++) {
      const child = spawn(process.execPath, ['--import', 'tsx', WRITER_FIXTURE, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.add(child);
      const exited = once(child, 'exit');
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        child.stdout?.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('ready')) resolve();
        });
        child.on('exit', () => reject(new Error(`writer exited early: ${buf}`)));
      });
      const until = Date.now() + 150 + Math.random() * 150;
      while (Date.now() < until) {
        check();
        await yieldToLoop();
      }
      child.kill('SIGKILL');
      const [code, signal] = (await exited) as [number | null, string | null];
      assert.equal(signal, 'SIGKILL', `the writer was killed, not ended (code ${String(code)})`);
      children.delete(child);
      check();
    }
    assert.ok(reads > KILLS * 5, `reads: ${reads}`);
    assert.ok(seen.size > KILLS, `the file changed under the reader: ${seen.size} distinct states`);
    assert.equal(logger.events('status.unknown').length, 0);
    assert.equal(logger.events('state.read.error').length, 0);
    // leftovers of killed writers (if any) do not disturb a new writer
    const { store } = storeIn(dir);
    assert.equal(store.setStatus('registered'), true);
    assert.equal(reader.read().status, 'registered');
  });
});

describe('StateStore: writes it can skip', () => {
  it('setStatus leaves a file that already says so, by this writer, as it is', (t) => {
    const dir = tempDir(t);
    const { store } = storeIn(dir);
    assert.equal(store.setStatus('registering'), true);
    const before = fs.statSync(store.path);
    assert.equal(store.setStatus('registering'), true);
    assert.equal(fs.statSync(store.path).ino, before.ino, 'not rewritten (a rewrite renames a new file in)');
    assert.equal(store.setStatus('registered'), true);
    assert.notEqual(fs.statSync(store.path).ino, before.ino);
    assert.equal(store.read().status, 'registered');
  });

  it('setStatus rewrites the same status when another writer wrote it', (t) => {
    const dir = tempDir(t);
    const other = new StateStore({ dir, writer: { ...FAKE_WRITER, pid: FAKE_WRITER.pid + 1 } });
    other.setStatus('registered');
    const { store } = storeIn(dir);
    store.setStatus('registered');
    assert.deepEqual(store.read().writer, FAKE_WRITER);
  });

  it('touchHealthcheckNow writes at most once per healthcheckResolutionMs, and always after it', (t) => {
    const dir = tempDir(t);
    let clock = 1_800_000_000_000;
    const store = new StateStore({ dir, writer: FAKE_WRITER, now: () => clock, healthcheckResolutionMs: 100 });
    store.setStatus('registered');
    store.touchHealthcheckNow();
    assert.equal(store.read().lastHealthcheckMs, clock);
    const first = clock;
    clock += 99;
    store.touchHealthcheckNow();
    assert.equal(store.read().lastHealthcheckMs, first, 'within the resolution: not written');
    clock += 1;
    store.touchHealthcheckNow();
    assert.equal(store.read().lastHealthcheckMs, clock, 'at the resolution: written');
    clock -= 50; // a clock that went back is written, not trusted
    store.touchHealthcheckNow();
    assert.equal(store.read().lastHealthcheckMs, clock);
  });

  it('touchHealthcheckNow writes every probe by default', (t) => {
    const dir = tempDir(t);
    let clock = 1_800_000_000_000;
    const { store } = storeIn(dir, new MemoryLogger(), () => clock);
    store.touchHealthcheckNow();
    clock += 1;
    store.touchHealthcheckNow();
    assert.equal(store.read().lastHealthcheckMs, clock);
  });

  it('an invalid file is rewritten even when the status would not change', (t) => {
    const dir = tempDir(t);
    const { store } = storeIn(dir);
    fs.writeFileSync(store.path, '{not json');
    store.setStatus('disconnected');
    assert.doesNotThrow(() => JSON.parse(fs.readFileSync(store.path, 'utf8')));
  });
});
