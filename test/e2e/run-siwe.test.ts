/**
 * The built CLI's `run --protocol siwe` against the real simulator (a strict
 * DDS, in this process): no NODE_URL, and with DDS_ROUTES=false no inbound
 * port; it registers once, signs in, rewrites ACCESS_TOKEN_FILE (0600) at
 * every refresh, parks (no second registration), `status` says the token's
 * expiry and exits 0, SIGUSR1's line carries the session, SIGTERM removes
 * the token file and exits 0. Routes on under siwe, they stay available;
 * under legacy routes off is refused (exit 2, one line). No registration
 * secret, key or token that was in the file shows up in any output.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { StatusReport } from '../../src/cli/status-report.js';
import { generateSecretKey } from '../../src/crypto.js';
import { assertNoSecrets, listeningTcpPorts, probeHealth, startSimulator, tempDir, waitUntil } from '../support/index.js';
import { cliEnv, runCli, runEnv, spawnCli, type CliChild, type RunTarget } from './helpers.js';

const TOKEN_LIFETIME_MS = 4000;

function target(t: TestContext, ddsUrl: string): RunTarget & { tokenFile: string } {
  const dir = tempDir(t);
  return { ddsUrl, regSecret: `reg-${randomBytes(16).toString('hex')}`, privhex: generateSecretKey().exposeHex(), dataDir: join(dir, 'data'), tokenFile: join(dir, 'token') };
}

/** `run --protocol siwe` with no NODE_URL, a short refresh (a quarter of the lifetime) and `extra`. */
function runSiwe(t: TestContext, node: RunTarget & { tokenFile: string }, extra: Record<string, string>): CliChild {
  return spawnCli(
    t,
    ['run', '--protocol', 'siwe'],
    runEnv(node, { NODE_URL: undefined, CAPABILITIES: '/cap/v1', ACCESS_TOKEN_FILE: node.tokenFile, TOKEN_SAFETY_RATIO: '0.25', TOKEN_REAUTH_JITTER_MS: '20', ...extra }),
  );
}

/** The ports `child` listens on; undefined (said once) where /proc cannot tell. */
function portsOf(t: TestContext, child: CliChild): number[] | undefined {
  const ports = child.proc.pid === undefined ? undefined : listeningTcpPorts(child.proc.pid);
  if (ports === undefined) t.diagnostic('skipping the listening-port check: /proc/<pid>/fd and /proc/<pid>/net/tcp are not readable here');
  return ports;
}

function parseReport(stdout: string): StatusReport {
  return JSON.parse(stdout) as StatusReport;
}

test('run --protocol siwe, DDS_ROUTES=false: no port, registers once, token file rewritten at each refresh (0600), status, SIGUSR1, SIGTERM removes it', { timeout: 60_000 }, async (t) => {
  const sim = await startSimulator(t, { tokenLifetimeMs: TOKEN_LIFETIME_MS });
  const node = target(t, sim.url);
  const child = runSiwe(t, node, { DDS_ROUTES: 'false' });

  // Every token as it appears in the file: each one 0600, each a new one (the file is replaced at a refresh).
  const tokens: string[] = [];
  await waitUntil(
    () => {
      if (!existsSync(node.tokenFile)) return false;
      const text = readFileSync(node.tokenFile, 'utf8');
      assert.equal(statSync(node.tokenFile).mode & 0o777, 0o600, 'ACCESS_TOKEN_FILE mode');
      if (text !== tokens.at(-1)) tokens.push(text);
      return tokens.length >= 3;
    },
    'three tokens in ACCESS_TOKEN_FILE',
    20_000,
  );
  assert.equal(new Set(tokens).size, tokens.length, 'each refresh writes a new token');
  assert.ok(tokens.every((tk) => tk.length > 0));
  assert.equal(sim.of('siwe.registered').length, 1, 'parked: no registration while the session refreshes');
  assert.ok(sim.of('siwe.signed_in').length >= 3);

  assert.equal(child.events('http.listening').length, 0, 'no routes: no http.listening');
  assert.equal(child.events('http.routes.off').length, 1);
  const ports = portsOf(t, child);
  if (ports !== undefined) assert.deepEqual(ports, [], 'DDS_ROUTES=false: no inbound port');

  const [text, json] = await Promise.all([runCli(t, ['status'], cliEnv({ DATA_DIR: node.dataDir })), runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: node.dataDir }))]);
  assert.equal(text.code, 0, text.stdout);
  assert.match(text.stdout, /^status: registered$/m);
  assert.match(text.stdout, /^protocol: siwe .* — healthy$/m);
  assert.match(text.stdout, /^access session: token expires in \d+(\.\d)? s \(at \d{4}-\d\d-\d\dT[\d:.]+Z\)$/m);
  assert.equal(json.code, 0, json.stdout);
  const report = parseReport(json.stdout);
  assert.equal(report.protocol, 'siwe');
  assert.equal(report.healthy, true);
  assert.ok(report.session !== null && report.session.tokenExpiresInSecs !== null && report.session.tokenExpiresInSecs > 0, json.stdout);

  child.proc.kill('SIGUSR1');
  const { line: status } = await child.waitForEvent('process.status');
  const session = status['session'] as Record<string, unknown> | null;
  assert.ok(session !== null && typeof session === 'object', JSON.stringify(status));
  assert.match(String(session['state']), /^(active|signingIn\.refreshing)$/);
  assert.ok(Number(session['sign_ins']) >= 3);
  assert.equal(typeof session['token_expires_at'], 'string');

  const stopped = await child.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.equal(existsSync(node.tokenFile), false, 'SIGTERM removes ACCESS_TOKEN_FILE');
  const after = await runCli(t, ['status'], cliEnv({ DATA_DIR: node.dataDir }));
  assert.equal(after.code, 1, after.stdout);
  assert.match(after.stdout, /^access session: no token$/m);

  const stateFile = readFileSync(join(node.dataDir, 'registration_state.json'), 'utf8');
  assertNoSecrets(
    { stdout: stopped.stdout, stderr: stopped.stderr, status: text.stdout + json.stdout + after.stdout, stateFile },
    [node.regSecret, node.privhex, ...tokens],
  );
});

