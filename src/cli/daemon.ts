/**
 * The daemon's core, shared by `run` and `dev`: a registrar, the DDS routes
 * on an HTTP server, an optional inspector relay, and a graceful stop.
 */
import type { Server } from 'node:http';
import { toPromise, waitFor } from 'xstate';
import { createRegistrar, type Registrar, type RegistrarOptions } from '../registrar.js';
import type { SanitizingInspector } from '../inspect.js';
import type { InspectorRelay } from '../inspector-relay.js';
import type { Logger } from '../log.js';
import { closeServer, createRoutesServer, ensureDataDir, listen } from './serve.js';
import { CliError, EXIT, type RegistrationSettings } from './settings.js';
import { ConfigError, type RegistrarConfig } from '../config.js';

const ENV_NAMES: Record<keyof RegistrarConfig, string> = {
  ddsBaseUrl: 'DDS_BASE_URL',
  nodeUrl: 'NODE_URL',
  nodeVersion: 'NODE_VERSION',
  regSecret: 'REG_SECRET',
  secp256k1Privhex: 'SECP256K1_PRIVHEX',
  capabilities: 'CAPABILITIES',
  registerIntervalSecs: 'REGISTER_INTERVAL_SECS',
  maxRetry: 'REGISTER_MAX_RETRY',
  requestTimeoutSecs: 'REQUEST_TIMEOUT_SECS',
  dataDir: 'DATA_DIR',
  lockStaleSecs: 'LOCK_STALE_SECS',
  callbackPolicy: 'CALLBACK_POLICY',
  callbackWindowSecs: 'CALLBACK_WINDOW_SECS',
  backoff: 'REGISTER_BACKOFF',
};

/** The environment variable behind a config key. */
export function envNameOf(setting: keyof RegistrarConfig): string {
  return ENV_NAMES[setting];
}

/** What {@link startDaemon} needs. */
export interface DaemonOptions {
  registration: RegistrationSettings;
  host: string;
  port: number;
  inspect: boolean;
  inspectPort: number;
  logger: Logger;
  /** Extra registrar options (clock, stores…), for `dev` and tests. */
  registrarOptions?: RegistrarOptions;
  /** Derive NODE_URL from where the routes listen (for `dev`, on an ephemeral port). */
  nodeUrlFromListen?: (listenUrl: string) => string;
}

/** A running daemon. */
export interface Daemon {
  readonly registrar: Registrar;
  readonly server: Server;
  /** Where the DDS routes listen. */
  readonly url: string;
  readonly relay: InspectorRelay | null;
  /** Resolves when the registrar reached a final state (`stopped` or `failed`). */
  readonly done: Promise<void>;
  /** Resolves once the first registration attempt is over (whatever its outcome), or the registrar ended. */
  readonly firstAttempt: Promise<void>;
  /** STOP the registrar, close the server and the relay. Idempotent. */
  stop(): Promise<void>;
}

/** Start the daemon. @throws {CliError} (exit 3) when it cannot start. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { registration: r, logger } = options;
  ensureDataDir(r.dataDir);
  if (r.nodeVersionWarning) logger.warn({ event: 'config.node_version', warning: r.nodeVersionWarning });
  if (r.intervalWarning) logger.warn({ event: 'config.adjusted', warning: r.intervalWarning });

  let relay: InspectorRelay | null = null;
  let inspector: SanitizingInspector | undefined;
  if (options.inspect) {
    // Loaded on use, as express is (see createRoutesServer): a start without them is faster.
    const [{ startInspectorRelay }, { createSanitizingInspector }] = await Promise.all([
      import('../inspector-relay.js'),
      import('../inspect.js'),
    ]);
    try {
      relay = await startInspectorRelay({ host: '127.0.0.1', port: options.inspectPort, logger });
    } catch (error) {
      const message = error instanceof Error ? error.message : 'cannot start';
      throw new CliError(EXIT.cannotStart, `INSPECT_PORT: ${message}`);
    }
    inspector = createSanitizingInspector({ url: relay.wsUrl });
    logger.info({ event: 'inspector.ready', url: relay.httpUrl }, `open ${relay.httpUrl} to watch the registrar live`);
  }

  // The routes need the registrar, which may need the listen URL: they wait for it.
  let registrarCreated!: (registrar: Registrar) => void;
  const created = new Promise<Registrar>((resolve) => (registrarCreated = resolve));
  const { server, load: loadRoutes } = createRoutesServer(async () => {
    const [{ routerDds }, registrar] = await Promise.all([import('../router-dds.js'), created]);
    return routerDds(registrar, { logger });
  });
  let address;
  try {
    address = await listen(server, options.host, options.port, 'PORT');
  } catch (error) {
    inspector?.stop();
    await relay?.close();
    throw error;
  }
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  logger.info({ event: 'http.listening', url }, `DDS callback routes on ${url}`);

  let registrar: Registrar;
  try {
    registrar = createRegistrar(
    {
      ddsBaseUrl: r.ddsBaseUrl,
      nodeUrl: options.nodeUrlFromListen ? options.nodeUrlFromListen(url) : r.nodeUrl,
      nodeVersion: r.nodeVersion,
      regSecret: r.regSecret,
      secp256k1Privhex: r.secp256k1Privhex,
      capabilities: r.capabilities,
      registerIntervalSecs: r.registerIntervalSecs,
      maxRetry: r.maxRetry,
      requestTimeoutSecs: r.requestTimeoutSecs,
      dataDir: r.dataDir,
      lockStaleSecs: r.lockStaleSecs,
      callbackPolicy: r.callbackPolicy,
      callbackWindowSecs: r.callbackWindowSecs,
      ...(r.backoff === undefined ? {} : { backoff: r.backoff }),
    },
    { logger, ...(inspector ? { inspect: inspector } : {}), ...options.registrarOptions },
    );
  } catch (error) {
    await closeServer(server);
    inspector?.stop();
    await relay?.close();
    if (error instanceof ConfigError) throw new CliError(EXIT.badSetting, `${envNameOf(error.setting)}: ${error.message.replace(/^[^:]+: /, '')}`);
    throw error;
  }

  registrarCreated(registrar);

  const done = toPromise(registrar).then(() => undefined);
  const firstAttempt = waitFor(registrar, (snapshot) => !snapshot.hasTag('attempt')).then(
    () => undefined,
    () => undefined, // the registrar ended first
  );
  // Load the routes once the first registration attempt is over (or at the first request).
  void firstAttempt.then(() =>
    // Only a broken install fails here; requests then get 500: say so once.
    loadRoutes().catch((error: unknown) =>
      logger.error({ event: 'http.routes.error', error: error instanceof Error ? error.name : 'Error' }, 'cannot load the DDS routes'),
    ),
  );
  registrar.start();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      registrar.send({ type: 'STOP' });
      await done.catch(() => undefined);
      await closeServer(server);
      inspector?.stop();
      await relay?.close();
    })();
    return stopping;
  };
  return { registrar, server, url, relay, done, firstAttempt, stop };
}
