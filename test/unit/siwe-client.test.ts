import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import util from 'node:util';
import {
  loadSecp256k1Privhex,
  secp256k1PubkeyUncompressedHex,
  signEip191RecoverableHex,
  verifyEip191Signature,
} from '../../src/crypto.js';
import { MemoryLogger } from '../../src/log.js';
import { InvalidUrlError } from '../../src/register.js';
import {
  AccessToken,
  composeSiweMessage,
  createSiweRegistrationClient,
  parseRfc3339Ms,
  SIWE_SNIPPET_MAX_BYTES,
  type SignInResult,
  type SiweNonceFields,
  type SiweRegistrationClientOptions,
} from '../../src/register-siwe.js';
import type { RegistrationResult } from '../../src/register.js';
import {
  freePort,
  jsonAnswer,
  LeakScan,
  SIWE_NONCE_FIELDS,
  siweCallOf,
  siweResponder,
  startFakeDds,
  tokenAnswer,
  type Cleanup,
  type DdsRequest,
  type FakeDds,
  type SiweHandler,
} from '../support/index.js';

// The first SIWE message vector of ../shared/protocol/siwe-vectors.json (independent implementation), read where it lives.
interface MessageVector {
  privhex: string;
  nonce_response: SiweNonceFields;
  address: string;
  message: string;
  signature: string;
}
const VECTOR = (
  JSON.parse(readFileSync(new URL('../../../shared/protocol/siwe-vectors.json', import.meta.url), 'utf8')) as { siwe_messages: MessageVector[] }
).siwe_messages[0]!;

const SECRET = 'reg-secret-Wq7v3Lk0pX9mN2zT';
const KEY = loadSecp256k1Privhex(VECTOR.privhex);
const WALLET = VECTOR.address;
const CAPS = ['/reconstruction/global-refinement/v1', '/reconstruction/local-refinement/v1'];
const REGISTRATION_KEYS = ['message', 'signature', 'registration_credentials', 'capabilities', 'version'];
const VERIFY_KEYS = ['address', 'message', 'signature'];

// Everything a failure or a log line showed, scanned at the end for every secret handed out or sent.
const scan = new LeakScan([SECRET, VECTOR.privhex]);

function client(dds: { url: string }, overrides: Partial<SiweRegistrationClientOptions> = {}, logger = new MemoryLogger()) {
  const c = createSiweRegistrationClient({
    ddsBaseUrl: dds.url,
    nodeVersion: '1.2.3',
    regSecret: SECRET,
    key: KEY,
    capabilities: CAPS,
    logger,
    ...overrides,
  });
  return { c, logger };
}

async function siweDds(t: Cleanup, handlers: { nonce?: SiweHandler; registration?: SiweHandler; verify?: SiweHandler } = {}): Promise<FakeDds> {
  const dds = await startFakeDds(t, { responder: siweResponder(handlers) });
  t.after(() => {
    // What was sent holds secrets of its own: each signature and token joins the scan.
    for (const req of dds.requests) {
      const body = req.body as Record<string, unknown> | undefined;
      if (typeof body?.signature === 'string') scan.addSecret(body.signature);
    }
  });
  return dds;
}

function record(where: string, result: RegistrationResult | SignInResult, logger?: MemoryLogger): void {
  scan.add(`${where}: result`, JSON.stringify(result));
  scan.add(`${where}: inspect`, util.inspect(result, { depth: 10 }));
  if (!result.ok) scan.add(`${where}: message`, result.message);
  if (logger) scan.add(`${where}: log`, logger.dump());
}

function assertFailure<T extends { ok: boolean }>(result: T): asserts result is Extract<T, { ok: false }> {
  assert.equal(result.ok, false, `expected a failure, got ${JSON.stringify(result)}`);
}

function calls(dds: FakeDds, which: 'nonce' | 'registration' | 'verify'): DdsRequest[] {
  return dds.requests.filter((r) => siweCallOf(r) === which);
}

function assertKeyOrder(raw: string, keys: readonly string[]): void {
  const positions = keys.map((k) => raw.indexOf(`"${k}":`));
  assert.ok(positions.every((p) => p >= 0), raw);
  assert.deepEqual([...positions].sort((x, y) => x - y), positions);
  assert.deepEqual(Object.keys(JSON.parse(raw) as object), [...keys]);
}

