/**
 * The simulator's wallet generation (PROTOCOL.md §6) against the real
 * client, over real HTTP on 127.0.0.1: registration, sign-in, tokens, a
 * forgotten node, and every check a strict DDS makes (single-use and
 * expiring nonces, the message byte for byte, the signature, the keys).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import got, { type Got } from 'got';
import { deriveEthAddress, generateSecretKey, signEip191RecoverableHex, type SecretKey } from '../../src/crypto.js';
import { REGISTRATION_PATH, buildRegistrationRequest, registerOnce } from '../../src/register.js';
import {
  composeSiweMessage,
  createSiweRegistrationClient,
  serializeSiweRegistrationBody,
  serializeSiweVerifyBody,
  SIWE_NONCE_PATH,
  SIWE_REGISTRATION_PATH,
  SIWE_VERIFY_PATH,
  type SiweNonceFields,
  type SiweRegistrationClientOptions,
} from '../../src/register-siwe.js';
import type { DdsSimulatorOptions } from '../../src/sim/dds-simulator.js';
import { LeakScan, assertNoLongHex, sleep, startSimulator, type Cleanup, type SimulatorHarness } from '../support/index.js';

const REG_SECRET = 'reg-secret-5b1e9d-wallet-do-not-leak';
const CAPS = ['/reconstruction/global-refinement/v1'];
const scan = new LeakScan([REG_SECRET]);

/** A got that records every body it sends (the signatures join the scan) and may rewrite one. */
function recordingGot(rewrite?: (path: string, body: string) => string): Got {
  return got.extend({
    hooks: {
      beforeRequest: [
        (options) => {
          const path = options.url instanceof URL ? options.url.pathname : '';
          let body = String(options.body);
          if (rewrite) body = rewrite(path, body);
          options.body = body;
          const signature = (JSON.parse(body) as { signature?: unknown }).signature;
          if (typeof signature === 'string') scan.addSecret(signature);
        },
      ],
    },
  });
}

type Harness = SimulatorHarness;

function startSim(t: Cleanup, options: DdsSimulatorOptions = {}): Promise<Harness> {
  return startSimulator(t, { expectedRegSecret: REG_SECRET, tokenLifetimeMs: 5000, ...options }, ({ url, logger, events }) => {
    scan.add(`${url} logs`, logger.dump());
    scan.add(`${url} events`, JSON.stringify(events));
    // Tokens, signatures and node secrets are long hex: none may show in the simulator's outputs.
    assertNoLongHex(`${url} logs`, logger.dump(), 60);
    assertNoLongHex(`${url} events`, JSON.stringify(events), 60);
  });
}

function clientOf(h: Harness, key: SecretKey, overrides: Partial<SiweRegistrationClientOptions> = {}) {
  return createSiweRegistrationClient({
    ddsBaseUrl: h.url,
    nodeVersion: '2.0.0',
    regSecret: REG_SECRET,
    key,
    capabilities: CAPS,
    got: recordingGot(),
    ...overrides,
  });
}

