/**
 * The DDS routes over real HTTP: an express app on 127.0.0.1, port 0, driven
 * with fetch (and node:http where fetch would add a header). Every row of the
 * PROTOCOL.md §2.1 table, the §2.2 User-Agent rule, and a scan of everything
 * logged for every secret sent.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import express from 'express';
import { MemoryLogger } from '../../src/log.js';
import { defaultNodeSecretStore } from '../../src/persist.js';
import {
  CALLBACK_PATH,
  HEALTH_PATH,
  MAX_SECRET_BYTES,
  createDdsRouter,
  defaultStoresSink,
  validateCallbackBody,
  type CallbackDecision,
  type CallbackPayload,
  type DdsRouterOptions,
  type DdsSink,
  type HealthProbe,
} from '../../src/http.js';
import { listen } from '../support/index.js';

/** One logger for every server of this file: scanned for secrets at the end. */
const logger = new MemoryLogger();
/** Every secret (or a distinctive part of it) sent during this file. */
const sentSecrets: string[] = [];

/** A fresh, recognisable secret, remembered for the final scan. */
function newSecret(): string {
  const s = `S3CRET-${randomUUID()}`;
  sentSecrets.push(s);
  return s;
}

interface RecordingSink extends DdsSink {
  callbacks: CallbackPayload[];
  probes: HealthProbe[];
}

/** A sink that records what it is given and answers as told. */
function recordingSink(
  decide: (p: CallbackPayload) => CallbackDecision | Promise<CallbackDecision> = () => ({ accepted: true }),
  probe: (p: HealthProbe) => boolean | void | Promise<boolean | void> = () => true,
): RecordingSink {
  const callbacks: CallbackPayload[] = [];
  const probes: HealthProbe[] = [];
  return {
    callbacks,
    probes,
    onCallback(p) {
      callbacks.push(p);
      return decide(p);
    },
    onHealthProbe(p) {
      probes.push(p);
      return probe(p);
    },
  };
}

/** Serve the router on 127.0.0.1:0 until the test ends; returns the base URL. */
async function serve(t: TestContext, sink: DdsSink, options: DdsRouterOptions = {}): Promise<string> {
  const app = express();
  app.use(createDdsRouter(sink, { logger, ...options }));
  return (await listen(t, http.createServer(app))).url;
}

interface Answer {
  status: number;
  contentType: string | null;
  headers: Headers | http.IncomingHttpHeaders;
  text: string;
}

/** POST a body to the callback route with fetch. */
async function post(base: string, body: string | Uint8Array, contentType: string | null = 'application/json'): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (contentType !== null) headers['content-type'] = contentType;
  const res = await fetch(base + CALLBACK_PATH, { method: 'POST', headers, body });
  return { status: res.status, contentType: res.headers.get('content-type'), headers: res.headers, text: await res.text() };
}

/** POST a JSON value to the callback route. */
function postJson(base: string, value: unknown, contentType = 'application/json'): Promise<Answer> {
  return post(base, JSON.stringify(value), contentType);
}

/** A request through node:http, which adds no User-Agent or Content-Type of its own. */
function rawRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers['content-type'] ?? null,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** An error answer must be short plain text: no HTML, no stack, none of the given secrets. */
function assertCleanErrorAnswer(answer: Answer, ...secrets: string[]): void {
  assert.match(answer.contentType ?? '', /^text\/plain\b/);
  assert.ok(answer.text.length <= 200, `answer too long: ${answer.text.length}`);
  assert.doesNotMatch(answer.text, /<[a-z!]/i, 'HTML in answer');
  assert.doesNotMatch(answer.text, /\bat .+:\d+:\d+/, 'stack trace in answer');
  for (const s of secrets) assert.ok(!answer.text.includes(s), 'secret echoed in answer');
}

function body(id: unknown, secret: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, secret, ...extra };
}

