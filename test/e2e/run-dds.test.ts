/**
 * `posemesh-node-registration run` as a real child process against a bare
 * local DDS (test/support/fake-dds.ts): the test itself plays DDS — it
 * answers the registration, calls the node back with an id and a secret,
 * and probes its `/health` — and watches the daemon's JSON log lines.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generateSecretKey, secp256k1PubkeyUncompressedHex } from '../../src/crypto.js';
import { REGISTRATION_KEYS, verifyRegistrationRequest } from '../../src/sim/verify-registration.js';
import { REGISTRATION_PATH as REGISTER_PATH } from '../../src/register.js';
import { assertNoSecrets, freePort, sleep, startFakeDds, startProber, tempDir, type Cleanup, type DdsRequest } from '../support/index.js';
import { cliEnv, spawnCli, type CliChild } from './helpers.js';


interface Setup {
  child: CliChild;
  nodeUrl: string;
  dataDir: string;
  regSecret: string;
  privhex: string;
  publicKey: string;
}

/** Start `run` against `ddsUrl`, on a free port of 127.0.0.1 whose URL is NODE_URL. */
async function startRun(t: Cleanup, ddsUrl: string, extra: Record<string, string> = {}): Promise<Setup> {
  // REGISTER_INTERVAL_SECS 2 unless `extra` says otherwise: short, yet long enough that a loaded
  // machine does not starve a probed node past its health-check TTL.
  const key = generateSecretKey();
  const privhex = key.exposeHex();
  const regSecret = `reg-${randomBytes(16).toString('hex')}`;
  const port = await freePort();
  const nodeUrl = `http://127.0.0.1:${port}`;
  const dataDir = join(tempDir(t), 'data');
  const child = spawnCli(
    t,
    ['run'],
    cliEnv({
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      DDS_BASE_URL: ddsUrl,
      NODE_URL: nodeUrl,
      NODE_VERSION: '1.2.3',
      REG_SECRET: regSecret,
      SECP256K1_PRIVHEX: privhex,
      CAPABILITIES: '/reconstruction/global-refinement/v1, /e2e/test/v1',
      REGISTER_INTERVAL_SECS: '2',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      ...extra,
    }),
  );
  const { line } = await child.waitForEvent('http.listening');
  assert.equal(line['url'], nodeUrl);
  return { child, nodeUrl, dataDir, regSecret, privhex, publicKey: secp256k1PubkeyUncompressedHex(key) };
}

function registrations(requests: readonly DdsRequest[]): DdsRequest[] {
  return requests.filter((r) => r.method === 'POST' && r.path === REGISTER_PATH);
}

/** The DDS side's check of one registration request. */
function assertValidRegistration(req: DdsRequest, s: Setup): void {
  assert.equal(req.headers['content-type']?.split(';')[0], 'application/json');
  const verdict = verifyRegistrationRequest(req.rawBody, { expectedRegSecret: s.regSecret });
  assert.ok(verdict.ok, verdict.ok ? '' : `registration body refused: ${verdict.reason}`);
  assert.deepEqual(Object.keys(req.body as object), [...REGISTRATION_KEYS]);
  assert.equal(verdict.body.url, s.nodeUrl);
  assert.equal(verdict.body.version, '1.2.3');
  assert.equal(verdict.body.public_key, s.publicKey);
  assert.deepEqual(verdict.body.capabilities, ['/reconstruction/global-refinement/v1', '/e2e/test/v1']);
}

async function postCallback(nodeUrl: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${nodeUrl}/internal/v1/registrations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'DDS v1.0.0', connection: 'close' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, text: await res.text() };
}

/** The child's lines as `time event source` (for failure messages). */
function trail(child: CliChild): string {
  return child.json.map((l) => `${String(l['time'])} ${String(l['event'])}${l['source'] ? ` ${String(l['source'])}` : ''}`).join('\n');
}

function readState(dataDir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dataDir, 'registration_state.json'), 'utf8')) as Record<string, unknown>;
}

