/**
 * Crash recovery with real `run` children and SIGKILL.
 *
 * - A chain of K kills (default 6, × RELIABILITY_SCALE) on one data
 *   directory: each registrar is killed at a different moment of its cycle —
 *   holding the lock before its request, with its request in flight (the DDS
 *   answers after 300 ms), just after registering, right after a state write
 *   (`status.transition`) — and a successor started on the same directory
 *   must register within 3 s of being up, without waiting for the lock's
 *   staleness (LOCK_STALE_SECS=30): a dead holder's lock is taken over at
 *   once. After every kill the state file parses, and leftover temp files of
 *   the dead writer are swept by the successor.
 * - A live holder is never robbed: while one registrar's request is in
 *   flight, a sibling reports `lock.busy` and sends nothing until the holder
 *   let go.
 * - Secret hygiene: the outputs of every child are scanned for the
 *   registration secret, the key and every node secret the DDS handed out.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { RegistrationLock } from '../../src/state/lock.js';
import {
  assertNoSecrets,
  callbackResponder,
  now,
  round,
  sleep,
  startFakeDds,
  summarize,
  tempDir,
  type Cleanup,
  type FakeDds,
  type JsonLine,
} from '../support/index.js';
import {
  dataPaths,
  newCredentials,
  outputsOf,
  readStateJson,
  recordFigure,
  scaled,
  scaledTimeout,
  spawnNode,
  tempFiles,
  type Credentials,
  type RegistrarChild,
} from './common.js';

const KILLS = scaled(6);
/** The successor must be registered this soon after it is up (its `http.listening`). */
const RECOVERY_LIMIT_MS = 3000;
/** Far above the recovery limit: waiting for staleness would show. */
const LOCK_STALE_SECS = '30';
/** The DDS's answer delay in the crash chain: long enough to kill a request in flight. */
const IN_FLIGHT_DELAY_MS = 300;

type Moment = 'before-request' | 'in-flight' | 'after-success' | 'state-write';
const MOMENTS: readonly Moment[] = ['before-request', 'in-flight', 'after-success', 'state-write'];

function randomInt(max: number): number {
  return Math.floor(Math.random() * (max + 1));
}

interface Spawned {
  child: RegistrarChild;
  nodeUrl: string;
}

function spawnOne(t: Cleanup, dds: FakeDds, creds: Credentials, dataDir: string, name: string, extra: Record<string, string> = {}): Spawned {
  const nodeUrl = `http://${name}.reliability.test:8080`;
  const child = spawnNode(t, dds, creds, { name, nodeUrl, dataDir, env: { LOCK_STALE_SECS, CALLBACK_WINDOW_SECS: '30', ...extra } });
  return { child, nodeUrl };
}

/** Resolve when the DDS receives a registration from `nodeUrl` (after this call). */
function nextRequestFrom(dds: FakeDds, nodeUrl: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      dds.onRegistration(undefined);
      reject(new Error(`no registration from ${nodeUrl} within ${timeoutMs} ms`));
    }, timeoutMs);
    dds.onRegistration((_req, url) => {
      if (url !== nodeUrl) return;
      clearTimeout(timer);
      dds.onRegistration(undefined);
      resolve();
    });
  });
}

/** Wait for `moment` in the victim's life (from its line `from` on), plus a random jitter; returns what was waited for. */
async function reachMoment(dds: FakeDds, victim: Spawned, moment: Moment, iteration: number): Promise<string> {
  const from = victim.child.json.length;
  const timeoutMs = 20_000;
  switch (moment) {
    case 'before-request': {
      await victim.child.waitForEvent('lock.acquired', { from, timeoutMs });
      const jitter = randomInt(20);
      await sleep(jitter);
      return `lock.acquired + ${jitter} ms`;
    }
    case 'in-flight': {
      await nextRequestFrom(dds, victim.nodeUrl, timeoutMs);
      const jitter = randomInt(IN_FLIGHT_DELAY_MS - 100);
      await sleep(jitter);
      return `request received + ${jitter} ms (answer after ${IN_FLIGHT_DELAY_MS} ms)`;
    }
    case 'after-success': {
      // A fresh successor has just registered: kill it in the registered state.
      const last = victim.child.events('registration.success').at(-1);
      if (last === undefined) await victim.child.waitForEvent('registration.success', { from, timeoutMs });
      const jitter = randomInt(300);
      await sleep(jitter);
      return `registration.success + ${jitter} ms`;
    }
    case 'state-write': {
      // Alternate between the write before the request (→ registering) and the one after it (→ registered).
      const to = iteration % 2 === 0 ? 'registering' : 'registered';
      await victim.child.waitFor((l: JsonLine) => l['event'] === 'status.transition' && l['to'] === to, {
        from,
        timeoutMs,
        what: `status.transition to ${to}`,
      });
      const jitter = randomInt(3);
      if (jitter > 0) await sleep(jitter);
      return `status.transition → ${to} + ${jitter} ms`;
    }
  }
}