describe('POST /internal/v1/registrations (PROTOCOL.md §2.1)', () => {
  it('answers 415 to a valid JSON body without Content-Type: application/json, and stores nothing', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const secret = newSecret();
    const json = JSON.stringify(body('node-1', secret));
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx', 'text/json', 'application/json, text/plain']) {
      const a = await post(base, json, type);
      assert.equal(a.status, 415, type);
      assertCleanErrorAnswer(a, secret);
    }
    // No Content-Type at all (node:http adds none).
    const bare = await rawRequest(base + CALLBACK_PATH, { method: 'POST', body: json });
    assert.equal(bare.status, 415);
    assertCleanErrorAnswer(bare, secret);
    assert.equal(sink.callbacks.length, 0);
  });

  it('accepts parameters and any case in the media type (charset=utf-8)', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    for (const type of ['application/json; charset=utf-8', 'Application/JSON;charset=UTF-8', 'application/json ; charset="utf-8"']) {
      const a = await postJson(base, body('node-1', newSecret()), type);
      assert.equal(a.status, 200, type);
      assert.equal(a.text, '{"ok":true}');
    }
    assert.equal(sink.callbacks.length, 3);
  });

  it('answers 415 to an unsupported charset or a compressed body', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const secret = newSecret();
    const json = JSON.stringify(body('node-1', secret));
    const latin = await post(base, json, 'application/json; charset=latin1');
    assert.equal(latin.status, 415);
    assertCleanErrorAnswer(latin, secret);
    const gz = await rawRequest(base + CALLBACK_PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(json),
    });
    assert.equal(gz.status, 415);
    assertCleanErrorAnswer(gz, secret);
    assert.equal(sink.callbacks.length, 0);
  });

  it('answers 400 `invalid JSON` to a body that is not JSON, without echoing it or reaching express’s error printer', async (t) => {
    const consoleError = t.mock.method(console, 'error', () => undefined);
    const sink = recordingSink();
    const base = await serve(t, sink);
    const secret = newSecret();
    const broken = [`{"id":"node-1","secret":"${secret}"`, `{"id":"node-1","secret":"${secret}",}`, `'${secret}'`, `{'secret':'${secret}'}`];
    for (const text of broken) {
      const a = await post(base, text);
      assert.equal(a.status, 400, text);
      assert.equal(a.text, 'invalid JSON');
      assertCleanErrorAnswer(a, secret);
    }
    assert.equal(sink.callbacks.length, 0);
    assert.equal(consoleError.mock.callCount(), 0);
    const invalid = logger.events('registration.callback.invalid').filter((l) => l.status === 400);
    assert.ok(invalid.length >= broken.length);
  });

  it('answers 413 to a body over the limit (default 64 KiB, and a configured one)', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const secret = newSecret();
    const big = JSON.stringify(body('node-1', secret, { domains: 'x'.repeat(70 * 1024) }));
    const a = await post(base, big);
    assert.equal(a.status, 413);
    assert.equal(a.text, 'body too large');
    assertCleanErrorAnswer(a, secret);

    // Just under 64 KiB is parsed (and accepted).
    const fits = JSON.stringify(body('node-1', newSecret(), { domains: 'x'.repeat(60 * 1024) }));
    assert.equal((await post(base, fits)).status, 200);

    const small = await serve(t, sink, { bodyLimitBytes: 256 });
    const over = await postJson(small, body('node-1', secret, { domains: 'y'.repeat(300) }));
    assert.equal(over.status, 413);
    assertCleanErrorAnswer(over, secret);
    assert.equal((await postJson(small, body('node-1', newSecret()))).status, 200);
    assert.equal(sink.callbacks.length, 2);
  });

  it('rejects a bad body limit option', () => {
    assert.throws(() => createDdsRouter(recordingSink(), { bodyLimitBytes: 0 }), RangeError);
    assert.throws(() => createDdsRouter(recordingSink(), { bodyLimitBytes: 1.5 }), RangeError);
  });

  it('answers 422 to wrong types, a non-object body, or missing fields', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const secret = newSecret();
    const cases: [string, unknown][] = [
      ['array body', [body('node-1', secret)]],
      ['empty object', {}],
      ['id missing', { secret }],
      ['secret missing', { id: 'node-1' }],
      ['id number', body(42, secret)],
      ['id null', body(null, secret)],
      ['secret number', body('node-1', 12345)],
      ['secret object', body('node-1', { value: secret })],
      ['organization_id number', body('node-1', secret, { organization_id: 7 })],
      ['organization_id object', body('node-1', secret, { organization_id: { id: 'org' } })],
    ];
    for (const [name, value] of cases) {
      const a = await postJson(base, value);
      assert.equal(a.status, 422, name);
      assert.notEqual(a.text, 'missing id', name);
      assertCleanErrorAnswer(a, secret);
    }
    // An empty body is not valid JSON (body-parser would make it an empty object).
    const empty = await rawRequest(base + CALLBACK_PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': '0' },
    });
    assert.equal(empty.status, 400);
    assert.equal(empty.text, 'invalid JSON');
    // A JSON primitive is valid JSON without an id.
    for (const primitive of ['null', '1', `"${secret}"`, 'true']) {
      const a = await post(base, primitive);
      assert.equal(a.status, 422, primitive);
      assertCleanErrorAnswer(a, secret);
    }
    assert.equal(sink.callbacks.length, 0);
    const logged = logger.events('registration.callback.invalid').filter((l) => l.status === 422);
    assert.ok(logged.length >= cases.length + 4);
  });

  it('accepts organization_id null or absent (as null) and passes the optional fields through', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    assert.equal((await postJson(base, body('node-1', newSecret(), { organization_id: null }))).status, 200);
    assert.equal((await postJson(base, body('node-2', newSecret()))).status, 200);
    const lighthouses = [{ domain_id: 'd1', lighthouses: [{ id: 'l1' }] }];
    assert.equal(
      (await postJson(base, body('node-3', newSecret(), { organization_id: 'org-3', lighthouses_in_domains: lighthouses, domains: null })))
        .status,
      200,
    );
    assert.equal(sink.callbacks[0]?.organizationId, null);
    assert.equal(sink.callbacks[1]?.organizationId, null);
    assert.equal(Object.hasOwn(sink.callbacks[1] ?? {}, 'domains'), false);
    assert.equal(sink.callbacks[2]?.organizationId, 'org-3');
    assert.deepEqual(sink.callbacks[2]?.lighthousesInDomains, lighthouses);
    assert.equal(Object.hasOwn(sink.callbacks[2] ?? {}, 'domains'), true);
    assert.equal(sink.callbacks[2]?.domains, null);
  });

  it('answers 422 `missing id` / `missing secret` to blank values, id first, before the size check', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const secret = newSecret();
    const cases: [unknown, string][] = [
      [body('', secret), 'missing id'],
      [body('  \t\n ', secret), 'missing id'],
      [body('node-1', ''), 'missing secret'],
      [body('node-1', ' \t\r\n '), 'missing secret'],
      [body(' ', ' '), 'missing id'],
      [body('node-1', ' '.repeat(MAX_SECRET_BYTES + 10)), 'missing secret'],
    ];
    for (const [value, message] of cases) {
      const a = await postJson(base, value);
      assert.equal(a.status, 422);
      assert.equal(a.text, message);
      assertCleanErrorAnswer(a, secret);
    }
    // A type error comes before a blank one.
    const typed = await postJson(base, body(' ', 5));
    assert.equal(typed.status, 422);
    assert.notEqual(typed.text, 'missing id');
    assert.equal(sink.callbacks.length, 0);
  });

  it('answers 403 `secret too large` above 4096 UTF-8 bytes, counting bytes not characters', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const pad = (s: string, bytes: number, unit: string): string => {
      const unitBytes = Buffer.byteLength(unit);
      let out = s;
      while (Buffer.byteLength(out) + unitBytes <= bytes) out += unit;
      assert.equal(Buffer.byteLength(out), bytes);
      return out;
    };
    const fits = [
      pad(newSecret(), 4096, 'a'),
      pad(newSecret(), 4095, 'a') + 'b', // exactly 4096 too
      pad(newSecret() + 'x', 4096, 'é'), // 2-byte characters, 7 + 36 + 1 + 2 × n = 4096 → odd prefix fixed by 'x'
      pad(newSecret() + 'x', 4096, '😀'), // 4-byte characters
    ];
    for (const s of fits) {
      const a = await postJson(base, body('node-1', s));
      assert.equal(a.status, 200, `${Buffer.byteLength(s)} bytes`);
    }
    const tooLarge = [
      pad(newSecret(), 4096, 'a') + 'b', // 4097 bytes
      pad(newSecret() + 'x', 4096, 'é') + 'é', // 4098 bytes, far fewer characters
      pad(newSecret() + 'x', 4096, '😀') + '😀', // 4100 bytes, ~2100 UTF-16 units
      pad(newSecret() + 'xy', 4095, '€') + '€', // 3-byte characters: 4098
    ];
    for (const s of tooLarge) {
      const a = await postJson(base, body('node-1', s));
      assert.equal(a.status, 403, `${Buffer.byteLength(s)} bytes`);
      assert.equal(a.text, 'secret too large');
      assertCleanErrorAnswer(a, s);
    }
    // The multi-byte cases are under 4097 characters: only bytes make them too large.
    assert.ok((tooLarge[1] ?? '').length < 4097 && (tooLarge[2] ?? '').length < 4097);
    assert.equal(sink.callbacks.length, fits.length);
    assert.deepEqual(
      sink.callbacks.map((c) => c.secret),
      fits,
    );
  });

  it('answers 403 with the sink’s reason when it refuses, and the sink stores nothing', async (t) => {
    const stored: string[] = [];
    const sink = recordingSink((p) => {
      if (p.id === 'stranger') return { accepted: false, reason: 'unexpected callback' };
      stored.push(p.secret);
      return { accepted: true };
    });
    const base = await serve(t, sink);
    const secret = newSecret();
    const a = await postJson(base, body('stranger', secret, { organization_id: 'org-x' }));
    assert.equal(a.status, 403);
    assert.equal(a.text, 'unexpected callback');
    assertCleanErrorAnswer(a, secret);
    assert.deepEqual(stored, []);
    const [refused] = logger.events('registration.callback.refused').slice(-1);
    assert.equal(refused?.level, 'warn');
    assert.equal(refused?.node_id, 'stranger');
    assert.equal(refused?.organization_id, 'org-x');
    assert.equal(refused?.secret_len, Buffer.byteLength(secret));
    assert.equal(refused?.reason, 'unexpected callback');

    // An async refusal too.
    const asyncBase = await serve(t, recordingSink(async () => ({ accepted: false, reason: 'not now' })));
    const b = await postJson(asyncBase, body('node-1', newSecret()));
    assert.equal(b.status, 403);
    assert.equal(b.text, 'not now');
  });

  it('answers 409 `persist failed` when the sink throws or rejects, without logging the error', async (t) => {
    const secret = newSecret();
    const throwing = await serve(
      t,
      recordingSink((p) => {
        throw new Error(`disk full while writing ${p.secret}`);
      }),
    );
    const a = await postJson(throwing, body('node-9', secret));
    assert.equal(a.status, 409);
    assert.equal(a.text, 'persist failed');
    assertCleanErrorAnswer(a, secret);

    const secret2 = newSecret();
    const rejecting = await serve(
      t,
      recordingSink(async (p) => Promise.reject(new Error(`cannot store ${p.secret}`))),
    );
    const b = await postJson(rejecting, body('node-9', secret2));
    assert.equal(b.status, 409);
    assert.equal(b.text, 'persist failed');
    assertCleanErrorAnswer(b, secret2);

    const failed = logger.events('registration.callback.persist_failed').slice(-2);
    assert.equal(failed.length, 2);
    for (const line of failed) {
      assert.equal(line.level, 'error');
      assert.equal(line.node_id, 'node-9');
    }
  });

  it('answers 200 {"ok":true} on acceptance; the default sink stores the secret and identity', async (t) => {
    t.after(() => defaultNodeSecretStore.clear());
    defaultNodeSecretStore.clear();
    const base = await serve(t, defaultStoresSink({ state: { touchHealthcheckNow: () => true }, logger }));
    const secret = newSecret();
    const res = await fetch(base + CALLBACK_PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body('node-42', secret, { organization_id: 'org-7' })),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/);
    assert.equal(await res.text(), '{"ok":true}');
    assert.equal(defaultNodeSecretStore.read(), secret);
    const identity = defaultNodeSecretStore.identity();
    assert.equal(identity?.nodeId, 'node-42');
    assert.equal(identity?.organizationId, 'org-7');

    const [line] = logger.events('registration.callback').slice(-1);
    assert.equal(line?.level, 'info');
    assert.equal(line?.node_id, 'node-42');
    assert.equal(line?.organization_id, 'org-7');
    assert.equal(line?.secret_len, Buffer.byteLength(secret));

    // A second callback replaces the first.
    const secret2 = newSecret();
    assert.equal((await postJson(base, body('node-43', secret2))).status, 200);
    assert.equal(defaultNodeSecretStore.read(), secret2);
    assert.equal(defaultNodeSecretStore.identity()?.nodeId, 'node-43');
    assert.equal(defaultNodeSecretStore.identity()?.organizationId, null);
  });

  it('is not fooled by __proto__ or constructor keys', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const polluting =
      '{"__proto__":{"polluted":"yes","isAdmin":true},"constructor":{"prototype":{"polluted":"yes"}},' +
      `"id":"node-1","secret":"${newSecret()}","lighthouses_in_domains":{"__proto__":{"polluted":"yes"}}}`;
    const a = await post(base, polluting);
    assert.equal(a.status, 200);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
    assert.equal(Object.hasOwn(Object.prototype, 'isAdmin'), false);
    const [payload] = sink.callbacks;
    assert.ok(payload);
    assert.equal(Object.getPrototypeOf(payload), Object.prototype);
    assert.equal((payload as unknown as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.keys(payload).sort(), ['id', 'lighthousesInDomains', 'organizationId', 'secret']);

    // Fields hidden under __proto__ are not fields.
    const hidden = await post(base, `{"__proto__":{"id":"node-1","secret":"${newSecret()}"}}`);
    assert.equal(hidden.status, 422);
    assert.equal(sink.callbacks.length, 1);
  });

  it('answers 405 with Allow to other methods', async (t) => {
    const base = await serve(t, recordingSink());
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const a = await rawRequest(base + CALLBACK_PATH, { method });
      assert.equal(a.status, 405, method);
      assert.equal((a.headers as http.IncomingHttpHeaders).allow, 'POST');
      assertCleanErrorAnswer(a);
    }
    const h = await rawRequest(base + HEALTH_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(h.status, 405);
    assert.equal((h.headers as http.IncomingHttpHeaders).allow, 'GET, HEAD');
  });
});

