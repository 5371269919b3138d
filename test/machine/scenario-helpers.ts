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
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import { SimulatedClock, waitFor, type InspectionEvent, type SnapshotFrom } from 'xstate';
import type { registrarMachine } from '../../machines/registrar.js';
import type { RegistrarConfig } from '../../src/config.js';
import { MemoryLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import { createRegistrar, registrarResources, type Registrar, type RegistrarOptions, type RegistrarResources } from '../../src/registrar.js';
import {
  LeakScan,
  onCleanup,
  startFakeDds,
  startNodeServer as startRoutesServer,
  type FakeDds,
  type HttpAnswer,
  type Responder,
} from '../support/index.js';

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

/**
 * The process-wide scan the scenario file fills and checks last: the
 * registration secret, the private key (with and without `0x`, lower and
 * upper case) and every node secret handed out in a callback, matched exactly.
 */
export const leakScan = new LeakScan([REG_SECRET, PRIVATE_KEY_HEX, `0x${PRIVATE_KEY_HEX}`, PRIVATE_KEY_HEX.toUpperCase()], { exact: true });

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

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

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

/** The scenario's DDS (test/support/fake-dds.ts), closed after the test. */
export function startDds(t: TestContext, responder?: Responder): Promise<FakeDds> {
  return startFakeDds(t, { responder });
}

/** What {@link startRegistrar} takes. */
export interface ScenarioOptions {
  /** A fake DDS or the real simulator: only its URL is used. */
  dds: Pick<FakeDds, 'url'>;
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
export function scenarioConfig(dds: Pick<FakeDds, 'url'>, dataDir: string, extra: Partial<RegistrarConfig> = {}): RegistrarConfig {
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

/** `routerDds(actor)` on a real express server, its answers recorded for the leak scan. */
export interface NodeServer {
  url: string;
  /** `GET /health` with `User-Agent` (default `DDS v1.0.0`). */
  probe(userAgent?: string): Promise<HttpAnswer>;
  /** `POST /internal/v1/registrations` with a JSON body. */
  callback(body: { id: string; secret: string; organization_id?: string | null }): Promise<HttpAnswer>;
}

/** The node server of test/support for `actor`, closed after the test; every answer goes to the leak scan. */
export async function startNodeServer(t: TestContext, actor: Registrar, label = t.name): Promise<NodeServer> {
  const node = await startRoutesServer(t, actor);
  const scanned = async (where: string, answer: Promise<HttpAnswer>): Promise<HttpAnswer> => {
    const a = await answer;
    leakScan.add(`${label}: ${where} answer`, a.body);
    return a;
  };
  return {
    url: node.url,
    probe: (userAgent) => scanned('GET /health', node.probe(userAgent)),
    callback: (body) => scanned('POST /internal/v1/registrations', node.callback(body)),
  };
}
