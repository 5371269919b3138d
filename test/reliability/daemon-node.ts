/**
 * The daemon's core (`startDaemon`) as the in-process reliability tests run
 * it: policy `window`, no retry of its own, its routes on a free port of
 * 127.0.0.1, its log and final snapshot handed to the test's secret scan.
 */
import type { TestContext } from 'node:test';
import { startDaemon, type Daemon, type DaemonSettings } from '../../src/cli/daemon.js';
import { MemoryLogger } from '../../src/log.js';
import { NodeSecretStore } from '../../src/persist.js';
import { onCleanup, testConfig, type TestSecrets } from '../support/index.js';

/** A running daemon core, its secret store and its log. */
export interface WindowDaemon {
  daemon: Daemon;
  store: NodeSecretStore;
  logger: MemoryLogger;
}

/** Where and how {@link startWindowDaemon} runs. */
export interface WindowDaemonSpec {
  ddsUrl: string;
  secrets: TestSecrets;
  nodeUrl: string;
  dataDir: string;
  callbackWindowSecs: number;
  /** More settings (request timeout, staleness, capabilities…), over these; the routes stay on (the tests call them). */
  settings?: Partial<Omit<DaemonSettings, 'routes'>>;
  /** Takes the log and the final snapshot at cleanup, for the test's secret scan. */
  scan(where: string, text: string): void;
}

/**
 * Start the daemon's core for `spec`: one interval of 120 s, `maxRetry` -1 and
 * a failed attempt that waits a minute, so that no retry sneaks into a test
 * (rounds go by REGISTER_NOW); stopped at cleanup.
 */
export async function startWindowDaemon(t: TestContext, spec: WindowDaemonSpec): Promise<WindowDaemon> {
  const logger = new MemoryLogger();
  const store = new NodeSecretStore({ logger });
  const daemon = await startDaemon({
    settings: {
      ...testConfig(spec.ddsUrl, spec.secrets, { nodeUrl: spec.nodeUrl, dataDir: spec.dataDir }),
      registerIntervalSecs: 120,
      maxRetry: -1,
      callbackPolicy: 'window',
      callbackWindowSecs: spec.callbackWindowSecs,
      host: '127.0.0.1',
      port: 0,
      ...spec.settings,
    },
    logger,
    registrarOptions: { secrets: store, backoffPolicy: () => 60_000 },
  });
  onCleanup(t, async () => {
    await daemon.stop();
    spec.scan(`${t.name}: log`, logger.dump());
    const snapshot = daemon.registrar.getSnapshot();
    spec.scan(`${t.name}: final snapshot`, JSON.stringify({ value: snapshot.value, context: snapshot.context }));
  });
  return { daemon, store, logger };
}
