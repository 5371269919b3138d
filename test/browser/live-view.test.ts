/**
 * The live view in a real browser: `run --inspect` (the built CLI, a child
 * process) against the DDS simulator, its page opened in Chromium. The
 * highlighted top-level state must follow the registrar through
 * `registering → registered → healthCheckStale → registering` when the
 * simulator pauses its probes; the page loads nothing from anywhere but the
 * relay (it works offline); nothing it receives or renders holds a secret.
 * It leaves a screenshot; with `LIVE_VIEW_SCREENSHOT=<path>` (what
 * `npm run docs:screenshot` sets) it writes it there too, for docs/inspector.md.
 * Under protocol `siwe` the page shows the access session's region
 * (`registered.session.*` highlighted) and the re-arm, and no access token.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { generateSecretKey } from '../../src/crypto.js';
import type { DdsSimulatorOptions } from '../../src/sim/dds-simulator.js';
import {
  NO_CHROMIUM,
  REPO_ROOT,
  assertNoLongHex,
  assertNoSecrets,
  freePort,
  newPage,
  startSimulator,
  tempDir,
  waitUntil,
  type Cleanup,
  type PageGlobals,
} from '../support/index.js';
import { cliEnv, spawnCli } from '../e2e/helpers.js';

/** What the page recorder (installed before the page's own script) saw: each change of the highlighted top-level state. */
interface Highlight {
  at: number;
  state: string;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Where `sequence` occurs in `seen` in order (gaps allowed), or -1: the index of its last element. */
function subsequenceEnd(seen: readonly string[], sequence: readonly string[], from = 0): number {
  let next = 0;
  for (let i = from; i < seen.length; i++) {
    if (seen[i] === sequence[next]) next++;
    if (next === sequence.length) return i;
  }
  return -1;
}

/** The simulator (test/support), refusing registrations without a fresh secret; a fresh key for the node. */
async function credentialedSimulator(t: Cleanup, options: DdsSimulatorOptions) {
  const regSecret = `reg-${randomBytes(16).toString('hex')}`;
  const { sim, url } = await startSimulator(t, { ...options, expectedRegSecret: regSecret });
  return { sim, ddsUrl: url, regSecret, privhex: generateSecretKey().exposeHex() };
}

/** The live view's page at `pageUrl`, watched: what it received, asked for and highlighted. */
async function watchPage(t: Cleanup, pageUrl: string) {
  const { page, errors } = await newPage(t);
  // Everything the page receives over its WebSocket, as the browser saw it.
  const frames: string[] = [];
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketFrameReceived', (e) => frames.push(e.response.payloadData));
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  // Record the highlighted top-level state after every change of the page (a state held
  // for one turn is highlighted for one WebSocket message: a poll would miss it). No named
  // function inside: tsx would wrap it in a helper the page does not have.
  await page.evaluateOnNewDocument(() => {
    const w = globalThis as unknown as PageGlobals & { highlights: Highlight[]; everActive: string[] };
    w.highlights = [];
    // And every state, at any depth, that was ever highlighted.
    w.everActive = [];
    new w.MutationObserver(() => {
      const active = [...w.document.querySelectorAll('#chart > .state.active')].map((e) => e.dataset['state'] ?? '?').join(',');
      const last = w.highlights[w.highlights.length - 1];
      if (active !== '' && active !== last?.state) w.highlights.push({ at: Date.now(), state: active });
      for (const e of w.document.querySelectorAll('#chart .state.active')) {
        const path = e.dataset['state'] ?? '?';
        if (!w.everActive.includes(path)) w.everActive.push(path);
      }
    }).observe(w.document, { subtree: true, childList: true, attributes: true, attributeFilter: ['class'] });
  });
  const response = await page.goto(`${pageUrl}/`);
  assert.equal(response?.status(), 200);
  const highlights = (): Promise<Highlight[]> => page.evaluate(() => (globalThis as unknown as { highlights: Highlight[] }).highlights);
  const states = async (): Promise<string[]> => (await highlights()).map((h) => h.state);
  const everActive = (): Promise<string[]> => page.evaluate(() => (globalThis as unknown as { everActive: string[] }).everActive);
  return { page, errors, frames, requests, states, everActive };
}

describe('the live view in Chromium', { skip: NO_CHROMIUM, timeout: 180_000 }, () => {
  it('follows a registrar through registering → registered → healthCheckStale → registering, offline, without a secret', async (t) => {
    const { sim, ddsUrl, regSecret, privhex } = await credentialedSimulator(t, { probeIntervalMs: 250 });

    const [inspectPort, nodePort] = [await freePort(), await freePort()];
    const child = spawnCli(
      t,
      ['run', '--inspect', '--inspect-port', String(inspectPort)],
      cliEnv({
        LOG_FORMAT: 'json',
        DDS_BASE_URL: ddsUrl,
        NODE_URL: `http://127.0.0.1:${nodePort}`,
        REG_SECRET: regSecret,
        SECP256K1_PRIVHEX: privhex,
        REGISTER_INTERVAL_SECS: '1',
        HOST: '127.0.0.1',
        PORT: String(nodePort),
        DATA_DIR: join(tempDir(t), 'data'),
      }),
    );
    const { line: ready } = await child.waitForEvent('inspector.ready');
    const pageUrl = String(ready['url']);
    assert.equal(pageUrl, `http://127.0.0.1:${inspectPort}`);

    const { page, errors, frames, requests, states } = await watchPage(t, pageUrl);

    await waitUntil(async () => (await states()).includes('registered'), 'the page to highlight registered', 30_000, 50);
    const before = (await states()).length;
    sim.setFaults({ pauseProbes: true });
    // With no probe, the health check goes stale within an interval (1 s) and the registrar registers again.
    const wanted = ['registered', 'healthCheckStale', 'registering', 'registered'];
    await waitUntil(async () => subsequenceEnd(await states(), wanted, Math.max(0, before - 1)) >= 0, 'the highlight to go stale and back', 30_000, 50);
    sim.setFaults({ pauseProbes: false });

    const seen = await states();
    assert.ok(subsequenceEnd(seen, ['registering', 'registered', 'healthCheckStale', 'registering']) >= 0, `highlighted: ${seen.join(' → ')}`);
    const staleAt = seen.indexOf('healthCheckStale');
    assert.equal(seen[staleAt - 1], 'registered', 'healthCheckStale follows registered directly');

    // What a person sees: the state trail, the timers, the counters, the events, the Stately link.
    await waitUntil(async () => (await page.$eval('#timers tbody', (e) => (e as unknown as { textContent: string }).textContent)).includes('healthTtl'), 'the TTL timer shown', 10_000, 50);
    const text = await page.evaluate(() => (globalThis as unknown as PageGlobals).document.body.innerText);
    for (const shown of ['healthCheckStale', 'healthTtl', 'Registrations', 'HEALTHCHECK', 'SECRET_RECEIVED', 'Open in the Stately inspector']) {
      assert.ok(text.includes(shown), `the page shows ${shown}`);
    }
    const registrations = await page.evaluate(() => {
      const dts = [...(globalThis as unknown as PageGlobals).document.querySelectorAll('#counters dt')];
      const dt = dts.find((d) => d.textContent === 'Registrations');
      return Number((dt as unknown as { nextElementSibling: { textContent: string } } | undefined)?.nextElementSibling.textContent);
    });
    assert.ok(registrations >= 2, `registrations: ${registrations}`);
    assert.equal(await page.$eval('#stately', (a) => (a as unknown as { getAttribute(n: string): string }).getAttribute('href')), '/stately');

    const shot = Buffer.from(await page.screenshot({ type: 'png' }));
    assert.ok(shot.subarray(0, 8).equals(PNG_SIGNATURE), 'a PNG');
    writeFileSync(join(tempDir(t), 'live-view.png'), shot);
    const target = process.env['LIVE_VIEW_SCREENSHOT'];
    if (target) {
      writeFileSync(resolve(REPO_ROOT, target), shot);
      t.diagnostic(`screenshot written to ${target}`);
    }

    const html = await page.evaluate(() => (globalThis as unknown as PageGlobals).document.documentElement.outerHTML);
    const result = await child.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);

    // Offline: the page and its script and style came from the relay, and nothing else was asked for.
    const foreign = requests.filter((u) => !u.startsWith(`${pageUrl}/`));
    assert.deepEqual(foreign, [], 'requests beyond the relay');
    assert.deepEqual(errors, [], 'the page threw or broke its CSP');
    assert.ok(frames.length > 0 && frames.some((f) => f.includes('@posemesh.timers')), 'the page received the stream and its timers');
    // No secret in what the page received or rendered: the known ones, and the node
    // secrets the simulator made (64 hex digits; nothing shown is that long).
    const texts = { 'WebSocket frames': frames.join('\n'), 'rendered page': html, 'page text': text };
    assertNoSecrets(texts, [regSecret, privhex]);
    for (const [where, value] of Object.entries(texts)) assertNoLongHex(where, value);
  });

  it('under protocol siwe: highlights the session region, then rearming when DDS forgets the node; no access token on the page', async (t) => {
    const { sim, ddsUrl, regSecret, privhex } = await credentialedSimulator(t, { tokenLifetimeMs: 2000 });
    const dataDir = tempDir(t);
    const tokenFile = join(dataDir, 'token');
    const [inspectPort, nodePort] = [await freePort(), await freePort()];
    const child = spawnCli(
      t,
      ['run', '--inspect', '--inspect-port', String(inspectPort)],
      cliEnv({
        LOG_FORMAT: 'json',
        REGISTRATION_PROTOCOL: 'siwe',
        DDS_BASE_URL: ddsUrl,
        REG_SECRET: regSecret,
        SECP256K1_PRIVHEX: privhex,
        CAPABILITIES: '/reconstruction/global-refinement/v1',
        ACCESS_TOKEN_FILE: tokenFile,
        TOKEN_REAUTH_JITTER_MS: '50',
        HOST: '127.0.0.1',
        PORT: String(nodePort),
        DATA_DIR: join(dataDir, 'data'),
      }),
    );
    const { line: ready } = await child.waitForEvent('inspector.ready');
    const pageUrl = String(ready['url']);
    const { page, errors, frames, states, everActive } = await watchPage(t, pageUrl);
    const tokens = new Set<string>();
    const keepToken = (): void => {
      if (existsSync(tokenFile)) tokens.add(readFileSync(tokenFile, 'utf8'));
    };
    const activeBox = (path: string): Promise<boolean> =>
      page.evaluate((p: string) => (globalThis as unknown as PageGlobals).document.querySelector(`#chart .state.active[data-state="${p}"]`) !== null, path);
    const current = (): Promise<string> => page.$eval('#current', (e) => (e as unknown as { textContent: string }).textContent);

    await waitUntil(async () => (keepToken(), await activeBox('registered.session.active')), 'the session region active', 30_000, 50);
    assert.ok(await activeBox('registered.health.parked'), 'parked');
    assert.match(await current(), /health: parked.*session: /);
    // The 2 s token is refreshed at 1.5 s: the page follows the region through signingIn again.
    await waitUntil(async () => (keepToken(), (await everActive()).includes('registered.session.signingIn.refreshing')), 'refreshing highlighted', 15_000, 50);
    await waitUntil(async () => (keepToken(), await activeBox('registered.session.active')), 'active again', 15_000, 50);
    assert.ok((await everActive()).includes('registered.session.signingIn.first'), 'the first sign-in highlighted');

    const before = (await states()).length;
    sim.forget();
    await waitUntil(
      async () => (keepToken(), subsequenceEnd(await states(), ['registered', 'rearming', 'registering', 'registered'], Math.max(0, before - 1)) >= 0),
      'rearming highlighted, then registered again',
      20_000,
      50,
    );
    await waitUntil(async () => (keepToken(), await activeBox('registered.session.active')), 'signed in again', 15_000, 50);
    const text = await page.evaluate(() => (globalThis as unknown as PageGlobals).document.body.innerText);
    const trail = await page.$eval('#trail', (e) => (e as unknown as { textContent: string }).textContent);
    assert.match(trail, /session: signingIn\.refreshing/, 'the trail shows the session region');
    assert.match(trail, /rearming/, 'the trail shows the re-arm');
    const html = await page.evaluate(() => (globalThis as unknown as PageGlobals).document.documentElement.outerHTML);
    const result = await child.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);

    assert.deepEqual(errors, [], 'the page threw or broke its CSP');
    assert.ok(tokens.size >= 3, `tokens seen: ${tokens.size}`);
    const texts = { 'WebSocket frames': frames.join('\n'), 'rendered page': html, 'page text': text, stdout: result.stdout, stderr: result.stderr };
    assertNoSecrets(texts, [regSecret, privhex, ...tokens]);
    // Wallets are 40 hex digits; keys, tokens and signatures are longer.
    for (const [where, value] of Object.entries(texts)) assertNoLongHex(where, value, 41);
  });
});