test('run --protocol siwe with its routes on: they listen and record a probe, which arms nothing; the session off, registered is healthy', { timeout: 60_000 }, async (t) => {
  const sim = await startSimulator(t, {});
  const node = target(t, sim.url);
  const child = runSiwe(t, node, { ACCESS_SESSION: 'false' });
  const { line: listening } = await child.waitForEvent('http.listening');
  const url = String(listening['url']);
  await child.waitForEvent('registration.success');
  const ports = portsOf(t, child);
  if (ports !== undefined) assert.deepEqual(ports, [Number(new URL(url).port)]);

  assert.equal((await probeHealth(url)).status, 200);
  await child.waitFor((l) => l['event'] === 'healthcheck.touch' && l['source'] === 'probe', { what: 'the probe recorded' });
  const status = await runCli(t, ['status'], cliEnv({ DATA_DIR: node.dataDir }));
  assert.equal(status.code, 0, status.stdout);
  assert.match(status.stdout, /^access session: off/m);
  assert.equal(sim.of('siwe.registered').length, 1);
  assert.equal(existsSync(node.tokenFile), false, 'no session, no token file');

  const stopped = await child.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
  assertNoSecrets({ stdout: stopped.stdout, stderr: stopped.stderr }, [node.regSecret, node.privhex]);
});

test('run --protocol siwe, the session off: a registrar killed without stopping (SIGKILL) is not healthy', { timeout: 60_000 }, async (t) => {
  const sim = await startSimulator(t, {});
  const node = target(t, sim.url);
  const child = runSiwe(t, node, { ACCESS_SESSION: 'false', DDS_ROUTES: 'false' });
  await child.waitForEvent('registration.success');
  // Parked, no routes, no session: nothing pending, and yet it runs until told to stop.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(child.proc.exitCode, null, 'the daemon is still running');
  const alive = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: node.dataDir }));
  assert.equal(alive.code, 0, `registered, alive: healthy\n${alive.stdout}\n${readFileSync(join(node.dataDir, 'registration_state.json'), 'utf8')}`);
  const killed = await child.stop('SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  // No TTL and no token under siwe with the session off: the state file still says registered; its writer is gone.
  const status = await runCli(t, ['status'], cliEnv({ DATA_DIR: node.dataDir }));
  assert.equal(status.code, 1, status.stdout);
  assert.match(status.stdout, /— registrar gone\n/);
  assert.match(status.stdout, /^why: the registrar that wrote it is gone/m);
  const json = await runCli(t, ['status', '--json'], cliEnv({ DATA_DIR: node.dataDir }));
  assert.equal(parseReport(json.stdout).staleReason, 'writer-gone');
});

test('legacy with its routes off is refused: exit 2, one line naming DDS_ROUTES, nothing started', async (t) => {
  const node = target(t, 'http://127.0.0.1:9');
  const [flag, env] = await Promise.all([
    runCli(t, ['run', '--dds-routes', 'false'], runEnv(node)),
    runCli(t, ['run'], runEnv(node, { DDS_ROUTES: 'false' })),
  ]);
  for (const r of [flag, env]) {
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? '', /^posemesh-node-registration: DDS_ROUTES: .*REGISTRATION_PROTOCOL=siwe/);
  }
  assert.equal(existsSync(node.dataDir), false, 'refused before the data directory was made');
});
