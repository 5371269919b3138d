/**
 * The daemon's core, shared by `run` and `dev`: a registrar, the DDS routes
 * on an HTTP server (unless turned off: protocol `siwe` needs no inbound
 * port), an optional inspector relay, optional Prometheus metrics, and a
 * graceful stop.
 */
import type { Server } from 'node:http';
import { toPromise, waitFor } from 'xstate';
import { createRegistrar, type Registrar, type RegistrarOptions } from '../registrar.js';
import type { SanitizingInspector } from '../inspect.js';
import type { InspectorRelay } from '../inspector-relay.js';
import type { Logger } from '../log.js';
import type { MetricsEndpoint } from './metrics-server.js';
import { keysOfGroups, SETTINGS, type GroupKey, type SettingsInput } from '../settings/table.js';
import { ConfigError, validateSettings, type SettingWarning } from '../settings/validate.js';
import { closeServer, createRoutesServer, ensureDataDir, listen } from './serve.js';
import { CliError, EXIT, logSettingWarnings } from './settings.js';

type DaemonKey = GroupKey<'registrar' | 'server'>;

/**
 * The daemon's settings: the registrar's config and where to serve — every
 * setting `run` takes but the log's. `nodeUrl` may be derived from where the
 * routes listen (`dev`, on an ephemeral port).
 */
export type DaemonSettings = Omit<SettingsInput<DaemonKey>, 'nodeUrl'> & { nodeUrl?: string | ((listenUrl: string) => string) | undefined };

/** Checked before anything starts; the node URL once the routes listen (by `createRegistrar`). */
const CHECKED_FIRST = keysOfGroups('registrar', 'server').filter((key): key is Exclude<DaemonKey, 'nodeUrl'> => key !== 'nodeUrl');

/** What {@link startDaemon} needs. */
export interface DaemonOptions {
  settings: DaemonSettings;
  logger: Logger;
  /** Extra registrar options (clock, stores…), for `dev` and tests. */
  registrarOptions?: RegistrarOptions;
}

/** A running daemon, with or without its routes. */
interface DaemonParts {
  readonly registrar: Registrar;
  readonly relay: InspectorRelay | null;
  /** The metrics endpoint (setting `metrics`), else null. */
  readonly metrics: MetricsEndpoint | null;
  /** Resolves when the registrar reached a final state (`stopped` or `failed`). */
  readonly done: Promise<void>;
  /** Resolves once the first registration attempt is over (whatever its outcome), or the registrar ended. */
  readonly firstAttempt: Promise<void>;
  /** STOP the registrar, close the server and the relay. Idempotent. */
  stop(): Promise<void>;
}

/** A running daemon serving the DDS routes. */
export interface Daemon extends DaemonParts {
  readonly server: Server;
  /** Where the DDS routes listen. */
  readonly url: string;
}

/** A running daemon with its routes off (setting `routes`, protocol `siwe`): no inbound port at all. */
export interface RoutelessDaemon extends DaemonParts {
  readonly server: null;
  readonly url: null;
}

/** Routes off: refused under `legacy` (DDS calls the node back on them), else the daemon opens no port. */
function routesOff(settings: { routes: boolean; protocol: string }): boolean {
  if (settings.routes) return false;
  if (settings.protocol !== 'siwe') {
    throw new ConfigError('routes', `false needs ${SETTINGS.protocol.env}=siwe: under legacy DDS calls the node back and probes /health on these routes`);
  }
  return true;
}

/**
 * Start the daemon: with its routes unless `settings.routes` is false.
 * @throws {ConfigError} (exit 2) routes off under `legacy`; {@link CliError} (exit 3) when it cannot start.
 */
