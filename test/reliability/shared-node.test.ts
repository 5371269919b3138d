/**
 * Two registrars of one node (one key) on one data directory, each with its
 * own secret store and its own routes (replicas behind one NODE_URL): what one
 * of them learns from DDS, the other knows too.
 *
 * 1. The secret handed to the registrar that sent the request is read by the
 *    other one (its own store, `read()`) within about a second — the figure
 *    `sibling_reads_secret_ms`.
 * 2. DDS's callback reaching the registrar that did NOT send the request is
 *    admitted while the other's request is in flight and its window is open,
 *    refused outside (after the window closed).
 *
 * Real HTTP on 127.0.0.1: the daemon's core (`startDaemon`) twice, a fake DDS
 * that holds the registration until the test answers it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { waitFor } from 'xstate';
import { MemoryLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import { callbackResponder, callNodeBack, holdRegistrations, LeakScan, now, sleep, startFakeDds, tempDir, waitUntil } from '../support/index.js';
import { newCredentials, recordFigure, spawnNode } from './common.js';
import { startWindowDaemon, type WindowDaemon } from './daemon-node.js';
import { generateSecretKey, loadSecp256k1Privhex } from '../../src/crypto.js';
import { createNodeSecretFile } from '../../src/state/node-secret-file.js';

const credentials = newCredentials();
const scan = new LeakScan([credentials.regSecret, credentials.privhex]);

type Replica = WindowDaemon;

function startReplica(t: TestContext, ddsUrl: string, dataDir: string, callbackWindowSecs: number): Promise<Replica> {
  return startWindowDaemon(t, {
    ddsUrl,
    secrets: credentials,
    nodeUrl: 'http://127.0.0.1:9/shared-node',
    dataDir,
    callbackWindowSecs,
    settings: { requestTimeoutSecs: 30, lockStaleSecs: 40 },
    scan: (where, text) => scan.add(where, text),
  });
}

/** Start two replicas; answer which one sent the request (`sender`) and which waits for the lock (`other`). */
async function startPair(t: TestContext, callbackWindowSecs: number) {
  const held = holdRegistrations();
  const dds = await startFakeDds(t, { responder: held.responder });
  const dataDir = path.join(tempDir(t, 'posemesh-shared-node-'), 'data');
  const a = await startReplica(t, dds.url, dataDir, callbackWindowSecs);
  const b = await startReplica(t, dds.url, dataDir, callbackWindowSecs);
  const request = await held.next();
  const inFlight = (r: Replica): boolean => r.daemon.registrar.getSnapshot().matches('registering');
  await waitUntil(() => inFlight(a) || inFlight(b), 'one replica registering');
  const [sender, other] = inFlight(a) ? [a, b] : [b, a];
  await waitFor(other.daemon.registrar, (s) => s.matches({ acquiringLock: 'waitingForLock' }), { timeout: 10_000 });
  return { sender, other, request };
}

function newSecret(): string {
  const secret = `node-secret-${randomBytes(16).toString('hex')}`;
  scan.addSecret(secret);
  return secret;
}

