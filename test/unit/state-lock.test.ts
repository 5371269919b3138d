import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MemoryLogger } from '../../src/log.js';
import { RegistrationLock, type LockAttempt } from '../../src/state/lock.js';
import type { WriterInfo } from '../../src/state/writer.js';
import { liveWriter, tempDir } from '../support/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, '..', 'fixtures', 'lock-child.ts');

type Message = Record<string, unknown> & { event: string };

/** A lock-child process and the JSON lines it prints. */
class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<unknown[]>;
  readonly #messages: Message[] = [];
  readonly #waiters: Array<() => void> = [];

  constructor(t: TestContext, config: Record<string, unknown>) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = once(this.proc, 'exit');
    t.after(() => {
      if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    });
    let buf = '';
    this.proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        this.#messages.push(JSON.parse(line) as Message);
        for (const w of this.#waiters.splice(0)) w();
      }
    });
    this.proc.on('exit', () => {
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** The first message named `event` (waits for it; fails if the child exits first or after `timeoutMs`). */
  async next(event: string, timeoutMs = 30_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#messages.findIndex((m) => m.event === event);
      if (i >= 0) return this.#messages.splice(i, 1)[0] as Message;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`child exited before ${event}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${event}`);
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), sleep(250)]);
    }
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  /** Close stdin (the child then releases and exits) and wait for the exit. */
  async finish(): Promise<number | null> {
    this.proc.stdin?.end();
    const [code] = (await this.exited) as [number | null];
    return code;
  }

  /** SIGKILL the child and wait until it is reaped. */
  async kill(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

async function childHolding(t: TestContext, config: Record<string, unknown>): Promise<Child> {
  const child = new Child(t, { mode: 'hold', ...config });
  const msg = await child.next('attempt');
  assert.deepEqual(msg.result, { kind: 'acquired', takeover: false });
  return child;
}

async function acquireWithin(lock: RegistrationLock, ms: number): Promise<{ attempt: LockAttempt; attempts: LockAttempt[] }> {
  const attempts: LockAttempt[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const attempt = await lock.tryAcquire();
    attempts.push(attempt);
    if (attempt.kind !== 'busy' || Date.now() > deadline) return { attempt, attempts };
    await sleep(200);
  }
}

describe('RegistrationLock in one process', () => {
  it('acquires, is busy for another instance, releases, and the other acquires', async (t) => {
    const dir = tempDir(t);
    const logger = new MemoryLogger();
    const a = new RegistrationLock({ dir, logger });
    const b = new RegistrationLock({ dir, logger });
    t.after(async () => {
      await a.release();
      await b.release();
    });
    assert.equal(a.path, path.join(dir, 'registration.lock'));
    assert.equal(a.held, false);

    assert.deepEqual(await a.tryAcquire(), { kind: 'acquired', takeover: false });
    assert.equal(a.held, true);
    assert.ok(fs.statSync(a.path).isDirectory());
    assert.deepEqual(fs.readdirSync(a.path), [], 'nothing inside the lock directory');
    const holder = a.readHolder();
    assert.ok(holder);
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.host, os.hostname());
    assert.ok(Math.abs(holder.acquiredAt - Date.now()) < 10_000);
    const holderFile = JSON.parse(fs.readFileSync(`${a.path}.holder.json`, 'utf8')) as Record<string, unknown>;
    assert.equal(holderFile.pid, process.pid);
    assert.equal(fs.statSync(`${a.path}.holder.json`).mode & 0o777, 0o600);

    assert.deepEqual(await a.tryAcquire(), { kind: 'acquired', takeover: false }, 'holding already');
    const busy = await b.tryAcquire();
    assert.equal(busy.kind, 'busy');
    assert.deepEqual(busy.kind === 'busy' ? busy.holder : null, holder);
    assert.equal(b.held, false);

    await a.release();
    assert.equal(a.held, false);
    assert.equal(fs.existsSync(a.path), false);
    assert.equal(fs.existsSync(`${a.path}.holder.json`), false);
    assert.equal(a.readHolder(), null);
    await a.release(); // no-op

    assert.deepEqual(await b.tryAcquire(), { kind: 'acquired', takeover: false });
    assert.equal(b.readHolder()?.pid, process.pid);
    await b.release();
    assert.deepEqual(fs.readdirSync(dir), [], 'release leaves nothing behind');
    assert.equal(logger.lines.length, 0);
  });

  it('lets exactly one of several simultaneous attempts in', async (t) => {
    const dir = tempDir(t);
    const locks = Array.from({ length: 5 }, () => new RegistrationLock({ dir }));
    t.after(async () => {
      for (const l of locks) await l.release();
    });
    const results = await Promise.all(locks.map((l) => l.tryAcquire()));
    assert.equal(results.filter((r) => r.kind === 'acquired').length, 1, JSON.stringify(results));
    assert.equal(results.filter((r) => r.kind === 'busy').length, 4);
    assert.equal(locks.filter((l) => l.held).length, 1);
  });

  it('creates the data directory, and clamps staleMs to 5 s', async (t) => {
    const dir = path.join(tempDir(t), 'not', 'yet');
    const lock = new RegistrationLock({ dir, staleMs: 100 });
    t.after(() => lock.release());
    assert.equal(lock.staleMs, 5000);
    assert.equal((await lock.tryAcquire()).kind, 'acquired');
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  });

  it('answers error, not busy, on a disk error', async (t) => {
    const root = tempDir(t);
    const file = path.join(root, 'regular-file');
    fs.writeFileSync(file, 'not a directory');
    const lock = new RegistrationLock({ lockPath: path.join(file, 'data', 'registration.lock') });
    const r = await lock.tryAcquire();
    assert.equal(r.kind, 'error');
    assert.ok(r.kind === 'error' && ['ENOTDIR', 'EEXIST'].includes(r.code), JSON.stringify(r));
    assert.ok(r.kind === 'error' && r.message.includes(lock.path));
    assert.equal(lock.held, false);

    // the lock path exists as a regular file: mkdir fails with EEXIST, stat says it is no lock we can remove
    const lock2 = new RegistrationLock({ lockPath: file });
    const r2 = await lock2.tryAcquire();
    assert.equal(r2.kind, 'error', JSON.stringify(r2));
    assert.equal(fs.readFileSync(file, 'utf8'), 'not a directory', 'the file is untouched');
  });

  it('reports a lock whose mtime was changed behind its back as compromised, without crashing', async (t) => {
    const dir = tempDir(t);
    const logger = new MemoryLogger();
    const lost: Array<{ code: string; message: string }> = [];
    const a = new RegistrationLock({
      dir,
      logger,
      staleMs: 5000,
      updateMs: 1000,
      onCompromised: (info) => {
        lost.push(info);
        throw new Error('a careless callback'); // must not crash the process
      },
    });
    t.after(() => a.release());
    assert.equal((await a.tryAcquire()).kind, 'acquired');
    // proper-lockfile notices on its next refresh that the mtime is no longer the one it set
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(a.path, past, past);
    const deadline = Date.now() + 15_000;
    while (lost.length === 0 && Date.now() < deadline) await sleep(100);
    assert.equal(lost.length, 1);
    assert.equal(lost[0]?.code, 'ECOMPROMISED');
    assert.ok(lost[0]?.message.includes(a.path));
    assert.match(lost[0]?.message ?? '', /mtime changed/);
    assert.equal(a.held, false);
    assert.equal(logger.events('lock.compromised').length, 1);

    // nobody refreshes it any more: another instance takes it over once it has not seen its mtime
    // change for the staleness — on its own monotonic clock, not because the mtime is a minute old
    const b = new RegistrationLock({ dir, logger, staleMs: 5000 });
    t.after(() => b.release());
    const started = performance.now();
    const won = await acquireWithin(b, 15_000);
    assert.equal(won.attempts[0]?.kind, 'busy', 'an old mtime alone does not make a lock stale');
    assert.deepEqual(won.attempt, { kind: 'acquired', takeover: true });
    assert.ok(performance.now() - started >= 4500, 'waited out the staleness');
    assert.equal(logger.events('lock.takeover')[0]?.reason, 'stale');
    await a.release(); // not held any more: a no-op that leaves b's lock alone
    assert.ok(fs.existsSync(b.path));
    assert.equal(b.readHolder()?.pid, process.pid);
  });

  it('reports a lock whose directory vanished as compromised', async (t) => {
    const dir = tempDir(t);
    const lost: string[] = [];
    const a = new RegistrationLock({ dir, staleMs: 5000, updateMs: 1000, onCompromised: (i) => lost.push(`${i.code}: ${i.message}`) });
    t.after(() => a.release());
    assert.equal((await a.tryAcquire()).kind, 'acquired');
    fs.rmdirSync(a.path);
    const deadline = Date.now() + 15_000;
    while (lost.length === 0 && Date.now() < deadline) await sleep(100);
    assert.deepEqual(lost, [`ECOMPROMISED: lock ${a.path} was lost: its directory vanished`]);
    assert.equal(a.held, false);
  });

  it('tells registrars of one process apart: busy while the holder runs, taken over once it stopped', async (t) => {
    const dir = tempDir(t);
    const logger = new MemoryLogger();
    const [selfA, unregisterA] = liveWriter(t);
    const [selfB] = liveWriter(t);
    const a = new RegistrationLock({ dir, writer: selfA, logger, onCompromised: () => undefined });
    const b = new RegistrationLock({ dir, writer: selfB, logger });
    t.after(() => b.release());
    assert.equal((await a.tryAcquire()).kind, 'acquired');
    const busy = await b.tryAcquire();
    assert.equal(busy.kind, 'busy');
    assert.equal(busy.kind === 'busy' ? busy.holder?.startedAt : null, selfA.startedAt);
    unregisterA(); // registrar A stopped without releasing
    assert.deepEqual(await b.tryAcquire(), { kind: 'acquired', takeover: true });
    assert.equal(logger.events('lock.takeover')[0]?.reason, 'holder_dead');
    assert.equal(b.readHolder()?.startedAt, selfB.startedAt);
    await a.release(); // A's lock is gone: leaves B's alone
    assert.ok(fs.existsSync(b.path));
    assert.equal(b.readHolder()?.startedAt, selfB.startedAt);
  });

  it('does not remove a lock that was taken over while it stalled', async (t) => {
    const dir = tempDir(t);
    const logger = new MemoryLogger();
    const a = new RegistrationLock({ dir, logger, onCompromised: () => undefined });
    assert.equal((await a.tryAcquire()).kind, 'acquired');
    // another process took over and wrote its holder file (simulated)
    const holderPath = `${a.path}.holder.json`;
    fs.writeFileSync(holderPath, JSON.stringify({ pid: 1, host: os.hostname(), started_at: 0, acquired_at: Date.now(), token: 'theirs' }));
    await a.release();
    assert.equal(a.held, false);
    assert.ok(fs.existsSync(a.path), 'their lock directory stays');
    assert.equal(JSON.parse(fs.readFileSync(holderPath, 'utf8')).token, 'theirs');
    assert.equal(logger.events('lock.release.error')[0]?.code, 'ENOTOWNER');
    // clean up: the lock is ours after all, and proper-lockfile still refreshes it until it notices
    fs.rmdirSync(a.path);
    await sleep(10);
  });
});