describe('validateCallbackBody', () => {
  it('reads own properties only', () => {
    const inherited = Object.create({ id: 'node-1', secret: 'inherited' }) as object;
    const r = validateCallbackBody(inherited);
    assert.equal(r.ok, false);
    assert.equal(r.ok ? 0 : r.status, 422);
  });

  it('returns the payload with verbatim id and secret', () => {
    const r = validateCallbackBody({ id: ' node-1 ', secret: ' s ', organization_id: 'o' });
    assert.deepEqual(r, { ok: true, payload: { id: ' node-1 ', secret: ' s ', organizationId: 'o' } });
  });

  it('follows the table order', () => {
    const status = (v: unknown): string => {
      const r = validateCallbackBody(v);
      return r.ok ? 'ok' : `${r.status} ${r.message}`;
    };
    assert.match(status(null), /^422 /);
    assert.match(status('x'), /^422 /);
    assert.match(status([]), /^422 /);
    assert.equal(status({ id: '', secret: '' }), '422 missing id');
    assert.equal(status({ id: 'a', secret: '' }), '422 missing secret');
    assert.equal(status({ id: 'a', secret: 'é'.repeat(2049) }), '403 secret too large');
    assert.equal(status({ id: 'a', secret: 'é'.repeat(2048) }), 'ok');
    assert.match(status({ id: '', secret: 'é'.repeat(3000), organization_id: 1 }), /^422 invalid body: organization_id/);
  });
});