/** A pid that is certainly not running: a child that already exited (and was reaped). */
function deadPid(): number {
  const out = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(out);
  assert.ok(Number.isSafeInteger(pid) && pid > 0);
  return pid;
}

/** Plant a temp file as an atomic write of `target` by `pid` killed mid-way would leave it, `ageMs` old. */
function plantTempFile(dataDir: string, target: string, pid: number, ageMs: number): string {
  const name = `.${target}.${pid}.deadbeef0000.tmp`;
  const file = path.join(dataDir, name);
  fs.writeFileSync(file, '{"status":"regis');
  const t = new Date(Date.now() - ageMs);
  fs.utimesSync(file, t, t);
  return name;
}

describe('crash recovery (SIGKILL)', () => {
  test(
    `${KILLS} registrars SIGKILLed at varied moments: each successor registers at once, the state file always parses`,
    { timeout: scaledTimeout(150_000, 20_000) },
    async (t) => {
      const creds = newCredentials();
      const dds = await startFakeDds(t, { responder: callbackResponder({ delayMs: IN_FLIGHT_DELAY_MS }) });
      const dataDir = path.join(tempDir(t), 'data');
      const children: RegistrarChild[] = [];
      const offset = randomInt(MOMENTS.length - 1);

      const first = spawnOne(t, dds, creds, dataDir, 'crash-0');
      children.push(first.child);
      await first.child.waitForEvent('registration.loop.start', { timeoutMs: 60_000 });
      let victim = first;

      const upToSuccess: number[] = [];
      const killToSuccess: number[] = [];
      const report: Record<string, unknown>[] = [];
      let takeovers = 0;
      let orphanedMutexes = 0;
      let leftoverTemps = 0;

      for (let i = 0; i < KILLS; i++) {
        const moment = MOMENTS[(i + offset) % MOMENTS.length] as Moment;
        const what = await reachMoment(dds, victim, moment, i);
        assert.equal(victim.child.hasExited, false, `${victim.child.name} died on its own`);
        const killedAt = now();
        const exit = await victim.child.kill();
        assert.equal(exit.signal, 'SIGKILL', `${victim.child.name} was not killed by SIGKILL (${JSON.stringify(exit)})`);
        dds.onRegistration(undefined);

        // After the kill: the state file parses (if there is one).
        const state = readStateJson(dataDir);
        if (state !== null) assert.ok(['disconnected', 'registering', 'registered'].includes(String(state['status'])), `state ${JSON.stringify(state)}`);
        const p = dataPaths(dataDir);
        const lockLeft = fs.existsSync(p.lock);
        const holderLeft = fs.existsSync(p.holder);
        const mutexLeft = fs.existsSync(p.mutex);

        // Temp files of the dead writer: its own (a write cut short) and two planted ones, old enough to be swept.
        const own = tempFiles(dataDir).filter((f) => f.pid === victim.child.pid);
        leftoverTemps += own.length;
        const old = new Date(Date.now() - 120_000);
        for (const f of own) fs.utimesSync(path.join(dataDir, f.name), old, old);
        plantTempFile(dataDir, 'registration_state.json', victim.child.pid, 120_000);
        plantTempFile(dataDir, 'registration.lock.holder.json', victim.child.pid, 120_000);

        // A mutex left behind has its own 2 s staleness: the successor is not blocked for LOCK_STALE_SECS.
        if (mutexLeft) orphanedMutexes += 1;

        // The successor, on the same data directory.
        const successor = spawnOne(t, dds, creds, dataDir, `crash-${i + 1}`);
        children.push(successor.child);
        const up = await successor.child.waitForEvent('http.listening', { timeoutMs: 60_000 });
        const success = await successor.child.waitForEvent('registration.success', { timeoutMs: 40_000 });
        const sinceUp = success.at - up.at;
        upToSuccess.push(sinceUp);
        killToSuccess.push(success.at - killedAt);
        const busy = successor.child.json.slice(0, success.index).filter((l) => l.line['event'] === 'lock.busy');
        const takeover = successor.child.json.slice(0, success.index).find((l) => l.line['event'] === 'lock.takeover');
        if (takeover !== undefined) takeovers += 1;
        report.push({ kill: i, moment, what, lockLeft, holderLeft, mutexLeft, takeover: takeover?.line['reason'] ?? null, ms: Math.round(sinceUp) });

        assert.deepEqual(busy.map((l) => l.line), [], `kill #${i} (${moment}: ${what}): the successor found the lock busy`);
        if (lockLeft && holderLeft) {
          assert.equal(takeover?.line['reason'], 'holder_dead', `kill #${i} (${moment}): the dead holder's lock was not taken over as such`);
        }
        assert.ok(
          sinceUp <= RECOVERY_LIMIT_MS,
          `kill #${i} (${moment}: ${what}): the successor registered ${Math.round(sinceUp)} ms after it was up (limit ${RECOVERY_LIMIT_MS} ms)`,
        );
        // The successor's first write swept the dead writer's old temp files.
        assert.deepEqual(
          tempFiles(dataDir).filter((f) => f.pid === victim.child.pid),
          [],
          `kill #${i}: temp files of the dead writer were not swept`,
        );
        assert.equal(readStateJson(dataDir)?.['status'], 'registered');
        // Every registered child is handed a node secret at least once (normally during its request).
        await dds.settle();
        if (!dds.callbacks.some((c) => c.nodeUrl === successor.nodeUrl && c.status === 200)) {
          assert.equal(await dds.callBack(successor.nodeUrl), 200, `${successor.child.name} refused its callback`);
        }
        victim = successor;
      }

      // The last one stops gracefully.
      const exit = await victim.child.stop('SIGTERM', 30_000);
      assert.deepEqual(exit, { code: 0, signal: null });
      const p = dataPaths(dataDir);
      assert.equal(fs.existsSync(p.lock), false, 'lock left after the graceful stop');
      assert.equal(readStateJson(dataDir)?.['status'], 'disconnected');

      // Secret hygiene over every child's output and every callback answer.
      await dds.settle();
      assert.ok(dds.callbacks.some((c) => c.status === 200), 'no node secret was ever accepted: the scan would prove little');
      const secrets = [creds.regSecret, creds.privhex, ...dds.nodeSecrets];
      assertNoSecrets({ ...outputsOf(children), 'callback answers': dds.callbacks.map((c) => c.body).join('\n') }, secrets);

      const up = summarize(upToSuccess);
      const kill = summarize(killToSuccess);
      recordFigure('crash.kills', KILLS);
      recordFigure('crash.recovery_up_to_success_ms', { min: Math.round(up.min), median: Math.round(up.p50), max: Math.round(up.max) });
      recordFigure('crash.recovery_kill_to_success_ms', { min: Math.round(kill.min), median: Math.round(kill.p50), max: Math.round(kill.max) });
      recordFigure('crash.dead_holder_takeovers', takeovers);
      recordFigure('crash.orphaned_mutexes', orphanedMutexes);
      recordFigure('crash.temp_files_cut_short', leftoverTemps);
      recordFigure('crash.moments', report);
      t.diagnostic(
        `${KILLS} kills; successor up→registered ms min ${round(up.min, 0)} median ${round(up.p50, 0)} max ${round(up.max, 0)}; ` +
          `kill→registered ms median ${round(kill.p50, 0)} max ${round(kill.max, 0)}; takeovers ${takeovers}; orphaned mutexes ${orphanedMutexes}`,
      );
      for (const r of report) t.diagnostic(JSON.stringify(r));
    },
  );

  test('a live holder is never robbed: a sibling reports lock.busy and sends nothing until the holder let go', { timeout: 120_000 }, async (t) => {
    const creds = newCredentials();
    // The winner's request stays in flight this long: the loser (retrying every second) must meet the lock busy.
    const HOLD_MS = 2500;
    const dds = await startFakeDds(t, { responder: callbackResponder({ delayMs: HOLD_MS }) });
    const dataDir = path.join(tempDir(t), 'data');
    fs.mkdirSync(dataDir, { recursive: true });

    // Hold the lock from the test process until both children run, so that neither starts ahead.
    const gate = new RegistrationLock({ dir: dataDir, staleMs: 30_000 });
    t.after(() => gate.release());
    assert.equal((await gate.tryAcquire()).kind, 'acquired');

    const a = spawnOne(t, dds, creds, dataDir, 'holder-a', { LOCK_STALE_SECS: '5', REQUEST_TIMEOUT_SECS: '4' });
    const b = spawnOne(t, dds, creds, dataDir, 'holder-b', { LOCK_STALE_SECS: '5', REQUEST_TIMEOUT_SECS: '4' });
    const gated = (l: JsonLine): boolean => l['event'] === 'lock.busy' && l['holder_pid'] === process.pid;
    await Promise.all([a.child.waitFor(gated, { timeoutMs: 60_000 }), b.child.waitFor(gated, { timeoutMs: 60_000 })]);
    const fromA = a.child.json.length;
    const fromB = b.child.json.length;
    await gate.release();

    // One of them gets the lock and sends its request; which one is up to the race.
    const [first] = await dds.waitForRequests(1, 20_000);
    assert.ok(first !== undefined);
    const firstUrl = (first.body as { url?: string } | undefined)?.url;
    const [holder, sibling, siblingFrom] = firstUrl === a.nodeUrl ? [a, b, fromB] : [b, a, fromA];
    assert.equal(firstUrl, holder.nodeUrl);
    const busy = await sibling.child.waitFor((l) => l['event'] === 'lock.busy' && l['holder_pid'] === holder.child.pid, {
      from: siblingFrom,
      timeoutMs: HOLD_MS + 10_000,
      what: `lock.busy naming ${holder.child.name}`,
    });
    await holder.child.waitForEvent('registration.success', { timeoutMs: 20_000 });
    // The sibling then finds the holder registered and skips its own request.
    await sibling.child.waitForEvent('registration.skipped', { from: busy.index, timeoutMs: 20_000 });
    const holderRequest = dds.registrations()[0];
    assert.ok(holderRequest?.finishedAt !== undefined);
    for (const r of dds.registrations()) {
      if ((r.body as { url?: string } | undefined)?.url === sibling.nodeUrl) {
        assert.ok(r.receivedAt >= holderRequest.finishedAt, 'the sibling sent a request while the holder held the lock');
      }
    }
    for (const c of [a.child, b.child]) {
      assert.deepEqual(c.events('lock.takeover').map((l) => l.line), [], `${c.name} took the lock over`);
      assert.deepEqual(c.events('lock.compromised').map((l) => l.line), [], `${c.name} lost the lock`);
    }
    assert.equal(dds.maxConcurrent, 1);

    // Once the holder stops, the sibling is not stuck: it registers itself.
    assert.deepEqual(await holder.child.stop('SIGTERM', 30_000), { code: 0, signal: null });
    const siblingSuccess = await sibling.child.waitForEvent('registration.success', { timeoutMs: 20_000 });
    assert.ok(siblingSuccess.index > busy.index);
    assert.deepEqual(await sibling.child.stop('SIGTERM', 30_000), { code: 0, signal: null });
    assert.equal(dds.maxConcurrent, 1);

    await dds.settle();
    const secrets = [creds.regSecret, creds.privhex, ...dds.nodeSecrets];
    assertNoSecrets({ ...outputsOf([a.child, b.child]), 'callback answers': dds.callbacks.map((c) => c.body).join('\n') }, secrets);
    recordFigure('crash.live_holder_busy_seen', sibling.child.events('lock.busy').filter((l) => l.line['holder_pid'] === holder.child.pid).length);
  });

  test(
    'a registrar SIGKILLed inside the lock\'s critical section (mutex held) does not block its successor for LOCK_STALE_SECS',
    {
      timeout: 120_000,
    },
    async (t) => {
      const creds = newCredentials();
      const dds = await startFakeDds(t, { responder: callbackResponder() });
      const root = tempDir(t);
      let caught: { dataDir: string; lockLeft: boolean; holderLeft: boolean } | undefined;
      // Kill the registrar the moment its mutex directory appears (inotify), until a kill lands inside the critical section.
      for (let attempt = 0; attempt < 6 && caught === undefined; attempt++) {
        const dataDir = path.join(root, `data-${attempt}`);
        fs.mkdirSync(dataDir, { recursive: true });
        const p = dataPaths(dataDir);
        const victim = spawnOne(t, dds, creds, dataDir, `mutex-victim-${attempt}`);
        const watcher = fs.watch(dataDir, (_type, name) => {
          if (name === path.basename(p.mutex)) victim.child.proc.kill('SIGKILL');
        });
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([victim.child.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, 60_000)))]);
        } finally {
          clearTimeout(timer);
          watcher.close();
        }
        await victim.child.kill();
        if (fs.existsSync(p.mutex)) caught = { dataDir, lockLeft: fs.existsSync(p.lock), holderLeft: fs.existsSync(p.holder) };
      }
      if (caught === undefined) {
        // Never landed inside: plant what such a kill leaves (a fresh mutex, a dead holder's lock).
        const dataDir = path.join(root, 'data-planted');
        const p = dataPaths(dataDir);
        fs.mkdirSync(p.mutex, { recursive: true });
        fs.mkdirSync(p.lock);
        fs.writeFileSync(p.holder, JSON.stringify({ pid: deadPid(), host: os.hostname(), started_at: Date.now() - 5000, acquired_at: Date.now(), token: 'dead' }));
        caught = { dataDir, lockLeft: true, holderLeft: true };
        t.diagnostic('no kill landed inside the critical section: planted its leftovers');
      } else {
        t.diagnostic(`killed inside the critical section: lock left ${caught.lockLeft}, holder file left ${caught.holderLeft}`);
      }

      const successor = spawnOne(t, dds, creds, caught.dataDir, 'mutex-successor');
      const up = await successor.child.waitForEvent('http.listening', { timeoutMs: 60_000 });
      const success = await successor.child.waitForEvent('registration.success', { timeoutMs: RECOVERY_LIMIT_MS + 1500 });
      assert.ok(success.at - up.at <= RECOVERY_LIMIT_MS, `registered ${Math.round(success.at - up.at)} ms after it was up`);
    },
  );

  test(
    'what a kill between the holder file and the lock directory leaves (a dead holder\'s file, its mutex) does not block',
    { timeout: 60_000 },
    async (t) => {
      const creds = newCredentials();
      const dds = await startFakeDds(t, { responder: callbackResponder() });
      const dataDir = path.join(tempDir(t), 'data');
      const p = dataPaths(dataDir);
      // The holder file is written before `mkdir <lock>` and removed after `rmdir <lock>`: a `kill -9` in
      // between leaves a dead holder's file without a lock, and the mutex held around both steps.
      fs.mkdirSync(p.mutex, { recursive: true });
      fs.writeFileSync(p.holder, JSON.stringify({ pid: deadPid(), host: os.hostname(), started_at: Date.now() - 5000, acquired_at: Date.now(), token: 'dead' }));
      const successor = spawnOne(t, dds, creds, dataDir, 'holderless-successor');
      const up = await successor.child.waitForEvent('http.listening', { timeoutMs: 60_000 });
      const success = await successor.child.waitForEvent('registration.success', { timeoutMs: RECOVERY_LIMIT_MS + 1500 });
      assert.ok(success.at - up.at <= RECOVERY_LIMIT_MS, `registered ${Math.round(success.at - up.at)} ms after it was up`);
    },
  );
});