describe('RegistrationLock: a holder file that is not a regular file', () => {
  it('does not follow a symlink at the holder path: a foreign file naming a dead process cannot steer a takeover', async (t) => {
    const dir = tempDir(t);
    const logger = new MemoryLogger();
    const lock = new RegistrationLock({ dir, logger });
    t.after(() => lock.release());
    const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await once(gone, 'exit');
    const foreign = path.join(tempDir(t), 'foreign.json');
    const foreignText = `${JSON.stringify({ pid: gone.pid, host: os.hostname(), started_at: 0, acquired_at: 0, token: 'theirs' })}\n`;
    fs.writeFileSync(foreign, foreignText);
    fs.mkdirSync(lock.path); // a fresh lock of someone we cannot name
    fs.symlinkSync(foreign, `${lock.path}.holder.json`);

    assert.equal(lock.readHolder(), null);
    assert.deepEqual(await lock.tryAcquire(), { kind: 'busy', holder: null }, 'an unknown holder, not a dead one');
    const errors = logger.events('state.read.error');
    assert.equal(errors.length, 1, 'logged once per episode');
    assert.equal(errors[0]?.path, `${lock.path}.holder.json`);
    assert.equal(errors[0]?.code, 'ELOOP');
    assert.equal(errors[0]?.reason, 'a symbolic link, not followed');
    assert.equal(logger.events('lock.takeover').length, 0);

    fs.rmdirSync(lock.path);
    assert.deepEqual(await lock.tryAcquire(), { kind: 'acquired', takeover: false });
    assert.equal(fs.lstatSync(`${lock.path}.holder.json`).isFile(), true, 'the link was replaced by our holder file');
    assert.equal(lock.readHolder()?.pid, process.pid);
    assert.equal(fs.readFileSync(foreign, 'utf8'), foreignText, 'the foreign file is untouched');
  });

  it('a FIFO at the holder path: the attempt answers at once (busy, holder unknown) instead of hanging', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t);
    const lockPath = path.join(dir, 'registration.lock');
    try {
      execFileSync('mkfifo', [`${lockPath}.holder.json`]);
    } catch {
      t.skip('mkfifo is not available: cannot make a FIFO');
      return;
    }
    fs.mkdirSync(lockPath);
    // In a child: on a build that blocks on the FIFO, the child hangs, not this test.
    const child = new Child(t, { mode: 'hold', lockPath });
    const msg = await child.next('attempt', 15_000);
    assert.deepEqual(msg.result, { kind: 'busy', holder: null });
    assert.equal(await child.finish(), 0);
  });
});