describe('GET /health (PROTOCOL.md §2.2)', () => {
  it('touches on a DDS probe and answers 200 with an empty body', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    for (const ua of ['DDS v1.4.2', 'DDS v', 'DDS v2.0.0 (linux)']) {
      const res = await fetch(base + HEALTH_PATH, { headers: { 'user-agent': ua } });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '');
    }
    assert.deepEqual(
      sink.probes.map((p) => p.userAgent),
      ['DDS v1.4.2', 'DDS v', 'DDS v2.0.0 (linux)'],
    );
    for (const p of sink.probes) assert.ok(Number.isFinite(p.receivedAt) && p.receivedAt > 0);
    const head = await fetch(base + HEALTH_PATH, { method: 'HEAD', headers: { 'user-agent': 'DDS v1.4.2' } });
    assert.equal(head.status, 200);
    assert.equal(sink.probes.length, 4);
    assert.ok(logger.events('healthcheck.probe').length >= 4);
  });

  it('answers 200 to other callers and changes nothing (case-sensitive prefix)', async (t) => {
    const sink = recordingSink();
    const base = await serve(t, sink);
    const before = logger.events('healthcheck.skip').length;
    for (const ua of ['curl/8.5.0', 'dds v1.4.2', 'DDS V1.4.2', 'DDS', 'DDSv1', 'Mozilla/5.0 DDS v1', '']) {
      const res = await fetch(base + HEALTH_PATH, { headers: { 'user-agent': ua } });
      assert.equal(res.status, 200, ua);
      assert.equal(await res.text(), '');
    }
    const noUa = await rawRequest(base + HEALTH_PATH);
    assert.equal(noUa.status, 200);
    assert.equal(noUa.text, '');
    assert.equal(sink.probes.length, 0);
    const skips = logger.events('healthcheck.skip').slice(before);
    assert.equal(skips.length, 8);
    for (const s of skips) assert.equal(s.level, 'debug');
    assert.equal(skips[0]?.user_agent, 'curl/8.5.0');
    assert.equal(skips[7]?.user_agent, null);
  });

  it('truncates a long User-Agent in the skip log', async (t) => {
    const base = await serve(t, recordingSink());
    const res = await fetch(base + HEALTH_PATH, { headers: { 'user-agent': 'z'.repeat(4000) } });
    assert.equal(res.status, 200);
    const [line] = logger.events('healthcheck.skip').slice(-1);
    assert.ok(typeof line?.user_agent === 'string' && line.user_agent.length <= 129);
  });

  it('answers 200 and logs healthcheck.touch.error when storing fails', async (t) => {
    let mode: 'false' | 'throw' | 'reject' = 'false';
    const sink = recordingSink(undefined, () => {
      if (mode === 'false') return false;
      if (mode === 'throw') throw new Error('EACCES');
      return Promise.reject(new Error('EIO'));
    });
    const base = await serve(t, sink);
    const before = logger.events('healthcheck.touch.error').length;
    for (const m of ['false', 'throw', 'reject'] as const) {
      mode = m;
      const res = await fetch(base + HEALTH_PATH, { headers: { 'user-agent': 'DDS v1.4.2' } });
      assert.equal(res.status, 200, m);
      assert.equal(await res.text(), '');
    }
    const errors = logger.events('healthcheck.touch.error').slice(before);
    assert.equal(errors.length, 3);
    for (const e of errors) assert.equal(e.level, 'warn');
  });

  it('the default sink touches the state store and logs healthcheck.touch', async (t) => {
    let touches = 0;
    let ok = true;
    const base = await serve(
      t,
      defaultStoresSink({
        state: {
          touchHealthcheckNow: () => {
            touches += 1;
            return ok;
          },
        },
        logger,
      }),
    );
    const before = { touch: logger.events('healthcheck.touch').length, error: logger.events('healthcheck.touch.error').length };
    assert.equal((await fetch(base + HEALTH_PATH, { headers: { 'user-agent': 'DDS v1.4.2' } })).status, 200);
    assert.equal((await fetch(base + HEALTH_PATH, { headers: { 'user-agent': 'curl/8' } })).status, 200);
    assert.equal(touches, 1);
    assert.equal(logger.events('healthcheck.touch').length, before.touch + 1);
    assert.equal(logger.events('healthcheck.touch').at(-1)?.level, 'info');
    ok = false;
    assert.equal((await fetch(base + HEALTH_PATH, { headers: { 'user-agent': 'DDS v1.4.2' } })).status, 200);
    assert.equal(touches, 2);
    assert.equal(logger.events('healthcheck.touch').length, before.touch + 1);
    assert.equal(logger.events('healthcheck.touch.error').length, before.error + 1);
  });
});

describe('secrets', () => {
  it('never reach the log, whatever happened to the request', () => {
    assert.ok(sentSecrets.length >= 30, `only ${sentSecrets.length} secrets sent`);
    assert.ok(logger.lines.length > 0);
    const dump = logger.dump();
    for (const s of sentSecrets) assert.ok(!dump.includes(s), 'a secret reached the log');
    // The scan itself can fail: a line holding a secret is found.
    const probe = new MemoryLogger();
    probe.info({ event: 'x', note: `leak ${sentSecrets[0] ?? ''}` });
    assert.ok(probe.dump().includes(sentSecrets[0] ?? '\u0000'));
  });
});

after(() => defaultNodeSecretStore.clear());
