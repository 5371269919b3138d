/**
 * Helpers for the registrar's scenario tests (`scenarios.test.ts`): the real
 * actor from `createRegistrar`, wired to a real local DDS, a real state file
 * and lock in a temp directory, and `routerDds` on a real express server.
 *
 * Everything these helpers see that could carry a secret — log dumps,
 * snapshots, inspection events, HTTP answers, error messages — is also
 * recorded in a {@link LeakScan}, which the scenario file scans at the end.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import { SimulatedClock, waitFor, type InspectionEvent, type SnapshotFrom } from 'xstate';
import type { registrarMachine } from '../../machines/registrar.js';
import type { RegistrarConfig } from '../../src/config.js';
import { MemoryLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import { createRegistrar, registrarResources, type Registrar, type RegistrarOptions, type RegistrarResources } from '../../src/registrar.js';
import { routerDds } from '../../src/router-dds.js';
import { startTestDdsServer, type Responder, type TestDdsServer } from '../helpers/dds-server.js';
import { assertNoSecrets as scanForSecrets, findSecrets } from '../helpers/secrets.js';
import { tempDir as makeTempDir } from '../helpers/temp.js';

/** The registrar's snapshot type. */
export type RegistrarSnapshot = SnapshotFrom<typeof registrarMachine>;

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/** A valid secp256k1 private key (64 hex digits), used by every scenario. */
export const PRIVATE_KEY_HEX = '4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318';

/** The registration secret (`REG_SECRET`), used by every scenario. */
export const REG_SECRET = 'reg-secret-7f3c9a1e5b2d4c6f8a0b1c2d3e4f5a6b';

/** A node secret for a callback: unique, recognisable, and recorded for the final scan. */
export function nodeSecret(label: string): string {
  const secret = `node-secret-${label}-${Math.random().toString(36).slice(2, 12)}`;
  leakScan.addSecret(secret);
  return secret;
}

/** Where a text came from, and the text. */
export interface ScannedText {
  where: string;
  text: string;
}

/**
 * Everything the scenarios saw that must not hold a secret, and the secrets:
 * the registration secret, the private key (with and without `0x`, lower
 * and upper case) and every node secret handed out in a callback.
 */
export class LeakScan {
  readonly texts: ScannedText[] = [];
  readonly secrets = new Set<string>([
    REG_SECRET,
    PRIVATE_KEY_HEX,
    `0x${PRIVATE_KEY_HEX}`,
    PRIVATE_KEY_HEX.toUpperCase(),
  ]);

  add(where: string, text: string): void {
    this.texts.push({ where, text });
  }

  addSecret(secret: string): void {
    this.secrets.add(secret);
  }

  /** The places where a secret was found (empty when none leaked); exact, case-sensitive matches. */
  findings(): string[] {
    return this.texts.flatMap(({ where, text }) => findSecrets({ [where]: text }, this.secrets, { exact: true }));
  }
}

/** The process-wide scan the scenario file fills and checks last. */
export const leakScan = new LeakScan();

/** Assert that `text` holds none of the known secrets (and record it for the final scan). */
export function assertNoSecrets(where: string, text: string): void {
  leakScan.add(where, text);
  scanForSecrets({ [where]: text }, [...leakScan.secrets], { exact: true });
}

/** JSON text of anything, cycles replaced (inspection events hold actor refs). */
export function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[cycle]';
        seen.add(v);
      }
      return v;
    }) ?? '';
  } catch (err) {
    return `[unserializable: ${err instanceof Error ? err.name : typeof err}]`;
  }
}

// ---------------------------------------------------------------------------
// Time and waiting
// ---------------------------------------------------------------------------

/** Let pending promise callbacks and I/O callbacks that are ready run (`n` turns of the event loop). */
export async function flush(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await immediate();
}

/** A `SimulatedClock` set to the wall clock (state-file timestamps stay plausible). */
export function simulatedClock(): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(Date.now());
  return clock;
}

