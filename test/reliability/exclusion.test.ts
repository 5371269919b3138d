/**
 * Mutual exclusion across processes: N real `run` children share one data
 * directory and one local DDS that never probes them, so each keeps trying to
 * register again every interval (REGISTER_INTERVAL_SECS=1) for many cycles.
 * The DDS delays every registration 100–200 ms and records how many were in
 * flight at once: the lock must keep that at one. Meanwhile the state file is
 * read in a loop and must always parse; at the end every child stops
 * gracefully (exit 0), the lock is gone and the state says `disconnected`.
 *
 * Siblings skip their own request when a live sibling registered within the
 * interval: what counts is the requests the DDS actually received.
 *
 * Scale: `RELIABILITY_SCALE` multiplies the number of registrations waited
 * for (default 40); `RELIABILITY_PROCESSES` sets N (default 4).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { assertNoSecrets, callbackResponder, now, overlappingPairs, round, sleep, startFakeDds, tempDir } from '../support/index.js';
import { dataPaths, listenUrlOf, newCredentials, outputsOf, readStateJson, recordFigure, scaled, scaledTimeout, spawnNode, tempFiles, watchStateFile, type RegistrarChild } from './common.js';

const PROCESSES = Math.max(2, Math.round(Number(process.env['RELIABILITY_PROCESSES'] ?? 4)) || 4);
const TARGET_REQUESTS = scaled(40);
/** How long the DDS may take to see the target (about 1.2 s per registration is expected). */
const RUN_LIMIT_MS = scaledTimeout(150_000);