after(() => {
  const findings = scan.findings();
  assert.ok(scan.secrets.size > 2, 'signatures and tokens joined the scan');
  assert.deepEqual(findings, [], findings.join('\n'));
});

describe('the SIWE registration attempt (PROTOCOL.md §6.3)', () => {
  it('sends the nonce request and register-wallet exactly: bodies, key order, the vector message and signature', async (t) => {
    const dds = await siweDds(t, { nonce: () => jsonAnswer(VECTOR.nonce_response) });
    const { c, logger } = client(dds);
    assert.equal(c.wallet, WALLET);
    assert.equal(c.publicKeyHex, secp256k1PubkeyUncompressedHex(KEY));
    assert.equal(c.endpoint, `${dds.url}/internal/v1/nodes/register-wallet`);
    const result = await c.register();
    record('exact', result, logger);
    assert.equal(result.ok, true);
    assert.equal(result.status, 200);
    assert.equal(result.endpoint, `${dds.url}/internal/v1/nodes/register-wallet`);

    assert.deepEqual(dds.requests.map((r) => `${r.method} ${r.path}`), [
      'POST /internal/v1/auth/siwe/request',
      'POST /internal/v1/nodes/register-wallet',
    ]);
    const [nonce, registration] = dds.requests as [DdsRequest, DdsRequest];
    assert.equal(nonce.rawBody, `{"wallet":"${WALLET}"}`);
    for (const req of dds.requests) assert.match(String(req.headers['content-type']), /^application\/json\b/);
    assert.equal(
      registration.rawBody,
      JSON.stringify({ message: VECTOR.message, signature: VECTOR.signature, registration_credentials: SECRET, capabilities: CAPS, version: '1.2.3' }),
    );
    assertKeyOrder(registration.rawBody, REGISTRATION_KEYS);
    assert.ok(!VECTOR.message.endsWith('\n'), 'no trailing newline');
  });

  it('builds the paths from a base URL with trailing slashes or a path prefix', async (t) => {
    const dds = await siweDds(t);
    assert.equal((await client({ url: `${dds.url}///` }).c.register()).ok, true);
    assert.equal((await client({ url: `${dds.url}/dds/v2/` }).c.register()).ok, true);
    assert.deepEqual(dds.requests.map((r) => r.path), [
      '/internal/v1/auth/siwe/request',
      '/internal/v1/nodes/register-wallet',
      '/dds/v2/internal/v1/auth/siwe/request',
      '/dds/v2/internal/v1/nodes/register-wallet',
    ]);
    assert.throws(() => client({ url: 'ftp://dds.example' }), InvalidUrlError);
  });

  const STATUS_CLASSES: Array<[number, string]> = [
    [409, 'conflict'],
    [408, 'retryable'],
    [429, 'retryable'],
    [500, 'retryable'],
    [503, 'retryable'],
    [400, 'slow'],
    [401, 'slow'],
    [403, 'slow'],
    [404, 'slow'],
  ];

  it('classes each status of the nonce request, with its text, and sends nothing more', async (t) => {
    for (const [status, cls] of STATUS_CLASSES) {
      const dds = await siweDds(t, { nonce: () => ({ status, body: `nonce says ${status}` }) });
      const { c, logger } = client(dds);
      const result = await c.register();
      record(`nonce ${status}`, result, logger);
      assertFailure(result);
      assert.equal(result.class, cls, String(status));
      assert.equal(result.status, status);
      assert.equal(result.endpoint, `${dds.url}/internal/v1/auth/siwe/request`);
      assert.equal(result.message, `request SIWE nonce failed: status ${status}, endpoint ${dds.url}/internal/v1/auth/siwe/request, body_snippet: nonce says ${status}`);
      assert.equal(calls(dds, 'registration').length, 0);
    }
  });

  it('classes each status of register-wallet, with its text', async (t) => {
    for (const [status, cls] of STATUS_CLASSES) {
      const dds = await siweDds(t, { registration: () => ({ status, body: `register says ${status}` }) });
      const result = await client(dds).c.register();
      record(`register ${status}`, result);
      assertFailure(result);
      assert.equal(result.class, cls, String(status));
      assert.equal(result.status, status);
      assert.equal(result.message, `registration failed: status ${status}, endpoint ${dds.url}/internal/v1/nodes/register-wallet, body_snippet: register says ${status}`);
    }
  });

  it('reads Retry-After on 429 and 503 of either request, only there', async (t) => {
    const dds = await siweDds(t, { nonce: () => ({ status: 429, headers: { 'retry-after': '7' }, body: '' }) });
    let result = await client(dds).c.register();
    assertFailure(result);
    assert.equal(result.retryAfterMs, 7000);
    dds.setResponder(siweResponder({ registration: () => ({ status: 503, headers: { 'retry-after': '3' }, body: '' }) }));
    result = await client(dds).c.register();
    assertFailure(result);
    assert.equal(result.retryAfterMs, 3000);
    dds.setResponder(siweResponder({ registration: () => ({ status: 500, headers: { 'retry-after': '3' }, body: '' }) }));
    result = await client(dds).c.register();
    assertFailure(result);
    assert.equal(result.retryAfterMs, null);
  });

  it('reports a refused nonce request and a dropped register-wallet as retryable transport failures', async (t) => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    let result = await client({ url: base }).c.register();
    record('refused', result);
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.status, null);
    assert.equal(result.code, 'ECONNREFUSED');
    assert.equal(result.message, `request SIWE nonce failed: endpoint ${base}/internal/v1/auth/siwe/request, error: connect ECONNREFUSED 127.0.0.1:${port}`);

    const dds = await siweDds(t, { registration: () => 'destroy' });
    result = await client(dds).c.register();
    record('dropped', result);
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.status, null);
    assert.equal(result.code, 'ECONNRESET');
    assert.match(result.message, new RegExp(`^registration request failed: endpoint ${dds.url}/internal/v1/nodes/register-wallet, error: `));
  });

  it('times out on either request', async (t) => {
    let dds = await siweDds(t, { nonce: () => 'hang' });
    let result = await client(dds, { timeoutMs: 300 }).c.register();
    assertFailure(result);
    assert.equal(result.code, 'ETIMEDOUT');
    assert.equal(result.message, `request SIWE nonce failed: endpoint ${dds.url}/internal/v1/auth/siwe/request, error: timeout after 300 ms`);
    dds = await siweDds(t, { registration: () => 'hang' });
    result = await client(dds, { timeoutMs: 300 }).c.register();
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.code, 'ETIMEDOUT');
    assert.equal(result.message, `registration request failed: endpoint ${dds.url}/internal/v1/nodes/register-wallet, error: timeout after 300 ms`);
    assert.equal(dds.requests.length, 2, 'no retry');
  });

  it('stops on abort with code ABORTED, sending nothing when aborted already', async (t) => {
    const dds = await siweDds(t, { registration: () => 'hang' });
    const controller = new AbortController();
    const pending = client(dds).c.register(controller.signal);
    await dds.waitFor((reqs) => reqs.find((r) => siweCallOf(r) === 'registration'));
    controller.abort();
    const result = await pending;
    assertFailure(result);
    assert.equal(result.code, 'ABORTED');
    assert.equal(result.message, `registration request failed: endpoint ${dds.url}/internal/v1/nodes/register-wallet, error: aborted`);
    const before = dds.requests.length;
    const early = await client(dds).c.register(AbortSignal.abort());
    assertFailure(early);
    assert.equal(early.code, 'ABORTED');
    assert.match(early.message, /^request SIWE nonce failed: endpoint .*, error: aborted$/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(dds.requests.length, before);
  });

  for (const [call, status] of [['nonce', 307], ['registration', 308]] as const) {
    it(`does not follow a ${status} redirect of the ${call} request`, async (t) => {
      const other = await siweDds(t);
      const dds = await siweDds(t, { [call]: () => ({ status, headers: { location: `${other.url}/internal/v1/nodes/register-wallet` }, body: 'moved' }) });
      const result = await client(dds).c.register();
      assertFailure(result);
      assert.equal(result.class, 'slow');
      assert.equal(result.status, status);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(other.requests.length, 0, 'the other origin received a request');
    });
  }

  it('cuts the snippet at 512 bytes of UTF-8, between two characters, newlines as spaces', async (t) => {
    const text = `line one\nline two\r\nthree ${'é'.repeat(600)}`;
    const dds = await siweDds(t, { registration: () => ({ status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: text }) });
    const result = await client(dds).c.register();
    assertFailure(result);
    const snippet = result.message.split('body_snippet: ')[1] ?? '';
    assert.ok(!/[\r\n]/.test(result.message));
    assert.ok(snippet.startsWith('line one line two three é'), snippet.slice(0, 30));
    assert.ok(Buffer.byteLength(snippet) <= SIWE_SNIPPET_MAX_BYTES);
    // "line one\nline two\r\nthree " is 25 bytes; 243 two-byte characters fit in the 487 left; CRLF becomes one space.
    assert.equal(snippet, `line one line two three ${'é'.repeat(243)}`);
    assert.ok(!snippet.includes('\uFFFD'), 'no character cut in half');
  });

  it('never shows the registration secret or the signature, even when DDS echoes the body', async (t) => {
    const echoes: Array<(raw: string) => string> = [
      (raw) => raw,
      (raw) => `${'.'.repeat(450)}${raw}`, // a secret straddling the 512-byte cut
      (raw) => JSON.stringify({ error: 'denied', echo: raw }),
    ];
    for (const make of echoes) {
      const dds = await siweDds(t, { registration: (req) => ({ status: 403, body: make(req.rawBody) }) });
      const { c, logger } = client(dds);
      const result = await c.register();
      record('echo', result, logger);
      assertFailure(result);
      const sent = calls(dds, 'registration')[0]!.body as { signature: string };
      assert.ok(!result.message.includes(SECRET));
      assert.ok(!result.message.includes(sent.signature));
      assert.ok(!result.message.includes(sent.signature.slice(2)));
    }
    const dds = await siweDds(t, { registration: (req) => ({ status: 400, body: `no: ${req.rawBody}` }) });
    const result = await client(dds).c.register();
    assertFailure(result);
    assert.match(result.message, /"registration_credentials":"\[redacted\]"/);
    assert.match(result.message, /"signature":"\[redacted\]"/);
  });

  it('logs one line per attempt: wallet prefix, version, capabilities, nothing secret', async (t) => {
    const dds = await siweDds(t);
    const { c, logger } = client(dds);
    await c.register();
    record('log', await c.register(), logger);
    assert.equal(logger.lines.length, 2);
    const line = logger.lines[0]!;
    assert.equal(line.level, 'info');
    assert.equal(line.event, 'registration.attempt');
    assert.equal(line.protocol, 'siwe');
    assert.equal(line.wallet_prefix, WALLET.slice(0, 10));
    assert.equal(line.wallet_prefix, '0xfdbb6caf');
    assert.equal(line.version, '1.2.3');
    assert.deepEqual(line.capabilities, CAPS);
  });

  it('refuses empty capabilities as slow, before any request and any log line', async (t) => {
    const dds = await siweDds(t);
    const { c, logger } = client(dds, { capabilities: [] });
    const result = await c.register();
    assertFailure(result);
    assert.equal(result.class, 'slow');
    assert.equal(result.status, null);
    assert.equal(result.message, 'capabilities must be non-empty for DDS registration');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(dds.requests.length, 0);
    assert.equal(logger.lines.length, 0);
  });

  it('prints, serialises and inspects without the secret or the key', async (t) => {
    const dds = await siweDds(t);
    const { c } = client(dds);
    for (const text of [JSON.stringify(c), util.inspect(c, { depth: 10 }), String(c)]) scan.check('client', text);
  });
});