/** Advance a simulated clock by `ms` and let what it set off settle a little. */
export async function advance(clock: SimulatedClock, ms: number): Promise<void> {
  clock.increment(ms);
  await flush();
}

/** Wait (real time) until the actor's snapshot satisfies `predicate`. */
export async function waitForSnapshot(
  actor: Registrar,
  predicate: (s: RegistrarSnapshot) => boolean,
  timeoutMs = 10_000,
): Promise<RegistrarSnapshot> {
  return waitFor(actor, predicate, { timeout: timeoutMs });
}

/** Poll (real time) until `check` returns true; fail with `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

const cleanups = new WeakMap<TestContext, Array<() => unknown>>();

/**
 * Run `fn` after the test, in reverse order of registration (the last thing
 * set up is torn down first: registrars stop before their directory goes).
 * `t.after` hooks run in the order they were added, hence this stack.
 */
export function onCleanup(t: TestContext, fn: () => unknown): void {
  let stack = cleanups.get(t);
  if (stack === undefined) {
    const created: Array<() => unknown> = [];
    stack = created;
    cleanups.set(t, created);
    t.after(async () => {
      const errors: unknown[] = [];
      for (let next = created.pop(); next !== undefined; next = created.pop()) {
        try {
          await next();
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length > 0) throw errors[0];
    });
  }
  stack.push(fn);
}

/** A fresh temp directory, removed after the test. */
export function tempDir(t: TestContext, prefix = 'pnr-scn-'): string {
  return makeTempDir({ after: (fn) => onCleanup(t, fn) }, prefix);
}

/** The state file's path in a data directory. */
export function stateFilePath(dataDir: string): string {
  return path.join(dataDir, 'registration_state.json');
}

/** The lock directory's path in a data directory. */
export function lockDirPath(dataDir: string): string {
  return path.join(dataDir, 'registration.lock');
}

/** The state file as JSON, or `null` when it does not exist. */
export function readStateFile(dataDir: string): Record<string, unknown> | null {
  let text: string;
  try {
    text = fs.readFileSync(stateFilePath(dataDir), 'utf8');
  } catch {
    return null;
  }
  return JSON.parse(text) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------
// The DDS and the registrar
// ---------------------------------------------------------------------------

/** A test DDS server, closed after the test. */
export async function startDds(t: TestContext, responder?: Responder): Promise<TestDdsServer> {
  const dds = await startTestDdsServer(responder === undefined ? {} : { responder });
  onCleanup(t, () => dds.close());
  return dds;
}

/** What {@link startRegistrar} takes. */
export interface ScenarioOptions {
  dds: TestDdsServer;
  dataDir: string;
  /** Overrides of the config (key, secret and URLs have defaults). */
  config?: Partial<RegistrarConfig>;
  /** Overrides of the options (logger, secrets and inspect have defaults). */
  options?: RegistrarOptions;
  /** Call `.start()` (default true). */
  start?: boolean;
  /** A label for the leak scan. */
  label?: string;
}

/** A registrar under test, and what it wrote. */
export interface ScenarioRegistrar {
  actor: Registrar;
  logger: MemoryLogger;
  secrets: NodeSecretStore;
  resources: RegistrarResources;
  /** The status in the state file after every snapshot, consecutive repeats dropped (`missing` when absent). */
  fileStatuses: string[];
  /** Every snapshot's value, as JSON, consecutive repeats dropped. */
  values: string[];
  /** Send STOP and wait until the actor is done. */
  stop(timeoutMs?: number): Promise<RegistrarSnapshot>;
}

/** The default config of a scenario: a node URL that must be sent as is (trailing slash, path, port). */
export function scenarioConfig(dds: TestDdsServer, dataDir: string, extra: Partial<RegistrarConfig> = {}): RegistrarConfig {
  return {
    ddsBaseUrl: `${dds.url}/`,
    nodeUrl: 'https://node.example.test:8443/compute/',
    nodeVersion: '1.2.3',
    regSecret: REG_SECRET,
    secp256k1Privhex: `0x${PRIVATE_KEY_HEX}`,
    capabilities: ['/reconstruction/global-refinement/v1', '/splatter/v1'],
    registerIntervalSecs: 60,
    dataDir,
    ...extra,
  };
}

/**
 * Create (and by default start) a registrar against `dds` in `dataDir`, with
 * its own MemoryLogger and NodeSecretStore. Records every snapshot, the
 * state file's status after each, and every inspection event for the leak
 * scan. After the test: stops it if still running and scans its log dump.
 */
export function startRegistrar(t: TestContext, o: ScenarioOptions): ScenarioRegistrar {
  const label = o.label ?? t.name;
  const logger = new MemoryLogger();
  const secrets = new NodeSecretStore({ logger });
  const inspect = (ev: InspectionEvent): void => {
    if (ev.type === '@xstate.event') leakScan.add(`${label}: inspected event`, safeJson(ev.event));
    else if (ev.type === '@xstate.snapshot') leakScan.add(`${label}: inspected snapshot`, safeJson(ev.snapshot));
  };
  const actor = createRegistrar(scenarioConfig(o.dds, o.dataDir, o.config), {
    logger,
    secrets,
    inspect,
    ...o.options,
  });
  const resources = registrarResources(actor);
  assert.ok(resources, 'createRegistrar registers its resources');

  const fileStatuses: string[] = [];
  const values: string[] = [];
  const record = (s: RegistrarSnapshot): void => {
    const value = JSON.stringify(s.value);
    if (values.at(-1) !== value) values.push(value);
    const status = String(readStateFile(o.dataDir)?.status ?? 'missing');
    if (fileStatuses.at(-1) !== status) fileStatuses.push(status);
    leakScan.add(`${label}: snapshot`, JSON.stringify(s));
  };
  actor.subscribe({ next: record, error: () => undefined });
  record(actor.getSnapshot());

  const stop = async (timeoutMs = 10_000): Promise<RegistrarSnapshot> => {
    if (actor.getSnapshot().status === 'active') actor.send({ type: 'STOP' });
    return waitForSnapshot(actor, (s) => s.status === 'done', timeoutMs);
  };
  onCleanup(t, async () => {
    if (actor.getSnapshot().status === 'active') await stop().catch(() => undefined);
    leakScan.add(`${label}: log`, logger.dump());
    leakScan.add(`${label}: final snapshot`, JSON.stringify(actor.getSnapshot()));
    leakScan.add(`${label}: persisted snapshot`, safeJson(actor.getPersistedSnapshot()));
  });
  if (o.start !== false) actor.start();
  return { actor, logger, secrets, resources, fileStatuses, values, stop };
}

// ---------------------------------------------------------------------------
// The node's own HTTP server (routerDds)
// ---------------------------------------------------------------------------

/** An HTTP answer, body as text. */
export interface Answer {
  status: number;
  body: string;
}

/** `routerDds(actor)` on a real express server. */
export interface NodeServer {
  url: string;
  /** `GET /health` with `User-Agent` (default `DDS v1.0.0`). */
  probe(userAgent?: string): Promise<Answer>;
  /** `POST /internal/v1/registrations` with a JSON body. */
  callback(body: { id: string; secret: string; organization_id?: string | null }): Promise<Answer>;
}

/** Mount `routerDds(actor)` on an express app listening on 127.0.0.1; closed after the test. */
export async function startNodeServer(t: TestContext, actor: Registrar, label = t.name): Promise<NodeServer> {
  const app = express();
  app.use(routerDds(actor));
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(t, async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const answer = async (where: string, res: Response): Promise<Answer> => {
    const body = await res.text();
    leakScan.add(`${label}: ${where} answer`, body);
    return { status: res.status, body };
  };
  return {
    url,
    probe: async (userAgent = 'DDS v1.0.0') =>
      answer('GET /health', await fetch(`${url}/health`, { headers: { 'user-agent': userAgent } })),
    callback: async (body) =>
      answer(
        'POST /internal/v1/registrations',
        await fetch(`${url}/internal/v1/registrations`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }),
      ),
  };
}