export function startDaemon(options: DaemonOptions & { settings: { routes?: true } }): Promise<Daemon>;
export function startDaemon(options: DaemonOptions): Promise<Daemon | RoutelessDaemon>;
export async function startDaemon(options: DaemonOptions): Promise<Daemon | RoutelessDaemon> {
  const { logger } = options;
  const warnings: SettingWarning[] = [];
  const settings = validateSettings(CHECKED_FIRST, options.settings, { warnings });
  const noRoutes = routesOff(settings);
  logSettingWarnings(logger, warnings);
  ensureDataDir(settings.dataDir);

  let relay: InspectorRelay | null = null;
  let inspector: SanitizingInspector | undefined;
  if (settings.inspect) {
    // Loaded on use, as express is (see createRoutesServer): a start without them is faster.
    const [{ startInspectorRelay }, { createSanitizingInspector }] = await Promise.all([
      import('../inspector-relay.js'),
      import('../inspect.js'),
    ]);
    try {
      relay = await startInspectorRelay({ host: '127.0.0.1', port: settings.inspectPort, logger });
    } catch (error) {
      const message = error instanceof Error ? error.message : 'cannot start';
      throw new CliError(EXIT.cannotStart, `${SETTINGS.inspectPort.env}: ${message}`);
    }
    inspector = createSanitizingInspector({ url: relay.wsUrl });
    logger.info({ event: 'inspector.ready', url: relay.httpUrl }, `open ${relay.httpUrl} to watch the registrar live`);
  }

  let metrics: MetricsEndpoint | null = null;
  if (settings.metrics) {
    // Loaded on use: without metrics, prom-client is never loaded.
    const { startMetricsEndpoint } = await import('./metrics-server.js');
    try {
      metrics = await startMetricsEndpoint({ host: settings.metricsHost, port: settings.metricsPort, logger });
    } catch (error) {
      inspector?.stop();
      await relay?.close();
      throw error;
    }
  }
  const closeExtras = async (): Promise<void> => {
    inspector?.stop();
    await relay?.close();
    await metrics?.close();
  };

  // The routes need the registrar, which may need the listen URL: they wait for it.
  let registrarCreated!: (registrar: Registrar) => void;
  const created = new Promise<Registrar>((resolve) => (registrarCreated = resolve));
  let routes: { server: Server; url: string; load: () => Promise<void> } | null = null;
  if (!noRoutes) {
    const { server, load } = createRoutesServer(async () => {
      const [{ routerDds }, registrar] = await Promise.all([import('../router-dds.js'), created]);
      return routerDds(registrar, { logger: metrics === null ? logger : metrics.metrics.tapRoutesLogger(logger) });
    }, settings.maxConnections);
    let address;
    try {
      address = await listen(server, settings.host, settings.port, { host: SETTINGS.host.env, port: SETTINGS.port.env });
    } catch (error) {
      await closeExtras();
      throw error;
    }
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    routes = { server, url: `http://${shownHost}:${address.port}`, load };
    logger.info({ event: 'http.listening', url: routes.url }, `DDS callback routes on ${routes.url}`);
  } else {
    logger.info({ event: 'http.routes.off' }, `no DDS routes (${SETTINGS.routes.env}=false): no inbound port`);
  }
  const closeRoutes = async (): Promise<void> => {
    if (routes !== null) await closeServer(routes.server);
  };

  // Derived from where the routes listen (`dev`); without routes there is nothing to derive it from (siwe needs none).
  const nodeUrl = options.settings.nodeUrl;
  let registrar: Registrar;
  try {
    registrar = createRegistrar(
      { ...settings, nodeUrl: typeof nodeUrl === 'function' ? (routes === null ? undefined : nodeUrl(routes.url)) : nodeUrl },
      { logger, inspect: inspector, ...options.registrarOptions },
    );
  } catch (error) {
    await closeRoutes();
    await closeExtras();
    throw error;
  }

  // Before the start: the metrics see the registrar's first state and every step after.
  metrics?.metrics.watch(registrar);
  registrarCreated(registrar);

  const done = toPromise(registrar).then(() => undefined);
  const firstAttempt = waitFor(registrar, (snapshot) => !snapshot.hasTag('attempt')).then(
    () => undefined,
    () => undefined, // the registrar ended first
  );
  // Load the routes once the first registration attempt is over (or at the first request).
  const loadRoutes = routes?.load;
  if (loadRoutes !== undefined) {
    void firstAttempt.then(() =>
      // Only a broken install fails here; requests then get 500: say so once.
      loadRoutes().catch((error: unknown) =>
        logger.error({ event: 'http.routes.error', error: error instanceof Error ? error.name : 'Error' }, 'cannot load the DDS routes'),
      ),
    );
  }
  registrar.start();
  // Without routes, a parked registrar (siwe, the session off) has nothing pending: this keeps the process up until it ends.
  const keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
  void done.finally(() => clearInterval(keepAlive)).catch(() => undefined);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      registrar.send({ type: 'STOP' });
      await done.catch(() => undefined);
      clearInterval(keepAlive);
      await closeRoutes();
      await closeExtras();
    })();
    return stopping;
  };
  const parts = { registrar, relay, metrics, done, firstAttempt, stop };
  return routes === null ? { ...parts, server: null, url: null } : { ...parts, server: routes.server, url: routes.url };
}
