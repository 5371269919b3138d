/**
 * Never send without the lock.
 *
 * 1. In process: a registrar that holds the lock is held up between taking
 *    it and sending (its signer waits for the test); meanwhile the lock is
 *    taken over, as a registrar in another PID namespace (or after a pause
 *    past the staleness) would. Let go, it sends nothing: it confirms the
 *    lock right before the request goes out and finds it lost.
 * 2. A real child holding the lock with its request in flight is SIGSTOPped
 *    past the staleness; a second child takes the lock over and registers;
 *    SIGCONT: the first notices and sends nothing new.
 * 3. A lock lost while the request is in flight aborts it (the connection
 *    closes before the request timeout).
 * 4. The settings: a lock staleness that does not exceed the request
 *    timeout is refused (ConfigError naming both; the CLI exits 2).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { waitFor } from 'xstate';
import { ConfigError, resolveConfig } from '../../src/config.js';
import { generateSecretKey, secp256k1PubkeyUncompressedHex, signRecoverableKeccakHex } from '../../src/crypto.js';
import { MemoryLogger } from '../../src/log.js';
import { createRegistrar } from '../../src/registrar.js';
import { assertNoSecrets, isRegistration, LeakScan, okResponder, exitWithin, sleep, spawnChild, startFakeDds, startProber, tempDir, testConfig, waitUntil } from '../support/index.js';
import { listenUrlOf, newCredentials, registrarEnv, spawnNode } from './common.js';

describe('never send without the lock', { timeout: 90_000 }, () => {
  it('a holder held up before sending, whose lock was taken over meanwhile, sends nothing', async (t) => {
    const dds = await startFakeDds(t, { responder: okResponder });
    const key = generateSecretKey();
    const privhex = key.exposeHex();
    const regSecret = `reg-${randomBytes(16).toString('hex')}`;
    const dataDir = path.join(tempDir(t), 'data');
    let signCalled = (): void => undefined;
    const signing = new Promise<void>((resolve) => (signCalled = resolve));
    let letGo = (): void => undefined;
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    const logger = new MemoryLogger();
    const registrar = createRegistrar(
      testConfig(dds.url, { regSecret, privhex }, { nodeUrl: 'http://127.0.0.1:9/held-up', registerIntervalSecs: 60, requestTimeoutSecs: 4, lockStaleSecs: 5, dataDir }),
      {
        logger,
        backoffPolicy: () => 60_000,
        signer: {
          publicKeyHex: Promise.resolve(secp256k1PubkeyUncompressedHex(key)),
          sign: async (message) => {
            signCalled();
            await gate;
            return signRecoverableKeccakHex(key, message);
          },
        },
      },
    );
    t.after(() => registrar.stop());
    registrar.start();
    await signing;
    assert.ok(registrar.getSnapshot().matches('registering'));
    // The takeover, as another registrar makes it: a new holder file (its token), a new lock directory.
    const lockDir = path.join(dataDir, 'registration.lock');
    fs.rmdirSync(lockDir);
    fs.writeFileSync(
      `${lockDir}.holder.json`,
      JSON.stringify({ pid: 1, host: 'another-namespace', started_at: 1, acquired_at: Date.now(), token: 'theirs' }),
    );
    fs.mkdirSync(lockDir);
    letGo();
    await waitFor(registrar, (s) => s.matches('backoff'), { timeout: 10_000 });
    assert.equal(dds.requests.filter(isRegistration).length, 0, 'no registration request went out');
    const lost = logger.events('lock.compromised');
    assert.ok(lost.length >= 1, logger.dump());
    assert.match(String(lost[0]?.message), /taken over/);
    assert.ok(fs.existsSync(lockDir), "the new holder's lock is left alone");
    assert.equal(JSON.parse(fs.readFileSync(`${lockDir}.holder.json`, 'utf8')).token, 'theirs');
    new LeakScan([regSecret, privhex]).check('log', logger.dump());
  });

  it('a lock lost while the request is in flight aborts the request', async (t) => {
    const dds = await startFakeDds(t, { responder: () => 'hang' });
    const dataDir = path.join(tempDir(t), 'data');
    const logger = new MemoryLogger();
    const registrar = createRegistrar(
      testConfig(dds.url, newCredentials(), { nodeUrl: 'http://127.0.0.1:9/in-flight', registerIntervalSecs: 60, requestTimeoutSecs: 14, lockStaleSecs: 15, dataDir }),
      { logger, backoffPolicy: () => 60_000 },
    );
    t.after(() => registrar.stop());
    registrar.start();
    await waitUntil(() => dds.requests.filter(isRegistration).length === 1 && dds.openConnections > 0, 'the request in flight');
    // Taken over (the directory made anew: another mtime, another token): the holder's next refresh notices.
    const lockDir = path.join(dataDir, 'registration.lock');
    fs.rmdirSync(lockDir);
    fs.writeFileSync(`${lockDir}.holder.json`, JSON.stringify({ pid: 1, host: 'elsewhere', started_at: 1, acquired_at: Date.now(), token: 'theirs' }));
    fs.mkdirSync(lockDir);
    fs.utimesSync(lockDir, new Date(Date.now() - 1000), new Date(Date.now() - 1000));
    // proper-lockfile refreshes every half of the staleness (7.5 s here): well before the 14 s timeout.
    await waitFor(registrar, (s) => s.matches('backoff'), { timeout: 13_000 });
    assert.match(String(registrar.getSnapshot().context.lastFailure?.message), /lock compromised during the attempt/);
    await waitUntil(() => dds.openConnections === 0, 'the request aborted (its connection closed)', 5000);
    assert.equal(dds.requests.filter(isRegistration).length, 1);
  });

  it('SIGSTOP the holder past the staleness, SIGCONT: it sends nothing new', async (t) => {
    // The first request is held (the holder's, in flight when it is stopped); later ones answered at once.
    let first = true;
    const dds = await startFakeDds(t, {
      responder: (req) => {
        if (!isRegistration(req)) return { status: 404 };
        if (first) {
          first = false;
          return 'hang';
        }
        return { status: 200, body: '{}' };
      },
    });
    const creds = newCredentials();
    const dataDir = path.join(tempDir(t), 'data');
    const env = { LOCK_STALE_SECS: '5', REQUEST_TIMEOUT_SECS: '4', REGISTER_INTERVAL_SECS: '60' };
    const nodeUrl = 'http://paused.reliability.test:8080';
    const a = spawnNode(t, dds, creds, { name: 'holder', nodeUrl, dataDir, env });
    await waitUntil(() => dds.requests.filter(isRegistration).length === 1, "the holder's request in flight", 20_000);
    process.kill(a.pid, 'SIGSTOP');
    let resumed = false;
    t.after(() => {
      if (!resumed) process.kill(a.pid, 'SIGCONT');
    });
    await sleep(6000);
    // The successor judges the paused holder by its heartbeat, seen unchanged for the staleness on its own
    // clock, and looks again after its interval (short here); DDS's probes keep it registered meanwhile.
    const b = spawnNode(t, dds, creds, { name: 'successor', nodeUrl, dataDir, env: { ...env, REGISTER_INTERVAL_SECS: '6' } });
    startProber(t, await listenUrlOf(b), 1000);
    await b.waitFor((l) => l['event'] === 'registration.success', { timeoutMs: 30_000 });
    const before = dds.requests.filter(isRegistration).length;
    assert.equal(before, 2);
    process.kill(a.pid, 'SIGCONT');
    resumed = true;
    await a.waitForEvent('lock.compromised', { timeoutMs: 10_000 });
    // Long enough for a retry (the crate's backoff: 2 s ± 20 %) to have gone out if it were going to.
    await sleep(5000);
    assert.equal(dds.requests.filter(isRegistration).length, before, 'the resumed holder sent nothing new');
    const [ra, rb] = await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
    assert.equal(ra.code, 0);
    assert.equal(rb.code, 0);
    assertNoSecrets({ a: a.stdout() + a.stderr(), b: b.stdout() + b.stderr() }, [creds.regSecret, creds.privhex]);
  });

  it('a lock staleness not above the request timeout is refused, naming both (library and CLI, exit 2)', async (t) => {
    const base = {
      nodeUrl: 'http://127.0.0.1:9/x',
      nodeVersion: '1.0.0',
      regSecret: 'reg-secret-long-enough',
      secp256k1Privhex: generateSecretKey().exposeHex(),
    };
    assert.throws(
      () => resolveConfig({ ...base, requestTimeoutSecs: 10, lockStaleSecs: 10 }),
      (e: unknown) => e instanceof ConfigError && e.setting === 'lockStaleSecs' && /requestTimeoutSecs/.test(e.message) && /REQUEST_TIMEOUT_SECS/.test(e.message),
    );
    // Defaults, and a timeout set alone, are consistent: the staleness follows the timeout.
    assert.equal(resolveConfig(base).settings.lockStaleMs, 15_000);
    assert.equal(resolveConfig({ ...base, requestTimeoutSecs: 30 }).settings.lockStaleMs, 35_000);
    const child = spawnChild(t, {
      name: 'refused',
      args: ['run'],
      env: registrarEnv({
        DDS_BASE_URL: 'http://127.0.0.1:9',
        NODE_URL: 'http://127.0.0.1:9/x',
        REG_SECRET: base.regSecret,
        SECP256K1_PRIVHEX: base.secp256k1Privhex,
        DATA_DIR: path.join(tempDir(t), 'data'),
        REQUEST_TIMEOUT_SECS: '20',
        LOCK_STALE_SECS: '10',
      }),
    });
    const r = await exitWithin(child, 20_000);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /LOCK_STALE_SECS/);
    assert.match(r.stderr, /REQUEST_TIMEOUT_SECS/);
    assertNoSecrets({ stdout: r.stdout, stderr: r.stderr }, [base.regSecret, base.secp256k1Privhex]);
  });
});