describe('RegistrationLock across processes', () => {
  it('two processes contending repeatedly never hold it at once', { timeout: 120_000 }, async (t) => {
    const dir = tempDir(t);
    const lockPath = path.join(dir, 'registration.lock');
    const logFile = path.join(dir, 'events.log');
    const markerFile = path.join(dir, 'inside.marker');
    fs.writeFileSync(logFile, '');
    const children = ['A', 'B'].map((id) => new Child(t, { mode: 'contend', id, lockPath, logFile, markerFile, durationMs: 2500 }));
    for (const c of children) await c.next('ready');
    for (const c of children) c.send('go');
    const done = await Promise.all(children.map((c) => c.next('done', 60_000)));
    for (const c of children) assert.equal(await c.finish(), 0);

    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('overlap')).length, 0, 'the exclusive marker was never found taken');
    let inside: string | null = null;
    const entries: Record<string, number> = { A: 0, B: 0 };
    for (const line of lines) {
      const [what, id] = line.split(' ') as [string, string];
      if (what === 'enter') {
        assert.equal(inside, null, `${id} entered while ${String(inside)} was inside`);
        inside = id;
        entries[id] = (entries[id] ?? 0) + 1;
      } else {
        assert.equal(what, 'exit');
        assert.equal(inside, id);
        inside = null;
      }
    }
    assert.equal(inside, null);
    for (const d of done) assert.equal(d.errors, 0, JSON.stringify(done));
    assert.ok((entries.A ?? 0) >= 1 && (entries.B ?? 0) >= 1, `both got in: ${JSON.stringify(entries)}`);
    assert.ok((entries.A ?? 0) + (entries.B ?? 0) >= 10, `enough rounds: ${JSON.stringify(entries)}`);
    assert.equal(fs.existsSync(lockPath), false, 'released at the end');
  });

  it('takes over at once from a holder on this host that was SIGKILLed', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t);
    const lockPath = path.join(dir, 'registration.lock');
    const child = await childHolding(t, { lockPath, staleMs: 60_000 });
    const childPid = child.proc.pid;
    await child.kill();
    const logger = new MemoryLogger();
    const lock = new RegistrationLock({ lockPath, staleMs: 60_000, logger });
    t.after(() => lock.release());
    assert.equal(lock.readHolder()?.pid, childPid);
    // far from stale (60 s), yet acquired on the first try
    assert.deepEqual(await lock.tryAcquire(), { kind: 'acquired', takeover: true });
    const takeover = logger.events('lock.takeover');
    assert.equal(takeover.length, 1);
    assert.equal(takeover[0]?.reason, 'holder_dead');
    assert.equal(takeover[0]?.holder_pid, childPid);
    assert.equal(lock.readHolder()?.pid, process.pid);
  });

  it('a live holder in another process keeps the lock', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t);
    const lockPath = path.join(dir, 'registration.lock');
    const child = await childHolding(t, { lockPath, staleMs: 5000, updateMs: 1000 });
    const lock = new RegistrationLock({ lockPath, staleMs: 5000 });
    t.after(() => lock.release());
    // longer than the stale time: the holder's refreshes keep it fresh
    const deadline = Date.now() + 6500;
    while (Date.now() < deadline) {
      const r = await lock.tryAcquire();
      assert.equal(r.kind, 'busy');
      assert.equal(r.kind === 'busy' ? r.holder?.pid : null, child.proc.pid);
      await sleep(500);
    }
    assert.equal(await child.finish(), 0);
    assert.deepEqual(await lock.tryAcquire(), { kind: 'acquired', takeover: false }, 'free once released');
  });

  it('without a usable holder file (missing, or another host), waits for the stale time', { timeout: 90_000 }, async (t) => {
    const dir = tempDir(t);
    const noHolder = path.join(dir, 'a', 'registration.lock');
    const otherHost = path.join(dir, 'b', 'registration.lock');
    const elsewhere: WriterInfo = { pid: process.pid, host: 'elsewhere.example', startedAt: 0 };
    const [a, b] = await Promise.all([
      childHolding(t, { lockPath: noHolder, staleMs: 5000 }),
      childHolding(t, { lockPath: otherHost, staleMs: 5000, writer: elsewhere }),
    ]);
    await Promise.all([a.kill(), b.kill()]);
    const killedAt = Date.now();
    fs.rmSync(`${noHolder}.holder.json`);

    const logger = new MemoryLogger();
    const lockA = new RegistrationLock({ lockPath: noHolder, staleMs: 5000, logger });
    const lockB = new RegistrationLock({ lockPath: otherHost, staleMs: 5000, logger });
    t.after(async () => {
      await lockA.release();
      await lockB.release();
    });
    const [ra, rb] = await Promise.all([acquireWithin(lockA, 20_000), acquireWithin(lockB, 20_000)]);
    const elapsed = Date.now() - killedAt;
    assert.deepEqual(ra.attempts[0], { kind: 'busy', holder: null });
    assert.equal(rb.attempts[0]?.kind, 'busy');
    assert.equal(rb.attempts[0]?.kind === 'busy' ? rb.attempts[0].holder?.host : null, 'elsewhere.example');
    assert.deepEqual(ra.attempt, { kind: 'acquired', takeover: true });
    assert.deepEqual(rb.attempt, { kind: 'acquired', takeover: true });
    // the holder refreshed every 2.5 s, so staleness came at least 2.5 s after its death
    assert.ok(elapsed >= 2000, `acquired after ${elapsed} ms`);
    assert.deepEqual(
      logger.events('lock.takeover').map((l) => l.reason),
      ['stale', 'stale'],
    );
  });

  it('when several processes find the same dead holder, exactly one takes over', { timeout: 120_000 }, async (t) => {
    const dir = tempDir(t);
    const lockPath = path.join(dir, 'registration.lock');
    for (let round = 0; round < 2; round++) {
      const holder = await childHolding(t, { lockPath, staleMs: 60_000 });
      await holder.kill();
      const contenders = Array.from({ length: 4 }, () => new Child(t, { mode: 'once', lockPath, staleMs: 60_000 }));
      await Promise.all(contenders.map((c) => c.next('ready')));
      for (const c of contenders) c.send('go');
      const results = (await Promise.all(contenders.map((c) => c.next('attempt')))).map((m) => m.result as LockAttempt);
      const winners = results.filter((r) => r.kind === 'acquired');
      assert.equal(winners.length, 1, JSON.stringify(results));
      assert.deepEqual(winners[0], { kind: 'acquired', takeover: true });
      const winner = contenders[results.indexOf(winners[0] as LockAttempt)] as Child;
      for (const r of results) {
        if (r.kind === 'busy') assert.equal(r.holder?.pid, winner.proc.pid, JSON.stringify(results));
        else assert.equal(r.kind, 'acquired');
      }
      for (const c of contenders) assert.equal(await c.finish(), 0);
      assert.equal(fs.existsSync(lockPath), false);
    }
  });
});
