import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import util from 'node:util';
import got from 'got';
import {
  generateSecretKey,
  loadSecp256k1Privhex,
  secp256k1PubkeyUncompressedHex,
  verifyRecoverableKeccakHex,
} from '../../src/crypto.js';
import { MemoryLogger } from '../../src/log.js';
import {
  BODY_SNIPPET_MAX_CHARS,
  InvalidUrlError,
  buildRegistrationRequest,
  classifyStatus,
  createRegistrationClient,
  parseRetryAfter,
  redactUrl,
  registerOnce,
  registrationEndpoint,
  serializeRegistrationBody,
  type RegistrationBody,
  type RegistrationResult,
} from '../../src/register.js';
import type { RegistrationFailure } from '../../machines/registrar.js';
import { assertNoSecrets, freePort, startFakeDds } from '../support/index.js';

// First signing vector of /work/shared/protocol/vectors.json (independent implementation).
const VECTOR = {
  privhex: 'e331b6d69882b4ed5bb7f55b585d7d0f7dc3aeca4a3deee8d16bde3eca51aace',
  public_key:
    '043b6931ded944fd8b7a235f450bc7e55a492c1b3fefed8378e230d47ca4cda30729619774d691c3842268e03e3c8c21e3b1edf53a76b221fdf05f01c633ac6dca',
  url: 'https://node.example.com',
  timestamp: '2024-01-02T03:04:05.000000000Z',
  signature:
    'da30b75e06557248dc7f5b82d6748d869ad0bab2a3479ae7dd10522e34e4d0284b0f66a1ea0d3fcadfc8499e61b47219e9071b1c6f1312cee7915678be09259900',
};

const SECRET = 'reg-secret-Zq8v3Lk0pW7mN2xT';
const KEY = loadSecp256k1Privhex(VECTOR.privhex);
const CAPS = ['/reconstruction/global-refinement/v1', '/reconstruction/local-refinement/v1'];
// The wire order as the crate sends it, spelled here on purpose rather than taken from REGISTRATION_KEYS.
const KEY_ORDER = ['url', 'version', 'registration_credentials', 'signature', 'timestamp', 'public_key', 'capabilities'] as const;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

function body(overrides: Partial<RegistrationBody> = {}): RegistrationBody {
  return {
    ...buildRegistrationRequest({
      nodeUrl: 'http://127.0.0.1:8080',
      nodeVersion: '1.2.3',
      regSecret: SECRET,
      key: KEY,
      capabilities: CAPS,
    }),
    ...overrides,
  };
}

/** Fails if any of the things, serialised and inspected, contains the secret or the private key. */
function assertNoSecret(...things: unknown[]): void {
  const texts = things.flatMap((thing) => [typeof thing === 'string' ? thing : JSON.stringify(thing), util.inspect(thing, { depth: 10 })]);
  assertNoSecrets(texts, [SECRET, VECTOR.privhex], { exact: true });
}

function assertFailure(result: RegistrationResult): asserts result is RegistrationFailure {
  assert.equal(result.ok, false, `expected a failure, got ${JSON.stringify(result)}`);
}

describe('registrationEndpoint', () => {
  it('appends the path to the base URL without its trailing slashes', () => {
    const cases: [base: string, endpoint: string][] = [
      ['https://dds.example', 'https://dds.example/internal/v1/nodes/register'],
      ['https://dds.example/', 'https://dds.example/internal/v1/nodes/register'],
      ['http://127.0.0.1:9///', 'http://127.0.0.1:9/internal/v1/nodes/register'],
      ['https://h.example/dds/', 'https://h.example/dds/internal/v1/nodes/register'],
    ];
    for (const [base, endpoint] of cases) assert.equal(registrationEndpoint(base), endpoint, base);
  });

  it('refuses unparsable, non-http(s) and query-carrying URLs without echoing credentials', () => {
    const cases = [
      'not a url',
      '',
      'ftp://user:hunter2pass@dds.example/',
      'file:///etc/passwd',
      'https://user:hunter2pass@dds.example/?x=1',
      'https://dds.example/#frag',
      '//user:hunter2pass@dds.example',
    ];
    for (const input of cases) {
      assert.throws(
        () => registrationEndpoint(input),
        (error: unknown) => {
          assert.ok(error instanceof InvalidUrlError, `${input}: ${String(error)}`);
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^invalid DDS base URL: /);
          assert.ok(!error.message.includes('hunter2pass'), error.message);
          return true;
        },
      );
    }
  });

  it('redactUrl strips userinfo and leaves other URLs alone', () => {
    assert.equal(redactUrl('https://u:p@dds.example/x'), 'https://dds.example/x');
    assert.equal(redactUrl('https://dds.example:8443/x/'), 'https://dds.example:8443/x/');
    assert.equal(redactUrl('junk'), 'junk');
  });
});

