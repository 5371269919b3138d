/**
 * Callback admission under concurrency, over real HTTP.
 *
 * Each test runs the daemon's core (`startDaemon`: a real registrar with
 * policy `window`, `routerDds` on an express app, node's HTTP server) against
 * a local DDS whose answer to the registration request the test holds and
 * releases itself, so "while the request is in flight" is a fact, not a
 * timing guess. Callbacks are real `POST /internal/v1/registrations`
 * requests on separate connections.
 *
 * Admission is judged from the order of the log lines (one logger for the
 * routes, the registrar and the secret store): a secret is admitted when the
 * store logs `persist.secret.stored`; the registrar leaves `registering`
 * when it logs `registration.error` (or `registration.success`). That order
 * is what happened, whatever the scheduler did.
 *
 * 1. 50 parallel callbacks while the request is in flight: exactly one 200
 *    (the first the registrar took), every other 409 `secret already
 *    received`; the store holds the 200's secret; a byte-identical repeat of
 *    it is 200 and changes nothing; after the answer strangers still get 409.
 * 2. callbacks racing a failed (500) answer, over several rounds: DDS's own
 *    callback first (200), then strangers: 409 before the answer was
 *    processed, 403 after; the store holds DDS's secret.
 * 3. the window after a success with no callback in flight: closed by its
 *    timer → 403; opened again, the first callback in it (200) closes it
 *    (409 for the next); after STOP 403. Nothing stored, nothing logged.
 * 4. strangers while registered after DDS's callback: 409 and nothing
 *    changes (secret, identity, counters, state) — a DDS probe does not reopen it.
 * Refusals are logged once per minute per reason, never with a secret.

 * Every log line, answer and snapshot is scanned for every secret at the end.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { waitFor } from 'xstate';
import type { Registrar } from '../../src/registrar.js';
import {
  assertNoSecrets,
  callNodeBack,
  holdRegistrations,
  probeHealth,
  sleep,
  startFakeDds,
  tempDir,
  type HeldRegistrations,
  type HttpAnswer,
} from '../support/index.js';
import { newCredentials, recordFigure, scaled, scaledTimeout } from './common.js';
import { startWindowDaemon, type WindowDaemon } from './daemon-node.js';

// ---------------------------------------------------------------------------
// Secrets and what may hold them
// ---------------------------------------------------------------------------

const credentials = newCredentials();
/** Every node secret sent in a callback (admitted or not). */
const sentSecrets: string[] = [];
/** Every text that must hold no secret: answers, log dumps, snapshots. */
const scanned: Record<string, string> = {};
let scanCount = 0;

function scan(where: string, text: string): void {
  scanned[`${where} #${(scanCount += 1)}`] = text;
}

function newSecret(): string {
  const secret = `node-secret-${randomBytes(16).toString('hex')}`;
  sentSecrets.push(secret);
  return secret;
}

after(() => {
  assert.ok(sentSecrets.length > 0 && Object.keys(scanned).length > 0, 'the final scan has something to scan');
  assertNoSecrets(scanned, [credentials.regSecret, credentials.privhex, ...sentSecrets]);
});

// ---------------------------------------------------------------------------
// A DDS whose answers the test releases
// ---------------------------------------------------------------------------

/** A fake DDS holding every registration until the test answers it. */
interface GatedDds {
  url: string;
  /** The next held request (in arrival order). */
  next: HeldRegistrations['next'];
}

async function startGatedDds(t: TestContext): Promise<GatedDds> {
  const held = holdRegistrations();
  const dds = await startFakeDds(t, { responder: held.responder });
  return { url: dds.url, next: held.next };
}

// ---------------------------------------------------------------------------
// The node: the daemon's core on a temp data directory
// ---------------------------------------------------------------------------

interface Node extends WindowDaemon {
  registrar: Registrar;
  /** Where the daemon's routes listen. */
  url: string;
}

async function startNode(t: TestContext, dds: GatedDds, callbackWindowSecs: number): Promise<Node> {
  const dataDir = path.join(tempDir(t, 'posemesh-admission-'), 'data');
  const { daemon, store, logger } = await startWindowDaemon(t, {
    ddsUrl: dds.url,
    secrets: credentials,
    nodeUrl: 'http://127.0.0.1:9/admission-node',
    dataDir,
    callbackWindowSecs,
    settings: { capabilities: ['/admission/v1'], requestTimeoutSecs: 60 },
    scan,
  });
  return { daemon, registrar: daemon.registrar, store, logger, url: daemon.url };
}

