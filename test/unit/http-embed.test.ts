/**
 * The DDS routes embedded as apps embed them: inside real express 5 and
 * express 4 apps (the `express4` alias), over real HTTP on 127.0.0.1.
 * - exact paths: case-sensitive, no trailing-slash alias (issue 12 §6);
 * - whatever body parser the app installed before the router (none, json,
 *   text, raw, urlencoded): a body parsed as JSON gets the §2.1 table's
 *   answers, a body consumed by another parser a clear 400 and a log line
 *   that says to mount the router first (issue 13 §1).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http, { type RequestListener } from 'node:http';
import express5 from 'express';
import express4 from 'express4';
import { MemoryLogger } from '../../src/log.js';
import { CALLBACK_PATH, MAX_SECRET_BYTES, createDdsRouter, type CallbackPayload, type DdsSink } from '../../src/http.js';
import { LeakScan, listen } from '../support/index.js';

type Arrangement = 'none' | 'json' | 'text' | 'raw' | 'urlencoded';
type Flavour = 'express5' | 'express4';
const ARRANGEMENTS: readonly Arrangement[] = ['none', 'json', 'text', 'raw', 'urlencoded'];
const FLAVOURS: readonly Flavour[] = ['express5', 'express4'];

interface Served {
  url: string;
  callbacks: CallbackPayload[];
  probes: number;
  logger: MemoryLogger;
}

/**
 * An app of `flavour` with `arrangement`'s parser installed globally before
 * the router. The parsers are told to take every content type (`type: '*\/*'`),
 * the worst case: they consume the callback's body whatever it is.
 */
async function serve(t: TestContext, flavour: Flavour, arrangement: Arrangement, bodyLimitBytes?: number): Promise<Served> {
  const logger = new MemoryLogger();
  const callbacks: CallbackPayload[] = [];
  const served: Served = { url: '', callbacks, probes: 0, logger };
  const sink: DdsSink = {
    onCallback(p) {
      callbacks.push(p);
      return { accepted: true };
    },
    onHealthProbe() {
      served.probes += 1;
      return true;
    },
  };
  const router = createDdsRouter(sink, { logger, ...(bodyLimitBytes === undefined ? {} : { bodyLimitBytes }) });
  const all = { type: () => true };
  let listener: RequestListener;
  if (flavour === 'express5') {
    const app = express5();
    if (arrangement === 'json') app.use(express5.json({ ...all, limit: '1mb' }));
    if (arrangement === 'text') app.use(express5.text(all));
    if (arrangement === 'raw') app.use(express5.raw(all));
    if (arrangement === 'urlencoded') app.use(express5.urlencoded({ ...all, extended: true }));
    app.use(router);
    listener = app;
  } else {
    const app = express4();
    if (arrangement === 'json') app.use(express4.json({ ...all, limit: '1mb' }));
    if (arrangement === 'text') app.use(express4.text(all));
    if (arrangement === 'raw') app.use(express4.raw(all));
    if (arrangement === 'urlencoded') app.use(express4.urlencoded({ ...all, extended: false }));
    app.use(router as unknown as Parameters<typeof app.use>[0]);
    listener = app;
  }
  served.url = (await listen(t, http.createServer(listener))).url;
  return served;
}

async function request(url: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(url, init);
  return { status: res.status, text: await res.text() };
}

function postJson(base: string, body: string, path = CALLBACK_PATH, contentType = 'application/json'): Promise<{ status: number; text: string }> {
  return request(base + path, { method: 'POST', headers: { 'content-type': contentType }, body });
}

describe('exact, case-sensitive paths (issue 12 §6)', () => {
  for (const flavour of FLAVOURS) {
    it(`${flavour}: other spellings of the routes are not the routes (404)`, async (t) => {
      const s = await serve(t, flavour, 'none');
      const body = JSON.stringify({ id: 'n1', secret: 'node-secret-1234' });
      for (const path of ['/INTERNAL/V1/REGISTRATIONS', '/Internal/v1/registrations', `${CALLBACK_PATH}/`, `${CALLBACK_PATH}//`]) {
        assert.equal((await postJson(s.url, body, path)).status, 404, path);
      }
      for (const path of ['/Health', '/HEALTH', '/health/', '/health//']) {
        assert.equal((await request(s.url + path, { headers: { 'user-agent': 'DDS v1.0.0' } })).status, 404, path);
      }
      assert.equal(s.callbacks.length, 0);
      assert.equal(s.probes, 0);
      // The exact spellings still work.
      assert.equal((await postJson(s.url, body)).status, 200);
      assert.equal((await request(`${s.url}/health?x=1`, { headers: { 'user-agent': 'DDS v1.0.0' } })).status, 200);
      assert.equal(s.callbacks.length, 1);
      assert.equal(s.probes, 1);
    });
  }
});

describe('whatever parser the app installed before the router (issue 13 §1)', () => {
  for (const flavour of FLAVOURS) {
    for (const arrangement of ARRANGEMENTS) {
      const consumed = arrangement === 'text' || arrangement === 'raw' || arrangement === 'urlencoded';
      it(`${flavour}, ${arrangement} before the router: ${consumed ? 'a clear 400 and a log line' : 'the §2.1 table'}`, async (t) => {
        const scan = new LeakScan();
        const secret = `node-secret-${flavour}-${arrangement}-0123456789`;
        scan.addSecret(secret);
        const s = await serve(t, flavour, arrangement);
        const good = JSON.stringify({ id: 'node-1', secret, organization_id: 'org' });
        const answer = await postJson(s.url, good);
        if (consumed) {
          assert.equal(answer.status, 400);
          assert.match(answer.text, /body already parsed by another parser: mount routerDds before it/);
          const line = s.logger.lines.find((l) => l.event === 'registration.callback.body_consumed');
          assert.ok(line, 'a log line says what happened');
          assert.match(String(line.hint), /mount routerDds\(\) before/);
          assert.equal(s.callbacks.length, 0);
        } else {
          assert.equal(answer.status, 200, answer.text);
          assert.equal(answer.text, '{"ok":true}');
          assert.deepEqual(s.callbacks.map((c) => [c.id, c.secret, c.organizationId]), [['node-1', secret, 'org']]);
          // The rest of the table, the same whatever parsed the body.
          assert.equal((await postJson(s.url, good, CALLBACK_PATH, 'text/plain')).status, 415);
          assert.equal((await postJson(s.url, JSON.stringify({ id: 1, secret }))).status, 422);
          assert.equal((await postJson(s.url, JSON.stringify({ id: ' ', secret }))).text, 'missing id');
          assert.equal((await postJson(s.url, JSON.stringify({ id: 'a', secret: ' ' }))).text, 'missing secret');
          assert.deepEqual(await postJson(s.url, JSON.stringify({ id: 'a', secret: 'x'.repeat(MAX_SECRET_BYTES + 1) })), { status: 403, text: 'secret too large' });
          assert.equal((await postJson(s.url, JSON.stringify({ id: 'a', secret, organization_id: 5 }))).status, 422);
          assert.equal((await postJson(s.url, JSON.stringify({ id: 'a', secret, pad: 'p'.repeat(70 * 1024) }))).status, 413);
          assert.equal((await postJson(s.url, '')).status, 400);
          assert.equal(s.callbacks.length, 1);
        }
        scan.check('log', JSON.stringify(s.logger.lines));
      });
    }
  }
});
