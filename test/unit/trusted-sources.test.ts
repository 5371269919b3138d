/**
 * Who counts as DDS (DDS_TRUSTED_SOURCES, TRUST_PROXY; issue 12 §2 and
 * "Trusted sources"): the address rules alone, then the routes over real
 * HTTP on 127.0.0.1 — a callback from elsewhere 403 and never parsed, a
 * probe from elsewhere 200 and recorded nowhere (`User-Agent: DDS v…` from a
 * stranger cannot keep a node "registered"), X-Forwarded-For honoured only
 * as far as TRUST_PROXY says.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as path from 'node:path';
import express from 'express';
import { generateSecretKey } from '../../src/crypto.js';
import { createDdsRouter, UNTRUSTED_SOURCE, type CallbackPayload, type DdsRouterOptions, type DdsSink } from '../../src/http.js';
import { MemoryLogger } from '../../src/log.js';
import { createRegistrar } from '../../src/registrar.js';
import { routerDds } from '../../src/router-dds.js';
import { addressSet, cidrProblem, clientAddress, normalizeAddress } from '../../src/trusted-sources.js';
import { listen, LeakScan, tempDir } from '../support/index.js';

describe('address rules', () => {
  it('checks CIDR items and matches IPv4, IPv6 and IPv4-mapped addresses', () => {
    assert.equal(cidrProblem('10.0.0.0/8'), null);
    assert.equal(cidrProblem('2001:db8::/32'), null);
    assert.equal(cidrProblem('192.0.2.1'), null);
    assert.match(cidrProblem('10.0.0.0/33') ?? '', /prefix length/);
    assert.match(cidrProblem('10.0.0.0/08x') ?? '', /prefix length/);
    assert.match(cidrProblem('example.com') ?? '', /not an address/);
    assert.match(cidrProblem('loopback') ?? '', /not an address/);
    assert.equal(cidrProblem('loopback', { names: true }), null);
    const set = addressSet(['10.0.0.0/8', '2001:db8::/32']);
    assert.ok(set.has('10.1.2.3'));
    assert.ok(set.has('::ffff:10.1.2.3'), 'IPv4-mapped');
    assert.ok(set.has('2001:db8::1'));
    assert.ok(!set.has('11.0.0.1'));
    assert.ok(!set.has('not an ip'));
    assert.ok(!set.has(undefined));
    assert.equal(normalizeAddress('[::1]'), '::1');
  });

  it("finds the client as express's trust proxy does", () => {
    const req = (peer: string, xff?: string) => ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
    const none = (): boolean => false;
    const all = (): boolean => true;
    const hops = (n: number) => (_a: string, hop: number) => hop < n;
    const loopback = ((s) => (a: string) => s.has(a))(addressSet(['loopback'], { names: true }));
    assert.equal(clientAddress(req('127.0.0.1', '203.0.113.5'), none), '127.0.0.1', 'off: the header is ignored');
    assert.equal(clientAddress(req('127.0.0.1', '198.51.100.1, 203.0.113.5'), all), '198.51.100.1', 'true: the left-most');
    assert.equal(clientAddress(req('127.0.0.1', '198.51.100.1, 203.0.113.5'), hops(1)), '203.0.113.5', 'one hop');
    assert.equal(clientAddress(req('::ffff:127.0.0.1', '203.0.113.5'), loopback), '203.0.113.5', 'a trusted proxy names the client');
    // A client that writes its own X-Forwarded-For: the proxy appends the real address, which is what counts.
    assert.equal(clientAddress(req('127.0.0.1', '192.0.2.9, 198.51.100.1'), loopback), '198.51.100.1');
    assert.equal(clientAddress(req('198.51.100.1', '192.0.2.9'), loopback), '198.51.100.1', 'an untrusted peer is the client');
    assert.equal(clientAddress(req('127.0.0.1', 'garbage'), loopback), '127.0.0.1');
  });
});

interface Served {
  url: string;
  callbacks: CallbackPayload[];
  probes: number;
  logger: MemoryLogger;
}

async function serve(t: TestContext, options: DdsRouterOptions): Promise<Served> {
  const logger = new MemoryLogger();
  const served: Served = { url: '', callbacks: [], probes: 0, logger };
  const sink: DdsSink = {
    onCallback(p) {
      served.callbacks.push(p);
      return { accepted: true };
    },
    onHealthProbe() {
      served.probes += 1;
      return true;
    },
  };
  const app = express();
  app.use(createDdsRouter(sink, { logger, ...options }));
  served.url = (await listen(t, http.createServer(app))).url;
  return served;
}

const SECRET = 'node-secret-from-a-stranger-0123456789';

function callback(s: Served, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${s.url}/internal/v1/registrations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ id: 'node-1', secret: SECRET }),
  });
}

function probe(s: Served, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${s.url}/health`, { headers: { 'user-agent': 'DDS v1.4.2', ...headers } });
}

describe('the routes with trusted sources (real HTTP on 127.0.0.1)', () => {
  it('off (the default): anyone is DDS', async (t) => {
    const s = await serve(t, {});
    assert.equal((await callback(s)).status, 200);
    assert.equal((await probe(s)).status, 200);
    assert.deepEqual([s.callbacks.length, s.probes], [1, 1]);
  });

  it('from elsewhere: the callback 403 (unread), the probe 200 and nothing recorded', async (t) => {
    const s = await serve(t, { trustedSources: ['192.0.2.0/24', '2001:db8::/32'] });
    const answer = await callback(s);
    assert.deepEqual([answer.status, await answer.text()], [403, UNTRUSTED_SOURCE]);
    const p = await probe(s);
    assert.deepEqual([p.status, await p.text()], [200, '']);
    assert.deepEqual([s.callbacks.length, s.probes], [0, 0], 'a stranger neither hands a secret nor keeps the node fresh');
    // X-Forwarded-For is not believed without TRUST_PROXY.
    assert.equal((await callback(s, { 'x-forwarded-for': '192.0.2.10' })).status, 403);
    await probe(s, { 'x-forwarded-for': '192.0.2.10' });
    assert.deepEqual([s.callbacks.length, s.probes], [0, 0]);
    const refused = s.logger.events('registration.callback.refused');
    assert.equal(refused[0]?.['source'], '127.0.0.1');
    assert.equal(s.logger.events('healthcheck.skip')[0]?.['reason'], UNTRUSTED_SOURCE);
    const scan = new LeakScan([SECRET]);
    scan.check('log', s.logger.dump());
  });

  it('from a trusted source: as before', async (t) => {
    const s = await serve(t, { trustedSources: ['127.0.0.0/8', '::1'] });
    assert.equal((await callback(s)).status, 200);
    assert.equal((await probe(s)).status, 200);
    assert.deepEqual([s.callbacks.length, s.probes], [1, 1]);
  });

  it('behind a trusted proxy: the address it forwards decides', async (t) => {
    const s = await serve(t, { trustedSources: ['192.0.2.0/24'], trustProxy: ['loopback'] });
    assert.equal((await callback(s, { 'x-forwarded-for': '192.0.2.10' })).status, 200);
    await probe(s, { 'x-forwarded-for': '192.0.2.10' });
    assert.deepEqual([s.callbacks.length, s.probes], [1, 1]);
    // A stranger behind the proxy, claiming a trusted address in its own header: the proxy's entry counts.
    assert.equal((await callback(s, { 'x-forwarded-for': '192.0.2.10, 198.51.100.7' })).status, 403);
    await probe(s, { 'x-forwarded-for': '192.0.2.10, 198.51.100.7' });
    assert.equal((await callback(s)).status, 403, 'the proxy itself is not DDS');
    assert.deepEqual([s.callbacks.length, s.probes], [1, 1]);
  });

  it('routerDds takes them from the registrar’s settings', async (t) => {
    const registrar = createRegistrar(
      {
        ddsBaseUrl: 'http://127.0.0.1:9',
        nodeUrl: 'http://127.0.0.1:9/node',
        nodeVersion: '1.0.0',
        regSecret: 'reg-secret-0123456789',
        secp256k1Privhex: generateSecretKey().exposeHex(),
        dataDir: path.join(tempDir(t), 'data'),
        ddsTrustedSources: ['192.0.2.0/24'],
      },
      { logger: new MemoryLogger() },
    );
    const app = express();
    app.use(routerDds(registrar));
    const { url } = await listen(t, http.createServer(app));
    const answer = await fetch(`${url}/internal/v1/registrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'node-1', secret: SECRET }),
    });
    assert.deepEqual([answer.status, await answer.text()], [403, UNTRUSTED_SOURCE]);
  });
});