describe('two registrars of one node, one data directory', { timeout: 60_000 }, () => {
  it('the registrar that did not receive the callback reads the secret within about a second', async (t) => {
    const { sender, other, request } = await startPair(t, 120);
    const secret = newSecret();
    const answer = await callNodeBack(sender.daemon.url, { id: 'node-shared', secret, organization_id: 'org-shared' });
    assert.equal(answer.status, 200, answer.body);
    const stored = now();
    assert.equal(sender.store.read(), secret);
    await waitUntil(() => other.store.read() === secret, 'the sibling reads the secret', 5000, 1);
    const ms = now() - stored;
    assert.ok(ms < 1000, `read within ~1 s (took ${ms.toFixed(1)} ms)`);
    assert.equal(other.store.identity()?.nodeId, 'node-shared');
    recordFigure('sibling_reads_secret_ms', Math.round(ms * 10) / 10);
    request.answer(200);
    assert.equal(other.logger.events('persist.secret.shared').length, 1);
  });

  it("DDS's callback to the registrar that did not send the request is admitted during the other's attempt, refused outside", async (t) => {
    const { sender, other, request } = await startPair(t, 1);
    // In flight at the sender: the other one admits.
    const during = newSecret();
    const first = await callNodeBack(other.daemon.url, { id: 'node-shared', secret: during, organization_id: null });
    assert.equal(first.status, 200, `admitted while the sibling's request is in flight: ${first.body}`);
    assert.equal(other.store.read(), during);
    assert.equal(sender.store.read(), during, 'and the sender reads it too');
    // Answered: the sender's window (1 s) is open, then closes.
    request.answer(200);
    await waitFor(sender.daemon.registrar, (s) => s.matches('registered'), { timeout: 10_000 });
    const inWindow = newSecret();
    assert.equal((await callNodeBack(other.daemon.url, { id: 'node-shared', secret: inWindow })).status, 200, 'within the window');
    await waitFor(sender.daemon.registrar, (s) => s.context.callbackWindowOpen === false, { timeout: 10_000 });
    await waitUntil(() => !other.daemon.registrar.getSnapshot().can({ type: 'SECRET_RECEIVED', nodeId: 'x', organizationId: null, secretLength: 1, repeat: false }), 'other not admitting itself');
    // The shared window runs out with the sender's (its file's end, judged by wall and monotonic clocks).
    let refused: string | undefined;
    for (let i = 0; i < 50 && refused === undefined; i++) {
      const late = newSecret();
      const answer = await callNodeBack(other.daemon.url, { id: 'node-stranger', secret: late });
      if (answer.status === 403) refused = late;
      else await sleep(100);
    }
    assert.ok(refused !== undefined, 'refused once the window closed');
    assert.notEqual(other.store.read(), refused);
    assert.notEqual(sender.store.read(), refused);
    // And it stays closed.
    assert.equal((await callNodeBack(other.daemon.url, { id: 'node-stranger', secret: newSecret() })).status, 403);
  });

  it('a registrar in another process reads the secret a child registrar received (real processes, the CLI)', async (t) => {
    const dds = await startFakeDds(t, { responder: callbackResponder({ delayMs: 300 }) });
    const creds = newCredentials();
    const dataDir = path.join(tempDir(t, 'posemesh-shared-node-'), 'data');
    const child = spawnNode(t, dds, creds, { name: 'receiver', nodeUrl: 'http://receiver.reliability.test:8080', dataDir, env: { REGISTER_INTERVAL_SECS: '60' } });
    const sibling = new NodeSecretStore();
    sibling.attach(createNodeSecretFile(dataDir, loadSecp256k1Privhex(creds.privhex).exposeBytes()));
    const stranger = new NodeSecretStore();
    const strangerLog = new MemoryLogger();
    stranger.attach(createNodeSecretFile(dataDir, generateSecretKey().exposeBytes()), strangerLog);
    await waitUntil(() => dds.callbacks.some((c) => c.status === 200), 'the child admitted the callback', 20_000, 1);
    const answered = now();
    const secret = dds.nodeSecrets[0] as string;
    scan.addSecret(secret);
    await waitUntil(() => sibling.read() === secret, 'the other process reads it', 5000, 1);
    const ms = now() - answered;
    assert.ok(ms < 1000, `within ~1 s (took ${ms.toFixed(1)} ms)`);
    recordFigure('sibling_process_reads_secret_ms', Math.round(ms * 10) / 10);
    assert.equal(stranger.read(), undefined, 'another key reads nothing');
    assert.equal(strangerLog.events('persist.secret.file.ignored')[0]?.kind, 'foreign');
    const r = await child.stop('SIGTERM');
    assert.equal(r.code, 0);
    scan.add('child output', child.stdout() + child.stderr());
    scan.add('data dir', fs.readdirSync(dataDir).map((n) => { try { return fs.readFileSync(path.join(dataDir, n), 'utf8'); } catch { return ''; } }).join('\n'));
  });

  it('leaks no secret in logs or snapshots', () => {
    assert.ok(scan.texts.length > 0);
    assert.deepEqual(scan.findings(), []);
  });
});