test(
  `${PROCESSES} registrar processes on one data directory never overlap their registrations (${TARGET_REQUESTS} requests)`,
  { timeout: RUN_LIMIT_MS + 60_000 },
  async (t) => {
    const creds = newCredentials();
    const dds = await startFakeDds(t, { responder: callbackResponder({ delayMs: () => 100 + Math.floor(Math.random() * 100) }) });
    const dataDir = path.join(tempDir(t), 'data');

    const children: RegistrarChild[] = [];
    for (let i = 0; i < PROCESSES; i++) {
      const nodeUrl = `http://registrar-${i}.reliability.test:8080`;
      const child = spawnNode(t, dds, creds, {
        name: `registrar-${i}`,
        nodeUrl,
        dataDir,
        // Callbacks arrive while the request is in flight; a wide window keeps a slow one admitted too.
        env: { LOCK_STALE_SECS: '5', REQUEST_TIMEOUT_SECS: '4', CALLBACK_WINDOW_SECS: '30' },
      });
      children.push(child);
    }
    await Promise.all(children.map((c) => listenUrlOf(c, 60_000)));

    const watcher = watchStateFile(dataDir, 10);
    const started = now();
    let deadChild: RegistrarChild | undefined;
    while (dds.registrations().length < TARGET_REQUESTS) {
      deadChild = children.find((c) => c.hasExited);
      if (deadChild !== undefined) break;
      if (now() - started > RUN_LIMIT_MS) {
        await watcher.stop();
        assert.fail(`only ${dds.registrations().length} of ${TARGET_REQUESTS} registrations within ${RUN_LIMIT_MS} ms`);
      }
      await sleep(50);
    }
    const duration = now() - started;
    if (deadChild !== undefined) await watcher.stop();
    assert.equal(deadChild, undefined, `${deadChild?.name} exited during the run: ${deadChild?.stderr().slice(-2000)}`);
    for (const c of children) assert.equal(c.hasExited, false, `${c.name} is not alive`);

    // Zero overlaps: the DDS never saw two registrations in flight at once.
    const requests = dds.registrations();
    assert.ok(requests.length >= TARGET_REQUESTS);
    assert.equal(dds.maxConcurrent, 1, `max ${dds.maxConcurrent} registrations in flight at once`);
    assert.deepEqual(overlappingPairs(requests), [], 'registration requests overlapped in time');

    // Graceful stop of all at once: exit 0 each, lock released, state `disconnected`.
    const exits = await Promise.all(children.map((c) => c.stop('SIGTERM', 30_000)));
    const reads = await watcher.stop();
    exits.forEach((e, i) => assert.deepEqual(e, { code: 0, signal: null }, `registrar-${i} did not exit 0: ${children[i]?.stderr().slice(-2000)}`));
    assert.deepEqual(reads.bad, [], 'the state file did not parse at some moment');
    assert.ok(reads.reads > 100, `the state file was read only ${reads.reads} times`);

    const p = dataPaths(dataDir);
    assert.equal(fs.existsSync(p.lock), false, 'the lock directory is still there');
    assert.equal(fs.existsSync(p.holder), false, 'the lock holder file is still there');
    assert.equal(fs.existsSync(p.mutex), false, 'the lock mutex is still there');
    assert.equal(readStateJson(dataDir)?.['status'], 'disconnected');
    assert.deepEqual(tempFiles(dataDir), [], 'temp files were left behind');

    // The lock was contended, and nobody stole it from a live holder.
    const busy = children.reduce((n, c) => n + c.events('lock.busy').length, 0);
    const skipped = children.reduce((n, c) => n + c.events('registration.skipped').length, 0);
    const takeovers = children.flatMap((c) => c.events('lock.takeover').map((l) => l.line));
    assert.ok(busy + skipped > 0, 'the registrars never met each other: the test proves nothing');
    assert.deepEqual(
      takeovers.filter((l) => l['reason'] === 'holder_dead'),
      [],
      'a live holder was declared dead',
    );
    const successes = children.reduce((n, c) => n + c.events('registration.success').length, 0);
    // Each answered request was a success in its registrar; only the one in flight at SIGTERM may have been cut short.
    assert.ok(
      successes >= requests.length - 1 && successes <= requests.length,
      `${successes} registration.success lines for ${requests.length} requests`,
    );

    // Secret hygiene: every node that registered was called back with a node secret, and nothing leaked.
    await dds.settle();
    const registeredUrls = new Set(requests.map((r) => (r.body as { url?: string } | undefined)?.url));
    for (const url of registeredUrls) {
      assert.ok(
        dds.callbacks.some((c) => c.nodeUrl === url && c.status === 200),
        `no callback to ${url} was accepted: ${JSON.stringify(dds.callbacks.filter((c) => c.nodeUrl === url).map((c) => c.status))}`,
      );
    }
    const secrets = [creds.regSecret, creds.privhex, ...dds.nodeSecrets];
    assertNoSecrets(
      { ...outputsOf(children), 'callback answers': dds.callbacks.map((c) => c.body).join('\n') },
      secrets,
    );

    const perChild = Object.fromEntries(
      [...registeredUrls].map((u) => [u, requests.filter((r) => (r.body as { url?: string } | undefined)?.url === u).length]),
    );
    recordFigure('exclusion.processes', PROCESSES);
    recordFigure('exclusion.requests', requests.length);
    recordFigure('exclusion.duration_s', round(duration / 1000, 1));
    recordFigure('exclusion.max_concurrent', dds.maxConcurrent);
    recordFigure('exclusion.lock_busy', busy);
    recordFigure('exclusion.skipped_for_sibling', skipped);
    recordFigure('exclusion.stale_takeovers', takeovers.length);
    recordFigure('exclusion.requests_per_process', perChild);
    recordFigure('exclusion.state_reads', reads.reads);
    recordFigure('exclusion.callbacks', dds.callbacks.length);
    recordFigure('exclusion.secrets_scanned', secrets.length);
    t.diagnostic(
      `${PROCESSES} processes, ${requests.length} requests in ${round(duration / 1000, 1)} s, per process ${JSON.stringify(perChild)}, ` +
        `lock.busy ${busy}, skipped ${skipped}, state reads ${reads.reads}, callbacks ${dds.callbacks.length}`,
    );
  },
);