describe('the nonce answer (PROTOCOL.md §6.3 step 1, §6.6)', () => {
  async function withNonce(t: Cleanup, body: string | object): Promise<{ result: RegistrationResult; dds: FakeDds }> {
    const dds = await siweDds(t, { nonce: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    const result = await client(dds).c.register();
    record('nonce answer', result);
    return { result, dds };
  }
  const sentMessage = (dds: FakeDds): string => (calls(dds, 'registration')[0]?.body as { message: string }).message;

  for (const [what, nonce] of [['missing', undefined], ['empty', ''], ['null', null]] as const) {
    it(`fails on a ${what} nonce, retryable, without registering`, async (t) => {
      const { result, dds } = await withNonce(t, { ...SIWE_NONCE_FIELDS, nonce });
      assertFailure(result);
      assert.equal(result.class, 'retryable');
      assert.equal(result.message, 'siwe nonce missing in response');
      assert.equal(calls(dds, 'registration').length, 0);
    });
  }

  for (const [key, name] of [['domain', 'domain'], ['uri', 'uri'], ['version', 'version'], ['chainId', 'chain id'], ['issuedAt', 'issued_at']] as const) {
    it(`fails on a missing ${key}: compose SIWE message failed: siwe ${name} missing`, async (t) => {
      const fields: Record<string, unknown> = { ...SIWE_NONCE_FIELDS };
      delete fields[key];
      const { result, dds } = await withNonce(t, fields);
      assertFailure(result);
      assert.equal(result.class, 'retryable');
      assert.equal(result.message, `compose SIWE message failed: siwe ${name} missing`);
      assert.equal(calls(dds, 'registration').length, 0);
    });
  }

  for (const [what, body, detail] of [
    ['not JSON', '<html>oops</html>', 'not valid JSON'],
    ['an array', '[]', 'expected a JSON object'],
    ['a numeric nonce', { ...SIWE_NONCE_FIELDS, nonce: 12345678 }, 'nonce is not a string'],
    ['a fractional chainId', { ...SIWE_NONCE_FIELDS, chainId: 1.5 }, 'chainId is not an integer'],
    ['a string chainId', { ...SIWE_NONCE_FIELDS, chainId: '1' }, 'chainId is not an integer'],
  ] as const) {
    it(`fails to decode ${what}, retryable`, async (t) => {
      const { result, dds } = await withNonce(t, body);
      assertFailure(result);
      assert.equal(result.class, 'retryable');
      assert.equal(result.message, `decode SIWE nonce response failed: endpoint ${dds.url}/internal/v1/auth/siwe/request, error: ${detail}`);
    });
  }

  it('copies empty strings verbatim and ignores other keys', async (t) => {
    const { result, dds } = await withNonce(t, { ...SIWE_NONCE_FIELDS, domain: '', version: '', extra: { any: 'thing' } });
    assert.equal(result.ok, true);
    const message = sentMessage(dds);
    assert.equal(message, composeSiweMessage({ ...SIWE_NONCE_FIELDS, domain: '', version: '' }, WALLET));
    assert.ok(message.startsWith(' wants you to sign in with your Ethereum account:\n'));
    assert.ok(message.includes('\nVersion: \n'));
  });

  it('signs a non-ASCII message over its UTF-8 byte length', async (t) => {
    const fields = { ...SIWE_NONCE_FIELDS, domain: 'bücher.example', nonce: 'ñ0nce😀xyz' };
    const { result, dds } = await withNonce(t, fields);
    assert.equal(result.ok, true);
    const sent = calls(dds, 'registration')[0]!.body as { message: string; signature: string };
    assert.equal(sent.message, composeSiweMessage(fields, WALLET));
    assert.notEqual(Buffer.byteLength(sent.message), sent.message.length);
    assert.equal(sent.signature, signEip191RecoverableHex(KEY, sent.message));
    assert.ok(verifyEip191Signature(sent.signature, sent.message, WALLET));
  });

  it('prints a negative chainId in decimal', async (t) => {
    const { result, dds } = await withNonce(t, { ...SIWE_NONCE_FIELDS, chainId: -42 });
    assert.equal(result.ok, true);
    assert.ok(sentMessage(dds).includes('\nChain ID: -42\n'));
  });
});

describe('the sign-in (PROTOCOL.md §6.5, §6.6)', () => {
  const NOW = Date.parse('2030-01-01T00:00:00.000Z');
  const clock = { now: () => NOW };
  let tokenSerial = 0;
  /** A fresh token (long hex, so that every scan finds it), added to the scan. */
  function newToken(): string {
    tokenSerial += 1;
    const token = `${'ab12cd34'.repeat(6)}${tokenSerial.toString(16).padStart(8, '0')}`;
    scan.addSecret(token);
    return token;
  }
  async function signIn(t: Cleanup, verify: SiweHandler, overrides: Partial<SiweRegistrationClientOptions> = clock) {
    const dds = await siweDds(t, { verify });
    const { c, logger } = client(dds, overrides);
    const result = await c.signIn();
    record('sign-in', result, logger);
    return { result, dds, logger };
  }

  it('sends verify exactly and returns an opaque token with its expiry and lifetime', async (t) => {
    const token = newToken();
    const { result, dds, logger } = await signIn(t, () => jsonAnswer({ access_token: token, access_expires_at: '2030-01-01T00:10:00.500Z', refresh_token: 'ignored' }));
    assert.equal(result.ok, true);
    assert.ok(result.ok);
    assert.ok(result.token instanceof AccessToken);
    assert.equal(result.token.expose(), token);
    assert.equal(result.expiresAtMs, NOW + 600_500);
    assert.equal(result.lifetimeMs, 600_500);
    assert.equal(result.endpoint, `${dds.url}/internal/v1/auth/siwe/verify`);
    for (const text of [JSON.stringify(result), util.inspect(result, { depth: 10 }), String(result.token), `${result.token}`]) {
      assert.ok(!text.includes(token), text);
    }
    assert.deepEqual(dds.requests.map((r) => r.path), ['/internal/v1/auth/siwe/request', '/internal/v1/auth/siwe/verify']);
    const verify = calls(dds, 'verify')[0]!;
    const message = composeSiweMessage(SIWE_NONCE_FIELDS, WALLET);
    assert.equal(verify.rawBody, JSON.stringify({ address: WALLET, message, signature: signEip191RecoverableHex(KEY, message) }));
    assertKeyOrder(verify.rawBody, VERIFY_KEYS);
    assert.ok(!verify.rawBody.includes(SECRET), 'verify does not carry the registration secret');
    assert.deepEqual(logger.lines.map((l) => [l.event, l.wallet_prefix]), [['sign_in.attempt', '0xfdbb6caf']]);
  });

  it('falls back on expires_at only when access_expires_at is absent (or null)', async (t) => {
    for (const body of [
      { access_token: newToken(), expires_at: '2030-01-01T00:01:00Z' },
      { access_token: newToken(), access_expires_at: null, expires_at: '2030-01-01T00:01:00Z' },
      { access_token: newToken(), access_expires_at: '2030-01-01T01:01:00+01:00', expires_at: '2031-01-01T00:00:00Z' },
    ]) {
      const { result } = await signIn(t, () => jsonAnswer(body));
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.lifetimeMs, 60_000);
    }
  });

  for (const [what, expiry, message] of [
    ['an unparsable access_expires_at, even beside a good expires_at', { access_expires_at: 'tomorrow', expires_at: '2031-01-01T00:00:00Z' }, 'siwe access token expiry unparsable: access_expires_at is not an RFC 3339 time'],
    ['an impossible date', { access_expires_at: '2030-02-30T00:00:00Z' }, 'siwe access token expiry unparsable: access_expires_at is not an RFC 3339 time'],
    ['no expiry at all', {}, 'siwe access token expiry missing in response'],
    ['a token already expired', { access_expires_at: '2029-12-31T23:59:59Z' }, 'siwe access token already expired: access_expires_at 2029-12-31T23:59:59.000Z is 1000 ms before its arrival'],
    ['a token expiring at its arrival', { expires_at: '2030-01-01T00:00:00Z' }, 'siwe access token already expired: expires_at 2030-01-01T00:00:00.000Z is 0 ms before its arrival'],
  ] as const) {
    it(`fails on ${what}, retryable, not forgotten, the token nowhere`, async (t) => {
      const token = newToken();
      const { result } = await signIn(t, () => jsonAnswer({ access_token: token, ...expiry }));
      assertFailure(result);
      assert.equal(result.class, 'retryable');
      assert.equal(result.step, 'verify');
      assert.equal(result.forgotten, false);
      assert.equal(result.message, message);
    });
  }

  for (const [what, body] of [['missing', {}], ['empty', { access_token: '' }], ['null', { access_token: null }]] as const) {
    it(`fails on a ${what} access token`, async (t) => {
      const { result } = await signIn(t, () => jsonAnswer({ ...body, access_expires_at: '2030-01-01T00:10:00Z' }));
      assertFailure(result);
      assert.equal(result.class, 'retryable');
      assert.equal(result.message, 'siwe access token missing in response');
    });
  }

  it('fails to decode a verify answer that is not JSON', async (t) => {
    const { result, dds } = await signIn(t, () => ({ status: 200, body: `token=${newToken()}` }));
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.message, `decode SIWE verify response failed: endpoint ${dds.url}/internal/v1/auth/siwe/verify, error: not valid JSON`);
  });

  it('marks only 403 and 404 from verify as forgotten', async (t) => {
    for (const [status, cls, forgotten] of [
      [403, 'slow', true],
      [404, 'slow', true],
      [401, 'slow', false],
      [409, 'conflict', false],
      [503, 'retryable', false],
      [400, 'slow', false],
    ] as const) {
      const { result, dds } = await signIn(t, () => ({ status, body: `verify says ${status}` }));
      assertFailure(result);
      assert.equal(result.step, 'verify');
      assert.equal(result.class, cls);
      assert.equal(result.forgotten, forgotten, String(status));
      assert.equal(result.message, `SIWE verify failed: status ${status}, endpoint ${dds.url}/internal/v1/auth/siwe/verify, body_snippet: verify says ${status}`);
    }
  });

  it('does not mark a 403 or 404 of the nonce request as forgotten', async (t) => {
    for (const status of [403, 404]) {
      const dds = await siweDds(t, { nonce: () => ({ status, body: 'no' }) });
      const result = await client(dds).c.signIn();
      assertFailure(result);
      assert.equal(result.step, 'nonce');
      assert.equal(result.forgotten, false);
      assert.match(result.message, new RegExp(`^request SIWE nonce failed: status ${status}, `));
      assert.equal(calls(dds, 'verify').length, 0);
    }
  });

  it('reports a dropped or silent verify as retryable, not forgotten', async (t) => {
    let { result, dds } = await signIn(t, () => 'destroy');
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.forgotten, false);
    assert.match(result.message, new RegExp(`^SIWE verify request failed: endpoint ${dds.url}/internal/v1/auth/siwe/verify, error: `));
    ({ result, dds } = await signIn(t, () => 'hang', { ...clock, timeoutMs: 300 }));
    assertFailure(result);
    assert.equal(result.code, 'ETIMEDOUT');
    assert.equal(result.message, `SIWE verify request failed: endpoint ${dds.url}/internal/v1/auth/siwe/verify, error: timeout after 300 ms`);
  });

  it('does not follow a redirect of verify', async (t) => {
    const other = await siweDds(t);
    const { result } = await signIn(t, () => ({ status: 307, headers: { location: `${other.url}/internal/v1/auth/siwe/verify` } }));
    assertFailure(result);
    assert.equal(result.class, 'slow');
    assert.equal(result.forgotten, false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(other.requests.length, 0);
  });

  it('never shows the signature when DDS echoes the verify body', async (t) => {
    const { result, dds } = await signIn(t, (req) => ({ status: 401, body: req.rawBody }));
    assertFailure(result);
    const sent = calls(dds, 'verify')[0]!.body as { signature: string };
    assert.ok(!result.message.includes(sent.signature.slice(2)));
    assert.match(result.message, /"signature":"\[redacted\]"/);
  });

  it('uses the real clock by default', async (t) => {
    const { result } = await signIn(t, () => tokenAnswer(newToken(), 30_000), {});
    assert.ok(result.ok);
    assert.ok(result.lifetimeMs > 20_000 && result.lifetimeMs <= 30_000, String(result.lifetimeMs));
  });
});

