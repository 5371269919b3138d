/**
 * The token example of docs/embedding.md (./bearer.ts, imported from the
 * built package by its name): a registrar of protocol `siwe` against the
 * simulator, and a service on 127.0.0.1 that refuses the first token it sees
 * with 401 — the example reports it and is let in with the next one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { test } from 'node:test';
import { accessToken, AccessTokenError, createRegistrar, MemoryLogger } from 'posemesh-node-registration';
import { generateSecretKey } from '../../src/crypto.js';
import { assertNoSecrets, listen, REPO_ROOT, startSimulator, tempDir } from '../support/index.js';
import { fetchAsNode } from './bearer.js';

test('docs/embedding.md shows ./bearer.ts as it is', () => {
  const example = readFileSync(new URL('./bearer.ts', import.meta.url), 'utf8');
  assert.ok(readFileSync(`${REPO_ROOT}docs/embedding.md`, 'utf8').includes(`\`\`\`ts\n${example}\`\`\``), 'docs/embedding.md: the example differs from test/examples/bearer.ts');
});

test('fetchAsNode sends the token as a bearer, reports a 401 and gets in with a fresh token', async (t) => {
  const sim = await startSimulator(t, { tokenLifetimeMs: 60_000 });
  const seen: string[] = [];
  const service = http.createServer((req, res) => {
    const auth = req.headers.authorization ?? '';
    seen.push(auth);
    res.writeHead(seen.length === 1 ? 401 : 200).end();
  });
  const { url } = await listen(t, service);

  const key = generateSecretKey();
  const regSecret = randomBytes(16).toString('hex');
  const logger = new MemoryLogger();
  const registrar = createRegistrar(
    {
      protocol: 'siwe',
      ddsBaseUrl: sim.url,
      nodeVersion: '1.0.0',
      regSecret,
      secp256k1Privhex: key.exposeHex(),
      capabilities: ['/reconstruction/global-refinement/v1'],
      dataDir: tempDir(t),
    },
    { logger },
  );
  t.after(() => registrar.send({ type: 'STOP' }));
  registrar.start();

  const response = await fetchAsNode(registrar, `${url}/jobs`);
  assert.equal(response.status, 200);
  assert.equal(seen.length, 2);
  assert.ok(seen.every((a) => /^Bearer [0-9a-f]{64}$/.test(a)), 'a bearer token each time');
  assert.notEqual(seen[0], seen[1], 'the refused token is not sent again');
  assert.equal(sim.of('siwe.signed_in').length, 2, 'the 401 made the session sign in again');
  assert.equal(sim.of('siwe.registered').length, 1, 'a 401 does not re-register');

  registrar.send({ type: 'STOP' });
  await assert.rejects(accessToken(registrar), (e: unknown) => e instanceof AccessTokenError && e.code === 'ESTOPPED');
  assertNoSecrets({ logs: logger.dump(), simulator: sim.logger.dump() }, [...seen.map((a) => a.slice('Bearer '.length)), regSecret, key.exposeHex()]);
});
