/**
 * The test-support library itself (test/support): cleanup order, the
 * statistics summary, and the fake DDS's responders that other suites rely
 * on without checking (calling nodes back, holding registrations).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import http from 'node:http';
import { describe, it } from 'node:test';
import {
  CleanupStack,
  LeakScan,
  callbackResponder,
  holdRegistrations,
  listen,
  onCleanup,
  overlappingPairs,
  readBody,
  startFakeDds,
  summarize,
  tempDir,
  type DdsRequest,
} from '../support/index.js';

const REGISTER = '/internal/v1/nodes/register';

function register(ddsUrl: string, nodeUrl: string): Promise<Response> {
  return fetch(`${ddsUrl}${REGISTER}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: nodeUrl }) });
}

describe('cleanup', () => {
  it('runs what was registered last first: a later cleanup still finds the temp directory', async (t) => {
    let dir = '';
    const seen: boolean[] = [];
    await t.test('a test that sets things up', (inner) => {
      dir = tempDir(inner);
      onCleanup(inner, () => seen.push(fs.existsSync(dir)));
    });
    assert.deepEqual(seen, [true]);
    assert.equal(fs.existsSync(dir), false, 'the directory is removed at the end');
  });

  it('CleanupStack.run goes on past a failing function and returns what it threw', async () => {
    const stack = new CleanupStack();
    const ran: string[] = [];
    stack.after(() => ran.push('first'));
    stack.after(() => {
      throw new Error('boom');
    });
    stack.after(() => ran.push('last'));
    const errors = await stack.run();
    assert.deepEqual(ran, ['last', 'first']);
    assert.equal(errors.length, 1);
    assert.deepEqual(await stack.run(), [], 'each function runs once');
  });
});

describe('summarize', () => {
  it('gives nearest-rank percentiles, and NaN for an empty sample', () => {
    const s = summarize(Array.from({ length: 100 }, (_, i) => 100 - i));
    assert.deepEqual(s, { n: 100, min: 1, p50: 50, p90: 90, p95: 95, p99: 99, max: 100, mean: 50.5 });
    assert.ok(Number.isNaN(summarize([]).p50));
  });
});

describe('LeakScan', () => {
  it('finds a secret added after the text that holds it', () => {
    const scan = new LeakScan(['reg-secret-0123456789'], { exact: true });
    scan.check('early log', 'nothing here');
    scan.add('later answer', 'node-secret-abcdefghij');
    assert.deepEqual(scan.findings(), []);
    scan.addSecret('node-secret-abcdefghij');
    assert.deepEqual(scan.findings(), ['secret #1 (22 chars) leaked into later answer']);
    assert.throws(() => scan.check('log', 'reg-secret-0123456789'), /secret #0 \(21 chars\) leaked into log/);
  });
});

describe('the fake DDS', () => {
  it('callbackResponder calls the registering node back with a fresh node secret while the request is in flight', async (t) => {
    const received: unknown[] = [];
    const node = await listen(
      t,
      http.createServer((req, res) => {
        void readBody(req).then(({ body }) => {
          received.push(body);
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
        });
      }),
    );
    const dds = await startFakeDds(t, { responder: callbackResponder({ delayMs: 20 }) });
    const answer = await register(dds.url, 'http://node.example.test:8080');
    assert.equal(answer.status, 200, 'no callback for a node whose listen URL is unknown');
    await dds.settle();
    assert.deepEqual(dds.callbacks, []);

    dds.setListenUrl('http://node.example.test:8080', node.url);
    assert.equal((await register(dds.url, 'http://node.example.test:8080')).status, 200);
    await dds.settle();
    assert.deepEqual(dds.callbacks, [{ nodeUrl: 'http://node.example.test:8080', status: 200, body: '{"ok":true}' }]);
    assert.equal(dds.nodeSecrets.length, 1);
    assert.deepEqual(Object.keys(received[0] as object), ['id', 'secret', 'organization_id']);
    assert.equal((received[0] as { secret: string }).secret, dds.nodeSecrets[0]);
    assert.equal((await fetch(`${dds.url}/elsewhere`)).status, 404);
    assert.equal(dds.registrations().length, 2);
  });

  it('holdRegistrations keeps a registration open until the test answers it', async (t) => {
    const held = holdRegistrations();
    const dds = await startFakeDds(t, { responder: held.responder });
    let answered = false;
    const pending = register(dds.url, 'http://held.example.test').then((r) => {
      answered = true;
      return r;
    });
    const request = await held.next();
    assert.equal((request.request.body as { url: string }).url, 'http://held.example.test');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(answered, false, 'still in flight');
    assert.equal(dds.maxConcurrent, 1);
    request.answer(503, 'later');
    const answer = await pending;
    assert.equal(answer.status, 503);
    assert.equal(await answer.text(), 'later');
    await assert.rejects(held.next(50), /no registration request within 50 ms/);
  });

  it('overlappingPairs names the requests whose lifetimes overlap', () => {
    const at = (receivedAt: number, finishedAt?: number): DdsRequest => ({
      method: 'POST',
      path: REGISTER,
      headers: {},
      rawBody: '',
      body: undefined,
      receivedAt,
      at: receivedAt,
      finishedAt,
    });
    assert.deepEqual(overlappingPairs([at(0, 10), at(10, 20), at(25, 30)]), []);
    assert.deepEqual(overlappingPairs([at(0, 10), at(5, 8), at(9)]), [
      [0, 1],
      [0, 2],
    ]);
  });
});