/** POST a callback on its own connection. */
async function callback(node: Node, payload: Record<string, unknown>): Promise<HttpAnswer> {
  const answer = await callNodeBack(node.url, payload, 20_000);
  scan('callback answer', answer.body);
  return answer;
}

async function probe(node: Node, userAgent: string): Promise<number> {
  return (await probeHealth(node.url, userAgent)).status;
}

/** Index of the first log line at or after `from` matching `predicate` (−1 when none). */
function lineIndex(node: Node, predicate: (l: Record<string, unknown>) => boolean, from = 0): number {
  for (let i = from; i < node.logger.lines.length; i++) if (predicate(node.logger.lines[i] as Record<string, unknown>)) return i;
  return -1;
}

function assertNoLineHolds(node: Node, secret: string, what: string): void {
  const holding = node.logger.lines.filter((l) => JSON.stringify(l).includes(secret)).map((l) => l.event);
  assert.deepEqual(holding, [], `no log line holds ${what}`);
}

const OK = '{"ok":true}';
const NOT_IN_PROGRESS = 'no registration in progress';
const ALREADY = 'secret already received';

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe('callback admission under concurrency (policy window, real HTTP)', { timeout: scaledTimeout(120_000, 60_000) }, () => {
  it('parallel callbacks while the registration request is in flight: one 200, the others 409; a repeat of the 200 is 200', async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 120);
    const held = await dds.next();
    assert.ok(node.registrar.getSnapshot().matches('registering'), 'the request is in flight');

    const n = scaled(50);
    const sent = Array.from({ length: n }, (_, i) => ({ id: `node-parallel-${i}`, secret: newSecret(), organization_id: `org-${i % 3}` }));
    const answers = await Promise.all(sent.map((p) => callback(node, p)));
    const winners = sent.filter((_, i) => answers[i]?.status === 200);
    assert.equal(winners.length, 1, 'exactly one callback in flight is admitted');
    const winner = winners[0] as (typeof sent)[number];
    for (const [i, a] of answers.entries()) {
      if (sent[i] !== winner) assert.equal(`${a.status} ${a.body}`, `409 ${ALREADY}`, `${sent[i]?.id}: refused after the first`);
    }
    const during = node.registrar.getSnapshot();
    assert.ok(during.matches('registering'), 'still in flight: every callback landed before the answer');
    assert.equal(during.context.callbacks, 1, 'context.callbacks = the number of 200s');
    const stored = node.logger.lines.filter((l) => l.event === 'persist.secret.stored');
    assert.deepEqual(stored.map((l) => l['node_id']), [winner.id], 'only the admitted secret was stored');
    assert.equal(node.store.read(), winner.secret, 'the store holds the admitted secret');
    assert.equal(during.context.nodeId, winner.id, 'the actor recorded the same id as the store');

    // DDS retrying: the same bytes → 200, nothing stored again.
    assert.equal(`${(await callback(node, winner)).status}`, '200');
    assert.equal(node.logger.lines.filter((l) => l.event === 'persist.secret.stored').length, 1);

    held.answer(200);
    const registered = await waitFor(node.registrar, (s) => s.matches('registered'), { timeout: 15_000 });
    assert.ok(registered.matches({ registered: { callbackWindow: 'closed' } }), 'no window after a callback in flight');
    const late = Array.from({ length: n }, (_, i) => ({ id: `node-late-${i}`, secret: newSecret() }));
    const lateAnswers = await Promise.all(late.map((p) => callback(node, p)));
    assert.deepEqual(lateAnswers.map((a) => a.status), late.map(() => 409), 'strangers after the answer: 409');
    assert.equal(node.registrar.getSnapshot().context.callbacks, 1, 'the answer does not change the count');
    assert.equal(node.store.read(), winner.secret, 'nor the secret');
    // Rate-limited: one warning for all of them (2 n − 1 refusals, one reason).
    const refusedLines = node.logger.lines.filter((l) => l.event === 'registration.callback.refused');
    assert.equal(refusedLines.filter((l) => l.level === 'warn').length, 1, 'one warning for them all');
    assert.equal(refusedLines.length, 2 * n - 1, 'the others at debug');
    for (const p of [...sent, ...late]) assertNoLineHolds(node, p.secret, `the secret of ${p.id}`);
    const strangersAccepted = answers.filter((a) => a.status === 200).length - 1 + lateAnswers.filter((a) => a.status === 200).length;
    assert.equal(strangersAccepted, 0);
    recordFigure('admission.parallel', { callbacks: n, admitted: 1, refused409: 2 * n - 1, strangersAcceptedAfterFirst: strangersAccepted });
  });

  it('callbacks racing a failed (500) answer: DDS first (200), then 409 before the answer was processed, 403 after', async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 120);
    const rounds = scaled(4);
    const before = scaled(8);
    const around = scaled(24);
    const afterwards = scaled(8);
    const splits: { refused409: number; refused403: number }[] = [];
    let strangersAccepted = 0;
    let searchFrom = 0;

    for (let round = 0; round < rounds; round++) {
      const held = await dds.next();
      assert.ok(node.registrar.getSnapshot().matches('registering'), `round ${round}: the request is in flight`);
      const legit = { id: `node-r${round}-dds`, secret: newSecret() };
      assert.equal((await callback(node, legit)).status, 200, `round ${round}: DDS's callback, first in the attempt`);
      const send = (label: string): Promise<HttpAnswer> => callback(node, { id: `node-r${round}-${label}`, secret: newSecret() });

      // Before the answer: refused, the first was accepted.
      const early = await Promise.all(Array.from({ length: before }, (_, i) => send(`before-${i}`)));
      for (const a of early) assert.equal(`${a.status} ${a.body}`, `409 ${ALREADY}`, 'before the answer');

      // Around the answer: launched a millisecond apart, the answer released among them
      // (a different point each round).
      const racing: Promise<HttpAnswer>[] = [];
      const releaseAt = Math.floor((around * ((round % 3) + 1)) / 4);
      for (let i = 0; i < around; i++) {
        if (i === releaseAt) held.answer(500, 'dds unavailable');
        racing.push(send(`around-${i}`));
        await sleep(1);
      }
      const raced = await Promise.all(racing);
      for (const a of raced) {
        assert.ok(
          (a.status === 409 && a.body === ALREADY) || (a.status === 403 && a.body === NOT_IN_PROGRESS),
          `409 or 403 around the answer, got ${a.status} ${a.body}`,
        );
      }
      // Once 403, never 409 again: the answers follow the registrar's order.
      const firstRefusedByState = raced.findIndex((a) => a.status === 403);
      if (firstRefusedByState >= 0) for (const a of raced.slice(firstRefusedByState)) assert.equal(a.status, 403);
      await waitFor(node.registrar, (s) => s.matches('backoff'), { timeout: 15_000 });

      // After the answer: all refused.
      const late = await Promise.all(Array.from({ length: afterwards }, (_, i) => send(`after-${i}`)));
      for (const a of late) assert.equal(`${a.status} ${a.body}`, `403 ${NOT_IN_PROGRESS}`, 'after the failed answer');
      strangersAccepted += [...early, ...raced, ...late].filter((a) => a.status === 200).length;

      // Only DDS's secret was stored, before the failure was processed.
      const failedAt = lineIndex(node, (l) => l.event === 'registration.error' && l['status'] === 500, searchFrom);
      assert.ok(failedAt >= 0, `round ${round}: the failure is logged`);
      const stored = node.logger.lines.map((l, i) => [l, i] as const).filter(([l, i]) => i >= searchFrom && l.event === 'persist.secret.stored');
      assert.deepEqual(stored.map(([l]) => l['node_id']), [legit.id], `round ${round}: only DDS's secret stored`);
      assert.ok((stored[0]?.[1] ?? Infinity) < failedAt);
      assert.equal(node.store.read(), legit.secret, 'the store holds DDS’s secret');
      searchFrom = failedAt + 1;
      splits.push({ refused409: raced.filter((a) => a.status === 409).length, refused403: raced.filter((a) => a.status === 403).length });

      if (round + 1 < rounds) node.registrar.send({ type: 'REGISTER_NOW' });
    }

    assert.equal(strangersAccepted, 0);
    assert.equal(node.registrar.getSnapshot().context.callbacks, rounds, 'context.callbacks = the number of 200s');
    recordFigure('admission.race', { rounds, perRound: { before, around, after: afterwards }, aroundTheAnswer: splits, strangersAcceptedAfterFirst: strangersAccepted });
  });

  it('the window after a success: closed by its timer (403); the first callback in it closes it (409 next); after STOP 403', async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 2);
    let held = await dds.next();
    held.answer(200);
    await waitFor(node.registrar, (s) => s.matches({ registered: { callbackWindow: 'open' } }), { timeout: 15_000 });
    await waitFor(node.registrar, (s) => s.matches({ registered: { callbackWindow: 'closed' } }), { timeout: 15_000 });
    const late = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    const lateAnswer = await callback(node, late);
    assert.equal(`${lateAnswer.status} ${lateAnswer.body}`, `403 ${NOT_IN_PROGRESS}`, 'refused once the window closed');
    assert.equal(node.store.read(), undefined, 'nothing stored');
    assert.equal(node.registrar.getSnapshot().context.callbacks, 0, 'not counted');

    // Open again: the first callback in it is admitted and closes it (2 s is ample for one local request).
    node.registrar.send({ type: 'REGISTER_NOW' });
    held = await dds.next();
    held.answer(200);
    await waitFor(node.registrar, (s) => s.matches({ registered: { callbackWindow: 'open' } }), { timeout: 15_000 });
    const inWindow = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    const inWindowAnswer = await callback(node, inWindow);
    assert.equal(`${inWindowAnswer.status} ${inWindowAnswer.body}`, `200 ${OK}`, 'admitted while the window is open');
    assert.ok(node.registrar.getSnapshot().matches({ registered: { callbackWindow: 'closed' } }), 'and the window closed');
    const stranger = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    assert.equal(`${(await callback(node, stranger)).status}`, '409');
    assert.equal(node.store.read(), inWindow.secret);
    const identity = node.store.identity();
    assert.equal(node.registrar.getSnapshot().context.callbacks, 1);

    node.registrar.send({ type: 'STOP' });
    await waitFor(node.registrar, (s) => s.status === 'done', { timeout: 15_000 });
    const afterStop = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    const stopAnswer = await callback(node, afterStop);
    assert.equal(`${stopAnswer.status} ${stopAnswer.body}`, '403 registrar is not running', 'refused after STOP');
    assert.equal(node.store.read(), inWindow.secret, 'the store is unchanged after STOP');
    assert.deepEqual(node.store.identity(), identity);
    for (const s of [late.secret, stranger.secret, afterStop.secret, inWindow.secret]) assertNoLineHolds(node, s, 'a callback secret');
  });

  it("a stranger's callbacks while registered after DDS's callback: 409 and nothing changes", async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 120);
    const held = await dds.next();
    const legit = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    assert.equal((await callback(node, legit)).status, 200);
    held.answer(200);
    await waitFor(node.registrar, (s) => s.matches({ registered: { callbackWindow: 'closed' } }), { timeout: 15_000 });

    const before = node.registrar.getSnapshot();
    const identity = node.store.identity();
    const strangers = Array.from({ length: scaled(20) }, (_, i) => {
      const kinds = [
        { id: 'node-legit', organization_id: 'org-evil' },
        { id: 'node-legit', organization_id: 'org-legit' },
        { id: `node-evil-${i}`, organization_id: null },
        { id: `node-evil-${i}` },
      ];
      return { ...kinds[i % kinds.length], secret: newSecret() };
    });
    const refuseAll = async (what: string): Promise<void> => {
      const answers = await Promise.all(strangers.map((p) => callback(node, p)));
      assert.deepEqual(
        answers.map((a) => `${a.status} ${a.body}`),
        strangers.map(() => `409 ${ALREADY}`),
        `every stranger is refused (${what})`,
      );
      const now = node.registrar.getSnapshot();
      assert.ok(now.matches({ registered: { callbackWindow: 'closed' } }), 'still registered, window closed');
      assert.equal(now.context.callbacks, before.context.callbacks, 'no callback counted');
      assert.equal(now.context.nodeId, 'node-legit', 'the node id is unchanged');
      assert.equal(now.context.organizationId, 'org-legit', 'the organisation is unchanged');
      assert.equal(node.store.read(), legit.secret, 'the secret is unchanged');
      assert.deepEqual(node.store.identity(), identity, 'the stored identity is unchanged');
    };
    await refuseAll('window closed');

    // A DDS health probe keeps it registered but does not reopen the window.
    assert.equal(await probe(node, 'DDS v1.4.2'), 200);
    await refuseAll('after a DDS probe');
    for (const p of strangers) assertNoLineHolds(node, p.secret, "a stranger's secret");
    assertNoLineHolds(node, legit.secret, 'the admitted secret');
    recordFigure('admission.strangers', { refused: strangers.length * 2, admitted: 0 });
  });
});