describe('buildRegistrationRequest', () => {
  it('matches the independent signing vector, keys in wire order', () => {
    const b = buildRegistrationRequest({
      nodeUrl: VECTOR.url,
      nodeVersion: '1.0.0',
      regSecret: SECRET,
      key: KEY,
      capabilities: CAPS,
      timestamp: VECTOR.timestamp,
    });
    assert.deepEqual(Object.keys(b), [...KEY_ORDER]);
    assert.equal(b.signature, VECTOR.signature);
    assert.equal(b.public_key, VECTOR.public_key);
    assert.equal(b.registration_credentials, SECRET);
    assert.deepEqual(b.capabilities, CAPS);
    assert.equal(b.url, VECTOR.url);
    assert.equal(b.timestamp, VECTOR.timestamp);
  });

  it('defaults to a fresh nanosecond timestamp and no capabilities; the signature verifies', () => {
    const key = generateSecretKey();
    const b = buildRegistrationRequest({ nodeUrl: 'https://n.example/', nodeVersion: '2.0.0', regSecret: 's', key });
    assert.match(b.timestamp, TIMESTAMP_RE);
    assert.deepEqual(b.capabilities, []);
    assert.equal(b.public_key, secp256k1PubkeyUncompressedHex(key));
    assert.ok(verifyRecoverableKeccakHex(b.signature, b.url + b.timestamp, b.public_key));
  });

  it('serializeRegistrationBody keeps the wire order whatever the object order', () => {
    const b = body();
    const shuffled = Object.fromEntries(Object.entries(b).reverse()) as unknown as RegistrationBody;
    assert.equal(serializeRegistrationBody(shuffled), JSON.stringify(b));
  });
});