describe('run against a bare test DDS', { concurrency: 3 }, () => {
  test('registers, takes the callback, stays registered while probed, re-registers when the probes stop, stops on SIGTERM', async (t) => {
    const dds = await startFakeDds(t);
    // Hold the first answer a little: the callback then arrives while the request is in flight, as from DDS.
    dds.setResponder(() => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}', delayMs: 150 }));
    const s = await startRun(t, dds.url);
    const nodeSecret = `node-secret-${randomBytes(24).toString('hex')}`;
    const secrets = [s.regSecret, s.privhex, nodeSecret];

    // 1. The registration request reaches DDS and verifies as DDS checks it.
    const [first] = await dds.waitForRequests(1, 15_000);
    assert.ok(first);
    assert.equal(first.method, 'POST');
    assert.equal(first.path, REGISTER_PATH);
    assertValidRegistration(first, s);
    // While the request is in flight the registration lock is held (a directory in DATA_DIR).
    assert.equal(existsSync(join(s.dataDir, 'registration.lock')), true, 'lock held during the request');

    // 2. DDS calls the node back with its id and secret: accepted.
    const cb = await postCallback(s.nodeUrl, { id: 'node-e2e-1', secret: nodeSecret, organization_id: 'org-e2e', domains: [] });
    assert.equal(cb.status, 200, `callback answered ${cb.status} ${cb.text}`);
    assert.deepEqual(JSON.parse(cb.text), { ok: true });
    // 3. From now on DDS probes; that keeps it registered: no second request over ~3 intervals (of 2 s).
    const prober = startProber(t, s.nodeUrl, 200);
    const { index: successAt } = await s.child.waitForEvent('registration.success');
    const { line: callbackLine } = await s.child.waitForEvent('registration.callback');
    assert.equal(callbackLine['node_id'], 'node-e2e-1');
    assert.equal(callbackLine['organization_id'], 'org-e2e');
    assert.equal(callbackLine['secret_len'], Buffer.byteLength(nodeSecret));
    assert.equal(readState(s.dataDir)['status'], 'registered');
    await s.child.waitFor((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe', { from: successAt, what: 'a probe touch' });
    await sleep(6000);
    assert.equal(registrations(dds.requests).length, 1, `no re-registration while DDS keeps probing; trail:\n${trail(s.child)}`);
    assert.equal(s.child.events('healthcheck.expired').length, 0);
    assert.ok(prober.count >= 10, `probes answered: ${prober.count}`);
    assert.equal(prober.failures, 0);

    // 4. DDS stops probing: the health check expires, the node registers again.
    await prober.stop();
    const expiredFrom = s.child.json.length;
    const { index: expiredAt } = await s.child.waitForEvent('healthcheck.expired', { from: expiredFrom, timeoutMs: 10_000 });
    await s.child.waitFor((l) => l['event'] === 'registration.success', { from: expiredAt, what: 'a second registration.success' });
    const regs = registrations(dds.requests);
    assert.equal(regs.length, 2);
    assertValidRegistration(regs[1] as DdsRequest, s);
    assert.notEqual((regs[1]?.body as { timestamp: string }).timestamp, (regs[0]?.body as { timestamp: string }).timestamp);

    // 5. SIGTERM: graceful stop, exit 0, state `disconnected`, lock released.
    const result = await s.child.stop('SIGTERM');
    assert.equal(result.signal, null);
    assert.equal(result.code, 0, `exit ${result.code}, stderr: ${result.stderr}`);
    assert.ok(s.child.events('process.exit').length === 1);
    assert.equal(readState(s.dataDir)['status'], 'disconnected');
    assert.equal(existsSync(join(s.dataDir, 'registration.lock')), false, 'lock directory removed');
    assert.equal(existsSync(join(s.dataDir, 'registration.lock.holder.json')), false, 'holder file removed');

    assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, secrets);
  });

  test('backs off after DDS answers 500 (echoing the request), recovers when it answers 200, stops on SIGINT', async (t) => {
    const dds = await startFakeDds(t);
    // A careless DDS that echoes the request (registration credentials included) in its error page.
    dds.setResponder((req) => ({ status: 500, headers: { 'content-type': 'text/plain' }, body: `internal error while handling ${req.rawBody}` }));
    // Debug level: the most the daemon ever prints, all of it scanned for secrets below.
    const s = await startRun(t, dds.url, { LOG_LEVEL: 'debug' });
    const secrets = [s.regSecret, s.privhex];

    const { line: error, index: errorAt } = await s.child.waitForEvent('registration.error');
    assert.equal(error['status'], 500);
    assert.equal(error['level'], 'warn');
    const { line: retry } = await s.child.waitFor((l) => l['event'] === 'registration.retry_scheduled', { from: errorAt, what: 'registration.retry_scheduled' });
    assert.equal(retry['attempt'], 1);
    // min(2^1, 60) s × [0.8, 1.2]
    assert.ok(typeof retry['wait_ms'] === 'number' && retry['wait_ms'] >= 1600 && retry['wait_ms'] <= 2400, `wait_ms ${String(retry['wait_ms'])}`);
    assert.equal(s.child.events('registration.success').length, 0);
    assert.notEqual(readState(s.dataDir)['status'], 'registered');

    // DDS recovers.
    dds.setResponder(() => ({ status: 200, body: '' }));
    await s.child.waitForEvent('registration.success', { timeoutMs: 20_000 });
    const regs = registrations(dds.requests);
    assert.ok(regs.length >= 2, `requests: ${regs.length}`);
    for (const r of regs) assertValidRegistration(r, s);
    assert.equal(readState(s.dataDir)['status'], 'registered');

    const result = await s.child.stop('SIGINT');
    assert.equal(result.signal, null);
    assert.equal(result.code, 0, `exit ${result.code}, stderr: ${result.stderr}`);
    assert.equal(readState(s.dataDir)['status'], 'disconnected');
    assert.equal(existsSync(join(s.dataDir, 'registration.lock')), false, 'lock directory removed');

    // The echoed credentials never reached a log line.
    assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, secrets);
  });

  test('refuses a callback outside a registration and never echoes its secret', async (t) => {
    const dds = await startFakeDds(t);
    // DDS is down for maintenance: the node backs off between attempts.
    dds.setResponder(() => ({ status: 503, body: 'maintenance' }));
    const s = await startRun(t, dds.url, { LOG_LEVEL: 'debug' });
    const strayed = `stray-secret-${randomBytes(20).toString('hex')}`;
    await s.child.waitForEvent('registration.retry_scheduled');
    // Between attempts: no request in flight, no window open.
    const cb = await postCallback(s.nodeUrl, { id: 'intruder', secret: strayed });
    assert.notEqual(cb.status, 200, `a callback outside a registration was accepted: ${cb.text}`);
    assert.equal(cb.text.includes(strayed), false);
    // Malformed callbacks get the protocol's answers.
    const bad = await postCallback(s.nodeUrl, { id: '  ', secret: strayed });
    assert.equal(bad.status, 422);
    assert.equal(bad.text.includes(strayed), false);
    const broken = await fetch(`${s.nodeUrl}/internal/v1/registrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: `{"id": "x", "secret": "${strayed}", `,
    });
    assert.equal(broken.status, 400);
    assert.equal((await broken.text()).includes(strayed), false);
    const wrongType = await fetch(`${s.nodeUrl}/internal/v1/registrations`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', connection: 'close' },
      body: JSON.stringify({ id: 'x', secret: strayed }),
    });
    assert.equal(wrongType.status, 415);
    assert.equal((await wrongType.text()).includes(strayed), false);

    // A probe without DDS's User-Agent is answered, and skipped (a debug line), not recorded.
    const plain = await fetch(`${s.nodeUrl}/health`, { headers: { 'user-agent': 'curl/8', connection: 'close' } });
    assert.equal(plain.status, 200);
    assert.equal(await plain.text(), '');
    const { line: skip } = await s.child.waitForEvent('healthcheck.skip');
    assert.equal(skip['user_agent'], 'curl/8');
    assert.equal(s.child.events('healthcheck.touch').length, 0);

    const result = await s.child.stop('SIGTERM');
    assert.equal(result.code, 0, `exit ${result.code}, stderr: ${result.stderr}`);
    assertNoSecrets({ stdout: result.stdout, stderr: result.stderr }, [s.regSecret, s.privhex, strayed]);
  });
});
