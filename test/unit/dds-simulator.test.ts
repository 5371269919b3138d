/**
 * The embedded DDS simulator and its registration checks, over real HTTP:
 * the simulator and a small node:http server acting as the node, both on
 * 127.0.0.1 port 0.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { formatTimestampNanos, generateSecretKey, signRecoverableKeccakHex } from '../../src/crypto.js';
import type { SecretKey } from '../../src/crypto.js';
import { buildRegistrationRequest, serializeRegistrationBody } from '../../src/register.js';
import type { RegistrationBody } from '../../src/register.js';
import { DdsSimulator, DdsSimulatorListenError } from '../../src/sim/dds-simulator.js';
import type { DdsSimulatorOptions } from '../../src/sim/dds-simulator.js';
import { verifyRegistrationRequest } from '../../src/sim/verify-registration.js';
import { assertNoSecrets, listen, startSimulator, tempDir, waitUntil, type SimulatorHarness } from '../support/index.js';

const REG_SECRET = 'reg-secret-7f3a9c1e-do-not-leak';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ---------------------------------------------------------------- helpers

interface Callback {
  contentType: string | undefined;
  body: Record<string, unknown>;
}

interface FakeNode {
  url: string;
  callbacks: Callback[];
  probeUserAgents: (string | undefined)[];
  inflight: number;
  maxInflight: number;
  /** How long /health holds its answer. */
  healthDelayMs: number;
}

/** A node: records DDS callbacks and health probes. */
async function startFakeNode(t: TestContext): Promise<FakeNode> {
  const node: FakeNode = { url: '', callbacks: [], probeUserAgents: [], inflight: 0, maxInflight: 0, healthDelayMs: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/internal/v1/registrations') {
        node.callbacks.push({
          contentType: req.headers['content-type'],
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      } else if (req.method === 'GET' && req.url === '/health') {
        node.probeUserAgents.push(req.headers['user-agent']);
        node.inflight += 1;
        node.maxInflight = Math.max(node.maxInflight, node.inflight);
        setTimeout(() => {
          node.inflight -= 1;
          res.writeHead(200).end();
        }, node.healthDelayMs);
      } else {
        res.writeHead(404).end();
      }
    });
  });
  node.url = (await listen(t, server)).url;
  return node;
}

type Harness = SimulatorHarness;

function startSim(t: TestContext, options: DdsSimulatorOptions = {}): Promise<Harness> {
  return startSimulator(t, { probeIntervalMs: 100, callbackDelayMs: 10, version: '9.8.7', ...options });
}

interface Answer {
  status: number;
  text: string;
  headers: Headers;
}