async function post(h: Harness, path: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${h.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', connection: 'close' },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, text: await res.text() };
}

/** A nonce for `wallet`, asked by hand. */
async function nonceFor(h: Harness, wallet: string): Promise<SiweNonceFields> {
  const answer = await post(h, SIWE_NONCE_PATH, JSON.stringify({ wallet }));
  assert.equal(answer.status, 200, answer.text);
  return JSON.parse(answer.text) as SiweNonceFields;
}

/** A register-wallet body made by hand; `edit` may change the message before it is signed by `signer`. */
function registrationBody(key: SecretKey, fields: SiweNonceFields, o: { edit?: (m: string) => string; signer?: SecretKey } = {}): string {
  const message = (o.edit ?? ((m) => m))(composeSiweMessage(fields, deriveEthAddress(key)));
  const signature = signEip191RecoverableHex(o.signer ?? key, message);
  scan.addSecret(signature);
  return serializeSiweRegistrationBody({ message, signature, registration_credentials: REG_SECRET, capabilities: CAPS, version: '2.0.0' });
}

after(() => {
  const findings = scan.findings();
  assert.deepEqual(findings, [], findings.join('\n'));
  assert.ok(scan.secrets.size > 5, 'tokens and signatures joined the scan');
});

describe('the simulator speaks the wallet generation', { timeout: 60_000 }, () => {
  it('registers a wallet and signs it in: a token of the configured lifetime, events without secrets', async (t) => {
    const h = await startSim(t, { tokenLifetimeMs: 4000 });
    const key = generateSecretKey();
    const c = clientOf(h, key);
    const registered = await c.register();
    assert.equal(registered.ok, true, JSON.stringify(registered));
    const entry = h.sim.wallets.get(c.wallet);
    assert.ok(entry);
    assert.equal(entry.version, '2.0.0');
    assert.deepEqual(entry.capabilities, CAPS);

    const signedIn = await c.signIn();
    assert.ok(signedIn.ok, JSON.stringify(signedIn));
    scan.addSecret(signedIn.token.expose());
    assert.match(signedIn.token.expose(), /^[0-9a-f]{64}$/);
    assert.ok(signedIn.lifetimeMs > 3000 && signedIn.lifetimeMs <= 4000, String(signedIn.lifetimeMs));
    const again = await c.signIn();
    assert.ok(again.ok);
    scan.addSecret(again.token.expose());
    assert.notEqual(again.token.expose(), signedIn.token.expose());
    assert.equal(h.sim.wallets.get(c.wallet)?.signIns, 2);

    assert.deepEqual(
      h.events.map((e) => e.type),
      ['siwe.nonce.issued', 'siwe.registered', 'siwe.nonce.issued', 'siwe.signed_in', 'siwe.token.issued', 'siwe.nonce.issued', 'siwe.signed_in', 'siwe.token.issued'],
    );
    assert.deepEqual(h.of('siwe.registered')[0], { type: 'siwe.registered', wallet: c.wallet, version: '2.0.0', capabilities: CAPS });
    assert.equal(h.of('siwe.token.issued')[0]?.lifetimeMs, 4000);
    assert.equal(h.logger.events('dds_sim.siwe.signed_in').length, 2);
  });

  it('speaks both generations on one server', async (t) => {
    const h = await startSim(t);
    const key = generateSecretKey();
    assert.equal((await clientOf(h, key).register()).ok, true);
    // The legacy body (an unreachable node URL: the callback fails, the registration stands).
    const legacy = await registerOnce({
      ddsBaseUrl: h.url,
      body: buildRegistrationRequest({ nodeUrl: 'http://127.0.0.1:9', nodeVersion: '1.0.0', regSecret: REG_SECRET, key, capabilities: CAPS }),
    });
    assert.equal(legacy.ok, true, JSON.stringify(legacy));
    assert.equal(h.of('registration.accepted').length, 1);
    assert.equal(h.of('siwe.registered').length, 1);
    assert.equal((await post(h, REGISTRATION_PATH.replace('register', 'nope'), '{}')).status, 404);
  });

  it('refuses wrong credentials with 401 (slow), and then knows nobody', async (t) => {
    const h = await startSim(t);
    const c = clientOf(h, generateSecretKey(), { regSecret: 'not-the-secret-at-all' });
    const result = await c.register();
    assert.equal(result.ok, false);
    assert.ok(!result.ok);
    assert.equal(result.class, 'slow');
    assert.equal(result.message, `registration failed: status 401, endpoint ${h.url}${SIWE_REGISTRATION_PATH}, body_snippet: invalid registration credentials`);
    assert.equal(h.sim.wallets.size, 0);
    assert.deepEqual(h.of('siwe.rejected'), [{ type: 'siwe.rejected', call: 'registration', status: 401, reason: 'invalid registration credentials' }]);
  });

  it('answers verify with 403 for a wallet it does not know, forgot, or forgets on verify', async (t) => {
    const h = await startSim(t);
    const key = generateSecretKey();
    const c = clientOf(h, key);
    let signIn = await c.signIn();
    assert.ok(!signIn.ok);
    assert.equal(signIn.status, 403);
    assert.equal(signIn.forgotten, true, 'never registered');

    assert.equal((await c.register()).ok, true);
    assert.deepEqual(h.sim.forget(c.wallet), [c.wallet]);
    assert.deepEqual(h.sim.forget(c.wallet), [], 'forgotten already');
    signIn = await c.signIn();
    assert.ok(!signIn.ok);
    assert.equal(signIn.forgotten, true);
    assert.equal(signIn.message, `SIWE verify failed: status 403, endpoint ${h.url}${SIWE_VERIFY_PATH}, body_snippet: node not registered`);

    assert.equal((await c.register()).ok, true, 're-armed: registered again');
    signIn = await c.signIn();
    assert.ok(signIn.ok);
    scan.addSecret(signIn.token.expose());

    h.sim.setFaults({ forgetOnVerify: true });
    signIn = await c.signIn();
    assert.ok(!signIn.ok);
    assert.equal(signIn.forgotten, true);
    assert.equal(h.sim.wallets.has(c.wallet), false);
    assert.deepEqual(h.of('siwe.forgotten'), [
      { type: 'siwe.forgotten', wallet: c.wallet, reason: 'forget' },
      { type: 'siwe.forgotten', wallet: c.wallet, reason: 'fault' },
    ]);
  });

  it('uses a nonce once', async (t) => {
    const h = await startSim(t);
    const key = generateSecretKey();
    let sent = '';
    const c = clientOf(h, key, {
      got: recordingGot((path, body) => {
        if (path === SIWE_REGISTRATION_PATH) sent = body;
        return body;
      }),
    });
    assert.equal((await c.register()).ok, true);
    const replay = await post(h, SIWE_REGISTRATION_PATH, sent);
    assert.deepEqual(replay, { status: 401, text: 'unknown or used nonce' });
    // A nonce used by a failed registration is gone too.
    const fields = await nonceFor(h, c.wallet);
    const body = registrationBody(key, fields, { signer: generateSecretKey() });
    assert.equal((await post(h, SIWE_REGISTRATION_PATH, body)).text, 'signature does not verify');
    assert.equal((await post(h, SIWE_REGISTRATION_PATH, registrationBody(key, fields))).text, 'unknown or used nonce');
  });

  it('lets a nonce expire', async (t) => {
    const h = await startSim(t, { nonceLifetimeMs: 80 });
    const key = generateSecretKey();
    const fields = await nonceFor(h, deriveEthAddress(key));
    assert.equal(h.sim.wallets.size, 0);
    await sleep(150);
    assert.deepEqual(await post(h, SIWE_REGISTRATION_PATH, registrationBody(key, fields)), { status: 401, text: 'nonce expired' });
  });

  it('checks the signature against the nonce’s wallet', async (t) => {
    const h = await startSim(t);
    const key = generateSecretKey();
    const other = generateSecretKey();
    // Signed by another key.
    let fields = await nonceFor(h, deriveEthAddress(key));
    assert.deepEqual(await post(h, SIWE_REGISTRATION_PATH, registrationBody(key, fields, { signer: other })), { status: 401, text: 'signature does not verify' });
    // Another wallet in the message, signed by it: the nonce is bound to the first.
    fields = await nonceFor(h, deriveEthAddress(key));
    assert.deepEqual(await post(h, SIWE_REGISTRATION_PATH, registrationBody(other, fields)), { status: 401, text: 'message address does not match the nonce' });
    // verify with an address that is not the nonce's wallet.
    fields = await nonceFor(h, deriveEthAddress(key));
    const message = composeSiweMessage(fields, deriveEthAddress(key));
    const signature = signEip191RecoverableHex(key, message);
    scan.addSecret(signature);
    const answer = await post(h, SIWE_VERIFY_PATH, serializeSiweVerifyBody({ address: deriveEthAddress(other), message, signature }));
    assert.deepEqual(answer, { status: 401, text: "address is not the nonce's wallet" });
  });

  for (const [field, edit] of [
    ['domain', (m: string) => m.replace(/^[^ ]+/, 'evil.example')],
    ['uri', (m: string) => m.replace(/\nURI: [^\n]+/, '\nURI: https://evil.example')],
    ['version', (m: string) => m.replace('\nVersion: 1\n', '\nVersion: 2\n')],
    ['chainId', (m: string) => m.replace(/\nChain ID: \d+\n/, '\nChain ID: 1\n')],
    ['issuedAt', (m: string) => m.replace(/Issued At: .+$/, 'Issued At: 2020-01-01T00:00:00.000Z')],
    ['line count', (m: string) => `${m}\n`],
  ] as const) {
    it(`refuses a message whose ${field} differs from the nonce’s, however well signed`, async (t) => {
      const h = await startSim(t, { chainId: 8453 });
      const key = generateSecretKey();
      const fields = await nonceFor(h, deriveEthAddress(key));
      const answer = await post(h, SIWE_REGISTRATION_PATH, registrationBody(key, fields, { edit }));
      assert.deepEqual(answer, { status: 401, text: `message ${field} does not match the nonce` });
      assert.equal(h.sim.wallets.size, 0);
    });
  }

  it('refuses a message tampered with in flight, through the client', async (t) => {
    const h = await startSim(t);
    const c = clientOf(h, generateSecretKey(), {
      got: recordingGot((path, body) => (path === SIWE_REGISTRATION_PATH ? body.replace('\\nVersion: 1\\n', '\\nVersion: 9\\n') : body)),
    });
    const result = await c.register();
    assert.ok(!result.ok);
    assert.equal(result.class, 'slow');
    assert.match(result.message, /body_snippet: message version does not match the nonce$/);
  });

  it('checks the keys, their order and the wallet’s spelling', async (t) => {
    const h = await startSim(t);
    const key = generateSecretKey();
    const wallet = deriveEthAddress(key);
    assert.deepEqual(await post(h, SIWE_NONCE_PATH, JSON.stringify({ wallet: wallet.toUpperCase().replace('0X', '0x') })), {
      status: 400,
      text: 'wallet must be 0x and 40 lowercase hex digits',
    });
    assert.equal((await post(h, SIWE_NONCE_PATH, JSON.stringify({ wallet, extra: 1 }))).status, 400);
    const fields = await nonceFor(h, wallet);
    const body = JSON.parse(registrationBody(key, fields)) as Record<string, unknown>;
    const reordered = JSON.stringify({ signature: body.signature, message: body.message, registration_credentials: body.registration_credentials, capabilities: body.capabilities, version: body.version });
    assert.deepEqual(await post(h, SIWE_REGISTRATION_PATH, reordered), {
      status: 400,
      text: 'keys must be exactly message, signature, registration_credentials, capabilities, version in this order',
    });
    assert.equal((await post(h, SIWE_REGISTRATION_PATH, JSON.stringify({ ...body, capabilities: [] }))).text, 'capabilities must not be empty');
    assert.equal((await post(h, SIWE_VERIFY_PATH, '{"address":1}')).status, 400);
  });

  it('injects faults on each call: nonce, registration, verify', async (t) => {
    const h = await startSim(t, { faults: { nonceFailStatus: 503, retryAfterSecs: 2 } });
    const c = clientOf(h, generateSecretKey());
    let result = await c.register();
    assert.ok(!result.ok);
    assert.equal(result.class, 'retryable');
    assert.equal(result.retryAfterMs, 2000);
    assert.match(result.message, /^request SIWE nonce failed: status 503, /);

    h.sim.setFaults({ nonceFailStatus: null, failStatus: 500, failCount: 1 });
    result = await c.register();
    assert.ok(!result.ok);
    assert.match(result.message, /^registration failed: status 500, /);
    assert.equal(h.sim.wallets.size, 0, 'a failed registration admits nobody');
    assert.equal((await c.register()).ok, true, 'recovered after failCount');

    h.sim.setFaults({ verifyFailStatus: 503 });
    const signIn = await c.signIn();
    assert.ok(!signIn.ok);
    assert.equal(signIn.class, 'retryable');
    assert.equal(signIn.forgotten, false);
    assert.deepEqual(h.of('siwe.fault').map((e) => e.call), ['nonce', 'registration', 'verify']);
    assert.throws(() => h.sim.setFaults({ verifyFailStatus: 200 }), RangeError);
  });
});