describe('parseRfc3339Ms', () => {
  it('reads Z, offsets, any fraction (truncated to ms), lowercase t and z', () => {
    assert.equal(parseRfc3339Ms('2030-01-01T00:00:00Z'), Date.UTC(2030, 0, 1));
    assert.equal(parseRfc3339Ms('2030-01-01t00:00:00.123456789z'), Date.UTC(2030, 0, 1) + 123);
    assert.equal(parseRfc3339Ms('2030-01-01T05:30:00+05:30'), Date.UTC(2030, 0, 1));
    assert.equal(parseRfc3339Ms('2029-12-31T23:00:00-01:00'), Date.UTC(2030, 0, 1));
    assert.equal(parseRfc3339Ms('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
    assert.equal(parseRfc3339Ms('0050-01-01T00:00:00Z'), new Date('0050-01-01T00:00:00Z').getTime(), 'a two-digit year is not 1950');
  });
  it('refuses what is not an RFC 3339 date-time', () => {
    for (const text of ['2023-02-29T00:00:00Z', '2030-13-01T00:00:00Z', '2030-01-01T24:00:00Z', '2030-01-01T00:00:00', '2030-01-01', '1893456000', '2030-01-01T00:00:00+0100', ' 2030-01-01T00:00:00Z']) {
      assert.equal(parseRfc3339Ms(text), undefined, text);
    }
  });
});