async function post(baseUrl: string, body: string, contentType = 'application/json', urlPath = '/internal/v1/nodes/register'): Promise<Answer> {
  const res = await fetch(`${baseUrl}${urlPath}`, {
    method: 'POST',
    headers: { 'content-type': contentType, connection: 'close' },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

function registration(nodeUrl: string, key: SecretKey, over: Partial<RegistrationBody> = {}): RegistrationBody {
  const body = buildRegistrationRequest({
    nodeUrl,
    nodeVersion: '1.2.3',
    regSecret: REG_SECRET,
    key,
    capabilities: ['/reconstruction/global-refinement/v1'],
  });
  return { ...body, ...over };
}

/** What the simulator wrote that must hold no secret: its logs and events. */
function outputsOf(h: Harness): Record<string, string> {
  return { logs: h.logger.dump(), events: JSON.stringify(h.events) };
}

// ---------------------------------------------------------------- verifyRegistrationRequest

describe('verifyRegistrationRequest', () => {
  const key = generateSecretKey();
  const good = (over: Partial<RegistrationBody> = {}): RegistrationBody =>
    registration('https://node.example.com/', key, over);

  test('accepts a body built by buildRegistrationRequest', () => {
    const body = good();
    const v = verifyRegistrationRequest(serializeRegistrationBody(body), { expectedRegSecret: REG_SECRET });
    assert.deepEqual(v, { ok: true, body });
  });

  test('rejects malformed bodies with short reasons', () => {
    const body = good();
    const cases: [string, string, RegExp][] = [
      ['not JSON', '{"url":', /not valid JSON/],
      ['an array', '[]', /JSON object/],
      ['null', 'null', /JSON object/],
      ['a missing key', JSON.stringify({ ...body, capabilities: undefined }), /keys must be exactly/],
      ['an extra key', JSON.stringify({ ...body, extra: 1 }), /keys must be exactly/],
      ['a number version', JSON.stringify({ ...body, version: 1 }), /version must be a string/],
      ['non-string capabilities', JSON.stringify({ ...body, capabilities: ['/a', 2] }), /capabilities must be an array/],
      ['a ftp url', serializeRegistrationBody({ ...body, url: 'ftp://node.example.com' }), /http\(s\) URL/],
      ['a relative url', serializeRegistrationBody({ ...body, url: '/node' }), /http\(s\) URL/],
      ['six fractional digits', serializeRegistrationBody({ ...body, timestamp: '2024-01-02T03:04:05.006007Z' }), /nine fractional/],
      ['an offset', serializeRegistrationBody({ ...body, timestamp: '2024-01-02T03:04:05.006007008+00:00' }), /nine fractional/],
      ['an impossible date', serializeRegistrationBody({ ...body, timestamp: '2024-02-30T03:04:05.006007008Z' }), /not a valid time/],
      ['an uppercase key', serializeRegistrationBody({ ...body, public_key: body.public_key.toUpperCase() }), /public_key/],
      ['a compressed key', serializeRegistrationBody({ ...body, public_key: `02${body.public_key.slice(2, 66)}` }), /public_key/],
      ['a short signature', serializeRegistrationBody({ ...body, signature: body.signature.slice(0, 128) }), /signature must be/],
    ];
    for (const [name, raw, reason] of cases) {
      const v = verifyRegistrationRequest(raw);
      assert.equal(v.ok, false, name);
      if (!v.ok) assert.match(v.reason, reason, name);
    }
  });

  test('checks the timestamp against now ± maxSkewMs', () => {
    const now = Date.parse('2024-01-02T03:04:05Z');
    const at = (ms: number): RegistrationBody => {
      const timestamp = formatTimestampNanos(new Date(ms));
      return good({ timestamp, signature: signRecoverableKeccakHex(key, `https://node.example.com/${timestamp}`) });
    };
    assert.equal(verifyRegistrationRequest(serializeRegistrationBody(at(now + 4 * 60_000)), { now }).ok, true);
    assert.equal(verifyRegistrationRequest(serializeRegistrationBody(at(now - 4 * 60_000)), { now }).ok, true);
    for (const skew of [6 * 60_000, -6 * 60_000]) {
      const v = verifyRegistrationRequest(serializeRegistrationBody(at(now + skew)), { now });
      assert.deepEqual(v, { ok: false, reason: 'timestamp outside the allowed clock skew' });
    }
    const v = verifyRegistrationRequest(serializeRegistrationBody(at(now + 2000)), { now, maxSkewMs: 1000 });
    assert.equal(v.ok, false);
  });

  test('the credentials reason never contains either secret', () => {
    const expected = 'expected-secret-b81c';
    const v = verifyRegistrationRequest(serializeRegistrationBody(good()), { expectedRegSecret: expected });
    assert.equal(v.ok, false);
    if (!v.ok) {
      assert.equal(v.reason, 'invalid registration credentials');
      assert.ok(!v.reason.includes(expected) && !v.reason.includes(REG_SECRET));
    }
    // No expectation set: any credentials pass.
    assert.equal(verifyRegistrationRequest(serializeRegistrationBody(good())).ok, true);
  });
});

// ---------------------------------------------------------------- the simulator over HTTP

describe('DdsSimulator', { timeout: 60_000 }, () => {
  test('valid registration: 200, callback with id/secret/org, probes with the DDS UA', async (t) => {
    const node = await startFakeNode(t);
    const h = await startSim(t, { expectedRegSecret: REG_SECRET });
    const key = generateSecretKey();
    const body = registration(node.url, key);

    const answer = await post(h.url, serializeRegistrationBody(body));
    assert.equal(answer.status, 200);
    assert.equal(answer.text, '{"ok":true}');

    await waitUntil(() => node.callbacks.length === 1, 'the callback', 15_000);
    const cb = node.callbacks[0];
    assert.ok(cb);
    assert.match(cb.contentType ?? '', /^application\/json/);
    assert.match(String(cb.body.id), UUID_V4);
    assert.match(String(cb.body.secret), /^[0-9a-f]{64}$/);
    assert.equal(cb.body.organization_id, 'org-sim');
    assert.deepEqual(cb.body.lighthouses_in_domains, []);
    assert.deepEqual(cb.body.domains, []);

    await waitUntil(() => node.probeUserAgents.length >= 2, 'two probes', 15_000);
    assert.ok(node.probeUserAgents.every((ua) => ua === 'DDS v9.8.7'));
    await waitUntil(() => h.of('probe.sent').length >= 2, 'the probe events', 15_000);

    const received = h.of('registration.received')[0];
    assert.deepEqual(received, {
      type: 'registration.received',
      nodeUrl: node.url,
      publicKeyPrefix: body.public_key.slice(0, 12),
      version: '1.2.3',
      capabilities: ['/reconstruction/global-refinement/v1'],
    });
    assert.deepEqual(h.of('registration.accepted'), [{ type: 'registration.accepted', nodeUrl: node.url, nodeId: cb.body.id }]);
    assert.deepEqual(h.of('callback.sent'), [{ type: 'callback.sent', nodeUrl: node.url, nodeId: cb.body.id, status: 200 }]);
    assert.deepEqual(h.of('probe.sent')[0], { type: 'probe.sent', nodeUrl: node.url, status: 200 });

    const entry = h.sim.nodes.get(String(cb.body.id));
    assert.ok(entry);
    assert.equal(entry.nodeUrl, node.url);
    assert.equal(entry.publicKey, body.public_key);
    assert.ok(entry.probes >= 2 && entry.lastProbeAt !== null);
    assert.ok(!JSON.stringify([...h.sim.nodes.values()]).includes(String(cb.body.secret)));

    assertNoSecrets(outputsOf(h), [REG_SECRET, String(cb.body.secret)], { exact: true });
    assert.ok(h.logger.events('dds_sim.registration.accepted').length === 1);
    assert.ok(h.logger.events('dds_sim.callback.sent').length === 1);
  });

  test('re-registration: same id, fresh secret, one probe loop (no overlapping probes)', async (t) => {
    const node = await startFakeNode(t);
    node.healthDelayMs = 150; // longer than the interval: a second loop would overlap
    const h = await startSim(t, { probeIntervalMs: 30 });
    const key = generateSecretKey();
    for (let i = 1; i <= 3; i++) {
      assert.equal((await post(h.url, serializeRegistrationBody(registration(node.url, key)))).status, 200);
      await waitUntil(() => node.callbacks.length === i, `callback ${i}`, 15_000);
    }
    await waitUntil(() => node.probeUserAgents.length >= 5, 'five probes', 15_000);
    assert.equal(node.maxInflight, 1);
    assert.equal(h.sim.nodes.size, 1);
    const ids = new Set(node.callbacks.map((c) => c.body.id));
    const secrets = new Set(node.callbacks.map((c) => c.body.secret));
    assert.equal(ids.size, 1);
    assert.equal(secrets.size, 3);

    // Another key at the same URL is another node.
    assert.equal((await post(h.url, serializeRegistrationBody(registration(node.url, generateSecretKey())))).status, 200);
    await waitUntil(() => node.callbacks.length === 4, 'callback 4', 15_000);
    assert.notEqual(node.callbacks[3]?.body.id, node.callbacks[0]?.body.id);
    assert.equal(h.sim.nodes.size, 2);
    assertNoSecrets(outputsOf(h), [REG_SECRET, ...[...secrets].map(String)], { exact: true });
  });

  test('reordered keys → 400', async (t) => {
    const h = await startSim(t);
    const b = registration('http://127.0.0.1:9/', generateSecretKey());
    const reordered = JSON.stringify({
      version: b.version,
      url: b.url,
      registration_credentials: b.registration_credentials,
      signature: b.signature,
      timestamp: b.timestamp,
      public_key: b.public_key,
      capabilities: b.capabilities,
    });
    const answer = await post(h.url, reordered);
    assert.equal(answer.status, 400);
    assert.match(answer.text, /keys must be exactly url, version, registration_credentials/);
    assert.ok(!answer.text.includes(REG_SECRET));
    assert.deepEqual(h.of('registration.rejected'), [{ type: 'registration.rejected', status: 400, reason: answer.text }]);
    assert.equal(h.of('registration.accepted').length, 0);
  });

  test('bad signatures → 400: another key, a flipped bit, v = 27', async (t) => {
    const h = await startSim(t);
    const key = generateSecretKey();
    const b = registration('http://127.0.0.1:9/', key);
    const other = signRecoverableKeccakHex(generateSecretKey(), b.url + b.timestamp);
    const nibble = parseInt(b.signature[10] ?? '0', 16) ^ 1;
    const flipped = `${b.signature.slice(0, 10)}${nibble.toString(16)}${b.signature.slice(11)}`;
    const v27 = `${b.signature.slice(0, 128)}1b`;
    const vFirst = `0${b.signature.slice(129)}${b.signature.slice(0, 128)}`; // v‖r‖s, the library pitfall
    const otherMessage = signRecoverableKeccakHex(key, `${b.url}x${b.timestamp}`);
    for (const [name, signature, reason] of [
      ['other key', other, /does not verify/],
      ['flipped bit', flipped, /does not verify/],
      ['v = 27', v27, /v 00 or 01/],
      ['v first', vFirst, /./],
      ['other message', otherMessage, /does not verify/],
    ] as const) {
      const answer = await post(h.url, serializeRegistrationBody({ ...b, signature }));
      assert.equal(answer.status, 400, name);
      assert.match(answer.text, reason, name);
    }
    // The untouched body passes: the rejections above are about the signatures alone.
    assert.equal((await post(h.url, serializeRegistrationBody(b))).status, 200);
  });

  test('timestamp skew of 6 minutes → 400', async (t) => {
    const h = await startSim(t);
    const key = generateSecretKey();
    const nodeUrl = 'http://127.0.0.1:9/';
    for (const skew of [-6 * 60_000, 6 * 60_000]) {
      const timestamp = formatTimestampNanos(new Date(Date.now() + skew));
      const body = registration(nodeUrl, key, { timestamp, signature: signRecoverableKeccakHex(key, nodeUrl + timestamp) });
      const answer = await post(h.url, serializeRegistrationBody(body));
      assert.equal(answer.status, 400);
      assert.equal(answer.text, 'timestamp outside the allowed clock skew');
    }
  });

  test('wrong registration secret → 400, and no secret in the answer, logs or events', async (t) => {
    const expected = 'expected-secret-0c41-do-not-leak';
    const h = await startSim(t, { expectedRegSecret: expected });
    const answer = await post(h.url, serializeRegistrationBody(registration('http://127.0.0.1:9/', generateSecretKey())));
    assert.equal(answer.status, 400);
    assert.equal(answer.text, 'invalid registration credentials');
    for (const s of [expected, REG_SECRET]) assert.ok(!answer.text.includes(s));
    assertNoSecrets(outputsOf(h), [expected, REG_SECRET], { exact: true });
    assert.equal(h.logger.events('dds_sim.registration.rejected').length, 1);
  });

  test('content type, size limit, paths and methods', async (t) => {
    const h = await startSim(t);
    const body = serializeRegistrationBody(registration('http://127.0.0.1:9/', generateSecretKey()));
    assert.equal((await post(h.url, body, 'text/plain')).status, 415);
    assert.equal((await post(h.url, body, 'application/x-www-form-urlencoded')).status, 415);
    assert.equal((await post(h.url, body, 'application/json; charset=utf-8')).status, 200);
    assert.equal((await post(h.url, 'x'.repeat(64 * 1024 + 1))).status, 413);
    assert.equal((await post(h.url, body, 'application/json', '/internal/v1/nodes/registe')).status, 404);
    const get = await fetch(`${h.url}/internal/v1/nodes/register`, { headers: { connection: 'close' } });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    await get.body?.cancel();
    assert.ok(!h.logger.dump().includes(REG_SECRET));
  });

  test('faults: failStatus 500 with failCount 2, then 200', async (t) => {
    const node = await startFakeNode(t);
    const h = await startSim(t, { faults: { failStatus: 500, failCount: 2 } });
    const body = serializeRegistrationBody(registration(node.url, generateSecretKey()));
    assert.equal((await post(h.url, body)).status, 500);
    assert.equal((await post(h.url, body)).status, 500);
    assert.equal((await post(h.url, body)).status, 200);
    assert.deepEqual(h.of('registration.fault'), [
      { type: 'registration.fault', status: 500 },
      { type: 'registration.fault', status: 500 },
    ]);
    assert.equal(h.sim.faults.failCount, 0);
    await waitUntil(() => node.callbacks.length === 1, 'the callback', 15_000);

    // Invalid requests are rejected before any fault is drawn.
    h.sim.setFaults({ failStatus: 503, failCount: null });
    assert.equal((await post(h.url, '{}')).status, 400);
    assert.equal((await post(h.url, body)).status, 503);
    assert.equal((await post(h.url, body)).status, 503);
    h.sim.setFaults({ failStatus: null });
    assert.equal((await post(h.url, body)).status, 200);
    assert.ok(h.of('faults.changed').length >= 2);
  });

  test('faults: 429 with Retry-After, 307 with a Location, random failures', async (t) => {
    const draws = [0.9, 0.1];
    const h = await startSim(t, { random: () => draws.shift() ?? 0.9 });
    const body = serializeRegistrationBody(registration('http://127.0.0.1:9/', generateSecretKey()));

    h.sim.setFaults({ failStatus: 429, retryAfterSecs: 7 });
    const limited = await post(h.url, body);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '7');

    h.sim.setFaults({ failStatus: 500 });
    assert.equal((await post(h.url, body)).headers.get('retry-after'), null);

    h.sim.setFaults({ failStatus: 307 });
    const moved = await post(h.url, body);
    assert.equal(moved.status, 307);
    assert.ok(moved.headers.get('location'));

    h.sim.setFaults({ failStatus: null, failureRate: 0.5 });
    assert.equal((await post(h.url, body)).status, 200); // draw 0.9
    assert.equal((await post(h.url, body)).status, 500); // draw 0.1
    assert.deepEqual(h.sim.faults, { failStatus: null, failureRate: 0.5, retryAfterSecs: 7 });

    assert.throws(() => h.sim.setFaults({ failureRate: 2 }), RangeError);
    assert.throws(() => h.sim.setFaults({ failStatus: 200 }), RangeError);
    assert.equal(h.sim.faults.failureRate, 0.5);
  });

  test('faults: latency delays the answer', async (t) => {
    const h = await startSim(t, { faults: { latencyMs: 300 } });
    const body = serializeRegistrationBody(registration('http://127.0.0.1:9/', generateSecretKey()));
    const t0 = performance.now();
    assert.equal((await post(h.url, body)).status, 200);
    assert.ok(performance.now() - t0 >= 250, 'answered before the latency elapsed');
  });

  test('faults: pauseProbes stops probes, resuming restarts them', async (t) => {
    const node = await startFakeNode(t);
    node.healthDelayMs = 100; // a probe is usually in flight when the pause comes
    const h = await startSim(t, { probeIntervalMs: 40 });
    assert.equal((await post(h.url, serializeRegistrationBody(registration(node.url, generateSecretKey())))).status, 200);
    await waitUntil(() => node.probeUserAgents.length >= 2, 'probes', 15_000);

    h.sim.setFaults({ pauseProbes: true });
    const atPause = node.probeUserAgents.length;
    await sleep(600); // 15 intervals
    // At most the one probe that was already on its way.
    assert.ok(node.probeUserAgents.length - atPause <= 1, `probes continued while paused: ${node.probeUserAgents.length - atPause}`);

    const beforeResume = node.probeUserAgents.length;
    h.sim.setFaults({ pauseProbes: false });
    await waitUntil(() => node.probeUserAgents.length >= beforeResume + 2, 'probes after resuming', 15_000);
  });

  test('a node that cannot be reached: callback and probes report the error', async (t) => {
    const h = await startSim(t, { probeIntervalMs: 30 });
    // Port 9 (discard) on loopback: nothing listens there.
    const nodeUrl = 'http://127.0.0.1:9';
    assert.equal((await post(h.url, serializeRegistrationBody(registration(nodeUrl, generateSecretKey())))).status, 200);
    await waitUntil(() => h.of('callback.sent').length === 1, 'the callback event', 15_000);
    const cb = h.of('callback.sent')[0];
    assert.equal(cb?.status, null);
    assert.equal(typeof cb?.error, 'string');
    await waitUntil(() => h.of('probe.sent').length >= 1, 'a probe event', 15_000);
    assert.equal(h.of('probe.sent')[0]?.status, null);
    assert.ok(h.logger.events('dds_sim.callback.error').length === 1);
  });

  test('a node that stops answering is forgotten after 5 failed probes in a row, with one line, until it registers again', async (t) => {
    const h = await startSim(t, { probeIntervalMs: 20 });
    const nodeUrl = 'http://127.0.0.1:9'; // nothing listens on the discard port
    const key = generateSecretKey();
    assert.equal((await post(h.url, serializeRegistrationBody(registration(nodeUrl, key)))).status, 200);
    await waitUntil(() => h.of('node.forgotten').length === 1, 'the node forgotten', 15_000);
    const [forgotten] = h.of('node.forgotten');
    assert.deepEqual(forgotten, { type: 'node.forgotten', nodeUrl, nodeId: forgotten?.nodeId, failedProbes: 5 });
    assert.equal(h.of('probe.sent').length, 5);
    assert.equal(h.sim.nodes.size, 0);
    assert.equal(h.logger.events('dds_sim.probe.error').length, 5);
    const lines = h.logger.events('dds_sim.node.forgotten');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.['failed_probes'], 5);
    await sleep(300); // 15 intervals: no more probes, no more warnings
    assert.equal(h.of('probe.sent').length, 5);
    assert.equal(h.logger.events('dds_sim.probe.error').length, 5);

    // Registering again makes it known and probed again, with a fresh count.
    assert.equal((await post(h.url, serializeRegistrationBody(registration(nodeUrl, key)))).status, 200);
    assert.equal(h.sim.nodes.get(forgotten?.nodeId ?? '')?.failedProbes, 0);
    await waitUntil(() => h.of('node.forgotten').length === 2, 'forgotten again', 15_000);
    assert.equal(h.of('probe.sent').length, 10);
  });

  test('forgetAfterFailedProbes: its own count; 0 never forgets; answered probes never count', async (t) => {
    const never = await startSim(t, { probeIntervalMs: 10, forgetAfterFailedProbes: 0 });
    const three = await startSim(t, { probeIntervalMs: 10, forgetAfterFailedProbes: 3 });
    for (const h of [never, three]) {
      assert.equal((await post(h.url, serializeRegistrationBody(registration('http://127.0.0.1:9', generateSecretKey())))).status, 200);
    }
    await waitUntil(() => three.of('node.forgotten').length === 1, 'forgotten after 3', 15_000);
    assert.equal(three.of('probe.sent').length, 3);
    await waitUntil(() => never.of('probe.sent').length >= 12, 'still probing', 15_000);
    assert.equal(never.of('node.forgotten').length, 0);
    assert.equal([...never.sim.nodes.values()][0]?.failedProbes, never.of('probe.sent').length);

    const node = await startFakeNode(t);
    const good = await startSim(t, { probeIntervalMs: 10, forgetAfterFailedProbes: 1 });
    assert.equal((await post(good.url, serializeRegistrationBody(registration(node.url, generateSecretKey())))).status, 200);
    await waitUntil(() => node.probeUserAgents.length >= 5, 'probes answered', 15_000);
    assert.equal(good.of('node.forgotten').length, 0);
    assert.equal([...good.sim.nodes.values()][0]?.failedProbes, 0);

    assert.throws(() => new DdsSimulator({ forgetAfterFailedProbes: -1 }), RangeError);
    assert.throws(() => new DdsSimulator({ forgetAfterFailedProbes: 1.5 }), RangeError);
  });

  test('stop(): closes the server, stops probing, is idempotent', async (t) => {
    const node = await startFakeNode(t);
    const h = await startSim(t, { probeIntervalMs: 30 });
    assert.equal((await post(h.url, serializeRegistrationBody(registration(node.url, generateSecretKey())))).status, 200);
    await waitUntil(() => node.probeUserAgents.length >= 2, 'probes', 15_000);

    await Promise.all([h.sim.stop(), h.sim.stop()]);
    await h.sim.stop();
    const atStop = node.probeUserAgents.length;
    const eventsAtStop = h.events.length;
    await assert.rejects(
      fetch(`${h.url}/internal/v1/nodes/register`, { method: 'POST', signal: AbortSignal.timeout(5000) }),
      (err: Error) => (err.cause as { code?: string } | undefined)?.code === 'ECONNREFUSED',
    );
    await sleep(300); // 10 intervals
    assert.equal(node.probeUserAgents.length, atStop);
    assert.deepEqual(h.events.slice(eventsAtStop), [], 'the simulator kept working after stop()');
    await assert.rejects(h.sim.start(), /stopped/);
  });

  test('start(): a taken port rejects with code EADDRINUSE', async (t) => {
    const h = await startSim(t);
    const port = Number(new URL(h.url).port);
    const second = new DdsSimulator({ port });
    const err = await second.start().then(
      () => assert.fail('started on a taken port'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DdsSimulatorListenError);
    assert.equal(err.code, 'EADDRINUSE');
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}: address already in use`));
    await second.stop();
    assert.throws(() => second.url, /not started/);
  });

  test('after stop() the process exits on its own (no open handles)', async (t) => {
    const dir = tempDir(t, 'dds-sim-');
    const mod = (p: string): string => JSON.stringify(pathToFileURL(path.join(ROOT, p)).href);
    const script = path.join(dir, 'child.mts');
    fs.writeFileSync(
      script,
      `
import http from 'node:http';
import { DdsSimulator } from ${mod('src/sim/dds-simulator.ts')};
import { buildRegistrationRequest, serializeRegistrationBody } from ${mod('src/register.ts')};
import { generateSecretKey } from ${mod('src/crypto.ts')};
let probes = 0;
let callbacks = 0;
const node = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url === '/health') probes++;
    else callbacks++;
    res.end('{"ok":true}');
  });
});
await new Promise((r) => node.listen(0, '127.0.0.1', () => r(undefined)));
const nodeUrl = 'http://127.0.0.1:' + node.address().port;
const sim = new DdsSimulator({ probeIntervalMs: 30, callbackDelayMs: 5 });
const { url } = await sim.start();
const body = buildRegistrationRequest({ nodeUrl, nodeVersion: '1.0.0', regSecret: 's', key: generateSecretKey() });
const res = await fetch(url + '/internal/v1/nodes/register', {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: serializeRegistrationBody(body),
});
await res.text();
while (probes < 3) await new Promise((r) => setTimeout(r, 10));
await sim.stop();
const atStop = probes;
await new Promise((r) => setTimeout(r, 300));
// The node's server stays open but unreferenced: only the simulator's handles could keep us alive.
node.unref();
console.log(JSON.stringify({ status: res.status, callbacks, atStop, after: probes }));
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let errText = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (errText += c.toString()));
    const exit = await new Promise<number | null | 'timeout'>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 30_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    assert.equal(exit, 0, `child did not exit cleanly (${String(exit)}): ${errText}`);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
    assert.equal(result.status, 200);
    assert.equal(result.callbacks, 1);
    assert.ok((result.atStop ?? 0) >= 3);
    assert.equal(result.after, result.atStop);
  });
});