describe('classifyStatus and parseRetryAfter', () => {
  it('classifies statuses', () => {
    const expected: Array<[number, string]> = [
      [200, 'ok'],
      [201, 'ok'],
      [204, 'ok'],
      [299, 'ok'],
      [301, 'slow'],
      [307, 'slow'],
      [400, 'slow'],
      [401, 'slow'],
      [404, 'slow'],
      [408, 'retryable'],
      [409, 'conflict'],
      [429, 'retryable'],
      [500, 'retryable'],
      [503, 'retryable'],
      [599, 'retryable'],
    ];
    for (const [status, cls] of expected) assert.equal(classifyStatus(status), cls, String(status));
  });

  it('parses delta-seconds and HTTP dates', () => {
    const now = Date.parse('2015-10-21T07:28:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('2015', now), 2_015_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wednesday, 21-Oct-15 07:29:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now), 0, 'a past date gives 0');
    for (const bad of [undefined, '', 'soon', '-5', '1.5', '2015-10-21', 'Wed, nonsense']) {
      assert.equal(parseRetryAfter(bad, now), null, String(bad));
    }
  });
});

describe('registerOnce against a local DDS', () => {
  it('POSTs the exact JSON body, keys in order, to the register path', async (t) => {
    const dds = await startFakeDds(t);
    const b = body();
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: b });
    assert.equal(result.ok, true);
    assert.equal(result.status, 200);
    assert.equal(result.endpoint, `${dds.url}/internal/v1/nodes/register`);
    assert.ok(result.ok && result.durationMs >= 0);

    assert.equal(dds.requests.length, 1);
    const req = dds.requests[0]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/internal/v1/nodes/register');
    assert.match(String(req.headers['content-type']), /^application\/json\b/);
    assert.equal(req.rawBody, JSON.stringify(b));
    // Key order in the raw text itself.
    const positions = KEY_ORDER.map((k) => req.rawBody.indexOf(`"${k}":`));
    assert.ok(positions.every((p) => p >= 0), req.rawBody);
    assert.deepEqual([...positions].sort((x, y) => x - y), positions);
    assert.deepEqual(Object.keys(req.body as object), [...KEY_ORDER]);

    const sent = req.body as RegistrationBody;
    assert.equal(sent.registration_credentials, SECRET);
    assert.equal(sent.public_key, VECTOR.public_key);
    assert.deepEqual(sent.capabilities, CAPS);
    assert.match(sent.timestamp, TIMESTAMP_RE);
    assert.ok(verifyRecoverableKeccakHex(sent.signature, sent.url + sent.timestamp, sent.public_key));
    assert.ok(!verifyRecoverableKeccakHex(sent.signature, `${sent.url}x${sent.timestamp}`, sent.public_key));
  });

  it('builds the path from a base URL with trailing slashes or a path prefix', async (t) => {
    const dds = await startFakeDds(t);
    await registerOnce({ ddsBaseUrl: `${dds.url}///`, body: body() });
    await registerOnce({ ddsBaseUrl: `${dds.url}/dds/v2/`, body: body() });
    assert.deepEqual(
      dds.requests.map((r) => r.path),
      ['/internal/v1/nodes/register', '/dds/v2/internal/v1/nodes/register'],
    );
  });

  it('treats any 2xx as success, whatever the body', async (t) => {
    const dds = await startFakeDds(t);
    const answers = [
      { status: 200, body: '{}' },
      { status: 204 },
      { status: 201, body: '<<<not json at all>>>' },
      { status: 200, body: 'x'.repeat(200_000) },
    ];
    for (const answer of answers) {
      dds.setResponder(() => answer);
      const result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
      assert.deepEqual({ ok: result.ok, status: result.status }, { ok: true, status: answer.status });
    }
  });

  it('classifies each failure status and formats its message', async (t) => {
    const dds = await startFakeDds(t);
    const cases: Array<[number, string]> = [
      [409, 'conflict'],
      [408, 'retryable'],
      [429, 'retryable'],
      [500, 'retryable'],
      [502, 'retryable'],
      [503, 'retryable'],
      [400, 'slow'],
      [401, 'slow'],
      [404, 'slow'],
    ];
    for (const [status, cls] of cases) {
      dds.setResponder(() => ({ status, body: `answer ${status}` }));
      const result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
      assertFailure(result);
      assert.equal(result.class, cls, String(status));
      assert.equal(result.status, status);
      assert.equal(result.retryAfterMs, null);
      assert.equal(result.code, undefined);
      assert.equal(
        result.message,
        `registration failed: status ${status}, endpoint ${dds.url}/internal/v1/nodes/register, body_snippet: answer ${status}`,
      );
    }
  });

  it('reads Retry-After (seconds or HTTP date) on 429 and 503', async (t) => {
    const dds = await startFakeDds(t);
    dds.setResponder(() => ({ status: 429, headers: { 'retry-after': '7' }, body: 'slow down' }));
    let result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
    assertFailure(result);
    assert.equal(result.retryAfterMs, 7000);

    const inAMinute = new Date(Date.now() + 60_000).toUTCString();
    dds.setResponder(() => ({ status: 503, headers: { 'retry-after': inAMinute }, body: '' }));
    result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.ok(result.retryAfterMs !== null && result.retryAfterMs > 30_000 && result.retryAfterMs <= 60_000);

    dds.setResponder(() => ({ status: 500, headers: { 'retry-after': '7' }, body: '' }));
    result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
    assertFailure(result);
    assert.equal(result.retryAfterMs, null, 'only 429 and 503 carry Retry-After');
  });

  for (const status of [301, 302, 307, 308]) {
    it(`does not follow a ${status} redirect to another origin`, async (t) => {
      const other = await startFakeDds(t);
      const dds = await startFakeDds(t, {
        responder: () => ({
          status,
          headers: { location: `${other.url}/internal/v1/nodes/register` },
          body: 'moved',
        }),
      });
      const result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
      assertFailure(result);
      assert.equal(result.class, 'slow');
      assert.equal(result.status, status);
      assert.match(result.message, new RegExp(`^registration failed: status ${status}, `));
      assert.equal(dds.requests.length, 1);
      // Give a follow-up request (if any were made) time to land.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(other.requests.length, 0, 'the other origin received the credentials');
    });
  }

  it('truncates the body snippet to 512 characters and turns newlines into spaces', async (t) => {
    const dds = await startFakeDds(t);
    const text = `line one\nline two\r\nline three\r${'é'.repeat(1000)}`;
    dds.setResponder(() => ({ status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: text }));
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
    assertFailure(result);
    const snippet = result.message.split('body_snippet: ')[1] ?? '';
    assert.ok(!/[\r\n]/.test(result.message));
    assert.ok(snippet.startsWith('line one line two line three é'), snippet.slice(0, 40));
    assert.ok(Array.from(snippet).length <= BODY_SNIPPET_MAX_CHARS);
    assert.equal(Array.from(snippet).length, BODY_SNIPPET_MAX_CHARS - 1, 'the CRLF counts as one space');
  });

  it('reads a huge error body only up to its bound', async (t) => {
    const dds = await startFakeDds(t);
    dds.setResponder(() => ({ status: 500, body: 'z'.repeat(5 * 1024 * 1024) }));
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
    assertFailure(result);
    assert.equal(result.status, 500);
    assert.equal(result.message.split('body_snippet: ')[1], 'z'.repeat(512));
  });

  it('never puts the secret in a result, even when DDS echoes it', async (t) => {
    const dds = await startFakeDds(t);
    const logger = new MemoryLogger();
    const echoes: Array<(raw: string) => string> = [
      (raw) => raw, // the whole request body, secret in the first 512 chars
      (_raw) => `bad credentials: ${SECRET}`,
      (_raw) => `${'.'.repeat(505)}${SECRET}`, // the secret straddles the 512 cut
      (raw) => `${'.'.repeat(600)}${raw}`,
      (raw) => JSON.stringify({ error: 'denied', echo: raw }), // JSON-escaped echo
      (_raw) => SECRET.split('').join('\n'), // harmless: newlines break the secret apart
    ];
    for (const make of echoes) {
      dds.setResponder((req) => ({ status: 403, body: make(req.rawBody) }));
      const result = await registerOnce({ ddsBaseUrl: dds.url, body: body(), logger });
      assertFailure(result);
      assert.equal(result.class, 'slow');
      assertNoSecret(result, result.message);
    }
    dds.setResponder((req) => ({ status: 400, body: `no: ${req.rawBody}` }));
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body(), logger });
    assertFailure(result);
    assert.match(result.message, /\[redacted\]/);
    assertNoSecret(logger.lines, logger.dump());
  });

  it('redacts a secret containing JSON-escaped characters', async (t) => {
    const dds = await startFakeDds(t);
    const secret = 'se"cr\\et/with"quotes';
    const b = body({ registration_credentials: secret });
    dds.setResponder((req) => ({ status: 422, body: req.rawBody }));
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: b });
    assertFailure(result);
    assert.ok(!result.message.includes('cr\\\\et'), result.message);
    assert.ok(!result.message.includes(secret));
    assert.ok(!result.message.includes(JSON.stringify(secret).slice(1, -1)));
    assert.match(result.message, /"registration_credentials":"\[redacted\]"/);
  });

  it('reports connection refused as retryable, with the address', async () => {
    const port = await freePort();
    const logger = new MemoryLogger();
    const base = `http://127.0.0.1:${port}`;
    const result = await registerOnce({ ddsBaseUrl: base, body: body(), logger });
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.status, null);
    assert.equal(result.code, 'ECONNREFUSED');
    assert.equal(result.retryAfterMs, null);
    assert.equal(
      result.message,
      `POST ${base}/internal/v1/nodes/register failed: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
    assertNoSecret(result, logger.lines);
  });

  it('times out on a DDS that never answers', async (t) => {
    const dds = await startFakeDds(t, { responder: () => 'hang' });
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body(), timeoutMs: 300 });
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.status, null);
    assert.equal(result.code, 'ETIMEDOUT');
    assert.equal(result.message, `POST ${dds.url}/internal/v1/nodes/register failed: timeout after 300 ms`);
    assert.equal(dds.requests.length, 1, 'no retry');
    assertNoSecret(result);
  });

  it('bounds a slow error body by the timeout, keeping what arrived', async (t) => {
    // The first chunk at once, the next not before the end of the test.
    const dds = await startFakeDds(t, {
      responder: () => ({ status: 502, headers: { 'content-type': 'text/plain' }, trickle: { chunk: 'partial answer', everyMs: 60_000, forMs: 120_000 } }),
    });
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body(), timeoutMs: 400 });
    assertFailure(result);
    assert.equal(result.status, 502);
    assert.equal(result.class, 'retryable');
    assert.match(result.message, /body_snippet: partial answer$/);
  });

  it('reports a dropped connection as retryable', async (t) => {
    const dds = await startFakeDds(t, { responder: () => 'destroy' });
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.status, null);
    assert.equal(result.code, 'ECONNRESET');
    assert.match(result.message, /^POST http:\/\/127\.0\.0\.1:\d+\/internal\/v1\/nodes\/register failed: /);
    assertNoSecret(result);
  });

  it('stops on abort with code ABORTED', async (t) => {
    const dds = await startFakeDds(t, { responder: () => 'hang' });
    const controller = new AbortController();
    const pending = registerOnce({ ddsBaseUrl: dds.url, body: body(), signal: controller.signal, timeoutMs: 30_000 });
    await dds.waitForRequests(1);
    controller.abort();
    const result = await pending;
    assertFailure(result);
    assert.equal(result.class, 'retryable');
    assert.equal(result.status, null);
    assert.equal(result.code, 'ABORTED');
    assert.equal(result.message, `POST ${dds.url}/internal/v1/nodes/register failed: aborted`);
    assertNoSecret(result);
  });

  it('sends nothing when the signal is already aborted', async (t) => {
    const dds = await startFakeDds(t);
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body(), signal: AbortSignal.abort() });
    assertFailure(result);
    assert.equal(result.code, 'ABORTED');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(dds.requests.length, 0);
  });

  it('never retries nor follows redirects, even with a custom got instance that would', async (t) => {
    const other = await startFakeDds(t);
    const dds = await startFakeDds(t, { responder: () => ({ status: 500, body: 'down' }) });
    const eager = got.extend({
      retry: { limit: 5, methods: ['POST'], statusCodes: [500] },
      followRedirect: true,
      throwHttpErrors: true,
    });
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body(), got: eager });
    assertFailure(result);
    assert.equal(result.status, 500);
    assert.equal(dds.requests.length, 1);

    dds.setResponder(() => ({ status: 307, headers: { location: other.url } }));
    const redirected = await registerOnce({ ddsBaseUrl: dds.url, body: body(), got: eager });
    assertFailure(redirected);
    assert.equal(redirected.status, 307);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(other.requests.length, 0);
  });

  it('strips userinfo from the endpoint it reports', async (t) => {
    const dds = await startFakeDds(t, { responder: () => ({ status: 404, body: 'nope' }) });
    const base = dds.url.replace('http://', 'http://admin:hunter2pass@');
    const logger = new MemoryLogger();
    const result = await registerOnce({ ddsBaseUrl: base, body: body(), logger });
    assertFailure(result);
    assert.equal(result.endpoint, `${dds.url}/internal/v1/nodes/register`);
    assert.ok(!JSON.stringify(result).includes('hunter2pass'));
    assert.ok(!logger.dump().includes('hunter2pass'));
  });

  it('returns a failure, not a rejection, for an invalid base URL', async () => {
    const result = await registerOnce({ ddsBaseUrl: 'ftp://dds.example', body: body() });
    assertFailure(result);
    assert.equal(result.status, null);
    assert.match(result.message, /^invalid DDS base URL/);
  });

  it('logs exactly one attempt line, without the secret', async (t) => {
    const dds = await startFakeDds(t);
    const logger = new MemoryLogger();
    const b = body();
    await registerOnce({ ddsBaseUrl: dds.url, body: b, logger });
    assert.equal(logger.lines.length, 1);
    const line = logger.lines[0]!;
    assert.equal(line.level, 'info');
    assert.equal(line.event, 'registration.attempt');
    assert.equal(line.endpoint, `${dds.url}/internal/v1/nodes/register`);
    assert.equal(line.version, '1.2.3');
    assert.equal(line.public_key_prefix, VECTOR.public_key.slice(0, 16));
    assert.deepEqual(line.capabilities, CAPS);
    assertNoSecret(logger.lines, logger.dump());
  });
});

describe('createRegistrationClient', () => {
  it('registers with fresh signed bodies and hides the secret and the key', async (t) => {
    const dds = await startFakeDds(t);
    const logger = new MemoryLogger();
    const client = createRegistrationClient({
      ddsBaseUrl: `${dds.url}/`,
      nodeUrl: 'https://node.example.com',
      nodeVersion: '3.1.4',
      regSecret: SECRET,
      key: KEY,
      capabilities: CAPS,
      timeoutMs: 5000,
      logger,
    });
    assert.equal(client.endpoint, `${dds.url}/internal/v1/nodes/register`);
    assert.equal(client.publicKeyHex, VECTOR.public_key);
    assert.deepEqual(client.capabilities, CAPS);
    assert.ok(Object.isFrozen(client.capabilities));

    assertNoSecret(client, String(client), Object.entries(client));
    assert.ok(!util.inspect(client, { showHidden: true, depth: 10 }).includes(SECRET));

    const first = await client.register();
    const second = await client.register();
    assert.equal(first.ok, true);
    assert.equal(second.ok, true);
    const [a, b] = await dds.waitForRequests(2);
    const sentA = a!.body as RegistrationBody;
    const sentB = b!.body as RegistrationBody;
    assert.equal(sentA.registration_credentials, SECRET);
    assert.equal(sentA.version, '3.1.4');
    assert.notEqual(sentA.timestamp, sentB.timestamp, 'each attempt signs a new timestamp');
    for (const sent of [sentA, sentB]) {
      assert.ok(verifyRecoverableKeccakHex(sent.signature, sent.url + sent.timestamp, sent.public_key));
    }
    assert.equal(logger.events('registration.attempt').length, 2);
    assertNoSecret(first, second, logger.lines);
  });

  it('passes its abort signal through', async (t) => {
    const dds = await startFakeDds(t, { responder: () => 'hang' });
    const client = createRegistrationClient({
      ddsBaseUrl: dds.url,
      nodeUrl: 'https://n.example',
      nodeVersion: '1.0.0',
      regSecret: SECRET,
      key: KEY,
    });
    const controller = new AbortController();
    const pending = client.register(controller.signal);
    await dds.waitForRequests(1);
    controller.abort();
    const result = await pending;
    assertFailure(result);
    assert.equal(result.code, 'ABORTED');
  });

  it('refuses an invalid DDS URL at once', () => {
    assert.throws(
      () =>
        createRegistrationClient({
          ddsBaseUrl: 'mailto:x@y',
          nodeUrl: 'https://n.example',
          nodeVersion: '1.0.0',
          regSecret: SECRET,
          key: KEY,
        }),
      InvalidUrlError,
    );
  });
});

describe('the fake DDS of test/support', () => {
  it('counts concurrent register requests and closes with hanging sockets', async (t) => {
    const dds = await startFakeDds(t, { responder: () => 'hang' }); // closed at cleanup too: close is idempotent
    const controllers = [new AbortController(), new AbortController(), new AbortController()];
    const pending = controllers.map((c) => registerOnce({ ddsBaseUrl: dds.url, body: body(), signal: c.signal }));
    await dds.waitForRequests(3);
    assert.equal(dds.maxConcurrent, 3);
    await dds.close(); // must not wait for the hanging requests
    const results = await Promise.all(pending);
    for (const r of results) {
      assertFailure(r);
      assert.equal(r.class, 'retryable');
    }
    assert.ok(dds.requests.every((r) => typeof r.finishedAt === 'number'));
  });

  it('answers after a delay and records the path of other routes', async (t) => {
    const dds = await startFakeDds(t, { responder: () => ({ status: 202, body: 'later', delayMs: 50 }) });
    const result = await registerOnce({ ddsBaseUrl: dds.url, body: body() });
    assert.equal(result.status, 202);
    await assert.rejects(dds.waitForRequests(2, 100), /expected 2 request/);
  });
});
