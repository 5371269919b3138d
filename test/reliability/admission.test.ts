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
 * 1. 50 parallel callbacks while the request is in flight: all 200; the store
 *    holds exactly the last admitted secret; `context.callbacks` = the 200s.
 * 2. callbacks racing a failed (500) answer, over several rounds: every 200 was
 *    admitted before the answer was processed, every 403 after it; the store
 *    holds a secret from a 200.
 * 3. callbacks after the window closes and after STOP: 403, nothing stored,
 *    nothing logged that holds the secret.
 * 4. strangers while registered with the window closed: 403 and nothing
 *    changes (secret, identity, counters, state) — a DDS probe does not reopen it.
 *
 * Every log line, answer and snapshot is scanned for every secret at the end.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { waitFor } from 'xstate';
import { startDaemon, type Daemon } from '../../src/cli/daemon.js';
import { MemoryLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import type { Registrar } from '../../src/registrar.js';
import {
  assertNoSecrets,
  callNodeBack,
  holdRegistrations,
  onCleanup,
  probeHealth,
  sleep,
  startFakeDds,
  tempDir,
  type HeldRegistrations,
  type HttpAnswer,
} from '../support/index.js';
import { newCredentials, recordFigure, scaled, scaledTimeout } from './common.js';

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

interface Node {
  daemon: Daemon;
  registrar: Registrar;
  store: NodeSecretStore;
  logger: MemoryLogger;
  /** Where the daemon's routes listen. */
  url: string;
}

async function startNode(t: TestContext, dds: GatedDds, callbackWindowSecs: number): Promise<Node> {
  const dir = tempDir(t, 'posemesh-admission-');
  const logger = new MemoryLogger();
  const store = new NodeSecretStore({ logger });
  const daemon = await startDaemon({
    settings: {
      ddsBaseUrl: dds.url,
      nodeUrl: 'http://127.0.0.1:9/admission-node',
      nodeVersion: '1.2.3',
      regSecret: credentials.regSecret,
      secp256k1Privhex: credentials.envPrivhex,
      capabilities: ['/admission/v1'],
      registerIntervalSecs: 120,
      maxRetry: -1,
      requestTimeoutSecs: 60,
      callbackPolicy: 'window',
      callbackWindowSecs,
      dataDir: path.join(dir, 'data'),
      host: '127.0.0.1',
      port: 0,
    },
    logger,
    // A failed attempt waits a minute: no retry sneaks into a test; rounds use REGISTER_NOW.
    registrarOptions: { secrets: store, backoffPolicy: () => 60_000 },
  });
  onCleanup(t, async () => {
    await daemon.stop();
    const snapshot = daemon.registrar.getSnapshot();
    scan(`${t.name}: final snapshot`, JSON.stringify({ value: snapshot.value, context: snapshot.context }));
    scan(`${t.name}: log`, logger.lines.map((l) => JSON.stringify(l)).join('\n'));
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

/** Indices of the lines of `event` for node id `id`. */
function linesFor(node: Node, event: string, id: string): number[] {
  const found: number[] = [];
  node.logger.lines.forEach((l, i) => {
    if (l.event === event && l['node_id'] === id) found.push(i);
  });
  return found;
}

function assertNoLineHolds(node: Node, secret: string, what: string): void {
  const holding = node.logger.lines.filter((l) => JSON.stringify(l).includes(secret)).map((l) => l.event);
  assert.deepEqual(holding, [], `no log line holds ${what}`);
}

const OK = '{"ok":true}';
const NOT_IN_PROGRESS = 'no registration in progress';

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe('callback admission under concurrency (policy window, real HTTP)', { timeout: scaledTimeout(120_000, 60_000) }, () => {
  it('parallel callbacks while the registration request is in flight: all 200, the store holds the last admitted secret', async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 120);
    const held = await dds.next();
    assert.ok(node.registrar.getSnapshot().matches('registering'), 'the request is in flight');

    const n = scaled(50);
    const sent = Array.from({ length: n }, (_, i) => ({ id: `node-parallel-${i}`, secret: newSecret(), organization_id: `org-${i % 3}` }));
    const answers = await Promise.all(sent.map((p) => callback(node, p)));
    assert.deepEqual(
      answers.map((a) => `${a.status} ${a.body}`),
      sent.map(() => `200 ${OK}`),
      'every callback in flight is admitted',
    );
    const during = node.registrar.getSnapshot();
    assert.ok(during.matches('registering'), 'still in flight: every callback landed before the answer');
    assert.equal(during.context.callbacks, n, 'context.callbacks = the number of 200s');

    // The store holds exactly one of them: the last one it stored.
    const stored = node.logger.lines.filter((l) => l.event === 'persist.secret.stored');
    assert.equal(stored.length, n, 'each admitted secret was stored once');
    const lastId = stored[stored.length - 1]?.['node_id'];
    const last = sent.find((p) => p.id === lastId);
    assert.ok(last, 'the last stored id is one of the callbacks');
    assert.equal(node.store.read(), last.secret, 'the store holds the last admitted secret');
    assert.equal(node.store.identity()?.nodeId, last.id);
    assert.equal(node.store.identity()?.organizationId, last.organization_id);
    assert.equal(sent.filter((p) => p.secret === node.store.read()).length, 1, 'exactly one of the sent secrets');
    assert.equal(during.context.nodeId, last.id, 'the actor recorded the same id as the store');

    held.answer(200);
    const registered = await waitFor(node.registrar, (s) => s.matches('registered'), { timeout: 15_000 });
    assert.equal(registered.context.callbacks, n, 'the answer does not change the count');
    assert.equal(node.store.read(), last.secret, 'nor the secret');
    for (const p of sent) assertNoLineHolds(node, p.secret, `the secret of ${p.id}`);
    recordFigure('admission.parallel', { callbacks: n, admitted: answers.filter((a) => a.status === 200).length });
  });

  it('callbacks racing a failed (500) answer: 200 only before the answer was processed, 403 after; the store holds a 200 secret', async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 120);
    const rounds = scaled(4);
    const before = scaled(8);
    const around = scaled(24);
    const afterwards = scaled(8);
    const secretOf = new Map<string, string>();
    const statusOf = new Map<string, number>();
    const splits: { admitted: number; refused: number }[] = [];
    let searchFrom = 0;

    for (let round = 0; round < rounds; round++) {
      const held = await dds.next();
      assert.ok(node.registrar.getSnapshot().matches('registering'), `round ${round}: the request is in flight`);
      const send = (label: string): Promise<[string, HttpAnswer]> => {
        const id = `node-r${round}-${label}`;
        const secret = newSecret();
        secretOf.set(id, secret);
        return callback(node, { id, secret }).then((a): [string, HttpAnswer] => {
          statusOf.set(id, a.status);
          return [id, a];
        });
      };

      // Before the answer: all admitted.
      const early = await Promise.all(Array.from({ length: before }, (_, i) => send(`before-${i}`)));
      for (const [id, a] of early) assert.equal(`${a.status} ${a.body}`, `200 ${OK}`, `${id}: before the answer`);

      // Around the answer: launched a millisecond apart, the answer released among them
      // (a different point each round).
      const racing: Promise<[string, HttpAnswer]>[] = [];
      const releaseAt = Math.floor((around * ((round % 3) + 1)) / 4);
      for (let i = 0; i < around; i++) {
        if (i === releaseAt) held.answer(500, 'dds unavailable');
        racing.push(send(`around-${i}`));
        await sleep(1);
      }
      const raced = await Promise.all(racing);
      for (const [id, a] of raced) {
        assert.ok(
          (a.status === 200 && a.body === OK) || (a.status === 403 && a.body === NOT_IN_PROGRESS),
          `${id}: 200 or 403 around the answer, got ${a.status} ${a.body}`,
        );
      }
      await waitFor(node.registrar, (s) => s.matches('backoff'), { timeout: 15_000 });

      // After the answer: all refused.
      const late = await Promise.all(Array.from({ length: afterwards }, (_, i) => send(`after-${i}`)));
      for (const [id, a] of late) assert.equal(`${a.status} ${a.body}`, `403 ${NOT_IN_PROGRESS}`, `${id}: after the failed answer`);

      // The log's order decides: admitted (stored) before the failure was processed, refused after.
      const failedAt = lineIndex(node, (l) => l.event === 'registration.error' && l['status'] === 500, searchFrom);
      assert.ok(failedAt >= 0, `round ${round}: the failure is logged`);
      for (const [id, a] of [...early, ...raced, ...late]) {
        const stored = linesFor(node, 'persist.secret.stored', id);
        const refused = linesFor(node, 'registration.callback.refused', id);
        if (a.status === 200) {
          assert.equal(stored.length, 1, `${id}: a 200 stored its secret once`);
          assert.ok((stored[0] as number) < failedAt, `${id}: a 200 was admitted while the request was in flight`);
          assert.equal(refused.length, 0, `${id}: a 200 was not refused`);
        } else {
          assert.equal(stored.length, 0, `${id}: a 403 stored nothing`);
          assert.equal(refused.length, 1, `${id}: a 403 was logged as refused`);
          assert.ok((refused[0] as number) > failedAt, `${id}: a 403 came after the failed answer was processed`);
        }
      }
      searchFrom = failedAt + 1;
      splits.push({ admitted: raced.filter(([, a]) => a.status === 200).length, refused: raced.filter(([, a]) => a.status === 403).length });

      // The store holds a secret from a 200: the last one stored.
      const storedLines = node.logger.lines.filter((l) => l.event === 'persist.secret.stored');
      const lastId = String(storedLines[storedLines.length - 1]?.['node_id']);
      assert.equal(statusOf.get(lastId), 200, 'the last stored secret came with a 200');
      assert.equal(node.store.read(), secretOf.get(lastId), 'the store holds the last admitted secret');

      if (round + 1 < rounds) node.registrar.send({ type: 'REGISTER_NOW' });
    }

    const admitted = [...statusOf.values()].filter((s) => s === 200).length;
    assert.equal(node.registrar.getSnapshot().context.callbacks, admitted, 'context.callbacks = the number of 200s');
    for (const secret of secretOf.values()) assertNoLineHolds(node, secret, 'a callback secret');
    recordFigure('admission.race', { rounds, perRound: { before, around, after: afterwards }, aroundTheAnswer: splits, admitted, refused: statusOf.size - admitted });
  });

  it('callbacks after the window closes and after STOP: 403, nothing stored, nothing logged', async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 2);
    const held = await dds.next();
    const legit = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    assert.equal((await callback(node, legit)).status, 200, 'DDS calls back while the request is in flight');
    held.answer(200);
    await waitFor(node.registrar, (s) => s.matches({ registered: { callbackWindow: 'open' } }), { timeout: 15_000 });

    // Positive control: in the window, a callback is admitted (2 s is ample for one local request).
    const inWindow = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    const inWindowAnswer = await callback(node, inWindow);
    assert.equal(`${inWindowAnswer.status} ${inWindowAnswer.body}`, `200 ${OK}`, 'admitted while the window is open');
    assert.equal(node.store.read(), inWindow.secret);

    await waitFor(node.registrar, (s) => s.matches({ registered: { callbackWindow: 'closed' } }), { timeout: 15_000 });
    const identity = node.store.identity();
    const callbacks = node.registrar.getSnapshot().context.callbacks;
    assert.equal(callbacks, 2);

    const late = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    const lateAnswer = await callback(node, late);
    assert.equal(`${lateAnswer.status} ${lateAnswer.body}`, `403 ${NOT_IN_PROGRESS}`, 'refused once the window closed');
    assert.equal(node.store.read(), inWindow.secret, 'the store is unchanged');
    assert.deepEqual(node.store.identity(), identity, 'the identity is unchanged');
    assert.equal(node.registrar.getSnapshot().context.callbacks, callbacks, 'not counted');
    assertNoLineHolds(node, late.secret, 'the refused secret');

    node.registrar.send({ type: 'STOP' });
    await waitFor(node.registrar, (s) => s.status === 'done', { timeout: 15_000 });
    const afterStop = { id: 'node-legit', secret: newSecret(), organization_id: 'org-legit' };
    const stopAnswer = await callback(node, afterStop);
    assert.equal(`${stopAnswer.status} ${stopAnswer.body}`, '403 registrar is not running', 'refused after STOP');
    assert.equal(node.store.read(), inWindow.secret, 'the store is unchanged after STOP');
    assert.deepEqual(node.store.identity(), identity);
    assertNoLineHolds(node, afterStop.secret, 'the secret sent after STOP');
    for (const s of [legit.secret, inWindow.secret]) assertNoLineHolds(node, s, 'an admitted secret');
  });

  it("a stranger's callbacks while registered with the window closed: 403 and nothing changes", async (t) => {
    const dds = await startGatedDds(t);
    const node = await startNode(t, dds, 0.2);
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
        strangers.map(() => `403 ${NOT_IN_PROGRESS}`),
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
